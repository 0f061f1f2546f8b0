"""Hostile or odd outputs. On the wire: an experiment whose branch leaves links out of the workspace, a
FIFO, dangling links, names full of markup and control characters, an empty file and Latin-1 text; the
run must not fail, the comparison must reach the pull request with every skipped entry listed and every
name escaped, and the bot must stay healthy (SQLite and PostgreSQL). Then the engine's verdict beside
skipped entries, and each format's escaping pinned by golden files (tests/golden/hostile.*)."""

import io
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select

from bot.compare import Comparison, FileChange, FileProblem, TextDiff, compare_outputs
from bot.outputs import manifest_of
from bot.render.html import render_html
from bot.render.markdown import render_markdown
from bot.render.slack import render_slack
from bot.render.terminal import render_terminal
from bot.spec import CompareSection
from bot.store import ComparisonRecord

from ..conftest import SIMPLE_SPEC, GitRepo, write_tree
from ..fakes.fakegithub import FakeGitHub
from ..fakes.github_bot import REPO, make_bot, open_pull, pull_request, settle, sha_of, without_code
from ..golden import check_golden
from ..golden.comparisons import CONTEXT

SPEC = SIMPLE_SPEC.replace("name: simple", "name: hostile")

MAIN_SCRIPT = """\
import json, os, pathlib
out = pathlib.Path("out"); out.mkdir()
(out / "metrics.json").write_text(json.dumps({"accuracy": 0.9}))
(out / "notes.txt").write_text("accuracy is 0.9\\n")
os.symlink("gone.txt", out / "stale")  # main is not innocent either
"""

NAMES = [
    "a|b.md",
    "`tick`.txt",
    "<b>bold</b>.txt",
    "line\nbreak.txt",
    "[x](http://evil).txt",
    "esc\x1b[31mred.txt",
]

BRANCH_SCRIPT = f"""\
import json, os, pathlib
out = pathlib.Path("out"); out.mkdir()
(out / "metrics.json").write_text(json.dumps({{"accuracy": 0.9}}))
(out / "notes.txt").write_text("accuracy is 0.9\\n")
os.symlink("/etc/passwd", out / "passwd")
(out / "data").mkdir()
os.symlink("data", out / "data-link")
os.symlink("nowhere.txt", out / "dangling")
os.mkfifo(out / "pipe")
for name in {NAMES!r}:  # a "/" makes a directory: "<b>bold<" holds "b>.txt", "[x](http:" "evil).txt"
    (out / name).parent.mkdir(exist_ok=True)
    (out / name).write_text("hello\\n")
(out / "empty.txt").write_bytes(b"")
(out / "latin1.txt").write_bytes("café\\n".encode("latin-1"))
open(os.fsencode(out) + b"/caf\\xe9.bin", "wb").close()
"""

# How the pull request's file table must show NAMES: each in its own code span, `|` escaped for the
# table, line breaks and control characters shown, never obeyed.
CELLS = [
    "`a\\|b.md`",
    "`` `tick`.txt ``",
    "`<b>bold</b>.txt`",
    "`line↵break.txt`",
    "`[x](http:/evil).txt`",
    "`esc␛[31mred.txt`",
]
# What the pull request must list under Problems, as Markdown, exactly.
SKIPPED = [
    "`caf\\xe9.bin`: skipped on the branch: a file name that is not UTF-8: not read",
    "`dangling`: skipped on the branch: a dangling symlink (to nowhere.txt): not read",
    "`data-link`: skipped on the branch: a symlink to a directory: not followed",
    "`passwd`: skipped on the branch: a symlink to /etc/passwd, outside the workspace: not read",
    "`pipe`: skipped on the branch: a FIFO: not read",
    "`stale`: skipped on main: a dangling symlink (to gone.txt): not read",
]


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture
def hostile_repo(tmp_path: Path) -> GitRepo:
    """main, and a branch `hostile` whose experiment leaves everything odd at once; hosted as acme/models."""
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"tierbot.yaml": SPEC, "make.py": MAIN_SCRIPT}, "main")
    repo.branch("hostile")
    repo.commit({"make.py": BRANCH_SCRIPT}, "hostile")
    repo.git("checkout", "-q", "main")
    bare = tmp_path / "git" / "acme" / "models.git"
    bare.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(bare)], check=True)
    return repo


def cells(row: str) -> list[str]:
    """A GitHub table row's cells: split at every `|` not escaped with a backslash."""
    return re.split(r"(?<!\\)\|", row.strip())[1:-1]


