"""``--mode=status``: the robot's state and results, read from the state store only.

Two blocks, as in the seed README:

* **RISK MANAGEMENT** — positions, exposure, today's P&L, drawdown, the risk state and every
  limit's usage against its limit; whether the robot is alive (its heartbeat) or not.
* **LIVE TRADING RESULTS** (over ``--days``) — realised P&L, signal accuracy against the accuracy
  the backtest of the same strategy expected, best and worst trade, Sharpe, and the difference
  between the live P&L and the backtest's on the same signals, split into its parts:

  - *signals not traded*: P&L of backtest trades whose signal the robot skipped, denied or never
    received (by reason);
  - *trades the backtest did not take*: P&L of live trades without a backtest counterpart;
  - for trades both took: *fill prices* (slippage and timing), *fees*, *size* (different
    quantity) and a *residual* (exit path, rounding).

Everything here is pure: the backtest comparison is computed by the caller and passed in. The blocks are
rendered as text by ``autotrader.cli.status``.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autotrader.analytics.comparison import BacktestComparison
from autotrader.domain.candles import format_ms
from autotrader.live import exits
from autotrader.live.order_manager import ROBOT_STOPS_META, ROBOT_TARGETS_META, TARGETS_META, TRAILING_META
from autotrader.live.ports import StateStore
from autotrader.live.records import ClosedTrade, Decision, Heartbeat, IntentKind, Outcome, PositionState
from autotrader.live.risk_state import LimitUsage, RiskState
from autotrader.risk.limits import RiskLimits
from autotrader.risk.rules import EngineState

DAY_MS = 86_400_000
STALE_HEARTBEAT_MS = 30_000


@dataclass
class LiveVsBacktest:
    live_pnl: float = 0.0
    backtest_pnl: float = 0.0
    matched: int = 0
    fill_prices: float = 0.0
    fees: float = 0.0
    size: float = 0.0
    residual: float = 0.0
    not_traded: float = 0.0
    not_traded_by_reason: dict[str, tuple[int, float]] = field(default_factory=dict)
    live_only: float = 0.0
    live_only_count: int = 0

    @property
    def difference(self) -> float:
        return self.live_pnl - self.backtest_pnl


# ------------------------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class ExitLevels:
    """Where an open position exits: its stop and take-profit, where each lives, and how far the price is.

    ``stop``: the robot-side stop (the exchange refused it) or the one resting on the exchange (a
    stop order the exchange refused or cancelled protects nothing); ``stop_where``: ``"robot-side"``,
    ``"exchange"`` or ``None`` (no stop protects it); ``stop_kind``: ``"trailing"`` once the trailing
    stop is tighter than the initial stop-loss, else ``"initial"``. ``take_profit``/``take_profit_where``
    likewise (the resting target order's level, or the robot-side target). The distances are
    fractions of the price left before the level is reached (negative: already passed).
    """

    stop: float | None = None
    stop_where: str | None = None
    stop_kind: str | None = None
    stop_distance: float | None = None
    take_profit: float | None = None
    take_profit_where: str | None = None
    take_profit_distance: float | None = None


@dataclass(frozen=True, kw_only=True)
class OpenPosition(ExitLevels):
    """An open position marked at its latest price, with its exits."""

    symbol: str
    qty: float  # signed: negative for a short
    entry_price: float
    price: float
    value: float  # |qty| x price
    unrealised: float
    since: int  # entry time (ms)


@dataclass(frozen=True)
class RiskManagement:
    """The RISK MANAGEMENT block (rendered by ``autotrader.cli.status.render_risk`` and the dashboard).

    ``today_pnl``, ``drawdown`` and ``peak_equity`` are ``None`` before the robot saved a risk
    state; ``usage`` is empty and ``min_confidence`` ``None`` without saved limits.
    """

    robot: str | None
    alive: bool
    heartbeat: Heartbeat | None
    mode: str | None
    capital: float | None
    cash: float | None
    equity: float
    positions: tuple[OpenPosition, ...]
    exposure: float
    state: str
    halted_reason: str
    kill_switch: bool
    faults: Mapping[str, int]
    usage: tuple[LimitUsage, ...] = ()
    today_pnl: float | None = None
    drawdown: float | None = None
    peak_equity: float | None = None
    min_confidence: float | None = None


def risk_management(store: StateStore, now_wall_ms: int) -> RiskManagement:
    """The RISK MANAGEMENT block, from the state store only."""
    config = store.get_meta("config") or {}
    limits_doc = store.get_meta("limits")
    usage = store.get_meta("risk_usage") or {}
    snapshot = store.load_risk()
    ledger = store.load_ledger()
    beat = store.last_heartbeat()
    prices: dict[str, float] = usage.get("prices") or {}
    limits = RiskLimits.model_validate(limits_doc) if limits_doc is not None else None
    exit_records = ExitRecords.of(store)
    positions = []
    for symbol, pos in sorted(store.load_positions().items()):
        if pos.qty == 0 or pos.entry_qty == 0:
            continue
        price = prices.get(symbol, float(pos.avg_price))
        positions.append(
            OpenPosition(
                symbol=symbol,
                qty=float(pos.qty),
                entry_price=float(pos.entry_value / pos.entry_qty),
                price=price,
                value=abs(float(pos.qty)) * price,
                unrealised=float(pos.qty) * (price - float(pos.avg_price)),
                since=pos.entry_ms,
                **dataclasses.asdict(exit_levels(store, pos, price, limits, exit_records)),
            )
        )
    equity = usage.get("equity", snapshot.last_equity if snapshot else float(ledger.cash) if ledger else 0.0)
    since = (beat.ts_ms if beat else now_wall_ms) - DAY_MS
    faults = Counter(e.detail.split(":", 1)[0] for e in store.events(since, kinds=["fault"]))
    capital = float(ledger.capital) if ledger else config.get("capital")
    block = RiskManagement(
        robot=beat.robot if beat else None,
        alive=bool(beat and beat.status == "running" and now_wall_ms - beat.wall_ms < STALE_HEARTBEAT_MS),
        heartbeat=beat,
        mode=config.get("mode"),
        capital=capital,
        cash=float(ledger.cash) if ledger else None,
        equity=equity,
        positions=tuple(positions),
        exposure=sum(p.value for p in positions),
        state=EngineState(snapshot.state).name if snapshot else "ACTIVE",
        halted_reason=snapshot.halted_reason if snapshot else "",
        kill_switch=bool(snapshot.kill_switch) if snapshot else False,
        faults=dict(faults.most_common()),
    )
    if snapshot is None:
        return block
    block = dataclasses.replace(
        block,
        today_pnl=equity - snapshot.day_start_equity,
        drawdown=max(0.0, 1.0 - equity / snapshot.peak_equity) if snapshot.peak_equity > 0 else 0.0,
        peak_equity=snapshot.peak_equity,
    )
    if limits is None:
        return block
    risk = RiskState(limits, capital or 0.0, snapshot)
    return dataclasses.replace(
        block,
        usage=tuple(current_usage(risk, equity, positions, usage.get("correlation", 0.0))),
        min_confidence=risk.limits.min_confidence,
    )


@dataclass(frozen=True)
class ExitRecords:
    """The robot's saved exit bookkeeping, per symbol: robot-side stops and targets, trailing references
    and resting take-profit orders (``live.order_manager``'s meta records)."""

    robot_stops: Mapping[str, Mapping[str, Any]]
    robot_targets: Mapping[str, Mapping[str, Any]]
    trails: Mapping[str, Mapping[str, Any]]
    targets: Mapping[str, Mapping[str, Any]]

    @classmethod
    def of(cls, store: StateStore) -> ExitRecords:
        """The records as the robot last saved them."""
        return cls(
            *(store.get_meta(key) or {} for key in (ROBOT_STOPS_META, ROBOT_TARGETS_META, TRAILING_META, TARGETS_META))
        )


def position_key(pos: PositionState) -> str:
    """The key the robot files a position's exit records under (its entry order, else its entry time)."""
    return pos.entry_client_order_id or f"pos{pos.entry_ms}"


def exit_levels(
    store: StateStore, pos: PositionState, price: float, limits: RiskLimits | None, records: ExitRecords
) -> ExitLevels:
    """The exits of ``pos`` at ``price`` (see ``ExitLevels``).

    Whether the stop trails follows the robot's own arithmetic (``live.exits``) from the best price
    since the entry. Records of an earlier position in the symbol are ignored.
    """
    key = position_key(pos)
    side = 1 if pos.qty > 0 else -1
    entry = float(pos.entry_value / pos.entry_qty)

    def current(records: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
        record = records.get(pos.symbol)
        return record if record is not None and record.get("entry") == key else None

    robot_stop, robot_target = current(records.robot_stops), current(records.robot_targets)
    stop, stop_where = None, None
    if robot_stop is not None:
        stop, stop_where = float(robot_stop["price"]), "robot-side"
    elif pos.stop_price:
        order = store.load_order(pos.stop_client_order_id) if pos.stop_client_order_id else None
        if order is None:  # no order on record to say otherwise: the stop the position notes
            stop, stop_where = float(pos.stop_price), "exchange"
        elif order.order.is_open:  # resting (or sent, its answer not known yet) at its trigger price
            stop, stop_where = float(order.order.trigger_price or pos.stop_price), "exchange"
    stop_kind = None
    if stop is not None:
        stop_kind = "initial"
        if limits is not None and limits.trailing_stop:
            trail = current(records.trails)
            ref = float(str(trail["ref"])) if trail is not None else entry
            initial = exits.initial_stop(entry, side, limits.stop_loss, 0.0)
            trailing = exits.stop_level(initial, ref, side, limits.trailing_stop, 0.0)
            if exits.stop_reason(trailing, initial) == exits.TRAILING_STOP:
                stop_kind = "trailing"
    target, target_where = None, None
    if robot_target is not None:
        target, target_where = float(robot_target["price"]), "robot-side"
    else:
        resting = current(records.targets)
        order = store.load_order(str(resting["cid"])) if resting is not None else None
        level = None if order is None or not order.order.is_open else order.order.trigger_price or order.order.price
        if level is not None:  # a conditional order triggers at its trigger price, a limit order rests at its price
            target, target_where = float(level), "exchange"
    return ExitLevels(
        stop=stop,
        stop_where=stop_where,
        stop_kind=stop_kind,
        stop_distance=_distance(price, stop, -side),
        take_profit=target,
        take_profit_where=target_where,
        take_profit_distance=_distance(price, target, side),
    )


def _distance(price: float, level: float | None, direction: int) -> float | None:
    """How far ``price`` must move towards ``direction`` (+1 up, -1 down) to reach ``level``, as a fraction."""
    if level is None or price <= 0:
        return None
    return direction * (level - price) / price


def current_usage(
    risk: RiskState, equity: float, positions: Sequence[OpenPosition], correlation: float
) -> list[LimitUsage]:
    """Every limit against the CURRENT state: the open positions marked at their latest prices.

    No open position means 0 % position size, exposure and leverage, and no correlation; the
    stop-loss rows give each open position's distance from its price to its stop (against the
    configured stop distance), or one row saying there is no position to protect.
    """
    values = [p.value for p in positions]
    gross = sum(values) / equity if equity > 0 else 0.0
    biggest = max(values, default=0.0) / equity if equity > 0 else 0.0
    rows = risk.usage(equity, biggest, gross, correlation if len(values) >= 2 else 0.0, gross)
    stop_limit = risk.limits.stop_loss
    stop_rows = [
        LimitUsage(
            f"stop-loss distance {p.symbol}",
            100 * abs(p.price - p.stop) / p.price,
            100 * stop_limit,
            "%",
            "price to stop",
        )
        for p in positions
        if stop_limit is not None and p.stop is not None and p.price > 0
    ]
    if stop_limit is not None and not stop_rows:
        stop_rows = [LimitUsage("stop-loss distance", 0.0, 100 * stop_limit, "%", "no open position")]
    return [r for r in rows if r.name != "stop-loss distance"] + stop_rows


def live_results(
    store: StateStore, since_ms: int, until_ms: int, backtest: BacktestComparison | None = None
) -> dict[str, Any]:
    """The LIVE TRADING RESULTS block as a dict (rendered by ``autotrader.cli.status.render_results``)."""
    from autotrader.analytics.metrics import daily_equity, daily_returns, sharpe_ratio

    trades = [t for t in store.load_trades(since_ms) if t.exit_ms <= until_ms]
    decisions = [d for d in store.decisions(since_ms) if d.decided_ms <= until_ms]
    letters = store.dead_letters(since_ms)
    pnl = [float(t.pnl) for t in trades]
    scored = [d.correct for d in decisions if d.outcome is Outcome.ENTRY and d.correct is not None]
    series = [e for e in store.equity_series(since_ms) if e.ts_ms <= until_ms]
    sharpe = math.nan
    if len(series) >= 2:
        ts = np.array([e.ts_ms for e in series], dtype=np.int64)
        _, day_eq = daily_equity(ts, np.array([e.equity for e in series]))
        sharpe = sharpe_ratio(daily_returns(day_eq))
    skipped = Counter(d.reason for d in decisions if d.outcome is Outcome.SKIPPED)
    out: dict[str, Any] = {
        "since_ms": since_ms,
        "until_ms": until_ms,
        "signals": len(decisions) + len(letters),
        "entries": sum(1 for d in decisions if d.outcome is Outcome.ENTRY),
        "exits": sum(1 for d in decisions if d.outcome is Outcome.EXIT),
        "skipped": dict(skipped.most_common()),
        "dead_lettered": dict(Counter(letter.reason for letter in letters)),
        "trades": len(trades),
        "realised_pnl": sum(pnl),
        "fees": sum(float(t.fees) for t in trades),
        "win_rate": (sum(1 for x in pnl if x > 0) / len(pnl)) if pnl else math.nan,
        "best": max(trades, key=lambda t: t.pnl) if trades else None,
        "worst": min(trades, key=lambda t: t.pnl) if trades else None,
        "sharpe": sharpe,
        "accuracy": (sum(scored) / len(scored)) if scored else math.nan,
        "accuracy_evaluated": len(scored),
        "slippage_bps": _slippage_bps(store, since_ms),
        "backtest": backtest,
        "comparison": compare(trades, decisions, backtest) if backtest is not None and not backtest.note else None,
    }
    return out


def _slippage_bps(store: StateStore, since_ms: int) -> float:
    """Average cost of fills against the price the decision saw (entries/exits) or the stop trigger, in bps."""
    orders = {o.client_order_id: o for o in store.load_orders(open_only=False)}
    intents = {i.intent_id: i for i in store.load_intents(open_only=False)}
    costs = []
    weights = []
    for stored_fill in store.load_fills(since_ms):
        fill = stored_fill.fill
        stored = orders.get(fill.client_order_id)
        if stored is None:
            continue
        ref = 0.0
        if stored.kind is IntentKind.STOP and stored.order.trigger_price is not None:
            ref = float(stored.order.trigger_price)
        elif (intent := intents.get(stored.intent_id)) is not None:
            ref = intent.reference_price
        if ref <= 0:
            continue
        sign = fill.side.sign
        costs.append(sign * (float(fill.price) - ref) / ref * 10_000 * float(fill.notional))
        weights.append(float(fill.notional))
    return sum(costs) / sum(weights) if weights else math.nan


def compare(
    trades: Sequence[ClosedTrade], decisions: Sequence[Decision], backtest: BacktestComparison
) -> LiveVsBacktest:
    """Split live P&L minus backtest P&L into its parts (see the module docstring)."""
    out = LiveVsBacktest()
    live_by_signal = {t.signal_id: t for t in trades if t.signal_id}
    decided = {d.signal_id: d for d in decisions}
    out.live_pnl = sum(float(t.pnl) for t in trades)
    out.backtest_pnl = sum(b.pnl for b in backtest.trades)
    matched_live: set[str] = set()
    reasons: dict[str, list[float]] = {}
    for b in backtest.trades:
        live = live_by_signal.get(b.signal_id)
        if live is None:
            d = decided.get(b.signal_id)
            if d is None:
                why = "never received"
            elif d.outcome is Outcome.SKIPPED:
                why = d.reason or "skipped"
            else:
                why = "traded, not closed in the window"
            reasons.setdefault(why, []).append(b.pnl)
            out.not_traded -= b.pnl
            continue
        matched_live.add(b.signal_id)
        out.matched += 1
        q = float(live.qty)
        side = live.side
        fill = q * side * ((float(live.exit_price) - b.exit_price) - (float(live.entry_price) - b.entry_price))
        scale = q / b.qty if b.qty else 0.0
        fees = -(float(live.fees) - b.fees * scale)
        size = (scale - 1.0) * b.pnl
        diff = float(live.pnl) - b.pnl
        out.fill_prices += fill
        out.fees += fees
        out.size += size
        out.residual += diff - fill - fees - size
    for t in trades:
        if not t.signal_id or t.signal_id not in matched_live:
            out.live_only += float(t.pnl)
            out.live_only_count += 1
    out.not_traded_by_reason = {k: (len(v), -sum(v)) for k, v in sorted(reasons.items())}
    return out


def since_days(now_ms: int, days: int) -> int:
    return now_ms - days * DAY_MS


def results_window(until_ms: int, days: int, first_start_ms: int | None) -> tuple[int, str]:
    """The LIVE TRADING RESULTS window: the last ``days`` days, but never before the robot first started.

    Returns ``(since_ms, label)``; the label says which bound applied, so every figure states its window.
    """
    since = since_days(until_ms, days)
    if first_start_ms is not None and first_start_ms > since:
        return first_start_ms, f"since the robot's first start, {format_ms(first_start_ms)[:16]}"
    return since, f"last {days} days"
