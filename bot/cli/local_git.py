"""What the terminal door asks of the repository it is run in: which branch is checked out, which is the
default branch to compare against, and whether it is a git repository at all. Remote repositories (a
URL, `owner/name`) are the pipeline's to fetch; these answers are for local paths."""

import subprocess
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
