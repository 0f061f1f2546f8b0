"""Records inbound deliveries for the web server in batches: every request waiting while a transaction
commits goes into the next one, so a burst of webhooks costs a few commits, not one per request, and
the event loop hops to a thread once per batch, not once per request. Each request is answered only
after its delivery is committed: an answered delivery is never lost."""

import asyncio

from anyio import to_thread

from bot.store.deliveries import Deliveries

MAX_BATCH = 500


class Inbox:
    def __init__(self, deliveries: Deliveries):
        self.deliveries = deliveries
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def record(
        self, delivery_id: str, source: str, event: str, action: str | None, payload: dict
    ) -> bool:
        """Whether the delivery is new (False: a redelivery); raises what the database raised."""
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.create_task(self._write_batches())
        answer = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(((delivery_id, source, event, action, payload), answer))
        return await answer

    async def _write_batches(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < MAX_BATCH:
                batch.append(self._queue.get_nowait())
            try:
                news = await to_thread.run_sync(self.deliveries.record_many, [item for item, _ in batch])
            except Exception as exc:  # each waiting request answers with the error; the writer lives on
                for _, answer in batch:
                    answer.set_exception(exc)
                continue
            for (_, answer), new in zip(batch, news, strict=True):
                answer.set_result(new)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
