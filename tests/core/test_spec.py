"""tierbot.yaml and tiers files: validation errors name the file, the line and the field."""

import json
from pathlib import Path

import pytest

from bot.errors import SpecInvalid, TierbotError, TierForbidden, TierUnknown
from bot.spec import load_spec, parse_spec, spec_schema
from bot.tiers import BUILTIN, Requester, load_tiers


def problems(text: str) -> list[str]:
    with pytest.raises(SpecInvalid) as caught:
        parse_spec(text, "tierbot.yaml")
    return caught.value.problems


def test_valid_spec_and_defaults():
    spec = parse_spec("run:\n  command: python train.py\n")
    assert spec.run.outputs == "outputs"
    assert spec.name == "experiment"
    assert spec.compare.metrics == []


def test_errors_name_file_line_and_field():
    text = """\
name: demo
run:
  command: python train.py
  outputs: ../elsewhere
compare:
  metrics:
    - file: metrics.json
      metrics:
        accuracy: {direction: upward}
  colour: blue
"""
    found = problems(text)
    assert (
        "tierbot.yaml:4: run.outputs: run.outputs must be a relative path inside the repository, got "
        "'../elsewhere'" in found
    )
    assert any(p.startswith("tierbot.yaml:9: compare.metrics[0].metrics.accuracy.direction:") for p in found)
    assert any(p.startswith("tierbot.yaml:10: compare.colour: unknown field") for p in found)


def test_missing_required_field_points_at_its_parent():
    assert problems("name: x\nrun:\n  outputs: out\n") == ["tierbot.yaml:2: run.command: Field required"]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("deploy: {artifact: model.pkl, predict: serve:predict}", "deploy.predict must look like"),
        ("deploy: {artifact: /etc/passwd, predict: serve.py:predict}", "deploy.artifact must be a relative"),
        ("compare: {mask: ['(unclosed']}", "is not a regular expression"),
        ("compare: {metrics: [{file: m.json, metrics: {a: {max_regression: 0.1}}}]}", "needs a direction"),
        (
            "compare: {metrics: [{file: m.json, metrics: {a: {direction: lower, max_regression: lots}}}]}",
            "is not a threshold",
        ),
        ("tier: big\ntiers: [small]", "not in this experiment's tiers"),
    ],
)
def test_semantic_errors(snippet: str, expected: str):
    found = problems("run: {command: go}\n" + snippet + "\n")
    assert any(expected in p for p in found), found


def test_yaml_syntax_error_has_a_line():
    found = problems("run:\n  command: [unclosed\n  outputs: x\n")
    assert found[0].startswith("tierbot.yaml:3: not valid YAML")


def test_load_spec_names_the_path(tmp_path: Path):
    path = tmp_path / "tierbot.yaml"
    path.write_text("run: 3\n")
    with pytest.raises(SpecInvalid) as caught:
        load_spec(path)
    assert str(path) in str(caught.value)
    assert f"{path}:1: run:" in caught.value.problems[0]


def test_schema_is_json_schema_with_descriptions():
    schema = spec_schema()
    json.dumps(schema)
    assert schema["title"] == "tierbot.yaml"
    assert "run" in schema["required"]
    assert "command" in schema["$defs"]["RunSection"]["properties"]


def test_fingerprint_is_stable_and_sensitive():
    a = parse_spec("run: {command: python a.py}")
    assert a.fingerprint() == parse_spec("run:\n  command: python a.py\n").fingerprint()
    assert a.fingerprint() != parse_spec("run: {command: python b.py}").fingerprint()


TIERS = """\
tiers:
  - name: small
    description: 2 cores
    cpus: 2
    memory: 4GiB
    max_runtime: 30m
    default: true
  - name: gpu-small
    gpus: 1
    backend: sagemaker
    backend_options: {instance_type: ml.g5.xlarge, spot: true}
    cost_per_hour: 1.2
    access: {slack_users: [U123], github_teams: [ml-platform]}
"""


def test_tiers_file(tmp_path: Path):
    path = tmp_path / "tiers.yaml"
    path.write_text(TIERS)
    tiers = load_tiers(path)
    assert tiers.default.name == "small"
    assert tiers.get("small").memory_bytes == 4 * 1024**3
    assert tiers.get("small").runtime_seconds == 1800
    assert tiers.get("gpu-small").runtime_seconds == 3600  # the default, validated too
    anyone = Requester(name="someone")
    assert [t.name for t in tiers.usable_by(anyone)] == ["small"]
    assert tiers.choose("gpu-small", Requester(github_teams=("ml-platform",))).name == "gpu-small"
    with pytest.raises(
        TierForbidden, match="restricted to @U123, team ml-platform. Tiers you may use: small"
    ):
        tiers.choose("gpu-small", anyone)
    with pytest.raises(TierUnknown, match="Did you mean gpu-small"):
        tiers.get("gpu-smal")


def test_tiers_file_errors(tmp_path: Path):
    path = tmp_path / "tiers.yaml"
    path.write_text("tiers:\n  - name: a\n  - name: b\n    memory: lots\n")
    with pytest.raises(SpecInvalid, match=f"{path}:4: tiers\\[1\\].memory: 'lots' is not a size"):
        load_tiers(path)
    path.write_text("tiers:\n  - name: a\n    default: true\n  - name: b\n    default: true\n")
    with pytest.raises(SpecInvalid, match="exactly one tier must have `default: true` \\(found 2\\)"):
        load_tiers(path)


def test_missing_tiers_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(TierbotError, match="Cannot read the tiers file .*missing.yaml.*No such file"):
        load_tiers(tmp_path / "missing.yaml")


def test_builtin_local_tier():
    assert BUILTIN.default.name == "local"
    assert load_tiers(None) is BUILTIN
