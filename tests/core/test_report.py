"""The renderings of a comparison: GitHub Markdown, the HTML report, the terminal (Slack:
tests/slack/test_blocks.py).

What users read is pinned by golden files in tests/golden/ (comparison.md, comparison.html,
comparison.term.txt, comparison.slack.json), rendered from one representative comparison built by hand
as model objects (tests/golden/comparisons.py) — every kind of file, every status, and names that need
escaping — so that the renderers are tested against the model alone, whatever the engines produce
today; comparison-reused.txt pins how every rendering names runs that were reused. After an intended
change, regenerate them and review the diff like any other change:

    UPDATE_GOLDEN=1 python -m pytest tests/core/test_report.py tests/slack/test_blocks.py
"""

import base64
import json
import re
from pathlib import Path

import pytest
import xxhash
from rich.console import Console

from bot.compare import Comparison, compare_outputs
from bot.compare.model import FileProblem, JsonChange, JsonDiff
from bot.manifest import FileEntry, Manifest
from bot.render.html import render_html
from bot.render.markdown import GITHUB_CHECK_SUMMARY_LIMIT, GITHUB_COMMENT_LIMIT, render_markdown
from bot.render.terminal import render_terminal
from bot.render.view import ReportContext
from bot.spec import CompareSection

from ..golden import check_golden, comparisons
from ..golden.comparisons import (
    CONTEXT,
    NASTY,
    enormous_comparison,
    nasty_comparison,
    representative_comparison,
)

# A 4×4 PNG, white with two red pixels: the diff picture of the representative image.
DIFF_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAIUlEQVR4nFXJsQ0AMAzDMLr//+xMARpthFK0wNNKFud8DQJUBwNyO1W6"
    "AAAAAElFTkSuQmCC"
)


@pytest.fixture
def representative() -> Comparison:
    return representative_comparison()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    (tmp_path / "plots__confusion.png.diff.png").write_bytes(DIFF_PNG)
    return tmp_path


# -- golden files ---------------------------------------------------------------------------------------


def test_markdown_golden(representative):
    check_golden("comparison.md", render_markdown(representative, CONTEXT))


def test_html_golden(representative, artifacts):
    check_golden("comparison.html", render_html(representative, CONTEXT, artifacts))


def test_reused_runs_are_named_alike_in_every_report_golden():
    """A comparison whose sides both did not run again (`bot.reuse`): every rendering names the runs
    whose outcome it shows, in the words of `ReportContext.run_notes`. Pinned: the Markdown of the PR
    comment and check run, the HTML report's header line, the terminal, Slack's context line."""
    from bot.compare import FileChange
    from bot.render.slack import render_slack

    ctx = CONTEXT.model_copy(update={"head_reused_run_id": 9})
    same = FileChange(path="metrics.json", status="identical", kind="metrics", size_base=20, size_head=20)
    comparison = Comparison(verdict="pass", reasons=["every output file is identical"], files=[same])
    (html_header,) = re.findall(r'<p class="context">.*?</p>', render_html(comparison, ctx), re.DOTALL)
    slack = render_slack(comparison, ctx)["blocks"]
    slack_context = [b["elements"][0]["text"] for b in slack if b["type"] == "context"]
    renderings = {
        "Markdown": render_markdown(comparison, ctx),
        "HTML (header)": html_header + "\n",
        "terminal": terminal_text(comparison, ctx),
        "Slack (context)": "\n".join(slack_context) + "\n",
    }
    check_golden("comparison-reused.txt", "".join(f"==> {k} <==\n{v}\n" for k, v in renderings.items()))
    plain = CONTEXT.model_copy(update={"baseline_reused": False})
    assert plain.run_notes() == [] and plain.run_notes(branch_run=True) == ["branch run 12"]


# -- Markdown -------------------------------------------------------------------------------------------


def table_blocks(markdown: str) -> list[list[str]]:
    """Consecutive lines that start with `|`: each is one Markdown table."""
    blocks, current = [], []
    for line in markdown.splitlines() + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks


def cells(line: str) -> int:
    """The cells GitHub sees in a table row: pipes that are not escaped separate them."""
    return len(re.split(r"(?<!\\)\|", line)) - 2


