"""The redactor on plain text (`bot.redact`): every shape of credential, and the bot's own secrets by
value, replaced by their markers; private keys line by line. On the wire:
tests/hardening/test_redaction.py."""

import pytest

from bot.redact import Redactor, marker


@pytest.mark.parametrize(
    ("text", "kind", "secret"),
    [
        ("GITHUB_TOKEN=ghp_" + "a1" * 18, "github-token", "ghp_"),
        ("token github_pat_11ABCDEFG0_" + "x" * 40, "github-token", "github_pat_"),
        ("git clone https://x-access-token:ghs_abc@github.com/a/b.git", "url-credentials", "token:ghs"),
        ("postgresql://tierbot:hunter2hunter2@db:5432/tierbot", "url-credentials", "hunter2"),
        ("Authorization: token gho_short", "authorization", "gho_short"),
        ("curl -H 'authorization: Bearer abc.def.ghi'", "authorization", "abc.def"),
        ("export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE", "aws-access-key-id", "AKIA"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws-secret", "wJalr"),
        ("SLACK=xoxb-1234-5678-abcdefABCDEF", "slack-token", "xoxb"),
        ("app token xapp-1-A0123-456-abcdef", "slack-token", "xapp"),
    ],
)
def test_each_shape_is_replaced_by_its_marker_and_the_rest_kept(text, kind, secret):
    redacted = Redactor()(text)
    assert secret not in redacted
    before, _, after = redacted.partition(marker(kind))
    assert text.startswith(before) and text.endswith(after) and len(before) >= 5


def test_values_are_redacted_by_value_but_short_ones_are_not():
    redactor = Redactor({"TIERBOT_X": ["correct-horse-battery", "short"], "KEY": ["line one!\nline two!"]})
    assert redactor("the correct-horse-battery is short") == "the ‹redacted:TIERBOT_X› is short"
    assert redactor("only line two! leaked") == "only ‹redacted:KEY› leaked"


def test_a_private_key_keeps_the_line_structure_in_text_and_in_a_diff():
    body = ["MIIEowIBAAKCAQEA" * 4] * 3 + ["Yw=="]
    block = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----"])
    redacted = Redactor()(f"before\n{block}\nafter")
    assert redacted.splitlines() == ["before"] + [marker("private-key")] * 6 + ["after"]
    diff = "\n".join("+" + line for line in block.splitlines())
    assert Redactor()(diff).splitlines() == ["+" + marker("private-key")] * 6
    cut = "\n".join(block.splitlines()[:3])  # a log cut mid-key
    assert "MIIE" not in Redactor()(cut)


def test_the_line_filter_follows_a_key_across_batches():
    redact = Redactor().lines()
    first = redact(["start", "-----BEGIN OPENSSH PRIVATE KEY-----", "b3BlbnNzaC1rZXktdjEAAAAA"])
    body = "b3BlbnNzaC1rZXktdjEAAAAA"
    second = redact([body, "-----END OPENSSH PRIVATE KEY-----", body])
    assert first == ["start", marker("private-key"), marker("private-key")]
    assert second == [marker("private-key"), marker("private-key"), body]


def test_structures_are_redacted_throughout():
    redactor = Redactor({"S": ["sekrit-value"]})
    data = {"text": "x sekrit-value", "blocks": [{"t": ("sekrit-value",)}], "n": 3}
    assert redactor.data(data) == {"text": "x ‹redacted:S›", "blocks": [{"t": ("‹redacted:S›",)}], "n": 3}
