"""`tierbot diff OLD NEW`: two output directories (or two files) compared outside any repository.

The same engine, report and verdict as `tierbot compare`, for any CI job or script. Rules come from a
tierbot.yaml's `compare` section (`--config`) and from options: `--ignore` and `--mask` add to the
file's lists; `--key`, `--abs` and `--rel` apply to tables the file does not list, and `--abs`/`--rel`
to JSON documents it does not list. Entries that are not read (links out of a directory, FIFOs...) are
listed as problems, as for runs, and make the verdict at least `changed`; they never refuse the request.
Exit status (`bot.cli.outcome`): 1 on a failing verdict, 2 when the request is wrong.
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from bot.cli.outcome import CliOutput, ComparisonDoc, verdict_exit
from bot.compare import Comparison, Options, compare_outputs
from bot.compare.files import kind_by_name
from bot.errors import TierbotError
from bot.manifest import FileEntry, Manifest
from bot.outputs import file_hash, manifest_of
from bot.render.html import render_html
from bot.render.templates import term_text
from bot.render.terminal import render_terminal
from bot.render.view import ReportContext
from bot.spec import CompareConfig, CompareSection, load_compare_config
from bot.yaml_errors import in_words


class DiffRequestInvalid(TierbotError):
    """The paths or options given to `tierbot diff` cannot be compared; `bot.cli.main` exits 2."""


@dataclass(frozen=True)
class Outputs:
    """One side: its manifest and where each entry's bytes are."""

    manifest: Manifest
    locate: Callable[[FileEntry], Path]


def _kind_of_path(path: Path) -> str:
    return "directory" if path.is_dir() else "file" if path.is_file() else "special file"


def _directory(path: Path) -> Outputs:
    try:
        manifest = manifest_of(path)
    except OSError as exc:
        raise DiffRequestInvalid(f"{path} could not be read: {exc.strerror or exc}") from None
    root = path.resolve()
    return Outputs(manifest, lambda entry: root / entry.path)


def _single_file(path: Path, name: str) -> Outputs:
    try:
        entry = FileEntry(path=name, size=path.stat().st_size, hash=file_hash(path))
    except OSError as exc:
        raise DiffRequestInvalid(f"{path} could not be read: {exc.strerror or exc}") from None
    return Outputs(Manifest(files={name: entry}), lambda _: path)


def _both(read: Callable[..., Outputs], old: tuple, new: tuple) -> tuple[Outputs, Outputs]:
    """Both sides hashed at once: reading and xxhash both run outside the GIL (two 700 MB Parquet files
    from page cache: 0.08 s against 0.23 s one after the other)."""
    with ThreadPoolExecutor(2) as pool:
        old_side, new_side = pool.submit(read, *old), pool.submit(read, *new)
        return old_side.result(), new_side.result()


def outputs_of(old: Path, new: Path) -> tuple[Outputs, Outputs]:
    """Two directories, or two files named by NEW's basename (so their kind comes from NEW's name)."""
    for path in (old, new):
        if not path.exists():
            raise DiffRequestInvalid(f"{path} does not exist")
    if old.is_dir() and new.is_dir():
        return _both(_directory, (old,), (new,))
    if old.is_file() and new.is_file():
        return _both(_single_file, (old, new.name), (new, new.name))
    raise DiffRequestInvalid(
        f"give two directories or two files: {old} is a {_kind_of_path(old)}, {new} is a {_kind_of_path(new)}"
    )


