"""The model server: one generic HTTP server for a repository's own `predict` and the artifact its run
made (`deploy.predict`, `deploy.artifact` in tierbot.yaml). What served the comparison serves the API.

    python model_server.py --checkout DIR --predict serve.py:predict --artifact FILE \
        --version-file version.json [--ready-file ready.json] [--host 127.0.0.1] [--port 0]

`POST /predict` takes a JSON body (one instance or a batch: whatever `predict` accepts) and answers
`predict(body, artifact_path)` as JSON; `GET /healthz`, `GET /version` (commit, run, artifact hash,
deployed at), `GET /metrics` (Prometheus: requests by status, a latency histogram, predict's errors).
A body that is not JSON, too large or without a length is a 4xx with the reason; a `ValueError` from
`predict` (its way of saying the input is wrong) a 400 with its message; any other exception a 500 that
names its type only, the traceback going to the server's log on this machine, never to the client.

It runs in the experiment's own environment (its cached venv), executed by path, never imported by
tierbot: so it uses the standard library alone. FastAPI and uvicorn are tierbot's dependencies, rarely
a model's (the iris example's venv has scikit-learn, numpy and matplotlib), and installing them into the
experiment's venv would change the environment whose outputs were compared. `ThreadingHTTPServer`
with HTTP/1.1 keep-alive answers a loopback request in well under a millisecond more than the call.

    python model_server.py serve

is SageMaker's serving contract (the sagemaker target): the release is the model data SageMaker unpacks
in /opt/ml/model (`code/`, `artifact/<file>`, `version.json`, and this file), `TIERBOT_PREDICT` names
`predict`, and it listens on port 8080 (`SAGEMAKER_BIND_TO_PORT` when SageMaker sets it) of every
interface (`TIERBOT_SERVE_HOST` narrows it: the tests' containers share the host's network). `GET /ping`
and `POST /invocations` are SageMaker's names for `/healthz` and `/predict`.

It imports `predict` before it listens: an import error ends it with the reason on stderr and exit code
3, before anything could route to it. Ready, it writes `--ready-file` ({"pid", "port"}, atomically).
SIGTERM drains: it stops accepting connections, answers the requests in flight (at most DRAIN_SECONDS),
then exits; `/healthz` says 503 meanwhile.
"""

import os
import sys

# First of all, when run by path: Python put this file's directory at the head of sys.path, where
# tierbot's modules would shadow the experiment's own (and the standard library's) from here on.
_HERE = os.path.dirname(os.path.abspath(__file__))
if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0] or os.curdir) == _HERE:
    del sys.path[0]

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from http import HTTPStatus  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402

MAX_BODY_BYTES = 10 * 1024 * 1024
DRAIN_SECONDS = 30.0
IDLE_SECONDS = 60.0  # a keep-alive connection with no request for this long is closed
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
IMPORT_FAILED = 3  # the exit code when `predict` cannot be imported
SAGEMAKER_MODEL = "/opt/ml/model"  # where SageMaker unpacks the model data
SAGEMAKER_PORT = 8080
ALIASES = {"/ping": "/healthz", "/invocations": "/predict"}  # SageMaker's paths for ours


