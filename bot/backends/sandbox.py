"""Untrusted code on the local backend: as an unprivileged user, in a workspace outside the data dir.

Code from outside the repository (a fork's, once approved) must not reach the bot: not its secrets (its
environment, its `/proc/PID/environ`), not the report key, not the database. Filtering the environment is
not enough when the code runs as the bot's user, who can read all of those. So when tierbot runs as root,
untrusted code runs as `sandbox_user` (default `nobody`), with none of root's groups, in a workspace of
its own under `sandbox_dir`; the data dir is root's alone (0700, see `bot.hardening`). When tierbot does
not run as root it cannot switch users, and untrusted code is refused on local tiers.

A workspace is two directories, both the sandbox user's while the command runs:
- `run-<run id>-<random>`: a copy of the checkout without `.git` (whose alternates and remote name the bot's
  mirror), the command's working directory, where outputs are collected from afterwards;
- the same name + `.scratch`: HOME, TMPDIR and the run's own venv (never shared, see `bot.backends.venv`).

After the command (its whole process group is gone by then), the workspace is locked, root's and 0700,
before the worker reads it: a daemon that left the group can no longer reach it by path. (One that kept
a directory of it open, or its working directory inside, still could: the Docker sandbox, of the Docker
tiers issue, is the way to a boundary without such gaps.) Untrusted runs share one user, so they are not
isolated from each other either.
"""

import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

from bot.backends.process import Account
from bot.errors import TierbotError

# What an untrusted command gets from the worker's environment: nothing that could hold a credential.
_PASSED = ("PATH", "LANG", "LC_ALL", "TZ")


class SandboxUnusable(TierbotError):
    pass


def refusal(euid: int, user: str) -> str | None:
    """Why untrusted code cannot run on the local backend of a process with this effective uid, or None
    when it can (as `user`)."""
    if euid != 0:
        return (
            "code from outside the repository (a fork's) does not run on local tiers while tierbot runs as "
            f"{_name_of(euid)}: it would run as tierbot's own user, who can read tierbot's secrets and "
            "data. Run it on a Docker tier, tierbot's sandbox for untrusted code (once this installation "
            "provides one), or run tierbot as root, which then runs such code as the unprivileged "
            f"TIERBOT_SANDBOX_USER (now {user!r})"
        )
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return (
            f"the sandbox user {user!r} (TIERBOT_SANDBOX_USER) does not exist on this machine, so code from "
            "outside the repository (a fork's) has no unprivileged user to run as"
        )
    if account.pw_uid == 0 or account.pw_gid == 0:
        return f"the sandbox user {user!r} (TIERBOT_SANDBOX_USER) is privileged; it must be an ordinary user"
    return None


def account_of(user: str) -> Account:
    found = pwd.getpwnam(user)
    return Account(name=user, uid=found.pw_uid, gid=found.pw_gid)


def _name_of(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


class Workspace:
    """One untrusted run's two directories (see the module docstring)."""

    def __init__(self, work: Path, account: Account):
        self.work = work
        self.scratch = work.with_name(f"{work.name}.scratch")
        self.account = account

    @classmethod
    def create(cls, root: Path, run_id: int, checkout: Path, account: Account) -> "Workspace":
        """The checkout's files in a new workspace under `root`, handed to `account`."""
        _ensure_root(root, account)
        workspace = cls(Path(tempfile.mkdtemp(prefix=f"run-{run_id}-", dir=root)), account)
        try:
            # Nobody else can create names in root, so the scratch name cannot have been taken.
            workspace.scratch.mkdir(mode=0o700)
            for place in ("home", "tmp"):
                (workspace.scratch / place).mkdir(mode=0o700)
            shutil.copytree(
                checkout,
                workspace.work,
                symlinks=True,
                ignore=shutil.ignore_patterns(".git"),
                dirs_exist_ok=True,
            )
            for top in (workspace.work, workspace.scratch):
                _hand_over(top, account)
        except BaseException:
            workspace.remove()
            raise
        return workspace

    @property
    def venv(self) -> Path:
        return self.scratch / "venv"

    def environment(self) -> dict[str, str]:
        """The command's environment: an allowlist of the worker's, and a home and temp of its own."""
        env = {k: os.environ[k] for k in _PASSED if k in os.environ}
        return env | {"HOME": str(self.scratch / "home"), "TMPDIR": str(self.scratch / "tmp")}

    def inside(self, path: Path, checkout: Path) -> Path:
        """Where a file of the checkout is in this workspace."""
        return self.work / path.relative_to(checkout)

    def lock(self) -> None:
        """Take the workspace back from the sandbox user before its outputs are read, and drop the
        scratch (its venv, home and temp) that only the command needed."""
        os.chown(self.work, 0, 0)  # a directory root created in a root-only parent: no link to follow
        os.chmod(self.work, 0o700)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def remove(self) -> None:
        for top in (self.work, self.scratch):
            shutil.rmtree(top, ignore_errors=True)


def _ensure_root(root: Path, account: Account) -> None:
    """`root` as a directory only root may create names in, which the sandbox user can reach and pass
    through (each workspace in it is private to that user). Anything else there (a link, someone else's
    directory) is refused: in a shared /tmp, another user may have created it first."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        info = root.lstat()
    except OSError as exc:
        raise SandboxUnusable(
            f"the sandbox directory {root} (TIERBOT_SANDBOX_DIR) is unusable: {exc}"
        ) from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
        raise SandboxUnusable(
            f"the sandbox directory {root} (TIERBOT_SANDBOX_DIR) must be a directory of root's that others "
            f"cannot write; it is not (owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)})"
        )
    if stat.S_IMODE(info.st_mode) != 0o711:
        root.chmod(0o711)  # created under umask 077, or left so: the sandbox user must pass through
    closed = next((p for p in root.parents if not _passable(p.stat(), account)), None)
    if closed is not None:  # e.g. inside the data dir, or under /root
        raise SandboxUnusable(
            f"the sandbox directory {root} (TIERBOT_SANDBOX_DIR) is out of {account.name}'s reach: {closed} "
            "is closed to it. Choose one outside tierbot's data dir and home, e.g. under /tmp"
        )


def _passable(info: os.stat_result, account: Account) -> bool:
    """Whether the account may pass through a directory (search permission, by owner, group or other)."""
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == account.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _hand_over(top: Path, account: Account) -> None:
    """Everything under `top` to the account, links themselves rather than what they point to. Nothing of
    the sandbox user's runs yet, so nothing can change the tree under the walk."""
    for folder, dirs, files in os.walk(top):
        for name in dirs + files:
            os.chown(os.path.join(folder, name), account.uid, account.gid, follow_symlinks=False)
    os.chown(top, account.uid, account.gid)
