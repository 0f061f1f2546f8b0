"""State: runs (which are also the queue), their outputs, and comparisons, in SQLite or PostgreSQL."""

from bot.store.db import Database
from bot.store.models import Approval, ComparisonRecord, Delivery, Output, Report, Run, RunState

__all__ = ["Approval", "ComparisonRecord", "Database", "Delivery", "Output", "Report", "Run", "RunState"]
