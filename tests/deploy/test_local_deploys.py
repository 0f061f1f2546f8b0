"""The local target end to end on a real repository, database and processes: what is deployed is the
run's very artifact served by the commit's own predict; blue/green keeps the URL and loses no request;
any failure before the switch (a broken predict, a failing smoke request, a prediction diff beyond
`max_changed`) keeps the old version serving; a second merge supersedes a queued one; rollback."""

import threading

import requests
from sqlalchemy import select

from bot.deploy.plan import deployments_of, request_deploy, request_rollback
from bot.request import RunRequest
from bot.store import Output
from bot.tiers import Requester
from bot.worker import Worker

from .conftest import BROKEN_SERVE, SPEC, alive, deploy, predict, report_of, work_until_done


def test_a_deploy_serves_the_compared_artifact_with_the_commits_own_predict(pipeline, scaler):
    sha = scaler.git("rev-parse", "HEAD")
    compared = pipeline.submit(RunRequest(repository=str(scaler.path), ref=sha)).head
    while Worker(pipeline).run_once():
        pass

    deployment = deploy(pipeline, str(scaler.path), sha)

    assert deployment.state == "live", deployment.reason
    run = pipeline.run(deployment.run_id)
    assert run.reused_run_id == compared.id  # not run again: the compared run's outputs
    with pipeline.db.session() as s:
        blob = s.scalars(
            select(Output.hash).where(Output.run_id == compared.id, Output.path == "model.json")
        ).one()
    version = requests.get(f"{deployment.url}/version", timeout=5).json()
    assert version | {"deployed_at": None} == {
        "commit": sha,
        "run_id": compared.id,
        "artifact": "model.json",
        "artifact_hash": blob,
        "predict": "serve.py:predict",
        "environment": "production",
        "deployment": deployment.id,
        "deployed_at": None,
    }
    assert predict(deployment.url, {"x": [3, 4]}).json() == {"y": [6.0, 8.0]}
    assert "smoke request answered: {&#34;y&#34;: [2.0, 4.0]}" in report_of(pipeline, deployment)


def test_a_new_commit_switches_blue_green_without_losing_a_request(pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    for x in range(5):  # traffic the proxy keeps, to replay against both versions
        assert predict(first.url, {"x": [x]}).status_code == 200
    failures, stop = [], threading.Event()

    def load() -> None:
        with requests.Session() as session:
            while not stop.is_set():
                answer = session.post(f"{first.url}/predict", json={"x": [1]}, timeout=10)
                if answer.status_code != 200:
                    failures.append(answer.text)

    thread = threading.Thread(target=load)
    thread.start()
    try:
        second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}, "scale 3"))
    finally:
        stop.set()
        thread.join()

    assert (second.state, second.url) == ("live", first.url), second.reason
    assert failures == []
    assert predict(second.url, {"x": [3]}).json() == {"y": [9.0]}
    old = deployments_of(pipeline).get(first.id)
    assert old.state == "retired" and old.reason == f"replaced by deployment {second.id} ({second.short_sha})"
    assert not alive(old.instance["pid"])
    report = report_of(pipeline, second)
    assert "5 of 6 replayed requests answered differently (compared exactly)" in report  # x=0 stays 0
    assert "answer.y[0]" in report and "switched" in report


def test_a_broken_predict_fails_and_the_old_version_keeps_serving(pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    broken = scaler.commit({"serve.py": BROKEN_SERVE, "scale.txt": "5"}, "break predict")

    second = deploy(pipeline, str(scaler.path), broken)

    assert second.state == "failed"
    assert "the model server exited with code 3" in second.reason
    assert "ModuleNotFoundError: No module named 'no_such_module_anywhere'" in second.reason
    assert second.reason.endswith("The version that was live keeps serving.")
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}
    assert deployments_of(pipeline).live(str(scaler.path), "production").id == first.id


def test_a_failing_smoke_request_keeps_the_old_version(pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    spec = SPEC.replace("smoke: {x: [1, 2]}", "smoke: {z: 1}")
    changed = scaler.commit({"tierbot.yaml": spec, "scale.txt": "4"}, "a smoke request predict refuses")

    second = deploy(pipeline, str(scaler.path), changed)

    assert second.state == "failed"
    assert second.reason.startswith('the smoke request got 400: {"error": "expected {\'x\': [numbers]}"}')
    new_pid = second.instance["pid"]
    assert not alive(new_pid)  # the new version is stopped; the old one answers as before
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}


def test_a_prediction_diff_beyond_max_changed_is_refused(pipeline, scaler):
    gated = SPEC + '  max_changed: "20%"\n'
    first = deploy(pipeline, str(scaler.path), scaler.commit({"tierbot.yaml": gated}, "gate"))
    for x in (1, 2, 3, 4):
        predict(first.url, {"x": [x]})

    second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "2.5"}, "scale 2.5"))

    assert second.state == "refused"
    assert second.reason.startswith(
        "5 of 5 replayed requests were answered differently, more than deploy.max_changed (20%) allows"
    )
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}
    report = report_of(pipeline, second)
    assert "deploy.max_changed 20% allows 1" in report


def test_two_merges_in_a_row_deploy_the_newer_and_skip_the_older(pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    requester = Requester(name="test")
    older, _ = request_deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}), requester, [])
    newer, _ = request_deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "4"}), requester, [])

    done = work_until_done(pipeline, newer.id)

    assert done.state == "live", done.reason
    skipped = deployments_of(pipeline).get(older.id)
    assert skipped.state == "skipped"
    assert skipped.reason == f"superseded by deployment {newer.id} ({newer.short_sha}) before it started"
    assert predict(first.url, {"x": [1]}).json() == {"y": [4.0]}


def test_a_commit_is_deployed_once(pipeline, scaler):
    sha = scaler.git("rev-parse", "HEAD")
    first = deploy(pipeline, str(scaler.path), sha)
    again, new = request_deploy(pipeline, str(scaler.path), sha, Requester(name="test"), [])
    assert (again.id, new) == (first.id, False)


def test_rollback_serves_the_previous_release_again(pipeline, scaler):
    first = deploy(pipeline, str(scaler.path), scaler.git("rev-parse", "HEAD"))
    second = deploy(pipeline, str(scaler.path), scaler.commit({"scale.txt": "3"}))
    assert predict(first.url, {"x": [1]}).json() == {"y": [3.0]}

    rollback = request_rollback(pipeline, str(scaler.path), "production", None, Requester(name="ops"))
    done = work_until_done(pipeline, rollback.id)

    assert (done.state, done.kind, done.sha, done.source_id) == ("live", "rollback", first.sha, first.id)
    assert done.reason == f"live at {first.url}, rolled back to {first.short_sha}"
    assert predict(first.url, {"x": [1]}).json() == {"y": [2.0]}
    assert deployments_of(pipeline).get(second.id).state == "retired"
