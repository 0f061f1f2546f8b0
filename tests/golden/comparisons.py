"""Comparisons built by hand as model objects, that golden files are rendered from: every kind of file,
every status, and names that need escaping, so that renderers are tested against the model alone,
whatever the engines produce today; and comparisons too big for any message."""

from bot.compare import Comparison, FileChange, MetricChange, TextDiff
from bot.compare.model import (
    CellChange,
    ColumnDiff,
    FileProblem,
    ImageDiff,
    JsonChange,
    JsonDiff,
    MetricSeries,
    ParamChange,
    ParamsDiff,
    SchemaChange,
    SeriesSide,
    TableDiff,
)
from bot.history import MetricRange
from bot.render.view import ReportContext


def recent(name: str, values: list[float]) -> tuple[str, MetricRange]:
    """Main's last runs of a metric of metrics.json, as the report context holds them."""
    commits = [f"c{i:06d}" for i in range(len(values))]
    found = MetricRange(file="metrics.json", name=name, branch="main", values=values, commits=commits)
    return MetricRange.key_of("metrics.json", name), found


CONTEXT = ReportContext(
    experiment="iris",
    head_label="feature-x @ 1a2b3c4",
    base_label="main @ 9f8e7d6 (merge base)",
    tier="gpu-small",
    baseline_reused=True,
    head_run_id=12,
    base_run_id=7,
    report_url="https://tierbot.example/comparisons/5",
    history=dict(
        [
            recent("test.accuracy", [0.905, 0.915, 0.91, 0.912]),  # the branch's 0.894 is outside
            recent("test.loss", [0.26, 0.23, 0.25]),  # 0.24 is inside
            recent("train.seconds", [40.0]),
        ]
    ),
)

NASTY = "a<b>&c|d`e*f\ng"  # user data that needs escaping in every format


def row(path: str, status: str, kind: str, base: int | None, head: int | None, summary: str = "", **kw):
    return FileChange(
        path=path, status=status, kind=kind, size_base=base, size_head=head, summary=summary, **kw
    )


def metric(name: str, base, head, change: str, **kw) -> MetricChange:
    delta = None if base is None or head is None else round(head - base, 12)
    pct = None if not delta or not base else round(delta / abs(base) * 100, 11)
    return MetricChange(
        file="metrics.json", name=name, base=base, head=head, delta=delta, delta_pct=pct, change=change, **kw
    )


def cell(key: str, column: str, old: str, new: str, delta: float | None, beyond: bool) -> CellChange:
    return CellChange(key={"id": key}, column=column, old=old, new=new, delta=delta, beyond=beyond)


