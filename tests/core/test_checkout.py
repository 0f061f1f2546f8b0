"""CodeCache against real git repositories in tmp_path: mirrors, refs, file reads and isolated checkouts."""

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bot.checkout import CodeCache, redact
from bot.errors import RefNotFound, RepositoryUnavailable, TierbotError


def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false"]
    command = ["git", "-C", str(repo), *identity, *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for name, content in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> dict:
    """main (two commits, tag v1 on the first) and `feature` branching off the first commit."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    first = commit(path, {"train.py": "print('v1')\n", "data/a.txt": "a\n"}, "first")
    git(path, "tag", "-a", "v1", "-m", "release 1")  # annotated: resolve must peel it to the commit
    second = commit(path, {"train.py": "print('v2')\n"}, "second")
    git(path, "checkout", "-q", "-b", "feature", first)
    feature = commit(path, {"feature.txt": "new\n"}, "feature")
    git(path, "checkout", "-q", "main")
    return {"path": path, "first": first, "second": second, "feature": feature}


@pytest.fixture
def cache(tmp_path: Path) -> CodeCache:
    return CodeCache(tmp_path / "mirrors", tmp_path / "worktrees")


def test_resolve_branch_tag_and_shas(cache, repo):
    r = str(repo["path"])
    assert cache.resolve(r, "main") == repo["second"]
    assert cache.resolve(r, "feature") == repo["feature"]
    assert cache.resolve(r, "v1") == repo["first"]  # the tag object is peeled to its commit
    assert cache.resolve(r, repo["first"][:7]) == repo["first"]
    assert cache.resolve(r, repo["second"]) == repo["second"]
    assert cache.resolve(r, "refs/heads/feature") == repo["feature"]
    assert cache.branches(r) == ["feature", "main"]


def test_unknown_ref_suggests_close_branches(cache, repo):
    with pytest.raises(RefNotFound) as caught:
        cache.resolve(str(repo["path"]), "featur")
    message = str(caught.value)
    assert "'featur'" in message and str(repo["path"]) in message
    assert "Did you mean 'feature'?" in message and "Branches: feature, main." in message
    with pytest.raises(RefNotFound):
        cache.resolve(str(repo["path"]), "--upload-pack=touch pwned")  # never read as an option


def test_a_branch_pushed_just_after_a_fetch_is_found(cache, repo):
    r = str(repo["path"])
    cache.resolve(r, "main")
    git(repo["path"], "branch", "late", repo["first"])
    assert cache.resolve(r, "late") == repo["first"]  # the miss forces a fetch despite the debounce


def test_merge_base_tree_and_read(cache, repo):
    r = str(repo["path"])
    assert cache.merge_base(r, "main", "feature") == repo["first"]
    assert cache.tree(r, repo["first"]) == git(repo["path"], "rev-parse", f"{repo['first']}^{{tree}}")
    assert cache.read(r, repo["first"], "train.py") == "print('v1')\n"
    assert cache.read(r, repo["second"], "train.py") == "print('v2')\n"
    assert cache.read(r, repo["second"], "feature.txt") is None
    assert cache.read(r, repo["second"], "data") is None  # a directory is not a file
    with pytest.raises(RefNotFound):
        cache.read(r, "0" * 40, "train.py")


def test_a_file_too_large_to_be_settings_is_refused_before_it_is_read(cache, repo):
    huge = commit(repo["path"], {"tierbot.yaml": "# padding\n" * 200_000}, "two megabytes of settings")
    with pytest.raises(
        TierbotError, match=r"tierbot.yaml at \w{7} is 2,000,000 bytes; tierbot reads files of up"
    ):
        cache.read(str(repo["path"]), huge, "tierbot.yaml")


def test_checkout_is_isolated_from_the_mirror(cache, repo, tmp_path):
    r = str(repo["path"])
    mirror = cache.fetch(r)
    refs_before = git(mirror, "for-each-ref")
    dest = cache.checkout(r, repo["first"], tmp_path / "worktrees" / "run-1")
    assert (dest / "train.py").read_text() == "print('v1')\n"
    assert (dest / "data" / "a.txt").read_text() == "a\n"
    assert not (dest / "feature.txt").exists()
    assert git(dest, "rev-parse", "HEAD") == repo["first"]
    # The experiment scribbles and even commits and moves branches: the mirror must not notice.
    (dest / "train.py").write_text("tampered\n")
    commit(dest, {"model.bin": "weights"}, "experiment commits")
    git(dest, "branch", "-f", "main", "HEAD")
    git(dest, "gc", "--quiet", "--prune=now")
    assert git(mirror, "for-each-ref") == refs_before
    assert git(mirror, "fsck", "--no-progress") == ""
    assert cache.read(r, repo["first"], "train.py") == "print('v1')\n"
    cache.remove(dest)
    assert not dest.exists()


def test_checkout_replaces_a_crashed_attempt(cache, repo, tmp_path):
    dest = tmp_path / "worktrees" / "run-2"
    (dest / "junk").mkdir(parents=True)
    (dest / "junk" / "left-over").write_text("from a crash")
    (dest / "junk").chmod(0o500)  # read-only leftovers must not stop the cleanup
    cache.checkout(str(repo["path"]), "feature", dest)
    assert sorted(p.name for p in dest.iterdir()) == [".git", "data", "feature.txt", "train.py"]
    cache.remove(dest)
    cache.remove(dest)  # removing twice is fine
    assert not dest.exists()


def test_checkout_of_a_commit_pushed_after_the_last_fetch(cache, repo, tmp_path):
    r = str(repo["path"])
    cache.fetch(r)
    newer = commit(repo["path"], {"train.py": "print('v3')\n"}, "third")
    dest = cache.checkout(r, newer, tmp_path / "worktrees" / "run-3")
    assert (dest / "train.py").read_text() == "print('v3')\n"


def test_concurrent_checkouts_of_two_shas(repo, tmp_path):
    r = str(repo["path"])
    # Separate caches, as in separate worker processes: no shared in-memory state, one mirror on disk.
    caches = [CodeCache(tmp_path / "mirrors", tmp_path / "worktrees") for _ in range(4)]
    jobs = [
        (caches[i], repo["first"] if i % 2 else repo["second"], tmp_path / "worktrees" / f"c{i}")
        for i in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda job: job[0].checkout(r, job[1], job[2]), jobs))
    for (_, sha, _), dest in zip(jobs, done, strict=True):
        assert git(dest, "rev-parse", "HEAD") == sha
        expected = "print('v1')\n" if sha == repo["first"] else "print('v2')\n"
        assert (dest / "train.py").read_text() == expected
    assert len(list((tmp_path / "mirrors").glob("*.git"))) == 1


def test_url_template_maps_owner_name_to_a_bare_repository(repo, tmp_path):
    bare = tmp_path / "srv" / "acme" / "iris.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(repo["path"]), str(bare)], check=True)
    cache = CodeCache(
        tmp_path / "mirrors", tmp_path / "worktrees", f"file://{tmp_path}/srv/{{full_name}}.git"
    )
    assert cache.url_for("acme/iris") == f"file://{bare}"
    assert cache.resolve("acme/iris", "feature") == repo["feature"]
    assert cache.read("acme/iris", "v1", "train.py") == "print('v1')\n"
    with pytest.raises(RepositoryUnavailable, match="acme/missing"):
        cache.resolve("acme/missing", "main")


def test_url_for_each_kind_of_name(cache, repo):
    assert cache.url_for(str(repo["path"])) == str(repo["path"].resolve())
    assert cache.url_for("https://example.com/a/b.git") == "https://example.com/a/b.git"
    assert cache.url_for("git@github.com:acme/iris.git") == "git@github.com:acme/iris.git"
    assert cache.url_for("acme/iris") == "https://github.com/acme/iris.git"
    custom = CodeCache(Path("m"), Path("w"), "https://ghe.example/{owner}/{name}.git")
    assert custom.url_for("acme/iris") == "https://ghe.example/acme/iris.git"
    assert custom.url_for("https://other.example/x.git") == "https://other.example/x.git"  # only owner/name


def test_a_rotated_token_keeps_the_same_mirror(cache):
    assert cache.mirror_of("https://x:tok1@github.com/a/b.git") == cache.mirror_of(
        "https://x:tok2@github.com/a/b.git"
    )
    assert cache.mirror_of("https://github.com/a/b.git") != cache.mirror_of("https://github.com/a/c.git")


def test_missing_repository_is_unavailable(cache, tmp_path):
    with pytest.raises(RepositoryUnavailable, match="does not appear to be a git repository"):
        cache.resolve(str(tmp_path / "nowhere"), "main")
    assert not list((tmp_path / "mirrors").glob("*.git"))  # no empty mirror left behind


def test_credentials_never_appear_in_errors(cache):
    with pytest.raises(RepositoryUnavailable) as caught:
        cache.resolve("https://x-access-token:s3cr3t@127.0.0.1:9/acme/iris.git", "main")
    assert "s3cr3t" not in str(caught.value) and "***@127.0.0.1" in str(caught.value)
    assert redact("fatal: https://u:p@h/x and http://t@h/y") == "fatal: https://***@h/x and http://***@h/y"


def test_head_is_the_repositorys_own_head(cache, repo):
    r = str(repo["path"])
    assert cache.resolve(r, "HEAD") == repo["second"]  # the source's HEAD, not the mirror's
    git(repo["path"], "checkout", "-q", "--detach", repo["first"])
    detached = commit(repo["path"], {"scratch.txt": "on no branch\n"}, "detached")
    assert cache.resolve(r, "HEAD") == detached  # a commit no branch reaches is fetched by its sha
    assert cache.read(r, detached, "scratch.txt") == "on no branch\n"
