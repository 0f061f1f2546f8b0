"""Shared fixtures: settings in a temporary data dir, real git repositories, real databases; and, through
`pytest_plugins`, each door's harness (tests/fakes/): the running bot, the fake servers it talks to, and
ways to talk to it as GitHub, Slack or a terminal would."""

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.store import Database

pytest_plugins = [
    "tests.fakes.github_bot",
    "tests.fakes.slack_bot",
    "tests.fakes.cli",
    "tests.fakes.local_backend",
    "tests.fakes.moto_s3",
    "tests.fakes.moto_aws",
]
pytest.register_assert_rewrite("tests.golden")  # check_golden's failures show the diff, as in a test

PG_ADMIN_URL = os.environ.get(
    "TIERBOT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

SIMPLE_SPEC = """\
name: simple
run:
  command: python make.py
  outputs: out
compare:
  metrics:
    - file: metrics.json
      metrics:
        accuracy: {direction: higher, max_regression: 0.05}
"""

SIMPLE_SCRIPT = """\
import json, os, pathlib
out = pathlib.Path("out"); out.mkdir(exist_ok=True)
acc = float(open("accuracy.txt").read())
(out / "metrics.json").write_text(json.dumps({"accuracy": acc}))
(out / "notes.txt").write_text("accuracy is %s\\n" % acc)
print("done, accuracy", acc)
"""


class GitRepo:
    """A real repository on disk, committed through the git binary."""

    def __init__(self, path: Path):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        identity = [
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ]
        done = subprocess.run(
            ["git", "-C", str(self.path), *identity, *args], check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    def write(self, files: dict[str, str]) -> None:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)

    def commit(self, files: dict[str, str], message: str = "change") -> str:
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")

    def branch(self, name: str) -> None:
        self.git("checkout", "-q", "-B", name)

    def __str__(self) -> str:
        return str(self.path)


def write_tree(root: Path, files: dict[str, str | bytes]) -> None:
    """Files (text or bytes) by relative path under root."""
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode())


def compare_trees(tmp_path: Path, base: dict, head: dict, spec: dict | None = None, options=None):
    """Write main's and the branch's outputs under tmp_path and compare them with the real engine."""
    from bot.compare import compare_outputs
    from bot.outputs import manifest_of
    from bot.spec import CompareSection

    write_tree(tmp_path / "base", base)
    write_tree(tmp_path / "head", head)
    return compare_outputs(
        manifest_of(tmp_path / "base"),
        manifest_of(tmp_path / "head"),
        lambda entry: tmp_path / "base" / entry.path,
        lambda entry: tmp_path / "head" / entry.path,
        CompareSection.model_validate(spec or {}),
        options,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        lease_seconds=3,
        poll_seconds=0.05,
        tiers_file=None,
        git_url_template=None,
        database_url=None,
    )


@pytest.fixture
def simple_repo(tmp_path: Path) -> GitRepo:
    """main with accuracy 0.90; branch `better` (0.95) and `worse` (0.80) off it."""
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"tierbot.yaml": SIMPLE_SPEC, "make.py": SIMPLE_SCRIPT, "accuracy.txt": "0.90"}, "main")
    for branch, accuracy in (("better", "0.95"), ("worse", "0.80")):
        repo.branch(branch)
        repo.commit({"accuracy.txt": accuracy}, branch)
        repo.git("checkout", "-q", "main")
    return repo


@pytest.fixture
def hosted(tmp_path: Path, simple_repo: GitRepo) -> str:
    """simple_repo published as the bare repository acme/models."""
    bare = tmp_path / "git" / "acme" / "models.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(simple_repo.path), str(bare)], check=True)
    return str(bare)


def push_branch(repo: GitRepo, hosted_path: str, branch: str, files: dict[str, str]) -> str:
    """`branch` made afresh off main with these files, pushed (forced) to `hosted_path`; its commit."""
    repo.git("checkout", "-q", "-B", branch, "main")
    sha = repo.commit(files, branch)
    repo.git("push", "-q", "-f", hosted_path, branch)
    repo.git("checkout", "-q", "main")
    return sha


def better_against_main(pipeline, repo: GitRepo):
    """`simple_repo`'s branch `better` compared with main end to end, a worker in this process taking
    everything there is: the comparison (judged as SIMPLE_SPEC says: accuracy 0.9 → 0.95, better) and
    the branch's run."""
    from bot.request import RunRequest
    from bot.worker import Worker

    submission = pipeline.submit(RunRequest(repository=str(repo), ref="better", base="main"))
    worker = Worker(pipeline)
    while worker.run_once():
        pass
    comparison = pipeline.comparison(submission.comparison.id)
    assert comparison.state == "done", comparison.reason
    metric = next(m for m in comparison.result["metrics"] if m["name"] == "accuracy")
    assert (metric["base"], metric["head"], metric["assessment"]) == (0.9, 0.95, "better")
    return comparison, pipeline.run(submission.head.id)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        connection = admin.connect()
    except sqlalchemy.exc.OperationalError as exc:
        if os.environ.get("TIERBOT_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"PostgreSQL is not reachable ({exc.orig}); CI requires it")
    name = f"tierbot_test_{uuid.uuid4().hex[:10]}"
    connection.exec_driver_sql(f"CREATE DATABASE {name}")
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    connection.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
    connection.close()
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request, tmp_path: Path) -> Iterator[Database]:
    """A fresh database of each kind."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'q.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    yield database
    database.dispose()
