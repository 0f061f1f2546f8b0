"""Where experiment code comes from: one bare mirror per repository, and throwaway checkouts of one commit.

A repository is named by a local path, a URL, or `owner/name` (mapped through `TIERBOT_GIT_URL_TEMPLATE`,
else GitHub). Mirrors are fetched with explicit refspecs straight from the URL, so a token in the URL is
never written to disk. Checkouts are `git clone --shared` of the mirror: the experiment gets its own
`.git` (index, refs, new objects) and can run any git command without touching the mirror.
"""

import difflib
import fcntl
import hashlib
import os
import re
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.errors import RefNotFound, RepositoryUnavailable, TierbotError
from bot.request import is_owner_name

FETCH_TIMEOUT = 600.0  # a first fetch of a large repository over the network
LOCAL_TIMEOUT = 120.0  # anything that only reads or writes local repositories
MAX_READ_BYTES = 1024 * 1024  # settings and requirements files read from a commit before it runs
FETCH_DEBOUNCE = 2.0  # one request calls resolve, read and tree; fetch once for all of them
_SCP_LIKE = re.compile(r"^[\w.-]+@[\w.-]+:")  # git@github.com:owner/name.git
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")
# `-c` settings that make git behave the same whatever the host's configuration says.
_CONFIG = [
    "-c",
    "core.hooksPath=/dev/null",  # no hooks from anywhere run in mirrors or checkouts
    "-c",
    "advice.detachedHead=false",
    "-c",
    "gc.autoDetach=false",  # an auto-gc runs under our lock, not after it in the background
    "-c",
    "safe.directory=*",  # mirrors and local repositories may belong to another user
]


def redact(text: str) -> str:
    """Hide `user:token@` in URLs: messages end up in Slack and on GitHub."""
    return _USERINFO.sub("***@", text)


def _git_env() -> dict[str, str]:
    # Inside a git hook (the pre-push door) GIT_DIR and friends point at the user's repository.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    return env | {
        "GIT_TERMINAL_PROMPT": "0",  # a missing credential fails instead of waiting on a terminal
        "GIT_ASKPASS": "true",
        "SSH_ASKPASS": "true",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes",
        "GIT_CONFIG_GLOBAL": "/dev/null",  # the worker's own ~/.gitconfig must not change results
        "LC_ALL": "C",  # stderr is summarized for users; keep it in one language
    }


