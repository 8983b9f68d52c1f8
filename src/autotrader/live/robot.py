"""The trading robot's loop: signals in, one risk decision path, orders out — on an asyncio loop.

    robot = Robot(config, exchange, store, clock, signals=kafka_source)   # everything injected
    await robot.start()          # loads the store, reconciles with the exchange (refuses on mismatch)
    await robot.run(stop_event)  # until stopped

Each loop iteration: refresh the clock and prices; on a newly closed bar (``live.bar_close``), mark
equity and update the risk state exactly as the backtest kernel does (``live.marking``), protect
positions and — with a strategy — decide on the bar's signals; check the robot-side exits the venue
refused to hold (``live.robot_exits``); then take the signals the source delivered and decide each
(``live.signal_intake``, with the pure ``live.decider`` and ``live.intents``), persisting the
decision before acting and committing the source's offsets. Prices and bars: ``live.market_view``.

The robot owns its state (``live.robot_state.RobotState``: settings, ports, and the book, order
manager and risk state that ``start`` fills in place) and these collaborators, which read that
state and get what they ask of the robot as callables (they never hold the robot); it keeps the
lifecycle: start, stop, run, step, reconcile and the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Generic, TypeVar

from autotrader.domain.aligned import AlignedCandles
from autotrader.domain.errors import ConfigError, StorageError, StoreUnavailable, TemporaryExchangeError
from autotrader.domain.instrument import Instrument
from autotrader.execution.ports import ExchangePort
from autotrader.live.bar_close import BarClose
from autotrader.live.decider import Pause, Settings
from autotrader.live.market_view import MarketView, Price
from autotrader.live.marking import Marking
from autotrader.live.metrics import RobotMetrics
from autotrader.live.order_manager import OrderManager
from autotrader.live.portfolio import Book
from autotrader.live.ports import Clock, StateStore
from autotrader.live.reconcile import ReconcileError, Reconciler
from autotrader.live.records import ClosedTrade, Heartbeat, Ledger, ReconcileSummary, RobotEvent
from autotrader.live.risk_state import KillSwitch, RiskState, RiskTransition
from autotrader.live.robot_config import RobotConfig, check_exit_settings, in_trading_hours, parse_trading_hours
from autotrader.live.robot_exits import RobotExits
from autotrader.live.robot_state import RobotState
from autotrader.live.signal_intake import SignalIntake
from autotrader.risk.limits import RiskLimits
from autotrader.risk.rules import HALTED, SIZING_FIXED, SIZING_KELLY, SIZING_VOLATILITY, Denial
from autotrader.signals.intake import Delivery, SignalSource
from autotrader.strategy.base import Strategy

log = logging.getLogger(__name__)

_SIZING = {"fixed": SIZING_FIXED, "kelly": SIZING_KELLY, "volatility": SIZING_VOLATILITY}

T = TypeVar("T")


class _InState(Generic[T]):
    """A robot attribute kept in its ``RobotState``: read and written there, so every part sees it."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, robot: Robot | None, owner: type | None = None) -> T:
        if robot is None:
            return self  # type: ignore[return-value]  # the class's attribute: the descriptor itself
        value: T = getattr(robot.state, self.name)
        return value

    def __set__(self, robot: Robot, value: T) -> None:
        setattr(robot.state, self.name, value)


