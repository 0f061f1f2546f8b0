"""Doors as plugins (`bot.doors`): the worker handles deliveries and syncs the outbox through whichever
doors the composition root plugged in, and says so when none handles one. Real database, real worker;
the door below is a test's own, plugged in as GitHub and Slack are."""

from typing import ClassVar

from bot.doors import DoorPlugin
from bot.events import Event
from bot.pipeline import Pipeline
from bot.store import Report
from bot.targets import Target
from bot.worker import Worker


class EchoTarget(Target):
    outbox: ClassVar[str] = "echo"
    to: str


class PagerTarget(Target):
    """A target of a door this installation does not plug in."""

    outbox: ClassVar[str] = "pager"
    text: str


class StartedEcho:
    """A door that answers every delivery with its payload's text and delivers its outbox to a list."""

    started = 0

    def __init__(self, pipeline: Pipeline):
        StartedEcho.started += 1
        self.sent: list[dict] = []
        self.syncers = {"echo": self.deliver}

    def handle(self, event: Event) -> str:
        return f"echoed {event.payload['text']}"

    def deliver(self, pipeline: Pipeline, report: Report) -> dict:
        self.sent.append(report.target)
        return {"sent": True}


ECHO = DoorPlugin(name="echo", channels=("echo",), start=StartedEcho)


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_a_door_plugged_in_handles_its_deliveries_and_its_outbox(settings):
    pipeline = Pipeline(settings, doors=(ECHO,))
    StartedEcho.started = 0
    pipeline.deliveries.record("echo-1", "echo", "said", None, {"text": "hello"})
    pipeline.deliveries.record("echo-2", "echo", "said", None, {"text": "again"})
    pipeline.reports.post(EchoTarget(to="someone"))
    worker = Worker(pipeline, runs=False)
    drain(worker)
    assert [pipeline.deliveries.get(d).outcome for d in ("echo-1", "echo-2")] == [
        "echoed hello",
        "echoed again",
    ]
    assert StartedEcho.started == 1  # once per worker, on first use
    (report,) = _reports(pipeline)
    assert report.synced_version == report.version and report.memo == {"sent": True}
    assert report.target == {"to": "someone"}


def _reports(pipeline: Pipeline) -> list[Report]:
    with pipeline.db.session() as s:
        return list(s.query(Report))


def test_a_delivery_or_message_no_door_handles_is_recorded_as_such_and_the_worker_goes_on(settings):
    pipeline = Pipeline(settings, doors=(ECHO,))
    pipeline.deliveries.record("gh-1", "github", "pull_request", "opened", {})
    pipeline.reports.post(PagerTarget(text="hi"))
    pipeline.deliveries.record("echo-1", "echo", "said", None, {"text": "still here"})
    drain(Worker(pipeline, runs=False))
    failed = pipeline.deliveries.get("gh-1")
    assert (failed.state, failed.outcome) == (
        "failed",
        "failed: UnknownDoor: no door plugged in here handles 'github'",
    )
    assert pipeline.deliveries.get("echo-1").outcome == "echoed still here"
    (report,) = _reports(pipeline)
    assert report.error == "UnknownDoor: no door plugged in here handles 'pager'"
