"""uvicorn's h11 protocol with a deadline for the request head.

uvicorn times out idle keep-alive connections only: a client that drips one header byte a second
holds its connection (and a slot of ``limit_concurrency``) for as long as it likes. This protocol
closes a connection whose request head is not complete ``HEAD_TIMEOUT_S`` after the connection
opened or the previous response ended. Heads over ``MAX_HEADER_BYTES`` are refused by h11 (400).

    uvicorn.Config(app, http=GuardedH11Protocol, h11_max_incomplete_event_size=MAX_HEADER_BYTES)
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 5.0
MAX_HEADER_BYTES = 8 * 1024


class GuardedH11Protocol(H11Protocol):
    head_timeout_s = HEAD_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None
    _head_cycle: object = None

    def _arm(self) -> None:
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a (pipelined) request is being answered: its head is complete
        self._head_cycle = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.cycle is self._head_cycle and not self.transport.is_closing():  # no new request head arrived
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.cycle is not self._head_cycle:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)
