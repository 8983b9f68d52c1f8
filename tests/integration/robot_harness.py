"""Shared pieces of the robot's integration tests: an exchange-sim, accounts, a robot wired to them.

The simulator runs in this process (a background thread, its own event loop) with a market clock
that only the tests move (``speed=0``); the robot reads that clock directly, so each test decides
exactly when bars close.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange
from autotrader.adapters.state import open_state_store
from autotrader.domain.candles import Candles
from autotrader.exchange_sim import SimConfig, SimServer, synthetic_candles
from autotrader.live.clock import FunctionClock
from autotrader.live.metrics import RobotMetrics
from autotrader.live.robot import Robot, RobotConfig
from autotrader.signals.intake import Delivery, classify

MINUTE = 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
WARMUP = 400  # bars of history exchange-sim serves before the robot's start (its default)
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


def robot_process(
    sim: SimServer, account: tuple[str, str], store: Any, config: RobotConfig, **kw: Any
) -> tuple[Robot, BybitExchange, ListSource]:
    """One robot process: its own connection to the venue and an in-memory signal source; not started yet."""
    exchange = connect(sim, account)
    source = ListSource(sim.state.clock.now_ms, store.seen)
    return build_robot(sim, exchange, store, config, signals=source, **kw), exchange, source


@dataclass(frozen=True)
class BtcVenue:
    """exchange-sim trading BTCUSDT, a funded account on it, the robot's state store and its config."""

    sim: SimServer
    account: tuple[str, str]
    store: Any
    config: RobotConfig

    def process(self, **kw: Any) -> tuple[Robot, BybitExchange, ListSource]:
        """A robot process on this venue, account, store and config (``robot_process``); not started yet."""
        return robot_process(self.sim, self.account, self.store, self.config, **kw)

    def view(self) -> dict[str, Any]:
        """The account as the simulator holds it (``venue_view``)."""
        return venue_view(self.sim, self.account[0])


@contextlib.contextmanager
def btc_venue(tmp_path: Path, candles: Candles, *, refuse_stops: bool = False, **config: Any) -> Iterator[BtcVenue]:
    """exchange-sim serving ``candles`` as BTCUSDT (1m bars, WARMUP of them before the start), a 10,000 USDT
    account, a SQLite store in ``tmp_path`` and ``robot_config(symbols=("BTCUSDT",), **config)``.

    ``refuse_stops``: the venue refuses every conditional order (Bybit 10001), from the start. The store
    stays open after the block, for the test to read.
    """
    with sim_server({"BTCUSDT": candles}, warmup_bars=WARMUP) as sim:
        if refuse_stops:
            sim.admin.fault("refuse_conditional", count=None, path="/v5/order/create", ret_code=10001, ret_msg="bad")
        account = new_account(sim)
        store = open_state_store(f"sqlite:///{tmp_path / 's.db'}")
        yield BtcVenue(sim, account, store, robot_config(symbols=("BTCUSDT",), **config))


async def close_bars(sim: SimServer, robot: Robot, bars: int, bar_ms: int = MINUTE) -> None:
    """Moves the market clock ``bars`` bars, one at a time, the robot stepping after each bar close."""
    for _ in range(bars):
        sim.admin.advance(bar_ms)
        await robot.step()


async def start_on_signal(robot: Robot, source: ListSource, message: bytes) -> None:
    """Starts the robot (its reconciliation with the venue), hands it one signal and steps once on it."""
    await robot.start()
    source.push(message)
    await robot.step()


def minute_candles(close: np.ndarray, t0: int = T0) -> Candles:
    """One-minute bars from ``t0`` closing at ``close``: each opens at the one before's close, wicks 0.05 %."""
    n = len(close)
    open_ = np.concatenate(([close[0]], close[:-1]))
    ts = t0 + MINUTE * np.arange(n, dtype=np.int64)
    high = np.maximum(open_, close) * 1.0005
    low = np.minimum(open_, close) * 0.9995
    return Candles(ts, open_, high, low, close, np.full(n, 50.0))


def signal(
    clock_ms: Callable[[], int], signal_id: str = "a", symbol: str = "BTCUSDT", direction: str = "long"
) -> bytes:
    """A prediction as the signal topic carries it: stamped now, confidence 0.9, a 1 h horizon."""
    body = {"id": signal_id, "symbol": symbol, "ts": clock_ms(), "direction": direction, "confidence": 0.9}
    return json.dumps({**body, "horizon": "1h", "model": "m"}).encode()


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

    def rewind(self, *deliveries: Delivery) -> None:
        """Give ``deliveries`` back: the next ``poll`` delivers them again."""
        self.pending[:0] = [d.raw for d in deliveries]

    def close(self) -> None:
        return None
