"""Bounded input everywhere: nothing a user or an unsigned client sends can hold the bot's memory, CPU or
sockets for long. YAML specs with aliases, catastrophic regular expressions, huge, endless and stalled
request bodies, and output trees larger than the limits, each refused early, on the wire."""

import json
import os
import re
import resource
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pydantic import SecretStr

from bot import wiring
from bot.errors import OutputsRejected, SpecInvalid
from bot.github.signature import sign
from bot.outputs import BlobStore, OutputLimits, collect
from bot.spec import parse_spec, spec_names
from bot.tiers import load_tiers
from bot.yamlmodel import MAX_YAML_BYTES

from ..conftest import SIMPLE_SPEC, compare_trees, push_branch
from ..fakes.cli import diff_result, serving, stderr_of, tierbot_diff, wait_healthy
from ..fakes.github_bot import REPO, SECRET, Bot, open_pull, pull_request, settle


def alias_bomb(levels: int) -> str:
    """A spec whose `deploy.smoke` is 9**levels strings, from 800 bytes at `levels=9`."""
    lines = ["deploy:", "  artifact: out/metrics.json", "  predict: serve.py:predict", "  smoke:"]
    lines.append('    l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]')
    lines += [f"    l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels)]
    return SIMPLE_SPEC + "\n".join(lines) + "\n"


# -- YAML ------------------------------------------------------------------------------------------------


def test_an_alias_bomb_in_a_forks_spec_is_refused_before_anyone_approves_it(
    github_bot, fake, simple_repo, hosted
):
    """Six levels here: before aliases were refused, nine took 80 s and 3.2 GB, and this one was
    accepted, expanded and left waiting for approval."""
    sha = push_branch(simple_repo, hosted, "bomb", {"tierbot.yaml": alias_bomb(6)})
    open_pull(fake, simple_repo, branch="bomb")
    github_bot.deliver("pull_request", pull_request(simple_repo, "opened", branch="bomb", fork=True))
    settle(github_bot)
    (check,) = fake.checks_for(REPO, sha)
    assert (check.status, check.conclusion) == ("completed", "failure")
    problem = f"tierbot.yaml ({sha[:7]}):15: aliases (*l0) are not allowed: write the value out"
    assert problem in check.output["summary"]
    assert github_bot.client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (alias_bomb(9), "tierbot.yaml:15: aliases (*l0) are not allowed: write the value out"),
        (
            SIMPLE_SPEC + "# " + "x" * MAX_YAML_BYTES + "\n",
            "tierbot.yaml:1: the file is 256.2 KiB; tierbot reads YAML files up to 256.0 KiB",
        ),
        ("run: " + "[" * 100_000, "tierbot.yaml:1: values nested more than 64 deep are not allowed"),
    ],
    ids=["aliases", "size", "depth"],
)
def test_spec_yaml_is_bounded_before_anything_is_built(text: str, problem: str):
    started = time.monotonic()
    with pytest.raises(SpecInvalid) as refused:
        parse_spec(text)
    assert refused.value.problems == [problem]
    assert spec_names(text) is None  # naming a broken spec's check goes through the same loader
    assert time.monotonic() - started < 2


def test_tiers_files_and_diff_configs_use_the_same_loader(tmp_path: Path):
    tiers = tmp_path / "tiers.yaml"
    tiers.write_text("tiers:\n  - &cpu {name: cpu, default: true}\n  - *cpu\n")
    with pytest.raises(SpecInvalid, match=r"tiers\.yaml:3: aliases \(\*cpu\) are not allowed"):
        load_tiers(tiers)
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "bomb.yaml").write_text(alias_bomb(9))
    done = tierbot_diff("old", "new", "--config", "bomb.yaml", cwd=tmp_path)
    assert done.returncode == 2 and "bomb.yaml:15: aliases (*l0) are not allowed" in stderr_of(done)


# -- regular expressions -----------------------------------------------------------------------------------

CATASTROPHIC = "(a+)+$"  # Python's `re` doubles its work with every `a` before a line's last character


