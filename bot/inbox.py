"""Records inbound deliveries for the web server in batches (group commit), on the event loop itself.

A commit waits for the disk (SQLite fsyncs its WAL on every commit), so what an answer costs is mostly
its share of a commit: the more deliveries a transaction holds, the cheaper each. A request takes a few
turns of the loop to reach `record` once its bytes arrive, so the batch is written only when a turn
brings no new delivery (or after `MAX_TURNS` turns, or at `MAX_BATCH`): under load that gathers more
deliveries a commit. Committing in a thread of its own was measured and dropped: the loop is free during
the fsync, but the thread's hand-offs and its fight for the GIL cost more. `benchmarks/webhook_ack.py`
measures both against a bare app.

A request is answered only once its delivery is committed, so an answered delivery is never lost."""

import asyncio

from bot.store.deliveries import Deliveries, Item

MAX_BATCH = 500  # deliveries per transaction (SQLite takes at most 32,766 values in one statement)
MAX_TURNS = 4  # how long a batch may wait for more deliveries, in turns of the loop (each well under 1 ms)


class Inbox:
    def __init__(self, deliveries: Deliveries):
        self.deliveries = deliveries
        self._pending: list[tuple[Item, asyncio.Future]] = []

    async def record(self, item: Item) -> bool:
        """Record (id, source, event, action, payload as JSON text): whether it is new (False: a
        redelivery); raises what the database raised."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)
        answer = loop.create_future()
        self._pending.append((item, answer))
        return await answer

    def _flush(self, seen: int = 0, turns: int = 0) -> None:
        """Write the batch, unless the last turn of the loop added to it and it may still wait."""
        if seen < len(self._pending) < MAX_BATCH and turns < MAX_TURNS:
            asyncio.get_running_loop().call_soon(self._flush, len(self._pending), turns + 1)
            return
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        try:
            results: list = self.deliveries.record_many([item for item, _ in batch])
        except Exception as exc:  # each waiting request answers with the error
            results = [exc] * len(batch)
        for (_, answer), result in zip(batch, results, strict=True):
            if answer.done():  # the request was cancelled (the client went away)
                continue
            if isinstance(result, Exception):
                answer.set_exception(result)
            else:
                answer.set_result(result)
