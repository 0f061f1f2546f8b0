"""The three renderings of a comparison: GitHub Markdown, the HTML report and the terminal.

What users read is pinned by golden files in tests/golden/ (comparison.md, comparison.html), rendered
from one representative comparison of real output directories. After an intended change, regenerate
them and review the diff like any other change:

    UPDATE_GOLDEN=1 python -m pytest tests/test_report.py
"""

import json
import os
import re
from pathlib import Path

import pytest
import xxhash
from rich.console import Console

from bot.compare import Comparison, FileChange, MetricChange, TextDiff, compare_outputs
from bot.manifest import FileEntry, Manifest
from bot.report import ReportContext, render_html, render_markdown, render_terminal
from bot.spec import CompareSection

GOLDEN = Path(__file__).parent / "golden"

CONTEXT = ReportContext(
    experiment="iris",
    head_label="feature-x @ 1a2b3c4",
    base_label="main @ 9f8e7d6 (merge base)",
    tier="gpu-small",
    baseline_reused=True,
    head_run_id=12,
    base_run_id=7,
    report_url="https://tierbot.example/comparisons/5",
)

SPEC = CompareSection.model_validate(
    {
        "metrics": [
            {
                "file": "metrics.json",
                "metrics": {
                    "test.accuracy": {"direction": "higher", "max_regression": 0.01},
                    "test.loss": {"direction": "lower", "max_regression": "10%"},
                    "train.seconds": {"direction": "lower"},
                },
            }
        ],
        "ignore": ["cache/*"],
        "mask": [r"host=\S+"],
    }
)


def write_outputs(root: Path, files: dict[str, str | bytes]) -> Manifest:
    """Write a run's outputs and return their manifest, hashed like the blob store hashes them."""
    entries = {}
    for name, content in sorted(files.items()):
        data = content if isinstance(content, bytes) else content.encode()
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        entries[name] = FileEntry(path=name, size=len(data), hash=xxhash.xxh3_128_hexdigest(data))
    return Manifest(files=entries)


@pytest.fixture
def representative(tmp_path: Path) -> Comparison:
    """Every status, kind, move and problem once, and names that need escaping in Markdown and HTML."""
    base = {
        "metrics.json": json.dumps(
            {
                "test": {"accuracy": 0.912, "loss": 0.25, "a|b": 3},
                "train": {"seconds": 41.5, "epochs": 10},
                "old_metric": 1,
            }
        ),
        "train.log": "2024-05-01T10:00:00Z start host=gpu-1\nepoch 1 loss=0.31 in 1.2s\nepoch 2 loss=0.27\n"
        "```\nsaved model to /tmp/run-3f2a/model.pkl\n",
        "eval.log": "2024-05-01T10:00:09Z eval took 3.1s\n",
        "predictions.csv": "id,label\n1,setosa\n2,versicolor\n3,virginica\n",
        "model.pkl": b"\x80\x04model-a" * 40,
        "weird|name`s.txt": "a | b\n",
        "notes <em>.md": "# Notes\nall good\n",
        "latin1.txt": "ok\n",
        "config.json": '{"seed": 1}\n',
        "cache/features.parquet": b"PAR1\x00old",
    }
    head = {
        "metrics.json": json.dumps(
            {
                "test": {"accuracy": 0.894, "loss": 0.24, "a|b": 3},
                "train": {"seconds": 38.25, "epochs": 12},
                "new_metric": 0.5,
            }
        ),
        "train.log": "2024-06-02T11:30:00Z start host=gpu-7\nepoch 1 loss=0.30 in 2.9s\nepoch 2 loss=0.24\n"
        "```\nsaved model to /tmp/run-9e8d/model.pkl\n",
        "eval.log": "2024-06-02T11:30:15Z eval took 2.7s\n",
        "predictions.csv": "id,label\n1,setosa\n2,virginica\n3,virginica\n",
        "model.pkl": b"\x80\x04model-b" * 41,
        "weird|name`s.txt": "a | c\n",
        "notes <em>.md": "# Notes\nall <b>good</b>\n",
        "latin1.txt": "caf\xe9\n".encode("latin-1"),
        "config.json": '{"seed": 1}\n',
        "extra.txt": "new file\n",
        "cache/features.parquet": b"PAR1\x00new",
    }
    return compare_outputs(
        write_outputs(tmp_path / "base", base),
        write_outputs(tmp_path / "head", head),
        lambda e: tmp_path / "base" / e.path,
        lambda e: tmp_path / "head" / e.path,
        SPEC,
    )


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        return
    with path.open(encoding="utf-8", newline="") as handle:
        expected = handle.read()
    assert text == expected, f"{name} changed; if intended, rerun with UPDATE_GOLDEN=1 and review the diff"