def test_a_catastrophic_mask_from_the_spec_is_matched_by_re2_in_linear_time(tmp_path: Path):
    spec = parse_spec(SIMPLE_SPEC + f"  mask: ['{CATASTROPHIC}']\n")
    hostile = "a" * 30 + "!"  # `re`: about two minutes; RE2: microseconds
    started = time.monotonic()
    comparison = compare_trees(
        tmp_path,
        {"train.log": f"{hostile}\naaaa\n"},
        {"train.log": f"{hostile}\naaaaaaa\n"},
        spec.compare.model_dump(by_alias=True),
    )
    assert time.monotonic() - started < 2
    assert comparison.file("train.log").summary == "only volatile tokens differ"  # both `a` lines masked


def test_masks_say_which_feature_re2_lacks():
    with pytest.raises(SpecInvalid) as refused:
        parse_spec(SIMPLE_SPEC + "  mask: ['(\\w+) \\1']\n")
    (problem,) = refused.value.problems
    assert problem == (
        r"tierbot.yaml:10: compare.mask: mask pattern '(\\w+) \\1' uses a backreference (\1), which masks do "
        "not support: masks use RE2 syntax, which has no backtracking (https://github.com/google/re2/wiki/Syntax)"
    )
    with pytest.raises(SpecInvalid, match=r"uses lookahead \(\?=…\)"):
        parse_spec(SIMPLE_SPEC + "  mask: ['x(?=y)']\n")


def test_tierbot_diff_masks_with_re2(tmp_path: Path):
    for side, tail in (("old", "aaaa"), ("new", "aaaaaaa")):
        (tmp_path / side).mkdir()
        (tmp_path / side / "train.log").write_text("a" * 30 + f"!\n{tail}\n")
    started = time.monotonic()
    done = tierbot_diff("old", "new", "--mask", CATASTROPHIC, "--json", cwd=tmp_path)
    assert time.monotonic() - started < 20  # a fresh interpreter's start included; `re` took minutes
    assert done.returncode == 0, done.stderr
    (log,) = diff_result(done)["files"]
    assert log["summary"] == "only volatile tokens differ"
    done = tierbot_diff("old", "new", "--mask", "(?<=x)y", cwd=tmp_path)
    assert done.returncode == 2 and "uses lookbehind (?<=…), which masks do not support" in stderr_of(done)


def test_json_ignore_paths_cannot_backtrack(tmp_path: Path):
    glob = "*a" * 12 + "*b"  # `re` tried every way to split a key among the stars
    document = {"a" * 35 + "b": 1, "a" * 36: 1}
    changed = {"a" * 35 + "b": 2, "a" * 36: 2}
    started = time.monotonic()
    comparison = compare_trees(
        tmp_path,
        {"doc.json": json.dumps(document)},
        {"doc.json": json.dumps(changed)},
        {"json": [{"file": "doc.json", "ignore_paths": [glob]}]},
    )
    assert time.monotonic() - started < 2
    ((change,),) = [diff.changes for diff in comparison.json_diffs]  # the key the glob matches is ignored
    assert change.pointer == "a" * 36


# -- request bodies and connections --------------------------------------------------------------------------


@pytest.fixture
def limited(settings):
    """The bot with a 4 KiB body cap and a 1 s read timeout, both doors open."""
    limits = {"max_request_bytes": 4096, "request_read_seconds": 1.0}
    secrets = {
        "github_webhook_secret": SecretStr(SECRET),
        "slack_signing_secret": SecretStr("slack-signing-secret"),
        "slack_bot_token": SecretStr("xoxb-bounded-input"),
    }
    running = Bot(wiring.pipeline(settings.model_copy(update=limits | secrets)))
    yield running
    running.stop()


def open_request(url: str, path: str, headers: dict[str, str], body: bytes = b"") -> socket.socket:
    """A POST whose head (and `body`, maybe only part of what it declares) is sent, nothing more."""
    address = urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port))
    head = "".join(f"{name}: {value}\r\n" for name, value in {"Host": "bot", **headers}.items())
    sock.sendall(f"POST {path} HTTP/1.1\r\n{head}\r\n".encode() + body)
    return sock


