"""Collecting outputs: the blob store, and every way an experiment could try to leak, hang or flood it:
what is not safe to read is skipped with its reason, never read and never fatal."""

import os
import socket
import stat
from pathlib import Path

import pytest
import xxhash

from bot.errors import OutputsRejected
from bot.manifest import Manifest
from bot.outputs import BlobStore, OutputLimits, collect, file_hash, manifest_of

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


def skipped(manifest: Manifest) -> dict[str, str]:
    return {entry.path: entry.reason for entry in manifest.skipped}


def test_symlink_to_a_file_outside_is_skipped_never_read(workdir, store):
    os.symlink("/etc/passwd", workdir / "outputs" / "passwd")
    manifest = collect(workdir, "outputs", store, LIMITS)
    assert skipped(manifest) == {"passwd": "a symlink to /etc/passwd, outside the workspace: not read"}
    assert sorted(manifest.files) == ["copy.json", "metrics.json", "plots/loss.png"]  # the rest still counts
    assert len(blobs(store)) == 2  # nothing of /etc/passwd was copied


def test_symlink_to_a_directory_outside_is_skipped(workdir, store):
    os.symlink("/etc", workdir / "outputs" / "plots" / "etc")
    manifest = collect(workdir, "outputs", store, LIMITS)
    assert skipped(manifest) == {"plots/etc": "a symlink to /etc, outside the workspace: not read"}


def test_relative_symlink_climbing_out_is_skipped(workdir, store, tmp_path):
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink("../../secret.txt", workdir / "outputs" / "innocent.txt")
    manifest = collect(workdir, "outputs", store, LIMITS)
    reason = f"a symlink to {tmp_path / 'secret.txt'}, outside the workspace: not read"
    assert skipped(manifest) == {"innocent.txt": reason}
    assert "innocent.txt" not in manifest.files


def test_symlinked_outputs_directory_pointing_outside_is_rejected(tmp_path, store):
    workdir = tmp_path / "work"
    workdir.mkdir()
    os.symlink("/etc", workdir / "outputs")
    with pytest.raises(OutputsRejected, match="'outputs/' resolves to /etc, outside the workspace"):
        collect(workdir, "outputs", store, LIMITS)


def test_symlinks_inside_the_workspace(workdir, store):
    (workdir / "data").mkdir()
    (workdir / "data" / "table.csv").write_text("id,x\n1,2\n")
    os.mkfifo(workdir / "data" / "pipe")
    os.symlink("../data/table.csv", workdir / "outputs" / "table.csv")  # a file: its content is collected
    os.symlink("plots", workdir / "outputs" / "plots-latest")  # a directory: not followed
    os.symlink("nowhere.txt", workdir / "outputs" / "dangling")  # no content
    os.symlink("../data/pipe", workdir / "outputs" / "pipe-link")  # a FIFO behind a link is still a FIFO
    os.symlink("loop-b", workdir / "outputs" / "loop-a")
    os.symlink("loop-a", workdir / "outputs" / "loop-b")
    manifest = collect(workdir, "outputs", store, LIMITS)
    assert sorted(manifest.files) == ["copy.json", "metrics.json", "plots/loss.png", "table.csv"]
    assert store.path_of(manifest.files["table.csv"].hash).read_text() == "id,x\n1,2\n"
    loop = "a symlink that cannot be followed (Too many levels of symbolic links): not read"
    assert skipped(manifest) == {
        "dangling": "a dangling symlink (to nowhere.txt): not read",
        "loop-a": loop,
        "loop-b": loop,
        "pipe-link": "a symlink to a FIFO: not read",
        "plots-latest": "a symlink to a directory: not followed",
    }
    assert [entry.path for entry in manifest.skipped] == sorted(skipped(manifest))


def test_outputs_directory_may_be_a_symlink_inside_the_workspace(tmp_path, store):
    workdir = tmp_path / "work"
    (workdir / "runs" / "latest").mkdir(parents=True)
    (workdir / "runs" / "latest" / "m.json").write_text("{}")
    os.symlink("runs/latest", workdir / "out")
    assert list(collect(workdir, "out", store, LIMITS).files) == ["m.json"]


def test_fifos_and_sockets_are_skipped_never_opened(workdir, store, monkeypatch):
    os.mkfifo(workdir / "outputs" / "plots" / "pipe")  # opening it would block the worker forever
    monkeypatch.chdir(workdir / "outputs")  # a socket's path must be short: bind it by a relative one
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind("sock")
        manifest = collect(workdir, "outputs", store, LIMITS)
    assert skipped(manifest) == {"plots/pipe": "a FIFO: not read", "sock": "a socket: not read"}
    assert len(manifest.files) == 3


def test_devices_are_skipped_never_opened(workdir, store):
    try:  # a copy of /dev/zero would stream forever
        os.mknod(workdir / "outputs" / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("creating a device needs CAP_MKNOD")
    manifest = collect(workdir, "outputs", store, LIMITS)
    assert skipped(manifest) == {"zero": "a character device: not read"}


def test_names_that_are_not_utf8_are_skipped_and_shown_escaped(workdir, store):
    outputs = os.fsencode(workdir / "outputs")
    Path(os.fsdecode(outputs + b"/caf\xe9.txt")).write_text("latin-1 name")
    Path(os.fsdecode(outputs + b"/r\xe9sultats")).mkdir()
    Path(os.fsdecode(outputs + b"/r\xe9sultats/a.txt")).write_text("in a latin-1 directory")
    os.symlink(b"/nowhere/\xff", outputs + b"/link")  # a target that is not UTF-8 either
    manifest = collect(workdir, "outputs", store, LIMITS)
    assert skipped(manifest) == {
        "caf\\xe9.txt": "a file name that is not UTF-8: not read",
        "r\\xe9sultats": "a directory name that is not UTF-8: its files were not read",
        "link": "a symlink to /nowhere/\\xff, outside the workspace: not read",
    }
    assert len(manifest.files) == 3
    manifest.model_dump_json()  # text all the way: the database and every report can take it


def test_manifest_of_skips_what_collect_skips(workdir):
    os.symlink("/etc/passwd", workdir / "outputs" / "passwd")
    os.mkfifo(workdir / "outputs" / "pipe")
    manifest = manifest_of(workdir / "outputs")
    assert sorted(manifest.files) == ["copy.json", "metrics.json", "plots/loss.png"]
    assert skipped(manifest) == {
        "passwd": "a symlink to /etc/passwd, outside the workspace: not read",
        "pipe": "a FIFO: not read",
    }


def test_too_many_files(workdir, store):
    for i in range(5):
        (workdir / "outputs" / f"f{i}.txt").write_text(str(i))
    with pytest.raises(OutputsRejected, match=r"'outputs/' holds more than 4 files; the limit is 4"):
        collect(workdir, "outputs", store, OutputLimits(max_files=4, max_bytes=10**9))
    assert blobs(store) == []  # checked before anything is copied


def test_skipped_entries_count_against_the_file_limit(workdir, store):
    for i in range(2):
        os.mkfifo(workdir / "outputs" / f"pipe{i}")  # each would be stored: a million must not flood
    with pytest.raises(OutputsRejected, match=r"holds more than 4 files; the limit is 4"):
        collect(workdir, "outputs", store, OutputLimits(max_files=4, max_bytes=10**9))


def test_too_many_bytes(workdir, store):
    (workdir / "outputs" / "big.bin").write_bytes(b"x" * 3 * 1024**2)
    with pytest.raises(OutputsRejected, match=r"at least 3\.0 MiB \(\d+ bytes\); the limit is 2\.0 MiB"):
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
