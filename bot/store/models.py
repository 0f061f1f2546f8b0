"""SQLAlchemy models. The schema changes only through Alembic migrations in `migrations/versions`."""

import enum
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.store.columns import UTCDateTime, partial_unique, utcnow


class RunState(enum.StrEnum):
    waiting = "waiting"  # for someone's approval (a fork's pull request); then queued
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    timed_out = "timed_out"

    @property
    def terminal(self) -> bool:
        return self not in (RunState.waiting, RunState.queued, RunState.running)


# The phase of a run that never started: its request was refused (an invalid spec, an unknown tier...),
# and the doors say why; a person other than the author must act when the tier was forbidden.
REFUSED = "refused"
REFUSED_NEEDS_PERSON = "refused: needs a person"
REFUSED_OVER_BUDGET = "refused: over budget"  # the budget's contact, next month or a cheaper tier
REFUSALS = (REFUSED, REFUSED_NEEDS_PERSON, REFUSED_OVER_BUDGET)


def refusal_phase(error: Exception) -> str:
    """The phase that says who can act on a refused request: the requester (a new push), another person,
    or a budget's contact."""
    if getattr(error, "over_budget", False):
        return REFUSED_OVER_BUDGET
    return REFUSED_NEEDS_PERSON if getattr(error, "needs_person", False) else REFUSED


# The runs that would execute: what the partial unique index on `cache_key` keeps to one per key.
# Reuses and joiners (`reused_run_id`), untrusted code (never shared) and refusals (no key) are outside.
IN_FLIGHT = "state IN ('queued', 'running') AND reused_run_id IS NULL AND trusted AND cache_key <> ''"

# A request that must start one run ever (`RunRequest.once`) may start another once its run was cancelled
# (a closed pull request reopened).
ONCE_LIVE = "once IS NOT NULL AND state <> 'cancelled'"


class Base(DeclarativeBase):
    pass


class Run(Base):
    """One execution of an experiment at one commit on one tier. The table is the work queue."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_state_tier", "state", "tier"),
        Index("ix_runs_cache_key", "cache_key"),
        # One run per key in flight, enforced where two replicas could race (`bot.reuse.enter`).
        partial_unique("ux_runs_key_in_flight", "cache_key", where=IN_FLIGHT),
        # One run per automatic request (a pull request's commit), whatever delivery brought it.
        partial_unique("ux_runs_once", "once", where=ONCE_LIVE),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository: Mapped[str] = mapped_column(String(500))
    ref: Mapped[str | None] = mapped_column(String(255))
    sha: Mapped[str] = mapped_column(String(64))
    tree_sha: Mapped[str] = mapped_column(String(64))
    experiment: Mapped[str] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))  # run | head | baseline
    cache_key: Mapped[str] = mapped_column(String(64))  # tree + spec + environment + tier
    spec: Mapped[dict] = mapped_column(JSON)
    requested_by: Mapped[dict] = mapped_column(JSON)
    report_to: Mapped[list] = mapped_column(JSON, default=list)
    # What the run is for, e.g. "github:owner/name#12": a newer run for the same subject supersedes it.
    subject: Mapped[str | None] = mapped_column(String(300), index=True)
    # Untrusted code (a fork's) waits for approval and runs without any of the worker's secrets.
    trusted: Mapped[bool] = mapped_column(default=True, server_default=true())

    state: Mapped[str] = mapped_column(String(20), default=RunState.queued)
    phase: Mapped[str] = mapped_column(String(30), default="queued")
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    host: Mapped[str | None] = mapped_column(String(200))
    pgid: Mapped[int | None] = mapped_column(Integer)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    command_seconds: Mapped[float | None]
    exit_code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(Text)  # why it ended as it did, for people
    log_path: Mapped[str | None] = mapped_column(String(1000))
    log_tail: Mapped[str | None] = mapped_column(Text)
    last_log_line: Mapped[str | None] = mapped_column(String(500))
    # The run whose outcome this one took instead of running (`bot.reuse`): one that really ran, never
    # another reuse. Its outputs are rows of its own (the same blobs); an original is deleted only after
    # its reuses have forgotten it (set to NULL).
    reused_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    # What makes an automatic request the same one again (`RunRequest.once`): a redelivered or replayed
    # pull request event finds its run here instead of starting another.
    once: Mapped[str | None] = mapped_column(String(400))
    # In the tiers file's currency (`bot.costs`): the estimate when it was requested, what it cost once
    # it ended (0 for a run that took another's outcome); None on a tier without a price.
    estimated_cost: Mapped[float | None]
    actual_cost: Mapped[float | None]

    outputs: Mapped[list["Output"]] = relationship(back_populates="run", cascade="all, delete-orphan")

    @property
    def run_state(self) -> RunState:
        return RunState(self.state)

    @property
    def short_sha(self) -> str:
        return self.sha[:7]


class Output(Base):
    """One file of a run's manifest; its content is in the blob store under `hash`."""

    __tablename__ = "outputs"
    __table_args__ = (UniqueConstraint("run_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1000))
    size: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))

    run: Mapped[Run] = relationship(back_populates="outputs")


