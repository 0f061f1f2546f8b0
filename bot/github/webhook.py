"""What a GitHub webhook request gets, decided without HTTP: refused (no secret set, unsigned, a bad
signature), malformed (no event or delivery id, a body that is not a JSON object), pong, ignored (an
event no handler wants), or a delivery to record. The signature is checked before anything is parsed."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.github.handlers import handles
from bot.github.signature import signature_valid
from bot.store.deliveries import Item


@dataclass(frozen=True)
class Triage:
    result: str  # refused | malformed | pong | ignored | record
    status: int
    fields: dict = field(default_factory=dict)  # more of the answer's JSON
    delivery: Item | None = None  # to record, when result is "record"


def triage(headers: Mapping[str, str], body: bytes, secrets: list[str]) -> Triage:
    """`headers` as the request has them (case-insensitive lookups, e.g. Starlette's)."""
    if not secrets:
        return Triage("refused", 503, {"detail": "TIERBOT_GITHUB_WEBHOOK_SECRET is not set; refusing all"})
    signature = headers.get("X-Hub-Signature-256")
    if not signature:
        return Triage("refused", 401, {"detail": "missing X-Hub-Signature-256"})
    if not signature_valid(body, signature, secrets):
        return Triage("refused", 403, {"detail": "signature does not match"})
    event, delivery = headers.get("X-GitHub-Event"), headers.get("X-GitHub-Delivery")
    if not event or not delivery:
        return Triage("malformed", 400, {"detail": "missing X-GitHub-Event or X-GitHub-Delivery"})
    try:
        text = body.decode()
        payload = json.loads(text)
    except ValueError:  # (UnicodeDecodeError is one)
        return Triage("malformed", 400, {"detail": "the body is not JSON"})
    if not isinstance(payload, dict):
        return Triage("malformed", 400, {"detail": "the body is not a JSON object"})
    action = payload.get("action") if isinstance(payload.get("action"), str) else None
    if event == "ping":
        return Triage("pong", 200, {"zen": payload.get("zen")})
    if not handles(event, action):
        return Triage("ignored", 202, {"event": event, "action": action})
    return Triage("record", 202, {"delivery": delivery}, (delivery, "github", event, action, text))
