"""The composition root: the core with each door's ports plugged in, as `serve`, `worker` and the CLI
run it. The core imports no door (an import-linter contract in pyproject.toml holds it); this is where
they meet."""

from bot.github.gitauth import git_credentials
from bot.pipeline import Pipeline
from bot.settings import Settings


def pipeline(settings: Settings) -> Pipeline:
    """The pipeline, fetching `owner/name` repositories with GitHub's credentials when it has them."""
    return Pipeline(settings, git_credentials=git_credentials)
