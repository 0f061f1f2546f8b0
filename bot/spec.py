"""The experiment contract: `tierbot.yaml` at a repository's root, as pydantic models.

`tierbot schema` prints the JSON Schema generated from these models; `load_spec` validates a file and
names the file, the line and the field of every problem.
"""

import fnmatch
import hashlib
import json
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from bot.errors import SpecInvalid
from bot.masks import compile_mask
from bot.yamlmodel import load_model, yaml_mapping

SPEC_FILE = "tierbot.yaml"
DEFAULT_NAME = "experiment"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _relative_path(value: str, what: str) -> str:
    """Reject paths that could leave the repository: absolute, `..`, or empty."""
    path = PurePosixPath(value)
    if not value.strip() or path.is_absolute() or ".." in path.parts:
        raise ValueError(f"{what} must be a relative path inside the repository, got {value!r}")
    return str(path)


class RunSection(_Strict):
    command: str = Field(description="Shell command that runs the experiment, from the repository root.")
    outputs: str = Field("outputs", description="Directory (relative) where the experiment writes outputs.")

    @field_validator("outputs")
    @classmethod
    def _outputs_inside(cls, value: str) -> str:
        return _relative_path(value, "run.outputs")

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("run.command must not be empty")
        return value


class EnvironmentSection(_Strict):
    requirements: str | None = Field(
        None, description="pip requirements file for local runs; without it the command runs as is."
    )
    dockerfile: str | None = Field(None, description="The repository's Dockerfile, for container tiers.")

    @field_validator("requirements", "dockerfile")
    @classmethod
    def _inside(cls, value: str | None) -> str | None:
        return None if value is None else _relative_path(value, "environment file")


Threshold = float | str


def parse_threshold(value: Threshold) -> tuple[float, bool]:
    """(amount, relative): `0.01` is absolute, `"2%"` is relative to main's value."""
    if isinstance(value, int | float):
        return float(value), False
    text = value.strip()
    if text.endswith("%"):
        return float(text[:-1]) / 100, True
    return float(text), False


