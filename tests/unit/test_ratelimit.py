"""Client-side Bybit rate limiting on a fake clock: windows, server headers, 10006, bans, backoff."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from autotrader.adapters.exchange.ratelimit import Backoff, RateLimiter, WindowBucket, endpoint_limit
from autotrader.domain.errors import RateLimited

WALL0_MS = 1_700_000_000_000.0


class FakeClock:
    """Monotonic seconds and wall ms that move only when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0

    def mono(self) -> float:
        return self.t

    def wall_ms(self) -> float:
        return WALL0_MS + self.t * 1000.0

    async def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def limiter(clock: FakeClock, **kw) -> RateLimiter:
    return RateLimiter(clock=clock.mono, wall_ms=clock.wall_ms, sleep=clock.sleep, **kw)


def send_times(lim: RateLimiter, clock: FakeClock, path: str, n: int, category: str | None = None) -> list[float]:
    async def run() -> list[float]:
        out = []
        for _ in range(n):
            async with lim.slot(path, category):
                out.append(clock.t)
        return out

    return asyncio.run(run())


def max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for u in times if t - window < u <= t) for t in times)


def test_documented_limits_per_endpoint_and_category():
    assert endpoint_limit("/v5/order/create", "linear") == 10
    assert endpoint_limit("/v5/order/create", "spot") == 20
    assert endpoint_limit("/v5/order/realtime", "linear") == 50
    assert endpoint_limit("/v5/market/kline", "spot") is None  # public: IP limit only


def test_order_create_never_exceeds_ten_per_rolling_second_but_keeps_the_rate():
    clock = FakeClock()
    lim = limiter(clock)
    times = send_times(lim, clock, "/v5/order/create", 35, "linear")
    assert max_in_window(times, 1.0) == 10
    assert times[9] == 0.0  # the first ten go at once
    assert times[10] > 1.0  # the eleventh waits for the first token to come back
    assert 3.0 < times[-1] < 3.3  # 35 requests take a little over three windows: ~10/s sustained


def test_spot_orders_get_twenty_per_second():
    clock = FakeClock()
    lim = limiter(clock)
    times = send_times(lim, clock, "/v5/order/create", 40, "spot")
    assert max_in_window(times, 1.0) == 20
    assert times[19] == 0.0 and times[20] > 1.0


def test_public_endpoints_are_held_to_the_ip_limit():
    clock = FakeClock()
    lim = limiter(clock, ip_limit=600, ip_window_s=5.0)
    times = send_times(lim, clock, "/v5/market/kline", 601, "spot")
    assert times[599] == 0.0
    assert times[600] >= 5.0  # the 601st request waits for the 5 s IP window


