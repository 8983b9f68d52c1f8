"""Renderers of the backtest result document built by ``report_data.build_report``.

Console (rich), a self-contained offline HTML report modelled on TradingView's Strategy Tester,
JSON and CSV. They only format: every number comes from the document, which computed it from
the run's data. Nothing here opens a network connection, and the HTML references no external
resource (no CDN, no web font, no link): charts are inline SVG drawn here.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from autotrader.analytics.report_data import MAX_EVENTS, TRADE_FIELDS, downsample_indices
from autotrader.files import atomic_output, write_text_atomic

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["render_console", "write_csv", "write_html", "write_json"]

MAX_HTML_TRADES: Final = 2000
MAX_CHART_POINTS: Final = 1200
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_NA: Final = "n/a"

# --------------------------------------------------------------------------- number formatting


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _special(v: Any) -> str | None:
    """Text for a value that is not a finite number (None, "inf", "-inf")."""
    if v is None:
        return _NA
    if v == "inf":
        return "∞"
    if v == "-inf":
        return "-∞"
    if not _is_num(v):
        return str(v)
    return None


def _fmt_pct(fraction: Any, digits: int = 2, sign: bool = True) -> str:
    """A fraction as percent: 0.0512 → "+5.12%"."""
    text = _special(fraction)
    if text is not None:
        return text
    return f"{fraction * 100:{'+' if sign else ''}.{digits}f}%"


def _fmt_pct_value(pct: Any, digits: int = 2, sign: bool = False) -> str:
    """A value already in percent: 5.12 → "5.12%"."""
    text = _special(pct)
    if text is not None:
        return text
    return f"{pct:{'+' if sign else ''}.{digits}f}%"


def _fmt_usd(v: Any, sign: bool = False) -> str:
    text = _special(v)
    if text is not None:
        return text
    return f"{v:{'+' if sign else ''},.2f} USD"


def _fmt_num(v: Any, digits: int = 2) -> str:
    text = _special(v)
    if text is not None:
        return text
    return f"{v:,.{digits}f}"


def _fmt_count(v: Any) -> str:
    text = _special(v)
    return text if text is not None else f"{int(v):,d}"


def _fmt_price(v: Any) -> str:
    text = _special(v)
    if text is not None:
        return text
    digits = 2 if v == 0 else min(10, max(2, 5 - math.floor(math.log10(abs(v)))))
    return f"{v:,.{digits}f}"


_UNIT_FORMAT: Final[dict[str, Callable[[Any], str]]] = {
    "usd": _fmt_usd,
    "pct": _fmt_pct_value,
    "ratio": lambda v: _fmt_num(v, 3),
    "count": _fmt_count,
    "bars": lambda v: _fmt_num(v, 1),
}


def _usd_and_pct(usd: Any, pct: Any) -> str:
    return f"{_fmt_usd(usd, sign=True)} ({_fmt_pct_value(pct, sign=True)})"


def _date(iso: str) -> str:
    return iso[:10]


# --------------------------------------------------------------------------- console


def render_console(doc: dict[str, Any], console: Console) -> None:
    """Print the summary of a result document to a rich ``console`` as the documented tree.

    📊 BACKTEST REPORT (returns, ratios, trades, costs, warm-up), 🎯 SYMBOL PERFORMANCE (each symbol's
    own return and win rate beside its contribution to the portfolio) and ⚠️ RISK METRICS (drawdown,
    VaR, denials, halts and, when stress tests ran, "Stress Test Survival: k/10"), then the verdict.
    """
    from rich.text import Text
    from rich.tree import Tree

    s, p, risk = doc["summary"], doc["period"], doc["risk"]
    cfg = doc["config"]

    def text(*parts: tuple[str, str] | str) -> Text:
        out = Text()
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(part[0], style=part[1])
        return out

    report = Tree(text((f"📊 BACKTEST REPORT ({_date(p['first_bar'])} → {_date(p['last_bar'])})", "bold")))
    report.add(
        f"Strategy {cfg['strategy']} on {', '.join(cfg['symbols'])} ({cfg['exchange']} {cfg['timeframe']}, "
        f"{p['bars']:,d} bars, {cfg['market']}, initial capital {_fmt_usd(cfg['initial_capital'])})"
    )
    report.add(
        text(
            "Total Return: ",
            (_fmt_pct(s["total_return"]), _tone(s["total_return"])),
            f" ({_fmt_usd(s['net_profit_usd'], sign=True)}; buy & hold: {_fmt_pct(s['buy_and_hold_return'])})",
        )
    )
    report.add(f"Sharpe Ratio: {_fmt_num(s['sharpe_ratio'])} (daily returns, 365-day year)")
    report.add(f"Win Rate: {_fmt_pct(s['win_rate'], 1, sign=False)}   Profit Factor: {_fmt_num(s['profit_factor'])}")
    report.add(
        f"Trades: {_fmt_count(s['trades'])} (long {_fmt_count(s['long_trades'])}, short "
        f"{_fmt_count(s['short_trades'])})   Time in market: {_fmt_pct(s['time_in_market'], 1, sign=False)}"
    )
    if "costs_usd" in s:
        report.add(
            f"Costs: {_fmt_usd(s['costs_usd'])} (commission {_fmt_usd(s['commission_paid_usd'])} + estimated "
            f"slippage {_fmt_usd(s['slippage_cost_usd'])}) = "
            f"{_fmt_pct(s['costs_share_of_gross_profit'], 1, sign=False)} of gross profit "
            f"({_fmt_usd(s['gross_profit_before_costs_usd'])}, winning trades before costs)"
        )
    else:
        report.add(f"Commission paid: {_fmt_usd(s['commission_paid_usd'])}")
    acc = s.get("signal_accuracy")
    if acc:
        report.add(
            f"Signal accuracy: {_fmt_pct(acc['accuracy'], 1, sign=False)} of {acc['evaluated']} traded "
            f"signals right over {acc['horizon_bars']} bars"
        )
    warm = p.get("warmup")
    if warm and warm.get("note"):
        report.add(f"Warm-up: {warm['note'].removeprefix('warm-up ')}")
    console.print(report, soft_wrap=False)

    symbols = Tree(text(("🎯 SYMBOL PERFORMANCE", "bold")))
    for r in doc["per_symbol"]:
        own = r.get("own_return")
        symbols.add(
            text(
                f"{r['symbol']}: ",
                (_fmt_pct(own), _tone(own)) if own is not None else "n/a",
                f" on the capital its trades used, win rate {_fmt_pct(r['win_rate'], 1, sign=False)}, "
                f"{r['trades']} trades; contribution to the portfolio "
                f"{_fmt_pct_value(r['contribution_pct'], sign=True)}",
            )
        )
    console.print(symbols, soft_wrap=False)

    risks = Tree(text(("⚠️  RISK METRICS", "bold")))
    risks.add(
        f"Max Drawdown: {_fmt_pct(s['max_drawdown'], sign=False)} (marked equity, every bar)   "
        f"VaR 95%: {_fmt_pct(risk['value_at_risk_95'])} daily   Expected shortfall: "
        f"{_fmt_pct(risk['expected_shortfall_95'])}"
    )
    risks.add(f"Stability score: {_fmt_num(risk['stability_score'], 0)} / 100 (100 × R² of log daily equity)")
    episodes = risk.get("denial_episodes", {})
    denials = (
        ", ".join(f"{k} {_fmt_count(v)} bars ({_fmt_count(episodes.get(k, 0))} episodes)"
                  for k, v in risk["denial_counts"].items())
        or "none"
    )  # fmt: skip
    risks.add(f"Risk denials: {denials}")
    for halt in risk.get("halts", []):
        risks.add(text(("HALT: ", "bold red"), (halt_text(halt), "red")))
    if risk["state_event_counts"]:
        risks.add("Risk state changes: " + ", ".join(f"{k} {v}" for k, v in risk["state_event_counts"].items()))
    stress = doc.get("stress")
    if stress:
        risks.add(text(("Stress Test Survival: ", "bold"), stress_survival_text(stress)))
    else:
        risks.add("Stress Test Survival: not run (--stress-test runs the ten scenarios)")
    console.print(risks, soft_wrap=False)
    for fact in doc.get("verdict", []):
        console.print(text(("Verdict: ", "bold"), (fact, _verdict_style(fact))), soft_wrap=True)


def stress_survival_text(stress: dict[str, Any]) -> str:
    """``k/10`` from a saved stress report (``StressReport.to_dict``), with its failed and N/A counts."""
    na = stress.get("not_applicable", 0)
    extra = f" ({stress.get('failed', 0)} failed" + (f", {na} not applicable" if na else "") + ")"
    return f"{stress['survived']}/{stress['total']}{extra}"


def halt_text(halt: dict[str, Any]) -> str:
    """One line for a drawdown halt: date, equity, drawdown, and how long the run stood idle."""
    share = _fmt_pct(halt["idle_share_of_period"], 0, sign=False)
    idle = f"{_fmt_num(halt['idle_days'], 1)} days ({share} of the period)"
    after = (
        f"resumed {halt['resumed'][:16].replace('T', ' ')} UTC after {idle}, peak re-based"
        if halt.get("resumed")
        else f"no trading for the remaining {idle} (--on-halt stop)"
    )
    return (
        f"drawdown kill switch on {halt['time'][:16].replace('T', ' ')} UTC at equity {_fmt_usd(halt['equity_usd'])} "
        f"({_fmt_pct(halt['drawdown'])} from the peak {_fmt_usd(halt['peak_equity_usd'])}); {after}"
    )


def _tone(v: Any) -> str:
    if not _is_num(v) or v == 0:
        return ""
    return "green" if v > 0 else "red"


def _verdict_style(fact: str) -> str:
    bad = ("lost money", "less than buy & hold", "too few", "In-sample", "in-sample", "no trades")
    return "yellow" if any(b in fact for b in bad) else ""


# --------------------------------------------------------------------------- JSON / CSV


def write_json(doc: dict[str, Any], path: str | Path) -> Path:
    """Write ``doc`` as strict JSON (no NaN), atomically; read it back with ``report_data.load_report``."""
    text = json.dumps(doc, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return write_text_atomic(Path(path), text)


def write_csv(doc: dict[str, Any], directory: str | Path) -> list[Path]:
    """Write the trades, curves and statistics of ``doc`` as CSV files into ``directory``.

    ``trades.csv`` (one row per closed trade, columns ``TRADE_FIELDS``), ``equity.csv`` (the per-bar
    curve as stored in the document: every bar up to ``MAX_CURVE_POINTS``, else downsampled keeping
    extremes), ``equity_daily.csv`` (every UTC day), ``summary.csv`` (``metric,value``) and
    ``performance.csv`` (the All/Long/Short table). Returns the paths written.
    """
    out_dir = Path(directory)
    out_dir.mkdir(parents=True, exist_ok=True)
    curve, daily = doc["equity_curve"], doc["equity_curve"]["daily"]
    perf = doc["performance"]
    tables: list[tuple[str, Sequence[str], Iterable[Sequence[Any]]]] = [
        ("trades.csv", TRADE_FIELDS, ([t.get(k) for k in TRADE_FIELDS] for t in doc["trades"])),
        (
            "equity.csv",
            ("time", "ts_ms", "equity", "benchmark", "drawdown"),
            _curve_rows(curve),
        ),
        (
            "equity_daily.csv",
            ("date", "ts_ms", "equity", "benchmark", "drawdown"),
            _curve_rows(daily, day=True),
        ),
        ("summary.csv", ("metric", "value"), _flatten(doc["summary"])),
        (
            "performance.csv",
            ("metric", "label", "unit", "all", "long", "short"),
            (
                [r["key"], r["label"], r["unit"], *(perf[c].get(r["key"]) for c in perf["columns"])]
                for r in perf["rows"]
            ),
        ),
    ]
    paths = []
    for name, header, rows in tables:
        path = out_dir / name
        with atomic_output(path) as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows([_csv_cell(v) for v in row] for row in rows)
        paths.append(path)
    return paths


def _curve_rows(curve: dict[str, Any], day: bool = False) -> Iterable[list[Any]]:
    for ts, eq, bench, dd in zip(curve["ts_ms"], curve["equity"], curve["benchmark"], curve["drawdown"], strict=True):
        when = _iso_ms(ts)
        yield [when[:10] if day else when, ts, eq, bench, dd]


def _flatten(d: dict[str, Any], prefix: str = "") -> Iterable[list[Any]]:
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield [f"{prefix}{k}", v]


def _csv_cell(v: Any) -> Any:
    return "" if v is None else v


def _iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- HTML


def write_html(doc: dict[str, Any], path: str | Path) -> Path:
    """Write a self-contained offline HTML report (TradingView Strategy Tester layout).

    Tabs: Overview (key figures, equity vs buy & hold, drawdown, monthly returns, per symbol, risk),
    Performance Summary (All / Long / Short), List of Trades (entry and exit rows; the first
    ``MAX_HTML_TRADES``, the rest are in the JSON and CSV exports) and Properties (every
    configuration value, risk limit and assumption). No external resource is referenced.
    """
    cfg, p = doc["config"], doc["period"]
    title = f"{cfg['strategy']} · {', '.join(cfg['symbols'])} · {cfg['timeframe']}"
    tabs = (
        ("overview", "Overview", _html_overview(doc)),
        ("performance", "Performance Summary", _html_performance(doc)),
        ("trades", "List of Trades", _html_trades(doc)),
        ("properties", "Properties", _html_properties(doc)),
    )
    radios = "".join(
        f'<input type="radio" name="tab" id="tab-{key}"{" checked" if i == 0 else ""}>'
        for i, (key, _, _) in enumerate(tabs)
    )
    labels = "".join(f'<label for="tab-{key}">{_e(name)}</label>' for key, name, _ in tabs)
    panels = "".join(
        f'<section id="{key}" class="panel"><h2>{_e(name)}</h2>{body}</section>' for key, name, body in tabs
    )
    tab_css = "".join(
        f"#tab-{key}:checked~.tabbar label[for=tab-{key}]{{border-bottom-color:#2962ff;color:#131722}}"
        f"#tab-{key}:checked~.panels #{key}{{display:block}}"
        for key, _, _ in tabs
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Backtest report · {_e(title)}</title><style>{_CSS}{tab_css}</style></head><body>"
        f"<header><h1>{_e(title)}</h1><p>{_e(_date(p['first_bar']))} → {_e(_date(p['last_bar']))} · "
        f"{p['bars']:,d} bars · {_e(cfg['exchange'])} {_e(cfg['market'])} · "
        f"autotrader {_e(doc['version'])} · schema {_e(doc['schema'])}</p></header>"
        f'{radios}<nav class="tabbar">{labels}</nav><main class="panels">{panels}</main></body></html>\n'
    )
    return write_text_atomic(Path(path), page)


_CSS: Final = (
    "body{font:14px/1.4 -apple-system,'Segoe UI',Roboto,Arial,sans-serif;color:#131722;background:#fff;"
    "margin:0}header{padding:12px 24px;border-bottom:1px solid #e0e3eb}h1{font-size:20px;margin:0}"
    "header p{margin:4px 0 0;color:#787b86}input[name=tab]{display:none}"
    ".tabbar{display:flex;gap:4px;padding:0 24px;border-bottom:1px solid #e0e3eb}"
    ".tabbar label{padding:10px 14px;cursor:pointer;color:#787b86;border-bottom:2px solid transparent}"
    ".panel{display:none;padding:16px 24px}.panel h2{font-size:16px;margin:0 0 12px}"
    "h3{font-size:14px;margin:20px 0 8px}table{border-collapse:collapse;font-variant-numeric:tabular-nums}"
    "th,td{padding:5px 10px;border-bottom:1px solid #f0f3fa;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}th{color:#787b86;font-weight:600}"
    ".pos{color:#089981}.neg{color:#f23645}.muted{color:#787b86}"
    ".cards{display:flex;flex-wrap:wrap;gap:24px;margin-bottom:12px}.card div:first-child{color:#787b86;"
    "font-size:12px}.card div:last-child{font-size:18px}.verdict{background:#fff8e1;border-left:4px solid "
    "#f9a825;padding:8px 12px;margin:8px 0 16px}.verdict p{margin:2px 0}svg{display:block;max-width:100%;"
    "height:auto}svg text{font-size:11px;fill:#787b86}.legend span{margin-right:16px}"
    ".swatch{display:inline-block;width:12px;height:3px;vertical-align:middle;margin-right:4px}"
    ".heat td{min-width:52px}.scroll{overflow-x:auto}ul{padding-left:20px}li{margin:3px 0}"
    "tr.exit td{border-bottom:1px solid #d1d4dc}"
    ".equity-views label{margin:0 12px 0 4px;cursor:pointer}.equity-views .view{display:none}"
    "#scale-log:checked~.view-log,#scale-linear:checked~.view-linear,#scale-indexed:checked~.view-indexed"
    "{display:block}"
)


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _cls(v: Any) -> str:
    if not _is_num(v) or v == 0:
        return ""
    return ' class="pos"' if v > 0 else ' class="neg"'


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    """A table of already-escaped cell HTML."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(cells) + "</tr>" for cells in rows)
    return f'<div class="scroll"><table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _td(text: str, value: Any = None) -> str:
    return f"<td{_cls(value)}>{_e(text)}</td>"


