"""Text of ``autotrader autotrade --mode=status``: the RISK MANAGEMENT and LIVE TRADING RESULTS blocks.

The blocks' figures are gathered from the state store by ``autotrader.live.status``
(``risk_management`` and ``live_results``); this module only turns them into lines of text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autotrader.domain.candles import format_ms

if TYPE_CHECKING:
    from autotrader.analytics.comparison import BacktestComparison
    from autotrader.live.status import ExitLevels, LiveVsBacktest, RiskManagement


def _usd(v: float | None, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:+,.2f} USDT" if sign else f"{v:,.2f} USDT"


def _pct(v: float | None, digits: int = 2) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return f"{100 * v:.{digits}f}%"


def render_risk(block: RiskManagement) -> str:
    """The RISK MANAGEMENT block (``live.status.risk_management``) as lines of text."""
    lines = ["🛡️  RISK MANAGEMENT"]
    beat = block.heartbeat
    if beat is None:
        lines.append("Robot: never started with this store")
    else:
        alive = "running" if block.alive else f"not running (last seen {format_ms(beat.wall_ms)} UTC, {beat.status})"
        lines.append(
            f"Robot: {beat.robot} ({block.mode}, pid {beat.pid}) {alive}; market time {format_ms(beat.ts_ms)} UTC"
        )
    state = block.state
    if block.halted_reason and state == "HALTED":
        state += f" ({block.halted_reason})"
    if block.kill_switch:
        state += "; kill switch ENGAGED: entries paused"
    lines.append(f"Risk state: {state}")
    if block.faults:
        kinds = ", ".join(f"{k} {v}" for k, v in block.faults.items())
        lines.append(f"Exchange faults (last 24 h): {sum(block.faults.values())} ({kinds})")
    lines.append(f"Equity: {_usd(block.equity)} (capital {_usd(block.capital)}, cash {_usd(block.cash)})")
    lines.append(
        f"Today's P&L: {_usd(block.today_pnl, sign=True)}   Drawdown: {_pct(block.drawdown)} "
        f"from the peak {_usd(block.peak_equity)}"
    )
    if block.positions:
        lines.append(f"Positions ({len(block.positions)}), exposure {_usd(block.exposure)}:")
        for p in block.positions:
            lines.append(
                f"  {p.symbol}: {p.qty:.8g} @ {p.entry_price:,.4f} now {p.price:,.4f} ({_usd(p.unrealised, sign=True)})"
            )
            lines.append(f"    {render_exits(p)}")
    else:
        lines.append("Positions: none")
    if block.usage:
        lines.append("Limits (used / limit):")
        for u in block.usage:
            bar = _bar(u.ratio)
            note = f"  {u.note}" if u.note else ""
            lines.append(f"  {u.name:<20} {u.used:8.2f} / {u.limit:<8.2f} {u.unit:<12} {bar}{note}")
        if block.min_confidence is not None:
            lines.append(f"  {'min confidence':<20} {block.min_confidence:.2f} (signals below it are skipped)")
    return "\n".join(lines)


def _num(v: float, unit: str = "") -> str:
    return "n/a" if v is None or math.isnan(v) else f"{v:.2f}{unit}"


def render_exits(p: ExitLevels) -> str:
    """A position's stop and take-profit: level, kind, where it lives and how far the price is from it."""
    if p.stop is None:
        stop = "NO STOP"
    else:
        kind = "trailing stop" if p.stop_kind == "trailing" else "stop-loss"
        where = {"robot-side": "robot-side (the exchange refused it)", "exchange": "on the exchange"}
        stop = f"{kind} {p.stop:,.4f} {where.get(p.stop_where or '', '')}, {_away(p.stop_distance)}"
    if p.take_profit is None:
        target = "no take-profit"
    else:
        where_tp = "robot-side (the exchange refused it)" if p.take_profit_where == "robot-side" else "resting"
        target = f"take-profit {p.take_profit:,.4f} {where_tp}, {_away(p.take_profit_distance)}"
    return f"{stop}; {target}"


