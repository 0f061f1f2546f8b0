"""What `tierbot init` proposes for a repository's tierbot.yaml, before anyone is asked anything.

`propose(root, outputs)` reads the repository (and the outputs directory, when there is one) and returns
a `Proposal` with everything accepted; `tierbot init` (`bot.cli.init`) asks about each part, runs the
command when needed, and renders what was accepted with `spec_text`, which refuses to return a file
the project's own loader would not read back as exactly the spec meant. Nothing here prompts or runs.

The rules, best first:

- **Command**: the `cmd` of a `dvc.yaml` stage (the first that declares `metrics`, else the first),
  `make train` when a Makefile has a `train:` target, then `python train.py`, `python main.py`,
  `python src/train.py`, `python scripts/train.py`, whichever exist.
- **Environment**: `requirements.txt`; else one under `requirements/` or named `requirements-*.txt`
  (`main`, `base`, `prod`, `train` first; never `dev`, `test`, `lint` or `docs` ones); a root
  `Dockerfile` for container tiers. A pyproject.toml with `[project] dependencies` and no requirements
  file gets a requirements file written from those dependencies (`GENERATED_REQUIREMENTS`): tierbot
  builds one virtualenv per requirements file's *content* and shares it between commits, so `pip
  install .` in it would freeze one commit's code into every later run, and the file alone keeps the
  environment keyed by the dependencies. The repository's own modules are imported from the checkout.
- **Outputs directory**: the one given; else the common directory of the dvc stage's metrics and outs;
  else the first of `OUTPUT_DIRS` that holds files; after a run, the top directory the command wrote
  (`written_directory`).
- **Name**: the repository directory's name, made a valid experiment name.
"""

import os
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pydantic import ValidationError

from bot.cli.proposal_outputs import OutputsProposal, propose_outputs
from bot.compare.files import is_metrics_name
from bot.errors import SpecInvalid, TierbotError
from bot.outputs import manifest_of
from bot.render.templates import template
from bot.spec import DEFAULT_NAME, NAME_PATTERN, SPEC_FILE, Spec, parse_spec
from bot.yamlmodel import yaml_mapping

OUTPUT_DIRS = ("outputs", "output", "out", "results", "metrics", "artifacts")
SCRIPTS = ("train.py", "main.py", "src/train.py", "scripts/train.py")
MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
GENERATED_REQUIREMENTS = "requirements-tierbot.txt"
_PREFERRED_REQUIREMENTS = ("main", "base", "prod", "production", "train", "requirements", "common")
_NOT_FOR_RUNS = re.compile(r"(^|[-_.])(dev|devel|test|tests|testing|lint|docs|doc|ci)([-_.]|$)")
_TRAIN_TARGET = re.compile(r"^train[ \t]*:(?![:=])", re.MULTILINE)
# Not walked when looking for what a command wrote: environments, caches, version control.
# fmt: off
_NOT_OUTPUTS = frozenset([
    ".git", ".venv", "venv", "env", ".env", "node_modules", "__pycache__", ".tox", ".nox", ".mypy_cache",
    ".pytest_cache", ".ruff_cache", ".dvc", ".ipynb_checkpoints",
])
# fmt: on
MAX_SNAPSHOT_FILES = 200_000


class ProposalInvalid(TierbotError):
    """What init would write does not read back as the spec it means: a bug, so nothing is written."""


@dataclass(frozen=True)
class Choice:
    value: str
    why: str  # said in a comment beside the value


@dataclass
class EnvironmentProposal:
    requirements: Choice | None = None
    generated: list[str] | None = None  # dependencies init writes into `requirements.value` first
    dockerfile: Choice | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Proposal:
    name: str
    commands: list[Choice]  # best first; the first is the one written
    environment: EnvironmentProposal
    outputs: str
    found: OutputsProposal | None = None  # None: no outputs were read
    notes: list[str] = field(default_factory=list)


def experiment_name(directory: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory).lstrip("-_.")
    return name if re.match(NAME_PATTERN, name) else DEFAULT_NAME


def makefile_command(text: str) -> str | None:
    return "make train" if _TRAIN_TARGET.search(text) else None


def _paths(entries: object) -> list[str]:
    """A dvc stage's `outs`/`metrics`/`plots`: strings, or one-key mappings of a path to its options."""
    if not isinstance(entries, list):
        return []
    found = []
    for entry in entries:
        if isinstance(entry, str):
            found.append(entry)
        elif isinstance(entry, dict):
            found += [key for key in entry if isinstance(key, str)]
    return found


@dataclass(frozen=True)
class DvcStage:
    name: str
    command: str
    outputs: str | None  # the directory its metrics and outs share, relative to the repository