def _html_overview(doc: dict[str, Any]) -> str:
    s, a = doc["summary"], doc["performance"]["all"]
    cards = (
        ("Net Profit", _usd_and_pct(a["net_profit_usd"], a["net_profit_pct"]), a["net_profit_usd"]),
        ("Buy & Hold", _fmt_pct(s["buy_and_hold_return"]), s["buy_and_hold_return"]),
        ("Total Closed Trades", _fmt_count(a["trades"]), None),
        ("Percent Profitable", _fmt_pct_value(a["percent_profitable"]), None),
        ("Profit Factor", _fmt_num(a["profit_factor"], 3), None),
        ("Max Drawdown", _usd_and_pct(a["max_drawdown_usd"], a["max_drawdown_pct"]), a["max_drawdown_usd"]),
        ("Avg Trade", _fmt_usd(a["avg_trade_usd"]), a["avg_trade_usd"]),
        ("Avg # Bars in Trades", _fmt_num(a["avg_bars_in_trades"], 1), None),
    )  # fmt: skip
    parts = [
        '<div class="cards">'
        + "".join(f'<div class="card"><div>{_e(k)}</div><div{_cls(v)}>{_e(text)}</div></div>' for k, text, v in cards)
        + "</div>"
    ]
    halts = doc.get("risk", {}).get("halts", [])
    if halts:
        parts.append(
            '<div class="verdict halt">'
            + "".join(f"<p><strong>HALT:</strong> {_e(halt_text(h))}</p>" for h in halts)
            + "</div>"
        )
    if doc.get("verdict"):
        parts.append('<div class="verdict">' + "".join(f"<p>{_e(f)}</p>" for f in doc["verdict"]) + "</div>")
    curve = doc["equity_curve"]
    parts.append("<h3>Equity vs buy &amp; hold</h3>")
    parts.append(_equity_views(curve))
    parts.append("<h3>Drawdown</h3>")
    dd_pct = [None if v is None else 100.0 * v for v in curve["drawdown"]]
    parts.append(
        _svg_chart(
            curve["ts_ms"],
            [("Drawdown %", dd_pct, "#f23645")],
            fmt=lambda v: f"{v:.1f}%",
            area=True,
            height=180,
        )
    )
    if curve["downsampled"]:
        parts.append(
            f'<p class="muted">Charts show {curve["points"]:,d} of {curve["bars"]:,d} bars (each stretch '
            "keeps its lowest and highest points); figures use every bar.</p>"
        )
    parts += [_html_monthly(doc), _html_per_symbol(doc), _html_risk(doc)]
    return "".join(parts)


