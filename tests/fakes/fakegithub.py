"""A fake GitHub REST API: a real HTTP server on 127.0.0.1 that real clients (PyGithub) talk to.

    with FakeGitHub() as fake:
        fake.add_repo("acme/models")
        fake.add_pull("acme/models", 7, head_sha=sha, head_ref="better")
        gh = Github(base_url=fake.url, auth=Auth.Token(fake.token), seconds_between_writes=None)
        gh.get_repo("acme/models").get_pull(7).create_issue_comment("hi")
        assert [c.status for c in fake.calls("POST", "/repos/acme/models/issues/7/comments")] == [201]

It is stateful (repositories, pull requests, comments, reactions, check runs with their history,
collaborator roles, teams, tokens; see `fakegithub_state.World`), authenticates like GitHub (a plain
token, or an App: RS256 JWT signed with `app_private_key_pem` → installation tokens that expire, or a
GitHub Actions job's GITHUB_TOKEN with its workflow's permissions: `add_actions_token`), records
every request in `requests`, writes its own base URL into every `url` field and `Link` header, and can
inject failures (`fail_next`) and rate limits (`rate_limit_next`). Endpoints: `fakegithub_api`,
`fakegithub_checks` and `fakegithub_deployments`; JSON shapes: `fakegithub_json`.

What PyGithub (2.10) does that tests meet:
- `Github()`'s default `retry` is `Github.default_retry = GithubRetry()`: urllib3 `Retry(total=10,
  backoff_factor=0)` on 500–599 and 403, for DELETE/GET/HEAD/OPTIONS/PUT/TRACE **and POST** (not
  PATCH). A 403 is retried only if it has `Retry-After` or a rate-limit message (primary: sleeps until
  `X-RateLimit-Reset` + 1 s; secondary without `Retry-After`: sleeps `secondary_rate_wait`, 60 s); a 429
  only with `Retry-After`, which is honoured. When retries run out, urllib3's MaxRetryError surfaces as
  `requests.exceptions.RetryError`, not a GithubException. So by default a 502 on POST is re-POSTed
  silently (twice posted if the 502 hid a success: `fail_next(..., applied=True)`); `retry=None` means
  no retries at all. `GithubIntegration()`'s default is `retry=None`.
- Throttling: `Github` and `GithubIntegration` sleep 0.25 s between requests and 1 s between writes
  unless given `seconds_between_requests=None, seconds_between_writes=None`.
- Objects are not lazy: `repo.get_pull(n)`, `pull.get_issue_comment(id)`, `repo.get_check_run(id)`,
  `repo.get_commit(sha)` each GET at once (`Github(lazy=True)` defers that).
- `AppAuth(app_id, key).get_installation_auth(id)` POSTs `/app/installations/{id}/access_tokens` with
  `Bearer <JWT>` (RS256, iat now-60 s, exp now+300 s, iss the App id) on first use, and again once the
  token is within 20 s of `expires_at`; it then sends `Authorization: token ghs_…`.

Where this fake is stricter or simpler than GitHub: requests without credentials get 401 everywhere
(GitHub serves public data anonymously); any 7–40 hex-digit ref is an existing commit; where GitHub's
exact error wording is unknown (check-run actions) the message is a close guess, the status is right.
"""

import asyncio
import fnmatch
import functools
import json
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from . import fakegithub_checks, fakegithub_deployments, fakegithub_device  # noqa: F401  (register their endpoints)
from .fakegithub_api import ROUTES, Call, Refusal, Reply
from .fakegithub_git import serve_git
from .fakegithub_state import Token, World, now
from .loopback import ServedFake, read_request

PRIMARY_LIMIT_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
SECONDARY_LIMIT_DOCS = f"{PRIMARY_LIMIT_DOCS}#about-secondary-rate-limits"


