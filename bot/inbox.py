"""Records inbound deliveries for the web server in batches: the requests that arrive during one turn of
the event loop are written in one transaction, right after it, on the loop itself. A burst of webhooks
costs a few short commits instead of one commit and two thread hops per request, which is what kept
answers slow under load (a writer thread fed per batch measured slower still: p50 1.9× a bare app's,
against 1.4× here). The loop waits for each commit, a millisecond or so; a request is answered only
once its delivery is committed, so an answered delivery is never lost."""

import asyncio

from bot.store.deliveries import Deliveries

Item = tuple[str, str, str, str | None, dict]


class Inbox:
    def __init__(self, deliveries: Deliveries):
        self.deliveries = deliveries
        self._pending: list[tuple[Item, asyncio.Future]] = []

    async def record(self, item: Item) -> bool:
        """Record (id, source, event, action, payload): whether it is new (False: a redelivery); raises
        what the database raised."""
        loop = asyncio.get_running_loop()
        if not self._pending:
            loop.call_soon(self._flush)  # after every request already read in this turn of the loop
        answer = loop.create_future()
        self._pending.append((item, answer))
        return await answer

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
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
