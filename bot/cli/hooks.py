"""Installing tierbot's git hooks (shipped in `hooks/`) into a repository."""

import shutil
import subprocess
from pathlib import Path

from bot.errors import TierbotError
from bot.resources import resource_dir

MARKER = "tierbot pre-push hook"


def install_pre_push(
    repo: Path, base: str = "main", block_on_fail: bool = False, force: bool = False
) -> Path:
    """Copy hooks/pre-push into the repository's hooks directory (honouring core.hooksPath)."""
    hooks_dir = Path(_git(repo, "rev-parse", "--path-format=absolute", "--git-path", "hooks"))
    target = hooks_dir / "pre-push"
    if target.exists() and MARKER not in target.read_text(errors="replace") and not force:
        raise TierbotError(f"{target} already exists and is not tierbot's; use --force to replace it.")
    hooks_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(resource_dir("hooks") / "pre-push", target)
    target.chmod(0o755)
    _git(repo, "config", "tierbot.base", base)
    _git(repo, "config", "--bool", "tierbot.blockOnFail", "true" if block_on_fail else "false")
    return target


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise TierbotError(f"{repo} is not a git repository (git said: {done.stderr.strip()})")
    return done.stdout.strip()