def assert_tables_whole(markdown: str) -> None:
    """Every table has its header, its delimiter row, and rows of exactly as many cells."""
    for block in table_blocks(markdown):
        assert len(block) >= 2 and set(block[1]) <= set("|-: "), block[:2]
        widths = {cells(line) for line in block}
        assert len(widths) == 1, block
        assert all(line.endswith(" |") for line in block), block


def test_markdown_starts_with_the_verdict_and_escapes_table_cells(representative):
    markdown = render_markdown(representative, CONTEXT)
    verdict = "❌ **FAIL** · metric test.accuracy in metrics.json got worse by 0.018 (threshold 0.01); "
    assert markdown.splitlines()[0].startswith(verdict)
    assert "| ``weird\\|name`s.txt`` |" in markdown  # the pipe cannot split the cell, the backtick is fenced
    assert "| `test.a\\|b` |" in markdown
    assert "<code>notes &lt;em&gt;.md</code>" in markdown  # HTML inside <summary> is escaped
    assert "````diff\n" in markdown  # a diff with a context line ``` gets a longer fence
    assert_tables_whole(markdown)


def test_markdown_sections_in_order(representative):
    markdown = render_markdown(representative, CONTEXT)
    order = [markdown.index(h) for h in ("### Files", "### Metrics", "### Problems", "### Details")]
    assert order == sorted(order)
    assert markdown.count("<details>") == markdown.count("</details>") == 7  # 2 tables, JSON, image, 3 diffs
    assert "| ≈ within tolerance | `scores.csv` |" in markdown
    assert "| ❌ changed | `metrics.json` |" in markdown


def test_markdown_table_detail(representative):
    markdown = render_markdown(representative, CONTEXT)
    table = markdown.split("<code>predictions.parquet</code>")[1].split("</details>")[0]
    assert "**1,000 → 1,002 rows** · 3 added · 1 removed · 12 changed, 4 beyond tolerance · key `id`" in table
    assert "⚠️ **Duplicate keys:** 2 rows on main and 2 on the branch" in table
    assert "| `margin` | ➕ added | — | `DOUBLE` |" in table
    assert "| `label` | type changed | `VARCHAR` | `INTEGER` |" in table
    assert "| `score` | 12 | 3 ❌ | 0.25 | +0.0125 | 0.24 | abs 0.001, rel 0 |" in table
    assert "| `id=17` | `score` | `0.5` → `0.75` | +0.25 ❌ |" in table  # the largest first
    assert "**Largest changes** (top 3 by \\|Δ\\|)" in table and "**First changes by key**" in table
    assert "**Added rows** (first 2 of 3): `id=1001` · `id=1002`" in table
    assert "**Removed rows**: `id=<b>42</b>`" in table  # a code span shows HTML as text
    assert "| `id=5` | `comment\\|note` | `fine & <ok>` → ``line one↵line `two` *bold*`` | — ❌ |" in table
    scores = markdown.split("<code>scores.csv</code>")[1].split("</details>")[0]
    assert "key `fold`, `id` (detected) · same key order" in scores


def test_markdown_json_and_image_details(representative):
    markdown = render_markdown(representative, CONTEXT)
    params = markdown.split("<code>params.yaml</code>")[1].split("</details>")[0]
    assert "| `model.layers[2].units` | changed | `64` → `128` |" in params
    assert "| `optimizer.beta` | added | — → `0.9` |" in params
    assert '| `seed` | type changed | `"1"` → `1` |' in params
    assert "_2 numbers moved within tolerance._" in params
    image = markdown.split("<code>plots/confusion.png</code>")[1].split("</details>")[0]
    assert "| size | 64×64 | 64×64 |" in image
    assert "**64 pixels differ** (1.56% of the image)." in image
    anchor = re.search(r"\[main \| branch \| difference in the report\]\(([^)]+)\)", image)
    assert anchor and anchor.group(1).startswith("https://tierbot.example/comparisons/5#diff-")
    html = render_html(representative, CONTEXT)
    assert f'id="{anchor.group(1).split("#")[1]}"' in html  # the link lands on the image's section
    no_url = render_markdown(representative, CONTEXT.model_copy(update={"report_url": None}))
    assert "main | branch | difference are in the HTML report." in no_url


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
    assert "not shown here. The full report has them." in without_url


