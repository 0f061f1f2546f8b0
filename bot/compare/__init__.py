"""The comparison engine: a branch's outputs against main's, file by file, with a verdict.

Pure: manifests, a way to read a file, and the spec's `compare` section in; a `Comparison` out. Files
whose hashes match are identical and never opened. Every other file goes to the comparer of its kind
(`COMPARERS`: metrics, text, binary; one module each), so a kind can deepen, or a new kind arrive,
without touching the others. A file that cannot be compared becomes a `FileProblem`; it never stops
the rest. So does each entry a manifest lists as skipped (never read: a link out of the workspace, a
FIFO...), which makes the verdict at least `changed`. Series of numbers (lists in changed metrics files,
and the tables of steps `compare.plots` lists, read even when identical: the spec asks for their charts)
go with the result for the reports' charts (`bot.compare.series`); they never change the verdict.
"""

import importlib
from collections.abc import Callable
from functools import cache
from pathlib import Path

from bot.compare.binary import compare_binary
from bot.compare.files import (
    FileUnreadable,
    Options,
    Outcome,
    Pair,
    Rules,
    kind_by_name,
    row,
    size_change,
    sniff_kind,
)
from bot.compare.jsondiff import compare_json
from bot.compare.metrics import compare_metrics
from bot.compare.model import (
    Comparison,
    FileChange,
    FileKind,
    FileProblem,
    ImageDiff,
    JsonDiff,
    MetricChange,
    TableDiff,
    TextDiff,
)
from bot.compare.params import compare_params
from bot.compare.series import compare_series
from bot.compare.text import compare_text
from bot.compare.verdict import decide
from bot.manifest import FileEntry, Manifest
from bot.spec import CompareSection

__all__ = [
    "Comparison",
    "FileChange",
    "FileProblem",
    "MetricChange",
    "Options",
    "TextDiff",
    "compare_outputs",
    "compare_params",
]

# Tables (DuckDB) and images (numpy, Pillow) are imported when the first such file is compared:
# commands that compare nothing, like `tierbot run`, start without them.
COMPARERS: dict[FileKind, Callable[[Pair, Rules], Outcome] | str] = {
    "metrics": compare_metrics,
    "json": compare_json,
    "image": "bot.compare.images:compare_image",
    "table": "bot.compare.tables:compare_table",
    "text": compare_text,
    "binary": compare_binary,
}


@cache
def comparer(kind: FileKind) -> Callable[[Pair, Rules], Outcome]:
    found = COMPARERS[kind]
    if isinstance(found, str):
        module, _, name = found.partition(":")
        found = getattr(importlib.import_module(module), name)
    return found


def _compare_pair(pair: Pair, rules: Rules) -> Outcome:
    """Dispatch by kind; any failure becomes a problem on this file alone."""
    try:
        return comparer(sniff_kind(pair, rules))(pair, rules)
    except FileUnreadable as exc:
        message = str(exc)
    except Exception as exc:  # one bad file must not hide the comparison of all the others
        message = f"{pair.path} could not be compared: {type(exc).__name__}: {exc}"
    kind = kind_by_name(pair.path, rules.spec.metric_file(pair.path) is not None)
    problem = FileProblem(path=pair.path, message=message)
    return Outcome(kind, f"not compared; {size_change(pair)}", problems=[problem])


def _missing_metric_files(spec: CompareSection, paths: set[str]) -> list[FileProblem]:
    """A metrics file the spec names but neither run produced: its rules would silently check nothing."""
    return [
        FileProblem(path=m.file, message=f"tierbot.yaml lists metrics file {m.file}, but neither run made it")
        for m in spec.metrics
        if m.file not in paths
    ]


def _missing_tables(spec: CompareSection, paths: set[str]) -> list[FileProblem]:
    """A table the spec names but neither run produced: its tolerances would silently check nothing."""
    return [
        FileProblem(path=t.file, message=f"tierbot.yaml lists table {t.file}, but neither run made it")
        for t in spec.tables
        if t.file not in paths
    ]


def _skipped_entries(base: Manifest, head: Manifest, spec: CompareSection) -> list[FileProblem]:
    """What either run left but was not read, with why; an ignored path is no news, read or not."""
    return [
        FileProblem(path=entry.path, message=f"skipped on {side}: {entry.reason}", skipped=True)
        for side, manifest in (("main", base), ("the branch", head))
        for entry in manifest.skipped
        if not spec.ignored(entry.path)
    ]


def compare_outputs(
    base: Manifest,
    head: Manifest,
    locate_base: Callable[[FileEntry], Path],
    locate_head: Callable[[FileEntry], Path],
    spec: CompareSection,
    options: Options | None = None,
) -> Comparison:
    """Compare main's outputs (`base`) with the branch's (`head`); deterministic for the same inputs."""
    rules = Rules.of(spec, options)
    files: list[FileChange] = []
    metrics: list[MetricChange] = []
    diffs: list[TextDiff] = []
    tables: list[TableDiff] = []
    json_diffs: list[JsonDiff] = []
    images: list[ImageDiff] = []
    problems: list[FileProblem] = []
    paths = base.files.keys() | head.files.keys()
    for path in sorted(paths):
        pair = Pair(path, base.files.get(path), head.files.get(path), locate_base, locate_head)
        listed = spec.metric_file(path) is not None
        if spec.ignored(path):
            files.append(row(pair, "ignored", kind_by_name(path, listed)))
            continue
        if pair.base is not None and pair.head is not None and pair.base.hash == pair.head.hash:
            files.append(row(pair, "identical", kind_by_name(path, listed)))
            continue
        status = "added" if pair.base is None else "removed" if pair.head is None else "changed"
        outcome = _compare_pair(pair, rules)
        files.append(row(pair, status, outcome.kind, outcome.summary, outcome.volatile_only))
        metrics += outcome.metrics
        diffs += [outcome.text_diff] if outcome.text_diff else []
        tables += [outcome.table] if outcome.table else []
        json_diffs += [outcome.json_diff] if outcome.json_diff else []
        images += [outcome.image] if outcome.image else []
        problems += outcome.problems
    problems += _missing_metric_files(spec, set(paths))
    problems += _missing_tables(spec, set(paths))
    problems += _skipped_entries(base, head, spec)
    series, plot_problems = compare_series(base, head, locate_base, locate_head, spec)
    problems += plot_problems
    problems.sort(key=lambda p: (p.path, p.message))
    verdict, reasons = decide(files, metrics, problems, tables)
    return Comparison(
        verdict=verdict,
        reasons=reasons,
        files=files,
        metrics=metrics,
        text_diffs=diffs,
        tables=tables,
        json_diffs=json_diffs,
        images=images,
        problems=problems,
        series=series,
    )
