"""The composition root: the core with each door's ports plugged in, as `serve`, `worker` and the CLI
run it. The core imports no door (an import-linter contract in pyproject.toml holds it); this is where
they meet."""

from bot.doors import CodeHost, DoorPlugin
from bot.github import plugin as github_plugin
from bot.github.gitauth import git_credentials
from bot.pipeline import Pipeline
from bot.settings import Settings
from bot.slack import plugin as slack_plugin


def _github_host(pipeline: Pipeline) -> CodeHost:
    from bot.github.host import GitHubHost  # PyGithub loads in a worker that starts Slack

    return GitHubHost(pipeline)


# Every door this installation has; each imports its SDK only when a worker starts it.
DOORS: tuple[DoorPlugin, ...] = (github_plugin.PLUGIN, slack_plugin.plugin(code_host=_github_host))


def pipeline(settings: Settings) -> Pipeline:
    """The pipeline with every door plugged in, fetching `owner/name` repositories with GitHub's
    credentials when it has them."""
    return Pipeline(settings, git_credentials=git_credentials, doors=DOORS)