def _equity_views(curve: dict[str, Any]) -> str:
    """Equity vs buy & hold three ways, switched without script: log scale (default), linear, return %."""
    lines = [("Strategy equity", curve["equity"], "#2962ff"), ("Buy & hold", curve["benchmark"], "#f7a600")]

    def indexed(values: Sequence[Any]) -> list[float | None]:
        first = next((float(v) for v in values if v is not None and float(v) > 0), None)
        return [None if v is None or first is None else 100.0 * (float(v) / first - 1.0) for v in values]

    views = (
        ("log", "Log scale", _svg_chart(curve["ts_ms"], lines, fmt=lambda v: f"{v:,.0f}", log=True)),
        ("linear", "Linear", _svg_chart(curve["ts_ms"], lines, fmt=lambda v: f"{v:,.0f}")),
        (
            "indexed",
            "Return %",
            _svg_chart(
                curve["ts_ms"],
                [(f"{name} return %", indexed(values), color) for name, values, color in lines],
                fmt=lambda v: f"{v:+,.0f}%",
            ),
        ),
    )
    radios = "".join(
        f'<input type="radio" name="equity-scale" id="scale-{key}"{" checked" if i == 0 else ""}>'
        f'<label for="scale-{key}">{_e(label)}</label>'
        for i, (key, label, _) in enumerate(views)
    )
    charts = "".join(f'<div class="view view-{key}">{svg}</div>' for key, _, svg in views)
    return f'<div class="equity-views">{radios}{charts}</div>'