class Metrics:
    """Requests by path and status, the latency of `/predict` as a histogram, and predict's errors."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.buckets = [0] * len(BUCKETS)
        self.count, self.total = 0, 0.0
        self.errors = 0  # exceptions raised by predict (a 400 from its ValueError is not one)
        self.in_flight = 0

    def observe(self, path: str, status: int, seconds: float | None) -> None:
        with self.lock:
            key = (path, status)
            self.requests[key] = self.requests.get(key, 0) + 1
            if seconds is not None:
                self.count, self.total = self.count + 1, self.total + seconds
                for i, bound in enumerate(BUCKETS):
                    if seconds <= bound:
                        self.buckets[i] += 1

    def exposition(self) -> str:
        with self.lock:
            lines = ["# TYPE tierbot_model_requests_total counter"]
            for (path, status), n in sorted(self.requests.items()):
                lines.append(f'tierbot_model_requests_total{{path="{path}",status="{status}"}} {n}')
            lines.append("# TYPE tierbot_model_predict_seconds histogram")
            for bound, n in zip(BUCKETS, self.buckets, strict=True):
                lines.append(f'tierbot_model_predict_seconds_bucket{{le="{bound}"}} {n}')
            lines.append(f'tierbot_model_predict_seconds_bucket{{le="+Inf"}} {self.count}')
            lines.append(f"tierbot_model_predict_seconds_sum {self.total:.6f}")
            lines.append(f"tierbot_model_predict_seconds_count {self.count}")
            lines.append("# TYPE tierbot_model_predict_errors_total counter")
            lines.append(f"tierbot_model_predict_errors_total {self.errors}")
            lines.append("# TYPE tierbot_model_in_flight gauge")
            lines.append(f"tierbot_model_in_flight {self.in_flight}")
            return "\n".join(lines) + "\n"


class Model:
    """The served function, its artifact, what `/version` says, and the server's state."""

    def __init__(self, predict, artifact: str, version: dict):
        self.predict, self.artifact, self.version = predict, artifact, version
        self.metrics = Metrics()
        self.draining = threading.Event()


def load_predict(checkout: str, entrypoint: str):
    """`serve.py:predict` from the checkout, imported as the experiment imports its modules: with the
    checkout first on sys.path and as the working directory."""
    module_path, _, name = entrypoint.partition(":")
    sys.path.insert(0, checkout)
    os.chdir(checkout)
    module_name = os.path.splitext(os.path.basename(module_path))[0]
    spec = importlib.util.spec_from_file_location(module_name, os.path.join(checkout, module_path))
    if spec is None or spec.loader is None:
        raise ImportError(f"{module_path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    function = getattr(module, name, None)
    if not callable(function):
        raise ImportError(f"{module_path} has no function {name}")
    return function


def _plain(value):
    """What json cannot encode but a model commonly returns: numpy arrays and scalars."""
    for method in ("tolist", "item"):
        if hasattr(value, method):
            return getattr(value, method)()
    raise TypeError(f"{type(value).__name__} is not JSON")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a proxy reuses its connections
    server_version = "tierbot-model"
    # A response's header and body are two writes: with Nagle's algorithm the second waits for the
    # client's delayed ACK, 40 ms on Linux, on every request.
    disable_nagle_algorithm = True
    timeout = IDLE_SECONDS
    model: Model  # set on the subclass `serve` makes

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        path = ALIASES.get(self.path, self.path)
        if path == "/healthz":
            if self.model.draining.is_set():
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"status": "draining"})
            else:
                self._json(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/version":
            self._json(HTTPStatus.OK, self.model.version)
        elif self.path == "/metrics":
            self._send(HTTPStatus.OK, self.model.metrics.exposition().encode(), "text/plain; version=0.0.4")
        elif path == "/predict":
            self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": f"POST a JSON body to {self.path}"})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path[:100]}"})

    def do_POST(self) -> None:  # noqa: N802
        if ALIASES.get(self.path, self.path) != "/predict":
            self._discard_body()
            self._json(HTTPStatus.NOT_FOUND, {"error": f"no such path: {self.path[:100]}"})
            return
        metrics = self.model.metrics
        with metrics.lock:
            metrics.in_flight += 1
        started = time.perf_counter()
        try:
            status, answer = self._predict()
        finally:
            with metrics.lock:
                metrics.in_flight -= 1
        self._send(status, answer, "application/json", seconds=time.perf_counter() - started)

    def _predict(self) -> tuple[int, bytes]:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True  # a body of unknown length cannot be skipped
            return _error(HTTPStatus.LENGTH_REQUIRED, "send the JSON body with a Content-Length")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True
            return _error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(self.rfile.read(int(length)))
        except ValueError as exc:
            return _error(HTTPStatus.BAD_REQUEST, f"the body is not JSON: {exc}")
        try:
            result = self.model.predict(payload, self.model.artifact)
        except ValueError as exc:  # predict's own word that the input is wrong: the client's to fix
            return _error(HTTPStatus.BAD_REQUEST, str(exc).splitlines()[0][:500] if str(exc) else "bad input")
        except Exception as exc:
            return self._failed(f"predict raised {type(exc).__name__}")
        try:
            return HTTPStatus.OK, json.dumps(result, default=_plain).encode()
        except (TypeError, ValueError) as exc:
            return self._failed(f"predict returned something that is not JSON ({exc})")

    def _failed(self, message: str) -> tuple[int, bytes]:
        """A 500 that says what failed, never how: the traceback is for the server's log only."""
        traceback.print_exc(file=sys.stderr)
        with self.model.metrics.lock:
            self.model.metrics.errors += 1
        return _error(HTTPStatus.INTERNAL_SERVER_ERROR, message)

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _json(self, status: int, data: dict) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str, seconds: float | None = None) -> None:
        if self.model.draining.is_set():
            self.close_connection = True  # the next request goes to whatever serves now
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.model.metrics.observe(self.path.split("?")[0][:50], int(status), seconds)

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        """Quiet: /metrics counts requests; a line per request would cost each of them a write."""


