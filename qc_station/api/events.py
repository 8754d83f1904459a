"""Live events for Server-Sent Events: a thread-safe fan-out from the station to browsers.

The station thread calls :meth:`LiveEvents.publish`; every SSE connection holds a
:class:`Subscription` (an asyncio queue on the server's loop). A slow client never blocks the
station: its queue is bounded and drops the oldest event; the client catches up on reconnect
with ``Last-Event-ID`` (inspection events carry the inspection id).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LiveEvent:
    """One SSE message. ``kind`` is the SSE event name: inspection, batch, health."""

    kind: str
    data: dict[str, Any]
    id: int | None = None
    published_at: float = field(default_factory=time.time)

    def encode(self) -> str:
        """The event in SSE wire format."""
        head = f"id: {self.id}\n" if self.id is not None else ""
        payload = json.dumps({**self.data, "published_at": self.published_at}, separators=(",", ":"))
        return f"{head}event: {self.kind}\ndata: {payload}\n\n"


_CLOSED = LiveEvent("closed", {})


class Subscription:
    """One listener's queue, bound to the event loop it was created on."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def _put(self, event: LiveEvent) -> None:  # runs on self.loop
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)

    async def get(self, timeout_s: float) -> LiveEvent | None:
        """The next event, or None after ``timeout_s`` (time for a keep-alive)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout_s)
        except TimeoutError:
            return None


class LiveEvents:
    """Fan-out of live events to any number of subscribers, from any thread."""

    def __init__(self, maxsize: int = 256) -> None:
        self.maxsize = maxsize
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()
        self.closed = False

    def subscribe(self) -> Subscription:
        """A new subscription on the running loop (call from async code)."""
        sub = Subscription(asyncio.get_running_loop(), self.maxsize)
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subs)

    def publish(self, event: LiveEvent) -> None:
        """Queue ``event`` for every subscriber; never blocks."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._put, event)
            except RuntimeError:  # that loop is gone (server stopped)
                self.unsubscribe(sub)

    def close(self) -> None:
        """End every open stream (on shutdown)."""
        self.closed = True
        self.publish(_CLOSED)


def is_closing(event: LiveEvent) -> bool:
    return event is _CLOSED