def test_markdown_keeps_failing_and_beyond_tolerance_details_longest(representative):
    full = render_markdown(representative, CONTEXT)
    details = re.findall(r"<details><summary>.*?</details>\n", full, re.DOTALL)
    summary_only = len(full) - sum(len(d) + 1 for d in details)
    table = next(d for d in details if "predictions.parquet" in d)
    markdown = render_markdown(representative, CONTEXT, limit=summary_only + len(table) + 300)
    assert markdown.count("<details>") == 1 and "<code>predictions.parquet</code>" in markdown
    assert "6 detail sections (1 table, 1 JSON file, 1 image, 3 text diffs) not shown here" in markdown
    blocking = representative.model_copy(
        update={"problems": [FileProblem(path="train.log", message="the log is required", blocking=True)]}
    )
    markdown = render_markdown(blocking, CONTEXT, limit=summary_only + len(table) + 300)
    assert "<summary>❌ <code>train.log</code>" in markdown  # the failing file's diff outlives the table


def test_a_diff_without_a_file_row_still_gets_its_section():
    comparison = Comparison(
        verdict="changed",
        reasons=["1 file changed"],
        json_diffs=[
            JsonDiff(path="orphan.json", changes=[JsonChange(pointer="a", change="added", new="1")], total=1)
        ],
    )
    assert "<code>orphan.json</code>" in render_markdown(comparison, CONTEXT)
    assert 'id="diff-0"' in render_html(comparison, CONTEXT)


def test_html_links_each_file_row_to_its_section(representative, artifacts):
    html = render_html(representative, CONTEXT, artifacts)
    for path in ("params.yaml", "plots/confusion.png", "predictions.parquet", "scores.csv", "train.log"):
        anchor = re.search(rf'<a href="#(diff-\d+)"><code>{re.escape(path)}</code></a>', html)
        assert anchor and f'<details id="{anchor.group(1)}" open>' in html
    assert '<td class="status-changed">within tolerance</td>' in html


def test_check_summary_limit_is_one_less():
    assert (GITHUB_COMMENT_LIMIT, GITHUB_CHECK_SUMMARY_LIMIT) == (65_536, 65_535)


# -- enormous comparisons -------------------------------------------------------------------------------


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


def assert_summary_intact(markdown: str, comparison: Comparison, verdict: str) -> None:
    assert markdown.startswith(verdict)
    assert "\n### Files\n" in markdown and "| status | file | change | main | branch |" in markdown
    for metric in comparison.metrics:  # the metrics table is whole
        assert f"| `{metric.name}` | `metrics.json` | 0.5 | {metric.head:g} |" in markdown
    assert markdown.count("<details>") == markdown.count("</details>")
    assert markdown.count("```") % 2 == 0  # no fence cut open
    assert_tables_whole(markdown)
    assert "**[Open the full report](https://tierbot.example/comparisons/5)**" in markdown


@pytest.mark.parametrize("limit", [GITHUB_COMMENT_LIMIT, GITHUB_CHECK_SUMMARY_LIMIT])
def test_thousands_of_files_and_hundreds_of_tables_fit_both_github_limits(limit):
    comparison = enormous_comparison(3000, tables=400)
    markdown = render_markdown(comparison, CONTEXT, limit=limit)
    assert len(markdown) <= limit
    assert_summary_intact(markdown, comparison, "🟡 **CHANGED** · 3401 files changed")
    hidden = re.search(r"\| \| _… (\d+) changed not listed_ \| \| \| \|", markdown)
    listed = re.findall(r"^\| ✏️ changed \| `", markdown, re.MULTILINE)
    assert hidden and len(listed) + int(hidden.group(1)) == 3401  # file rows folded whole, and counted
    assert render_markdown(comparison, CONTEXT, limit=limit) == markdown  # deterministic


