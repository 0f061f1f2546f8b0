"""The bot's own settings in the operator's words: a bad `TIERBOT_*` value or config file stops a command
with exit 2 and a line naming the variable and what it must be, never pydantic's words or a traceback."""

from pathlib import Path

import pytest

from tests.fakes.cli import stderr_of


@pytest.mark.parametrize(
    ("variables", "said"),
    [
        ({"TIERBOT_GITHUB_RETRIES": "abc"}, "TIERBOT_GITHUB_RETRIES: must be a whole number, not 'abc'"),
        ({"TIERBOT_REPORT_LINK_DAYS": "-3"}, "TIERBOT_REPORT_LINK_DAYS: must be at least 1, not '-3'"),
        ({"TIERBOT_SLACK_NOTIFY": "#ml"}, "TIERBOT_SLACK_NOTIFY: must be a mapping written in JSON"),
        (
            {"TIERBOT_SLACK_OPEN_REPOSITORIES": '{"acme/vision": "admin"}'},
            "TIERBOT_SLACK_OPEN_REPOSITORIES (acme/vision): must be 'read' or 'write', not 'admin'",
        ),
    ],
)
def test_a_bad_variable_is_named_with_what_it_must_be(tierbot, variables: dict, said: str):
    done = tierbot("runs", env=variables)
    assert done.returncode == 2
    assert said in stderr_of(done)
    assert "Traceback" not in done.stderr and "pydantic" not in done.stderr


def test_every_bad_variable_is_said_at_once(tierbot):
    done = tierbot("tiers", env={"TIERBOT_GITHUB_RETRIES": "x", "TIERBOT_MAX_CONNECTIONS": "0"})
    assert done.returncode == 2
    assert "TIERBOT_GITHUB_RETRIES" in done.stderr and "TIERBOT_MAX_CONNECTIONS" in done.stderr


def test_the_config_file_is_blamed_by_its_keys(tierbot, tmp_path: Path):
    config = tmp_path / "tierbot-settings.yaml"
    config.write_text("github_retries: many\n")
    done = tierbot("runs", env={"TIERBOT_CONFIG": str(config)})
    assert done.returncode == 2
    assert f"github_retries in {config}: must be a whole number, not 'many'" in stderr_of(done)


@pytest.mark.parametrize(("text", "said"), [(None, "no such file"), ("retries: [", "while parsing")])
def test_a_config_file_missing_or_not_yaml_stops_the_command(tierbot, tmp_path: Path, text, said):
    config = tmp_path / "settings.yaml"
    if text is not None:
        config.write_text(text)
    done = tierbot("runs", env={"TIERBOT_CONFIG": str(config)})
    assert done.returncode == 2
    assert f"TIERBOT_CONFIG: {config}:" in stderr_of(done) and said in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_refuses_to_start_with_a_bad_setting(tierbot):
    done = tierbot("serve", "--port", "0", env={"TIERBOT_MAX_REQUEST_BYTES": "12"})
    assert done.returncode == 2
    assert "TIERBOT_MAX_REQUEST_BYTES: must be at least 1024, not '12'" in stderr_of(done)