def dvc_stage(text: str) -> DvcStage | None:
    """The stage to run from a dvc.yaml: the first declaring metrics, else the first. Templated stages
    (`foreach`, `matrix`, `${var}` in the command) are skipped: only DVC can expand them."""
    try:
        stages = yaml_mapping(text, "dvc.yaml").get("stages")
    except SpecInvalid:
        return None
    if not isinstance(stages, dict):
        return None
    plain = [
        (name, stage)
        for name, stage in stages.items()
        if isinstance(stage, dict)
        and "cmd" in stage
        and "${" not in str(stage["cmd"])
        and not {"foreach", "matrix"} & stage.keys()
    ]
    if not plain:
        return None
    with_metrics = [
        (n, s)
        for n, s in plain
        if _paths(s.get("metrics")) or any(map(is_metrics_name, _paths(s.get("outs"))))
    ]
    name, stage = (with_metrics or plain)[0]
    cmd = stage["cmd"]
    command = " && ".join(map(str, cmd)) if isinstance(cmd, list) else str(cmd)
    wdir = str(stage.get("wdir") or ".")
    if os.path.normpath(wdir) != ".":
        command = f"cd {shlex.quote(wdir)} && {command}"
    written = [str(PurePosixPath(wdir) / p) for p in _paths(stage.get("metrics")) + _paths(stage.get("outs"))]
    return DvcStage(str(name), command, _common_directory(written))


def _common_directory(paths: list[str]) -> str | None:
    """The top directory all of `paths` are under (`outputs` for outputs/metrics.json, outputs/model.pkl);
    None when they are at the root, above it, or under different tops."""
    normal = [PurePosixPath(os.path.normpath(path)) for path in paths]
    tops = {path.parts[0] for path in normal if len(path.parts) > 1}
    rooted = any(len(path.parts) <= 1 for path in normal)
    return tops.pop() if len(tops) == 1 and not rooted and ".." not in tops else None


def detect_commands(root: Path) -> tuple[list[Choice], str | None]:
    """The candidate commands, best first, and the outputs directory a dvc stage names."""
    found: list[Choice] = []
    hint = None
    if (root / "dvc.yaml").is_file():
        stage = dvc_stage((root / "dvc.yaml").read_text(encoding="utf-8", errors="replace"))
        if stage is not None:
            found.append(Choice(stage.command, f"the cmd of dvc.yaml's stage {stage.name}"))
            hint = stage.outputs
    for makefile in MAKEFILES:
        path = root / makefile
        if path.is_file() and makefile_command(path.read_text(encoding="utf-8", errors="replace")):
            found.append(Choice("make train", f"{makefile} has a train target"))
            break
    found += [
        Choice(f"python {script}", f"{script} exists") for script in SCRIPTS if (root / script).is_file()
    ]
    return found, hint


def _requirements_files(root: Path) -> list[str]:
    """Requirements files for runs, best first."""
    candidates = [p for p in sorted(root.glob("requirements[-_]*.txt")) if p.is_file()]
    candidates += [p for p in sorted(root.glob("requirements/*.txt")) if p.is_file()]
    usable = [p for p in candidates if not _NOT_FOR_RUNS.search(p.stem.removeprefix("requirements"))]

    def rank(path: Path) -> int:
        stem = re.sub(r"^requirements[-_]?", "", path.stem)
        return (
            _PREFERRED_REQUIREMENTS.index(stem)
            if stem in _PREFERRED_REQUIREMENTS
            else len(_PREFERRED_REQUIREMENTS)
        )

    return [p.relative_to(root).as_posix() for p in sorted(usable, key=rank)]


def pyproject_dependencies(text: str) -> tuple[list[str] | None, str | None]:
    """`[project] dependencies` (None when it has none to give), and a note when the file declares them
    some other way that tierbot cannot read."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, f"pyproject.toml could not be read ({exc}); no environment proposed from it"
    project = data.get("project") if isinstance(data.get("project"), dict) else {}
    dependencies = project.get("dependencies")
    if isinstance(dependencies, list) and dependencies and all(isinstance(d, str) for d in dependencies):
        return list(dependencies), None
    if "poetry" in data.get("tool", {}):
        return None, (
            "pyproject.toml declares its dependencies for Poetry: export them "
            "(`poetry export -f requirements.txt -o requirements.txt`) and set environment.requirements"
        )
    return None, None


def detect_environment(root: Path) -> EnvironmentProposal:
    env = EnvironmentProposal()
    if (root / "Dockerfile").is_file():
        env.dockerfile = Choice("Dockerfile", "built on container tiers")
    if (root / "requirements.txt").is_file():
        env.requirements = Choice("requirements.txt", "found at the repository root")
    elif found := _requirements_files(root):
        env.requirements = Choice(found[0], "the requirements file for runs")
    elif (root / "pyproject.toml").is_file():
        text = (root / "pyproject.toml").read_text(encoding="utf-8", errors="replace")
        dependencies, note = pyproject_dependencies(text)
        if dependencies:
            env.requirements = Choice(GENERATED_REQUIREMENTS, "written from pyproject.toml's dependencies")
            env.generated = dependencies
        if note:
            env.notes.append(note)
    for conda in ("environment.yml", "environment.yaml"):
        if env.requirements is None and (root / conda).is_file():
            env.notes.append(
                f"{conda} is a conda environment, which tierbot does not build: list the pip "
                "packages in a requirements file and set environment.requirements"
            )
    return env


def has_files(directory: Path) -> bool:
    return (
        directory.is_dir() and not directory.is_symlink() and any(p.is_file() for p in directory.rglob("*"))
    )


def existing_outputs(root: Path, hint: str | None = None) -> str | None:
    """The outputs directory already there: `hint` or the first of OUTPUT_DIRS, if it holds any file."""
    return next((name for name in [*([hint] if hint else []), *OUTPUT_DIRS] if has_files(root / name)), None)


def outputs_of(directory: Path) -> OutputsProposal:
    """What to compare, from the files of an outputs directory (read as `tierbot diff` reads one)."""
    return propose_outputs(directory, manifest_of(directory))


def snapshot(root: Path) -> dict[str, int]:
    """Every file's modification time (ns) by relative path, but under environments and caches."""
    found: dict[str, int] = {}
    for current, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_OUTPUTS)
        for name in files:
            path = Path(current) / name
            try:
                found[path.relative_to(root).as_posix()] = path.lstat().st_mtime_ns
            except OSError:
                continue
            if len(found) >= MAX_SNAPSHOT_FILES:
                return found
    return found