def _html_monthly(doc: dict[str, Any]) -> str:
    by_year: dict[int, dict[int, Any]] = {}
    for r in doc["monthly_returns"]:
        by_year.setdefault(r["year"], {})[r["month"]] = r["return"]
    yearly = {r["year"]: r for r in doc["yearly_returns"]}
    rows = []
    for year in sorted(by_year):
        cells = [f"<td>{year}</td>"]
        for m in range(1, 13):
            v = by_year[year].get(m)
            cells.append(_td(_fmt_pct(v, 1) if m in by_year[year] else "", v))
        y = yearly.get(year, {})
        cells.append(_td(_fmt_pct(y.get("return"), 1), y.get("return")))
        cells.append(_td(_fmt_pct(y.get("buy_and_hold_return"), 1), y.get("buy_and_hold_return")))
        rows.append(cells)
    header = ["Year", *_MONTHS, "Year", "Buy &amp; hold"]
    return "<h3>Monthly returns</h3>" + _table(header, rows, ' class="heat"')


def _html_per_symbol(doc: dict[str, Any]) -> str:
    rows = [
        [
            _td(r["symbol"]),
            _td(_fmt_count(r["trades"])),
            _td(_fmt_usd(r["net_profit_usd"], sign=True), r["net_profit_usd"]),
            _td(_fmt_pct(r.get("own_return")), r.get("own_return")),
            _td(_fmt_pct_value(r["contribution_pct"], sign=True), r["contribution_pct"]),
            _td(_fmt_pct(r["win_rate"], 1, sign=False)),
            _td(_fmt_num(r["profit_factor"], 3)),
            _td(_fmt_usd(r["commission_paid_usd"])),
            _td(_fmt_pct(r["buy_and_hold_return"]), r["buy_and_hold_return"]),
        ]
        for r in doc["per_symbol"]
    ]
    header = [
        "Symbol",
        "Trades",
        "Net P&amp;L",
        "Own return",
        "Contribution",
        "Win rate",
        "Profit factor",
        "Commission",
        "Buy &amp; hold",
    ]
    note = (
        '<p class="muted">Own return: the symbol\'s net P&amp;L over the capital its trades used (mean entry '
        "notional). Contribution: its net P&amp;L over the portfolio's initial capital.</p>"
    )
    return "<h3>Per symbol</h3>" + _table(header, rows) + note


