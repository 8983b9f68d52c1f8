"""The result document (report_data) and its renderers (reports) on real backtests of synthetic bars."""

from __future__ import annotations

import csv
import html
import io
import json
import re

import numpy as np
import pytest
from rich.console import Console

from autotrader.analytics import metrics
from autotrader.analytics.report_data import (
    MAX_CURVE_POINTS,
    SCHEMA,
    TRADE_FIELDS,
    build_report,
    downsample_indices,
    event_episodes,
    load_report,
)
from autotrader.analytics.reports import render_console, write_csv, write_html, write_json
from autotrader.backtest.runner import BacktestConfig, BacktestResult, run_backtest
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles
from autotrader.domain.errors import DataError
from autotrader.strategy.base import Signals, Strategy

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000
HORIZON = 6


def _bars(n: int, drift: float, seed: int, symbols: tuple[str, ...], vol: float = 0.01) -> AlignedCandles:
    rng = np.random.default_rng(seed)
    series = {}
    for k, sym in enumerate(symbols):
        close = (100.0 + 50 * k) * np.exp(np.cumsum(rng.normal(drift, vol, n)))
        open_ = np.concatenate(([close[0] / (1 + drift)], close[:-1]))
        high = np.maximum(open_, close) * 1.003
        low = np.minimum(open_, close) * 0.997
        ts = T0 + HOUR * np.arange(n, dtype=np.int64)
        series[sym] = Candles.from_columns(
            {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": np.ones(n)}
        )
    return align(series)


class _LongShortCycle(Strategy):
    """Long for 8 bars, flat, short for 8 bars, flat: a 24-bar cycle, offset per symbol."""

    name = "test_reports_long_short_cycle"

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.full(data.close.shape, np.nan)
        for j in range(len(data.symbols)):
            phase = (np.arange(data.n_bars) + 5 * j) % 24
            direction[phase == 0, j] = 1.0
            direction[phase == 8, j] = 0.0
            direction[phase == 12, j] = -1.0
            direction[phase == 20, j] = 0.0
        return Signals.from_direction(direction, horizon_bars=HORIZON)


class _Churn(Strategy):
    """In for one bar, out for one bar: pays fees on every bar."""

    name = "test_reports_churn"

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.where(np.arange(data.n_bars)[:, None] % 2 == 0, 1.0, 0.0)
        return Signals.from_direction(np.repeat(direction, len(data.symbols), axis=1))


@pytest.fixture(scope="module")
def result() -> BacktestResult:
    symbols = ("BTCUSDT", "ETHUSDT")
    config = BacktestConfig(
        symbols=symbols,
        start="2024-01-01",
        end="2024-01-31",
        strategy=_LongShortCycle.name,
        market="linear",
        risk_overrides={"correlation": 1.0},
        params={"note": "<script>alert(1)</script>"},
    )
    return run_backtest(config, _bars(500, 0.0, 7, symbols), _LongShortCycle())


@pytest.fixture(scope="module")
def doc(result: BacktestResult) -> dict:
    return build_report(result)


def _html(doc: dict, tmp_path) -> str:
    return write_html(doc, tmp_path / "report.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- document


def test_build_report_sample_run_has_long_and_short_trades(result):
    sides = set(result.trades["side"].tolist())
    assert sides == {1, -1}, "the fixture must exercise both columns of the performance table"


def test_build_report_schema_and_top_level_keys(doc):
    assert doc["schema"] == SCHEMA == "autotrader.backtest/1"
    for key in (
        "version", "config", "risk_limits", "data_fingerprint", "period", "summary", "performance",
        "conventions", "per_symbol", "equity_curve", "drawdown_curve", "monthly_returns", "yearly_returns",
        "trades", "distributions", "time_analysis", "risk", "assumptions", "verdict",
    ):  # fmt: skip
        assert key in doc, key


def test_build_report_json_types_only(doc):
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc


def test_build_report_total_return_is_last_over_first_equity(doc, result):
    eq = result.equity
    assert doc["summary"]["total_return"] == pytest.approx(eq[-1] / eq[0] - 1.0, rel=1e-12)
    assert doc["summary"]["net_profit_usd"] == pytest.approx(eq[-1] - eq[0], rel=1e-12)


def test_build_report_net_profit_and_commission_from_trades(doc, result):
    perf = doc["performance"]["all"]
    assert perf["net_profit_usd"] == pytest.approx(float(result.trades["pnl"].sum()), rel=1e-12)
    assert perf["net_profit_usd"] == pytest.approx(result.equity[-1] - result.config.initial_capital, rel=1e-9)
    fees = float((result.trades["entry_fee"] + result.trades["exit_fee"]).sum())
    assert perf["commission_paid_usd"] == pytest.approx(fees, rel=1e-12)
    assert doc["summary"]["commission_paid_usd"] == pytest.approx(fees, rel=1e-12)


def test_build_report_long_plus_short_equals_all(doc, result):
    perf = doc["performance"]
    assert perf["long"]["trades"] + perf["short"]["trades"] == perf["all"]["trades"] == len(result.trades)
    for key in ("net_profit_usd", "gross_profit_usd", "gross_loss_usd", "commission_paid_usd"):
        assert perf["long"][key] + perf["short"][key] == pytest.approx(perf["all"][key], rel=1e-12, abs=1e-9)
    for key in ("winning_trades", "losing_trades"):
        assert perf["long"][key] + perf["short"][key] == perf["all"][key]
    assert doc["summary"]["long_trades"] + doc["summary"]["short_trades"] == doc["summary"]["trades"]


def test_build_report_performance_rows_cover_every_column_key(doc):
    perf = doc["performance"]
    keys = [r["key"] for r in perf["rows"]]
    for col in perf["columns"]:
        assert set(perf[col]) == set(keys)
    # portfolio-level figures exist for All only, as in TradingView
    assert perf["long"]["sharpe_ratio"] is None
    assert perf["all"]["max_drawdown_pct"] == pytest.approx(100 * metrics.max_drawdown(doc_equity(doc)), rel=1e-12)


def doc_equity(doc: dict) -> np.ndarray:
    return np.asarray(doc["equity_curve"]["equity"])


def test_build_report_per_symbol_contributions_sum_to_net_profit(doc):
    rows = doc["per_symbol"]
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT"]
    assert sum(r["trades"] for r in rows) == len(doc["trades"])
    total = sum(r["net_profit_usd"] for r in rows)
    assert total == pytest.approx(doc["performance"]["all"]["net_profit_usd"], rel=1e-12)


def test_build_report_trades_cumulative_pnl_and_iso_times(doc, result):
    trades = doc["trades"]
    assert len(trades) == len(result.trades)
    assert tuple(trades[0]) == TRADE_FIELDS
    assert trades[-1]["cum_pnl_usd"] == pytest.approx(float(result.trades["pnl"].sum()), rel=1e-12)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", trades[0]["entry_time"])
    assert all(t["side"] in ("long", "short") for t in trades)


def test_build_report_signal_accuracy_matches_direct_count(doc, result):
    acc = doc["summary"]["signal_accuracy"]
    column = {s: j for j, s in enumerate(result.symbols)}
    correct = evaluated = 0
    for t in result.trades:
        bar = int(np.flatnonzero(result.ts == t["signal_ts"])[0])
        if bar + HORIZON >= len(result.ts):
            continue
        move = result.close[bar + HORIZON, column[t["symbol"]]] - result.close[bar, column[t["symbol"]]]
        evaluated += 1
        correct += int(np.sign(move) == t["side"])
    assert acc["horizon_bars"] == HORIZON
    assert (acc["evaluated"], acc["correct"]) == (evaluated, correct)
    assert acc["accuracy"] == pytest.approx(correct / evaluated)


def test_build_report_curves_distributions_and_time_analysis_consistent(doc, result):
    curve = doc["equity_curve"]
    assert curve["points"] == len(result.ts) <= MAX_CURVE_POINTS
    assert not curve["downsampled"]
    assert min(curve["drawdown"]) == pytest.approx(doc["summary"]["max_drawdown"], rel=1e-12)
    assert curve["daily"]["equity"][-1] == pytest.approx(result.equity[-1], rel=1e-12)
    assert sum(doc["distributions"]["pnl_usd"]["counts"]) == len(result.trades)
    assert sum(doc["distributions"]["duration_hours"]["counts"]) == len(result.trades)
    assert sum(r["trades"] for r in doc["time_analysis"]["by_hour_utc"]) == len(result.trades)
    assert sum(r["trades"] for r in doc["time_analysis"]["by_weekday"]) == len(result.trades)
    monthly = [r["return"] for r in doc["monthly_returns"]]
    assert np.prod(1 + np.asarray(monthly)) - 1 == pytest.approx(doc["summary"]["total_return"], rel=1e-9)


def test_build_report_risk_events_counted_by_name(doc, result):
    risk = doc["risk"]
    assert risk["events_total"] == len(result.events)
    assert sum(risk["event_counts"].values()) == len(result.events)
    assert risk["denial_counts"].keys() | risk["state_event_counts"].keys() == risk["event_counts"].keys()


def test_build_report_losing_churn_says_so_plainly():
    symbols = ("BTCUSDT",)
    config = BacktestConfig(symbols=symbols, start="2024-01-01", end="2024-01-31", strategy=_Churn.name)
    churn = build_report(run_backtest(config, _bars(300, 0.001, 3, symbols, vol=0.002), _Churn()))
    s = churn["summary"]
    assert s["total_return"] < 0 < s["buy_and_hold_return"]
    assert any("lost money" in v for v in churn["verdict"])
    assert any("less than buy & hold" in v for v in churn["verdict"])
    out = io.StringIO()
    render_console(churn, Console(file=out, width=200, color_system=None))
    assert "The strategy lost money" in out.getvalue()


def test_downsample_indices_keeps_ends_and_extremes():
    rng = np.random.default_rng(1)
    a = np.cumsum(rng.normal(size=20_000))
    b = np.cumsum(rng.normal(size=20_000))
    idx = downsample_indices(1000, a, b)
    assert len(idx) <= 1000
    assert idx[0] == 0
    assert idx[-1] == a.size - 1
    assert np.all(np.diff(idx) > 0)
    for s in (a, b):
        assert int(np.argmin(s)) in idx
        assert int(np.argmax(s)) in idx
    assert np.array_equal(downsample_indices(50, a[:50]), np.arange(50))


# --------------------------------------------------------------------------- JSON and load_report


def test_write_json_round_trips_through_load_report(doc, tmp_path):
    path = write_json(doc, tmp_path / "out" / "report.json")
    assert load_report(path) == doc


def test_load_report_missing_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.json.*does not exist"):
        load_report(tmp_path / "nothere.json")


def test_load_report_truncated_file_raises_data_error(doc, tmp_path):
    text = json.dumps(doc)
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    with pytest.raises(DataError, match=r"cut\.json is not valid JSON"):
        load_report(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"hello": "world"}, "no 'schema' key"),
        (["a", "list"], "no 'schema' key"),
        ({"schema": "vendor.report/1"}, "schema 'vendor.report/1'"),
    ],
)
def test_load_report_foreign_file_raises_data_error(tmp_path, content, expected):
    path = tmp_path / "foreign.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    with pytest.raises(DataError, match=r"foreign\.json is not an autotrader backtest report") as e:
        load_report(path)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_load_report_newer_schema_version_raises_data_error(doc, tmp_path):
    path = tmp_path / "future.json"
    path.write_text(json.dumps({**doc, "schema": "autotrader.backtest/2"}), encoding="utf-8")
    with pytest.raises(DataError, match=r"future\.json uses report schema version 2"):
        load_report(path)


