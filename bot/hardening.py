"""What `tierbot serve` and `tierbot worker` do to themselves at start, before anything else runs.

Experiments run beside the bot, on its machine; trusted ones even as its user. So the process that holds
the webhook secret, the tokens and the App's private key closes what a same-user process could read:

- it makes itself non-dumpable: `/proc/PID/environ`, `/proc/PID/mem` and ptrace are then closed to
  processes of the same (non-root) user. That matters because `/proc/PID/environ` shows the environment
  the process was *started* with, whatever it later removes from `os.environ`. Root processes can still
  read it (they could here even without CAP_SYS_PTRACE); untrusted code never runs as root, nor as the
  bot's user (see `bot.backends.sandbox`);
- it removes the secret-bearing variables from `os.environ` once Settings have read them, so that no
  child (git, an experiment, a re-exec) inherits them;
- it creates files for its user alone (umask 077), and its data dir (the database, the report key, every
  run's outputs) as 0700, tightening one that others could read.
"""

import ctypes
import os
import stat
from pathlib import Path

from pydantic import AliasChoices

from bot.backends.process import PRCTL
from bot.errors import TierbotError
from bot.settings import Settings

PR_SET_DUMPABLE = 4


def harden(settings: Settings) -> list[str]:
    """Harden this process (see the module docstring); the warnings for the start-up log."""
    undumpable()
    os.umask(0o077)
    forget_secrets(settings)
    return private_data_dir(settings.data_dir)


def undumpable() -> None:
    """Close /proc/PID/environ and ptrace to same-user processes (Linux; elsewhere there is no prctl)."""
    if PRCTL is not None and PRCTL(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def secret_variables(settings: Settings) -> set[str]:
    """Upper-cased names of the variables that may hold a secret Settings read: every name each set
    `SecretStr` setting is read from (AWS_* too), and TIERBOT_DATABASE_URL when it carries a password."""
    fields = type(settings).model_fields
    names = set()
    for variable in settings.secret_values():
        names.add(variable)
        field = fields.get(variable.removeprefix("TIERBOT_").lower())
        alias = field.validation_alias if field is not None else None
        if isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
    return names


def forget_secrets(settings: Settings) -> None:
    """Remove the secret-bearing variables from this process's environment (read case-insensitively by
    Settings, so removed whatever their case)."""
    secret = secret_variables(settings)
    for name in [name for name in os.environ if name.upper() in secret]:
        del os.environ[name]


def private_data_dir(path: Path) -> list[str]:
    """The data dir, created 0700 or tightened to it; a warning when it was open to others."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return []
    try:
        path.chmod(0o700)
    except OSError as exc:
        raise TierbotError(
            f"The data dir {path} is open to other users (mode {mode:04o}) and tierbot cannot tighten it "
            f"({exc.strerror}): make it 0700 (`chmod 700 {path}`) as its owner."
        ) from None
    return [
        f"The data dir {path} was open to other users (mode {mode:04o}): tightened it to 0700, so that "
        "only its owner can read the database, the report key and the outputs."
    ]