def representative_comparison() -> Comparison:
    """Every status, kind, move and problem once, and names that need escaping in every format."""
    files = [
        row("cache/features.parquet", "ignored", "binary", 8, 8),
        row("config.json", "identical", "json", 12, 12),
        row("eval.log", "changed", "text", 36, 36, "only volatile tokens differ", volatile_only=True),
        row("extra.txt", "added", "text", None, 9, "new, 1 line"),
        row("latin1.txt", "changed", "binary", 3, 5, "size 3 B → 5 B"),
        row("metrics.json", "changed", "metrics", 112, 115, "6 metrics changed, 1 beyond threshold"),
        row("model.pkl", "changed", "binary", 360, 369, "size 360 B → 369 B"),
        row("notes <em>.md", "changed", "text", 17, 24, "+1 −1 lines"),
        row(
            "params.yaml",
            "changed",
            "json",
            240,
            251,
            "3 values changed, 1 added, 1 removed; 2 more within tolerance",
        ),
        row("plots/confusion.png", "changed", "image", 1830, 1871, "1.56% of pixels differ (64 of 4,096)"),
        row(
            "predictions.parquet",
            "changed",
            "table",
            52_113,
            52_406,
            "1,000 → 1,002 rows, 4 beyond tolerance",
        ),
        row("scores.csv", "changed", "table", 61, 61, "3 cells changed, all within tolerance"),
        row("train.log", "changed", "text", 125, 125, "+2 −2 lines"),
        row("weird|name`s.txt", "changed", "text", 6, 6, "+1 −1 lines"),
    ]
    metrics = [
        metric("new_metric", None, 0.5, "added"),
        metric("old_metric", 1, None, "removed"),
        metric(
            "test.accuracy", 0.912, 0.894, "down", direction="higher", assessment="worse", threshold="0.01"
        ).model_copy(update={"failed": True}),
        metric("test.a|b", 3, 3, "same"),
        metric("test.loss", 0.25, 0.24, "down", direction="lower", assessment="better", threshold="10%"),
        metric("train.epochs", 10, 12, "up"),
        metric("train.seconds", 41.5, 38.25, "down", direction="lower", assessment="better"),
    ]
    text_diffs = [
        TextDiff(
            path="notes <em>.md",
            lines_added=1,
            lines_removed=1,
            diff="--- a/notes <em>.md\n+++ b/notes <em>.md\n@@ -1,2 +1,2 @@\n"
            " # Notes\n-all good\n+all <b>good</b>",
            diff_lines=6,
        ),
        TextDiff(
            path="train.log",
            lines_added=2,
            lines_removed=2,
            diff="--- a/train.log\n+++ b/train.log\n@@ -1,5 +1,5 @@\n <time> start <masked>\n"
            "-epoch 1 loss=0.31 in <duration>\n-epoch 2 loss=0.27\n+epoch 1 loss=0.30 in <duration>\n"
            "+epoch 2 loss=0.24\n ```\n saved model to <tmp>",
            diff_lines=10,
        ),
        TextDiff(
            path="weird|name`s.txt",
            lines_added=1,
            lines_removed=1,
            diff="--- a/weird|name`s.txt\n+++ b/weird|name`s.txt\n@@ -1 +1 @@\n-a | b\n+a | c",
            diff_lines=5,
        ),
    ]
    predictions = TableDiff(
        path="predictions.parquet",
        key=["id"],
        rows_base=1000,
        rows_head=1002,
        rows_added=3,
        rows_removed=1,
        rows_changed=12,
        rows_beyond=4,
        duplicate_keys_base=2,
        duplicate_keys_head=2,
        schema_changes=[
            SchemaChange(column="margin", change="added", head_type="DOUBLE"),
            SchemaChange(column="debug", change="removed", base_type="VARCHAR"),
            SchemaChange(column="label", change="type", base_type="VARCHAR", head_type="INTEGER"),
        ],
        columns=[
            ColumnDiff(
                name="score",
                changed=12,
                beyond=3,
                tolerance="abs 0.001, rel 0",
                max_abs_delta=0.25,
                mean_delta=0.0125,
                p99_abs_delta=0.24,
            ),
            ColumnDiff(name="comment|note", changed=1, beyond=1),
        ],
        top_changes=[
            cell("17", "score", "0.5", "0.75", 0.25, True),
            cell("3", "score", "0.91", "0.9", -0.01, True),
            cell("8", "score", "0.1", "0.1005", 0.0005, False),
        ],
        first_changes=[
            cell("3", "score", "0.91", "0.9", -0.01, True),
            cell("5", "comment|note", "fine & <ok>", "line one\nline `two` *bold*", None, True),
            cell("8", "score", "0.1", "0.1005", 0.0005, False),
        ],
        added_keys=[{"id": "1001"}, {"id": "1002"}],
        removed_keys=[{"id": "<b>42</b>"}],
    )
    scores = TableDiff(
        path="scores.csv",
        key=["fold", "id"],
        key_detected=True,
        positional=True,
        rows_base=3,
        rows_head=3,
        rows_changed=3,
        columns=[
            ColumnDiff(
                name="auc",
                changed=3,
                tolerance="abs 1e-06, rel 0.001",
                max_abs_delta=0.0004,
                mean_delta=-0.0001,
                p99_abs_delta=0.0004,
            )
        ],
        top_changes=[
            CellChange(key={"fold": "1", "id": "a"}, column="auc", old="0.8812", new="0.8808", delta=-0.0004)
        ],
    )
    params = JsonDiff(
        path="params.yaml",
        changes=[
            JsonChange(pointer="model.layers[2].units", change="changed", old="64", new="128"),
            JsonChange(pointer="name", change="changed", old='"a <b> & c"', new='"a|b `c` *d*\\nsecond"'),
            JsonChange(pointer="optimizer.beta", change="added", new="0.9"),
            JsonChange(pointer="dropout", change="removed", old="0.1"),
            JsonChange(pointer="seed", change="type", old='"1"', new="1"),
        ],
        total=5,
        within_tolerance=2,
    )
    confusion = ImageDiff(
        path="plots/confusion.png",
        size_base=(64, 64),
        size_head=(64, 64),
        differing_pixels=64,
        share=64 / 4096,
        diff_image="plots__confusion.png.diff.png",
        # One picture stands for all three panels: the renderers only inline what they are given.
        base_image="plots__confusion.png.diff.png",
        head_image="plots__confusion.png.diff.png",
    )
    inputs = [
        ParamsDiff(
            path="params.yaml",
            changes=[
                ParamChange(name="dropout", change="removed", old=0.2),
                ParamChange(name="epochs", change="added", new=20),
                ParamChange(name="model.layers", change="changed", old=[64, 32], new=[128, 32]),
                ParamChange(name="seed", change="changed", old="1", new=1),
                ParamChange(name="train.lr", change="changed", old=0.1, new=0.01),
            ],
            total=7,
            unchanged=12,
        ),
        ParamsDiff(
            path="configs/<b>.toml", base_note="missing", head_note="not valid TOML: Expected '=' (line 2)"
        ),
    ]
    return Comparison(
        verdict="fail",
        reasons=[
            "metric test.accuracy in metrics.json got worse by 0.018 (threshold 0.01)",
            "table predictions.parquet: 4 rows beyond tolerance",
            "11 files changed (1 only in volatile tokens), 1 added",
            "metrics: 2 better, 1 changed without a direction, 1 added, 1 removed",
            "1 problem comparing files (see below)",
        ],
        files=files,
        metrics=metrics,
        text_diffs=text_diffs,
        tables=[predictions, scores],
        json_diffs=[params],
        images=[confusion],
        params=inputs,
        series=[
            MetricSeries(
                file="metrics.json",
                name="loss",
                base=SeriesSide(x=[0, 1, 2, 3], y=[0.9, 0.6, 0.45, 0.4], points=4, last=0.4),
                head=SeriesSide(x=[0, 1, 2, 3, 4], y=[0.9, 0.5, 0.4, 0.35, 0.31], points=5, last=0.31),
            ),
            MetricSeries(
                file="steps <1>.csv",
                name="val_loss",
                x="step",
                head=SeriesSide(x=[100, 200], y=[0.7, 0.5], points=2, last=0.5),
            ),
        ],
        problems=[
            FileProblem(
                path="latin1.txt",
                message="the branch's latin1.txt is not UTF-8 text (byte 0xe9 at offset 3); "
                "it was compared as bytes",
            )
        ],
    )