@pytest.mark.parametrize("limit", [GITHUB_COMMENT_LIMIT, GITHUB_CHECK_SUMMARY_LIMIT])
def test_hundreds_of_tables_drop_whole_details_failing_first(limit):
    comparison = enormous_comparison(200, tables=300)
    comparison.problems = [FileProblem(path="tables/t0299.parquet", message="schema drift", blocking=True)]
    comparison.verdict = "fail"
    markdown = render_markdown(comparison, CONTEXT, limit=limit)
    assert len(markdown) <= limit
    assert_summary_intact(markdown, comparison, "❌ **FAIL** · 501 files changed")
    for change in comparison.files:
        assert f"| `{change.path}` |" in markdown  # every file listed
    sections = re.findall(r"<details><summary>.*?</details>", markdown, re.DOTALL)
    assert 0 < len(sections) < 500
    assert all(s.count("| `id=") == 80 for s in sections)  # a table's examples: all there, never cut
    kept = re.findall(r"<summary>(?:❌ )?<code>(tables/t\d+\.parquet)</code>", markdown)
    assert kept[-1] == "tables/t0299.parquet"  # the failing table outlives the others (shown in file order)
    assert kept[:-1] == [f"tables/t{t:04d}.parquet" for t in range(len(kept) - 1)]  # then the rest in order
    assert "<code>shards/" not in markdown  # tables before text diffs
    note = re.search(r"(\d+) detail sections \((\d+) tables, 200 text diffs\) not shown here", markdown)
    assert note and int(note.group(1)) == 500 - len(sections) and int(note.group(2)) == 300 - len(kept)


@pytest.mark.parametrize("limit", [300, 2_000, 10_000, 30_000])
def test_any_limit_is_respected(limit):
    markdown = render_markdown(enormous_comparison(500, tables=20), CONTEXT, limit=limit)
    assert len(markdown) <= limit
    assert markdown.startswith("🟡 **CHANGED**")
    assert markdown.count("<details>") == markdown.count("</details>")


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


# -- escaping, in Markdown and HTML ---------------------------------------------------------------------


CODE_SPAN = re.compile(r"(?<![`\\])(`+)(?!`).+?(?<!`)\1(?!`)")
OUR_TAGS = re.compile(r"</?(details|summary|code)>")


def test_markdown_escapes_user_data_everywhere():
    markdown = render_markdown(nasty_comparison(), CONTEXT.model_copy(update={"experiment": NASTY}))
    assert_tables_whole(markdown)  # no pipe from user data splits a cell
    assert "**a\\<b\\>\\&c\\|d\\`e\\*f g**" in markdown  # text: every markup character escaped
    assert "| ``out/a<b>&c\\|d`e*f↵g.csv`` |" in markdown  # code span: fenced, pipe escaped, newline shown
    assert "<code>out/a&lt;b&gt;&amp;c|d`e*f↵g.csv</code>" in markdown  # HTML inside <summary>
    assert "``` ``a<b>&c\\|d`e*f↵g ```" in markdown  # a value that starts with backticks keeps them
    outside_code = OUR_TAGS.sub("", CODE_SPAN.sub("", markdown))
    assert not re.search(r"(?<!\\)[<`]", outside_code)  # no markup from user data outside code spans
    assert "\ng" not in markdown  # no line break from user data reaches the page


def test_html_is_escaped_and_self_contained(representative, artifacts):
    html = render_html(representative, CONTEXT, artifacts)
    assert "notes &lt;em&gt;.md" in html and "<em>" not in html
    assert "all &lt;b&gt;good&lt;/b&gt;" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # no external assets
    assert "<script" not in html
    nasty = render_html(nasty_comparison(), CONTEXT.model_copy(update={"experiment": NASTY}))
    assert "a&lt;b&gt;&amp;c|d`e*f" in nasty and "<b>" not in nasty


def test_html_inlines_the_diff_picture(representative, artifacts):
    html = render_html(representative, CONTEXT, artifacts)
    src = "data:image/png;base64," + base64.b64encode(DIFF_PNG).decode()
    assert f'<img class="diff" src="{src}"' in html


@pytest.mark.parametrize(
    ("name", "note"),
    [
        ("missing.png", "The diff picture missing.png is missing."),
        ("../outside.png", "is not a file name inside the artifacts directory"),
        ("link.png", "The diff picture link.png is missing."),  # a symlink is not followed
    ],
)
def test_html_notes_a_diff_picture_it_cannot_show(representative, artifacts, name, note):
    (artifacts.parent / "outside.png").write_bytes(DIFF_PNG)
    (artifacts / "link.png").symlink_to(artifacts.parent / "outside.png")
    image = representative.images[0]
    image.diff_image = image.base_image = image.head_image = name
    html = render_html(representative, CONTEXT, artifacts)
    assert note in html and "data:image" not in html
    without = render_html(representative, CONTEXT)  # no artifacts directory given at all
    assert "saved with the comparison, but not given here" in without


# -- terminal -------------------------------------------------------------------------------------------


