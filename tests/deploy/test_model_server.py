"""The model server as a process, run by path as the local target runs it, serving a repository's own
predict with an artifact: the answers, the refusals (4xx with the reason, 500 with the exception's type
only), health, version and metrics, an import error before it listens, and a drain on SIGTERM."""

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from bot.deploy import model_server

from ..conftest import write_tree
from ..fakes.waiting import wait_until
from .conftest import BROKEN_SERVE, SERVE


def start(tmp_path: Path, serve: str = SERVE) -> tuple[subprocess.Popen, str, Path]:
    """A model server for `serve` over an artifact of scale 2; its process, URL and log."""
    write_tree(tmp_path / "code", {"serve.py": serve})
    write_tree(
        tmp_path, {"model.json": json.dumps({"scale": 2}), "version.json": json.dumps({"commit": "abc"})}
    )
    log = tmp_path / "server.log"
    argv = [
        sys.executable,
        model_server.__file__,
        *("--checkout", str(tmp_path / "code"), "--predict", "serve.py:predict"),
        *("--artifact", str(tmp_path / "model.json"), "--version-file", str(tmp_path / "version.json")),
        *("--ready-file", str(tmp_path / "ready.json")),
    ]
    process = subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    ready_file = tmp_path / "ready.json"
    wait_until(lambda: process.poll() is not None or ready_file.exists(), what="the server ready, or ended")
    url = f"http://127.0.0.1:{json.loads(ready_file.read_text())['port']}" if ready_file.exists() else ""
    return process, url, log


@pytest.fixture
def served(tmp_path):
    process, url, log = start(tmp_path)
    yield url, log
    process.kill()
    process.wait()


def test_it_answers_predict_with_the_artifact_single_or_batch(served):
    url, _ = served
    assert requests.post(f"{url}/predict", json={"x": [1, 2]}).json() == {"y": [2, 4]}
    assert requests.post(f"{url}/predict", json={"x": []}).json() == {"y": []}
    assert requests.get(f"{url}/healthz").json() == {"status": "ok"}
    assert requests.get(f"{url}/version").json() == {"commit": "abc"}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("POST", "/predict", b"{not json", 400, "the body is not JSON: Expecting property name"),
        ("POST", "/predict", b'{"z": 1}', 400, "expected {'x': [numbers]}"),  # predict's ValueError
        ("POST", "/predict", b'{"x": [1], "boom": true}', 500, "predict raised RuntimeError"),
        ("GET", "/predict", None, 405, "POST a JSON body to /predict"),
        ("POST", "/elsewhere", b"{}", 404, "no such path: /elsewhere"),
    ],
)
def test_a_bad_request_gets_a_4xx_and_a_failure_a_500_without_its_details(
    served, method, path, body, status, error
):
    url, log = served
    answer = requests.request(method, f"{url}{path}", data=body)
    assert answer.status_code == status
    assert answer.json()["error"].startswith(error)
    assert "secret-ish" not in answer.text and "Traceback" not in answer.text
    if status == 500:  # the details are for the server's log on this machine
        assert "RuntimeError: secret-ish detail" in wait_until(
            lambda: "secret-ish" in log.read_text() and log.read_text()
        )


def test_metrics_count_requests_latency_and_errors(served):
    url, _ = served
    requests.post(f"{url}/predict", json={"x": [1]})
    requests.post(f"{url}/predict", json={"x": [1], "boom": True})
    metrics = requests.get(f"{url}/metrics").text
    assert 'tierbot_model_requests_total{path="/predict",status="200"} 1' in metrics
    assert 'tierbot_model_requests_total{path="/predict",status="500"} 1' in metrics
    assert "tierbot_model_predict_seconds_count 2" in metrics
    assert 'tierbot_model_predict_seconds_bucket{le="+Inf"} 2' in metrics
    assert "tierbot_model_predict_errors_total 1" in metrics


def test_an_import_error_ends_it_before_it_listens(tmp_path):
    process, url, log = start(tmp_path, BROKEN_SERVE)
    assert (process.wait(timeout=30), url) == (model_server.IMPORT_FAILED, "")
    assert log.read_text().strip() == (
        "tierbot model server: cannot import serve.py:predict: "
        "ModuleNotFoundError: No module named 'no_such_module_anywhere'"
    )


def test_sigterm_drains_the_requests_in_flight(tmp_path):
    process, url, _ = start(tmp_path)
    answers = []
    slow = threading.Thread(
        target=lambda: answers.append(
            requests.post(f"{url}/predict", json={"x": [1], "sleep": 2}, timeout=10)
        )
    )
    slow.start()
    wait_until(lambda: "tierbot_model_in_flight 1" in requests.get(f"{url}/metrics").text, what="in predict")
    process.send_signal(signal.SIGTERM)
    wait_until(lambda: not accepts(url), what="no new connection accepted while it drains")
    assert slow.is_alive()  # the request in flight is still being answered
    slow.join()
    assert process.wait(timeout=10) == 0
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"y": [2]})]


def accepts(url: str) -> bool:
    try:
        requests.get(f"{url}/healthz", timeout=2)
    except requests.RequestException:  # refused; or, in the moment before it closes, never answered
        return False
    return True
