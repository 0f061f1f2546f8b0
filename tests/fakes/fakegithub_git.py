"""FakeGitHub's git host: repositories fetched over HTTP at `{url}/{owner}/{name}.git`, as from
github.com, from a bare repository on disk (`FakeGitHub.add_git`), with GitHub's rule for private
repositories: HTTP Basic with a token as the password (`x-access-token:<installation token>`, or a
user's token), else 401 with `WWW-Authenticate`. Git's "dumb" HTTP protocol: the files of the bare
repository, its `info/refs` refreshed by `git update-server-info` on every read.
"""

import base64
import re
import subprocess
from pathlib import Path

from .fakegithub_api import Refusal, Reply
from .fakegithub_state import World

GIT_PATH = re.compile(r"^/(?P<owner>[^/]+)/(?P<name>[^/]+)\.git/(?P<rest>.+)$")
CHALLENGE = {"WWW-Authenticate": 'Basic realm="GitHub"'}


def serve_git(world: World, git_dirs: dict[str, Path], path: str, headers: dict) -> Reply | None:
    """The answer to a git fetch's GET, or None when `path` is not a repository's git path."""
    found = GIT_PATH.match(path)
    if found is None:
        return None
    full_name = f"{found['owner']}/{found['name']}"
    repo, directory = world.repo_named(full_name), git_dirs.get(full_name)
    if repo is None or directory is None:
        return Reply(404, b"Repository not found.\n")
    token = _basic_token(world, headers)
    if token is None:
        return Reply(401, b"", CHALLENGE)
    if token.installation_id is not None:
        allowed = repo.installation_id == token.installation_id
    else:
        allowed = not repo.private or repo.roles.get(token.user.login, "none") != "none"
    if not allowed:
        return Reply(404, b"Repository not found.\n")
    if found["rest"] == "info/refs":
        subprocess.run(["git", "-C", str(directory), "update-server-info"], check=True)
    file = (directory / found["rest"]).resolve()
    if not file.is_relative_to(directory.resolve()) or not file.is_file():
        return Reply(404, b"")
    return Reply(200, file.read_bytes())


def _basic_token(world: World, headers: dict):
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        _, _, secret = base64.b64decode(credential).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        raise Refusal(400, "Bad authorization header") from None
    token = world.tokens.get(secret)
    return token if token is not None and token.valid() else None