def _config(path: Path | None) -> CompareConfig:
    if path is None:
        return CompareConfig()
    try:
        return load_compare_config(path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DiffRequestInvalid(f"the config file {path} could not be read: {reason}") from None


def compare_section(
    config: CompareSection,
    paths: set[str],
    keys: list[str],
    abs_tolerance: float | None,
    rel_tolerance: float | None,
    ignore: list[str],
    mask: list[str],
) -> CompareSection:
    """The config's rules with the options applied; files the config lists keep their own rules."""
    data = config.model_dump(by_alias=True)
    data["ignore"] += ignore
    data["mask"] += mask
    if abs_tolerance is not None or rel_tolerance is not None:
        default = config.json_tolerance
        data["json_tolerance"] = {
            "abs": default.abs if abs_tolerance is None else abs_tolerance,
            "rel": default.rel if rel_tolerance is None else rel_tolerance,
        }
    if keys or abs_tolerance is not None or rel_tolerance is not None:
        tolerance = {"abs": abs_tolerance or 0.0, "rel": rel_tolerance or 0.0}
        data["tables"] += [
            {"file": path, "key": keys, "tolerance": tolerance}
            for path in sorted(paths)
            if kind_by_name(path, False) == "table" and config.table_file(path) is None
        ]
    try:
        return CompareSection.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(in_words(CompareSection, data, exc))
        raise DiffRequestInvalid(f"invalid option: {problems}") from None


def _write_html(html: Path, comparison: Comparison, context: ReportContext, artifacts: Path) -> None:
    try:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_html(comparison, context, artifacts), encoding="utf-8")
    except OSError as exc:
        raise DiffRequestInvalid(f"the report {html} could not be written: {exc.strerror or exc}") from None


def diff(
    old: Annotated[
        Path,
        typer.Argument(metavar="OLD", help="main's outputs: a directory, or one file.", show_default=False),
    ],
    new: Annotated[
        Path,
        typer.Argument(
            metavar="NEW", help="The branch's outputs, of the same kind as OLD.", show_default=False
        ),
    ],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="A tierbot.yaml whose `compare` section to use.")
    ] = None,
    key: Annotated[
        list[str] | None, typer.Option("--key", "-k", help="Key column of tables (repeat for several).")
    ] = None,
    abs_tolerance: Annotated[
        float | None, typer.Option("--abs", min=0, help="Absolute tolerance: |a-b| <= abs + rel*|old|.")
    ] = None,
    rel_tolerance: Annotated[
        float | None, typer.Option("--rel", min=0, help="Relative tolerance, a fraction of the old value.")
    ] = None,
    ignore: Annotated[list[str] | None, typer.Option("--ignore", help="Glob of files not compared.")] = None,
    mask: Annotated[
        list[str] | None, typer.Option("--mask", help="RE2 regular expression masked in text before diffing.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the comparison as JSON, and only that.")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="Write the full HTML report to this file.")
    ] = None,
) -> None:
    """Compare two output directories (or two files) outside any repository; exit 1 on a failing verdict."""
    base, head = outputs_of(old, new)
    settings = _config(config)
    paths = base.manifest.files.keys() | head.manifest.files.keys()
    section = compare_section(
        settings.compare, paths, key or [], abs_tolerance, rel_tolerance, ignore or [], mask or []
    )
    artifacts = html.parent / f"{html.stem}_files" if html else None  # the diff pictures, beside the page
    options = Options(artifacts=artifacts)
    comparison = compare_outputs(base.manifest, head.manifest, base.locate, head.locate, section, options)
    context = ReportContext(
        experiment=settings.name or "tierbot diff", head_label=str(new), base_label=str(old), tier="—"
    )
    status = verdict_exit(comparison)
    if as_json:
        report = str(html) if html is not None else None
        document = ComparisonDoc(
            id=None,
            state="done",
            verdict=comparison.verdict,
            reason=None,
            report_path=report,
            report_url=None,
            result=comparison,
        )
        print(CliOutput(command="diff", exit_code=status, comparison=document).model_dump_json(indent=2))
    else:
        render_terminal(comparison, context, Console())
    if html is not None and artifacts is not None:
        _write_html(html, comparison, context, artifacts)
        Console(stderr=as_json).print(f"HTML report: {term_text(html)}", highlight=False)
    raise typer.Exit(status)
