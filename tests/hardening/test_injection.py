"""Injection through what the bot quotes (issue 19, item 6), on the wire: what an experiment prints or
names and what a commenter writes reaches Slack escaped for mrkdwn, PR replies as code, terminals with
control characters shown; the sticky comment is found by the id stored for its pull request, however
its marker is quoted. Fake GitHub and Slack over HTTP, signed requests, real git repositories and real
`tierbot` processes."""

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bot.render.slack import slack_length
from bot.render.templates import environment
from bot.slack.views import log_text
from bot.store import RunState
from bot.worker import Worker

from ..conftest import SIMPLE_SCRIPT, SIMPLE_SPEC, GitRepo, push_branch
from ..fakes.fakegithub import FakeGitHub
from ..fakes.fakeslack import FakeSlack
from ..fakes.github_bot import REPO, comment, open_pull, ours, pull_request, replies, settle, without_code
from ..fakes.slack_bot import CHANNEL, click, command
from ..golden.runs import run

CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # all but tab and line feed


def experiment(lines: list[str], exit_code: int = 3, sleep: float = 2.5) -> str:
    """A script that prints `lines` (Python literals, escapes and all), waits so that a progress update
    shows the last one (a worker notes a run's last line once a heartbeat, a second at most), then
    exits."""
    prints = "".join(f"print({line!r}, flush=True)\n" for line in lines)
    return f"import time\n{prints}time.sleep({sleep})\nraise SystemExit({exit_code})\n"


@contextmanager
def live(running) -> Iterator[None]:
    """A worker that only syncs reports, beside the test's: messages and checks follow a run as it goes
    (every 0.2 s), so what a running run prints is shown before it ends."""
    running.pipeline.settings.progress_seconds = 0.2
    stop = threading.Event()
    door = threading.Thread(target=Worker(running.pipeline, runs=False).run_forever, args=(stop,))
    door.start()
    try:
        yield
    finally:
        stop.set()
        door.join()


# -- Slack: every interpolated text escaped for mrkdwn ------------------------------------------------------

SLACK_LINE = "<!channel> <@U0BOSS> <http://evil.example|click here> fish & chips \x1b]0;pwned\x07"


def strings(value) -> Iterator[str]:
    """Every string in a request's decoded arguments."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_a_slack_template_escapes_every_value_it_prints_but_its_own_markup():
    """In one place, the Slack flavour's finalize: a value no filter made mrkdwn is escaped anyway, and
    the template's own markup (a mention the bot means, a link) is left alone."""
    source = "<@{{ user }}> {{ text }} · {{ text|slcode }} · <{{ url|slurl }}|x>"
    page = environment("slack").from_string(source)
    said = page.render(user="U0ASKER", text="<!here> & \x1b[2J", url="http://a.example/?q=<b>")
    escaped = "&lt;!here&gt; &amp; ␛[2J"
    assert said == f"<@U0ASKER> {escaped} · `{escaped}` · <http://a.example/?q=%3Cb%3E|x>"


def test_a_log_that_grows_when_escaped_still_fits_a_slack_section():
    log = log_text(run(RunState.failed), "&<>" * 5_000)
    assert slack_length(log) <= 3_000 and log.endswith("&amp;&lt;&gt;\n```")


def test_slack_shows_what_runs_print_and_name_escaped(slack_bot, slack: FakeSlack, simple_repo, hosted):
    crash = SIMPLE_SPEC.replace("python make.py", "python crash.py")
    push_branch(simple_repo, hosted, "crash", {"tierbot.yaml": crash, "crash.py": experiment([SLACK_LINE])})
    nowhere = SIMPLE_SPEC.replace("outputs: out", 'outputs: "out<!channel> & <@U0BOSS>"')
    push_branch(simple_repo, hosted, "nowhere", {"tierbot.yaml": nowhere})
    with live(slack_bot):
        command(slack_bot, slack, "experiment crash", trigger="crash")
        command(slack_bot, slack, "experiment nowhere", trigger="nowhere")
        settle(slack_bot)
    crashed = next(r for r in slack_bot.pipeline.recent_runs(10) if r.ref == "crash" and r.role == "head")
    click(slack_bot, slack, {"action_id": "tierbot_logs", "type": "button", "value": str(crashed.id)})
    command(slack_bot, slack, "status", trigger="status")
    settle(slack_bot)

    sent = [text for call in slack.calls("*") for text in strings(call.args)]
    for text in sent:
        assert "<!channel>" not in text and "<@U0BOSS>" not in text and "<http://evil" not in text, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", text) and not CONTROLS.search(text), text
    shown = "&lt;!channel&gt; &lt;@U0BOSS&gt; &lt;http://evil.example|click here&gt; fish &amp; chips "
    shown += "␛]0;pwned␇"
    logs = [text for text in sent if text.startswith(f"*Log of run {crashed.id}*")]
    assert len(logs) >= 2 and all(shown in text for text in logs)  # in its message, and the Logs button's
    message = next(m for m in slack.messages(CHANNEL) if "crash" in str(m["blocks"][0]))
    assert any(f"`{shown}`" in str(version["blocks"]) for version in message["history"])  # while running
    outputs = "out&lt;!channel&gt; &amp; &lt;@U0BOSS&gt;"
    assert any(f"did not create its outputs directory '{outputs}/' · simple run" in text for text in sent)