def _away(distance: float | None) -> str:
    if distance is None:
        return "distance n/a"
    return f"{_pct(distance)} away" if distance >= 0 else f"passed by {_pct(-distance)}"


def _bar(ratio: float, width: int = 10) -> str:
    if not math.isfinite(ratio):
        return ""
    filled = max(0, min(width, round(ratio * width)))
    return "[" + "#" * filled + "." * (width - filled) + f"] {100 * ratio:.0f}%"


def render_results(block: Mapping[str, Any], days: int) -> str:
    """The LIVE TRADING RESULTS block (``live.status.live_results``) over ``days`` as lines of text."""
    window = block.get("window") or f"last {days} days"
    lines = [
        f"📈 LIVE TRADING RESULTS ({window}: {format_ms(block['since_ms'])[:10]} → {format_ms(block['until_ms'])[:10]})"
    ]
    skipped = ", ".join(f"{k} {v}" for k, v in block["skipped"].items()) or "none"
    dead = ", ".join(f"{k} {v}" for k, v in block["dead_lettered"].items()) or "none"
    lines.append(
        f"Signals: {block['signals']} (entries {block['entries']}, exits {block['exits']}; skipped: {skipped}; "
        f"dead-lettered: {dead})"
    )
    lines.append(
        f"Realised P&L: {_usd(block['realised_pnl'], sign=True)} over {block['trades']} trades "
        f"(win rate {_pct(block['win_rate'], 1)}, fees {_usd(block['fees'])})   Sharpe: {_num(block['sharpe'])}"
    )
    for label in ("best", "worst"):
        t = block[label]
        if t is not None:
            lines.append(
                f"{label.capitalize()} trade: {t.symbol} {_usd(float(t.pnl), sign=True)} "
                f"({format_ms(t.entry_ms)} → {format_ms(t.exit_ms)}, {t.exit_reason})"
            )
    bt: BacktestComparison | None = block["backtest"]
    expected = "n/a"
    if bt is not None and bt.accuracy is not None and not math.isnan(bt.accuracy):
        expected = f"{_pct(bt.accuracy, 1)} ({bt.strategy} backtest, {bt.evaluated} signals)"
    elif bt is not None and (bt.note or bt.accuracy_note):
        expected = f"n/a ({bt.note or bt.accuracy_note})"
    lines.append(
        f"Signal accuracy: {_pct(block['accuracy'], 1)} of {block['accuracy_evaluated']} traded signals "
        f"(backtest expected {expected})"
    )
    slip = block["slippage_bps"]
    assumed = f"; the backtest assumes {bt.slippage_bps:g} bps" if bt is not None and not bt.note else ""
    lines.append(f"Slippage: {_num(slip, ' bps')} average against the decision price{assumed}")
    cmp: LiveVsBacktest | None = block["comparison"]
    if cmp is not None:
        lines.append(
            f"Live vs backtest: {_usd(cmp.live_pnl, sign=True)} vs {_usd(cmp.backtest_pnl, sign=True)} = "
            f"{_usd(cmp.difference, sign=True)}, made of:"
        )
        lines.append(
            f"  fill prices (slippage, timing) {_usd(cmp.fill_prices, sign=True)}   fees "
            f"{_usd(cmp.fees, sign=True)}   size {_usd(cmp.size, sign=True)}   residual "
            f"{_usd(cmp.residual, sign=True)}  ({cmp.matched} trades both took)"
        )
        missed = ", ".join(f"{k} {n} ({_usd(v, sign=True)})" for k, (n, v) in cmp.not_traded_by_reason.items())
        lines.append(
            f"  signals the backtest traded and the robot did not {_usd(cmp.not_traded, sign=True)}"
            f"{': ' + missed if missed else ''}"
        )
        lines.append(f"  trades the backtest did not take {_usd(cmp.live_only, sign=True)} ({cmp.live_only_count})")
    elif bt is not None and bt.note:
        lines.append(f"Live vs backtest: n/a ({bt.note})")
    return "\n".join(lines)