class SkippedOutput(Base):
    """An entry of a run's outputs directory that was not read (a link out of the workspace, a FIFO...).

    Kept beside the outputs, not among them: an `Output` always has content in the blob store. The
    comparison lists each one as a problem, with the reason.
    """

    __tablename__ = "skipped_outputs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(Text)  # any name the experiment chose, however long
    reason: Mapped[str] = mapped_column(Text)  # may quote a symlink's target


class ComparisonRecord(Base):
    """A head run compared against a baseline run; settled once both runs have ended, when it keeps the
    result (`bot.compare.Comparison`) as JSON."""

    __tablename__ = "comparisons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    head_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    base_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    head_label: Mapped[str] = mapped_column(String(300))
    base_label: Mapped[str] = mapped_column(String(300))
    baseline_reused: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | done | failed
    verdict: Mapped[str | None] = mapped_column(String(20))
    result: Mapped[dict | None] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text)
    report_path: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    head_run: Mapped[Run] = relationship(foreign_keys=[head_run_id])
    base_run: Mapped[Run] = relationship(foreign_keys=[base_run_id])


class MetricPoint(Base):
    """A succeeded run of a branch that comparisons are made against, as one point of that branch's
    metric history (`bot.history`): the numbers of its metrics files, read when its outputs were
    collected, kept when the files are gone."""

    __tablename__ = "metric_history"
    __table_args__ = (
        Index("ix_metric_history_branch", "repository", "branch", "experiment", "tier", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), unique=True)
    repository: Mapped[str] = mapped_column(String(500))
    branch: Mapped[str] = mapped_column(String(255))
    experiment: Mapped[str] = mapped_column(String(100))
    tier: Mapped[str] = mapped_column(String(100))
    sha: Mapped[str] = mapped_column(String(64))
    values: Mapped[dict] = mapped_column(JSON)  # {metrics file: {metric: number}}, finite numbers only
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Delivery(Base):
    """An inbound webhook, recorded before anything else happens so that a redelivery changes nothing.

    The HTTP handler only inserts the row; workers handle pending deliveries (the handlers may fetch
    code and queue runs, which is far too slow for a webhook's answer).
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_state", "state"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # X-GitHub-Delivery
    source: Mapped[str] = mapped_column(String(20))  # github
    event: Mapped[str] = mapped_column(String(50))
    action: Mapped[str | None] = mapped_column(String(50))
    payload: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending | processing | done | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[int | None] = mapped_column(Integer)  # the process handling it (`Database.me`)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str | None] = mapped_column(Text)  # what the handler did or why it failed, for people


class Report(Base):
    """Where a run's state must be shown (a PR's comment and check run, later a Slack message).

    Doors never post from a handler or a worker's hot path: a state change bumps `version`; a worker
    syncs the door's view to the run's current state and records `synced_version`. A failed sync is
    retried later (backoff), and syncs are idempotent (edit in place, find before create), so nothing is
    lost and nothing is posted twice.
    """

    __tablename__ = "reports"
    __table_args__ = (
        UniqueConstraint("run_id", "door"),
        Index("ix_reports_due", "synced_version", "version"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None for a one-off message that belongs to no run (a reply to a PR command)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    # The outbox channel that delivers it (`DoorPlugin.channels`, `Target.outbox`); the column kept its name.
    outbox: Mapped[str] = mapped_column("door", String(20))
    target: Mapped[dict] = mapped_column(JSON)  # the door's address: repository, pull request, head sha...
    memo: Mapped[dict] = mapped_column(JSON, default=dict)  # what the door remembers: check run id, ...
    version: Mapped[int] = mapped_column(Integer, default=1)
    synced_version: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[int | None] = mapped_column(Integer)  # the process syncing it (`Database.me`)
    error: Mapped[str | None] = mapped_column(Text)


class Approval(Base):
    """Someone with write access let a fork's commit run. It holds for that commit only."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("subject", "sha"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))
    sha: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PullComment(Base):
    """A comment the bot keeps on a pull request, by the hidden marker its body starts with: a sticky
    comment (edited by every run of its experiment and tier on the PR, whatever Report row syncs it) or
    a reply to a command. Found by this id, not by searching for the marker: anyone can write a marker
    into a comment, and the bot quotes comments."""

    __tablename__ = "pull_comments"
    __table_args__ = (UniqueConstraint("repository", "pull_request", "marker"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository: Mapped[str] = mapped_column(String(500))
    pull_request: Mapped[int] = mapped_column(Integer)
    marker: Mapped[str] = mapped_column(String(300))  # e.g. <!-- tierbot:sticky experiment=E tier=T -->
    comment_id: Mapped[int] = mapped_column(BigInteger)


class SlackChannel(Base):
    """A channel's default repository, set with `/run use OWNER/REPO`."""

    __tablename__ = "slack_channels"

    channel: Mapped[str] = mapped_column(String(50), primary_key=True)
    repository: Mapped[str] = mapped_column(String(500))
    set_by: Mapped[str] = mapped_column(String(50))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SlackLink(Base):
    """A Slack user's GitHub login, verified through GitHub's device flow (`/run link`)."""

    __tablename__ = "slack_links"

    slack_user: Mapped[str] = mapped_column(String(50), primary_key=True)
    github_login: Mapped[str] = mapped_column(String(100))
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DeploymentState(enum.StrEnum):
    queued = "queued"  # recorded; the run whose artifact it deploys is still to be asked for
    waiting = "waiting"  # for that run (the commit's own, or a reuse of one of the same tree)
    deploying = "deploying"  # a worker takes it through its steps (`Deployment.step`)
    live = "live"  # serving
    retired = "retired"  # was live; a newer deployment (or a rollback) replaced it
    failed = "failed"  # ended before the switch: the version that was live kept serving
    refused = "refused"  # its prediction diff changed more answers than `deploy.max_changed` allows
    skipped = "skipped"  # superseded by a newer deployment of its environment while it waited

    @property
    def terminal(self) -> bool:
        return self not in (DeploymentState.queued, DeploymentState.waiting, DeploymentState.deploying)


# One deployment of an environment at a time: the lock is the database's (`bot.deploy.queue`).
DEPLOYING = "state = 'deploying'"
# One deploy per commit and environment, ever; a rollback redeploys a commit that was live before.
DEPLOY_ONCE = "kind = 'deploy'"


DOWN = "down"  # in a live deployment's instance: when it was found down for good, ISO 8601


class Deployment(Base):
    """A commit's model served in an environment (`bot.deploy`): a row of the deploy queue, and the
    record of what is live where. Its steps resume from `step` when the worker taking it dies."""

    __tablename__ = "deployments"
    __table_args__ = (
        Index("ix_deployments_environment", "repository", "environment", "state"),
        partial_unique("ux_deployments_deploying", "repository", "environment", where=DEPLOYING),
        partial_unique("ux_deployments_once", "repository", "environment", "sha", where=DEPLOY_ONCE),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repository: Mapped[str] = mapped_column(String(500))
    environment: Mapped[str] = mapped_column(String(100))
    sha: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20), default="deploy")  # deploy | rollback
    target: Mapped[str] = mapped_column(String(20))  # local | docker | sagemaker
    state: Mapped[str] = mapped_column(String(20), default=DeploymentState.queued)
    step: Mapped[str | None] = mapped_column(String(20))  # of a deploying one: where it resumes
    # The run whose outputs hold the artifact (a reuse of the one that ran the same tree, usually); its
    # report targets are the deployment's, so its Report rows show the deployment where it was asked.
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    # A rollback's: the deployment whose kept release it serves again.
    source_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    # The deployment that was live when this one started: compared against, then replaced.
    previous_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    comparison_id: Mapped[int | None] = mapped_column(ForeignKey("comparisons.id", ondelete="SET NULL"))
    url: Mapped[str | None] = mapped_column(String(1000))  # the environment's stable URL
    instance: Mapped[dict] = mapped_column(JSON, default=dict)  # the target's handle of its version
    artifact_hash: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)  # what happened, for people
    requested_by: Mapped[dict] = mapped_column(JSON, default=dict)
    report_to: Mapped[list] = mapped_column(JSON, default=list)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[int | None] = mapped_column(Integer)  # the process taking it (`Database.me`)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def deployment_state(self) -> DeploymentState:
        return DeploymentState(self.state)

    @property
    def down(self) -> bool:
        """A live version that stopped and was left down (`bot.deploy.supervise`): nothing serves it."""
        return bool((self.instance or {}).get(DOWN))

    @property
    def short_sha(self) -> str:
        return self.sha[:7]
