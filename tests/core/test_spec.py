"""tierbot.yaml and tiers files: validation errors name the file, the line and the field."""

import json
import re
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
    assert (
        "tierbot.yaml:9: compare.metrics[0].metrics.accuracy.direction: must be 'higher' or 'lower', "
        "not 'upward'" in found
    )
    assert any(p.startswith("tierbot.yaml:10: compare.colour: unknown field") for p in found)


def test_missing_required_field_points_at_its_parent():
    assert problems("name: x\nrun:\n  outputs: out\n") == [
        "tierbot.yaml:2: run.command: required, but missing"
    ]


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


RULE = "run: {command: go}\ncompare:\n  metrics:\n    - file: m.json\n      metrics:\n        acc: "
TABLE = "run: {command: go}\ncompare:\n  tables:\n    - file: p.csv\n      "


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "run: python train.py\n",
            "1: run: must be a mapping with command and outputs, not 'python train.py'",
        ),
        ("run:\n  - command: go\n", "1: run: must be a mapping with command and outputs, not a list"),
        ("run: {command: }\n", "1: run.command: must be text, not empty"),
        ("run: {command: 3}\n", "1: run.command: must be text, not 3 (write '3' in quotes)"),
        ("run: {command: go}\ntier: true\n", "2: tier: must be text, not true (write 'true' in quotes)"),
        ("version: 2\nrun: {command: go}\n", "1: version: must be 1, not 2"),
        (
            "name: my exp\nrun: {command: go}\n",
            "1: name: must start with a letter or a digit and contain only letters, digits, '_', '.' "
            "and '-', not 'my exp'",
        ),
        (
            RULE + "{direction: higher, max_regression: [1]}\n",
            "6: compare.metrics[0].metrics.acc.max_regression: must be a number or text "
            "(examples: 0.01, '2%'), not a list",
        ),
        (
            RULE + "{direction: higher, max_regression: a lot}\n",
            "6: compare.metrics[0].metrics.acc.max_regression: 'a lot' is not a threshold "
            "(examples: 0.01, '2%')",
        ),
        (
            "run: {command: go}\ncompare:\n  metrics:\n    - file: m.json\n      metrics: [acc]\n",
            "5: compare.metrics[0].metrics: must be a mapping of names to their settings, not a list",
        ),
        (
            "run: {command: go}\ncompare:\n  metrics: metrics.json\n",
            "3: compare.metrics: must be a list of mappings, each with file and metrics, not 'metrics.json'",
        ),
        (
            "run: {command: go}\ncompare:\n  ignore: '*.tmp'\n",
            "3: compare.ignore: must be a list of text, not '*.tmp' (a list of one is written ['*.tmp'])",
        ),
        (
            TABLE + "tolerance: 0.1\n",
            "5: compare.tables[0].tolerance: must be a mapping with abs and rel, not 0.1",
        ),
        (TABLE + "tolerance: {abs: -1}\n", "5: compare.tables[0].tolerance.abs: must be at least 0, not -1"),
        (
            TABLE + "tolerance: {rel: small}\n",
            "5: compare.tables[0].tolerance.rel: must be a number, not 'small'",
        ),
        (
            TABLE + "key: 3\n",
            "5: compare.tables[0].key: must be text or a list of text, not 3 (write '3' in quotes)",
        ),
        (TABLE + "key: [id, 3]\n", "5: compare.tables[0].key[1]: must be text, not 3 (write '3' in quotes)"),
        (
            "run: {command: go}\ndeploy: {artifact: m.pkl, predict: serve.py:predict, target: dokcer}\n",
            "2: deploy.target: must be 'local', 'docker' or 'sagemaker', not 'dokcer'; "
            "did you mean 'docker'?",
        ),
        (
            "run: {command: go}\ndeploy: {artifact: m.pkl, predict: serve.py:predict, smoke: 3}\n",
            "2: deploy.smoke: must be a mapping or a list, not 3",
        ),
    ],
)
def test_errors_say_what_to_write_in_the_users_words(text: str, expected: str):
    assert problems(text) == [f"tierbot.yaml:{expected}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("run: {command: go}\ncomapre: {}\n", "2: comapre: unknown field; did you mean compare?"),
        ("run: {command: go}\nCompare: {}\n", "2: Compare: unknown field; did you mean compare?"),
        ("run: {command: go}\ndeploi: {}\n", "2: deploi: unknown field; did you mean deploy?"),
        # the key the user meant is not also reported missing
        ("runn:\n  command: go\n", "1: runn: unknown field; did you mean run?"),
        ("run:\n  comand: go\n", "2: run.comand: unknown field; did you mean command?"),
        (
            RULE + "{directon: higher}\n",
            "6: compare.metrics[0].metrics.acc.directon: unknown field; did you mean direction?",
        ),
        (
            TABLE + "columns: {x: {abss: 1}}\n",
            "5: compare.tables[0].columns.x.abss: unknown field; did you mean abs?",
        ),
        ("run: {command: go}\ncompare: {jsn: []}\n", "2: compare.jsn: unknown field; did you mean json?"),
        # a key one level too high is not a misspelling of a neighbour (`tables` is close to `tiers`)
        (
            "run: {command: go}\ntables: []\n",
            "2: tables: unknown field here; it belongs under compare (compare.tables)",
        ),
        ("command: go\n", "1: command: unknown field here; it belongs under run (run.command)"),
        (
            "run: {command: go}\nzzz: 1\n",
            "2: zzz: unknown field; the fields here are version, name, run, environment, tier, tiers, "
            "compare and deploy",
        ),
    ],
)
def test_unknown_keys_suggest_the_key_meant(text: str, expected: str):
    assert problems(text) == [f"tierbot.yaml:{expected}"]