def test_load_report_incomplete_report_raises_data_error(doc, tmp_path):
    path = tmp_path / "partial.json"
    path.write_text(json.dumps({k: v for k, v in doc.items() if k != "trades"}), encoding="utf-8")
    with pytest.raises(DataError, match=r"partial\.json is an incomplete report: missing 'trades'"):
        load_report(path)


# --------------------------------------------------------------------------- HTML


def test_write_html_references_no_external_resource(doc, tmp_path):
    page = _html(doc, tmp_path)
    assert "http://" not in page
    assert "https://" not in page
    assert not re.search(r"<(script|link|img|iframe)\b", page, re.IGNORECASE)
    assert "url(" not in page
    assert "@import" not in page


def test_write_html_has_the_four_sections(doc, tmp_path):
    page = _html(doc, tmp_path)
    for section, title in (
        ("overview", "Overview"),
        ("performance", "Performance Summary"),
        ("trades", "List of Trades"),
        ("properties", "Properties"),
    ):
        assert f'<section id="{section}" class="panel"><h2>{title}</h2>' in page
    assert page.count("<svg ") >= 2  # equity and drawdown charts
    assert page.count('<tr class="entry">') == len(doc["trades"])


def test_write_html_escapes_text_and_lists_config_and_assumptions(doc, tmp_path):
    page = _html(doc, tmp_path)
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    for key in doc["config"]:
        assert f"<td>{key}</td>" in page
    for assumption in doc["assumptions"]:
        assert html.escape(assumption) in page