def test_slack_answers_and_refusals_quote_what_was_typed_escaped(slack_bot, slack: FakeSlack):
    acked = [
        command(slack_bot, slack, "experimnet <@U0BOSS>"),  # a grammar error, in the ack
        command(slack_bot, slack, "experiment <!channel>", trigger="branch"),  # echoed, then refused
        command(slack_bot, slack, "experiment better on <http://evil.example|x>", trigger="tier"),
    ]
    acks = [answer.json()["text"] for answer in acked]
    settle(slack_bot)
    answers = acks + [r.get("text", "") for trigger in ("branch", "tier") for r in slack.responses(trigger)]
    for text in answers:
        assert "<@U0BOSS>" not in text and "<!channel>" not in text and "<http://evil" not in text, text
    assert "`experimnet` is not a command" in acks[0] and "&lt;@U0BOSS&gt;" not in acks[0]  # not echoed
    assert acks[1].startswith("On it: `/run experiment &lt;!channel&gt;`.")
    assert "There is no branch, tag or commit '&lt;!channel&gt;'" in " ".join(answers)
    assert "There is no tier '&lt;http://evil.example|x&gt;'" in " ".join(answers)


# -- GitHub: what a commenter wrote is quoted as code; logs cannot leave their fence -----------------------

HOSTILE_COMMENT = """\
/run experiment on @acme/everyone
/run x`@acme/everyone ![x](http://evil.example/p.png) <img src=x onerror=alert(1)> [click](http://evil.example)
"""


def assert_inert(markdown: str) -> None:
    """Nothing of the hostile texts renders: no mention, image, link or HTML outside code, no control."""
    assert not CONTROLS.search(markdown), markdown
    outside = without_code(markdown)
    for markup in ("@acme", "](http", "<img", "http://evil"):
        assert markup not in outside, (markup, markdown)


def test_pr_replies_quote_the_commenters_text_as_code(github_bot, fake: FakeGitHub, simple_repo):
    open_pull(fake, simple_repo)
    comment(github_bot, fake, HOSTILE_COMMENT)
    settle(github_bot)
    (reply,) = replies(fake)
    assert_inert(reply)
    assert "`/run experiment on @acme/everyone`" in reply
    assert "`There is no tier '@acme/everyone'. Tiers you may use: local.`" in reply
    assert "``tierbot does not know `/run x`@acme/everyone`.``" in reply


LOG_LINES = [
    "@acme/everyone ![x](http://evil.example/p.png) <img src=x onerror=alert(1)>",
    "```",
    "</details> @acme/everyone \x1b]0;pwned\x07 \x1b[2J FAIL\rPASS",
    "x` @acme/everyone `y",
]


def test_a_runs_log_on_a_pull_request_stays_code(github_bot, fake: FakeGitHub, simple_repo, hosted):
    spec = SIMPLE_SPEC.replace("python make.py", "python crash.py")
    sha = push_branch(simple_repo, hosted, "crash", {"tierbot.yaml": spec, "crash.py": experiment(LOG_LINES)})
    open_pull(fake, simple_repo, branch="crash")
    with live(github_bot):
        github_bot.deliver("pull_request", pull_request(simple_repo, "opened", branch="crash"))
        settle(github_bot)
    (sticky,) = ours(fake)
    (check,) = fake.checks_for(REPO, sha)
    assert check.conclusion == "failure" and "FAIL␍PASS" in sticky.body
    assert "␛]0;pwned␇" in check.output["summary"]
    summaries = [version["summary"] for version in check.history]
    assert "``x` @acme/everyone `y``" in summaries  # the running run's last line, alone
    for markdown in [sticky.body, *summaries, *sticky.edits]:
        assert_inert(markdown)


# -- GitHub: the sticky comment is found by the id stored for its pull request -------------------------------