def _html_risk(doc: dict[str, Any]) -> str:
    risk, s = doc["risk"], doc["summary"]
    rows = [
        ("VaR 95% (daily)", _fmt_pct(risk["value_at_risk_95"])),
        ("Expected shortfall 95% (daily)", _fmt_pct(risk["expected_shortfall_95"])),
        ("Stability score", f"{_fmt_num(risk['stability_score'], 1)} / 100"),
        ("Max drawdown", _fmt_pct(risk["max_drawdown"])),
        ("Max drawdown duration", f"{_fmt_num(s['max_drawdown_duration_days'], 1)} days"),
        ("Average exposure", _fmt_pct(s["avg_exposure"], 1, sign=False)),
        ("Time in market", _fmt_pct(s["time_in_market"], 1, sign=False)),
    ]
    if "costs_usd" in s:
        rows.append(
            (
                "Costs (commission + est. slippage) / gross profit",
                f"{_fmt_usd(s['costs_usd'])} = {_fmt_pct(s['costs_share_of_gross_profit'], 1, sign=False)}",
            )
        )
    acc = s.get("signal_accuracy")
    if acc:
        rows.append(
            (
                f"Signal accuracy ({acc['horizon_bars']} bars)",
                f"{_fmt_pct(acc['accuracy'], 1, sign=False)} of {acc['evaluated']}",
            )
        )
    episodes = risk.get("denial_episodes", {})
    rows += [
        (f"Denied: {k}", f"{_fmt_count(v)} bars, {_fmt_count(episodes.get(k, 0))} episodes")
        for k, v in risk["denial_counts"].items()
    ]
    rows += [(f"Risk state: {k}", _fmt_count(v)) for k, v in risk["state_event_counts"].items()]
    out = "".join(f"<p><strong>HALT:</strong> {_e(halt_text(h))}</p>" for h in risk.get("halts", []))
    out = "<h3>Risk</h3>" + out + _table(["Measure", "Value"], ([_td(k), _td(v)] for k, v in rows))
    episodes = risk.get("event_episodes") or []
    if episodes:
        shown = episodes[:MAX_EVENTS]
        total = f"{risk['events_total']:,d} events in {len(episodes):,d} episodes"
        note = f"; the first {len(shown):,d} shown" if len(shown) < len(episodes) else ""
        out += (
            f"<h3>Risk events ({total}{note})</h3>"
            '<p class="muted">An episode: events of one kind and symbol at most a day apart (a denial repeated '
            "on every bar while a signal persists). Every event is listed in the JSON export.</p>"
        )
        out += _table(
            ["Event", "Symbol", "First (UTC)", "Last (UTC)", "Count"],
            (
                [_td(e["event"]), _td(e["symbol"]), _td(e["first"]), _td(e["last"]), _td(_fmt_count(e["count"]))]
                for e in shown
            ),
        )
    return out


