"""FakeGitHub's OAuth device flow (github.com/login/device/code and /login/oauth/access_token), as
GitHub documents it: form-encoded requests without credentials, JSON answers with `Accept:
application/json`, and errors as HTTP 200 with an `error` field (authorization_pending, slow_down,
expired_token, access_denied, incorrect_client_credentials, incorrect_device_code)."""

import secrets
import time
from dataclasses import dataclass

from .fakegithub_api import Call, Reply, route
from .fakegithub_state import World

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@dataclass
class DeviceGrant:
    client_id: str
    user_code: str
    expires_at: float
    interval: int
    login: str | None = None  # set when the user entered the code and authorized
    denied: bool = False
    last_poll: float = 0.0


@route("POST", "/login/device/code", auth="none")
def device_code(world: World, call: Call) -> Reply:
    client = (call.body or {}).get("client_id")
    if client not in world.oauth_client_ids:
        return Reply(200, {"error": "Not Found"})  # GitHub answers an unknown client so
    code, user_code = secrets.token_hex(20), f"{secrets.token_hex(2)}-{secrets.token_hex(2)}".upper()
    world.device_grants[code] = DeviceGrant(
        client, user_code, time.time() + 900, interval=world.device_interval
    )
    return Reply(
        200,
        {
            "device_code": code,
            "user_code": user_code,
            "verification_uri": f"{world.url}/login/device",
            "expires_in": 900,
            "interval": world.device_interval,
        },
    )


@route("POST", "/login/oauth/access_token", auth="none")
def access_token(world: World, call: Call) -> Reply:
    body = call.body or {}
    grant = world.device_grants.get(body.get("device_code", ""))
    if body.get("grant_type") != GRANT:
        return Reply(200, {"error": "unsupported_grant_type"})
    if grant is None or grant.client_id != body.get("client_id"):
        return Reply(200, {"error": "incorrect_device_code"})
    if time.time() > grant.expires_at:
        return Reply(200, {"error": "expired_token"})
    if grant.denied:
        return Reply(200, {"error": "access_denied"})
    too_soon = time.time() - grant.last_poll < grant.interval
    grant.last_poll = time.time()
    if too_soon:
        grant.interval += 5
        return Reply(200, {"error": "slow_down", "interval": grant.interval})
    if grant.login is None:
        return Reply(200, {"error": "authorization_pending"})
    del world.device_grants[body["device_code"]]  # a device code gives one token
    token = world.add_token(grant.login, f"gho_{secrets.token_hex(18)}")
    return Reply(200, {"access_token": token, "token_type": "bearer", "scope": ""})


def authorize(world: World, user_code: str, login: str, deny: bool = False) -> None:
    """The person at the browser enters `user_code` as `login` (and authorizes, unless `deny`)."""
    with world.lock:
        (grant,) = [g for g in world.device_grants.values() if g.user_code == user_code]
        grant.login, grant.denied = (None, True) if deny else (login, False)
