"""Reuse: a run of the same tree, spec, environment and tier (its cache key) that succeeded before
stands for a new one, which then never executes.

Two ways. A baseline is shared: every comparison against main's merge base points at the one baseline
run of its key (`cached_baseline`), joined while it is queued or running. What a request runs itself —
a head, or a plain run — is a row of its own even when it reuses (`reuse_earlier`): its commit, ref,
subject and report targets are the request's (a pull request's check run belongs to its commit), and it
is created already succeeded with the earlier run's outcome: its outputs (rows of its own, pointing at
the same blobs; skipped entries too), exit code, seconds and log, and `reused_run_id` naming the run
that really ran. Its comparison settles as soon as the baseline has ended.

Automatic requests reuse (a pull request's pushes, `tierbot compare` and the pre-push hook); an explicit
one (`/run experiment`, a Rerun button, `--fresh`) asks for a new run and gets one (`RunRequest.fresh`).

One run per key is in flight: a run whose key is already queued or running (and going to execute) joins
that run (`enter`) — it waits with `reused_run_id` naming it and ends as it ends (`release_joiners`) —
whether the request is fresh or not, since the run it joins is a new execution too. The database's
partial unique index (`bot.store.models.IN_FLIGHT`) settles two replicas adding the same key at once.
"""

import xxhash
from sqlalchemy import case, select
from sqlalchemy.exc import IntegrityError

from bot.checkout import CodeCache
from bot.render.run_states import REUSE_BASIS, reused_run
from bot.spec import Spec
from bot.store.models import Output, Run, RunState, SkippedOutput, utcnow
from bot.tiers import Tier

JOINED = "joined"  # the phase of a run waiting for the run of its key that is in flight


def cache_key(code: CodeCache, repo: str, sha: str, spec: Spec, tier: Tier) -> str:
    """A run's identity for reuse: same tree, spec, environment and tier give the same outputs."""
    requirements = spec.environment.requirements
    environment = (code.read(repo, sha, requirements) or "") if requirements else ""
    parts = [code.tree(repo, sha), spec.fingerprint(), environment, tier.fingerprint()]
    return xxhash.xxh3_128_hexdigest("\0".join(parts).encode())


def cached_baseline(s, key: str) -> Run | None:
    """The newest usable baseline with this key: a success, else one still queued or running."""
    usable = [RunState.succeeded, RunState.running, RunState.queued]
    preference = case({RunState.succeeded.value: 0}, value=Run.state, else_=1)
    query = (
        select(Run)
        .where(Run.cache_key == key, Run.state.in_(usable), Run.role == "baseline")
        .order_by(preference, Run.id.desc())
    )
    return s.scalars(query.limit(1)).first()


def reuse_earlier(s, run: Run, fresh: bool) -> Run | None:
    """Give `run` (new, queued, flushed) the outcome of the newest earlier success of its key, unless
    the request is fresh; the earlier run, or None when `run` must execute."""
    # Untrusted code (a fork's commit) is never reused, though a tree that ran before as trusted code
    # would give the same outputs without executing anything: it waits for an approval of its commit
    # and runs in the sandbox, as every untrusted commit does, so that an approval means one thing.
    if fresh or not run.trusted or run.state != RunState.queued or not run.cache_key:
        return None
    earlier = original(s, run.cache_key, before=run.id)
    if earlier is not None:
        take_outcome(s, run, earlier)
    return earlier


def original(s, key: str, before: int) -> Run | None:
    """The newest run with this key that succeeded by running, of trusted code, whatever its role (a
    baseline, a head, a plain run). Never a reuse: a reuse of a reuse names the run that really ran."""
    query = (
        select(Run)
        .where(
            Run.cache_key == key,
            Run.state == RunState.succeeded,
            Run.reused_run_id.is_(None),
            Run.trusted.is_(True),
            Run.id < before,
        )
        .order_by(Run.id.desc())
        .limit(1)
    )
    return s.scalars(query).first()


def take_outcome(s, run: Run, earlier: Run) -> None:
    """`run` ends now as `earlier` ended, without running."""
    now = utcnow()
    run.state, run.phase = RunState.succeeded, RunState.succeeded.value
    run.reason = f"{reused_run(earlier.id, why=True)}: {earlier.reason}"
    run.reused_run_id = earlier.id
    run.started_at = run.finished_at = now
    run.exit_code, run.command_seconds = earlier.exit_code, earlier.command_seconds
    run.log_path, run.log_tail, run.last_log_line = earlier.log_path, earlier.log_tail, earlier.last_log_line
    outputs = s.scalars(select(Output).where(Output.run_id == earlier.id)).all()
    s.add_all(Output(run_id=run.id, path=o.path, size=o.size, hash=o.hash) for o in outputs)
    skipped = s.scalars(select(SkippedOutput).where(SkippedOutput.run_id == earlier.id)).all()
    s.add_all(SkippedOutput(run_id=run.id, path=k.path, reason=k.reason) for k in skipped)


def enter(s, run: Run) -> Run | None:
    """Add `run` (new) to the session; when it would execute while a run of its key is in flight, it
    joins that run instead. The run joined, or None."""
    joined = _join_in_flight(s, run)
    try:
        with s.begin_nested():
            s.add(run)
            s.flush()
    except IntegrityError:  # another replica put the same key in flight a moment ago: join its run
        joined = _join_in_flight(s, run)
        if joined is None:
            raise
        s.add(run)
        s.flush()
    return joined


def _join_in_flight(s, run: Run) -> Run | None:
    if not (run.trusted and run.cache_key and run.state == RunState.queued and run.reused_run_id is None):
        return None
    query = select(Run).where(
        Run.cache_key == run.cache_key,
        Run.state.in_([RunState.queued, RunState.running]),
        Run.reused_run_id.is_(None),
        Run.trusted.is_(True),
        Run.id != run.id if run.id is not None else True,  # a joiner set free is not its own original
    )
    running = s.scalars(query.limit(1)).first()
    if running is not None:
        run.reused_run_id, run.phase = running.id, JOINED
    return running


def release_joiners(s, original: Run) -> list[int]:
    """The runs that joined `original`, which has just ended: they end as it ended; when it was
    cancelled, they run after all (one runs, the others join it). The ids of those whose state changed."""
    joiners = list(
        s.scalars(
            select(Run).where(Run.reused_run_id == original.id, Run.state == RunState.queued).order_by(Run.id)
        )
    )
    if not joiners:
        return []
    if original.state == RunState.cancelled:
        first = joiners[0]
        first.reused_run_id, first.phase = None, RunState.queued.value
        running = _join_in_flight(s, first)
        for joiner in joiners[1:]:
            joiner.reused_run_id = (running or first).id
        s.flush()
        return [j.id for j in joiners]
    for joiner in joiners:
        if original.state == RunState.succeeded:
            take_outcome(s, joiner, original)
        else:
            joiner.state, joiner.phase = original.state, original.state
            joined = f"run {original.id}, which it joined ({REUSE_BASIS})"
            joiner.reason = f"{joined}, {original.state}: {original.reason}"
            joiner.started_at = joiner.finished_at = utcnow()
            joiner.exit_code, joiner.log_tail = original.exit_code, original.log_tail
    return [j.id for j in joiners]