def terminal_text(comparison: Comparison, ctx: ReportContext = CONTEXT) -> str:
    console = Console(record=True, width=120)
    render_terminal(comparison, ctx, console)
    return console.export_text()


def test_terminal_golden(representative):
    check_golden("comparison.term.txt", terminal_text(representative))


def test_terminal_shows_verdict_files_and_metrics(representative):
    text = terminal_text(representative)
    assert text.startswith("✖ FAIL metric test.accuracy in metrics.json got worse by 0.018")
    assert "Metrics metrics.json" in text  # one metrics file: named once, not on every row
    accuracy = r"test\.accuracy\s+0\.912\s+0\.894\s+-0\.018\s+-1\.97%\s+▼ worse ✖ beyond 0.01"
    assert re.search(accuracy, text)
    assert re.search(r"test\.loss\s+0\.25\s+0\.24\s+-0\.01\s+-4%\s+▼ better", text)
    assert "weird|name`s.txt" in text and "notes <em>.md" in text  # user data printed as is, not as markup
    assert "+epoch 2 loss=0.24" in text
    assert re.search(r"within\s+scores\.csv", text)


def test_terminal_headers_are_never_cut_by_short_names():
    short = Comparison(verdict="changed", reasons=[], metrics=[comparisons.metric("f1", 0.5, 0.6, "up")])
    header = terminal_text(short).splitlines()
    assert any(line.split()[:2] == ["metric", "main"] for line in header), header


def test_terminal_shows_tables_json_and_images(representative):
    text = terminal_text(representative)
    assert "── predictions.parquet 1,000 → 1,002 rows, +3 −1, 12 changed, 4 beyond tolerance" in text
    assert "⚠ duplicate keys: 2 rows on main, 2 on the branch (not paired)" in text
    assert "schema  label type VARCHAR → INTEGER" in text
    assert re.search(r"score\s+12\s+3\s+0\.25\s+\+0\.0125\s+0\.24", text)
    assert "id=17  score  0.5 → 0.75  +0.25 ✖" in text
    assert "added 3 id=1001, id=1002, …" in text and "removed 1 id=<b>42</b>\n" in text
    assert "── params.yaml 5 changes, 2 within tolerance" in text
    assert "model.layers[2].units  changed  64 → 128" in text
    assert re.search(r"plots/confusion\.png\s+1\.56% of pixels differ \(64 px, 64×64\)", text)
    nasty = terminal_text(nasty_comparison())
    assert "a<b>&c|d`e*f↵g → ``a<b>&c|d`e*f↵g  — ✖" in nasty  # markup characters printed, newline shown


def test_terminal_lists_at_most_ten_tables():
    text = terminal_text(enormous_comparison(0, tables=14, examples=3))
    assert text.count("── tables/") == 10
    assert "… 4 more tables in the full report" in text


# -- the real engine ------------------------------------------------------------------------------------


def write_outputs(root: Path, files: dict[str, str | bytes]) -> Manifest:
    """Write a run's outputs and return their manifest, hashed like the blob store hashes them."""
    entries = {}
    for name, content in sorted(files.items()):
        data = content if isinstance(content, bytes) else content.encode()
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
        entries[name] = FileEntry(path=name, size=len(data), hash=xxhash.xxh3_128_hexdigest(data))
    return Manifest(files=entries)


def test_what_the_engine_produces_renders_in_every_format(tmp_path):
    """Not a golden file: the engines deepen on their own; this only proves they and the renderers agree."""
    from bot.render.slack import render_slack

    spec = CompareSection.model_validate({"metrics": [{"file": "metrics.json", "metrics": {"acc": {}}}]})
    base = {"metrics.json": json.dumps({"acc": 0.9}), "log.txt": "a\nb\n", "cfg.json": '{"a": 1}'}
    head = {"metrics.json": json.dumps({"acc": 0.8}), "log.txt": "a\nc\n", "cfg.json": '{"a": 2}'}
    comparison = compare_outputs(
        write_outputs(tmp_path / "base", base),
        write_outputs(tmp_path / "head", head),
        lambda e: tmp_path / "base" / e.path,
        lambda e: tmp_path / "head" / e.path,
        spec,
    )
    assert "`acc`" in render_markdown(comparison, CONTEXT)
    assert "<code>log.txt</code>" in render_html(comparison, CONTEXT)
    assert "acc" in terminal_text(comparison)
    assert render_slack(comparison, CONTEXT)["blocks"]