class MetricRule(_Strict):
    direction: Literal["higher", "lower"] | None = Field(
        None, description="Which way is better; without it changes are shown but never judged."
    )
    max_regression: Threshold | None = Field(
        None,
        description="Fail when the metric gets worse by more than this: 0.01 (absolute) or '2%'.",
        examples=[0.01, "2%"],
    )

    @field_validator("max_regression")
    @classmethod
    def _threshold(cls, value: Threshold | None) -> Threshold | None:
        if value is not None:
            try:
                amount, _ = parse_threshold(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a threshold (examples: 0.01, '2%')") from None
            if amount < 0:
                raise ValueError("a threshold cannot be negative")
        return value

    @model_validator(mode="after")
    def _needs_direction(self) -> "MetricRule":
        if self.max_regression is not None and self.direction is None:
            raise ValueError("max_regression needs a direction (higher or lower) to know what is worse")
        return self


class MetricFile(_Strict):
    file: str = Field(description="Metric file among the outputs (JSON, YAML or TOML).")
    metrics: dict[str, MetricRule] = Field(
        default_factory=dict, description="Rules per flattened metric path, e.g. `test.accuracy`."
    )

    @field_validator("file")
    @classmethod
    def _inside(cls, value: str) -> str:
        return _relative_path(value, "compare.metrics[].file")


class Tolerance(_Strict):
    abs: float = Field(0.0, ge=0, description="Absolute tolerance: |a-b| <= abs + rel*|main|.")
    rel: float = Field(0.0, ge=0, description="Relative tolerance, as a fraction of main's value.")


def _one_or_more(value: object) -> object:
    """`key: id` is `key: [id]`: one column needs no brackets."""
    return [value] if isinstance(value, str) else value


Columns = Annotated[list[str], BeforeValidator(_one_or_more, json_schema_input_type=str | list[str])]


class TableFile(_Strict):
    file: str = Field(description="Table among the outputs (CSV, TSV, Parquet, JSON Lines).")
    key: Columns = Field(
        default_factory=list, description="Key column (`id`) or columns (`[id, day]`); detected when empty."
    )
    tolerance: Tolerance = Field(default_factory=Tolerance, description="Default numeric tolerance.")
    columns: dict[str, Tolerance] = Field(default_factory=dict, description="Tolerance per column.")

    @field_validator("file")
    @classmethod
    def _inside(cls, value: str) -> str:
        return _relative_path(value, "compare.tables[].file")


class JsonFile(_Strict):
    file: str = Field(description="Nested JSON or YAML document among the outputs (not a metrics file).")
    tolerance: Tolerance = Field(
        default_factory=Tolerance, description="Numeric tolerance for every number in the document."
    )
    ignore_paths: list[str] = Field(
        default_factory=list,
        description="Paths not compared, with their contents: `meta.created_at`, `runs[*].seconds` "
        "(`*` matches within one key or index).",
    )

    @field_validator("file")
    @classmethod
    def _inside(cls, value: str) -> str:
        return _relative_path(value, "compare.json[].file")


PLOT_EXTENSIONS = (".csv", ".tsv")


class PlotFile(_Strict):
    file: str = Field(description="A table of steps among the outputs: CSV or TSV, a header, a row a step.")
    x: str | None = Field(None, description="The column of the x axis (`step`); the row number when unset.")
    y: Columns = Field(
        description="The column (`loss`) or columns (`[loss, val_loss]`) drawn: a chart each, main and the "
        "branch as two lines."
    )

    @field_validator("file")
    @classmethod
    def _table(cls, value: str) -> str:
        value = _relative_path(value, "compare.plots[].file")
        if not value.lower().endswith(PLOT_EXTENSIONS):
            raise ValueError(f"must be a CSV or TSV file (.csv or .tsv), not {value!r}")
        return value

    @model_validator(mode="after")
    def _columns(self) -> "PlotFile":
        if not self.y:
            raise ValueError("y needs a column to draw: y: loss, or y: [loss, val_loss]")
        if len(set(self.y)) != len(self.y):
            raise ValueError(f"y names a column twice: {self.y}")
        if self.x is not None and self.x in self.y:
            raise ValueError(f"x {self.x!r} is also in y: a column is not drawn against itself")
        return self


# Params files are inputs read from the commits (`bot.compare.params`), by extension.
PARAMS_FORMATS = {".yaml": "YAML", ".yml": "YAML", ".json": "JSON", ".toml": "TOML"}
MAX_PARAMS_FILES = 20


class CompareSection(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)  # `json` shadows BaseModel.json

    metrics: list[MetricFile] = Field(default_factory=list)
    tables: list[TableFile] = Field(default_factory=list)
    json_files: list[JsonFile] = Field(
        default_factory=list, alias="json", description="Nested JSON/YAML documents with their own rules."
    )
    json_tolerance: Tolerance = Field(
        default_factory=Tolerance,
        description="Numeric tolerance for JSON/YAML documents not listed under `json` (default: exact).",
    )
    plots: list[PlotFile] = Field(
        default_factory=list, description="Tables of steps drawn as charts, main against the branch."
    )
    params: Annotated[
        list[str] | None, BeforeValidator(_one_or_more, json_schema_input_type=str | list[str] | None)
    ] = Field(
        None,
        description="Parameter files of the commit (YAML, JSON or TOML), whose changes every report shows "
        "first: `[params.yaml]`. Unset: DVC's params.yaml when a commit has one; `[]`: none.",
        examples=[["params.yaml", "configs/train.json"]],
    )
    ignore: list[str] = Field(default_factory=list, description="Glob patterns of outputs not compared.")
    mask: list[str] = Field(
        default_factory=list,
        description="Regular expressions (RE2 syntax) masked in logs and text before diffing, line by line.",
    )

    @field_validator("mask")
    @classmethod
    def _regexes(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            compile_mask(pattern)
        return patterns

    @field_validator("params")
    @classmethod
    def _params_files(cls, paths: list[str] | None) -> list[str] | None:
        if paths is None:
            return None
        if len(paths) > MAX_PARAMS_FILES:
            raise ValueError(f"at most {MAX_PARAMS_FILES} params files, not {len(paths)}")
        checked = [_relative_path(path, "a params file") for path in paths]
        for path in checked:
            if PurePosixPath(path).suffix.lower() not in PARAMS_FORMATS:
                raise ValueError(f"{path!r} is not a YAML, JSON or TOML file (.yaml, .yml, .json or .toml)")
        return list(dict.fromkeys(checked))

    def ignored(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, pattern) for pattern in self.ignore)

    def metric_file(self, path: str) -> MetricFile | None:
        return next((m for m in self.metrics if m.file == path), None)

    def table_file(self, path: str) -> TableFile | None:
        return next((t for t in self.tables if t.file == path), None)

    def json_file(self, path: str) -> JsonFile | None:
        return next((j for j in self.json_files if j.file == path), None)


class DeploySection(_Strict):
    artifact: str = Field(description="The model file among the outputs.")
    predict: str = Field(description="`module.py:function` in the repository that serves predictions.")
    smoke: dict | list | None = Field(None, description="A request body the new version must answer.")
    target: Literal["local", "docker", "sagemaker"] = Field(
        "local", description="Where it is served: a process on the bot's machine (local), docker, sagemaker."
    )
    environment: str = Field(
        "production", pattern=NAME_PATTERN, description="The environment a merge deploys to (GitHub's too)."
    )
    compare: Tolerance | None = Field(
        None,
        description="Tolerance of the prediction diff (old and new versions' answers to the same requests); "
        "compare.json_tolerance when unset.",
    )
    max_changed: int | str | None = Field(
        None,
        description="Refuse the switch when more of the replayed requests get a different answer: a count "
        "(3) or a share ('5%'). Unset: changes are shown, never refused.",
        examples=["5%", 3],
    )
    replay: int = Field(
        50,
        ge=0,
        le=1000,
        description="Recent requests the live version served, replayed beside the smoke one.",
    )

    @field_validator("max_changed")
    @classmethod
    def _changed_limit(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str):
            try:
                amount, relative = parse_threshold(value)
            except ValueError:
                amount, relative = -1.0, False
            if not relative or not 0 <= amount <= 1:
                raise ValueError(f"must be a count (3) or a share ('5%'), not {value!r}")
        elif value is not None and value < 0:
            raise ValueError("max_changed cannot be negative")
        return value

    @field_validator("artifact")
    @classmethod
    def _artifact_inside(cls, value: str) -> str:
        return _relative_path(value, "deploy.artifact")

    @field_validator("predict")
    @classmethod
    def _entrypoint(cls, value: str) -> str:
        module, sep, function = value.partition(":")
        if not sep or not module.endswith(".py") or not function.isidentifier():
            raise ValueError(f"deploy.predict must look like `serve.py:predict`, got {value!r}")
        _relative_path(module, "deploy.predict module")
        return value


class Spec(_Strict):
    """tierbot.yaml: how to run, compare and deploy a repository's experiment."""

    version: Literal[1] = 1
    name: str = Field(DEFAULT_NAME, pattern=NAME_PATTERN, description="Experiment name.")
    run: RunSection
    environment: EnvironmentSection = Field(default_factory=EnvironmentSection)
    tier: str | None = Field(None, description="Default hardware tier; the operators' default otherwise.")
    tiers: list[str] | None = Field(None, description="Tiers this experiment may run on (all when unset).")
    compare: CompareSection = Field(default_factory=CompareSection)
    deploy: DeploySection | None = None

    @model_validator(mode="after")
    def _default_tier_allowed(self) -> "Spec":
        if self.tier and self.tiers is not None and self.tier not in self.tiers:
            raise ValueError(f"tier {self.tier!r} is not in this experiment's tiers {self.tiers}")
        return self

    def fingerprint(self) -> str:
        """A stable hash of the normalized spec, part of a baseline's identity."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def parse_spec(text: str, filename: str = SPEC_FILE) -> Spec:
    return load_model(Spec, text, filename)


def spec_names(text: str | None) -> tuple[str, str | None] | None:
    """(name, tier) as a spec that may not validate says them, for naming what reports its problems;
    None when its YAML does not even say that much."""
    try:
        data = yaml_mapping(text or "")
    except SpecInvalid:
        return None
    name, tier = data.get("name", DEFAULT_NAME), data.get("tier")
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
        return None
    return name, tier if isinstance(tier, str) else None


def load_spec(path: Path) -> Spec:
    return parse_spec(path.read_text(encoding="utf-8"), str(path))


class CompareConfig(BaseModel):
    """What `tierbot diff --config` reads of a tierbot.yaml: its name and `compare` section, nothing else."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    compare: CompareSection = Field(default_factory=CompareSection)


def load_compare_config(path: Path) -> CompareConfig:
    return load_model(CompareConfig, path.read_text(encoding="utf-8"), str(path))


def spec_schema() -> dict:
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tierbot.yaml"
    return schema
