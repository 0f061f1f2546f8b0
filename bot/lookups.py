"""What the doors look up in the store: a run, a comparison, a run's outputs, the recent runs. Part of
the `Pipeline` (its `db`), kept apart from what the pipeline does."""

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from bot.errors import RunNotFound, TierbotError
from bot.store import ComparisonRecord, Database, Output, Run, RunState


class Lookups:
    db: Database

    def run(self, run_id: int) -> Run:
        with self.db.session() as s:
            run = s.get(Run, run_id)
            if run is None:
                raise RunNotFound(f"There is no run {run_id}. `tierbot runs` lists the recent ones.")
            return run

    def comparison(self, comparison_id: int) -> ComparisonRecord:
        with self.db.session() as s:
            sides = [joinedload(ComparisonRecord.head_run), joinedload(ComparisonRecord.base_run)]
            comparison = s.get(ComparisonRecord, comparison_id, options=sides)
            if comparison is None:
                raise TierbotError(f"There is no comparison {comparison_id}.")
            return comparison

    def comparison_for(self, head_run_id: int) -> ComparisonRecord | None:
        """The comparison a head run belongs to (the newest, should a run have several)."""
        with self.db.session() as s:
            found = s.scalars(
                select(ComparisonRecord.id)
                .where(ComparisonRecord.head_run_id == head_run_id)
                .order_by(ComparisonRecord.id.desc())
                .limit(1)
            ).first()
        return self.comparison(found) if found is not None else None

    def outputs(self, run_id: int) -> list[Output]:
        with self.db.session() as s:
            return list(s.scalars(select(Output).where(Output.run_id == run_id).order_by(Output.path)))

    def recent_runs(self, limit: int = 20, **equal: str | None) -> list[Run]:
        """The newest runs, those whose columns equal what is given (repository, ref, state) when given."""
        wanted = [getattr(Run, column) == value for column, value in equal.items() if value is not None]
        with self.db.session() as s:
            return list(s.scalars(select(Run).where(*wanted).order_by(Run.id.desc()).limit(limit)))

    def requested(self, once: str) -> Run | None:
        """The live run (not cancelled) an automatic request started before (`RunRequest.once`)."""
        with self.db.session() as s:
            query = select(Run).where(Run.once == once, Run.state != RunState.cancelled)
            return s.scalars(query.limit(1)).first()
