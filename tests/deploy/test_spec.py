"""tierbot.yaml's `deploy:` section: its defaults, and clear refusals naming the field and line."""

import pytest

from bot.errors import SpecInvalid
from bot.spec import parse_spec

BASE = "run: {command: python train.py}\ndeploy:\n  artifact: model.pkl\n  predict: serve.py:predict\n"


def test_the_defaults_deploy_locally_to_production_and_refuse_nothing():
    deploy = parse_spec(BASE).deploy
    assert (deploy.target, deploy.environment, deploy.compare, deploy.max_changed, deploy.replay) == (
        "local",
        "production",
        None,
        None,
        50,
    )


def test_the_gate_and_tolerance_are_read():
    deploy = parse_spec(
        BASE + '  max_changed: "5%"\n  compare: {abs: 0.001}\n  environment: staging\n'
    ).deploy
    assert (deploy.max_changed, deploy.compare.abs, deploy.environment) == ("5%", 0.001, "staging")
    assert parse_spec(BASE + "  max_changed: 3\n").deploy.max_changed == 3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "  max_changed: lots",
            "tierbot.yaml:5: deploy.max_changed: must be a count (3) or a share ('5%'), not 'lots'",
        ),
        (
            "  max_changed: '150%'",
            "tierbot.yaml:5: deploy.max_changed: must be a count (3) or a share ('5%'), not '150%'",
        ),
        ("  environment: prod/eu", "tierbot.yaml:5: deploy.environment: "),
        ("  target: kubernetes", "tierbot.yaml:5: deploy.target: "),
        ("  replay: 5000", "tierbot.yaml:5: deploy.replay: "),
    ],
)
def test_mistakes_are_named_with_their_line(line, message):
    with pytest.raises(SpecInvalid) as refused:
        parse_spec(BASE + line + "\n")
    assert message in str(refused.value)