def enormous_comparison(changed_files: int, tables: int = 0, examples: int = 40) -> Comparison:
    """Thousands of changed logs with long diffs, hundreds of tables with many examples, a metrics table."""
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
        files.append(row(path, "changed", "text", 9000, 9100, "+100 −100 lines"))
    table_diffs = []
    for t in range(tables):
        path = f"tables/t{t:04d}.parquet"
        files.append(row(path, "changed", "table", 10**6, 10**6, "40 rows beyond tolerance"))
        changes = [
            CellChange(
                key={"id": f"{t}-{n}", "part": "a|b"},
                column=f"col_{n % 9}",
                old=f"{n}.5 <{NASTY}>",
                new=f"{n}.75",
                delta=0.25,
                beyond=True,
            )
            for n in range(examples)
        ]
        table_diffs.append(
            TableDiff(
                path=path,
                key=["id", "part"],
                rows_base=10**6,
                rows_head=10**6 + 5,
                rows_added=5,
                rows_changed=examples,
                rows_beyond=examples,
                duplicate_keys_head=1,
                schema_changes=[SchemaChange(column="extra", change="added", head_type="DOUBLE")],
                columns=[
                    ColumnDiff(name=f"col_{c}", changed=9, beyond=9, max_abs_delta=0.25) for c in range(9)
                ],
                top_changes=changes,
                first_changes=changes,
                added_keys=[{"id": f"new-{n}", "part": "a"} for n in range(examples)],
            )
        )
    files.append(row("metrics.json", "changed", "metrics", 80, 80, "30 metrics changed"))
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
        reasons=[f"{changed_files + tables + 1} files changed", "metrics: 30 better"],
        files=files,
        metrics=metrics,
        text_diffs=diffs,
        tables=table_diffs,
    )


def nasty_comparison() -> Comparison:
    """User data with every character that means something in Markdown, HTML or Slack."""
    path = f"out/{NASTY}.csv"
    return Comparison(
        verdict="changed",
        reasons=[f"table {path}: 1 row beyond tolerance"],
        files=[row(path, "changed", "table", 10, 11, f"summary {NASTY}")],
        metrics=[metric(f"m.{NASTY}", 1, 2, "up").model_copy(update={"threshold": NASTY})],
        tables=[
            TableDiff(
                path=path,
                key=[NASTY],
                rows_base=1,
                rows_head=1,
                rows_changed=1,
                rows_beyond=1,
                schema_changes=[SchemaChange(column=NASTY, change="type", base_type=NASTY, head_type="INT")],
                columns=[ColumnDiff(name=NASTY, changed=1, beyond=1, tolerance=NASTY)],
                top_changes=[
                    CellChange(key={NASTY: NASTY}, column=NASTY, old=NASTY, new=f"``{NASTY}", beyond=True)
                ],
                added_keys=[{NASTY: NASTY}],
            )
        ],
        json_diffs=[
            JsonDiff(
                path=path,
                changes=[JsonChange(pointer=NASTY, change="changed", old=NASTY, new=NASTY)],
                total=1,
            )
        ],
        images=[ImageDiff(path=path, size_base=(1, 1), size_head=(1, 1), differing_pixels=1, share=1.0)],
        problems=[FileProblem(path=path, message=f"message {NASTY}")],
        params=[
            ParamsDiff(
                path=path,
                changes=[ParamChange(name=NASTY, change="changed", old=NASTY, new=[NASTY])],
                total=1,
                base_note=NASTY,
            )
        ],
    )