def test_write_html_file_size_reasonable(doc, tmp_path):
    size = write_html(doc, tmp_path / "r.html").stat().st_size
    assert size < 1_000_000


# --------------------------------------------------------------------------- CSV


def _read_csv(path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_write_csv_headers_and_trade_count(doc, tmp_path):
    paths = write_csv(doc, tmp_path / "csv")
    by_name = {p.name: _read_csv(p) for p in paths}
    assert {"trades.csv", "equity.csv", "summary.csv"} <= set(by_name)
    trades = by_name["trades.csv"]
    assert tuple(trades[0]) == TRADE_FIELDS
    assert len(trades) - 1 == len(doc["trades"])
    assert float(trades[-1][TRADE_FIELDS.index("cum_pnl_usd")]) == pytest.approx(doc["trades"][-1]["cum_pnl_usd"])
    assert by_name["equity.csv"][0] == ["time", "ts_ms", "equity", "benchmark", "drawdown"]
    assert len(by_name["equity.csv"]) - 1 == doc["equity_curve"]["points"]
    summary = dict(by_name["summary.csv"][1:])
    assert by_name["summary.csv"][0] == ["metric", "value"]
    assert float(summary["total_return"]) == doc["summary"]["total_return"]
    assert "signal_accuracy.accuracy" in summary
    assert by_name["performance.csv"][0] == ["metric", "label", "unit", "all", "long", "short"]


# --------------------------------------------------------------------------- console


def test_render_console_prints_the_documented_tree(doc):
    out = io.StringIO()
    render_console(doc, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    lines = text.splitlines()
    assert lines[0] == "📊 BACKTEST REPORT (2024-01-01 → 2024-01-21)"
    symbols_at = lines.index("🎯 SYMBOL PERFORMANCE")
    risk_at = next(i for i, line in enumerate(lines) if line.startswith("⚠️") and "RISK METRICS" in line)
    assert 0 < symbols_at < risk_at
    assert all(line.startswith(("├── ", "└── ", "│ ", "    ")) for line in lines[1:symbols_at])
    assert f"Total Return: {doc['summary']['total_return'] * 100:+.2f}%" in text
    for label in ("Sharpe Ratio", "Win Rate", "Profit Factor", "Max Drawdown", "VaR 95%", "Verdict"):
        assert label in text
    for row in doc["per_symbol"]:
        symbol_line = next(line for line in lines[symbols_at:risk_at] if row["symbol"] in line)
        assert f"{100 * row['own_return']:+.2f}% on the capital its trades used" in symbol_line
        assert f"win rate {100 * row['win_rate']:.1f}%" in symbol_line
    assert "└── Stress Test Survival: not run" in text


def test_render_console_shows_stress_survival_when_stress_tests_ran(doc):
    out = io.StringIO()
    stressed = {**doc, "stress": {"survived": 7, "failed": 2, "not_applicable": 1, "total": 10}}
    render_console(stressed, Console(file=out, width=200, color_system=None))
    assert "└── Stress Test Survival: 7/10 (2 failed, 1 not applicable)" in out.getvalue()


def test_per_symbol_own_return_is_net_pnl_over_the_capital_its_trades_used(doc, result):
    for row in doc["per_symbol"]:
        mask = result.trades["symbol"] == row["symbol"]
        used = np.mean(result.trades["qty"][mask] * result.trades["entry_price"][mask])
        assert row["own_return"] == pytest.approx(np.sum(result.trades["pnl"][mask]) / used, rel=1e-12)


def test_event_episodes_group_repeated_denials_by_kind_symbol_and_gap():
    hour = 3_600_000
    ts = np.array([0, hour, 2 * hour, 0, 30 * hour, 31 * hour, 5 * hour], dtype=np.int64)
    symbols = np.array(["BTC", "BTC", "BTC", "ETH", "ETH", "ETH", "BTC"])
    kinds = np.array(["correlation"] * 6 + ["daily_loss"])
    episodes = event_episodes(ts, symbols, kinds)
    assert [(e["event"], e["symbol"], e["count"]) for e in episodes] == [
        ("correlation", "BTC", 3),
        ("correlation", "ETH", 1),
        ("daily_loss", "BTC", 1),
        ("correlation", "ETH", 2),  # more than a day after the last one: a new episode
    ]
    assert episodes[0]["first"] == "1970-01-01T00:00:00Z"
    assert episodes[0]["last"] == "1970-01-01T02:00:00Z"
    assert sum(e["count"] for e in episodes) == ts.size


def test_build_report_keeps_every_event_and_its_episodes(doc, result):
    risk = doc["risk"]
    assert len(risk["events"]) == risk["events_total"] == len(result.events)
    assert sum(e["count"] for e in risk["event_episodes"]) == len(result.events)


def test_write_html_equity_chart_is_log_scale_by_default_with_linear_and_return_views(doc, tmp_path):
    page = _html(doc, tmp_path)
    assert '<input type="radio" name="equity-scale" id="scale-log" checked>' in page
    for view in ("log", "linear", "indexed"):
        assert f'class="view view-{view}"><svg' in page
    log_view = page.split('class="view view-log">')[1].split("</svg>")[0]
    linear_view = page.split('class="view view-linear">')[1].split("</svg>")[0]
    assert log_view != linear_view


class _Never(Strategy):
    """Never signals: no trade at all."""

    name = "test_reports_never"

    def generate(self, data: AlignedCandles) -> Signals:
        return Signals.from_direction(np.full(data.close.shape, np.nan))


def test_build_report_no_trades_renders_everywhere(tmp_path):
    symbols = ("BTCUSDT",)
    config = BacktestConfig(symbols=symbols, start="2024-01-01", end="2024-01-31", strategy=_Never.name)
    empty = build_report(run_backtest(config, _bars(200, 0.001, 5, symbols), _Never()))
    assert empty["trades"] == []
    assert empty["summary"]["total_return"] == 0.0
    assert empty["performance"]["all"]["profit_factor"] is None
    assert "The strategy made no trades." in empty["verdict"]
    assert any("less than buy & hold" in v for v in empty["verdict"])
    assert load_report(write_json(empty, tmp_path / "e.json")) == empty
    assert "No closed trades." in _html(empty, tmp_path)
    trades_csv = next(p for p in write_csv(empty, tmp_path) if p.name == "trades.csv")
    assert _read_csv(trades_csv) == [list(TRADE_FIELDS)]
    out = io.StringIO()
    render_console(empty, Console(file=out, width=200, color_system=None))
    assert "Total Return: +0.00%" in out.getvalue()


def test_build_report_long_run_downsamples_curve_keeping_extremes():
    symbols = ("BTCUSDT",)
    config = BacktestConfig(symbols=symbols, start="2024-01-01", end="2025-12-31", strategy=_Churn.name)
    long_run = run_backtest(config, _bars(12_000, 0.0, 11, symbols), _Churn())
    curve = build_report(long_run)["equity_curve"]
    assert curve["downsampled"]
    assert curve["bars"] == 12_000
    assert curve["points"] == len(curve["ts_ms"]) <= MAX_CURVE_POINTS
    assert curve["ts_ms"][0] == long_run.ts[0]
    assert curve["ts_ms"][-1] == long_run.ts[-1]
    assert min(curve["equity"]) == long_run.equity.min()
    assert min(curve["drawdown"]) == metrics.max_drawdown(long_run.equity)
    assert len(curve["daily"]["ts_ms"]) == len(metrics.daily_equity(long_run.ts, long_run.equity)[0])