def answer_and_close(sock: socket.socket, timeout: float = 5) -> tuple[int, bytes]:
    """The status and everything the server sent until it closed the connection."""
    sock.settimeout(timeout)
    received = b""
    with sock:
        while chunk := sock.recv(65536):
            received += chunk
    return int(received.split(b" ", 2)[1]), received


@pytest.mark.parametrize("path", ["/github/webhook", "/slack/events"])
def test_a_body_declared_too_large_is_refused_before_a_byte_is_read(limited, path: str):
    sock = open_request(limited.url, path, {"Content-Length": "400000000"})  # and not one byte of it
    status, answer = answer_and_close(sock)
    assert status == 413
    assert b"connection: close" in answer.lower()
    assert b"larger than 4.0 KiB, the most this server reads" in answer


def test_a_streamed_body_is_cut_off_at_the_cap(limited):
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"  # chunked: no length to check up front
    sock = open_request(limited.url, "/github/webhook", {"Transfer-Encoding": "chunked"}, chunk * 5)
    status, answer = answer_and_close(sock)  # the body never ends: only the count can stop it
    assert status == 413 and b"larger than 4.0 KiB" in answer
    ping = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    headers = {"X-GitHub-Event": "ping", "X-GitHub-Delivery": "p", "X-Hub-Signature-256": sign(ping, SECRET)}
    streamed = limited.client.post("/github/webhook", content=iter([ping[:10], ping[10:]]), headers=headers)
    assert streamed.json()["result"] == "pong"  # a chunked body under the cap is read as before


def test_stalled_bodies_are_dropped_after_the_read_timeout_while_health_answers(limited):
    headers = {"Content-Length": "1000", "Content-Type": "application/json"}
    stalled = [open_request(limited.url, "/github/webhook", headers, b'{"zen": ') for _ in range(200)]
    for _ in range(5):
        assert limited.client.get("/healthz").status_code == 200
    answers = [answer_and_close(sock) for sock in stalled]
    assert {status for status, _ in answers} == {408}
    assert b"did not arrive within 1 s" in answers[0][1]


def test_serve_caps_connections_and_raises_its_open_files_limit(settings):
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    variables = {"TIERBOT_MAX_CONNECTIONS": "20", "TIERBOT_REQUEST_READ_SECONDS": "2"}
    with serving(
        settings.data_dir, min(512, hard), TIERBOT_GITHUB_WEBHOOK_SECRET=SECRET, **variables
    ) as served:
        limits = Path(f"/proc/{served.process.pid}/limits").read_text()
        assert re.search(rf"Max open files\s+{hard}\s+{hard}\s", limits), limits
        headers = {"Content-Length": "1000"}
        stalled = [open_request(served.url, "/github/webhook", headers, b"{") for _ in range(25)]
        statuses = [status for status, _ in (answer_and_close(sock) for sock in stalled)]
        # Beyond 20 at once: 503 at once. Which ones get 408 instead depends on how many connections
        # the server holds when it reads each head (all 25, on a busy machine): every one is answered.
        assert statuses.count(503) >= 5 and set(statuses) <= {408, 503}
        wait_healthy(served)  # the stalled ones are gone: the server answers again


# -- outputs -------------------------------------------------------------------------------------------------


def test_the_output_file_limit_stops_the_walk_at_the_first_file_past_it(tmp_path: Path, monkeypatch):
    """The files past the limit sit in subdirectories, listed only after the top directory: a walk that
    stops at the limit never lists them (the old one listed all 300,000 files first: 12 s)."""
    outputs = tmp_path / "work" / "outputs"
    for name in range(6):
        (outputs / f"more{name}").mkdir(parents=True)
        for index in range(50):
            (outputs / f"more{name}" / f"{index}.txt").write_text("x")
    for index in range(5):
        (outputs / f"{index}.txt").write_text("x")
    listed: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: listed.append(str(path)) or scandir(path))
    with pytest.raises(OutputsRejected, match=r"^the outputs directory 'outputs/' holds more than 4 files; "):
        collect(tmp_path / "work", "outputs", BlobStore(tmp_path / "blobs"), OutputLimits(4, 10**9))
    assert listed == [str(outputs.resolve())]
    assert not (tmp_path / "blobs").exists()  # refused before anything was copied
