"""Shared pieces of the robot's integration tests: an exchange-sim, accounts, a robot wired to them.

The simulator runs in this process (a background thread, its own event loop) with a market clock
that only the tests move (``speed=0``); the robot reads that clock directly, so each test decides
exactly when bars close.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange
from autotrader.domain.candles import Candles
from autotrader.exchange_sim import SimConfig, SimServer, synthetic_candles
from autotrader.live.clock import FunctionClock
from autotrader.live.metrics import RobotMetrics
from autotrader.live.robot import Robot, RobotConfig
from autotrader.signals.intake import Delivery, classify

MINUTE = 60_000
BTC = synthetic_candles(4_000, MINUTE, seed=11, start_price=40_000.0, amplitude=0.03, cycle_bars=120)
ETH = synthetic_candles(4_000, MINUTE, seed=12, start_price=2_500.0, amplitude=0.03, cycle_bars=90)


@contextlib.contextmanager
def sim_server(candles: dict[str, Candles] | None = None, **options: Any) -> Iterator[SimServer]:
    config = SimConfig(
        candles=candles or {"BTCUSDT": BTC, "ETHUSDT": ETH},
        timeframe=options.pop("timeframe", "1m"),
        speed=options.pop("speed", 0.0),
        warmup_bars=options.pop("warmup_bars", 400),
        admin=True,
        ws_tick_s=options.pop("ws_tick_s", 0.5),
        **options,
    )
    with SimServer(config).start() as server:
        yield server


def new_account(sim: SimServer, usdt: str = "10000") -> tuple[str, str]:
    key, secret = f"k{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    sim.admin.add_account(key, secret, {"USDT": usdt})
    return key, secret


def connect(sim: SimServer, account: tuple[str, str], **options: Any) -> BybitExchange:
    options = {"timeout_s": 2.0, "lookup_delay_s": 0.05, **options}
    return BybitExchange(BybitConfig.custom(sim.url, *account, **options))


def robot_config(**changes: Any) -> RobotConfig:
    values: dict[str, Any] = {
        "symbols": ("BTCUSDT", "ETHUSDT"),
        "timeframe": "1m",
        "capital": 10_000.0,
        "risk_level": "aggressive",
        "poll_interval_s": 0.05,
        "reconcile_interval_s": 3600.0,
        "lookback_bars": 200,
    }
    values.update(changes)
    return RobotConfig(**values)


def build_robot(
    sim: SimServer, exchange: BybitExchange, store: Any, config: RobotConfig | None = None, **kw: Any
) -> Robot:
    clock = FunctionClock(sim.state.clock.now_ms)
    return Robot(config or robot_config(), exchange, store, clock, metrics=RobotMetrics(), **kw)


def venue_view(sim: SimServer, api_key: str) -> dict[str, Any]:
    """The simulator's account, read on its own thread: wallet, order link ids, open orders."""

    def read() -> dict[str, Any]:
        acct = sim.state.engine.accounts[api_key]
        return {
            "wallet": dict(acct.wallet),
            "link_ids": [o.link_id for o in acct.orders.values()],
            "open": {o.link_id: o.status for o in acct.orders.values() if o.is_open},
            "executions": [dict(e) for e in acct.executions],
            "positions": {s: p.size for s, p in acct.positions.items() if p.size},
        }

    return sim.call(read)


def venue_equity(view: dict[str, Any], prices: dict[str, float]) -> Decimal:
    total = view["wallet"].get("USDT", Decimal(0))
    for coin, qty in view["wallet"].items():
        if coin != "USDT":
            total += qty * Decimal(repr(prices[coin + "USDT"]))
    return total


class ListSource:
    """An in-memory ``SignalSource``: messages are classified exactly as the Kafka source does."""

    def __init__(self, clock_ms, seen) -> None:
        self.clock_ms = clock_ms
        self.seen = seen
        self.pending: list[bytes] = []
        self.committed = 0
        self.offset = 0

    def push(self, raw: bytes) -> None:
        self.pending.append(raw)

    def poll(self, timeout_s: float = 1.0, max_messages: int = 500) -> Sequence[Delivery]:
        out = []
        now = self.clock_ms()
        for raw in self.pending[:max_messages]:
            outcome = classify(raw, now, self.seen)
            out.append(Delivery(outcome.prediction, outcome, raw, 0, self.offset, "mem", now))
            self.offset += 1
        del self.pending[: len(out)]
        return out

    def commit(self, *deliveries: Delivery) -> bool:
        self.committed += len(deliveries)
        return True

    def close(self) -> None:
        return None
