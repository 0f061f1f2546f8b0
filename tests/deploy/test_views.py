"""What people read of a deployment, pinned by golden files: the deploy report (each step, the
prediction diff made by the real engine from fixed answers) and the merged pull request's line in each
state, with a hostile reason that must stay text."""

from datetime import UTC, datetime

from bot.compare import Options
from bot.deploy.checks import Sample, prediction_diff
from bot.deploy.report import Attempt, render_report
from bot.render.templates import template
from bot.spec import DeploySection, Tolerance
from bot.store.models import Deployment

from ..golden import check_golden

AT = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
HOSTILE = "predict raised <b>ValueError</b> for @octocat's `input` | see [this](https://evil.example)"


def deployment(**fields) -> Deployment:
    defaults = {
        "id": 5,
        "repository": "acme/models",
        "environment": "production",
        "sha": "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d",
        "kind": "deploy",
        "target": "local",
        "state": "live",
        "run_id": 12,
        "previous_id": 4,
        "url": "http://127.0.0.1:8765",
        "artifact_hash": "62cb2f416fe7dd78e15215c0364e67a2",
        "reason": "live at http://127.0.0.1:8765, serving 1a2b3c4",
        "instance": {},
        "created_at": AT,
    }
    return Deployment(**(defaults | fields))


def test_the_deploy_report(tmp_path):
    samples = [
        Sample("smoke", '{"x": [1, 2]}'),
        Sample("recent", '{"x": [0]}'),
        Sample("recent", '{"x": [3]}'),
    ]
    old = [{"status": 200, "answer": {"y": [2.0, 4.0]}}, {"status": 200, "answer": {"y": [0.0]}}]
    new = [{"status": 200, "answer": {"y": [3.0, 6.0]}}, {"status": 200, "answer": {"y": [0.0]}}]
    old.append({"status": 200, "answer": {"y": [6.0]}})
    new.append({"status": 500, "answer": {"error": "predict raised KeyError"}})
    attempt = Attempt(
        deploy=DeploySection(artifact="model.json", predict="serve.py:predict", max_changed="50%")
    )
    attempt.tolerance = Tolerance(abs=0.001)
    attempt.diff = prediction_diff(samples, old, new, attempt.tolerance, Options(temp_dir=tmp_path))
    attempt.steps.lines = [
        (0.0, "artifact model.json of run 11 (62cb2f416fe7)"),
        (0.2, "healthy"),
        (0.3, 'smoke request answered: {"y": [3.0, 6.0]}'),
        (0.7, "prediction diff: 2 of 3 answers changed"),
        (0.8, "switched http://127.0.0.1:8765 to the new version"),
        (1.0, "live at http://127.0.0.1:8765, serving 1a2b3c4"),
    ]
    previous = deployment(id=4, sha="ffffffff" * 5)
    check_golden("deploy-report.html", render_report(deployment(), attempt, previous))


def test_the_pull_requests_line_in_each_state():
    marker = "<!-- tierbot:deploy environment=production -->"
    cases = {
        "live": deployment(),
        "rolled back": deployment(kind="rollback"),
        "deploying": deployment(state="deploying", step="checking"),
        "waiting for its run": deployment(state="waiting"),
        "failed (a hostile reason)": deployment(state="failed", reason=HOSTILE),
        "retired": deployment(state="retired", reason="replaced by deployment 6 (abcdef0)"),
        "skipped": deployment(
            state="skipped", reason="superseded by deployment 7 (abcdef1) before it started"
        ),
    }
    page = template("github/deploy.md.j2", "md")
    text = "".join(
        f"## {case}\n\n{page.render(marker=marker, d=d, report='https://tierbot.example/reports/9?token=x')}\n"
        for case, d in cases.items()
    )
    check_golden("github-deploy.md", text)