def _summarize(stderr: str) -> str:
    """git's complaint in one line: its fatal/error lines, else its last words."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    important = [line for line in lines if line.startswith(("fatal:", "error:", "ERROR"))]
    summary = " / ".join(important or lines[-3:]) or "no message from git"
    return redact(summary)[:500]


class CodeCache:
    """Bare mirrors under `mirrors_dir`, checkouts under `worktrees_dir`; safe across processes."""

    def __init__(
        self,
        mirrors_dir: Path,
        worktrees_dir: Path,
        url_template: str | None = None,
        credentials: Callable[[str], str | None] | None = None,
    ):
        """`credentials(repository)`: an HTTP Authorization header for fetching it, or None."""
        self.mirrors_dir = Path(mirrors_dir)
        self.worktrees_dir = Path(worktrees_dir)
        self.url_template = url_template
        self.credentials = credentials
        self._fetched: dict[Path, float] = {}
        self._fetched_lock = threading.Lock()

    # -- naming ---------------------------------------------------------------------------------------

    def url_for(self, repository: str) -> str:
        if "://" in repository or _SCP_LIKE.match(repository):
            return repository
        if is_owner_name(repository):  # never a path, even where a directory of that name exists
            owner, name = repository.split("/")
            template = self.url_template or "https://github.com/{full_name}.git"
            return template.format(full_name=repository, owner=owner, name=name)
        return str(Path(repository).expanduser().resolve())  # the CLI's local repositories

    def mirror_of(self, repository: str) -> Path:
        """A stable directory per repository: the same URL with a rotated token maps to the same mirror."""
        url = _USERINFO.sub("", self.url_for(repository))
        path = url.split("://")[-1].removesuffix("/").removesuffix(".git")
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", path).strip("-.")[-60:] or "repo"
        digest = hashlib.sha256(url.encode()).hexdigest()[:10]
        return self.mirrors_dir / f"{slug}-{digest}.git"

    # -- mirror ---------------------------------------------------------------------------------------

    def fetch(self, repository: str) -> Path:
        """Bring the mirror up to date with the repository's branches and tags; returns the mirror."""
        return self._refresh(repository)[0]

    def _refresh(self, repository: str, force: bool = False) -> tuple[Path, bool]:
        """(mirror, whether it was fetched now): unless forced, a fetch less than 2 s old is enough."""
        mirror = self.mirror_of(repository)
        with self._fetched_lock:
            last = self._fetched.get(mirror)
        if not force and last is not None and time.monotonic() - last < FETCH_DEBOUNCE:
            return mirror, False
        url = self.url_for(repository)
        with self._locked(mirror):
            fresh = not (mirror / "HEAD").exists()
            if fresh:
                self._git(["init", "--quiet", "--bare", str(mirror)], repository)
            done = self._run_remote(
                repository,
                [
                    "-C",
                    str(mirror),
                    "fetch",
                    "--quiet",
                    "--prune",
                    "--no-tags",
                    url,
                    "+refs/heads/*:refs/heads/*",
                    "+refs/tags/*:refs/tags/*",
                ],
                FETCH_TIMEOUT,
            )
            if done.returncode != 0:
                if fresh:  # don't leave an empty mirror of a repository that does not exist
                    shutil.rmtree(mirror, ignore_errors=True)
                raise RepositoryUnavailable(f"Cannot fetch {redact(url)}: {_summarize(done.stderr)}")
        with self._fetched_lock:
            self._fetched[mirror] = time.monotonic()
        return mirror, True

    def _fetch_commit(self, repository: str, sha: str) -> None:
        """A commit no branch or tag reaches (a fork PR's head): ask for it by name and keep a ref to it."""
        mirror = self.mirror_of(repository)
        with self._locked(mirror):
            self._run_remote(
                repository,
                [
                    "-C",
                    str(mirror),
                    "fetch",
                    "--quiet",
                    "--no-tags",
                    self.url_for(repository),
                    f"+{sha}:refs/tierbot/commits/{sha}",
                ],
                FETCH_TIMEOUT,
            )

    # -- questions about commits ----------------------------------------------------------------------

    def resolve(self, repository: str, ref: str) -> str:
        """The full sha of a branch, tag, (abbreviated) commit or HEAD; branches win over same-named tags."""
        mirror, fetched = self._refresh(repository)
        wanted = self._remote_head(repository) if ref == "HEAD" else ref
        sha = self._lookup(mirror, wanted)
        if sha is None and not fetched:  # a branch pushed since the last (recent) fetch deserves a fetch
            self._refresh(repository, force=True)
            sha = self._lookup(mirror, wanted)
        if sha is None and _FULL_SHA.match(wanted):
            self._fetch_commit(repository, wanted)
            sha = self._lookup(mirror, wanted)
        if sha is None:
            raise self._not_found(repository, mirror, ref)
        return sha

    def _remote_head(self, repository: str) -> str:
        """The commit the repository's HEAD names: its default branch, or a local clone's checkout."""
        done = self._run_remote(repository, ["ls-remote", "--symref", self.url_for(repository), "HEAD"])
        if done.returncode != 0:
            summary = _summarize(done.stderr)
            raise RepositoryUnavailable(f"Cannot read HEAD of {redact(repository)}: {summary}")
        for line in done.stdout.splitlines():
            if line.endswith("\tHEAD") and not line.startswith("ref:"):
                return line.split("\t")[0]
        raise RefNotFound(
            f"{redact(repository)} has no commit at HEAD (its default branch is empty); name a branch."
        )

    def merge_base(self, repository: str, a: str, b: str) -> str:
        mirror, _ = self._refresh(repository)
        shas = [self._lookup(mirror, ref) or self.resolve(repository, ref) for ref in (a, b)]
        done = self._run(["-C", str(mirror), "merge-base", *shas], LOCAL_TIMEOUT)
        if done.returncode != 0:
            raise TierbotError(
                f"{a} and {b} have no common ancestor in {redact(repository)}, so there is no "
                f"baseline to compare against."
            )
        return done.stdout.strip()

    def tree(self, repository: str, sha: str) -> str:
        commit = self.resolve(repository, sha)
        mirror = self.mirror_of(repository)
        return self._git(["-C", str(mirror), "rev-parse", f"{commit}^{{tree}}"], repository).strip()

    def read(self, repository: str, sha: str, path: str) -> str | None:
        """A file's text at a commit, or None when the commit has no such file. Its size is asked first:
        a fork's commit may hold a gigabyte where a few KiB of settings belong."""
        mirror, _ = self._refresh(repository)
        commit = self._lookup(mirror, sha) or self.resolve(repository, sha)  # unknown commit: RefNotFound
        blob = f"{commit}:{path}"
        sized = self._run(["-C", str(mirror), "cat-file", "-s", blob], LOCAL_TIMEOUT)
        if sized.returncode != 0:
            return None
        if int(sized.stdout) > MAX_READ_BYTES:
            raise TierbotError(
                f"{path} at {commit[:7]} is {int(sized.stdout):,} bytes; tierbot reads files of up to "
                f"{MAX_READ_BYTES:,} bytes from a commit before it runs."
            )
        done = self._run(["-C", str(mirror), "cat-file", "blob", blob], LOCAL_TIMEOUT, text=False)
        return done.stdout.decode("utf-8", errors="replace") if done.returncode == 0 else None

    def own_commit(self, repository: str, sha: str) -> bool:
        """Whether the commit is the repository's own: for a GitHub repository, reachable from one of its
        branches (as last fetched; a fork's commit, fetched by its sha for its pull request, is not); a
        local repository is the CLI user's own, since no other door reaches one."""
        if not is_owner_name(repository):
            return True
        mirror = self.mirror_of(repository)
        args = ["-C", str(mirror), "for-each-ref", "--count=1", f"--contains={sha}", "refs/heads"]
        return bool(self._git(args, repository).strip())

    def branches(self, repository: str) -> list[str]:
        return self._branches(self._refresh(repository)[0])

    # -- checkouts ------------------------------------------------------------------------------------

    def checkout(self, repository: str, sha: str, dest: Path) -> Path:
        """A fresh directory with exactly the files of `sha` (and a private `.git`), replacing `dest`."""
        mirror = self.mirror_of(repository)
        commit = self._lookup(mirror, sha) if (mirror / "HEAD").exists() else None  # no fetch if known
        if commit is None:  # another host's worker, or a commit pushed since: fetch before giving up
            commit = self.resolve(repository, sha)
        dest = Path(dest)
        self.remove(dest)  # a previous attempt that crashed may have left it half-written
        dest.parent.mkdir(parents=True, exist_ok=True)
        # --shared borrows the mirror's objects read-only (alternates); the clone's writes stay its own.
        self._git(["clone", "--quiet", "--shared", "--no-checkout", str(mirror), str(dest)], repository)
        self._git(["-C", str(dest), "checkout", "--quiet", "--detach", commit], repository)
        return dest

    def remove(self, dest: Path) -> None:
        dest = Path(dest)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest, onerror=_make_writable_and_retry)

    # -- plumbing -------------------------------------------------------------------------------------

    def _lookup(self, mirror: Path, ref: str) -> str | None:
        """The commit `ref` names in the mirror, trying branch, tag, then anything git understands."""
        if not ref or ref.startswith("-") or any(c.isspace() or ord(c) < 32 for c in ref):
            return None  # never let a ref be read as an option or break cat-file's line protocol
        if ref == "HEAD":
            return None  # the mirror's own HEAD means nothing; resolve asks the repository
        candidates = [f"refs/heads/{ref}^{{commit}}", f"refs/tags/{ref}^{{commit}}", f"{ref}^{{commit}}"]
        # One process answers all three: cat-file prints "<sha> commit <size>" or "<name> missing".
        done = self._run(
            ["-C", str(mirror), "cat-file", "--batch-check"],
            LOCAL_TIMEOUT,
            stdin="".join(c + "\n" for c in candidates),
        )
        for line in done.stdout.splitlines():
            fields = line.split()
            if len(fields) == 3 and fields[1] == "commit":
                return fields[0]
        return None

    def _branches(self, mirror: Path) -> list[str]:
        done = self._run(
            ["-C", str(mirror), "for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads"], LOCAL_TIMEOUT
        )
        return sorted(done.stdout.split())

    def _not_found(self, repository: str, mirror: Path, ref: str) -> RefNotFound:
        branches = self._branches(mirror)
        close = difflib.get_close_matches(ref, branches, n=3, cutoff=0.6)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(branches[:10]) + (f" and {len(branches) - 10} more" if len(branches) > 10 else "")
        listing = f" Branches: {shown}." if branches else " It has no branches."
        return RefNotFound(
            f"There is no branch, tag or commit {ref!r} in {redact(repository)}.{hint}{listing}"
        )

    @contextmanager
    def _locked(self, mirror: Path) -> Iterator[None]:
        """Exclusive per-mirror lock across processes: fetches and gc must not interleave."""
        self.mirrors_dir.mkdir(parents=True, exist_ok=True)
        with open(mirror.with_name(mirror.name + ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _git(self, args: list[str], repository: str) -> str:
        done = self._run(args, LOCAL_TIMEOUT)
        if done.returncode != 0:
            command = args[2] if args[0] == "-C" else args[0]
            raise RepositoryUnavailable(
                f"git {command} failed for {redact(repository)}: {_summarize(done.stderr)}"
            )
        return done.stdout

    def _run_remote(
        self, repository: str, args: list[str], timeout: float = FETCH_TIMEOUT
    ) -> subprocess.CompletedProcess:
        """A git command that talks to the repository's server, with its credentials if it has any. They
        travel in the environment (GIT_CONFIG_*), never on the command line, which other users can see."""
        header = self.credentials(repository) if self.credentials else None
        extra = {}
        if header is not None:
            extra = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader"}
            extra["GIT_CONFIG_VALUE_0"] = header
        return self._run(args, timeout, extra_env=extra)

    @staticmethod
    def _run(
        args: list[str],
        timeout: float,
        text: bool = True,
        stdin: str | None = None,
        extra_env: dict | None = None,
    ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                ["git", *_CONFIG, *args],
                capture_output=True,
                text=text,
                timeout=timeout,
                env=_git_env() | (extra_env or {}),
                input=stdin,
                stdin=subprocess.DEVNULL if stdin is None else None,
            )
        except subprocess.TimeoutExpired:
            raise RepositoryUnavailable(
                f"git {redact(' '.join(a for a in args if not a.startswith('-')))[:200]} "
                f"took more than {timeout:.0f}s and was stopped"
            ) from None


def _make_writable_and_retry(function: Callable[[str], object], path: str, _exc_info: object) -> None:
    """Experiments leave read-only directories (caches, `chmod -w`); rmtree needs write permission."""
    os.chmod(os.path.dirname(path), stat.S_IRWXU)
    if os.path.isdir(path) and not os.path.islink(path):
        os.chmod(path, stat.S_IRWXU)
    function(path)
