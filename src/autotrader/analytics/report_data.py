"""The backtest result document: every figure a report shows, computed from a ``BacktestResult``.

``build_report(result)`` turns a run into one JSON-serialisable ``dict``; the renderers in
``autotrader.analytics.reports`` (console, HTML, JSON, CSV) only format it, so every output shows
the same numbers. Every figure comes from the run's own arrays through
``autotrader.analytics.metrics``; nothing is typed in.

Schema ``autotrader.backtest/1``
--------------------------------
Units: keys ending ``_usd`` are quote-currency amounts; keys ending ``_pct`` are percent
(``5.0`` = 5 %); keys ending ``_ms`` are UTC epoch milliseconds; ``*_time`` / ``*_bar`` strings are
ISO-8601 UTC (``2024-01-01T00:00:00Z``). Ratios named as in ``metrics`` (``total_return``,
``max_drawdown``, ``win_rate``, ``value_at_risk_95`` …) are fractions (``0.05`` = 5 %; drawdowns
and losses are negative). An undefined figure is ``null``; an infinite one is the string
``"inf"`` or ``"-inf"`` (a profit factor with no losing trade).

Top-level keys:

``schema``           ``"autotrader.backtest/1"`` (name / major version; see ``load_report``).
``version``          autotrader version that ran the backtest.
``config``           the ``BacktestConfig`` (enough to re-run it).
``risk_limits``      the ``RiskLimits`` in force.
``data_fingerprint`` xxh3-128 hash of the candles the run saw.
``period``           ``first_bar``, ``last_bar``, ``bars``, ``days``, ``requested_start``,
                     ``requested_end``, ``note``.
``signals``          the strategy's signal metadata (``horizon_bars``, ``n_signals``, …).
``summary``          ``metrics.summary`` of the per-bar equity and the closed trades' net P&L, plus
                     ``net_profit_usd``, ``commission_paid_usd``, ``buy_and_hold_return``,
                     ``buy_and_hold_max_drawdown``, ``buy_and_hold_sharpe_ratio``, ``excess_return``,
                     ``long_trades``, ``short_trades``, ``avg_holding_hours``, ``avg_exposure``,
                     ``max_exposure``, ``time_in_market`` and ``signal_accuracy`` (``null`` unless the
                     signals have a horizon).
``performance``      TradingView-style table: ``columns`` (``all``, ``long``, ``short``), ``rows``
                     (``key``, ``label``, ``unit``) and one dict per column keyed by row ``key``.
``conventions``      where a figure differs from TradingView's Strategy Tester, and how.
``per_symbol``       one row per symbol: trades, net P&L, contribution to return, win rate, buy & hold.
``equity_curve``     per-bar ``ts_ms``, ``equity``, ``benchmark``, ``drawdown`` (at most
                     ``MAX_CURVE_POINTS``; longer runs keep the first, last and each bucket's lowest and
                     highest points, see ``downsample_indices``) and ``daily`` (every UTC day).
``drawdown_curve``   the same ``ts_ms`` with ``drawdown``, and the deepest drawdown's peak, trough and
                     recovery.
``monthly_returns``  ``[{year, month, return, buy_and_hold_return}]``; ``yearly_returns`` likewise.
``trades``           every closed trade in the order it closed, with its cumulative P&L.
``distributions``    ``pnl_usd`` and ``duration_hours`` histograms (``edges``, ``counts``).
``time_analysis``    trades, wins and net P&L by entry hour (UTC) and by entry weekday.
``risk``             VaR / expected shortfall (daily returns), stability score, risk events counted
                     by name (``event_counts``; split into ``denial_counts`` of denied entries and
                     ``state_event_counts`` of ``STATE_EVENTS``), denied entries counted per episode
                     (``denial_episodes``), every drawdown halt with its time, equity, drawdown and
                     idle time (``halts``), the events aggregated by kind, symbol and episode
                     (``event_episodes``: first, last, count) and every event (``events``).
``assumptions``      human-readable statements of how the simulation fills, charges and limits.
``verdict``          plain statements of fact about the outcome (lost money, trailed buy & hold …).

Signal metadata read by the verdict (optional): ``out_of_sample`` (bool) or ``train_end_ms`` (the
last timestamp the model was trained on).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np

from autotrader.analytics import metrics
from autotrader.domain.errors import DataError
from autotrader.domain.jsonsafe import json_safe

__all__ = [
    "MAX_CURVE_POINTS",
    "MAX_EVENTS",
    "SCHEMA",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STATE_EVENTS",
    "TRADE_FIELDS",
    "build_report",
    "downsample_indices",
    "event_episodes",
    "load_report",
]

SCHEMA_NAME: Final = "autotrader.backtest"
SCHEMA_VERSION: Final = 1
SCHEMA: Final = f"{SCHEMA_NAME}/{SCHEMA_VERSION}"
MAX_CURVE_POINTS: Final = 5000
MAX_EVENTS: Final = 200
REQUIRED_KEYS: Final = (
    "schema",
    "version",
    "config",
    "risk_limits",
    "data_fingerprint",
    "period",
    "summary",
    "performance",
    "per_symbol",
    "equity_curve",
    "drawdown_curve",
    "monthly_returns",
    "yearly_returns",
    "trades",
    "distributions",
    "time_analysis",
    "risk",
    "assumptions",
)

# risk events that record a change of the risk engine's state; every other event is a denied entry
# (the labels of ``autotrader.risk.policy.Transition``; analytics does not import risk, a test keeps them equal)
STATE_EVENTS: Final = frozenset({"daily_loss_hit", "drawdown_halt", "halt_resumed", "daily_reset"})
EPISODE_GAP_MS: Final = 86_400_000  # denials of one symbol and reason further apart start a new episode
_MS_PER_HOUR: Final = 3_600_000
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HIST_MAX_BINS: Final = 30

# (key, label, unit) of the performance table, in TradingView's order
PERFORMANCE_ROWS: Final = (
    ("net_profit_usd", "Net Profit", "usd"),
    ("net_profit_pct", "Net Profit %", "pct"),
    ("gross_profit_usd", "Gross Profit", "usd"),
    ("gross_profit_pct", "Gross Profit %", "pct"),
    ("gross_loss_usd", "Gross Loss", "usd"),
    ("gross_loss_pct", "Gross Loss %", "pct"),
    ("max_runup_usd", "Max Run-up", "usd"),
    ("max_runup_pct", "Max Run-up %", "pct"),
    ("max_drawdown_usd", "Max Drawdown", "usd"),
    ("max_drawdown_pct", "Max Drawdown %", "pct"),
    ("buy_and_hold_return_usd", "Buy & Hold Return", "usd"),
    ("buy_and_hold_return_pct", "Buy & Hold Return %", "pct"),
    ("sharpe_ratio", "Sharpe Ratio", "ratio"),
    ("sortino_ratio", "Sortino Ratio", "ratio"),
    ("profit_factor", "Profit Factor", "ratio"),
    ("commission_paid_usd", "Commission Paid", "usd"),
    ("trades", "Total Closed Trades", "count"),
    ("winning_trades", "Number Winning Trades", "count"),
    ("losing_trades", "Number Losing Trades", "count"),
    ("percent_profitable", "Percent Profitable", "pct"),
    ("avg_trade_usd", "Avg Trade", "usd"),
    ("avg_trade_pct", "Avg Trade %", "pct"),
    ("avg_win_usd", "Avg Winning Trade", "usd"),
    ("avg_win_pct", "Avg Winning Trade %", "pct"),
    ("avg_loss_usd", "Avg Losing Trade", "usd"),
    ("avg_loss_pct", "Avg Losing Trade %", "pct"),
    ("ratio_avg_win_avg_loss", "Ratio Avg Win / Avg Loss", "ratio"),
    ("largest_win_usd", "Largest Winning Trade", "usd"),
    ("largest_win_pct", "Largest Winning Trade %", "pct"),
    ("largest_loss_usd", "Largest Losing Trade", "usd"),
    ("largest_loss_pct", "Largest Losing Trade %", "pct"),
    ("avg_bars_in_trades", "Avg # Bars in Trades", "bars"),
    ("avg_bars_in_winning_trades", "Avg # Bars in Winning Trades", "bars"),
    ("avg_bars_in_losing_trades", "Avg # Bars in Losing Trades", "bars"),
    ("max_consecutive_wins", "Max Consecutive Wins", "count"),
    ("max_consecutive_losses", "Max Consecutive Losses", "count"),
)

# keys of one record of ``doc["trades"]``, in order (also the columns of trades.csv)
TRADE_FIELDS: Final = (
    "id", "symbol", "side", "signal_time", "entry_time", "exit_time", "entry_bar", "exit_bar", "bars",
    "duration_hours", "entry_price", "exit_price", "qty", "notional_usd", "commission_usd", "pnl_usd",
    "return_pct", "cum_pnl_usd", "runup_usd", "drawdown_usd", "confidence", "exit_reason",
)  # fmt: skip

CONVENTIONS: Final = {
    "signs": "Losses are negative numbers (gross loss, average and largest losing trade, drawdowns); "
    "TradingView shows them as positive amounts in red.",
    "sharpe_sortino": "Sharpe and Sortino use daily returns of the equity, risk-free rate 0, annualised with "
    "365 days, sample standard deviation; TradingView uses monthly returns and a 2 % risk-free rate. "
    "They are given for the All column only, as in TradingView.",
    "max_drawdown_runup": "Max drawdown and max run-up are measured on the equity marked at each bar's close "
    "(not intrabar), for the whole portfolio (All column only). Drawdown % is the deepest fall from a "
    "running peak; run-up % the highest rise over a running trough. The USD and % maxima can come from "
    "different episodes.",
    "percentages": "Net profit %, gross profit % and gross loss % are relative to the initial capital; "
    "trade % figures are net P&L over the entry notional (qty × entry price), averaged per trade.",
    "buy_and_hold": "Buy & hold is an equal-weight basket of all the run's symbols, each bought at its first "
    "open with no fees or slippage, held to the last bar; its return is over the initial capital. "
    "TradingView uses the chart symbol alone. A symbol's own buy & hold return (per_symbol) runs from "
    "its first to its last close in the period.",
    "trades": "A trade's P&L is net of the entry and exit fees. Trades are listed in the order they closed "
    "(TradingView numbers them by entry). Run-up and drawdown of a trade are the best and worst "
    "unrealised P&L at the bar extremes while open.",
    "break_even": "A trade with P&L exactly 0 counts as a trade (lowering percent profitable) but is "
    "neither a winning nor a losing trade.",
    "bars_in_trade": "Bars in a trade = exit bar index - entry bar index (a trade stopped out on its "
    "entry bar counts 0 bars).",
    "exposure": "Exposure is gross position notional / equity at each bar's close; time in market is the "
    "share of bars with a position open at the close.",
    "var": "VaR and expected shortfall are historical, on daily returns, as returns (a loss is negative).",
}


# --------------------------------------------------------------------------- public API


class BacktestResult(Protocol):
    """What ``build_report`` reads of ``autotrader.backtest.runner.BacktestResult``.

    Declared here so that analytics does not import the backtest layer above it.
    """

    config: Any
    limits: Any
    ts: np.ndarray
    equity: np.ndarray
    exposure: np.ndarray
    trades: np.ndarray
    events: np.ndarray
    benchmark_equity: np.ndarray
    close: np.ndarray
    signals_meta: dict[str, Any]
    data_fingerprint: str
    period_note: str
    version: str

    @property
    def symbols(self) -> tuple[str, ...]: ...


def build_report(result: BacktestResult) -> dict[str, Any]:
    """The full result document of ``result`` (schema ``autotrader.backtest/1``, see the module docstring).

    Pure: reads only the result's arrays and configuration. The returned ``dict`` holds only JSON
    types (``json.dumps(doc, allow_nan=False)`` works and ``json.loads`` gives back an equal dict).
    """
    ctx = _Context(result)
    summary = _summary(ctx)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "version": result.version,
        "config": result.config.model_dump(mode="json"),
        "risk_limits": result.limits.model_dump(mode="json"),
        "data_fingerprint": result.data_fingerprint,
        "period": _period(ctx),
        # per-bar arrays (the ml model's probabilities) stay out: megabytes of JSON and HTML
        "signals": {k: v for k, v in result.signals_meta.items() if not isinstance(v, np.ndarray)},
        "summary": summary,
        "performance": _performance(ctx, summary),
        "conventions": dict(CONVENTIONS),
        "per_symbol": _per_symbol(ctx),
        **_curves(ctx, summary),
        **_calendar_returns(ctx),
        "trades": _trades(ctx),
        "distributions": _distributions(ctx),
        "time_analysis": _time_analysis(ctx),
        "risk": _risk(ctx, summary),
        "assumptions": _assumptions(ctx),
    }
    doc["verdict"] = _verdict(doc)
    return json_safe(doc)


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a report written by ``reports.write_json``; a bad file is a one-line ``DataError``.

    Refuses a missing or unreadable file, invalid JSON (e.g. truncated), a file that is not an
    autotrader backtest report (no or another ``schema``), a newer schema version, and a report
    missing a required top-level key.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"report file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read report file {p}: {e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(
            f"{p} is not valid JSON (truncated or corrupt?): {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    except RecursionError:
        raise DataError(f"{p} is not a backtest report: its JSON nests too deeply") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if not isinstance(schema, str) or not schema.startswith(f"{SCHEMA_NAME}/"):
        found = "no 'schema' key" if schema is None else f"schema {schema!r}"
        raise DataError(f"{p} is not an autotrader backtest report ({found}; expected {SCHEMA!r})")
    version_text = schema.removeprefix(f"{SCHEMA_NAME}/")
    if not version_text.isdigit():
        raise DataError(f"{p} has a malformed schema {schema!r}; expected {SCHEMA!r}")
    if int(version_text) != SCHEMA_VERSION:
        raise DataError(
            f"{p} uses report schema version {version_text}; this autotrader reads version {SCHEMA_VERSION}"
        )
    missing = [k for k in REQUIRED_KEYS if k not in doc]
    if missing:
        raise DataError(f"{p} is an incomplete report: missing {', '.join(repr(k) for k in missing)}")
    if (problem := _shape_problem(doc)) is not None:
        raise DataError(f"{p} is a corrupt report: {problem}")
    return doc


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, float) or abs(value) < 10**300  # a bigger int has no float


def _shape_problem(doc: dict[str, Any]) -> str | None:
    """What is wrong with the parts every ``analyze`` run reads (config, period, summary), else ``None``."""
    for key in ("config", "period", "summary"):
        if not isinstance(doc[key], dict):
            return f"{key!r} is not an object"
    return _config_problem(doc["config"]) or _period_problem(doc["period"]) or _summary_problem(doc["summary"])


def _config_problem(config: dict[str, Any]) -> str | None:
    for key in ("strategy", "exchange", "timeframe"):
        if not isinstance(config.get(key), str):
            return f"config.{key} is not a text"
    symbols = config.get("symbols")
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        return "config.symbols is not a list of texts"
    return None


def _period_problem(period: dict[str, Any]) -> str | None:
    for key in ("first_bar", "last_bar"):
        if not isinstance(period.get(key), str):
            return f"period.{key} is not a date-time text"
    if not isinstance(period.get("bars"), int) or isinstance(period.get("bars"), bool):
        return "period.bars is not a whole number"
    return None


def _summary_problem(summary: dict[str, Any]) -> str | None:
    for key, value in summary.items():
        if key == "signal_accuracy":
            if value is not None and not isinstance(value, dict):
                return "summary.signal_accuracy is not an object"
        elif value is not None and not _is_number(value):
            return f"summary.{key} is not a number"
    accuracy = summary.get("signal_accuracy") or {}
    if accuracy.get("accuracy") is not None and not _is_number(accuracy["accuracy"]):
        return "summary.signal_accuracy.accuracy is not a number"
    return None


def downsample_indices(max_points: int, *series: np.ndarray) -> np.ndarray:
    """Indices of at most ``max_points`` points that keep the shape of ``series`` honest.

    Always keeps the first and the last point; splits the rest into equal buckets and keeps, in
    each bucket, the lowest and the highest point of every series. So a series' global minimum
    and maximum (the deepest drawdown, the lowest equity) are always kept exactly. Every index
    when the series are short enough.
    """
    if not series:
        raise ValueError("downsample_indices needs at least one series")
    n = len(series[0])
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    per_bucket = 2 * len(series)
    n_buckets = max(1, (max_points - 2) // per_bucket)
    bounds = np.linspace(1, n - 1, n_buckets + 1).astype(np.int64)
    keep = [0, n - 1]
    for lo, hi in itertools.pairwise(bounds):
        if hi <= lo:
            continue
        for s in series:
            chunk = s[lo:hi]
            keep.extend((lo + int(np.argmin(chunk)), lo + int(np.argmax(chunk))))
    return np.unique(np.asarray(keep, dtype=np.int64))


# --------------------------------------------------------------------------- context


class _Context:
    """Arrays derived once from the result and shared by the sections."""

    def __init__(self, result: BacktestResult) -> None:
        self.result = result
        self.config = result.config
        self.capital = float(result.config.initial_capital)
        self.ts = np.asarray(result.ts, dtype=np.int64)
        self.equity = np.asarray(result.equity, dtype=np.float64)
        self.benchmark = np.asarray(result.benchmark_equity, dtype=np.float64)
        if self.ts.size < 2 or self.equity.shape != self.ts.shape or self.benchmark.shape != self.ts.shape:
            raise DataError(
                f"backtest result has {self.ts.size} timestamps, {self.equity.size} equity and "
                f"{self.benchmark.size} benchmark values: cannot build a report"
            )
        self.symbols = tuple(result.symbols)
        self.close = np.asarray(result.close, dtype=np.float64)
        if self.close.shape != (self.ts.size, len(self.symbols)):
            raise DataError(
                f"backtest result close prices have shape {self.close.shape}, expected "
                f"({self.ts.size}, {len(self.symbols)})"
            )
        t = result.trades
        self.trades = t
        self.pnl = np.asarray(t["pnl"], dtype=np.float64)
        self.ret_pct = np.asarray(t["return_pct"], dtype=np.float64)
        self.side = np.asarray(t["side"], dtype=np.int64)
        self.bars = np.asarray(t["exit_bar"] - t["entry_bar"], dtype=np.float64)
        self.fees = np.asarray(t["entry_fee"] + t["exit_fee"], dtype=np.float64)
        self.drawdown = metrics.drawdown_series(self.equity)
        self.day_ts, self.day_equity = metrics.daily_equity(self.ts, self.equity)
        _, self.day_benchmark = metrics.daily_equity(self.ts, self.benchmark)
        self.day_returns = metrics.daily_returns(self.day_equity)


# --------------------------------------------------------------------------- sections


def _period(ctx: _Context) -> dict[str, Any]:
    return {
        "first_bar": _iso(int(ctx.ts[0])),
        "last_bar": _iso(int(ctx.ts[-1])),
        "first_bar_ms": int(ctx.ts[0]),
        "last_bar_ms": int(ctx.ts[-1]),
        "bars": int(ctx.ts.size),
        "days": int(ctx.day_returns.size),
        "requested_start": ctx.config.start,
        "requested_end": ctx.config.end,
        "note": ctx.result.period_note,
        "warmup": dict(getattr(ctx.result, "warmup", None) or {}) or None,
    }


def _summary(ctx: _Context) -> dict[str, Any]:
    out: dict[str, Any] = dict(metrics.summary(ctx.ts, ctx.equity, ctx.pnl))
    # the basket is bought at the first bar's open: its opening equity is the initial capital
    bench = metrics.summary(
        np.concatenate((ctx.ts[:1], ctx.ts)), np.concatenate(([ctx.capital], ctx.benchmark)), np.empty(0)
    )
    t = ctx.trades
    stats = metrics.trade_stats(ctx.pnl, t["entry_ts"], t["exit_ts"], ctx.side)
    exposure = np.asarray(ctx.result.exposure, dtype=np.float64)
    out.update(
        {
            "net_profit_usd": float(ctx.equity[-1] - ctx.equity[0]),
            "closed_trades_pnl_usd": float(np.sum(ctx.pnl)),
            "commission_paid_usd": float(np.sum(ctx.fees)),
            **_costs(ctx),
            "buy_and_hold_return": bench["total_return"],
            "buy_and_hold_end_equity": bench["end_equity"],
            "buy_and_hold_max_drawdown": bench["max_drawdown"],
            "buy_and_hold_sharpe_ratio": bench["sharpe_ratio"],
            "excess_return": out["total_return"] - bench["total_return"],
            "long_trades": stats["long_trades"],
            "short_trades": stats["short_trades"],
            "long_win_rate": stats["long_win_rate"],
            "short_win_rate": stats["short_win_rate"],
            "avg_holding_hours": stats["avg_holding_ms"] / _MS_PER_HOUR,
            "max_holding_hours": stats["max_holding_ms"] / _MS_PER_HOUR,
            "avg_exposure": float(np.mean(exposure)) if exposure.size else math.nan,
            "max_exposure": float(np.max(exposure)) if exposure.size else math.nan,
            "time_in_market": float(np.mean(exposure > 0.0)) if exposure.size else math.nan,
            "signal_accuracy": _signal_accuracy(ctx),
        }
    )
    return out


def _costs(ctx: _Context) -> dict[str, float]:
    """Trading costs against gross profit (TradingView's sense: the winning trades' profit, here before costs).

    Slippage is estimated from each trade's fills: ``qty * (entry + exit price) * slippage``.
    """
    t = ctx.trades
    slip = float(ctx.config.slippage_bps) / 10_000.0
    slippage = np.asarray(t["qty"] * (t["entry_price"] + t["exit_price"]), dtype=np.float64) * slip
    costs = ctx.fees + slippage
    gross = ctx.pnl + costs
    gross_profit = float(np.sum(gross[gross > 0.0]))
    return {
        "slippage_cost_usd": float(np.sum(slippage)),
        "costs_usd": float(np.sum(costs)),
        "gross_pnl_before_costs_usd": float(np.sum(gross)),
        "gross_profit_before_costs_usd": gross_profit,
        "costs_share_of_gross_profit": float(np.sum(costs)) / gross_profit if gross_profit > 0 else math.nan,
    }


def _signal_accuracy(ctx: _Context) -> dict[str, Any] | None:
    """Share of traded signals whose direction matched the close-to-close move over the horizon."""
    horizon = ctx.result.signals_meta.get("horizon_bars")
    if horizon is None:
        return None
    horizon = int(horizon)
    column = {s: j for j, s in enumerate(ctx.symbols)}
    t = ctx.trades
    bar = np.searchsorted(ctx.ts, t["signal_ts"])
    cols = np.array([column.get(str(s), -1) for s in t["symbol"]], dtype=np.int64)
    valid = (cols >= 0) & (bar + horizon < ctx.ts.size)
    valid &= ctx.ts[np.minimum(bar, ctx.ts.size - 1)] == t["signal_ts"]
    c0 = np.full(len(t), np.nan)
    c1 = np.full(len(t), np.nan)
    c0[valid] = ctx.close[bar[valid], cols[valid]]
    c1[valid] = ctx.close[bar[valid] + horizon, cols[valid]]
    valid &= np.isfinite(c0) & np.isfinite(c1)
    correct = valid & (np.sign(c1 - c0) == ctx.side)
    evaluated = int(np.count_nonzero(valid))
    return {
        "horizon_bars": horizon,
        "evaluated": evaluated,
        "correct": int(np.count_nonzero(correct)),
        "skipped": len(t) - evaluated,
        "accuracy": np.count_nonzero(correct) / evaluated if evaluated else math.nan,
        "method": "close at the signal bar vs close horizon_bars later, same symbol; a trade counts as right "
        "when the move has the trade's sign (no move is wrong); signals without a close horizon_bars "
        "later are skipped",
    }


def _performance(ctx: _Context, summary: dict[str, Any]) -> dict[str, Any]:
    columns = {
        "all": _column(ctx, np.ones(ctx.pnl.size, dtype=bool)),
        "long": _column(ctx, ctx.side == 1),
        "short": _column(ctx, ctx.side == -1),
    }
    peak = np.maximum.accumulate(ctx.equity)
    trough = np.minimum.accumulate(ctx.equity)
    bench_usd = float(ctx.benchmark[-1] - ctx.capital)
    columns["all"].update(
        {
            "max_runup_usd": float(np.max(ctx.equity - trough)),
            "max_runup_pct": 100.0 * float(np.max(ctx.equity / trough - 1.0)),
            "max_drawdown_usd": float(np.min(ctx.drawdown * peak)),
            "max_drawdown_pct": 100.0 * summary["max_drawdown"],
            "buy_and_hold_return_usd": bench_usd,
            "buy_and_hold_return_pct": 100.0 * summary["buy_and_hold_return"],
            "sharpe_ratio": summary["sharpe_ratio"],
            "sortino_ratio": summary["sortino_ratio"],
        }
    )
    only_all = (
        "max_runup_usd", "max_runup_pct", "max_drawdown_usd", "max_drawdown_pct", "buy_and_hold_return_usd",
        "buy_and_hold_return_pct", "sharpe_ratio", "sortino_ratio",
    )  # fmt: skip
    for side in ("long", "short"):
        columns[side].update(dict.fromkeys(only_all))
    rows = [{"key": k, "label": label, "unit": unit} for k, label, unit in PERFORMANCE_ROWS]
    return {"columns": ["all", "long", "short"], "rows": rows, **columns}


def _column(ctx: _Context, mask: np.ndarray) -> dict[str, Any]:
    p, r, bars = ctx.pnl[mask], ctx.ret_pct[mask], ctx.bars[mask]
    stats = metrics.trade_stats(p)
    wins, losses = p > 0.0, p < 0.0
    return {
        "net_profit_usd": float(np.sum(p)),
        "net_profit_pct": 100.0 * float(np.sum(p)) / ctx.capital,
        "gross_profit_usd": float(np.sum(p[wins])),
        "gross_profit_pct": 100.0 * float(np.sum(p[wins])) / ctx.capital,
        "gross_loss_usd": float(np.sum(p[losses])),
        "gross_loss_pct": 100.0 * float(np.sum(p[losses])) / ctx.capital,
        "profit_factor": stats["profit_factor"],
        "commission_paid_usd": float(np.sum(ctx.fees[mask])),
        "trades": int(p.size),
        "winning_trades": int(np.count_nonzero(wins)),
        "losing_trades": int(np.count_nonzero(losses)),
        "percent_profitable": 100.0 * stats["win_rate"],
        "avg_trade_usd": stats["average_trade"],
        "avg_trade_pct": metrics.average_trade(r),
        "avg_win_usd": stats["average_win"],
        "avg_win_pct": metrics.average_win(r),
        "avg_loss_usd": stats["average_loss"],
        "avg_loss_pct": metrics.average_loss(r),
        "ratio_avg_win_avg_loss": stats["win_loss_ratio"],
        "largest_win_usd": stats["largest_win"],
        "largest_win_pct": metrics.largest_win(r),
        "largest_loss_usd": stats["largest_loss"],
        "largest_loss_pct": metrics.largest_loss(r),
        "avg_bars_in_trades": _mean(bars),
        "avg_bars_in_winning_trades": _mean(bars[wins]),
        "avg_bars_in_losing_trades": _mean(bars[losses]),
        "max_consecutive_wins": int(stats["max_consecutive_wins"]),
        "max_consecutive_losses": int(stats["max_consecutive_losses"]),
    }


def _per_symbol(ctx: _Context) -> list[dict[str, Any]]:
    rows = []
    sym = ctx.trades["symbol"]
    for j, symbol in enumerate(ctx.symbols):
        mask = sym == symbol
        p = ctx.pnl[mask]
        closes = ctx.close[:, j]
        closes = closes[np.isfinite(closes)]
        rows.append(
            {
                "symbol": symbol,
                "trades": int(p.size),
                "long_trades": int(np.count_nonzero(ctx.side[mask] == 1)),
                "short_trades": int(np.count_nonzero(ctx.side[mask] == -1)),
                "net_profit_usd": float(np.sum(p)),
                "contribution_pct": 100.0 * float(np.sum(p)) / ctx.capital,
                # the symbol's own result: its net P&L on the money its trades used (the mean entry notional)
                "own_return": _own_return(p, ctx.trades["qty"][mask] * ctx.trades["entry_price"][mask]),
                "commission_paid_usd": float(np.sum(ctx.fees[mask])),
                "win_rate": metrics.win_rate(p),
                "profit_factor": metrics.profit_factor(p),
                "buy_and_hold_return": metrics.total_return(closes) if closes.size else math.nan,
            }
        )
    return rows


def _own_return(pnl: np.ndarray, notional: np.ndarray) -> float:
    """Net P&L over the mean entry notional: what the symbol's trades earned on the capital they used."""
    used = float(np.mean(np.abs(notional))) if notional.size else 0.0
    return float(np.sum(pnl)) / used if used > 0 else math.nan


