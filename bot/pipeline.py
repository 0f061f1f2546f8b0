"""The one pipeline every door calls: request → queue → run → collect → compare → report.

`submit` turns a RunRequest into queued runs (reusing a cached baseline, and an earlier run of the same
tree for the head: `bot.reuse`) and a pending comparison; workers execute runs (`bot.worker`), and
`settle` compares once both sides have ended.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from bot import targets
from bot.artifacts import ArtifactUnavailable, artifact_store
from bot.backends import mark_availability, untrusted_refusal
from bot.checkout import CodeCache
from bot.compare import Options, compare_outputs, compare_params
from bot.costs import baseline_cost, charge, run_cost
from bot.doors import DoorPlugin
from bot.errors import TierbotError, TierUnavailable
from bot.forks import fork_tier
from bot.history import ranges_for
from bot.lookups import Lookups
from bot.manifest import FileEntry, Manifest, SkippedEntry
from bot.redact import Redactor, redactor_for
from bot.render.html import render_html
from bot.render.run_states import ref_label
from bot.render.view import ReportContext
from bot.request import RunRequest
from bot.reuse import cache_key, cached_baseline, enter, reuse_earlier
from bot.settings import Settings
from bot.signed_links import report_url
from bot.spec import SPEC_FILE, Spec, parse_spec, spec_names
from bot.store import ComparisonRecord, Database, Output, Run, RunState
from bot.store.approvals import Approvals
from bot.store.deliveries import Deliveries
from bot.store.models import SkippedOutput, refusal_phase, utcnow
from bot.store.queue import Queue
from bot.store.reports import Reports
from bot.tiers import Requester, Tier, load_tiers


class AlreadyRequested(Exception):
    """An automatic request that was made before (an event delivered again under another id, a replay):
    it starts nothing; `run` is what it started the first time."""

    def __init__(self, run: Run):
        super().__init__(f"already requested: run {run.id}")
        self.run = run


@dataclass
class Submission:
    head: Run
    base: Run | None = None
    comparison: ComparisonRecord | None = None
    baseline_reused: bool = False  # an earlier baseline's outputs are used as they are
    baseline_joined: bool = False  # an identical baseline was already queued or running

    @property
    def head_reused(self) -> bool:
        """The head did not run: it took the outcome of an earlier run (`bot.reuse`)."""
        return self.head.reused_run_id is not None

    @property
    def run_ids(self) -> set[int]:
        return {r.id for r in (self.head, self.base) if r is not None}


# A door's port for fetching code: given the settings and the redactor, the HTTP header that lets git
# fetch a repository (`owner/name` → `Authorization: …`), or None when the door has none to give.
GitCredentials = Callable[[Settings, Redactor], Callable[[str], str | None] | None]


class Pipeline(Lookups):
    """The core's services, wired once: settings in, and the doors with their ports (`bot.wiring` plugs
    them in; without them the core fetches code with no credentials and workers only execute runs)."""

    def __init__(
        self,
        settings: Settings,
        git_credentials: GitCredentials | None = None,
        doors: tuple[DoorPlugin, ...] = (),
    ):
        self.settings = settings
        self.doors = doors  # what workers handle deliveries and sync the outbox with
        self.db = Database(settings.db_url)
        self.tiers = mark_availability(load_tiers(settings.tiers_file), settings)
        self.redactor = redactor_for(settings, self.tiers)  # what is stored or leaves for a door passes it
        self.code = CodeCache(
            settings.mirrors_dir,
            settings.worktrees_dir,
            settings.git_url,
            git_credentials(settings, self.redactor) if git_credentials else None,
        )
        self.artifacts = artifact_store(settings)  # outputs, logs and reports: any replica's
        self.reports = Reports(self.db, settings.lease_seconds)
        self.queue = Queue(
            self.db, self.tiers, settings.lease_seconds, settings.max_attempts, on_change=self.reports.touch
        )
        self.deliveries = Deliveries(self.db, settings.lease_seconds)
        self.approvals = Approvals(self.db, self.queue)

    # -- submit ---------------------------------------------------------------------------------------

    def submit(self, request: RunRequest) -> Submission:
        """Validate everything the user could have got wrong, then queue it all at once (so a bad base
        leaves nothing queued). Raises TierbotError, and AlreadyRequested for a request made before."""
        if request.once and (earlier := self.requested(request.once)) is not None:
            raise AlreadyRequested(earlier)  # before any git work: a redelivered event costs a query
        request = self._subscribed(request)
        repo = request.repository
        sha = self.code.resolve(repo, request.ref)
        spec = self._spec_at(repo, sha, request.ref)
        tier = self.tiers.choose(request.tier or spec.tier, request.requester, spec.tiers)
        if request.base:
            base_sha = self.code.merge_base(repo, self.code.resolve(repo, request.base), sha)
            base_spec = self._spec_at(repo, base_sha, request.base)
        trusted, tier = self._trust(request, sha, tier)  # a fork's code (and its baseline): the sandbox's
        role = "head" if request.base else "run"
        waiting = not trusted and not self.approvals.approved(request.subject, sha)
        try:
            with self.db.session() as s:
                head = self._new_run(s, request, request.ref, sha, spec, tier, role, trusted, waiting)
                reuse_earlier(s, head, request.fresh)
                if not request.base:
                    submission = Submission(head=head)
                else:
                    submission = self._compare_with_baseline(s, request, head, base_sha, base_spec, tier)
                charge(s, self.tiers, [head, submission.base])  # estimates; refused when over a budget
        except IntegrityError:  # another replica took the same request a moment ago (`runs.once`)
            earlier = self.requested(request.once) if request.once else None
            if earlier is None:
                raise
            raise AlreadyRequested(earlier) from None
        self.reports.touch([head.id])
        if submission.base is not None and submission.base.run_state.terminal:
            self.settle(submission.comparison.id)
        return submission

    def _subscribed(self, request: RunRequest) -> RunRequest:
        """The request with the report targets other doors subscribe to (`DoorPlugin.subscribe`)."""
        more = [t for door in self.doors if door.subscribe for t in door.subscribe(self.settings, request)]
        return request.model_copy(update={"report_to": request.report_to + more}) if more else request

    def _compare_with_baseline(
        self, s, request: RunRequest, head: Run, base_sha: str, base_spec: Spec, tier: Tier
    ) -> Submission:
        """The head's comparison against a baseline: a cached one (reused, or joined while it runs) or
        a new baseline run, which may take the outcome of any earlier run of its key (a push to main's)."""
        base = cached_baseline(s, cache_key(self.code, request.repository, base_sha, base_spec, tier))
        reused = base is not None and base.state == RunState.succeeded
        joined = base is not None and not reused
        if base is None:
            trusted = self.code.own_commit(request.repository, base_sha)
            base = self._new_run(s, request, request.base, base_sha, base_spec, tier, "baseline", trusted)
            reused = reuse_earlier(s, base, fresh=False) is not None
        comparison = ComparisonRecord(
            head_run_id=head.id,
            base_run_id=base.id,
            head_label=ref_label(request.ref, head.sha),
            base_label=f"{request.base} @ {base_sha[:7]} (merge base)",
            baseline_reused=reused,
        )
        s.add(comparison)
        s.flush()
        return Submission(head, base, comparison, baseline_reused=reused, baseline_joined=joined)

    def refuse(self, request: RunRequest, sha: str, error: TierbotError) -> Run:
        """A request that cannot start, recorded as a run that ended before it began: every door it
        reports to (a PR's check run and sticky comment) shows why, under the experiment's and tier's
        names as far as they can be known, so the push that fixes it reuses them."""
        request = self._subscribed(request)
        name, tier = self._names_at(request.repository, sha, request.base)
        with self.db.session() as s:
            run = Run(
                repository=request.repository,
                ref=request.ref,
                sha=sha,
                tree_sha="",
                experiment=name,
                tier=request.tier if request.tier in self.tiers.names() else tier,
                role="head",
                cache_key="",
                spec={},
                requested_by=request.requester.model_dump(mode="json"),
                report_to=targets.stored(request.report_to),
                subject=request.subject,
                trusted=request.trusted,
                state=RunState.failed,
                phase=refusal_phase(error),
                reason=self.redactor(str(error)),
                finished_at=utcnow(),
                once=request.once,
            )
            s.add(run)
        self.reports.touch([run.id])
        return run

    def _names_at(self, repo: str, sha: str, base: str | None) -> tuple[str, str]:
        """(experiment, tier) as this commit's spec names them, however broken it is, else as the base
        branch's does, else the defaults."""
        for ref in (sha, base):
            with contextlib.suppress(TierbotError):
                found = ref and spec_names(self.code.read(repo, self.code.resolve(repo, ref), SPEC_FILE))
                if found:
                    name, tier = found
                    return name, tier if tier in self.tiers.names() else self.tiers.default.name
        return Spec.model_fields["name"].default, self.tiers.default.name

    def _spec_at(self, repo: str, sha: str, ref: str) -> Spec:
        text = self.code.read(repo, sha, SPEC_FILE)
        if text is None:
            raise TierbotError(
                f"{ref} @ {sha[:7]} has no {SPEC_FILE} at the repository root, so tierbot does not know "
                f"how to run it. Add one (`tierbot schema` prints its JSON Schema)."
            )
        return parse_spec(text, f"{SPEC_FILE} ({ref_label(ref, sha)})")

    def _trust(self, request: RunRequest, sha: str, tier: Tier) -> tuple[bool, Tier]:
        """Whether the code is trusted, and the tier it runs on. Trust follows the code, not the door:
        only the repository's own commits run as trusted code; anything else runs in the sandbox
        (`bot.forks`). Raises when it could not run at all, so it is said now, where it was asked."""
        if request.trusted and self.code.own_commit(request.repository, sha):
            return True, tier
        label = ref_label(request.ref, sha)
        if request.subject is None:  # nothing to approve it through
            raise TierbotError(
                f"{label} is not on any branch of {request.repository}. Code from outside the repository "
                "(a fork's pull request) runs only from its pull request, once someone with write access "
                "approves it there with `/run approve`."
            )
        tier = fork_tier(tier, self.tiers, self.settings, label)
        refused = untrusted_refusal(tier, self.settings)
        if refused is not None:
            raise TierUnavailable(f"Tier {tier.name!r} cannot run {label}: {refused}.")
        return False, tier

    def _new_run(
        self,
        s,
        request: RunRequest,
        ref: str,
        sha: str,
        spec: Spec,
        tier: Tier,
        role: str,
        trusted: bool,
        waiting: bool = False,
    ) -> Run:
        run = Run(
            repository=request.repository,
            ref=ref,
            sha=sha,
            tree_sha=self.code.tree(request.repository, sha),
            experiment=spec.name,
            tier=tier.name,
            role=role,
            cache_key=cache_key(self.code, request.repository, sha, spec, tier),
            spec=spec.model_dump(mode="json"),
            requested_by=request.requester.model_dump(mode="json"),
            # Baselines are shared by every branch compared against them: they report through their heads.
            report_to=targets.stored(request.report_to) if role != "baseline" else [],
            subject=request.subject if role != "baseline" else None,
            trusted=trusted,
            state=RunState.waiting if waiting else RunState.queued,
            phase="waiting for approval" if waiting else "queued",
            once=request.once if role != "baseline" else None,
        )
        enter(s, run)
        return run

    def rerun(self, run_id: int, requester: Requester, tier: str | None = None) -> Submission:
        """The same request again (its commit, base, doors and subject), optionally on another tier: run
        again, never reused (a Rerun button is an explicit request)."""
        run = self.run(run_id)
        comparison = self.comparison_for(run_id)
        request = RunRequest(
            repository=run.repository,
            ref=run.sha,
            tier=tier or run.tier,
            base=comparison.base_run.ref if comparison is not None else None,
            requester=requester,
            report_to=targets.loaded(run.report_to),
            subject=run.subject,
            trusted=run.trusted,
            fresh=True,
        )
        return self.submit(request)

    # -- settle ---------------------------------------------------------------------------------------

    def settle_for(self, run_id: int) -> None:
        """Settle every pending comparison that was waiting for this run, or for a run that joined it."""
        with self.db.session() as s:
            runs = select(Run.id).where((Run.id == run_id) | (Run.reused_run_id == run_id))
            ids = s.scalars(
                select(ComparisonRecord.id).where(
                    ComparisonRecord.state == "pending",
                    ComparisonRecord.head_run_id.in_(runs) | ComparisonRecord.base_run_id.in_(runs),
                )
            ).all()
        for comparison_id in ids:
            self.settle(comparison_id)

    def settle(self, comparison_id: int) -> None:
        """Compare once both runs have ended; a failed side fails the comparison with its reason."""
        with self.db.session() as s:
            comparison = s.get(ComparisonRecord, comparison_id)
            head, base = comparison.head_run, comparison.base_run
            if comparison.state != "pending" or not (head.run_state.terminal and base.run_state.terminal):
                return
            spec = Spec.model_validate(head.spec)
            manifests = self._manifest(s, base.id), self._manifest(s, head.id)
            context = self.report_context(comparison)
        fields: dict = {"finished_at": utcnow()}
        broken = [
            (side, r) for side, r in (("branch", head), ("baseline", base)) if r.state != RunState.succeeded
        ]
        if broken:
            reason = "; ".join(f"the {side} run {r.id} {r.state}: {r.reason}" for side, r in broken)
            fields |= {"state": "failed", "reason": self.redactor(reason)}
        else:
            try:  # outputs another replica collected: here, verified, before anything reads them
                self.artifacts.fetch(entry for manifest in manifests for entry in manifest.files.values())
            except ArtifactUnavailable as exc:
                reason = f"the outputs cannot be compared: {exc}"
                fields |= {"state": "failed", "reason": self.redactor(reason)}
            else:
                locate = self.blob_path
                artifacts = self.settings.reports_dir / f"comparison-{comparison_id}"
                result = compare_outputs(
                    *manifests, locate, locate, spec.compare, self.compare_options(artifacts)
                )
                sides = (partial(self.code.read, head.repository, run.sha) for run in (base, head))
                result.params = compare_params(spec.compare.params, *sides)  # the inputs, at each commit
                # Outputs may hold secrets too (a printed token in a log file's diff): none is stored.
                result = type(result).model_validate(self.redactor.data(result.model_dump(mode="json")))
                html = render_html(result, context, artifacts)
                fields |= {
                    "state": "done",
                    "verdict": result.verdict,
                    "result": result.model_dump(mode="json"),
                    "report_path": self.artifacts.put_report(comparison_id, html),
                }
        with self.db.session() as s:
            # Both sides may end at once on two workers; only the first settles.
            s.execute(
                update(ComparisonRecord)
                .where(ComparisonRecord.id == comparison_id, ComparisonRecord.state == "pending")
                .values(**fields)
            )
        self.reports.touch([head.id])

    def compare_options(self, artifacts: Path) -> Options:
        temp = self.settings.data_dir / "tmp"
        temp.mkdir(parents=True, exist_ok=True)
        return Options(
            artifacts=artifacts,
            temp_dir=temp,
            memory_limit=self.settings.compare_memory_limit,
            threads=self.settings.compare_threads,
        )

    def blob_path(self, entry: FileEntry) -> Path:
        return self.artifacts.blobs.path_of(entry.hash)

    @staticmethod
    def _manifest(s, run_id: int) -> Manifest:
        outputs = s.scalars(select(Output).where(Output.run_id == run_id)).all()
        skipped = s.scalars(
            select(SkippedOutput).where(SkippedOutput.run_id == run_id).order_by(SkippedOutput.path)
        ).all()
        return Manifest(
            files={o.path: FileEntry(path=o.path, size=o.size, hash=o.hash) for o in outputs},
            skipped=[SkippedEntry(path=k.path, reason=k.reason) for k in skipped],
        )

    def report_context(self, comparison: ComparisonRecord) -> ReportContext:
        return ReportContext(
            experiment=comparison.head_run.experiment,
            head_label=comparison.head_label,
            base_label=comparison.base_label,
            tier=comparison.head_run.tier,
            baseline_reused=comparison.baseline_reused,
            head_run_id=comparison.head_run_id,
            base_run_id=comparison.base_run_id,
            head_reused_run_id=comparison.head_run.reused_run_id,
            report_url=report_url(
                self.settings, comparison.id, comparison.head_run.repository, comparison.report_path
            ),
            history=ranges_for(self.db, comparison),
            cost=run_cost(comparison.head_run, self.tiers.currency),
            baseline_cost=baseline_cost(comparison, self.tiers.currency),
        )