def _html_performance(doc: dict[str, Any]) -> str:
    perf = doc["performance"]
    rows = []
    for r in perf["rows"]:
        fmt = _UNIT_FORMAT[r["unit"]]
        cells = [_td(r["label"])]
        for col in perf["columns"]:
            v = perf[col].get(r["key"])
            blank = v is None and r["key"] in _ALL_ONLY
            cells.append(_td("" if blank else fmt(v), v if r["unit"] in ("usd", "pct") else None))
        rows.append(cells)
    out = _table(["", "All", "Long", "Short"], rows)
    s = doc["summary"]
    extra = [
        ("CAGR", _fmt_pct(s["cagr"])),
        ("Annual volatility", _fmt_pct(s["annual_volatility"], sign=False)),
        ("Calmar ratio", _fmt_num(s["calmar_ratio"], 3)),
        ("Best day", _fmt_pct(s["best_day"])),
        ("Worst day", _fmt_pct(s["worst_day"])),
        ("Expectancy", _fmt_usd(s["expectancy"])),
        ("Expectancy ratio", _fmt_num(s["expectancy_ratio"], 3)),
        ("Average holding time", f"{_fmt_num(s['avg_holding_hours'], 1)} h"),
        ("Buy & hold max drawdown", _fmt_pct(s["buy_and_hold_max_drawdown"])),
        ("Buy & hold Sharpe ratio", _fmt_num(s["buy_and_hold_sharpe_ratio"])),
    ]
    out += "<h3>More statistics</h3>" + _table(["", "Value"], ([_td(k), _td(v)] for k, v in extra))
    hist = doc["distributions"]["pnl_usd"]
    if hist["counts"]:
        out += "<h3>Trade P&amp;L distribution (USD)</h3>" + _svg_histogram(hist["edges"], hist["counts"])
    out += _html_time_analysis(doc)
    out += (
        "<h3>Conventions</h3><ul>" + "".join(f"<li>{_e(v)}</li>" for v in doc.get("conventions", {}).values()) + "</ul>"
    )
    return out


_ALL_ONLY: Final = frozenset(
    {
        "max_runup_usd", "max_runup_pct", "max_drawdown_usd", "max_drawdown_pct", "buy_and_hold_return_usd",
        "buy_and_hold_return_pct", "sharpe_ratio", "sortino_ratio",
    }
)  # fmt: skip