def _curves(ctx: _Context, summary: dict[str, Any]) -> dict[str, Any]:
    idx = downsample_indices(MAX_CURVE_POINTS, ctx.equity, ctx.benchmark, ctx.drawdown)
    ts = ctx.ts[idx]
    day_dd = metrics.drawdown_series(ctx.day_equity)
    trough = int(np.argmin(ctx.drawdown))
    peak = int(np.argmax(ctx.equity[: trough + 1]))
    after = np.flatnonzero(ctx.equity[trough:] >= ctx.equity[peak])
    recovered = _iso(int(ctx.ts[trough + after[0]])) if after.size and ctx.drawdown[trough] < 0 else None
    return {
        "equity_curve": {
            "points": int(idx.size),
            "bars": int(ctx.ts.size),
            "downsampled": bool(idx.size < ctx.ts.size),
            "ts_ms": ts,
            "equity": ctx.equity[idx],
            "benchmark": ctx.benchmark[idx],
            "drawdown": ctx.drawdown[idx],
            "daily": {
                "ts_ms": ctx.day_ts,
                "equity": ctx.day_equity,
                "benchmark": ctx.day_benchmark,
                "drawdown": day_dd,
            },
        },
        "drawdown_curve": {
            "ts_ms": ts,
            "drawdown": ctx.drawdown[idx],
            "max_drawdown": float(ctx.drawdown[trough]),
            "peak_time": _iso(int(ctx.ts[peak])),
            "trough_time": _iso(int(ctx.ts[trough])),
            "recovery_time": recovered,
            "max_drawdown_duration_days": summary["max_drawdown_duration_days"],  # same equity and clock
        },
    }


