"""The trading robot: signals in, one risk decision path, orders out — on an asyncio loop.

    robot = Robot(config, exchange, store, clock, signals=kafka_source)   # everything injected
    await robot.start()          # loads the store, reconciles with the exchange (refuses on mismatch)
    await robot.run(stop_event)  # until stopped

Each loop iteration: refresh the clock and prices; on a newly closed bar, mark equity and update
the risk state exactly as the backtest kernel does at a bar's close (daily loss, drawdown halt,
flatten), ratchet trailing stops with the bar's extreme and rest every position's stop and
take-profit, and — with a strategy — decide on the bar's signals; check the robot-side exits the
venue refused to hold; then take the signals the source delivered, decide each, persist the
decision (with its intents and orders) and only then act and commit the source's offsets.

A decision is the kernel's step 3b for one signal, made by :mod:`autotrader.live.decider` with the
compiled functions the backtest calls: ``risk.policy.signal_action_nb`` (spot is long-only, an
opposite or flat signal exits, no pyramiding), then for an entry ``decide_entry_nb`` (risk gate
and sizing) and ``entry_quantity_nb`` (lot, minimums, free cash). The order goes out at once
("the next moment"), where the backtest fills at the next bar's open.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import re
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import COLUMNS, Candles, format_ms
from autotrader.domain.errors import (
    BrokerError,
    ConfigError,
    ExchangeError,
    OrderRejected,
    StorageError,
    TemporaryExchangeError,
)
from autotrader.domain.instrument import Instrument
from autotrader.domain.orders import OrderSide, OrderStatus, OrderSubmitted, OrderType, SubmitOrder
from autotrader.execution.ports import ExchangePort
from autotrader.live.dead_letters import dead_letter, failure_detail
from autotrader.live.decider import EntryInputs, EntryPlan, Pause, Settings, decide_action, decide_entry
from autotrader.live.exits import exit_hit
from autotrader.live.metrics import RobotMetrics
from autotrader.live.order_manager import OrderManager
from autotrader.live.portfolio import Book
from autotrader.live.ports import Clock, StateStore
from autotrader.live.reconcile import ReconcileError, Reconciler
from autotrader.live.records import (
    ClosedTrade,
    Decision,
    EquitySnapshot,
    Heartbeat,
    Intent,
    IntentKind,
    Ledger,
    Outcome,
    ReconcileSummary,
    RobotEvent,
    StoredOrder,
)
from autotrader.live.risk_state import KillSwitch, RiskState
from autotrader.risk.limits import RiskLimits
from autotrader.risk.policy import Transition, exposure_vector_nb
from autotrader.risk.rules import (
    HALTED,
    SIZING_FIXED,
    SIZING_KELLY,
    SIZING_VOLATILITY,
    Denial,
    correlation_exposure_nb,
)
from autotrader.risk.trading import TradingConfig
from autotrader.risk.volatility import daily_volatility_of
from autotrader.signals.intake import Delivery, SignalSource, Verdict
from autotrader.signals.prediction import Prediction
from autotrader.strategy.base import Strategy

log = logging.getLogger(__name__)

_SIZING = {"fixed": SIZING_FIXED, "kelly": SIZING_KELLY, "volatility": SIZING_VOLATILITY}
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
MINUTE_MS = 60_000
_PAGE_BARS = 1000  # Bybit serves at most 1000 klines per request
_ALIGNED = ("ts", "open", "high", "low", "close", "volume", "present")
DAY_MS = 86_400_000


class RobotConfig(TradingConfig):
    """What one robot trades and how (frozen; unknown fields are refused).

    The trading fields (symbols, market, timeframe, leverage, risk, sizing, fee, slippage) and
    ``limits()`` come from ``TradingConfig``, shared with the backtest's ``BacktestConfig``.
    """

    mode: Literal["demo", "live"] = "demo"
    capital: float = Field(gt=0)
    tag: str = Field(default="atrobot", min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")
    strategy: str | None = None
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    trading_hours: str = "24/7"
    poll_interval_s: float = Field(default=0.2, gt=0)
    reconcile_interval_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    price_max_age_s: float = Field(default=2.0, gt=0)
    lookback_bars: int = Field(default=300, ge=20, le=100_000)
    signal_batch: int = Field(default=200, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _old_fee_name(cls, data: Any) -> Any:
        """Robot configs stored before the shared ``TradingConfig`` name the fee ``fee_rate``: still read."""
        if isinstance(data, dict) and "fee_rate" in data:
            data = dict(data)
            old = data.pop("fee_rate")
            if data.setdefault("fee", old) != old:
                raise ValueError("give the fee once, as 'fee' ('fee_rate' is its old name)")
        return data

    @field_validator("trading_hours")
    @classmethod
    def _hours(cls, v: str) -> str:
        parse_trading_hours(v)
        return v


def check_exit_settings(market: str, limits: RiskLimits) -> None:
    """Refuse (one-line ``ConfigError`` naming the setting) an exit the robot could not place as backtested.

    Stop-loss, take-profit and trailing stop rest at the venue as conditional orders, or are held
    by the robot when the venue refuses them, on spot and linear alike. What no venue can hold is
    a short's take-profit at or below zero (``take_profit`` of 100 % or more on linear, where
    shorts are traded): the backtest never fires it, and the robot will not pretend to.
    """
    if market == "linear" and limits.take_profit is not None and limits.take_profit >= 1.0:
        raise ConfigError(
            f"risk setting 'take_profit' {limits.take_profit:g} cannot be honoured on linear: "
            "a short's target would be at or below zero (use less than 1)"
        )


def parse_trading_hours(text: str) -> list[tuple[int, int]]:
    """``"24/7"`` (empty list = always) or ``"HH:MM-HH:MM,..."`` UTC windows (may wrap midnight)."""
    text = text.strip()
    if text.lower() in ("24/7", "always", ""):
        return []
    windows = []
    for part in text.split(","):
        m = _HOURS.match(part.strip())
        if not m:
            raise ConfigError(f"trading hours {text!r}: expected 24/7 or HH:MM-HH:MM[,HH:MM-HH:MM...] (UTC)")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ConfigError(f"trading hours {part.strip()!r}: not a time of day")
        windows.append((h1 * 60 + m1, h2 * 60 + m2))
    return windows


def in_trading_hours(windows: Sequence[tuple[int, int]], now_ms: int) -> bool:
    if not windows:
        return True
    minute = (now_ms % DAY_MS) // MINUTE_MS
    for start, end in windows:
        if start <= end and start <= minute < end:
            return True
        if start > end and (minute >= start or minute < end):
            return True
    return False


@dataclasses.dataclass
class _Price:
    value: float
    wall_s: float
    clock_ms: int


class Robot:
    """One trading robot. See the module docstring."""

    def __init__(
        self,
        config: RobotConfig,
        exchange: ExchangePort,
        store: StateStore,
        clock: Clock,
        *,
        signals: SignalSource | None = None,
        strategy: Strategy | None = None,
        kill_switch: KillSwitch | None = None,
        metrics: RobotMetrics | None = None,
        robot_name: str | None = None,
    ) -> None:
        self.config = config
        self.limits = config.limits()
        self.exchange = exchange
        self.store = store
        self.clock = clock
        self.signals = signals
        self.strategy = strategy
        self.kill_switch = kill_switch or KillSwitch()
        self.metrics = metrics or RobotMetrics()
        self.name = robot_name or config.tag
        self.tf_ms = config.tf.ms
        self.hours = parse_trading_hours(config.trading_hours)
        self.lev = config.leverage if config.market == "linear" else 1.0
        self.instruments: dict[str, Instrument] = {}
        self.prices: dict[str, _Price] = {}
        self.history: AlignedCandles | None = None
        self._series: dict[str, Candles] = {}
        self._bar_closes: dict[str, float] = {}
        self.last_bar_ts = -1
        self.blocked_reason: str | None = None  # reconciliation failed during the run
        self.status = "starting"
        self.started = False
        self._last_heartbeat = 0.0
        self._last_reconcile = 0.0
        self.book: Book | None = None
        self.om: OrderManager | None = None
        self.risk = RiskState(self.limits, config.capital)
        self.reconciler: Reconciler | None = None
        self._settings = Settings(
            self.limits,
            config.market == "linear",
            self.lev,
            config.fee_rate,
            config.slippage_bps / 10_000.0,
            _SIZING[config.sizing],
        )

    # --------------------------------------------------------------------------------- lifecycle

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.config.symbols

    async def start(self) -> ReconcileSummary:
        """Load the store, reconcile with the exchange and mark equity. ``ReconcileError`` refuses to trade."""
        cfg = self.config
        instruments = await self.exchange.instruments(cfg.market, list(cfg.symbols))
        missing = [s for s in cfg.symbols if s not in instruments]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not listed on {self.exchange.venue} {cfg.market}")
        self.instruments = {s: instruments[s] for s in cfg.symbols}
        check_exit_settings(cfg.market, self.limits)
        now = self.clock.now_ms()
        self._check_settings(now)
        ledger = self.store.load_ledger()
        if ledger is None:
            ledger = Ledger(Decimal(repr(cfg.capital)), Decimal(repr(cfg.capital)), updated_ms=now)
            self.store.save_ledger(ledger)
        self.book = Book(cfg.market, ledger, self.store.load_positions(), self.instruments)
        self.risk = RiskState(self.limits, float(ledger.capital), self.store.load_risk())
        self.risk.load_trades(self.store.load_trades())
        self.om = OrderManager(
            self.exchange,
            self.store,
            self.book,
            self.clock,
            market=cfg.market,
            tag=cfg.tag,
            instruments=self.instruments,
            stop_loss=self.limits.stop_loss,
            take_profit=self.limits.take_profit,
            trailing_stop=self.limits.trailing_stop,
            metrics=self.metrics,
            on_trade=self._on_trade,
        )
        self.om.load()
        await self.clock.refresh()
        await self._refresh_prices(force=True)
        first = self.store.get_meta("first_start_ms") or self.clock.now_ms()
        self.reconciler = Reconciler(
            self.om, cfg.symbols, prices=self._price_map, entry_block=self.entry_block, first_start_ms=int(first)
        )
        summary = await self.reconciler.run(strict=True)
        self._last_reconcile = time.monotonic()
        await self._load_history()
        if self.history is not None:
            # with a strategy, the first step decides on the latest closed bar (a restart finds it seen)
            self.last_bar_ts = int(self.history.ts[-1]) - (self.tf_ms if self.strategy is not None else 0)
        self._mark(self._price_map(), self.clock.now_ms())
        self.started = True
        self.status = "running"
        self.store.record_event(RobotEvent(self.clock.now_ms(), "start", f"{cfg.mode} pid {os.getpid()}"))
        self._heartbeat(force=True)
        log.info(
            "robot %s started (%s, %s, %s): reconciled %s",
            self.name,
            cfg.mode,
            cfg.market,
            ",".join(cfg.symbols),
            summary,
        )
        return summary

    def _check_settings(self, now: int) -> None:
        cfg = self.config
        stored = self.store.get_meta("config")
        if stored is None:
            self.store.set_meta("first_start_ms", now)
        elif stored.get("capital") != cfg.capital and self.store.load_ledger() is not None:
            log.warning(
                "capital changed from %s to %s: the store keeps its ledger (capital %s)",
                stored.get("capital"),
                cfg.capital,
                stored.get("capital"),
            )
        self.store.set_meta("config", cfg.model_dump(mode="json"))
        self.store.set_meta("limits", self.limits.model_dump(mode="json"))

    async def stop(self) -> None:
        self.status = "stopped"
        if self.started:
            self._heartbeat(force=True)
            self.store.record_event(RobotEvent(self.clock.now_ms(), "stop", "stopped"))
        if self.signals is not None:
            with contextlib.suppress(Exception):
                self.signals.close()

    async def run(self, stop: asyncio.Event | None = None, *, max_iterations: int | None = None) -> None:
        """Loop until ``stop`` is set (or ``max_iterations``); a side task measures the event loop's lag."""
        if not self.started:
            await self.start()
        stop = stop or asyncio.Event()
        lag = asyncio.create_task(self._measure_lag(stop))
        try:
            n = 0
            while not stop.is_set() and (max_iterations is None or n < max_iterations):
                n += 1
                got = await self.step()
                if got == 0 and self.signals is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.poll_interval_s)
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag

    async def _measure_lag(self, stop: asyncio.Event, interval_s: float = 0.1) -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(interval_s)
            self.metrics.loop_lag.observe(max(0.0, time.perf_counter() - t0 - interval_s))

    async def step(self) -> int:
        """One iteration: clock, bar close, signals, periodic reconciliation, heartbeat."""
        try:
            await self.clock.refresh()
        except TemporaryExchangeError as e:
            self._exchange_fault("clock", e)
        now = self.clock.now_ms()
        closed_bar = (now // self.tf_ms) * self.tf_ms - self.tf_ms
        if closed_bar > self.last_bar_ts:
            try:
                await self.on_bar_close(closed_bar)
            except TemporaryExchangeError as e:
                self._exchange_fault("bar", e)
        handled = 0
        if self.signals is not None:
            try:  # keep prices fresh here, off the signal's path
                await self._refresh_prices()
            except TemporaryExchangeError as e:
                self._exchange_fault("prices", e)
            deliveries = await asyncio.to_thread(
                self.signals.poll, self.config.poll_interval_s, self.config.signal_batch
            )
            if deliveries:
                await self.handle(deliveries)
                handled = len(deliveries)
        try:
            await self.check_robot_exits()
        except TemporaryExchangeError as e:
            self._exchange_fault("robot-side stop", e)
        if time.monotonic() - self._last_reconcile >= self.config.reconcile_interval_s:
            await self.reconcile()
        self._heartbeat()
        self.metrics.kill_switch.set(1.0 if self.kill_switch.engaged else 0.0)
        return handled

    async def reconcile(self) -> ReconcileSummary | None:
        assert self.reconciler is not None
        self._last_reconcile = time.monotonic()
        await self._refresh_prices(force=True)
        try:
            summary = await self.reconciler.run(strict=False)
        except TemporaryExchangeError as e:
            self._exchange_fault("reconcile", e)
            return None
        if summary.ok:
            if self.blocked_reason is not None:
                log.warning("reconciliation passes again: entries resume")
            self.blocked_reason = None
        else:
            self.blocked_reason = "reconciliation failed: " + "; ".join(summary.problems)
            log.error("%s; entries paused until it passes", self.blocked_reason)
        return summary

    # ------------------------------------------------------------------------------------ prices

    def _price_map(self) -> dict[str, float]:
        return {s: p.value for s, p in self.prices.items()}

    def _set_price(self, symbol: str, value: float) -> None:
        self.prices[symbol] = _Price(value, time.monotonic(), self.clock.now_ms())

    async def _refresh_prices(self, force: bool = False, symbols: Sequence[str] | None = None) -> None:
        """Tickers for prices older than ``price_max_age_s`` on the wall or on the robot's clock (replays run fast)."""
        now = time.monotonic()
        clock_now = self.clock.now_ms()
        max_age = self.config.price_max_age_s
        for symbol in symbols or self.symbols:
            p = self.prices.get(symbol)
            if force or p is None or now - p.wall_s > max_age or clock_now - p.clock_ms > max_age * 1000:
                ticker = await self.exchange.ticker(self.config.market, symbol)
                self._set_price(symbol, float(ticker.last))

    async def price(self, symbol: str, max_age_s: float | None = None) -> float:
        """The symbol's last price; refreshed first when older than ``max_age_s`` (default ``price_max_age_s``)."""
        p = self.prices.get(symbol)
        limit = self.config.price_max_age_s if max_age_s is None else max_age_s
        if p is None or time.monotonic() - p.wall_s > limit or self.clock.now_ms() - p.clock_ms > limit * 1000:
            await self._refresh_prices(force=True, symbols=[symbol])
        return self.prices[symbol].value

    # ------------------------------------------------------------------------------------ bars

    async def _load_history(self) -> None:
        """Closed bars of every symbol (the last ``lookback_bars``), fetched incrementally after the first time."""
        cfg = self.config
        for symbol in cfg.symbols:
            have = self._series.get(symbol)
            if have is None or not len(have):
                fresh = await self._recent_candles(symbol, cfg.lookback_bars)
            else:
                last = int(have.ts[-1])
                missing = (self.clock.now_ms() - last) // self.tf_ms
                if missing <= 1:
                    continue  # nothing new can have closed
                if missing > min(cfg.lookback_bars, _PAGE_BARS - 1):
                    fresh = await self._recent_candles(symbol, cfg.lookback_bars)
                else:
                    new = await self.exchange.candles(
                        cfg.market, symbol, cfg.timeframe, start_ms=last + self.tf_ms, limit=int(missing) + 1
                    )
                    fresh = _append(have, new, cfg.lookback_bars)
            self._series[symbol] = fresh
        if all(len(self._series.get(s, ())) for s in cfg.symbols):
            self.history = align({s: self._series[s] for s in cfg.symbols})

    async def _recent_candles(self, symbol: str, n_bars: int) -> Candles:
        """The newest ``n_bars`` bars, in pages of at most ``_PAGE_BARS`` (Bybit's kline limit)."""
        cfg = self.config
        if n_bars <= _PAGE_BARS:
            return await self.exchange.candles(cfg.market, symbol, cfg.timeframe, limit=n_bars)
        now_bar = (self.clock.now_ms() // self.tf_ms) * self.tf_ms
        start = now_bar - (n_bars + n_bars // 20 + 48) * self.tf_ms  # a margin for gaps in the venue's data
        have: Candles | None = None
        while start <= now_bar:
            end = min(now_bar, start + (_PAGE_BARS - 1) * self.tf_ms)
            page = await self.exchange.candles(
                cfg.market, symbol, cfg.timeframe, start_ms=start, end_ms=end, limit=_PAGE_BARS
            )
            if len(page):
                page = page.take(np.argsort(page.ts, kind="stable"))
                have = page if have is None or not len(have) else _append(have, page, n_bars + _PAGE_BARS)
            start = end + self.tf_ms
        if have is None:
            return await self.exchange.candles(cfg.market, symbol, cfg.timeframe, limit=_PAGE_BARS)
        return have.take(np.arange(max(0, len(have) - n_bars), len(have)))

    async def on_bar_close(self, bar_ts: int) -> None:
        """The bar opened at ``bar_ts`` closed: mark, update risk, protect positions, act on strategy signals."""
        await self._load_history()
        data = self.history
        if data is None or int(data.ts[-1]) < bar_ts:
            return  # the venue has not served the bar yet: try again on the next iteration
        self.last_bar_ts = bar_ts
        t = data.n_bars - 1
        closes = {s: float(data.close[t, j]) for j, s in enumerate(data.symbols) if data.present[t, j]}
        self._bar_closes = closes
        assert self.om is not None
        await self.om.sync_open_orders()  # stops that filled during the bar: the book must know before marking
        for symbol, value in closes.items():
            if symbol not in self.prices:
                self._set_price(symbol, value)
        await self._mark_and_act(closes, bar_ts)
        self._score_signals(data)
        if self.strategy is not None:
            await self._refresh_prices(force=True)  # orders go out at the next moment's price
            await self._strategy_signals(data, bar_ts)

    def _score_signals(self, data: AlignedCandles) -> None:
        """Record the close at each acted-on signal's horizon (for live signal accuracy)."""
        until = int(data.ts[-1]) + self.tf_ms
        column = {s: j for j, s in enumerate(data.symbols)}
        for d in self.store.signals_to_score(until):
            j = column.get(d.symbol)
            bar = (d.expires_ms // self.tf_ms) * self.tf_ms - self.tf_ms  # the bar that closes at or before it
            i = int(np.searchsorted(data.ts, bar))
            if j is None or i >= data.n_bars or int(data.ts[i]) != bar or not data.present[i, j]:
                if j is None or bar < int(data.ts[0]):
                    self.store.score_signal(d.signal_id, -1.0)  # too old to score: marked so, never again
                continue
            self.store.score_signal(d.signal_id, float(data.close[i, j]))

    async def _mark_and_act(self, prices: dict[str, float], as_of_ms: int) -> None:
        transitions = self._mark(prices, as_of_ms)
        halted = any(tr.transition is Transition.DRAWDOWN_HALT for tr in transitions) or self.risk.state == HALTED
        if halted and self.limits.flatten_on_halt:
            await self.flatten(Transition.DRAWDOWN_HALT.label)
        assert self.om is not None
        for symbol in self.symbols:
            if symbol in prices and not self.om.pending(symbol):
                price = prices[symbol]
                extremes = self._trail_extremes(symbol, price) if self.limits.trailing_stop else None
                if extremes is not None:
                    # the trailing stop ratchets with the closed bar's extreme; the new level applies from
                    # now (the next bar's open): a price already through it exits at market, as the
                    # kernel's gap through a stop fills at the open
                    price = await self.price(symbol, max_age_s=0.0)
                    await self.om.ratchet(symbol, *extremes, price, bar_ts=self.last_bar_ts)
                    reason = self.om.crossed(symbol, price)
                    if reason is not None:
                        log.warning("%s of %s already crossed at %s: exit at market", reason, symbol, price)
                        await self._exit_now(symbol, price, reason)
                        continue
                await self.om.protect(symbol, price)

    def _trail_extremes(self, symbol: str, price: float) -> tuple[float, float] | None:
        """(highest high, lowest low) of the closed bars a position's trailing stop has not seen yet.

        From the entry's bar (the kernel ratchets with it too) or the bar after the last one it
        ratcheted with, to the bar that just closed: after a restart, the bars closed while the
        robot was down count as well. ``None``: flat, or no such bar.
        """
        data, om, book = self.history, self.om, self.book
        if data is None or om is None or book is None or symbol not in data.symbols:
            return None
        if self.last_bar_ts < 0 or int(data.ts[-1]) != self.last_bar_ts or not book.open_side(symbol, price):
            return None
        j = data.symbols.index(symbol)
        since = (book.position(symbol).entry_ms // self.tf_ms) * self.tf_ms
        seen = om.trail_bar(symbol)
        if seen is not None:
            since = max(since, seen + self.tf_ms)
        rows = np.flatnonzero((data.ts >= since) & data.present[:, j])
        if not len(rows):
            return None
        return float(data.high[rows, j].max()), float(data.low[rows, j].min())

    def _mark(self, prices: dict[str, float], as_of_ms: int) -> list[Any]:
        assert self.book is not None
        equity = self.book.equity(prices)
        transitions = self.risk.mark(equity, as_of_ms)
        for tr in transitions:
            log.warning("risk: %s: %s", tr.kind, tr.detail)
            self.store.record_event(RobotEvent(self.clock.now_ms(), tr.kind, tr.detail))
        self.store.save_risk(self.risk.snapshot(self.kill_switch.engaged))
        gross = self.book.gross_exposure(prices)
        self.store.snapshot_equity(
            EquitySnapshot(
                ts_ms=self.clock.now_ms(),
                equity=equity,
                cash=float(self.book.cash),
                exposure=gross / equity if equity > 0 else 0.0,
                peak_equity=self.risk.peak_equity,
                day_start_equity=self.risk.day_start_equity,
                state=self.risk.state,
            )
        )
        self._write_usage(prices, equity, gross)
        self.metrics.equity.set(equity)
        self.metrics.drawdown.set(self.risk.drawdown(equity))
        self.metrics.state.set(self.risk.state)
        self.metrics.positions.set(sum(1 for s in self.symbols if self.book.open_side(s, prices.get(s))))
        return transitions

    def _write_usage(self, prices: dict[str, float], equity: float, gross: float) -> None:
        assert self.book is not None
        biggest = max(
            (
                abs(float(p.qty)) * prices.get(s, float(p.avg_price))
                for s, p in self.book.positions.items()
                if self.book.open_side(s, prices.get(s))
            ),
            default=0.0,
        )
        corr = self._correlation_now(prices)
        self.store.set_meta(
            "risk_usage",
            {
                "ts_ms": self.clock.now_ms(),
                "equity": equity,
                "max_position_fraction": biggest / equity if equity > 0 else 0.0,
                "gross_exposure": gross / equity if equity > 0 else 0.0,
                "correlation": corr,
                "leverage": gross / equity if equity > 0 else 0.0,
                "prices": prices,
            },
        )

    def _correlation_now(self, prices: dict[str, float]) -> float:
        data = self.history
        if data is None or data.n_bars < 2 or self.book is None:
            return 0.0
        exposure = np.array([self.book.signed_exposure(s, prices.get(s, 0.0)) for s in data.symbols])
        if np.count_nonzero(exposure) < 2:
            return 0.0
        c = correlation_exposure_nb(
            np.ascontiguousarray(data.close), data.n_bars - 1, exposure, -1, 0.0, self.limits.correlation_window_bars
        )
        return float(c)

    async def _strategy_signals(self, data: AlignedCandles, bar_ts: int) -> None:
        assert self.strategy is not None
        from autotrader.live.signal_engine import window_start_ms

        first = int(np.searchsorted(data.ts, window_start_ms(self.strategy, self.tf_ms, bar_ts)))
        if first > 0:  # the strategy's window (anchored for a retrained model: the same model all period)
            data = dataclasses.replace(data, **{c: getattr(data, c)[first:] for c in _ALIGNED})
        signals = await asyncio.to_thread(self.strategy.generate, data)  # a model may train: off the loop
        t = data.n_bars - 1
        now = self.clock.now_ms()
        perf = time.perf_counter()
        if all(math.isnan(float(signals.direction[t, j])) for j in range(len(data.symbols))):
            log.info(
                "strategy %s: no signal at the bar close %s UTC (%d bars seen)",
                self.strategy.name,
                format_ms(bar_ts + self.tf_ms),
                data.n_bars,
            )
        for j, symbol in enumerate(data.symbols):
            d = float(signals.direction[t, j])
            if math.isnan(d) or not data.present[t, j]:
                continue
            conf = float(signals.confidence[t, j])
            prediction = Prediction(
                id=f"{self.strategy.name}-{symbol}-{self.config.timeframe}-{bar_ts}",
                symbol=symbol,
                ts=bar_ts + self.tf_ms,
                direction="long" if d > 0 else "short" if d < 0 else "flat",
                confidence=1.0 if math.isnan(conf) else min(1.0, max(0.0, conf)),
                horizon=self.config.timeframe,
                model=self.strategy.name,
            )
            if self.store.seen(prediction.id):
                continue
            self.metrics.signals.inc(verdict="accepted", source="strategy")
            await self.on_signal(prediction, f"strategy:{self.strategy.name}", now, perf, bar_prices=True)

    # ------------------------------------------------------------------------------------- risk

    def entry_block(self) -> str | None:
        """Why entries are paused right now (``None``: they are not), as the decisions' label."""
        pause = self._pause()
        if pause is not None:
            return pause.label
        if self.risk.state != 0:
            return (Denial.HALTED_DRAWDOWN if self.risk.state == HALTED else Denial.DAILY_LOSS).label
        return None

    def _pause(self) -> Pause | None:
        """The robot's own reason to pause entries now (the risk state's are the decider's)."""
        if self.kill_switch.engaged:
            return Pause.KILL_SWITCH
        if self.blocked_reason is not None:
            return Pause.RECONCILIATION_FAILED
        if not in_trading_hours(self.hours, self.clock.now_ms()):
            return Pause.OUTSIDE_TRADING_HOURS
        return None

    def _on_trade(self, trade: ClosedTrade) -> None:
        self.risk.record_trade(trade)

    async def flatten(self, reason: str) -> int:
        """Exit every open position (reason recorded); returns how many exits were sent."""
        sent = 0
        for symbol in self.symbols:
            price = await self.price(symbol)
            if await self._exit_now(symbol, price, reason) is not None:
                sent += 1
        return sent

    async def _exit_now(self, symbol: str, price: float, reason: str) -> StoredOrder | None:
        """Send a market exit for ``symbol``'s position (``None``: flat, an exit pending, or not placeable)."""
        assert self.om is not None
        assert self.book is not None
        side = self.book.open_side(symbol, price)
        if side == 0 or self.om.pending_exit(symbol):
            return None
        now = self.clock.now_ms()
        cid = self.om.client_id(symbol, f"{reason}-{self.book.position(symbol).entry_client_order_id}", "exit")
        intent = Intent(
            cid,
            IntentKind.EXIT,
            symbol,
            OrderSide.SELL if side > 0 else OrderSide.BUY,
            now,
            reason=reason,
            reference_price=price,
        )
        stored = self._exit_order(intent, symbol, price)
        if stored is None:
            return None
        self.store.save_intent(intent, stored.order)
        self.om.track(intent, stored)
        return await self.om.run_exit(stored, price)

    async def check_robot_exits(self) -> int:
        """Robot-side exits (the venue refused the conditional order): exit at market at the level.

        Stops (``stop_loss`` or, once the level trailed, ``trailing_stop``) and targets
        (``take_profit``) the venue would not hold are checked on every loop iteration with a fresh
        price (a stop before a target, as the kernel assumes). If that exit cannot be placed or is
        refused too, every position is flattened and the kill switch engaged (entries halt);
        returns how many exits were sent.
        """
        om, book = self.om, self.book
        if om is None or book is None:
            return 0
        sent = 0
        for symbol in om.robot_exit_symbols():
            stop, target = om.robot_stop(symbol), om.robot_target(symbol)
            if (stop is None and target is None) or symbol not in self.instruments:
                continue
            try:
                price = await self.price(symbol)
            except TemporaryExchangeError as e:
                self._exchange_fault("robot-side exit", e)
                continue
            side = book.open_side(symbol, price)
            if side == 0:
                om.clear_robot_stop(symbol)
                om.clear_robot_target(symbol)
                continue
            if om.pending(symbol):
                continue
            hit = exit_hit(side, price, float(stop or 0), float(target or 0))
            if hit is None:
                continue
            reason = om.stop_reason(symbol, stop) if hit == "stop" and stop is not None else hit
            level = stop if hit == "stop" else target
            log.warning("robot-side %s of %s hit at %s (level %s): exit at market", reason, symbol, price, level)
            stored = await self._exit_now(symbol, price, reason)
            if stored is None or stored.order.status is OrderStatus.REJECTED:
                await self._stops_impossible(symbol, stored)
                return sent
            sent += 1
        return sent

    check_robot_stops = check_robot_exits  # the name before take-profit and trailing stops joined it

    async def _stops_impossible(self, symbol: str, stored: StoredOrder | None) -> None:
        why = "could not be placed" if stored is None else f"was refused ({stored.order.reason})"
        detail = f"{symbol}: the robot-side exit's market order {why}: flattening everything and halting"
        log.error(detail)
        event = RobotEvent(self.clock.now_ms(), "fault", f"StopFallbackFailed: {detail}"[:1000], symbol)
        self.store.record_event(event)
        self.kill_switch.engage(f"robot-side exit of {symbol} failed")
        await self.flatten("stop_failed")

    # ---------------------------------------------------------------------------------- signals

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        """Decide every delivery, then commit them to the source (after their decisions are persisted).

        One message never stops the robot: whatever still fails while deciding or persisting it (a
        poison message) dead-letters it with a bounded reason, and the batch is committed. Only a
        store or venue that is down (``StorageError``, ``ExchangeError``) or a broker failure stops it.
        """
        perf = time.perf_counter()
        for delivery in deliveries:
            try:
                await self._handle_one(delivery, perf)
            except (StorageError, ExchangeError, BrokerError):
                raise  # not this message's fault: it comes again after the restart
            except Exception as e:
                await self._poison(delivery, e)
        if self.signals is not None:
            self.signals.commit(*deliveries)

    async def _handle_one(self, delivery: Delivery, perf: float) -> None:
        outcome = delivery.outcome
        self.metrics.signals.inc(verdict=str(outcome.verdict), source="kafka")
        if outcome.verdict is Verdict.INVALID:
            if delivery.dead_letter_error:
                self._fault("dead_letter", delivery.dead_letter_error)
            self.store.record_dead_letter(dead_letter(delivery, outcome.reason, outcome.detail))
            self.metrics.decisions.inc(outcome="dead_lettered", reason=outcome.reason)
            return
        prediction = delivery.prediction
        assert prediction is not None
        if outcome.verdict is Verdict.DUPLICATE:
            self.metrics.decisions.inc(outcome="ignored", reason="duplicate")
            log.info(
                "signal %s is a duplicate: ignored",
                prediction.id,
                extra={"signal_id": prediction.id, "symbol": prediction.symbol},
            )
            return
        if outcome.verdict is Verdict.STALE:
            self._record_skip(prediction, delivery.position, delivery.received_ms, outcome.reason, outcome.detail)
            return
        await self.on_signal(prediction, delivery.position, delivery.received_ms, perf)

    async def _poison(self, delivery: Delivery, error: Exception) -> None:
        """``delivery`` could not be handled: dead-letter it (store and, if it can, the source) and move on."""
        detail = failure_detail(error)
        log.error("signal at %s could not be handled, dead-lettered: %s", delivery.position, detail)
        log.debug("signal at %s: traceback", delivery.position, exc_info=error)
        self.metrics.decisions.inc(outcome="dead_lettered", reason="poison")
        self._fault("signal", f"{delivery.position}: {detail}")
        try:
            self.store.record_dead_letter(dead_letter(delivery, "poison", detail))
        except Exception as e:  # the store may be why it failed: the log line and the fault keep the record
            log.error("could not store the dead letter of %s: %s", delivery.position, failure_detail(e))
        forward = getattr(self.signals, "dead_letter", None)  # the Kafka source copies it to its DLQ topic
        if forward is not None:
            try:
                await asyncio.to_thread(forward, delivery, "poison", detail)
            except Exception as e:  # the store has it; the topic copy is a convenience
                log.warning("could not copy the signal at %s to the dead-letter topic: %s", delivery.position, e)

    def _fault(self, where: str, detail: str) -> None:
        try:
            self.store.record_event(RobotEvent(self.clock.now_ms(), "fault", f"{where}: {detail}"[:1000]))
        except Exception as e:  # a fault about a fault: the log line is the record
            log.error("could not record the fault (%s: %s): %s", where, detail, failure_detail(e))

    def _decision(
        self,
        p: Prediction,
        source: str,
        received_ms: int,
        outcome: Outcome,
        reason: str = "",
        detail: str = "",
        cid: str | None = None,
        price: float = 0.0,
    ) -> Decision:
        return Decision(
            signal_id=p.id,
            symbol=p.symbol,
            direction=p.sign,
            confidence=p.confidence,
            signal_ts=p.ts,
            horizon=p.horizon,
            model=p.model,
            source=source,
            received_ms=received_ms,
            decided_ms=self.clock.now_ms(),
            outcome=outcome,
            reason=reason,
            detail=detail,
            client_order_id=cid,
            raw=p.model_dump_json(),
            price=price,
            expires_ms=p.ts + p.horizon_ms,
        )

    def _record_skip(self, p: Prediction, source: str, received_ms: int, reason: str, detail: str = "") -> None:
        if self.store.record_decision(self._decision(p, source, received_ms, Outcome.SKIPPED, reason, detail)):
            self.metrics.decisions.inc(outcome="skipped", reason=reason)
            log.info("signal %s skipped: %s %s", p.id, reason, detail, extra={"signal_id": p.id, "symbol": p.symbol})

    async def on_signal(
        self, p: Prediction, source: str, received_ms: int, perf: float, *, bar_prices: bool = False
    ) -> None:
        """Decide one accepted signal (the kernel's step 3b), persist, then act."""
        assert self.om is not None
        assert self.book is not None
        symbol = p.symbol
        if symbol not in self.instruments:
            self._record_skip(
                p, source, received_ms, Pause.UNKNOWN_SYMBOL.label, f"{symbol} is not traded by this robot"
            )
            return
        try:
            # the loop refreshes prices every iteration; a signal only waits for one when it is very old
            price = await self.price(symbol, max_age_s=None if bar_prices else 5 * self.config.price_max_age_s)
            for stuck in self.om.pending(symbol):  # an earlier order's outcome is unknown: look it up first
                await self.om.refresh(stuck)
        except TemporaryExchangeError as e:
            self._exchange_fault("signal", e)
            self._record_skip(p, source, received_ms, Pause.EXCHANGE_UNAVAILABLE.label, str(e)[:300])
            return
        if self.om.pending(symbol):
            self._record_skip(
                p,
                source,
                received_ms,
                Pause.ORDER_PENDING.label,
                ", ".join(o.client_order_id for o in self.om.pending(symbol)),
            )
            return
        side = self.book.open_side(symbol, price)
        linear = self.config.market == "linear"
        action = decide_action(p.sign, side, self.om.pending_exit(symbol), linear)
        actions: list[tuple[Intent, StoredOrder]] = []
        now = self.clock.now_ms()
        expires = p.ts + p.horizon_ms
        if action.exit:
            cid = self.om.client_id(symbol, p.id, "exit")
            intent = Intent(
                cid,
                IntentKind.EXIT,
                symbol,
                OrderSide.SELL if side > 0 else OrderSide.BUY,
                now,
                reason="signal",
                signal_id=p.id,
                confidence=p.confidence,
                expires_ms=expires,
                reference_price=price,
            )
            stored = self._exit_order(intent, symbol, price)
            if stored is not None:
                actions.append((intent, stored))
        if action.entry_side == 0:
            if actions:
                await self._commit_and_act(p, source, received_ms, Outcome.EXIT, actions, price, perf)
                return
            # nothing to exit after all (no tradable quantity): the signal is what it means with no position
            skip = action.skip or decide_action(p.sign, 0, False, linear).skip
            self._record_skip(p, source, received_ms, skip.label if skip is not None else "")
            return
        entry = self._entry(p, symbol, action.entry_side, price, now, expires, bar_prices)
        if isinstance(entry, str):
            if actions:  # the exit still goes out (a reversal whose entry was denied)
                await self._commit_and_act(p, source, received_ms, Outcome.EXIT, actions, price, perf, note=entry)
            else:
                self._record_skip(p, source, received_ms, entry)
            return
        actions.append(entry)
        await self._commit_and_act(p, source, received_ms, Outcome.ENTRY, actions, price, perf)

    def _entry(
        self, p: Prediction, symbol: str, side: int, price: float, now: int, expires: int, bar_prices: bool
    ) -> tuple[Intent, StoredOrder] | str:
        """The entry for an allowed signal (``decider.decide_entry``), or the label of why it is denied."""
        assert self.om is not None
        assert self.book is not None
        pause = self._pause()
        if pause is not None:  # the decider would refuse: spare the book's numbers
            return pause.label
        cfg = self.config
        prices = self._price_map()
        marks = {**prices, **self._bar_closes} if bar_prices else prices  # the kernel decides at the close
        data = self.history
        symbols = data.symbols if data is not None else self.symbols
        j = symbols.index(symbol)
        atr = 0.0
        if cfg.sizing == "volatility" and data is not None:
            atr = float(daily_volatility_of(data, cfg.timeframe)[data.n_bars - 1, j])
        inputs = EntryInputs(
            price=price,
            equity=self.book.equity(marks),
            free_cash=self.book.free_cash(prices, self.lev),
            close=np.ascontiguousarray(data.close) if data is not None else np.full((1, len(symbols)), price),
            exposure=self._exposure(symbols, marks),
            column=j,
            daily_volatility=atr,
            instrument=self.instruments[symbol],
        )
        plan = decide_entry(self._settings, side, p.confidence, None, self.risk, inputs)
        if not isinstance(plan, EntryPlan):
            return plan.label
        cid = self.om.client_id(symbol, p.id, "entry")
        order_side = OrderSide.BUY if side > 0 else OrderSide.SELL
        intent = Intent(
            cid,
            IntentKind.ENTRY,
            symbol,
            order_side,
            now,
            reason="signal",
            signal_id=p.id,
            fraction=plan.fraction,
            decision_equity=plan.decision_equity,
            reference_price=price,
            confidence=p.confidence,
            expires_ms=expires,
        )
        command = SubmitOrder(cid, symbol, cfg.market, order_side, OrderType.MARKET, Decimal(repr(plan.qty)))
        try:
            command = self.om.fit(command, plan.fill_price)
        except OrderRejected as e:
            return f"{Denial.BELOW_MIN_NOTIONAL.label}: {e}"[:100]
        return intent, self.om.new_order(intent, command)

    def _exposure(self, symbols: Sequence[str], marks: dict[str, float]) -> np.ndarray:
        """Signed exposure per symbol for the correlation check (the kernel's ``exposure_vector_nb``).

        Orders go out at once, so there is no entry decided and not yet sent: only positions count.
        """
        assert self.om is not None
        assert self.book is not None
        n = len(symbols)
        mark = np.array([marks.get(s, 0.0) for s in symbols])
        qty = np.array(
            [
                float(self.book.position(s).qty) if self.book.open_side(s, m) else 0.0
                for s, m in zip(symbols, mark, strict=True)
            ]
        )
        exiting = np.array([self.om.pending_exit(s) for s in symbols], dtype=np.bool_)
        none = np.zeros(n)
        return exposure_vector_nb(qty, mark, exiting, none, none, none, self.lev, np.zeros(n))

    def _exit_order(self, intent: Intent, symbol: str, price: float) -> StoredOrder | None:
        assert self.om is not None
        assert self.book is not None
        qty = self.book.tradable_qty(symbol, price)
        if qty == 0:
            return None
        command = SubmitOrder(
            intent.intent_id,
            symbol,
            self.config.market,
            intent.side,
            OrderType.MARKET,
            qty,
            reduce_only=self.config.market == "linear",
        )
        try:
            command = self.om.fit(command, price)
        except OrderRejected:
            return None
        return self.om.new_order(intent, command)

    async def _commit_and_act(
        self,
        p: Prediction,
        source: str,
        received_ms: int,
        outcome: Outcome,
        actions: list[tuple[Intent, StoredOrder]],
        price: float,
        perf: float,
        note: str = "",
    ) -> None:
        assert self.om is not None
        main = actions[-1][1].client_order_id
        decision = self._decision(p, source, received_ms, outcome, "signal", note, main, price)
        # an entry goes out right after this transaction: store it SUBMITTED already (one write less before
        # the send); an exit stays INITIALIZED because the stop is cancelled first and its size may change
        actions = [
            (i, dataclasses.replace(o, order=o.order.apply(OrderSubmitted(o.client_order_id, decision.decided_ms))))
            if i.kind is IntentKind.ENTRY
            else (i, o)
            for i, o in actions
        ]
        if not self.store.record_decision(decision, [(i, o.order) for i, o in actions]):
            self.metrics.decisions.inc(outcome="ignored", reason="duplicate")
            return
        self.metrics.decisions.inc(outcome=str(outcome), reason="signal")
        for intent, stored in actions:
            self.om.track(intent, stored)
        for intent, stored in actions:
            if intent.kind is IntentKind.EXIT:
                await self.om.run_exit(stored, price, perf)
            else:
                await self.om.run_entry(stored, price, perf)

    # ------------------------------------------------------------------------------------ helpers

    def _exchange_fault(self, where: str, e: Exception) -> None:
        self.metrics.exchange_errors.inc(kind=type(e).__name__)
        log.warning("exchange problem during %s: %s", where, e)
        self.store.record_event(RobotEvent(self.clock.now_ms(), "fault", f"{where}: {type(e).__name__}: {e}"[:1000]))

    def _heartbeat(self, force: bool = False) -> None:
        wall = time.monotonic()
        if not force and wall - self._last_heartbeat < self.config.heartbeat_interval_s:
            return
        self._last_heartbeat = wall
        now = self.clock.now_ms()
        detail = self.blocked_reason or (self.kill_switch.why() if self.kill_switch.engaged else "")
        self.store.heartbeat(
            Heartbeat(self.name, now, time.time_ns() // 1_000_000, os.getpid(), self.config.mode, self.status, detail)
        )
        self.metrics.heartbeat.set(now)


def _append(have: Candles, new: Candles, keep: int) -> Candles:
    """``have`` followed by the bars of ``new`` after its last one, the newest ``keep`` bars."""
    if not len(new):
        return have
    new = new.take(np.flatnonzero(new.ts > have.ts[-1]))
    merged = Candles(*(np.concatenate([getattr(have, c), getattr(new, c)]) for c in COLUMNS))
    return merged.take(np.arange(max(0, len(merged) - keep), len(merged)))


__all__ = ["ReconcileError", "Robot", "RobotConfig", "in_trading_hours", "parse_trading_hours"]