def _html_time_analysis(doc: dict[str, Any]) -> str:
    ta = doc["time_analysis"]

    def rows(items: list[dict[str, Any]], key: str) -> Iterable[list[str]]:
        for r in items:
            if r["trades"]:
                yield [
                    _td(str(r[key])),
                    _td(_fmt_count(r["trades"])),
                    _td(_fmt_pct_value(100.0 * r["wins"] / r["trades"], 1)),
                    _td(_fmt_usd(r["pnl_usd"], sign=True), r["pnl_usd"]),
                ]

    header = ["", "Trades", "Win rate", "Net P&amp;L"]
    return (
        "<h3>Trades by entry hour (UTC)</h3>"
        + _table(["Hour", *header[1:]], rows(ta["by_hour_utc"], "hour"))
        + "<h3>Trades by entry weekday</h3>"
        + _table(["Weekday", *header[1:]], rows(ta["by_weekday"], "weekday"))
    )  # fmt: skip


def _html_trades(doc: dict[str, Any]) -> str:
    trades = doc["trades"]
    if not trades:
        return '<p class="muted">No closed trades.</p>'
    shown = trades[:MAX_HTML_TRADES]
    note = ""
    if len(shown) < len(trades):
        note = (
            f'<p class="muted">Showing the first {len(shown):,d} of {len(trades):,d} trades; every trade '
            "is in the JSON and CSV exports.</p>"
        )
    head = (
        "<th>Trade #</th><th>Type</th><th>Signal</th><th>Date/Time (UTC)</th><th>Symbol</th><th>Price</th>"
        "<th>Contracts</th><th>Profit</th><th>Cum. Profit</th><th>Run-up</th><th>Drawdown</th>"
    )
    body = []
    for t in shown:
        side = "Long" if t["side"] == "long" else "Short"
        span = 'rowspan="2"'
        pnl_cls = _cls(t["pnl_usd"])
        body.append(
            f'<tr class="entry"><td {span}>{t["id"]}</td><td>Entry {side}</td><td>signal</td>'
            f"<td>{_e(t['entry_time'][:16].replace('T', ' '))}</td><td {span}>{_e(t['symbol'])}</td>"
            f"<td>{_e(_fmt_price(t['entry_price']))}</td><td {span}>{_e(_fmt_num(t['qty'], 6))}</td>"
            f"<td {span}{pnl_cls}>{_e(_fmt_usd(t['pnl_usd']))}<br>{_e(_fmt_pct_value(t['return_pct']))}</td>"
            f"<td {span}{_cls(t['cum_pnl_usd'])}>{_e(_fmt_usd(t['cum_pnl_usd']))}</td>"
            f"<td {span}>{_e(_fmt_usd(t['runup_usd']))}</td>"
            f"<td {span}>{_e(_fmt_usd(t['drawdown_usd']))}</td></tr>"
            f'<tr class="exit"><td>Exit {side}</td><td>{_e(t["exit_reason"])}</td>'
            f"<td>{_e(t['exit_time'][:16].replace('T', ' '))}</td>"
            f"<td>{_e(_fmt_price(t['exit_price']))}</td></tr>"
        )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'{note}<div class="scroll">{table}</div>'


def _html_properties(doc: dict[str, Any]) -> str:
    def kv(d: dict[str, Any]) -> Iterable[list[str]]:
        for k, v in d.items():
            text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
            yield [_td(k), f'<td style="text-align:left">{_e(text)}</td>']

    p = doc["period"]
    run = {
        "autotrader version": doc["version"],
        "report schema": doc["schema"],
        "data fingerprint (xxh3-128)": doc["data_fingerprint"] or "not recorded",
        "first bar (UTC)": p["first_bar"],
        "last bar (UTC)": p["last_bar"],
        "bars": p["bars"],
        "days": p["days"],
        "requested start": p["requested_start"],
        "requested end": p["requested_end"],
    }
    if p.get("note"):
        run["period note"] = p["note"]
    return (
        "<h3>Run</h3>" + _table(["", "Value"], kv(run))
        + "<h3>Configuration</h3>" + _table(["Setting", "Value"], kv(doc["config"]))
        + "<h3>Risk limits</h3>" + _table(["Limit", "Value"], kv(doc["risk_limits"]))
        + ("<h3>Signals</h3>" + _table(["", "Value"], kv(doc["signals"])) if doc.get("signals") else "")
        + "<h3>Assumptions</h3><ul>" + "".join(f"<li>{_e(a)}</li>" for a in doc["assumptions"]) + "</ul>"
    )  # fmt: skip


