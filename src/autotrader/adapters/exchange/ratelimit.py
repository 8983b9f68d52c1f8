"""Client-side rate limiting for Bybit v5: per-endpoint buckets, the IP limit, bans and backoff.

Bybit counts requests per UID and endpoint in a ROLLING one-second window (``10006`` when over)
and per IP over five seconds (HTTP 403 and a ban of about ten minutes when over). A classic
refill-rate token bucket lets through up to twice its size in one rolling window, so the buckets
here return each token one window after its request ENDED (the server stamps a request somewhere
between our send and its answer): no window ever holds more than the limit as the server counts
it, and a steady stream still runs at close to the full limit. Waiters queue first come, first
served.

The server's own counters win: ``X-Bapi-Limit`` replaces a bucket's size (accounts can have
raised limits), ``X-Bapi-Limit-Status: 0`` blocks the bucket until ``X-Bapi-Limit-Reset-Timestamp``,
and a ``10006`` does the same. An HTTP 403 bans every request for ``ip_ban_s`` and says so in the
log; a caller that would have to wait longer than ``max_wait_s`` gets ``RateLimited`` at once
instead of a silent stall.

Clock and sleep are injectable so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from autotrader.domain.errors import RateLimited

log = logging.getLogger(__name__)

# Bybit's documented UTA default limits (requests per second per UID) for the endpoints we use.
# A dict value is per category; public market endpoints have only the IP limit.
BYBIT_ENDPOINT_LIMITS: Mapping[str, int | Mapping[str, int]] = {
    "/v5/order/create": {"linear": 10, "inverse": 10, "spot": 20, "option": 10},
    "/v5/order/cancel": {"linear": 10, "inverse": 10, "spot": 20, "option": 10},
    "/v5/order/amend": 10,
    "/v5/order/cancel-all": 10,
    "/v5/order/realtime": 50,
    "/v5/order/history": 50,
    "/v5/execution/list": 50,
    "/v5/position/list": 50,
    "/v5/position/set-leverage": 10,
    "/v5/position/trading-stop": 10,
    "/v5/account/wallet-balance": 50,
    "/v5/account/info": 50,
    "/v5/account/fee-rate": 10,
    "/v5/asset/coin/query-info": 5,
    "/v5/user/query-api": 10,
}
IP_LIMIT = 600  # requests ...
IP_WINDOW_S = 5.0  # ... per 5 seconds per IP
IP_BAN_S = 600.0  # Bybit lifts an IP ban after about 10 minutes


def endpoint_limit(path: str, category: str | None) -> int | None:
    """Requests per second allowed on ``path`` (for ``category``), ``None`` for IP-limited only."""
    entry = BYBIT_ENDPOINT_LIMITS.get(path)
    if entry is None or isinstance(entry, int):
        return entry
    return entry.get(category or "linear", min(entry.values()))


def bucket_key(path: str, category: str | None) -> str:
    entry = BYBIT_ENDPOINT_LIMITS.get(path)
    return f"{path}#{category or 'linear'}" if isinstance(entry, Mapping) else path


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup."""
    if not headers:
        return None
    lname = name.lower()
    for key, value in headers.items():
        if key.lower() == lname:
            return value
    return None


class _Cell:
    """One spent token: when it was spent and, once the answer came, when the request ended."""

    __slots__ = ("done", "t")

    def __init__(self, t: float) -> None:
        self.t = t
        self.done = False


