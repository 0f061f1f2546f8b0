"""Merge to deploy through the GitHub door, on the wire: really signed `pull_request` (closed, merged or
not) and `push` deliveries to the running bot, the experiment fetched from a bare repository, a real
model server behind the proxy, and what crossed to the fake GitHub's Deployments API and pull request."""

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from bot.deploy.machine import Deployer
from bot.deploy.plan import deployments_of
from bot.deploy.supervise import RESTARTED, RESTARTS, supervise
from bot.store.models import Deployment, utcnow
from bot.worker import Worker

from ..conftest import GitRepo
from ..fakes.github_bot import REPO, make_bot, ours, pull_request, settle
from ..fakes.waiting import wait_until
from .conftest import BROKEN_SERVE, SPEC, alive, predict

PUBLIC_URL = "https://tierbot.example"
SLOW_SMOKE = SPEC.replace("smoke: {x: [1, 2]}", "smoke: {x: [1, 2], sleep: 1.5}")


@pytest.fixture
def bare(tmp_path: Path, scaler: GitRepo) -> Path:
    """The scaler published as acme/models, where the bot fetches code from."""
    path = tmp_path / "git" / "acme" / "models.git"
    path.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(scaler.path), str(path)], check=True)
    return path


@pytest.fixture
def bot(settings, bare, tmp_path, fake):
    running = make_bot(settings.model_copy(update={"public_url": PUBLIC_URL}), tmp_path, fake)
    yield running
    running.stop()


def merged(fake, scaler: GitRepo, bare: Path, files: dict, number: int = 7) -> dict:
    """Pull request `number` (branch `feature`, changing `files`) merged into main and pushed; its
    `closed` payload, merged, with the merge commit."""
    scaler.git("checkout", "-q", "-B", "feature", "main")
    scaler.commit(files, "feature")
    scaler.git("checkout", "-q", "main")
    scaler.git("merge", "-q", "--no-ff", "feature", "-m", f"Merge pull request #{number}")
    scaler.git("push", "-q", "-f", str(bare), "main", "feature")
    fake.add_pull(REPO, number, head_sha=scaler.git("rev-parse", "feature"), head_ref="feature")
    payload = pull_request(scaler, "closed", branch="feature", number=number)
    payload["pull_request"] |= {
        "merged": True,
        "merge_commit_sha": scaler.git("rev-parse", "main"),
        "merged_by": {"login": "maintainer", "id": 9},
    }
    return payload


def push(scaler: GitRepo, ref: str = "refs/heads/main") -> dict:
    return {
        "ref": ref,
        "before": "0" * 40,
        "after": scaler.git("rev-parse", "main"),
        "deleted": False,
        "repository": {
            "full_name": REPO,
            "name": "models",
            "default_branch": "main",
            "owner": {"login": "acme"},
        },
        "pusher": {"name": "maintainer"},
        "sender": {"login": "maintainer", "id": 9},
        "installation": {"id": 1001},
    }


def github_deployments(fake) -> list:
    with fake.lock:
        return sorted(fake.deployments.values(), key=lambda d: d.id)


def states(found) -> list[str]:
    return [status.state for status in found.statuses]


