"""The deploy proxy as the process it is (`python -m bot.deploy.proxy`): nothing deployed is a 503, the
route file's atomic replacement moves the next request, answered predict bodies are captured (bounded,
bodies only) and shown only to whoever has the token, a model server that is gone is a 502."""

import json
import subprocess
import sys

import pytest
import requests

from bot.deploy import proxy

from ..fakes.waiting import wait_until
from .test_model_server import start


@pytest.fixture
def state(tmp_path):
    home = tmp_path / "env"
    home.mkdir()
    (home / "token").write_text("t0ken")
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.deploy.proxy", str(home)], stderr=subprocess.DEVNULL
    )
    ready = home / "proxy.ready.json"
    wait_until(ready.exists, what="the proxy")
    yield home, f"http://127.0.0.1:{json.loads(ready.read_text())['port']}"
    process.kill()
    process.wait()


def route(home, url: str) -> None:
    port = int(url.rsplit(":", 1)[1])
    (home / "route.tmp").write_text(json.dumps({"host": "127.0.0.1", "port": port, "deployment": "x"}))
    (home / "route.tmp").replace(home / "route.json")


def admin(url: str, what: str, token: str | None = "t0ken") -> requests.Response:
    return requests.get(f"{url}{proxy.ADMIN}{what}", headers={proxy.TOKEN_HEADER: token} if token else {})


def test_it_routes_where_the_route_file_says(state, tmp_path):
    home, url = state
    assert requests.post(f"{url}/predict", json={"x": [1]}).status_code == 503
    first, first_url, _ = start(tmp_path / "a")
    second, second_url, _ = start(tmp_path / "b", serve=(tmp_path / "a/code/serve.py").read_text())
    try:
        route(home, first_url)
        with requests.Session() as session:  # one kept-alive connection to the proxy throughout
            assert session.post(f"{url}/predict", json={"x": [1]}).json() == {"y": [2]}
            (tmp_path / "b" / "model.json").write_text(json.dumps({"scale": 10}))
            route(home, second_url)
            assert session.post(f"{url}/predict", json={"x": [1]}).json() == {"y": [10]}
            assert session.get(f"{url}/healthz").json() == {"status": "ok"}
        second.kill()
        second.wait()
        gone = requests.post(f"{url}/predict", json={"x": [1]})
        assert gone.status_code == 502 and gone.json()["error"].startswith("the model server did not answer")
    finally:
        for process in (first, second):
            process.kill()
            process.wait()


def test_it_captures_answered_predict_bodies_for_the_token_only(state, tmp_path):
    home, url = state
    served, served_url, _ = start(tmp_path / "a")
    try:
        route(home, served_url)
        for x in range(proxy.CAPTURE_COUNT + 5):
            requests.post(f"{url}/predict", json={"x": [x]}, headers={"Authorization": "Bearer secret"})
        requests.post(f"{url}/predict", json={"z": 1})  # a 400: not a request worth replaying
        requests.post(f"{url}/predict", data=b"x" * (proxy.CAPTURE_BODY_BYTES + 1))  # too big to keep
        assert admin(url, "captured", token=None).status_code == 404
        assert admin(url, "captured", token="wrong").status_code == 404
        captured = admin(url, "captured").json()["requests"]
        assert len(captured) == proxy.CAPTURE_COUNT
        assert captured[0] == '{"x": [5]}' and captured[-1] == f'{{"x": [{proxy.CAPTURE_COUNT + 4}]}}'
        status = admin(url, "status").json()
        assert status["upstream"] == served_url and status["captured"] == proxy.CAPTURE_COUNT
    finally:
        served.kill()
        served.wait()


def test_a_flood_of_one_request_keeps_the_variety_it_would_push_out():
    captured = proxy.Captured()
    for x in range(5):
        captured.add(json.dumps({"x": [x]}).encode())
    for _ in range(proxy.CAPTURE_COUNT * 3):  # a client retrying one request, or a probe
        captured.add(b'{"x": [1]}')
    assert captured.recent() == [json.dumps({"x": [x]}) for x in (0, 2, 3, 4, 1)]  # newest last