def written_directory(before: dict[str, int], after: dict[str, int]) -> tuple[str | None, dict[str, int]]:
    """The top directory a command wrote its outputs in, and how many files it wrote under each top
    (`.` for files at the root): one of OUTPUT_DIRS when it wrote there, else the one with most files."""
    counts: dict[str, int] = {}
    for path, mtime in after.items():
        if before.get(path) != mtime:
            parts = PurePosixPath(path).parts
            top = parts[0] if len(parts) > 1 else "."
            counts[top] = counts.get(top, 0) + 1
    directories = {top: n for top, n in counts.items() if top != "."}
    named = [top for top in OUTPUT_DIRS if top in directories]
    if named:
        return named[0], counts
    if directories:
        return max(sorted(directories), key=lambda top: directories[top]), counts
    return None, counts


def propose(root: Path, outputs: str | None = None, read_outputs: bool = True) -> Proposal:
    """The whole proposal for the repository at `root`: its first command, environment, the outputs
    directory (`outputs`, else detected) and, unless `read_outputs` is false, what its files hold.
    `spec_document(propose(root))` is the spec as data, `spec_text(propose(root))` the file."""
    commands, hint = detect_commands(root)
    directory = outputs or existing_outputs(root, hint) or hint or OUTPUT_DIRS[0]
    found = outputs_of(root / directory) if read_outputs and has_files(root / directory) else None
    return Proposal(experiment_name(root.name), commands, detect_environment(root), directory, found)


# -- the file -------------------------------------------------------------------------------------------


def spec_document(proposal: Proposal) -> dict:
    """The spec the proposal means, as data: what `spec_text` must read back as."""
    if not proposal.commands:
        raise ProposalInvalid("no command to write: run.command is required")
    env = proposal.environment
    document: dict = {
        "version": 1,
        "name": proposal.name,
        "run": {"command": proposal.commands[0].value, "outputs": proposal.outputs},
        "environment": {
            key: choice.value
            for key, choice in (("requirements", env.requirements), ("dockerfile", env.dockerfile))
            if choice is not None
        },
    }
    found = proposal.found or OutputsProposal()
    document["compare"] = {
        "metrics": [
            {
                "file": m.file,
                "metrics": {g.path: ({"direction": g.direction} if g.direction else {}) for g in m.metrics},
            }
            for m in found.metrics
        ],
        "tables": [{"file": t.file, "key": [t.key] if t.key else []} for t in found.tables],
        "ignore": [],
        "mask": [token.pattern for token in found.masks],
    }
    return document


def spec_text(proposal: Proposal) -> str:
    """tierbot.yaml as `templates/tierbot.yaml.j2` renders the proposal, once the project's loader has
    read it back as exactly `spec_document`; ProposalInvalid otherwise, and nothing is to be written."""
    try:
        meant = Spec.model_validate(spec_document(proposal))
    except ValidationError as exc:
        raise ProposalInvalid(f"the proposal is not a valid spec: {exc}") from None
    found = proposal.found or OutputsProposal()
    text = template("tierbot.yaml.j2", "yaml").render(p=proposal, env=proposal.environment, found=found)
    try:
        written = parse_spec(text, SPEC_FILE)
    except SpecInvalid as exc:
        raise ProposalInvalid(f"the tierbot.yaml init would write does not validate: {exc}") from None
    if written != meant:
        raise ProposalInvalid("the tierbot.yaml init would write does not read back as the proposal")
    return text