def test_markdown_golden(representative):
    check_golden("comparison.md", render_markdown(representative, CONTEXT))


def test_html_golden(representative):
    check_golden("comparison.html", render_html(representative, CONTEXT))


def test_markdown_starts_with_the_verdict_and_escapes_table_cells(representative):
    markdown = render_markdown(representative, CONTEXT)
    verdict = "❌ **FAIL** · metric test.accuracy in metrics.json got worse by 0.018 (threshold 0.01); "
    assert markdown.splitlines()[0].startswith(verdict)
    assert "| ``weird\\|name`s.txt`` |" in markdown  # the pipe cannot split the cell, the backtick is fenced
    assert "| `test.a\\|b` |" in markdown
    assert "<code>notes &lt;em&gt;.md</code>" in markdown  # HTML inside <summary> is escaped
    assert "````diff\n" in markdown  # a diff with a context line ``` gets a longer fence
    for line in markdown.splitlines():
        if line.startswith("| "):
            assert line.endswith(" |")


def test_html_is_escaped_and_self_contained(representative):
    html = render_html(representative, CONTEXT)
    assert "notes &lt;em&gt;.md" in html and "<em>" not in html
    assert "all &lt;b&gt;good&lt;/b&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no external assets
    assert "<script" not in html


def test_markdown_drops_whole_details_first_when_over_the_limit(representative):
    full = render_markdown(representative, CONTEXT)
    shorter = render_markdown(representative, CONTEXT, limit=len(full) - 1)
    assert len(shorter) < len(full)
    assert shorter.count("<details>") == shorter.count("</details>") < full.count("<details>")
    assert shorter.split("### Metrics")[1].split("###")[0] == full.split("### Metrics")[1].split("###")[0]
    assert "[Open the full report](https://tierbot.example/comparisons/5)" in shorter
    no_url = CONTEXT.model_copy(update={"report_url": None})
    limit = len(render_markdown(representative, no_url)) - 1
    without_url = render_markdown(representative, no_url, limit=limit)
    assert "detail sections not shown here. The full report has them." in without_url


def enormous_comparison(changed_files: int) -> Comparison:
    """Thousands of changed logs, each with a long diff, and a metrics table that must survive."""
    files, diffs = [], []
    for i in range(changed_files):
        path = f"shards/part-{i:05d}.log"
        body = "\n".join(
            f"-row {i}.{n} old value {'x' * 40}\n+row {i}.{n} new value {'y' * 40}" for n in range(100)
        )
        diffs.append(
            TextDiff(
                path=path,
                lines_added=100,
                lines_removed=100,
                truncated=True,
                diff_lines=400,
                diff=f"--- a/{path}\n+++ b/{path}\n@@ -1,100 +1,100 @@\n{body}",
            )
        )
        files.append(
            FileChange(
                path=path,
                status="changed",
                kind="text",
                size_base=9000,
                size_head=9100,
                summary="+100 −100 lines",
            )
        )
    files.append(
        FileChange(
            path="metrics.json",
            status="changed",
            kind="metrics",
            size_base=80,
            size_head=80,
            summary="30 metrics changed",
        )
    )
    files.sort(key=lambda f: f.path)
    metrics = [
        MetricChange(
            file="metrics.json",
            name=f"class_{k}.f1",
            base=0.5,
            head=0.5 + k / 1000,
            delta=k / 1000,
            delta_pct=k / 5,
            change="up",
            direction="higher",
            assessment="better",
        )
        for k in range(1, 31)
    ]
    return Comparison(
        verdict="changed",
        reasons=[f"{changed_files + 1} files changed", "metrics: 30 better"],
        files=files,
        metrics=metrics,
        text_diffs=diffs,
    )