CRAFTED = "/run help <!-<!-- -->- tierbot:sticky experiment=simple tier=local -->"  # one marker, once parsed


def test_a_quoted_sticky_marker_never_moves_the_sticky_comment(github_bot, fake, simple_repo, hosted):
    open_pull(fake, simple_repo)
    comment(github_bot, fake, CRAFTED)  # before the bot has seen the pull request: its reply comes first
    settle(github_bot)
    (reply,) = ours(fake)
    assert "tierbot:sticky experiment=simple tier=local" in reply.body  # quoted, as code
    github_bot.deliver("pull_request", pull_request(simple_repo, "opened"))
    settle(github_bot)
    _, sticky = ours(fake)
    assert sticky.body.startswith("<!-- tierbot:sticky experiment=simple tier=local -->")

    pushed = push_branch(simple_repo, hosted, "better", {"accuracy.txt": "0.97"})
    fake.push(REPO, 7, pushed)
    github_bot.deliver("pull_request", pull_request(simple_repo, "synchronize"))  # a new run, a new Report
    settle(github_bot)
    assert [c.id for c in ours(fake)] == [reply.id, sticky.id]
    assert reply.edits == [] and "0.97" in sticky.body and sticky.edits


# -- the terminal: control characters shown, never obeyed ---------------------------------------------------

# A verdict overwritten; a new window title and a cleared screen.
TERMINAL_LINES = ["FAIL\rPASS", "\x1b]0;pwned\x07\x1b[2J"]
HOSTILE_SCRIPT = SIMPLE_SCRIPT + "".join(f"print({line!r})\n" for line in TERMINAL_LINES)
HOSTILE_SCRIPT += '(out / "x\\x1b[2J.txt").write_text("hello\\n")\n'
OBEYED = ("\x1b]0;", "\x1b[2J", "\x07", "\rPASS")  # what a terminal would act on


def add_hostile_branches(repo: GitRepo) -> None:
    """`hostile` names an output and prints lines with escape sequences; `crash` prints them and fails."""
    spec = SIMPLE_SPEC.replace("python make.py", "python crash.py")
    for branch, files in (
        ("hostile", {"make.py": HOSTILE_SCRIPT}),
        ("crash", {"tierbot.yaml": spec, "crash.py": experiment(TERMINAL_LINES)}),
    ):
        repo.git("checkout", "-q", "-B", branch, "main")
        repo.commit(files, branch)
    repo.git("checkout", "-q", "main")


def test_the_cli_shows_control_characters_and_obeys_none(tierbot, simple_repo: GitRepo, tmp_path):
    add_hostile_branches(simple_repo)
    compared = tierbot("compare", "hostile", "--repo", str(simple_repo))
    shown = tierbot("show", "1")
    listed = tierbot("runs")
    # In a terminal: the live progress shows the running run's last line, then its log's end.
    terminal = {"TTY_COMPATIBLE": "1", "TIERBOT_PROGRESS_SECONDS": "0.2"}
    crashed = tierbot("run", "crash", "--repo", str(simple_repo), env=terminal)
    missing = tierbot("diff", str(tmp_path / "gone\x1b[2J"), str(tmp_path))
    assert (compared.returncode, shown.returncode, crashed.returncode, missing.returncode) == (0, 0, 3, 2)
    for done in (compared, shown, listed):
        assert not CONTROLS.search(done.stdout + done.stderr), done.stdout + done.stderr
    assert "x␛[2J.txt" in compared.stdout and "x␛[2J.txt" in shown.stdout
    out = crashed.stdout + crashed.stderr
    assert not any(sequence in out for sequence in OBEYED), out
    assert re.search(r"running [\d.]+s[^\n]*␛\]0;pwned␇␛\[2J", out) and "FAIL␍PASS\n␛]0;pwned␇␛[2J" in out
    assert "gone␛[2J does not exist" in missing.stderr and "\x1b" not in missing.stderr


def test_the_pre_push_hook_shows_control_characters_and_obeys_none(pushing, simple_repo: GitRepo):
    add_hostile_branches(simple_repo)
    assert pushing("tierbot", "hooks", "install").returncode == 0
    for branch in ("hostile", "crash"):
        done = pushing("git", "push", "-q", "origin", branch)
        assert done.returncode == 0, done.stderr
        assert not CONTROLS.search(done.stdout + done.stderr), done.stdout + done.stderr
    assert "␛]0;pwned␇␛[2J" in done.stdout and "FAIL␍PASS" in done.stdout  # the crash's log, shown
