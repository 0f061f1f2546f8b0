"""Collecting outputs: the blob store, and every way an experiment could try to leak or flood."""

import os
import stat
from pathlib import Path

import pytest
import xxhash

from bot.errors import OutputsRejected
from bot.outputs import BlobStore, OutputLimits, collect, file_hash

LIMITS = OutputLimits(max_files=100, max_bytes=10 * 1024**2)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    (path / "outputs" / "plots").mkdir(parents=True)
    (path / "outputs" / "metrics.json").write_text('{"accuracy": 0.9}')
    (path / "outputs" / "plots" / "loss.png").write_bytes(b"\x89PNG fake")
    (path / "outputs" / "copy.json").write_text('{"accuracy": 0.9}')
    return path


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore(tmp_path / "blobs")


def blobs(store: BlobStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file()]


def test_collect_and_dedupe(workdir, store):
    manifest = collect(workdir, "outputs", store, LIMITS)
    assert sorted(manifest.files) == ["copy.json", "metrics.json", "plots/loss.png"]
    metrics = manifest.files["metrics.json"]
    assert (metrics.path, metrics.size) == ("metrics.json", 17)
    assert metrics.hash == xxhash.xxh3_128_hexdigest(b'{"accuracy": 0.9}')
    assert manifest.files["copy.json"].hash == metrics.hash
    assert store.path_of(metrics.hash).read_text() == '{"accuracy": 0.9}'
    assert len(blobs(store)) == 2  # identical files are stored once
    assert stat.S_IMODE(store.path_of(metrics.hash).stat().st_mode) == 0o444  # shared: nobody edits a blob
    collect(workdir, "outputs", store, LIMITS)  # a second run with the same outputs adds nothing
    assert len(blobs(store)) == 2
    assert manifest.total_size() == 17 * 2 + len(b"\x89PNG fake")


def test_file_hash_is_stable_and_streams(tmp_path):
    big = tmp_path / "big.bin"
    content = bytes(range(256)) * (3 * 4096 + 7)  # spans several 1 MiB chunks
    big.write_bytes(content)
    assert file_hash(big) == xxhash.xxh3_128_hexdigest(content) == file_hash(big)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_hash(empty) == "99aa06d3014798d86001c324468d497f"  # xxh3-128 of nothing, a fixed value


def test_path_of_refuses_what_is_not_a_hash(store):
    with pytest.raises(ValueError):
        store.path_of("../../etc/passwd")


def test_symlink_to_a_file_outside_is_rejected(workdir, store):
    os.symlink("/etc/passwd", workdir / "outputs" / "passwd")
    with pytest.raises(OutputsRejected, match=r"^outputs/passwd is a symlink to /etc/passwd, outside"):
        collect(workdir, "outputs", store, LIMITS)
    assert blobs(store) == []


def test_symlink_to_a_directory_outside_is_rejected(workdir, store):
    os.symlink("/etc", workdir / "outputs" / "plots" / "etc")
    with pytest.raises(OutputsRejected, match=r"outputs/plots/etc is a symlink to /etc,"):
        collect(workdir, "outputs", store, LIMITS)


def test_relative_symlink_climbing_out_is_rejected(workdir, store, tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink("../../secret.txt", workdir / "outputs" / "innocent.txt")
    with pytest.raises(OutputsRejected, match="secret.txt, outside the workspace"):
        collect(workdir, "outputs", store, LIMITS)


def test_symlinked_outputs_directory_pointing_outside_is_rejected(tmp_path, store):
    workdir = tmp_path / "work"
    workdir.mkdir()
    os.symlink("/etc", workdir / "outputs")
    with pytest.raises(OutputsRejected, match="'outputs/' resolves to /etc, outside the workspace"):
        collect(workdir, "outputs", store, LIMITS)


def test_symlinks_inside_the_workspace_are_fine(workdir, store):
    (workdir / "data").mkdir()
    (workdir / "data" / "table.csv").write_text("id,x\n1,2\n")
    os.symlink("../data/table.csv", workdir / "outputs" / "table.csv")  # a file: its content is collected
    os.symlink("plots", workdir / "outputs" / "plots-latest")  # a directory: not followed
    os.symlink("nowhere.txt", workdir / "outputs" / "dangling")  # no content: skipped
    manifest = collect(workdir, "outputs", store, LIMITS)
    assert sorted(manifest.files) == ["copy.json", "metrics.json", "plots/loss.png", "table.csv"]
    assert store.path_of(manifest.files["table.csv"].hash).read_text() == "id,x\n1,2\n"


def test_outputs_directory_may_be_a_symlink_inside_the_workspace(tmp_path, store):
    workdir = tmp_path / "work"
    (workdir / "runs" / "latest").mkdir(parents=True)
    (workdir / "runs" / "latest" / "m.json").write_text("{}")
    os.symlink("runs/latest", workdir / "out")
    assert list(collect(workdir, "out", store, LIMITS).files) == ["m.json"]


def test_special_files_are_skipped_never_read(workdir, store):
    os.mkfifo(workdir / "outputs" / "pipe")  # opening it would block the worker forever
    manifest = collect(workdir, "outputs", store, LIMITS)
    assert "pipe" not in manifest.files and len(manifest.files) == 3


def test_too_many_files(workdir, store):
    for i in range(5):
        (workdir / "outputs" / f"f{i}.txt").write_text(str(i))
    with pytest.raises(OutputsRejected, match=r"'outputs/' holds 8 files; the limit is 4"):
        collect(workdir, "outputs", store, OutputLimits(max_files=4, max_bytes=10**9))
    assert blobs(store) == []  # checked before anything is copied


def test_too_many_bytes(workdir, store):
    (workdir / "outputs" / "big.bin").write_bytes(b"x" * 3 * 1024**2)
    with pytest.raises(OutputsRejected, match=r"holds 3\.0 MiB \(\d+ bytes\); the limit is 2\.0 MiB"):
        collect(workdir, "outputs", store, OutputLimits(max_files=100, max_bytes=2 * 1024**2))
    assert blobs(store) == []


def test_missing_outputs_directory(tmp_path, store):
    (tmp_path / "work").mkdir()
    with pytest.raises(OutputsRejected, match=r"^the experiment did not create its outputs directory 'out/'"):
        collect(tmp_path / "work", "out", store, LIMITS)


def test_outputs_that_is_a_file(tmp_path, store):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "out").write_text("not a directory")
    with pytest.raises(OutputsRejected, match="'out' is not a directory"):
        collect(tmp_path / "work", "out", store, LIMITS)


def test_empty_outputs_directory_is_an_empty_manifest(tmp_path, store):
    (tmp_path / "work" / "out").mkdir(parents=True)
    assert collect(tmp_path / "work", "out", store, LIMITS).files == {}