def test_enormous_comparison_fits_github_with_tables_whole(tmp_path):
    comparison = enormous_comparison(3000)
    markdown = render_markdown(comparison, CONTEXT)
    assert len(markdown) <= 65_536
    assert markdown.startswith("🟡 **CHANGED** · 3001 files changed")
    for metric in comparison.metrics:  # the metrics table is whole
        assert f"| `{metric.name}` | `metrics.json` | 0.5 | {metric.head:g} |" in markdown
    rows = [
        line
        for line in markdown.split("### Files", 1)[1].split("### Metrics")[0].splitlines()
        if line.startswith("| ")
    ]
    assert rows[0] == "| status | file | change | main | branch |"
    listed = [r for r in rows[2:] if "`" in r]
    assert all(len(re.split(r"(?<!\\)\|", r)) == 7 for r in rows)  # every row whole: 5 cells
    hidden = re.search(r"_… (\d+) changed not listed_", rows[-1])
    assert hidden and len(listed) + int(hidden.group(1)) == 3001  # rows dropped whole, and counted
    assert markdown.count("<details>") == markdown.count("</details>")
    assert markdown.count("```") % 2 == 0  # no fence cut open
    assert "[Open the full report](https://tierbot.example/comparisons/5)" in markdown
    assert render_markdown(comparison, CONTEXT) == markdown  # deterministic


@pytest.mark.parametrize("limit", [300, 2_000, 10_000, 30_000])
def test_any_limit_is_respected(limit):
    markdown = render_markdown(enormous_comparison(500), CONTEXT, limit=limit)
    assert len(markdown) <= limit
    assert markdown.startswith("🟡 **CHANGED**")


def test_long_diffs_are_dropped_whole_and_the_file_table_is_kept():
    comparison = enormous_comparison(300)
    markdown = render_markdown(comparison, CONTEXT)
    assert len(markdown) <= 65_536
    for change in comparison.files:
        assert f"| `{change.path}` |" in markdown  # every file listed
    assert 0 < markdown.count("<details>") == markdown.count("</details>") < 300
    kept = re.findall(r"<summary><code>(shards/part-\d+\.log)</code>", markdown)
    assert kept == [d.path for d in comparison.text_diffs[: len(kept)]]  # dropped from the end
    assert f"{300 - len(kept)} detail sections not shown here" in markdown


def test_terminal_shows_verdict_files_and_metrics(representative):
    console = Console(record=True, width=120)
    render_terminal(representative, CONTEXT, console)
    text = console.export_text()
    assert text.startswith("✖ FAIL metric test.accuracy in metrics.json got worse by 0.018")
    assert "Metrics metrics.json" in text  # one metrics file: named once, not on every row
    accuracy = r"test\.accuracy\s+0\.912\s+0\.894\s+-0\.018\s+-1\.97%\s+▼ worse ✖ beyond 0.01"
    assert re.search(accuracy, text)
    assert re.search(r"test\.loss\s+0\.25\s+0\.24\s+-0\.01\s+-4%\s+▼ better", text)
    assert "weird|name`s.txt" in text and "notes <em>.md" in text  # user data printed as is, not as markup
    assert "+epoch 2 loss=0.24" in text