def _calendar_returns(ctx: _Context) -> dict[str, Any]:
    years, months, rets = metrics.monthly_returns(ctx.day_ts, ctx.day_equity)
    _, _, bench = metrics.monthly_returns(ctx.day_ts, ctx.day_benchmark)
    y_years, y_rets = metrics.yearly_returns(ctx.day_ts, ctx.day_equity)
    _, y_bench = metrics.yearly_returns(ctx.day_ts, ctx.day_benchmark)
    return {
        "monthly_returns": [
            {"year": int(y), "month": int(m), "return": float(r), "buy_and_hold_return": float(b)}
            for y, m, r, b in zip(years, months, rets, bench, strict=True)
        ],
        "yearly_returns": [
            {"year": int(y), "return": float(r), "buy_and_hold_return": float(b)}
            for y, r, b in zip(y_years, y_rets, y_bench, strict=True)
        ],
    }


def _trades(ctx: _Context) -> list[dict[str, Any]]:
    t = ctx.trades
    if len(t) == 0:
        return []
    cum = np.cumsum(ctx.pnl)
    signal_time = _iso_array(t["signal_ts"])
    entry_time = _iso_array(t["entry_ts"])
    exit_time = _iso_array(t["exit_ts"])
    hours = (t["exit_ts"] - t["entry_ts"]) / _MS_PER_HOUR
    return [
        {
            "id": i + 1,
            "symbol": str(t["symbol"][i]),
            "side": "long" if ctx.side[i] > 0 else "short",
            "signal_time": signal_time[i],
            "entry_time": entry_time[i],
            "exit_time": exit_time[i],
            "entry_bar": int(t["entry_bar"][i]),
            "exit_bar": int(t["exit_bar"][i]),
            "bars": int(ctx.bars[i]),
            "duration_hours": float(hours[i]),
            "entry_price": float(t["entry_price"][i]),
            "exit_price": float(t["exit_price"][i]),
            "qty": float(t["qty"][i]),
            "notional_usd": float(t["qty"][i] * t["entry_price"][i]),
            "commission_usd": float(ctx.fees[i]),
            "pnl_usd": float(ctx.pnl[i]),
            "return_pct": float(ctx.ret_pct[i]),
            "cum_pnl_usd": float(cum[i]),
            "runup_usd": float(t["runup"][i]),
            "drawdown_usd": float(t["drawdown"][i]),
            "confidence": float(t["confidence"][i]),
            "exit_reason": str(t["exit_reason"][i]),
        }
        for i in range(len(t))
    ]