@pytest.fixture
def workers(bot):
    """Two workers beside the test, as `tierbot serve -j 2` runs them: outbox syncs happen mid-deploy."""
    stop = threading.Event()
    threads = [threading.Thread(target=Worker(bot.pipeline).run_forever, args=(stop,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    yield
    stop.set()
    for thread in threads:
        thread.join()


def test_a_merged_pull_request_deploys_and_github_hears_it_go(bot, fake, scaler, bare, workers):
    payload = merged(fake, scaler, bare, {"tierbot.yaml": SLOW_SMOKE, "scale.txt": "3"})
    sha = payload["pull_request"]["merge_commit_sha"]
    assert bot.deliver("pull_request", payload).status_code == 202

    (found,) = wait_until(
        lambda: (d := github_deployments(fake)) and "success" in states(d[0]) and d, timeout=120
    )

    assert (found.sha, found.environment, found.task, found.production_environment) == (
        sha,
        "production",
        "deploy",
        True,
    )
    (deployment,) = deployments_of(bot.pipeline).recent()
    assert found.payload == {"tierbot_deployment": deployment.id, "kind": "deploy"}
    assert states(found) == ["queued", "in_progress", "success"]
    success = found.statuses[-1]
    assert success.environment_url == deployment.url
    assert success.description == f"live at {deployment.url}, serving {sha[:7]}"
    assert success.log_url.startswith(f"{PUBLIC_URL}/reports/{deployment.comparison_id}?token=")
    report = bot.client.get(success.log_url.removeprefix(PUBLIC_URL))
    assert report.status_code == 200 and "smoke request answered" in report.text
    assert predict(deployment.url, {"x": [1]}).json() == {"y": [3.0]}
    (comment,) = wait_until(lambda: [c for c in ours(fake) if "Deployed" in c.body])
    assert comment.body.startswith("<!-- tierbot:deploy environment=production -->\n")
    assert f"🚀 Deployed `{sha[:7]}` to **production**: {deployment.url}" in comment.body


def test_a_version_left_down_is_an_error_on_github(bot, fake, scaler, bare, workers):
    payload = merged(fake, scaler, bare, {"scale.txt": "3"})
    assert bot.deliver("pull_request", payload).status_code == 202
    (found,) = wait_until(lambda: (d := github_deployments(fake)) and "success" in states(d[0]) and d)
    (deployment,) = deployments_of(bot.pipeline).recent()
    now = utcnow().isoformat()
    with bot.pipeline.db.session() as s:  # it died three times in the last minutes: the next is too many
        s.get(Deployment, deployment.id).instance = deployment.instance | {RESTARTED: [now] * RESTARTS}
    os.kill(deployment.instance["pid"], signal.SIGKILL)
    wait_until(lambda: not alive(deployment.instance["pid"]), what="the model server's end")

    supervise(Deployer(bot.pipeline))

    wait_until(lambda: states(github_deployments(fake)[0])[-1] == "error", timeout=60)
    assert github_deployments(fake)[0].statuses[-1].description.startswith("DOWN since ")


def test_a_pull_request_closed_without_merging_deploys_nothing(bot, fake, scaler, bare):
    payload = merged(fake, scaler, bare, {"scale.txt": "3"})
    payload["pull_request"]["merged"] = False
    bot.deliver("pull_request", payload, delivery="closed-1")
    settle(bot)
    assert (
        bot.pipeline.deliveries.get("closed-1").outcome
        == "nothing to cancel; closed without merging: nothing to deploy"
    )
    assert deployments_of(bot.pipeline).recent() == [] and github_deployments(fake) == []


def test_a_redelivered_merge_and_the_push_of_its_commit_deploy_it_once(bot, fake, scaler, bare):
    payload = merged(fake, scaler, bare, {"scale.txt": "3"})
    sha = payload["pull_request"]["merge_commit_sha"]
    assert bot.deliver("push", push(scaler), delivery="push-1").status_code == 202
    bot.deliver("pull_request", payload, delivery="merge-1")
    assert bot.deliver("pull_request", payload, delivery="merge-1").json()["result"] == "duplicate"
    bot.deliver("pull_request", payload, delivery="merge-1-replayed")
    settle(bot)

    (deployment,) = deployments_of(bot.pipeline).recent()
    outcomes = [bot.pipeline.deliveries.get(d).outcome for d in ("push-1", "merge-1", "merge-1-replayed")]
    assert outcomes == [
        f"deployment {deployment.id} of {sha[:7]} to production queued",
        *[f"nothing to cancel; nothing new: {sha[:7]} is deployment {deployment.id} (queued)"] * 2,
    ]
    # the push came first; the merge's event added its pull request, which hears about it
    assert deployment.report_to == [
        {"github_deployment": {"repository": REPO, "installation": 1001, "pull_request": 7}}
    ]
    (found,) = github_deployments(fake)
    assert states(found)[-1] == "success"
    assert [c for c in ours(fake) if "Deployed" in c.body]


def test_a_push_elsewhere_than_the_default_branch_deploys_nothing(bot, fake, scaler, bare):
    bot.deliver("push", push(scaler, ref="refs/heads/feature"), delivery="p")
    settle(bot)
    assert bot.pipeline.deliveries.get("p").outcome == (
        "a push to refs/heads/feature: only the default branch (main) deploys"
    )


def test_the_next_merge_replaces_the_first_which_goes_inactive(bot, fake, scaler, bare):
    bot.deliver("pull_request", merged(fake, scaler, bare, {"scale.txt": "3"}, number=7))
    settle(bot)
    bot.deliver("pull_request", merged(fake, scaler, bare, {"scale.txt": "4"}, number=8))
    settle(bot)

    first, second = github_deployments(fake)
    assert (states(first)[-1], states(second)[-1]) == ("inactive", "success")
    assert first.statuses[-1].description.startswith("replaced by deployment 2")
    assert predict(second.statuses[-1].environment_url, {"x": [1]}).json() == {"y": [4.0]}


def test_a_broken_merge_fails_on_github_and_the_old_version_keeps_serving(bot, fake, scaler, bare):
    bot.deliver("pull_request", merged(fake, scaler, bare, {"scale.txt": "3"}, number=7))
    settle(bot)
    bot.deliver("pull_request", merged(fake, scaler, bare, {"serve.py": BROKEN_SERVE}, number=8))
    settle(bot)

    first, second = github_deployments(fake)
    assert (states(first)[-1], states(second)[-1]) == ("success", "failure")
    failure = second.statuses[-1]
    assert failure.description.startswith("the model server exited with code 3: tierbot model server: cannot")
    assert failure.log_url.startswith(f"{PUBLIC_URL}/reports/")
    url = first.statuses[-1].environment_url
    assert requests.post(f"{url}/predict", json={"x": [1]}).json() == {"y": [3.0]}
    (comment,) = [c for c in ours(fake, number=8) if "tierbot:deploy" in c.body]
    assert "was **not deployed** to **production**" in comment.body