def test_server_headers_with_no_requests_left_block_until_the_reset():
    clock = FakeClock()
    lim = limiter(clock)
    send_times(lim, clock, "/v5/order/realtime", 1, "linear")
    reset_ms = clock.wall_ms() + 700
    lim.observe(
        "/v5/order/realtime",
        "linear",
        {"X-Bapi-Limit": "50", "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(int(reset_ms))},
    )
    waited = asyncio.run(lim.acquire("/v5/order/realtime", "linear")).waited_s
    assert waited == pytest.approx(0.7, abs=0.01)


def test_server_limit_header_replaces_the_documented_limit():
    clock = FakeClock()
    lim = limiter(clock)
    lim.observe("/v5/order/create", "linear", {"x-bapi-limit": "20", "x-bapi-limit-status": "19"})
    bucket = lim.bucket("/v5/order/create", "linear")
    assert bucket is not None and bucket.limit == 20
    times = send_times(lim, clock, "/v5/order/create", 20, "linear")
    assert times[-1] == 0.0


def test_rate_limited_10006_waits_until_the_reset_timestamp(caplog):
    clock = FakeClock()
    lim = limiter(clock)
    headers = {"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(int(clock.wall_ms() + 1200))}
    with caplog.at_level(logging.WARNING, logger="autotrader.adapters.exchange.ratelimit"):
        wait = lim.on_rate_limited("/v5/order/create", "linear", headers)
    assert wait == pytest.approx(1.2, abs=0.01)
    assert "10006" in caplog.text
    waited = asyncio.run(lim.acquire("/v5/order/create", "linear")).waited_s
    assert waited == pytest.approx(1.2, abs=0.01)
    assert lim.stats.rate_limited == 1


def test_reset_far_in_the_future_is_capped():
    clock = FakeClock()
    lim = limiter(clock, max_reset_wait_s=2.0)
    wait = lim.on_rate_limited("/v5/order/create", "linear", {"X-Bapi-Limit-Reset-Timestamp": str(int(WALL0_MS + 9e6))})
    assert wait == 2.0


def test_reset_uses_the_server_clock_offset():
    clock = FakeClock()
    lim = limiter(clock)
    lim.server_offset_ms = 5_000  # the server is 5 s ahead of us
    reset_server_ms = clock.wall_ms() + 5_000 + 300
    wait = lim.on_rate_limited(
        "/v5/order/create", "linear", {"X-Bapi-Limit-Reset-Timestamp": str(int(reset_server_ms))}
    )
    assert wait == pytest.approx(0.3, abs=0.01)


def test_ip_ban_stops_everything_and_says_so(caplog):
    clock = FakeClock()
    lim = limiter(clock, max_wait_s=30.0)
    with caplog.at_level(logging.WARNING, logger="autotrader.adapters.exchange.ratelimit"):
        lim.ban(600.0)
    assert "backing off" in caplog.text and "10.0 min" in caplog.text
    with pytest.raises(RateLimited, match="IP ban"):
        asyncio.run(lim.acquire("/v5/market/kline", "spot"))
    clock.t += 600.0
    assert asyncio.run(lim.acquire("/v5/market/kline", "spot")).waited_s == 0.0


def test_short_ban_is_waited_out_instead_of_raised():
    clock = FakeClock()
    lim = limiter(clock, max_wait_s=30.0)
    lim.ban(2.0)
    assert asyncio.run(lim.acquire("/v5/order/create", "linear")).waited_s == pytest.approx(2.0)


def test_wait_longer_than_allowed_raises_rate_limited():
    clock = FakeClock()
    lim = limiter(clock, max_wait_s=0.5)
    send_times(lim, clock, "/v5/order/create", 10, "linear")
    with pytest.raises(RateLimited, match="next free slot"):
        asyncio.run(lim.acquire("/v5/order/create", "linear"))


def test_a_request_in_flight_holds_its_token_until_it_ends():
    bucket = WindowBucket(2, 1.0)
    a = bucket.spend(0.0)
    bucket.spend(0.0)
    assert bucket.next_slot(0.5) == 1.5  # both in flight: count as "now"
    a.t, a.done = 0.8, True  # the first answer came at 0.8
    assert bucket.next_slot(0.9) == pytest.approx(1.8)
    assert bucket.next_slot(1.9) == 1.9


def test_slow_answers_delay_the_next_window():
    clock = FakeClock()
    lim = limiter(clock)

    async def run() -> list[float]:
        out = []
        for _ in range(11):
            async with lim.slot("/v5/order/create", "linear"):
                out.append(clock.t)
                await clock.sleep(0.03)  # each answer takes 30 ms
        return out

    times = asyncio.run(run())
    # the first token came back one window (plus margin) after the first ANSWER, at 0.03 s
    assert times[10] == pytest.approx(0.03 + 1.05)


def test_concurrent_acquires_are_served_in_order_and_never_overfill_a_window():
    clock = FakeClock()
    lim = limiter(clock)
    granted: list[tuple[int, float]] = []

    async def one(i: int) -> None:
        async with lim.slot("/v5/order/cancel", "linear"):
            granted.append((i, clock.t))

    async def run() -> None:
        await asyncio.gather(*(one(i) for i in range(25)))

    asyncio.run(run())
    assert [i for i, _ in granted] == list(range(25))  # first come, first served
    times = [t for _, t in granted]
    assert times.count(0.0) == 10
    assert times[10] == pytest.approx(1.05) and times[-1] == pytest.approx(2.1)
    assert max_in_window(times, 1.0) == 10


def test_backoff_is_exponential_capped_and_jittered():
    backoff = Backoff(base_s=0.2, cap_s=5.0)
    rng = random.Random(7)
    for attempt in range(10):
        ceiling = min(5.0, 0.2 * 2**attempt)
        delays = [backoff.delay(attempt, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert max(backoff.delay(30, rng) for _ in range(20)) <= 5.0
