"""What the terminal door asks of a local repository (`bot.cli.local_git`), on real git repositories."""

import subprocess
from pathlib import Path

import pytest

from bot.cli.local_git import current_ref, default_base, require_repository
from bot.errors import TierbotError

from ..conftest import GitRepo


def test_the_default_base_is_origins_default_branch_else_main_else_master(tmp_path: Path):
    repo = GitRepo(tmp_path / "repo")  # its first branch is main
    repo.commit({"a.txt": "1"})
    assert default_base(str(repo.path)) == "main"
    repo.git("branch", "-m", "main", "master")
    assert default_base(str(repo.path)) == "master"
    upstream = tmp_path / "upstream.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(upstream)], check=True)
    subprocess.run(["git", "-C", str(upstream), "symbolic-ref", "HEAD", "refs/heads/master"], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(upstream), str(clone)], check=True)
    subprocess.run(["git", "-C", str(upstream), "branch", "trunk", "master"], check=True)
    subprocess.run(["git", "-C", str(clone), "remote", "set-head", "origin", "--auto"], check=True)
    assert default_base(str(clone)) == "master"  # what origin says, not a guess
    assert default_base("acme/models") == "main"  # a remote repository: the pipeline's to fetch


def test_without_any_default_branch_the_user_is_told_to_say_which(tmp_path: Path):
    repo = GitRepo(tmp_path / "repo")
    repo.git("checkout", "-q", "-b", "trunk")
    repo.commit({"a.txt": "1"})
    assert repo.git("branch", "--list", "main", "master") == ""  # main never had a commit
    with pytest.raises(TierbotError, match="no default branch to compare against .* --base REF"):
        default_base(str(repo.path))


def test_a_directory_that_is_not_a_repository_is_said_plainly(tmp_path: Path):
    with pytest.raises(TierbotError, match=f"^{tmp_path} is not a git repository"):
        require_repository(str(tmp_path))
    require_repository("acme/models")  # not a local directory: nothing to say here
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"a.txt": "1"})
    require_repository(str(repo.path))
    assert current_ref(str(repo.path)) == "main"
    repo.git("checkout", "-q", "--detach")
    assert current_ref(str(repo.path)) == repo.git("rev-parse", "HEAD")