def _error(status: int, message: str) -> tuple[int, bytes]:
    return status, json.dumps({"error": message}).encode()


def serve(model: Model, host: str, port: int, ready_file: str | None) -> None:
    handler = type("ModelHandler", (Handler,), {"model": model})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # draining waits for requests in flight, not for idle connections

    def drain(_signum, _frame) -> None:
        model.draining.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, drain)
    signal.signal(signal.SIGINT, drain)
    if ready_file is not None:
        _write_atomically(ready_file, {"pid": os.getpid(), "port": server.server_address[1]})
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # no new connections from here on
    deadline = time.monotonic() + DRAIN_SECONDS
    while model.metrics.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)


def _write_atomically(path: str, data: dict) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w") as handle:
        json.dump(data, handle)
    os.replace(temporary, path)


def sagemaker_arguments() -> list[str]:
    """`serve`'s arguments: the release where SageMaker unpacked it, the port SageMaker calls."""
    artifacts = os.path.join(SAGEMAKER_MODEL, "artifact")
    found = sorted(os.listdir(artifacts)) if os.path.isdir(artifacts) else []
    return [
        *(
            "--checkout",
            os.path.join(SAGEMAKER_MODEL, "code"),
            "--predict",
            os.environ.get("TIERBOT_PREDICT", ""),
        ),
        *("--artifact", os.path.join(artifacts, found[0] if found else "missing")),
        *("--version-file", os.path.join(SAGEMAKER_MODEL, "version.json")),
        *("--host", os.environ.get("TIERBOT_SERVE_HOST", "0.0.0.0")),  # noqa: S104 (SageMaker's contract)
        *("--port", os.environ.get("SAGEMAKER_BIND_TO_PORT", str(SAGEMAKER_PORT))),
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["serve"]:  # how SageMaker starts an inference container
        argv = sagemaker_arguments()
    parser = argparse.ArgumentParser(description="Serve a repository's predict function over HTTP.")
    for option in ("--checkout", "--predict", "--artifact", "--version-file"):
        parser.add_argument(option, required=True)
    parser.add_argument("--ready-file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    artifact = os.path.abspath(args.artifact)  # before chdir
    ready_file = os.path.abspath(args.ready_file) if args.ready_file else None
    with open(args.version_file) as handle:
        version = json.load(handle)
    try:
        predict = load_predict(os.path.abspath(args.checkout), args.predict)
    except BaseException as exc:  # an import error, a syntax error, a module that exits on import
        print(
            f"tierbot model server: cannot import {args.predict}: {type(exc).__name__}: {exc}",
            file=sys.stderr,
        )
        return IMPORT_FAILED
    print(f"tierbot model server: serving {args.predict} with {args.artifact}", file=sys.stderr, flush=True)
    serve(Model(predict, artifact, version), args.host, args.port, ready_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