class Robot:
    """One trading robot. See the module docstring."""

    # kept in ``self.state``, which its parts share: read and written there
    config: _InState[RobotConfig] = _InState()
    limits: _InState[RiskLimits] = _InState()
    settings: _InState[Settings] = _InState()
    lev: _InState[float] = _InState()
    store: _InState[StateStore] = _InState()
    clock: _InState[Clock] = _InState()
    metrics: _InState[RobotMetrics] = _InState()
    kill_switch: _InState[KillSwitch] = _InState()
    market_view: _InState[MarketView] = _InState()
    signals: _InState[SignalSource | None] = _InState()
    strategy: _InState[Strategy | None] = _InState()
    instruments: _InState[dict[str, Instrument]] = _InState()
    book: _InState[Book | None] = _InState()
    om: _InState[OrderManager | None] = _InState()
    risk: _InState[RiskState] = _InState()
    last_bar_ts: _InState[int] = _InState()

    def __init__(
        self,
        config: RobotConfig,
        exchange: ExchangePort,
        store: StateStore,
        clock: Clock,
        *,
        signals: SignalSource | None = None,  # the deliveries to decide (``None``: a strategy's signals only)
        strategy: Strategy | None = None,  # its signals are decided at every bar close
        kill_switch: KillSwitch | None = None,  # default: one in memory only (no file), released
        metrics: RobotMetrics | None = None,
        robot_name: str | None = None,  # default: the config's tag
    ) -> None:
        limits = config.limits()
        lev = config.leverage if config.market == "linear" else 1.0
        self.state = RobotState(
            config=config,
            limits=limits,
            settings=Settings(
                limits,
                config.market == "linear",
                lev,
                config.fee_rate,
                config.slippage_bps / 10_000.0,
                _SIZING[config.sizing],
            ),
            lev=lev,
            store=store,
            clock=clock,
            metrics=metrics or RobotMetrics(),
            kill_switch=kill_switch or KillSwitch(),
            market_view=MarketView(config, exchange, clock),
            risk=RiskState(limits, config.capital),
            signals=signals,
            strategy=strategy,
        )
        self.exchange = exchange
        self.name = robot_name or config.tag
        self.hours = parse_trading_hours(config.trading_hours)
        self.blocked_reason: str | None = None  # reconciliation failed during the run
        self.status = "starting"
        self.started = False
        self._last_heartbeat = 0.0
        self._last_reconcile = 0.0
        self._store_down_since: dict[str, float] = {}  # work -> when its store faults began (monotonic)
        self._bar_retry_at = 0.0  # a bar close the store failed is redone from this monotonic time on
        self.reconciler: Reconciler | None = None
        self.marking = Marking(limits, config.symbols, store, clock, self.metrics, self.kill_switch)
        self.exits = RobotExits(self.state, self.exchange_fault)
        self.intake = SignalIntake(self.state, self.exits, self.pause, self.exchange_fault, self.store_fault)
        self.bar_close = BarClose(self.state, self.mark, self.exits, self.intake, self.exchange_fault)

    # --------------------------------------------------------------------------------- lifecycle

    @property
    def symbols(self) -> tuple[str, ...]:
        """The symbols the robot trades (``RobotConfig.symbols``)."""
        return self.state.symbols

    @property
    def tf_ms(self) -> int:
        """The bar length in milliseconds."""
        return self.state.tf_ms

    @property
    def prices(self) -> dict[str, Price]:
        """The last price of each symbol (``MarketView.prices``)."""
        return self.market_view.prices

    @property
    def history(self) -> AlignedCandles | None:
        """The closed bars of every symbol (``MarketView.history``)."""
        return self.market_view.history

    @history.setter
    def history(self, value: AlignedCandles | None) -> None:
        self.market_view.history = value

    async def start(self) -> ReconcileSummary:
        """Load the store, reconcile with the exchange and mark equity. ``ReconcileError`` refuses to trade."""
        cfg = self.config
        instruments = await self.exchange.instruments(cfg.market, list(cfg.symbols))
        missing = [s for s in cfg.symbols if s not in instruments]
        if missing:
            raise ConfigError(f"{', '.join(missing)} not listed on {self.exchange.venue} {cfg.market}")
        state = self.state  # filled in place: the parts hold it
        state.instruments = {s: instruments[s] for s in cfg.symbols}
        check_exit_settings(cfg.market, self.limits)
        now = self.clock.now_ms()
        self._check_settings(now)
        ledger = self.store.load_ledger()
        if ledger is None:
            ledger = Ledger(Decimal(repr(cfg.capital)), Decimal(repr(cfg.capital)), updated_ms=now)
            self.store.save_ledger(ledger)
        state.book = Book(cfg.market, ledger, self.store.load_positions(), state.instruments)
        state.risk = RiskState(self.limits, float(ledger.capital), self.store.load_risk())
        state.risk.load_trades(self.store.load_trades())
        state.om = OrderManager(
            self.exchange,
            self.store,
            state.book,
            self.clock,
            market=cfg.market,
            tag=cfg.tag,
            instruments=state.instruments,
            stop_loss=self.limits.stop_loss,
            take_profit=self.limits.take_profit,
            trailing_stop=self.limits.trailing_stop,
            metrics=self.metrics,
            on_trade=self._on_trade,
        )
        state.om.load()
        await self.clock.refresh()
        await self.market_view.refresh_prices(force=True)
        first = self.store.get_meta("first_start_ms") or self.clock.now_ms()
        self.reconciler = Reconciler(
            state.om,
            cfg.symbols,
            prices=self.market_view.price_map,
            entry_block=self.entry_block,
            first_start_ms=int(first),
        )
        summary = await self.reconciler.run(strict=True)
        self._last_reconcile = time.monotonic()
        await self.market_view.load_history()
        if self.history is not None:
            # with a strategy, the first step decides on the latest closed bar (a restart finds it seen)
            state.last_bar_ts = int(self.history.ts[-1]) - (self.tf_ms if self.strategy is not None else 0)
        self.mark(self.market_view.price_map(), self.clock.now_ms())
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
            self.exchange_fault("clock", e)
        now = self.clock.now_ms()
        closed_bar = (now // self.tf_ms) * self.tf_ms - self.tf_ms
        if closed_bar > self.last_bar_ts and time.monotonic() >= self._bar_retry_at:
            previous_bar = self.last_bar_ts
            try:
                await self.bar_close.on_bar_close(closed_bar)
            except TemporaryExchangeError as e:
                self.exchange_fault("bar", e)
            except StoreUnavailable as e:  # resting stops stay at the venue; the bar is done again shortly
                self.last_bar_ts = previous_bar  # its work is idempotent: seen signals, per-bar ratchet
                self._bar_retry_at = time.monotonic() + self._store_retry_s
                self.store_fault("bar close", e)
            else:
                self._store_worked("bar close")
        handled = 0 if self.signals is None else await self._take_signals(self.signals)
        try:
            await self.exits.check_robot_exits()
        except TemporaryExchangeError as e:
            self.exchange_fault("robot-side stop", e)
        except StoreUnavailable as e:
            self.store_fault("robot-side stop", e)
        if time.monotonic() - self._last_reconcile >= self.config.reconcile_interval_s:
            await self.reconcile()
        try:
            self._heartbeat()
        except StoreUnavailable as e:
            self.store_fault("heartbeat", e)
        self.metrics.kill_switch.set(1.0 if self.kill_switch.engaged else 0.0)
        return handled

    async def _take_signals(self, signals: SignalSource) -> int:
        """Poll the source and decide what it delivered; returns how many deliveries it gave."""
        try:  # keep prices fresh here, off the signal's path
            await self.market_view.refresh_prices()
        except TemporaryExchangeError as e:
            self.exchange_fault("prices", e)
        try:
            deliveries = await asyncio.to_thread(signals.poll, self.config.poll_interval_s, self.config.signal_batch)
        except StoreUnavailable as e:  # ``seen`` failed: the source gives the batch back
            self.store_fault("signal poll", e)
            await asyncio.sleep(self.config.poll_interval_s)
            return 0
        if deliveries:
            decided = await self.intake.handle(deliveries)
            if decided < len(deliveries):  # the store failed on one: the rest come again, not at once
                await asyncio.sleep(self._store_retry_s)
            else:
                self._store_worked("signal")
        return len(deliveries)

    async def reconcile(self) -> ReconcileSummary | None:
        assert self.reconciler is not None
        self._last_reconcile = time.monotonic()
        await self.market_view.refresh_prices(force=True)
        try:
            summary = await self.reconciler.run(strict=False)
        except TemporaryExchangeError as e:
            self.exchange_fault("reconcile", e)
            return None
        except StoreUnavailable as e:
            self.store_fault("reconcile", e)
            return None
        if summary.ok:
            if self.blocked_reason is not None:
                log.warning("reconciliation passes again: entries resume")
            self.blocked_reason = None
        else:
            self.blocked_reason = "reconciliation failed: " + "; ".join(summary.problems)
            log.error("%s; entries paused until it passes", self.blocked_reason)
        return summary

    # ------------------------------------------------------------------------------ collaborators

    async def price(self, symbol: str, max_age_s: float | None = None) -> float:
        """The symbol's last price; refreshed first when older than ``max_age_s`` (``MarketView.price``)."""
        return await self.market_view.price(symbol, max_age_s)

    def mark(self, prices: dict[str, float], as_of_ms: int) -> list[RiskTransition]:
        """Mark the book at ``prices`` into the risk state and record it (``Marking.mark``)."""
        assert self.book is not None
        return self.marking.mark(self.book, self.risk, self.history, prices, as_of_ms)

    async def on_bar_close(self, bar_ts: int) -> None:
        """The bar opened at ``bar_ts`` closed (``BarClose.on_bar_close``)."""
        await self.bar_close.on_bar_close(bar_ts)

    async def handle(self, deliveries: Sequence[Delivery]) -> None:
        """Decide every delivery, then commit them to the source (``SignalIntake.handle``)."""
        await self.intake.handle(deliveries)

    async def flatten(self, reason: str) -> int:
        """Exit every open position (``RobotExits.flatten``); returns how many exits were sent."""
        return await self.exits.flatten(reason)

    async def check_robot_exits(self) -> int:
        """Exit at market where a robot-held stop or target is hit (``RobotExits.check_robot_exits``)."""
        return await self.exits.check_robot_exits()

    # ------------------------------------------------------------------------------------- risk

    def entry_block(self) -> str | None:
        """Why entries are paused right now (``None``: they are not), as the decisions' label."""
        pause = self.pause()
        if pause is not None:
            return pause.label
        if self.risk.state != 0:
            return (Denial.HALTED_DRAWDOWN if self.risk.state == HALTED else Denial.DAILY_LOSS).label
        return None

    def pause(self) -> Pause | None:
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

    # ------------------------------------------------------------------------------------ helpers

    def exchange_fault(self, where: str, e: Exception) -> None:
        """Count, log and record a passing exchange problem met during ``where`` (the loop goes on)."""
        self.metrics.exchange_errors.inc(kind=type(e).__name__)
        log.warning("exchange problem during %s: %s", where, e)
        self._record_fault(where, e)

    def store_fault(self, where: str, e: Exception) -> None:
        """Count and log a failed state store transaction met during ``where`` (the loop goes on).

        Nothing of that transaction was kept, and nothing that needed it was sent. The fault is
        recorded too when the store takes it (a lock on one table, a replaced connection).
        """
        self.metrics.store_errors.inc(where=where)
        log.error("state store problem during %s: %s", where, e)
        now = time.monotonic()
        since = self._store_down_since.setdefault(_work_of(where), now)
        if now - since > self.config.store_outage_limit_s:
            raise StorageError(
                f"the state store has failed for {now - since:.0f} s "
                f"(store_outage_limit_s {self.config.store_outage_limit_s:g}); last, during {where}: {e}"
            ) from None
        # a stop or target the failed transaction could not place is placed by the next reconcile: soon
        self._last_reconcile = min(self._last_reconcile, now - self.config.reconcile_interval_s + self._store_retry_s)
        self._record_fault(where, e)

    @property
    def _store_retry_s(self) -> float:
        """How long the loop waits before it redoes work the store failed (bounded below: no busy loop)."""
        return max(1.0, self.config.poll_interval_s)

    def _store_worked(self, work: str) -> None:
        """``work``'s store transactions went through: its outage, if any, is over (each kind of work is
        timed on its own, so bar closes that keep failing stop the robot even while heartbeats get through)."""
        self._store_down_since.pop(work, None)

    def _record_fault(self, where: str, e: Exception) -> None:
        try:
            self.store.record_event(
                RobotEvent(self.clock.now_ms(), "fault", f"{where}: {type(e).__name__}: {e}"[:1000])
            )
        except StoreUnavailable as again:  # the store is down: the log line is the record
            log.debug("could not record the fault during %s: %s", where, again)

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
        self._store_worked("heartbeat")
        self.metrics.heartbeat.set(now)


__all__ = ["ReconcileError", "Robot", "RobotConfig", "in_trading_hours", "parse_trading_hours"]


def _work_of(where: str) -> str:
    """The kind of work a store fault's ``where`` names (``signal at <position>`` -> ``signal``)."""
    return where.split(" at ", 1)[0]