def _distributions(ctx: _Context) -> dict[str, Any]:
    hours = (ctx.trades["exit_ts"] - ctx.trades["entry_ts"]) / _MS_PER_HOUR
    return {"pnl_usd": _histogram(ctx.pnl), "duration_hours": _histogram(np.asarray(hours, dtype=np.float64))}


def _histogram(values: np.ndarray) -> dict[str, Any]:
    if values.size == 0:
        return {"edges": [], "counts": []}
    bins = int(min(_HIST_MAX_BINS, max(1, math.ceil(math.sqrt(values.size)))))
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": edges, "counts": counts}


def _time_analysis(ctx: _Context) -> dict[str, Any]:
    entry = np.asarray(ctx.trades["entry_ts"], dtype=np.int64)
    hour = (entry // _MS_PER_HOUR) % 24
    weekday = (entry // metrics.MS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0

    def grouped(keys: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        count = np.bincount(keys, minlength=size)
        pnl = np.bincount(keys, weights=ctx.pnl, minlength=size)
        wins = np.bincount(keys, weights=(ctx.pnl > 0.0).astype(np.float64), minlength=size)
        return count, pnl, wins

    h_count, h_pnl, h_wins = grouped(hour, 24)
    d_count, d_pnl, d_wins = grouped(weekday, 7)
    return {
        "by_hour_utc": [
            {"hour": h, "trades": int(h_count[h]), "wins": int(h_wins[h]), "pnl_usd": float(h_pnl[h])}
            for h in range(24)
        ],
        "by_weekday": [
            {"weekday": name, "trades": int(d_count[d]), "wins": int(d_wins[d]), "pnl_usd": float(d_pnl[d])}
            for d, name in enumerate(_WEEKDAYS)
        ],
    }


def _risk(ctx: _Context, summary: dict[str, Any]) -> dict[str, Any]:
    events = ctx.result.events
    counts = Counter(str(e) for e in events["event"])
    denials = {k: v for k, v in counts.most_common() if k not in STATE_EVENTS}
    states = {k: v for k, v in counts.most_common() if k in STATE_EVENTS}
    times = _iso_array(events["ts"]) if len(events) else []
    return {
        "value_at_risk_95": summary["value_at_risk_95"],
        "expected_shortfall_95": summary["expected_shortfall_95"],
        "stability_score": summary["stability_score"],
        "max_drawdown": summary["max_drawdown"],
        "event_counts": dict(counts.most_common()),
        "denial_counts": denials,
        "denial_episodes": _denial_episodes(ctx),
        "halts": _halts(ctx),
        "state_event_counts": states,
        "events_total": len(events),
        "event_episodes": event_episodes(events["ts"], events["symbol"], events["event"]),
        "events": [
            {"time": times[i], "symbol": str(events["symbol"][i]), "event": str(events["event"][i])}
            for i in range(len(events))
        ],
    }


def event_episodes(ts_ms: np.ndarray, symbols: np.ndarray, kinds: np.ndarray) -> list[dict[str, Any]]:
    """Risk events aggregated by kind, symbol and episode, in order of first occurrence.

    A denial repeated on every bar while a signal persists is one episode: events of one kind and
    symbol at most ``EPISODE_GAP_MS`` apart. Each episode gives its first and last time and count.
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    if ts.size == 0:
        return []
    keys = [f"{k}\x00{s}" for k, s in zip(kinds, symbols, strict=True)]
    _, key_ids = np.unique(np.asarray(keys), return_inverse=True)
    order = np.lexsort((ts, key_ids))
    k_sorted, t_sorted = key_ids[order], ts[order]
    new_episode = np.ones(ts.size, dtype=bool)
    new_episode[1:] = (k_sorted[1:] != k_sorted[:-1]) | (np.diff(t_sorted) > EPISODE_GAP_MS)
    starts = np.flatnonzero(new_episode)
    ends = np.append(starts[1:], ts.size) - 1
    episodes = []
    for a, b in zip(starts, ends, strict=True):
        i = order[a]
        episodes.append(
            {
                "event": str(kinds[i]),
                "symbol": str(symbols[i]),
                "first": _iso(int(t_sorted[a])),
                "last": _iso(int(t_sorted[b])),
                "count": int(b - a + 1),
            }
        )
    episodes.sort(key=lambda e: (e["first"], e["event"], e["symbol"]))
    return episodes


def _denial_episodes(ctx: _Context) -> dict[str, int]:
    """Denials counted per episode rather than per bar.

    A strategy that keeps its signal re-asks every bar, so one refused idea is denied on many
    bars. An episode is a run of denials of one symbol for one reason with no entry of that
    symbol in between and at most ``EPISODE_GAP_MS`` (a day) between consecutive denials.
    """
    events = ctx.result.events
    entries: dict[str, list[int]] = {}  # sorted Python lists: bisect per event is far cheaper than np.searchsorted
    for sym in set(str(x) for x in ctx.trades["symbol"]):
        entries[sym] = np.sort(np.asarray(ctx.trades["entry_ts"][ctx.trades["symbol"] == sym], dtype=np.int64)).tolist()
    out: Counter[str] = Counter()
    last: dict[tuple[str, str], int] = {}
    ts_all = np.asarray(events["ts"], dtype=np.int64)
    order = np.argsort(ts_all, kind="stable")
    reasons = [str(x) for x in np.asarray(events["event"])[order].tolist()]
    symbols = [str(x) for x in np.asarray(events["symbol"])[order].tolist()]
    for reason, sym, ts in zip(reasons, symbols, ts_all[order].tolist(), strict=True):
        if reason in STATE_EVENTS:
            continue
        prev = last.get((sym, reason))
        sym_entries = entries.get(sym)
        entered = (
            prev is not None
            and sym_entries is not None
            and bisect.bisect_left(sym_entries, ts) > bisect.bisect_right(sym_entries, prev)
        )
        if prev is None or ts - prev > EPISODE_GAP_MS or entered:
            out[reason] += 1
        last[(sym, reason)] = ts
    return dict(out.most_common())


def _halts(ctx: _Context) -> list[dict[str, Any]]:
    """Every drawdown halt: when, the equity then, its drawdown, and how long the run stood idle.

    The run stands idle from the halt to the bar trading resumed (``--on-halt resume-after``)
    or, for a halt for good, to the end of the data.
    """
    events = ctx.result.events
    kinds = np.asarray(events["event"]).astype(str)
    halt_ts = np.sort(np.asarray(events["ts"][kinds == "drawdown_halt"], dtype=np.int64))
    resume_ts = np.sort(np.asarray(events["ts"][kinds == "halt_resumed"], dtype=np.int64))
    out = []
    span = float(ctx.ts[-1] - ctx.ts[0]) or 1.0
    start_bar = 0
    for ts in halt_ts:
        bar = min(int(np.searchsorted(ctx.ts, ts)), ctx.ts.size - 1)
        later = resume_ts[resume_ts > ts]
        resumed = int(later[0]) if later.size else None
        until = resumed if resumed is not None else int(ctx.ts[-1])
        peak = float(np.max(ctx.equity[start_bar : bar + 1]))
        equity = float(ctx.equity[bar])
        out.append({
            "time": _iso(int(ts)),
            "equity_usd": equity,
            "peak_equity_usd": peak,
            "drawdown": equity / peak - 1.0 if peak > 0 else None,
            "resumed": None if resumed is None else _iso(resumed),
            "idle_days": (until - int(ts)) / metrics.MS_PER_DAY,
            "idle_share_of_period": (until - int(ts)) / span,
        })  # fmt: skip
        if resumed is not None:
            start_bar = int(np.searchsorted(ctx.ts, resumed))
    return out


def _assumptions(ctx: _Context) -> list[str]:
    c, lim = ctx.config, ctx.result.limits
    fee_source = f" (the default for {c.market})" if c.fee is None else ""
    out = [
        "Signals are decided on a bar's close and filled as market orders at the next bar's open; "
        "nothing fills at the signal bar's own close.",
        f"Fees: {_pct(c.fee_rate, 4)} of notional per side (taker){fee_source}, charged on entry and on exit.",
        f"Slippage: {c.slippage_bps:g} bps against the order on every fill (market, stop, target); "
        "a liquidation loses the whole margin, which already includes any slippage and fee.",
        "Inside a bar, stop-loss, trailing stop, liquidation and take-profit are checked against the bar's "
        "low and high; when a stop and a target are both inside one bar the stop is assumed to come first "
        "(pessimistic). A trailing stop uses its level from before the bar, then ratchets.",
        "Gaps: a position whose stop, target or liquidation level the open already gapped through is closed "
        "at the open, not at the level.",
        "Quantities are rounded down to each instrument's lot step; an order below the minimum quantity or "
        "minimum notional is not placed and is recorded as a risk event (below_min_notional / "
        "insufficient_funds).",
        _market_assumption(c),
        f"Risk level {c.risk_level}, sizing {c.sizing}: position size up to {_pct(lim.position_size)} "
        f"of equity, stop-loss {_pct(lim.stop_loss)}, take-profit {_pct(lim.take_profit)}, trailing stop "
        f"{_pct(lim.trailing_stop)}, minimum signal confidence {lim.min_confidence:g}."
        + (
            f" Volatility target: each position's expected daily volatility (14 days of bar returns) is "
            f"{_pct(lim.risk_per_trade)} of equity, capped at the position size."
            if c.sizing == "volatility"
            else ""
        ),
        f"A loss of {_pct(lim.daily_loss)} from the UTC day's start blocks new entries until the next day; a "
        f"drawdown of {_pct(lim.max_drawdown)} from the peak halts trading "
        + (
            "for good (--on-halt stop)"
            if c.resume_after_ms <= 0
            else f"for {c.on_halt.partition('=')[2]}, then resumes with the peak re-based (--on-halt {c.on_halt})"
        )
        + (" and closes every position at the next open." if lim.flatten_on_halt else " (positions are kept)."),
        _correlation_assumption(lim),
        "Positions still open after the last bar are closed at its close (with slippage and fee), exit "
        "reason end_of_data.",
        "Buy & hold benchmark: equal weight in every symbol, each bought at its first open, no fees or slippage.",
        f"Data: {c.exchange} {c.timeframe} candles of {', '.join(ctx.symbols)}, {_iso(int(ctx.ts[0]))} to "
        f"{_iso(int(ctx.ts[-1]))} ({ctx.ts.size} bars), xxh3-128 "
        f"{ctx.result.data_fingerprint or 'not recorded'}.",
    ]
    if ctx.result.period_note:
        out.append(f"Period: {ctx.result.period_note}")
    return out


def _correlation_assumption(lim: Any) -> str:
    if lim.correlation >= 1.0:
        return f"No correlation limit (correlation = {lim.correlation:g} disables the gate)."
    return (
        f"Correlation limit {lim.correlation:g}: the exposure-weighted average pairwise correlation of returns "
        f"over {lim.correlation_window_bars} bars (each position counted as a share of a full-size position) "
        "must stay within it; an entry that would break it is sized down until it holds and denied only when "
        "no size would (or the size falls below the minimum order)."
    )


def _market_assumption(c: Any) -> str:
    if c.market == "spot":
        return "Spot market: long only, no leverage; entries are limited by free cash; a short signal means exit."
    return (
        f"Linear perpetual: long and short, leverage {c.leverage:g}x on isolated margin, maintenance margin "
        f"{_pct(c.maintenance_margin)}; a position is liquidated when the price reaches its liquidation "
        "price and then loses its whole margin (the exchange takes it over at the bankruptcy price, entry "
        "× (1 ∓ 1/leverage)); any other loss, exit fee included, is capped at the margin, so one position "
        "never takes equity below zero. Funding payments are not modelled."
    )


def _verdict(doc: dict[str, Any]) -> list[str]:
    s = doc["summary"]
    total, bench = s["total_return"], s["buy_and_hold_return"]
    out = []
    if s["trades"] == 0:
        out.append("The strategy made no trades.")
    if total < 0:
        out.append(f"The strategy lost money: {total * 100:+.2f}% ({s['net_profit_usd']:+,.2f} USD).")
    elif total > 0:
        out.append(f"The strategy made money: {total * 100:+.2f}% ({s['net_profit_usd']:+,.2f} USD).")
    else:
        out.append("The strategy ended exactly where it started (0.00%).")
    if total < bench:
        out.append(
            f"The strategy returned less than buy & hold: {total * 100:+.2f}% vs {bench * 100:+.2f}% "
            f"({(total - bench) * 100:+.2f} points)."
        )
    else:
        out.append(
            f"The strategy did at least as well as buy & hold: {total * 100:+.2f}% vs {bench * 100:+.2f}% "
            f"({(total - bench) * 100:+.2f} points)."
        )
    if 0 < s["trades"] < 30:
        out.append(f"Only {int(s['trades'])} closed trades: too few for the trade statistics to be reliable.")
    oos = _out_of_sample(doc)
    if oos:
        out.append(oos)
    return out


def _out_of_sample(doc: dict[str, Any]) -> str | None:
    meta = doc.get("signals") or {}
    flag = meta.get("out_of_sample")
    if flag is True:
        return "Out-of-sample: the signals come from a model not trained on this period."
    if flag is False:
        return "In-sample: the signals come from a model trained on this period; expect worse results live."
    train_end = meta.get("train_end_ms")
    if isinstance(train_end, int | float):
        first, last = doc["period"]["first_bar_ms"], doc["period"]["last_bar_ms"]
        when = _iso(int(train_end))
        if train_end < first:
            return f"Out-of-sample: the model was trained on data up to {when}, before this period."
        if train_end >= last:
            return f"In-sample: the model was trained on data up to {when}, covering this whole period."
        return f"Partly in-sample: the model was trained on data up to {when}, inside this period."
    return None


# --------------------------------------------------------------------------- helpers


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if values.size else math.nan


def _pct(fraction: float | None, digits: int = 2) -> str:
    if fraction is None:
        return "none"
    return f"{fraction * 100:.{digits}f}".rstrip("0").rstrip(".") + "%"


def _iso(ts_ms: int) -> str:
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + (f".{ts_ms % 1000:03d}Z" if ts_ms % 1000 else "Z")


def _iso_array(ts_ms: np.ndarray) -> list[str]:
    ts = np.asarray(ts_ms, dtype=np.int64)
    unit = "ms" if np.any(ts % 1000) else "s"
    return [f"{s}Z" for s in np.datetime_as_string(ts.astype("datetime64[ms]"), unit=unit)]
