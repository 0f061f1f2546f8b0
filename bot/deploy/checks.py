"""What a new version must pass before traffic moves to it: health, the smoke request, and the
prediction diff, whatever the target. They reach a version at its URL through a `Caller`: HTTP
(`/healthz`, `/predict`) by default; a target whose versions answer otherwise gives its own (`caller()`:
the sagemaker target's goes through DescribeEndpoint and InvokeEndpoint).

The prediction diff replays one sample against the old and the new version — the smoke request, then
the recent requests the live version answered (`Target.captured`, redacted, duplicates dropped, the
newest `deploy.replay` of them) — and compares the answers with the comparison engine, as a run's
outputs are compared: each request's answer (status and JSON body) is one JSON document a side,
`request-0001.json`, so a changed answer is path-addressed (`answer.predictions[0].label`) and a
number within `deploy.compare`'s tolerance is no change. A request whose answer changed beyond it
counts against `deploy.max_changed`. The sample is in order, so a rerun compares the same way.
"""

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import requests

from bot.compare import Comparison, Options, compare_outputs
from bot.deploy import DeployFailed
from bot.outputs import manifest_of
from bot.spec import CompareSection, DeploySection, Tolerance, parse_threshold

HEALTH_SECONDS = 30.0
REQUEST_SECONDS = 30.0
SHOWN_BODY = 300  # characters of a request or an answer quoted in a reason


@dataclass(frozen=True)
class Sample:
    source: str  # "smoke" | "recent"
    body: str  # the request's JSON text


@dataclass(frozen=True)
class PredictionDiff:
    samples: list[Sample]
    comparison: Comparison
    changed: list[int]  # the samples (by index) answered differently beyond tolerance


class Caller(Protocol):
    """How the checks reach a version at its URL: each call is (status, body text)."""

    def health(self, url: str) -> tuple[int, str]: ...

    def predict(self, url: str, body: str) -> tuple[int, str]: ...


class Http:
    """A version that answers HTTP at its URL: `GET /healthz`, `POST /predict` (kept alive)."""

    def __init__(self) -> None:
        self.session = requests.Session()

    def health(self, url: str) -> tuple[int, str]:
        answer = self.session.get(f"{url}/healthz", timeout=5)
        return answer.status_code, answer.text

    def predict(self, url: str, body: str) -> tuple[int, str]:
        headers = {"Content-Type": "application/json"}
        try:
            answer = self.session.post(
                f"{url}/predict", data=body.encode(), headers=headers, timeout=REQUEST_SECONDS
            )
        except requests.RequestException as exc:
            raise DeployFailed(f"{url}/predict did not answer: {type(exc).__name__}") from None
        return answer.status_code, answer.text


def caller_of(target) -> Caller:
    """The target's own way to reach its versions, else HTTP."""
    own = getattr(target, "caller", None)
    return own() if own is not None else Http()


def answer_file(index: int) -> str:
    """The document that holds a sample's answer, on each side of the prediction diff."""
    return f"request-{index + 1:04d}.json"


def wait_healthy(
    url: str, problem: Callable[[], str | None], seconds: float = HEALTH_SECONDS, caller: Caller | None = None
) -> None:
    """Until the version says it is healthy (200); DeployFailed when it dies or the time runs out."""
    caller = caller or Http()
    deadline, last = time.monotonic() + seconds, "no answer"
    while time.monotonic() < deadline:
        try:
            status, text = caller.health(url)
            if status == 200:
                return
            last = f"{status}: {text[:SHOWN_BODY]}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        dead = problem()
        if dead is not None:
            raise DeployFailed(f"the new version stopped before it was healthy: {dead}")
        time.sleep(0.1)
    raise DeployFailed(f"the new version was not healthy within {seconds:g} s (last: {last})")


def smoke(url: str, body: dict | list, caller: Caller | None = None) -> str:
    """`deploy.smoke` sent to the new version, which must answer 2xx; what it answered, for the report."""
    status, answer = (caller or Http()).predict(url, json.dumps(body))
    if not 200 <= status < 300:
        raise DeployFailed(f"the smoke request got {status}: {_shown(answer)}")
    return _shown(answer)


def sample(deploy: DeploySection, captured: list[str], redact: Callable[[str], str]) -> list[Sample]:
    """The smoke request, then the newest `deploy.replay` distinct captured requests that are JSON."""
    found = [Sample("smoke", json.dumps(deploy.smoke))] if deploy.smoke is not None else []
    seen, recent = {s.body for s in found}, []
    for body in reversed(captured):
        body = redact(body)
        if len(recent) >= deploy.replay or body in seen or not _is_json(body):
            continue
        seen.add(body)
        recent.append(Sample("recent", body))
    return found + recent[::-1]


def answers(url: str, samples: list[Sample], caller: Caller | None = None) -> list[dict]:
    """Each sample's answer from the version at `url`: its status and body (JSON when it is)."""
    caller, found = caller or Http(), []
    for item in samples:
        status, text = caller.predict(url, item.body)
        found.append({"status": status, "answer": json.loads(text) if _is_json(text) else text})
    return found


def prediction_diff(
    samples: list[Sample], old: list[dict], new: list[dict], tolerance: Tolerance, options: Options
) -> PredictionDiff:
    """The old version's answers against the new one's, by the comparison engine."""
    rules = CompareSection(json_tolerance=tolerance)
    with tempfile.TemporaryDirectory(dir=options.temp_dir) as scratch:
        sides = Path(scratch) / "old", Path(scratch) / "new"
        for side, found in zip(sides, (old, new), strict=True):
            side.mkdir()
            for index, answer in enumerate(found):
                (side / answer_file(index)).write_text(json.dumps(answer, indent=1, sort_keys=True))
        manifests = [manifest_of(side) for side in sides]
        locate = [lambda entry, side=side: side / entry.path for side in sides]
        comparison = compare_outputs(manifests[0], manifests[1], locate[0], locate[1], rules, options)
    beyond = {d.path for d in comparison.json_diffs if d.total}
    beyond |= {f.path for f in comparison.files if f.status == "changed" and f.kind != "json"}
    changed = [i for i in range(len(samples)) if answer_file(i) in beyond]
    return PredictionDiff(samples=samples, comparison=comparison, changed=changed)


def allowed(deploy: DeploySection, total: int) -> int | None:
    """How many of `total` replayed requests may change: `max_changed` as a count; None for no limit."""
    if deploy.max_changed is None:
        return None
    if isinstance(deploy.max_changed, int):
        return deploy.max_changed
    share, _ = parse_threshold(deploy.max_changed)
    return int(share * total + 1e-9)


def refusal(deploy: DeploySection, diff: PredictionDiff) -> str | None:
    """Why the switch is refused (more answers changed than `max_changed` allows), or None."""
    limit = allowed(deploy, len(diff.samples))
    if limit is None or len(diff.changed) <= limit:
        return None
    return (
        f"{len(diff.changed)} of {len(diff.samples)} replayed requests were answered differently, more than "
        f"deploy.max_changed ({deploy.max_changed}) allows"
    )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_BODY else text[: SHOWN_BODY - 1] + "…"
