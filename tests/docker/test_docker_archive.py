"""Extracting a container's workdir from hostile tar streams: what the engine would hand over if the
experiment made the worst names, links and sizes it could. No engine needed: the streams are made here,
as the engine makes them (chunks of one tar, the workdir under `work/`)."""

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.backends.docker_archive import ExtractLimits, code_archive, extract_workdir
from bot.backends.process import LogSink
from bot.errors import OutputsRejected


def tar_chunks(members: list[tuple[tarfile.TarInfo, bytes | None]], chunk: int = 700) -> Iterator[bytes]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buffer.getvalue()
    for start in range(0, len(raw), chunk):  # chunk boundaries fall anywhere, as the engine's do
        yield raw[start : start + chunk]


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **fields) -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = fields.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data if kind == tarfile.REGTYPE else None


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[LogSink]:
    with LogSink(tmp_path / "run.log", 10**6, lambda _line: None) as log:
        yield log


def everything_under(root: Path) -> set[str]:
    return {
        str(Path(folder, name).relative_to(root))
        for folder, dirs, files in os.walk(root)
        for name in dirs + files
    }


def test_hostile_names_links_and_modes_stay_inside(tmp_path, sink):
    victim = tmp_path / "victim"
    victim.mkdir()
    members = [
        entry("work", tarfile.DIRTYPE),
        entry("work/out", tarfile.DIRTYPE),
        entry("work/out/ok.txt", data=b"fine"),
        entry("../escape.txt (a name outside the workdir)", data=b"out"),
        entry("/abs.txt", data=b"abs"),
        entry("work/out/etc", tarfile.SYMTYPE, linkname="/etc"),
        entry("work/out/up", tarfile.SYMTYPE, linkname="../../victim"),
        entry("work/out/up/owned.txt", data=b"through the link?"),  # a later member through a link out
        entry("work/out/alias", tarfile.SYMTYPE, linkname="ok.txt"),
        entry("work/out/hard", tarfile.LNKTYPE, linkname="/etc/passwd"),
        entry("work/out/fifo", tarfile.FIFOTYPE),
        entry("work/out/setuid", data=b"#!/bin/sh\n", mode=0o4777),
    ]
    dest = extract_workdir(tar_chunks(members), tmp_path / "containers", 7, ExtractLimits(100, 10**6), sink)
    assert dest.parent == tmp_path / "containers" and dest.name.startswith("run-7-")
    assert everything_under(victim) == set() and not (tmp_path / "escape.txt").exists()
    assert not Path("/abs.txt").exists()
    out = dest / "out"
    assert (out / "ok.txt").read_bytes() == b"fine" and os.readlink(out / "alias") == "ok.txt"
    assert os.readlink(out / "etc") == "/etc"  # kept as a link, for collect() to list as not read
    assert (out / "up").is_dir() and not (out / "up").is_symlink()  # the member that came first wins
    assert not (out / "hard").exists() and not (out / "fifo").exists()
    assert (out / "setuid").stat().st_mode & 0o7777 == 0o755  # set-id and group/other write bits gone
    log = (tmp_path / "run.log").read_text()
    for refused in (
        "../escape.txt (a name outside the workdir)",
        "/abs.txt (outside the workdir)",
        "out/hard (a hard link",
        "out/fifo (a device or a pipe)",
    ):
        assert f"[tierbot: not copied out of the container: {refused}" in log


def test_too_many_entries_or_bytes_fail_and_leave_nothing(tmp_path, sink):
    parent = tmp_path / "containers"
    many = [entry("work", tarfile.DIRTYPE)] + [entry(f"work/f{i}", data=b"x") for i in range(10)]
    with pytest.raises(OutputsRejected, match="holds more than 5 entries"):
        extract_workdir(tar_chunks(many), parent, 1, ExtractLimits(5, 10**6), sink)
    big = [entry("work", tarfile.DIRTYPE), entry("work/big", data=b"0" * 5000)]
    with pytest.raises(OutputsRejected, match=r"holds more than 1000 B"):
        extract_workdir(tar_chunks(big), parent, 2, ExtractLimits(5, 1000), sink)
    assert list(parent.iterdir()) == []


def test_the_raw_stream_is_bounded_too(tmp_path, sink):
    # A PAX header (a long name) is read whole before any limit on entries can see it.
    long_name = entry("work/" + "n" * 300_000, data=b"")
    with pytest.raises(OutputsRejected, match="is larger than"):
        extract_workdir(tar_chunks([long_name]), tmp_path / "containers", 3, ExtractLimits(1, 0), sink)


def test_the_code_goes_in_without_git_owned_by_nobody(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / ".git").mkdir(parents=True)
    (checkout / ".git" / "config").write_text("[remote] url = file:///srv/mirrors/secret.git\n")
    (checkout / "src").mkdir()
    (checkout / "src" / "train.py").write_text("print(1)\n")
    (checkout / "run.sh").write_text("#!/bin/sh\n")
    (checkout / "run.sh").chmod(0o555)
    os.symlink("src/train.py", checkout / "link.py")
    code = code_archive(checkout)
    with tarfile.open(fileobj=code.file) as archive:
        members = {m.name: m for m in archive.getmembers()}
    assert set(members) == {"work", "work/src", "work/src/train.py", "work/run.sh", "work/link.py"}
    assert {(m.uid, m.gid) for m in members.values()} == {(65534, 65534)}
    assert members["work/run.sh"].mode == 0o755 and members["work/link.py"].linkname == "src/train.py"
    assert (code.files, code.bytes) == (5, len("print(1)\n") + len("#!/bin/sh\n"))
