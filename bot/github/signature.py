"""`X-Hub-Signature-256`: HMAC-SHA256 of the raw body, checked in constant time against every secret.

Several secrets are accepted at once so that a secret can be rotated without refusing deliveries
signed with the old one while GitHub's settings are being changed.
"""

import hashlib
import hmac
from collections.abc import Sequence

PREFIX = "sha256="


def sign(body: bytes, secret: str) -> str:
    return PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(body: bytes, header: str | None, secrets: Sequence[str]) -> bool:
    if not header or not header.startswith(PREFIX) or not secrets:
        return False
    given = header.encode()
    # Every secret is tried, whichever matches, so the time taken does not say which one did.
    matches = [hmac.compare_digest(sign(body, secret).encode(), given) for secret in secrets]
    return any(matches)