@dataclass(frozen=True)
class Recorded:
    """One request as it crossed the wire, and what the fake answered."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names
    json: Any
    status: int
    response: Any
    injected: bool  # the answer came from fail_next / rate_limit_next
    response_headers: dict[str, str]
    at: float  # time.time() when the fake answered: a retry's wait is measured from here


@dataclass
class Fault:
    method: str
    path: str
    times: int
    reply: Callable[[], Reply]
    applied: bool  # carry the request out, then answer with the fault (a 502 that hides a success)


@functools.cache
def _app_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)  # one per test session: slow-ish


class FakeGitHub(ServedFake, World):
    """The server around a `World`; see the module docstring. Attributes tests use besides World's:
    `url`, `token` (plain token of `token_login`), `app_id`, `app_private_key_pem`, `requests`, `errors`."""

    def __init__(self, app_id: int = 4242, app_slug: str = "tierbot", token_login: str = "tierbot-user"):
        super().__init__(app_id, app_slug, token_login)
        key = _app_key()
        self.app_private_key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self._public_key = key.public_key()
        self.requests: list[Recorded] = []
        self.errors: list[str] = []  # tracebacks of the fake's own bugs (answered with 500)
        self._faults: list[Fault] = []
        self.git_dirs: dict[str, Path] = {}  # full name → bare repository served at {url}/{full name}.git

    def add_git(self, full_name: str, bare: Path) -> None:
        """Serve this bare repository's contents as the repository's git host (see `fakegithub_git`)."""
        self.git_dirs[full_name] = Path(bare)

    # -- what crossed the wire ------------------------------------------------------------------------

    def calls(self, method: str = "*", path: str = "*") -> list[Recorded]:
        """Recorded requests whose method and path match these globs (`*` spans slashes), oldest first."""
        with self.lock:
            return [
                r
                for r in self.requests
                if fnmatch.fnmatchcase(r.method, method.upper()) and fnmatch.fnmatchcase(r.path, path)
            ]

    # -- fault injection ---------------------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path: str,
        status: int = 502,
        times: int = 1,
        body: Any = None,
        applied: bool = False,
    ) -> None:
        """The next `times` requests matching (method, path glob) get `status`. With applied=True the
        request is carried out first and only its answer is lost, as behind a failing proxy."""

        def reply() -> Reply:
            return Reply(status, body if body is not None else {"message": HTTPStatus(status).phrase})

        self._add_fault(Fault(method.upper(), path, times, reply, applied))

    def rate_limit_next(
        self,
        method: str = "*",
        path: str = "*",
        kind: str = "primary",
        times: int = 1,
        retry_after: int | None = 1,
    ) -> None:
        """kind="primary": 403, X-RateLimit-Remaining 0, reset `retry_after` s ahead (PyGithub waits until
        the reset + 1 s). kind="secondary": 403 with GitHub's secondary-limit message and Retry-After
        (retry_after=None omits it: PyGithub then waits its `secondary_rate_wait`, 60 s by default).
        kind="429": 429 with that message and Retry-After."""
        assert kind in ("primary", "secondary", "429"), kind

        def reply() -> Reply:
            reset = int(time.time()) + (retry_after or 1)
            limits = {"X-RateLimit-Limit": "5000", "X-RateLimit-Used": "5000", "X-RateLimit-Resource": "core"}
            if kind == "primary":
                headers = limits | {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}
                return Refusal(403, "API rate limit exceeded for installation.", headers=headers).reply
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
            message = (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
                f"If you reach out to GitHub Support for help, please include the request ID {uuid.uuid4()}."
            )
            refusal = Refusal(403 if kind == "secondary" else 429, message, headers=headers)
            refusal.reply.body["documentation_url"] = SECONDARY_LIMIT_DOCS
            return refusal.reply

        self._add_fault(Fault(method.upper(), path, times, reply, applied=False))

    def _add_fault(self, fault: Fault) -> None:
        with self.lock:
            self._faults.append(fault)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self._faults:
            if fnmatch.fnmatchcase(method, fault.method) and fnmatch.fnmatchcase(path, fault.path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- the server ------------------------------------------------------------------------------------

    async def _asgi(self, scope: dict, receive: Any, send: Any) -> None:
        raw, headers = await read_request(scope, receive)
        path = scope.get("raw_path", scope["path"].encode()).decode("latin-1").split("?")[0]
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        reply = await asyncio.to_thread(self.handle, scope["method"], path, query, headers, raw)
        if isinstance(reply.body, bytes):  # a git file
            content, kind = reply.body, b"application/octet-stream"
        else:
            content = b"" if reply.body is None else json.dumps(reply.body).encode()
            kind = b"application/json; charset=utf-8"
        response_headers = [(b"content-type", kind)] if content else []
        response_headers += [(k.lower().encode(), str(v).encode()) for k, v in reply.headers.items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": response_headers})
        await send({"type": "http.response.body", "body": content})

    def handle(self, method: str, path: str, query: dict, headers: dict, raw: bytes) -> Reply:
        """Answer one request (any thread) and record it."""
        with self.lock:
            try:
                if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                    body = dict(parse_qsl(raw.decode("latin-1")))  # the OAuth endpoints' forms
                else:
                    body = json.loads(raw) if raw.strip() else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            fault = self._take_fault(method, path)
            if fault is not None and not fault.applied:
                reply = fault.reply()
            else:
                reply = self._dispatch(method, path, query, headers, body)
                reply = fault.reply() if fault is not None else reply
            reply.headers = self._standard_headers() | reply.headers
            answered = {k.lower(): str(v) for k, v in reply.headers.items()}
            self.requests.append(
                Recorded(
                    method,
                    path,
                    query,
                    headers,
                    body,
                    reply.status,
                    reply.body,
                    fault is not None,
                    answered,
                    time.time(),
                )
            )
            return reply

    def _dispatch(self, method: str, path: str, query: dict, headers: dict, body: Any) -> Reply:
        try:
            git = serve_git(self, self.git_dirs, path, headers) if method == "GET" else None
            if git is not None:
                return git
            if isinstance(body, str):
                raise Refusal(400, "Problems parsing JSON")
            for route_method, pattern, handler, auth in ROUTES:
                match = pattern.match(path)
                if match and route_method == method:
                    params = {k: unquote(v) for k, v in match.groupdict().items()}
                    if auth == "none":  # the OAuth endpoints: no credentials
                        token = None
                    else:
                        token = self._verify_app_jwt(headers) if auth == "app" else self._token(headers)
                    return handler(self, Call(method, path, params, query, body, token))
            raise Refusal(404, "Not Found")
        except Refusal as refusal:
            return refusal.reply
        except Exception as exc:  # a bug in the fake, not an answer GitHub would give
            self.errors.append(traceback.format_exc())
            return Reply(500, {"message": f"FakeGitHub bug: {exc!r}", "status": "500"})

    def _standard_headers(self) -> dict[str, str]:
        self.rate_used += 1
        return {
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": str(max(0, 5000 - self.rate_used)),
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": str(self.rate_used),
            "X-RateLimit-Resource": "core",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Request-Id": uuid.uuid4().hex[:20].upper(),
        }

    # -- authentication --------------------------------------------------------------------------------

    def _token(self, headers: dict) -> Token:
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or not credential.strip():
            raise Refusal(401, "Requires authentication")
        token = self.tokens.get(credential.strip())
        if token is None and credential.count(".") == 2:  # the App's JWT where a token is needed
            self._verify_app_jwt(headers)
            raise Refusal(403, "Resource not accessible by integration")
        if token is None or not token.valid():
            raise Refusal(401, "Bad credentials")
        return token

    def _verify_app_jwt(self, headers: dict) -> None:
        """GitHub's rules for an App JWT: RS256 by the App's key, `iss` the App id, `exp` ≤ 10 min ahead."""
        scheme, _, credential = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            raise Refusal(401, "A JSON web token could not be decoded")
        try:
            claims = jwt.decode(
                credential.strip(),
                self._public_key,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            message = "'Expiration time' claim ('exp') must be a numeric value representing the future time"
            raise Refusal(401, f"{message} at which the assertion expires") from None
        except jwt.PyJWTError:
            raise Refusal(401, "A JSON web token could not be decoded") from None
        if str(claims["iss"]) != str(self.app_id):
            raise Refusal(401, "A JSON web token could not be decoded")
        if claims["exp"] > now().timestamp() + 600 + 30:
            raise Refusal(401, "'Expiration time' claim ('exp') is too far in the future")