def assert_safe_markdown(markdown: str) -> None:
    assert "\x1b" not in markdown and "line\nbreak" not in markdown
    outside = without_code(markdown)
    assert "<b>" not in outside and "](http://evil)" not in outside
    files = markdown.split("### Files", 1)[1].split("###", 1)[0]
    rows = [line for line in files.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 10 and all(len(cells(row)) == 5 for row in rows), rows  # no row broken
    for cell in CELLS:
        assert f"| {cell} |" in files, cell
    problems = markdown.split("### Problems", 1)[1].split("###", 1)[0]
    for line in SKIPPED:
        assert f"- ⚠️ {line}\n" in problems, line
    assert "the branch's latin1.txt is not UTF-8 text (byte 0xe9 at offset 3)" in problems  # as before


def test_hostile_outputs_are_listed_escaped_and_the_bot_stays_healthy(
    settings, tmp_path, fake: FakeGitHub, hostile_repo, database_url
):
    bot = make_bot(settings.model_copy(update={"database_url": database_url}), tmp_path, fake)
    try:
        open_pull(fake, hostile_repo, branch="hostile")
        bot.deliver("pull_request", pull_request(hostile_repo, "opened", branch="hostile"))
        settle(bot)
        (comment,) = fake.comments_on(REPO, 7)
        assert "🟡 **CHANGED** · 8 files added; 6 output entries skipped (see below)" in comment.body
        assert_safe_markdown(comment.body)
        (check,) = fake.checks_for(REPO, sha_of(hostile_repo, "hostile"))
        assert check.conclusion == "neutral" and check.output["title"].startswith("CHANGED")
        assert_safe_markdown(check.output["summary"])
        comparison, report = stored_comparison(bot)
        assert comparison.file("empty.txt").summary == "new, 0 lines"  # compared as it always was
        assert comparison.file("latin1.txt").summary == "new, 5 B"
        page = report.read_text(encoding="utf-8")  # what /reports/ID serves
        assert "<code>&lt;b&gt;bold&lt;/b&gt;.txt</code>" in page and "<b>bold" not in page
        assert "<code>line↵break.txt</code>" in page and "\x1b" not in page
        assert bot.client.get("/healthz").status_code == 200
    finally:
        bot.stop()


def stored_comparison(bot) -> tuple[Comparison, Path]:
    """The one comparison the bot settled, and its HTML report."""
    with bot.pipeline.db.session() as s:
        (row,) = s.scalars(select(ComparisonRecord))
        return Comparison.model_validate(row.result), Path(row.report_path)


# -- the engine: skipped entries are problems, and never a pass -------------------------------------------


def compare_dirs(base: Path, head: Path, spec: dict | None = None) -> Comparison:
    return compare_outputs(
        manifest_of(base),
        manifest_of(head),
        lambda entry: base / entry.path,
        lambda entry: head / entry.path,
        CompareSection.model_validate(spec or {}),
    )


def test_a_skipped_entry_alone_makes_the_verdict_changed_unless_ignored(tmp_path):
    write_tree(tmp_path / "base", {"notes.txt": "same\n"})
    write_tree(tmp_path / "head", {"notes.txt": "same\n"})
    os.mkfifo(tmp_path / "base" / "out.pipe")
    os.mkfifo(tmp_path / "head" / "out.pipe")
    os.symlink("/etc/passwd", tmp_path / "head" / "passwd")
    comparison = compare_dirs(tmp_path / "base", tmp_path / "head")
    assert (comparison.verdict, comparison.reasons) == ("changed", ["3 output entries skipped (see below)"])
    assert [(p.path, p.message, p.skipped) for p in comparison.problems] == [
        ("out.pipe", "skipped on main: a FIFO: not read", True),
        ("out.pipe", "skipped on the branch: a FIFO: not read", True),
        ("passwd", "skipped on the branch: a symlink to /etc/passwd, outside the workspace: not read", True),
    ]
    assert [f.status for f in comparison.files] == ["identical"]
    ignored = compare_dirs(tmp_path / "base", tmp_path / "head", {"ignore": ["*.pipe", "passwd"]})
    assert (ignored.verdict, ignored.problems) == ("pass", [])  # ignored: no news, read or not


def test_a_failing_metric_still_fails_beside_skipped_entries(tmp_path):
    write_tree(tmp_path / "base", {"metrics.json": '{"accuracy": 0.9}'})
    write_tree(tmp_path / "head", {"metrics.json": '{"accuracy": 0.5}'})
    os.mkfifo(tmp_path / "head" / "pipe")
    spec = {
        "metrics": [
            {"file": "metrics.json", "metrics": {"accuracy": {"direction": "higher", "max_regression": 0.01}}}
        ]
    }
    comparison = compare_dirs(tmp_path / "base", tmp_path / "head", spec)
    assert comparison.verdict == "fail" and "1 output entry skipped (see below)" in comparison.reasons


# -- every format, pinned by golden files (tests/golden/hostile.*; UPDATE_GOLDEN=1 regenerates them) --------


def hostile_comparison() -> Comparison:
    """The comparison of the experiment above, built by hand: the renderers alone are under test."""
    files = [
        FileChange(
            path="<b>bold</b>.txt",
            status="changed",
            kind="text",
            size_base=6,
            size_head=6,
            summary="+1 −1 lines",
        ),
        *(
            FileChange(path=name, status="added", kind="text", size_head=6, summary="new, 1 line")
            for name in [
                "[x](http://evil).txt",
                "`tick`.txt",
                "a|b.md",
                "esc\x1b[31mred.txt",
                "line\nbreak.txt",
            ]
        ),
        FileChange(path="empty.txt", status="added", kind="text", size_head=0, summary="new, 0 lines"),
        FileChange(path="latin1.txt", status="added", kind="binary", size_head=5, summary="new, 5 B"),
    ]
    diff = TextDiff(
        path="<b>bold</b>.txt",
        lines_added=1,
        lines_removed=1,
        diff="--- a/<b>bold</b>.txt\n+++ b/<b>bold</b>.txt\n@@ -1 +1 @@\n-hello\n+\x1b[2Jbye \u202eevil",
        diff_lines=5,
    )
    skipped = [
        ("main", "stale", "a dangling symlink (to gone.txt): not read"),
        ("the branch", "caf\\xe9.bin", "a file name that is not UTF-8: not read"),
        ("the branch", "pass|wd", "a symlink to /etc/<i>passwd</i>, outside the workspace: not read"),
        ("the branch", "pipe\x07", "a FIFO: not read"),
        ("the branch", "team", "a symlink to /srv/@acme/everyone, outside the workspace: not read"),
    ]
    problems = [
        FileProblem(path=path, message=f"skipped on {side}: {reason}", skipped=True)
        for side, path, reason in skipped
    ]
    problems.append(FileProblem(path="latin1.txt", message="the branch's latin1.txt is not UTF-8 text"))
    return Comparison(
        verdict="changed",
        reasons=[
            "1 file changed, 7 added",
            "5 output entries skipped (see below)",
            "1 problem comparing files",
        ],
        files=files,
        text_diffs=[diff],
        problems=sorted(problems, key=lambda p: (p.path, p.message)),
    )


def test_markdown_escapes_hostile_names():
    text = render_markdown(hostile_comparison(), CONTEXT)
    check_golden("hostile.md", text)
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    outside = without_code(text)
    assert "<b>" not in outside and "<i>" not in outside
    assert "@acme" not in outside and "/srv/＠acme/everyone" in outside  # GitHub would notify the team
    assert all(
        len(cells(row)) == 5
        for row in text.split("### Files")[1].split("###")[0].splitlines()
        if row.startswith("|")
    )


def test_html_escapes_hostile_names():
    page = render_html(hostile_comparison(), CONTEXT)
    check_golden("hostile.html", page)
    assert "<b>" not in page and "<i>" not in page and "\x1b" not in page and "\x07" not in page
    assert "<code>a|b.md</code>" in page and "<code>line↵break.txt</code>" in page


def test_slack_escapes_hostile_names():
    message = render_slack(hostile_comparison(), CONTEXT)
    text = json.dumps(message, indent=2, ensure_ascii=False) + "\n"
    check_golden("hostile.slack.json", text)
    assert "<b>" not in text and "<i>" not in text and "\x1b" not in text  # `<` would open a Slack link


def test_terminal_escapes_hostile_names():
    out = io.StringIO()
    render_terminal(hostile_comparison(), CONTEXT, Console(file=out, width=120, color_system=None))
    check_golden("hostile.term.txt", out.getvalue())
    assert "\x1b" not in out.getvalue() and "\x07" not in out.getvalue()  # nothing a terminal would obey
    assert "esc␛[31mred.txt" in out.getvalue() and "[2Jbye" in out.getvalue()