class WindowBucket:
    """At most ``limit`` requests in any rolling ``window_s``.

    A token comes back one window after the request ENDED (the server's own timestamp lies
    somewhere before our answer arrived), and a request still in flight holds its token. Waiters
    queue first come, first served on ``lock``.
    """

    def __init__(self, limit: int, window_s: float) -> None:
        if limit <= 0 or window_s <= 0:
            raise ValueError("a bucket needs a positive limit and window")
        self.limit = limit
        self.window_s = window_s
        self.blocked_until = 0.0
        self.lock = asyncio.Lock()
        self._cells: list[_Cell] = []

    def _times(self, now: float) -> list[float]:
        horizon = now - self.window_s
        self._cells = [c for c in self._cells if not c.done or c.t > horizon]
        return sorted(c.t if c.done else max(c.t, now) for c in self._cells)

    def next_slot(self, now: float) -> float:
        """The earliest time (same clock as ``now``) a new request may go out."""
        times = self._times(now)
        slot = max(now, self.blocked_until)
        if len(times) >= self.limit:
            slot = max(slot, times[-self.limit] + self.window_s)
        return slot

    def spend(self, now: float) -> _Cell:
        cell = _Cell(now)
        self._cells.append(cell)
        return cell

    def in_window(self, now: float) -> int:
        """Tokens held in the window ending at ``now`` (in flight or recently used)."""
        return len(self._times(now))


