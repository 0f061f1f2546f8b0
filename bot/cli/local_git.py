"""What the terminal door asks of the repository it is run in: which branch is checked out, which is the
default branch to compare against, and whether it is a git repository at all. Remote repositories (a
URL, `owner/name`) are the pipeline's to fetch; these answers are for local paths."""

import os
import subprocess
import tempfile
from pathlib import Path

from bot.errors import TierbotError

FALLBACK_BASES = ("main", "master")


def _git(repository: str, *args: str) -> str | None:
    done = subprocess.run(["git", "-C", repository, *args], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def require_repository(repository: str) -> None:
    """A local directory must be a git repository: said in plain words, before any git error is."""
    path = Path(repository)
    if path.is_dir() and _git(repository, "rev-parse", "--git-dir") is None:
        raise TierbotError(
            f"{path} is not a git repository. Run tierbot inside one (git init, then commit the "
            "experiment), or name one with --repo PATH, URL or owner/name."
        )


def current_ref(repository: str) -> str:
    """The checked-out branch of a local repository (its commit if detached); HEAD for remote ones."""
    if not Path(repository).is_dir():
        return "HEAD"
    return (
        _git(repository, "symbolic-ref", "--short", "-q", "HEAD")
        or _git(repository, "rev-parse", "HEAD")
        or "HEAD"
    )


def default_base(repository: str) -> str:
    """What a branch is compared against when no --base is given: the repository's default branch, as
    its origin says (origin/HEAD), else `main` or `master`, whichever it has; `main` for remote ones."""
    if not Path(repository).is_dir():
        return "main"
    remote_head = _git(repository, "symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD")
    if remote_head is not None:
        return remote_head.removeprefix("origin/")
    for name in FALLBACK_BASES:
        if _git(repository, "rev-parse", "--verify", "-q", f"refs/heads/{name}") is not None:
            return name
    raise TierbotError(
        f"{repository} has no default branch to compare against (no origin/HEAD, no main, no master). "
        "Say which with --base REF."
    )


def uncommitted(repository: str) -> list[str]:
    """The files a run of the checked-out commit would not see: changed, staged, new (not ignored)."""
    if not Path(repository).is_dir():
        return []
    # Not `_git`: stripping would eat the first entry's leading status column (" M name").
    status = ["git", "-C", repository, "status", "--porcelain=v1", "-z", "--untracked-files=all"]
    fields = iter(subprocess.run(status, capture_output=True, text=True).stdout.split("\0"))
    names = set()
    for entry in fields:
        if len(entry) > 3:
            names.add(entry[3:])
            if entry[0] in "RC":  # a rename or copy: its old name is the next field
                next(fields, None)
    return sorted(names)


def snapshot(repository: str) -> str:
    """A commit of the working tree as it is (ignored files left out), on top of HEAD, kept under a
    private ref (refs/tierbot/snapshots/…) that a push never sends; its sha."""
    with tempfile.TemporaryDirectory() as scratch:
        index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _run(repository, index, "read-tree", "HEAD")
        _run(repository, index, "add", "-A")
        tree = _run(repository, index, "write-tree")
    identity = ["-c", "user.name=tierbot", "-c", "user.email=tierbot@localhost"]
    sha = _run(
        repository, {}, *identity, "commit-tree", tree, "-p", "HEAD", "-m", "tierbot: uncommitted changes"
    )
    _run(repository, {}, "update-ref", f"refs/tierbot/snapshots/{sha}", sha)
    return sha


def _run(repository: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", repository, *args], capture_output=True, text=True, env=os.environ | env
    )
    if done.returncode != 0:
        raise TierbotError(f"Could not snapshot the working tree of {repository}: {done.stderr.strip()}")
    return done.stdout.strip()