def test_table_key_is_one_column_or_a_list():
    one = parse_spec(TABLE + "key: id\n")
    assert one.compare.tables[0].key == ["id"]
    assert one == parse_spec(TABLE + "key: [id]\n")
    assert one.fingerprint() == parse_spec(TABLE + "key: [id]\n").fingerprint()
    assert parse_spec(TABLE + "key: [id, day]\n").compare.tables[0].key == ["id", "day"]
    key = spec_schema()["$defs"]["TableFile"]["properties"]["key"]
    assert {"type": "string"} in key["anyOf"]  # an editor accepts `key: id` too


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


def tier_problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "tiers.yaml"
    path.write_text(text)
    with pytest.raises(SpecInvalid) as caught:
        load_tiers(path)
    return [problem.removeprefix(f"{path}:") for problem in caught.value.problems]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "tiers:\n  - name: a\n    backend: dokcer\n",
            "3: tiers[0].backend: must be 'local', 'docker', 'sagemaker' or 'batch', not 'dokcer'; "
            "did you mean 'docker'?",
        ),
        (
            "tiers:\n  - name: a\n    acess: {slack_users: [U1]}\n",
            "3: tiers[0].acess: unknown field; did you mean access?",
        ),
        (
            "tiers:\n  - name: a\n    access: {slack_user: [U1]}\n",
            "3: tiers[0].access.slack_user: unknown field; did you mean slack_users?",
        ),
        (
            "tiers:\n  - name: a\n    access: {github_role: owner}\n",
            "3: tiers[0].access.github_role: must be 'read', 'triage', 'write', 'maintain' or 'admin', "
            "not 'owner'",
        ),
        (
            "tiers:\n  - name: a\n    memory: [1]\n",
            "3: tiers[0].memory: must be a whole number or text, not a list",
        ),
        ("tiers:\n  - name: a\n    gpus: 1.5\n", "3: tiers[0].gpus: must be a whole number, not 1.5"),
        ("tiers:\n  - name: a\n    cpus: 0\n", "3: tiers[0].cpus: must be more than 0, not 0"),
        (
            "tiers:\n  - name: a\n    default: sure\n",
            "3: tiers[0].default: must be true or false, not 'sure'",
        ),
        (
            "tiers:\n  - name: Big\n",
            "2: tiers[0].name: must start with a lower-case letter or a digit and contain only lower-case "
            "letters, digits, '_' and '-', not 'Big'",
        ),
        (
            "tiers:\n  small: {cpus: 2}\n",
            "1: tiers: must be a list of mappings, each with name, description, cpus, memory, gpus "
            "and 7 more, not a mapping",
        ),
        ("tiers: []\n", "1: tiers: must not be empty"),
        ("tier:\n  - name: a\n", "1: tier: unknown field; did you mean tiers?"),
        ("name: a\n", "1: name: unknown field here; it belongs under tiers (tiers[].name)"),
    ],
)
def test_tiers_file_errors_in_the_operators_words(tmp_path: Path, text: str, expected: str):
    assert tier_problems(tmp_path, text) == [expected]