@dataclass(frozen=True, slots=True)
class Ticket:
    """A granted request; give it back with ``RateLimiter.release`` when the answer arrived."""

    cells: tuple[_Cell, ...]
    waited_s: float


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with jitter: attempt ``n`` waits in ``[c/2, c]``, ``c = min(cap, base·2ⁿ)``."""

    base_s: float = 0.2
    cap_s: float = 5.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap_s, self.base_s * (2.0 ** max(0, attempt)))
        return ceiling / 2 + (rng or _RNG).uniform(0.0, ceiling / 2)


_RNG = random.Random()  # noqa: S311 - jitter, not cryptography


def _utc(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S UTC")


@dataclass
class LimiterStats:
    requests: int = 0
    waits: int = 0
    waited_s: float = 0.0
    rate_limited: int = 0  # 10006 answers seen
    bans: int = 0  # HTTP 403 answers seen


@dataclass
class RateLimiter:
    """All of an account's client-side limits. One instance per API key (and IP)."""

    endpoint_limits: Mapping[str, int | Mapping[str, int]] = field(default_factory=lambda: BYBIT_ENDPOINT_LIMITS)
    ip_limit: int = IP_LIMIT
    ip_window_s: float = IP_WINDOW_S
    ip_ban_s: float = IP_BAN_S
    margin_s: float = 0.05  # added to every window: arrival jitter must not push the server over
    max_wait_s: float = 30.0
    max_reset_wait_s: float = 10.0  # a reset header further away than this is treated as this
    clock: Callable[[], float] = time.monotonic
    wall_ms: Callable[[], float] = lambda: time.time() * 1000.0
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    server_offset_ms: float = 0.0  # server clock minus local clock, set by the clock resync
    stats: LimiterStats = field(default_factory=LimiterStats)

    def __post_init__(self) -> None:
        self._buckets: dict[str, WindowBucket] = {}
        self._ip = WindowBucket(self.ip_limit, self.ip_window_s + self.margin_s)
        self._ip_lock = asyncio.Lock()
        self._banned_until = 0.0

    # ------------------------------------------------------------------------------------ buckets

    def bucket(self, path: str, category: str | None = None) -> WindowBucket | None:
        """The bucket of an endpoint (created on first use), ``None`` when only the IP limit applies."""
        key = bucket_key(path, category)
        found = self._buckets.get(key)
        if found is None:
            entry = self.endpoint_limits.get(path)
            if entry is None:
                return None
            limit = entry if isinstance(entry, int) else entry.get(category or "linear", min(entry.values()))
            found = self._buckets[key] = WindowBucket(limit, 1.0 + self.margin_s)
        return found

    @property
    def banned_for_s(self) -> float:
        return max(0.0, self._banned_until - self.clock())

    async def acquire(self, path: str, category: str | None = None) -> Ticket:
        """Wait for a slot on ``path``; ``RateLimited`` at once if that would take over ``max_wait_s``.

        Release the ticket when the request is answered (or failed), e.g. with ``slot()``.
        """
        bucket = self.bucket(path, category)
        start = self.clock()
        async with bucket.lock if bucket is not None else self._ip_lock:
            while True:
                now = self.clock()
                if self._banned_until - now > self.max_wait_s:
                    left = self._banned_until - now
                    raise RateLimited(
                        f"Bybit IP ban in effect (HTTP 403 earlier): no requests for another {left / 60:.1f} min, "
                        f"until {_utc(self.wall_ms() + left * 1000)}"
                    )
                slot = max(self._ip.next_slot(now), self._banned_until)
                if bucket is not None:
                    slot = max(slot, bucket.next_slot(now))
                wait = slot - now
                if wait <= 1e-9:
                    break
                if now - start + wait > self.max_wait_s:
                    raise RateLimited(f"rate limit on {path}: the next free slot is {wait:.1f} s away")
                await self.sleep(wait)
            cells = (self._ip.spend(now),) if bucket is None else (self._ip.spend(now), bucket.spend(now))
        waited = max(0.0, self.clock() - start)
        self.stats.requests += 1
        if waited > 0:
            self.stats.waits += 1
            self.stats.waited_s += waited
        return Ticket(cells, waited)

    def release(self, ticket: Ticket) -> None:
        """The request of ``ticket`` ended: its tokens return one window from now."""
        now = self.clock()
        for cell in ticket.cells:
            cell.t = max(cell.t, now)
            cell.done = True

    @contextlib.asynccontextmanager
    async def slot(self, path: str, category: str | None = None) -> AsyncIterator[Ticket]:
        """``async with limiter.slot(path):`` acquire, run the request, release."""
        ticket = await self.acquire(path, category)
        try:
            yield ticket
        finally:
            self.release(ticket)

    # ----------------------------------------------------------------------- server's point of view

    def _seconds_until(self, reset_ms: float) -> float:
        server_now = self.wall_ms() + self.server_offset_ms
        return min(self.max_reset_wait_s, max(0.0, (reset_ms - server_now) / 1000.0))

    def observe(self, path: str, category: str | None, headers: Mapping[str, str] | None) -> None:
        """Adopt the server's counters from a response's ``X-Bapi-Limit*`` headers."""
        bucket = self.bucket(path, category)
        if bucket is None or not headers:
            return
        limit = _int(header(headers, "X-Bapi-Limit"))
        if limit is not None and limit > 0 and limit != bucket.limit:
            log.info("Bybit says %s allows %d requests/s (was %d): adopting it", path, limit, bucket.limit)
            bucket.limit = limit
        remaining = _int(header(headers, "X-Bapi-Limit-Status"))
        reset_ms = _int(header(headers, "X-Bapi-Limit-Reset-Timestamp"))
        if remaining is not None and remaining <= 0 and reset_ms is not None:
            bucket.blocked_until = max(bucket.blocked_until, self.clock() + self._seconds_until(reset_ms))

    def on_rate_limited(self, path: str, category: str | None, headers: Mapping[str, str] | None) -> float:
        """A ``10006``: block the endpoint until the reset time; returns the seconds to wait."""
        self.stats.rate_limited += 1
        reset_ms = _int(header(headers, "X-Bapi-Limit-Reset-Timestamp"))
        wait = self._seconds_until(reset_ms) if reset_ms is not None else 1.0
        wait = max(wait, 0.05)
        bucket = self.bucket(path, category)
        target = self._ip if bucket is None else bucket
        target.blocked_until = max(target.blocked_until, self.clock() + wait)
        log.warning("Bybit rate limit (10006) on %s: waiting %.2f s for the window to reset", path, wait)
        return wait

    def ban(self, seconds: float | None = None, reason: str = "HTTP 403 access too frequent") -> float:
        """Stop every request for ``seconds`` (default ``ip_ban_s``) and log why; returns the ban length."""
        seconds = self.ip_ban_s if seconds is None else seconds
        self.stats.bans += 1
        self._banned_until = max(self._banned_until, self.clock() + seconds)
        log.warning(
            "Bybit %s: backing off, no requests for %.1f min (until %s)",
            reason,
            seconds / 60,
            _utc(self.wall_ms() + seconds * 1000),
        )
        return seconds


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None