# --------------------------------------------------------------------------- SVG charts


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step + 1e-9) + 1)]


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Ticks for a log10 axis given in log10 units: 1-2-5 steps of each decade, or linear ones in a short range."""
    if hi - lo < 0.6:
        return [math.log10(v) for v in _nice_ticks(10**lo, 10**hi) if v > 0]
    ticks = [
        math.log10(m * 10.0**k)
        for k in range(math.floor(lo), math.ceil(hi) + 1)
        for m in ((1, 2, 5) if hi - lo < 3 else (1,))
    ]
    inside = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
    return inside if len(inside) >= 2 else ticks


def _svg_chart(
    ts_ms: Sequence[int],
    series: Sequence[tuple[str, Sequence[Any], str]],
    fmt: Callable[[float], str],
    area: bool = False,
    height: int = 300,
    log: bool = False,
) -> str:
    """Inline SVG line chart (no xmlns needed inside HTML); None values are skipped.

    ``log``: a log10 price axis (non-positive values are not drawn), so a curve that grew a
    hundredfold and one that grew a tenth are both readable.
    """
    width, left, right, top, bottom = 1000, 70, 10, 10, 24
    ts = np.asarray(ts_ms, dtype=np.float64)
    arrays = [np.array([np.nan if v is None else float(v) for v in values]) for _, values, _ in series]
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            arrays = [np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan) for a in arrays]
        linear_fmt = fmt

        def fmt(v: float) -> str:
            return linear_fmt(10**v)

    if ts.size < 2 or not any(np.isfinite(a).any() for a in arrays):
        return '<p class="muted">Not enough data to draw.</p>'
    filled = [np.where(np.isfinite(a), a, np.nanmean(a) if np.isfinite(a).any() else 0.0) for a in arrays]
    idx = downsample_indices(MAX_CHART_POINTS, *filled)
    ts = ts[idx]
    arrays = [a[idx] for a in arrays]
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays])
    lo, hi = float(finite.min()), float(finite.max())
    if area:
        hi = max(hi, 0.0)
    ticks = _log_ticks(lo, hi) if log else _nice_ticks(lo, hi)
    lo, hi = min(lo, ticks[0]), max(hi, ticks[-1])
    t0, t1 = ts[0], ts[-1] if ts[-1] > ts[0] else ts[0] + 1

    def x(t: np.ndarray) -> np.ndarray:
        return left + (t - t0) / (t1 - t0) * (width - left - right)

    def y(v: np.ndarray | float) -> Any:
        return top + (hi - np.asarray(v)) / ((hi - lo) or 1.0) * (height - top - bottom)

    out = [f'<svg viewBox="0 0 {width} {height}" role="img">']
    for tick in ticks:
        yy = float(y(tick))
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" stroke="#f0f3fa"/>')
        out.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{_e(fmt(tick))}</text>')
    span_days = (t1 - t0) / 86_400_000
    for t in np.linspace(t0, t1, 6):
        label = _iso_ms(int(t))[: 10 if span_days > 3 else 16].replace("T", " ")
        out.append(f'<text x="{float(x(t)):.1f}" y="{height - 6}" text-anchor="middle">{_e(label)}</text>')
    xs = x(ts)
    for (name, _, color), a in zip(series, arrays, strict=True):
        ok = np.isfinite(a)
        pts = " ".join(f"{px:.1f},{py:.1f}" for px, py in zip(xs[ok], y(a[ok]), strict=True))
        if area:
            base = float(y(0.0))
            poly = f"{xs[ok][0]:.1f},{base:.1f} {pts} {xs[ok][-1]:.1f},{base:.1f}"
            out.append(f'<polygon points="{poly}" fill="{color}" fill-opacity="0.25" stroke="none"/>')
        out.append(
            f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5">'
            f"<title>{_e(name)}</title></polyline>"
        )
    out.append("</svg>")
    legend = "".join(f'<span><i class="swatch" style="background:{c}"></i>{_e(n)}</span>' for n, _, c in series)
    return "".join(out) + f'<div class="legend">{legend}</div>'


def _svg_histogram(edges: Sequence[float], counts: Sequence[int]) -> str:
    width, height, left, bottom, top = 1000, 200, 40, 24, 10
    n, peak = len(counts), max(counts) or 1
    bar_w = (width - left - 10) / n
    out = [f'<svg viewBox="0 0 {width} {height}" role="img">']
    for i, c in enumerate(counts):
        h = c / peak * (height - top - bottom)
        color = "#089981" if edges[i] >= 0 else "#f23645"
        out.append(
            f'<rect x="{left + i * bar_w + 1:.1f}" y="{height - bottom - h:.1f}" '
            f'width="{max(bar_w - 2, 1):.1f}" height="{h:.1f}" fill="{color}">'
            f"<title>{_e(f'{edges[i]:,.2f} to {edges[i + 1]:,.2f} USD: {c} trades')}</title></rect>"
        )
    out.extend(
        f'<text x="{left + i * bar_w:.1f}" y="{height - 6}" text-anchor="middle">{edges[i]:,.2f}</text>'
        for i in (0, n // 2, n)
    )
    out.append(f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">{peak}</text></svg>')
    return "".join(out)