BROKEN_SPECS = [
    "run: 3\n",
    "run: [go]\n",
    "run: {command: [go]}\n",
    "run: {command: go}\ntiers: small\n",
    "run: {command: go}\nenvironment: requirements.txt\n",
    "run: {command: go}\ncompare: []\n",
    "run: {command: go}\ncompare: {json: {file: a.json}}\n",
    "run: {command: go}\ncompare: {json_tolerance: {abs: [1]}}\n",
    "run: {command: go}\ncompare: {mask: [{a: 1}]}\n",
    RULE + "higher\n",
    RULE + "{direction: [higher]}\n",
    RULE + "{direction: higher, max_regression: {a: 1}}\n",
    RULE + "{direction: higher, max_regression: null, extra: 1}\n",
    TABLE + "columns: [a]\n",
    TABLE + "columns: {a: 0.1}\n",
    "run: {command: go}\ndeploy: model.pkl\n",
    "run: {command: go}\ndeploy: {artifact: [m.pkl], predict: 3, smoke: yes, target: 1}\n",
    "",
]
BROKEN_TIERS = [
    "tiers: small\n",
    "tiers: [small]\n",
    "tiers:\n  - {name: a, cpus: many, memory: {a: 1}, max_runtime: [1], cost_per_hour: cheap}\n",
    "tiers:\n  - {name: a, concurrency: 0, backend_options: [x], access: [U1]}\n",
    "tiers:\n  - {name: [a], description: 3, gpus: -1, access: {slack_users: U1, github_teams: [[t]]}}\n",
]
INTERNALS = (
    "Input should",
    "instance of",
    "Field required",
    "function-",
    "[any",
    "Value error",
    "Extra inputs",
)


def test_no_message_shows_pydantic_internals(tmp_path: Path):
    """Whatever a user gets wrong, the message names their field, not pydantic's types or union branches."""
    from bot import spec, tiers

    class_names = {name for module in (spec, tiers) for name in vars(module) if name[0].isupper()}
    branches = (".float", ".int", ".str", ".bool", ".list", ".dict")
    found = [p for text in BROKEN_SPECS for p in problems(text)]
    found += [p for text in BROKEN_TIERS for p in tier_problems(tmp_path, text)]
    assert len(found) > len(BROKEN_SPECS) + len(BROKEN_TIERS)
    for problem in found:
        field = problem.split(": ")[0]
        assert not field.endswith(branches), problem
        assert not any(word in problem for word in INTERNALS), problem
        assert not class_names & set(re.findall(r"\w+", problem.partition(": ")[2])), problem


def test_missing_tiers_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(TierbotError, match="Cannot read the tiers file .*missing.yaml.*No such file"):
        load_tiers(tmp_path / "missing.yaml")


def test_builtin_local_tier():
    assert BUILTIN.default.name == "local"
    assert load_tiers(None) is BUILTIN


def test_yaml_is_read_as_yaml_1_2_core():
    """`yes` and `on` are words, `1e-3` a number, `017` seventeen, as the tools writing these files mean."""
    spec = parse_spec(
        "run: {command: go}\ntier: yes\ncompare:\n  metrics:\n    - file: m.yaml\n      metrics:\n"
        "        loss: {direction: lower, max_regression: 1e-3}\n"
    )
    assert spec.tier == "yes"
    assert spec.compare.metrics[0].metrics["loss"].max_regression == 0.001
