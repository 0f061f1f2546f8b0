"""What the terminal door ends with, for scripts: the exit status, and the one JSON shape `--json` prints.

Exit status (README, "Verdicts and exit codes"):
- 0: the run succeeded, or the comparison's verdict is pass or changed;
- 1: the verdict is fail;
- 2: the request was wrong (usage, configuration, an unknown ref or tier);
- 3: the experiment itself failed (it crashed, timed out, ran out of memory, or left no outputs to
  compare);
- 4: interrupted or cancelled.

`--json` on `run`, `compare`, `show`, `runs`, `diff`, `ci`, `history` and `costs` prints one document of
one shape (`CliOutput`, whose JSON Schema is `schemas/cli-output.schema.json` and `tierbot schema
--output`): the runs, the comparison with its full result, where its report is, the month's costs, and
the exit status; numbers as numbers.
"""

from datetime import datetime
from enum import IntEnum
from typing import Literal

from pydantic import BaseModel, Field

from bot.compare import Comparison
from bot.costs import MonthCosts
from bot.history import MetricHistory
from bot.store import ComparisonRecord, Output, Report, Run, RunState


class Exit(IntEnum):
    OK = 0
    FAIL = 1
    USAGE = 2
    EXPERIMENT = 3
    INTERRUPTED = 4


def run_exit(run: Run) -> Exit:
    if run.state == RunState.succeeded:
        return Exit.OK
    return Exit.INTERRUPTED if run.state == RunState.cancelled else Exit.EXPERIMENT


def comparison_exit(record: ComparisonRecord) -> Exit:
    """By the verdict; without one, by the runs (a cancelled one first), else the experiment's fault:
    both ran, and what the spec declares could not be compared."""
    if record.state == "done":
        return Exit.FAIL if record.verdict == "fail" else Exit.OK
    ended = [run_exit(run) for run in (record.head_run, record.base_run)]
    return Exit.INTERRUPTED if Exit.INTERRUPTED in ended else Exit.EXPERIMENT


def verdict_exit(comparison: Comparison) -> Exit:
    return Exit.FAIL if comparison.verdict == "fail" else Exit.OK


class OutputFile(BaseModel):
    path: str
    size: int = Field(description="Bytes.")
    hash: str = Field(description="xxh3-128 of the content, hex.")


class ReportState(BaseModel):
    outbox: str = Field(description="Where the run is shown: github, slack, ...")
    up_to_date: bool
    attempts: int = Field(description="Failed attempts to bring it up to date, since the last success.")
    error: str | None


class RunDoc(BaseModel):
    id: int
    state: str = Field(description="waiting, queued, running, succeeded, failed, timed_out or cancelled.")
    role: str = Field(description="run, head or baseline.")
    repository: str
    ref: str | None
    sha: str
    tree: str = Field(description="The commit's tree: runs of the same tree, spec and tier are reused.")
    tier: str
    experiment: str
    reason: str | None = Field(description="Why it ended as it did, for people.")
    exit_code: int | None = Field(description="The experiment command's, when it ran to its end.")
    seconds: float | None = Field(description="The command's wall time, without building its environment.")
    created_at: datetime
    finished_at: datetime | None
    log: str | None = Field(description="Path of the run's log.")
    reused: bool = Field(
        False,
        description="Not run for this request: a baseline that ran before, or a run that took the outcome "
        "of `reused_run` (same tree, spec, environment and tier).",
    )
    reused_run: int | None = Field(None, description="The run whose outputs, exit code and log this one has.")
    estimated_cost: float | None = Field(
        None,
        description="What it should cost, set when it was requested, in the tiers file's currency (`tierbot "
        "costs --json` names it); null on a free tier.",
    )
    actual_cost: float | None = Field(None, description="What it cost, once it ended; 0 for a reuse.")
    outputs: list[OutputFile] | None = Field(None, description="`show` only.")
    reports: list[ReportState] | None = Field(None, description="`show` only.")


class ComparisonDoc(BaseModel):
    id: int | None = Field(description="None for `tierbot diff`, which stores nothing.")
    state: str = Field(description="pending, done or failed.")
    verdict: Literal["pass", "changed", "fail"] | None
    reason: str | None = Field(description="Why there is no verdict, when there is none.")
    report_path: str | None
    report_url: str | None = Field(description="A signed link, when TIERBOT_PUBLIC_URL is set.")
    result: Comparison | None


class CliOutput(BaseModel):
    """What `tierbot run|compare|show|runs|diff|ci|history|costs --json` print: one shape for all."""

    tierbot: Literal[1] = Field(1, description="The version of this shape.")
    command: Literal["run", "compare", "show", "runs", "diff", "ci", "history", "costs"]
    exit_code: int = Field(description="The exit status, as the process ends with it.")
    runs: list[RunDoc] = []
    comparison: ComparisonDoc | None = None
    history: list[MetricHistory] | None = Field(
        None, description="`history` only: each metric's points on the default branch, oldest first."
    )
    costs: MonthCosts | None = Field(
        None, description="`costs` only: the month's spend per budget, repository and tier."
    )


def run_doc(run: Run, reused: bool = False) -> RunDoc:
    return RunDoc(
        id=run.id,
        state=run.state,
        role=run.role,
        repository=run.repository,
        ref=run.ref,
        sha=run.sha,
        tree=run.tree_sha,
        tier=run.tier,
        experiment=run.experiment,
        reason=run.reason,
        exit_code=run.exit_code,
        seconds=run.command_seconds,
        created_at=run.created_at,
        finished_at=run.finished_at,
        log=run.log_path,
        reused=reused or run.reused_run_id is not None,
        reused_run=run.reused_run_id,
        estimated_cost=run.estimated_cost,
        actual_cost=run.actual_cost,
    )


def shown_run_doc(run: Run, outputs: list[Output], reports: list[Report]) -> RunDoc:
    doc = run_doc(run)
    doc.outputs = [OutputFile(path=o.path, size=o.size, hash=o.hash) for o in outputs]
    doc.reports = [
        ReportState(
            outbox=r.outbox, up_to_date=r.synced_version >= r.version, attempts=r.attempts, error=r.error
        )
        for r in reports
    ]
    return doc


def comparison_doc(record: ComparisonRecord, report_url: str | None) -> ComparisonDoc:
    return ComparisonDoc(
        id=record.id,
        state=record.state,
        verdict=record.verdict,
        reason=record.reason,
        report_path=record.report_path,
        report_url=report_url,
        result=Comparison.model_validate(record.result) if record.result is not None else None,
    )


def cli_output_schema() -> dict:
    return CliOutput.model_json_schema()
