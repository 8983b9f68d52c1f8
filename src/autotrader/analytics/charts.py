"""Charts of a saved backtest document: PNG files (matplotlib, headless) and one offline HTML page (plotly).

``write_charts(doc, out_dir)`` reads only the result document of ``report_data.build_report`` (or
``report_data.load_report``); every figure comes from that document or from
``autotrader.analytics.metrics`` applied to it, so the charts show the numbers the reports print.

Files written to ``out_dir`` (in this order):

``equity.png``              equity vs the equal-weight buy & hold basket
``drawdown.png``            underwater curve: % below the running equity peak
``monthly_returns.png``     heatmap of compounded monthly returns (years × months)
``yearly_returns.png``      strategy and buy & hold return per calendar year
``rolling_sharpe.png``      Sharpe ratio of the trailing 90 daily returns (30 for runs under 180 days)
``pnl_distribution.png``    histogram of closed trades' net P&L
``trade_duration.png``      histogram of holding time in hours
``returns_by_hour.png``     net P&L of trades by entry hour (UTC)
``returns_by_weekday.png``  net P&L of trades by entry weekday (UTC)
``symbol_contribution.png`` each symbol's net P&L as % of the initial capital
``monte_carlo_fan.png``     only with ``monte_carlo``: percentile bands of simulated equity paths
``charts.html``             the same charts, interactive, in one page that loads offline (plotly.js
                            inline, no network request)

PNGs are drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``): no pyplot, no
display, no global backend switch. A chart without data (no trades, too few days) is still
written, with a note saying why it is empty.

Monte Carlo fan-chart input (``monte_carlo``), a mapping with either
    ``bands``  ``{percentile: values}`` (percentile as a number or numeric string, e.g. ``5``, ``"50"``,
               ``95``; every band the same length), or
    ``paths``  a 2-D array ``(simulations, steps)`` from which the 5/25/50/75/95 % bands are taken;
and optionally ``x`` (step values; default ``0..steps-1``), ``actual`` (the realised path, drawn on
top), ``x_label`` (default ``"trade #"``), ``y_label`` (default ``"equity (USD)"``) and ``title``.
Bands are shaded in pairs (5-95, 25-75, ...) around the median.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from matplotlib import colormaps
from matplotlib import dates as mdates
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from autotrader.analytics import metrics
from autotrader.domain.errors import DataError
from autotrader.files import atomic_output, write_text_atomic

__all__ = ["HTML_NAME", "PNG_NAMES", "write_charts"]

PNG_NAMES: Final = (
    "equity.png",
    "drawdown.png",
    "monthly_returns.png",
    "yearly_returns.png",
    "rolling_sharpe.png",
    "pnl_distribution.png",
    "trade_duration.png",
    "returns_by_hour.png",
    "returns_by_weekday.png",
    "symbol_contribution.png",
)
FAN_NAME: Final = "monte_carlo_fan.png"
HTML_NAME: Final = "charts.html"

_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_FAN_PERCENTILES: Final = (5.0, 25.0, 50.0, 75.0, 95.0)
_GREEN: Final = "#26a69a"
_RED: Final = "#ef5350"
_BLUE: Final = "#2962ff"
_GREY: Final = "#9e9e9e"
_SIZE: Final = (10.0, 4.5)
_DPI: Final = 110
_THOUSANDS: Final = FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}")


# --------------------------------------------------------------------------- chart data


@dataclass(frozen=True)
class _Series:
    label: str
    x: np.ndarray
    y: np.ndarray
    color: str


@dataclass(frozen=True)
class _Chart:
    """One chart, independent of the renderer: ``kind`` picks how both renderers draw it."""

    name: str
    title: str
    kind: str  # line | area | bars | grouped_bars | histogram | heatmap | hbars | fan
    x_label: str = ""
    y_label: str = ""
    series: tuple[_Series, ...] = ()
    categories: tuple[str, ...] = ()
    matrix: np.ndarray | None = None  # heatmap values (rows × columns)
    row_labels: tuple[str, ...] = ()
    edges: np.ndarray | None = None  # histogram bin edges
    bands: tuple[tuple[float, np.ndarray], ...] = ()  # fan: (percentile, values)
    x: np.ndarray | None = None  # fan: step values of the bands
    note: str = ""  # shown instead of the data when it is empty
    log_scale: bool = False

    @property
    def empty(self) -> bool:
        return bool(self.note)


def _num(v: Any) -> float:
    """A document number: ``None`` → NaN, ``"inf"``/``"-inf"`` → ±inf."""
    return math.nan if v is None else float(v)


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([_num(v) for v in values], dtype=np.float64)


def _dates(ts_ms: Sequence[Any]) -> np.ndarray:
    return np.asarray(ts_ms, dtype=np.int64).astype("datetime64[ms]")


def _signed_colors(values: np.ndarray) -> list[str]:
    return [_GREEN if v >= 0 else _RED for v in values]


def _equity_chart(doc: Mapping[str, Any]) -> _Chart:
    curve = doc["equity_curve"]
    x = _dates(curve["ts_ms"])
    equity, benchmark = _floats(curve["equity"]), _floats(curve["benchmark"])
    both = np.concatenate((equity, benchmark))
    # a wide range (one curve 10x the other) is only readable on a log scale; it needs positive values
    log_scale = bool(both.size and np.min(both) > 0 and np.max(both) / np.min(both) > 10.0)
    return _Chart(
        "equity.png",
        "Equity vs buy & hold",
        "line",
        y_label="equity (USD, log scale)" if log_scale else "equity (USD)",
        series=(_Series("strategy", x, equity, _BLUE), _Series("buy & hold", x, benchmark, _GREY)),
        log_scale=log_scale,
    )


def _drawdown_chart(doc: Mapping[str, Any]) -> _Chart:
    curve = doc["drawdown_curve"]
    dd = 100.0 * _floats(curve["drawdown"])
    deepest = _num(curve.get("max_drawdown"))
    title = "Underwater (drawdown from peak)"
    if math.isfinite(deepest):
        title += f" — max {deepest * 100:.2f}%"
    return _Chart(
        "drawdown.png",
        title,
        "area",
        y_label="drawdown (%)",
        series=(_Series("drawdown", _dates(curve["ts_ms"]), dd, _RED),),
    )


def _monthly_chart(doc: Mapping[str, Any]) -> _Chart:
    rows = doc["monthly_returns"]
    if not rows:
        return _Chart("monthly_returns.png", "Monthly returns (%)", "heatmap", note="no complete month")
    years = sorted({int(r["year"]) for r in rows})
    matrix = np.full((len(years), 12), np.nan)
    for r in rows:
        matrix[years.index(int(r["year"])), int(r["month"]) - 1] = 100.0 * _num(r["return"])
    return _Chart(
        "monthly_returns.png",
        "Monthly returns (%)",
        "heatmap",
        matrix=matrix,
        categories=_MONTHS,
        row_labels=tuple(str(y) for y in years),
    )


def _yearly_chart(doc: Mapping[str, Any]) -> _Chart:
    rows = doc["yearly_returns"]
    if not rows:
        return _Chart("yearly_returns.png", "Yearly returns (%)", "grouped_bars", note="no calendar year")
    years = tuple(str(r["year"]) for r in rows)
    idx = np.arange(len(years), dtype=np.float64)
    return _Chart(
        "yearly_returns.png",
        "Yearly returns (%)",
        "grouped_bars",
        y_label="return (%)",
        categories=years,
        series=(
            _Series("strategy", idx, 100.0 * _floats([r["return"] for r in rows]), _BLUE),
            _Series("buy & hold", idx, 100.0 * _floats([r["buy_and_hold_return"] for r in rows]), _GREY),
        ),
    )


def _rolling_sharpe_chart(doc: Mapping[str, Any]) -> _Chart:
    daily = doc["equity_curve"]["daily"]
    name, title = "rolling_sharpe.png", "Rolling Sharpe ratio"
    try:
        returns = metrics.daily_returns(_floats(daily["equity"]))
    except DataError as e:
        return _Chart(name, title, "line", note=f"not defined: {e}")
    window = 90 if returns.size >= 180 else 30
    if returns.size < 2 * window:
        return _Chart(name, title, "line", note=f"needs at least {2 * window} days; the run has {returns.size}")
    sharpe = metrics.rolling_sharpe(returns, window)
    x = _dates(daily["ts_ms"])[1:]
    return _Chart(
        name,
        f"{title} ({window}-day window, annualised, rf = 0)",
        "line",
        y_label="Sharpe",
        series=(_Series(f"{window}-day Sharpe", x, sharpe, _BLUE),),
    )


def _histogram_chart(doc: Mapping[str, Any], key: str, name: str, title: str, x_label: str) -> _Chart:
    hist = doc["distributions"][key]
    if not hist["counts"]:
        return _Chart(name, title, "histogram", note="no closed trades")
    edges, counts = _floats(hist["edges"]), _floats(hist["counts"])
    centres = (edges[:-1] + edges[1:]) / 2.0
    color = _BLUE if key != "pnl_usd" else ""
    return _Chart(
        name,
        title,
        "histogram",
        x_label=x_label,
        y_label="trades",
        edges=edges,
        series=(_Series("trades", centres, counts, color),),
    )


def _time_chart(doc: Mapping[str, Any], key: str, label_key: str, name: str, title: str) -> _Chart:
    rows = doc["time_analysis"][key]
    if not any(int(r["trades"]) for r in rows):
        return _Chart(name, title, "bars", note="no closed trades")
    labels = tuple(f"{r[label_key]:02d}" if isinstance(r[label_key], int) else str(r[label_key]) for r in rows)
    pnl = _floats([r["pnl_usd"] for r in rows])
    return _Chart(
        name,
        title,
        "bars",
        y_label="net P&L (USD)",
        categories=labels,
        series=(_Series("net P&L", np.arange(len(rows), dtype=np.float64), pnl, ""),),
    )


def _symbol_chart(doc: Mapping[str, Any]) -> _Chart:
    rows = doc["per_symbol"]
    name, title = "symbol_contribution.png", "Contribution to return by symbol (% of initial capital)"
    if not rows:
        return _Chart(name, title, "hbars", note="no symbols")
    values = _floats([r["contribution_pct"] for r in rows])
    return _Chart(
        name,
        title,
        "hbars",
        x_label="net P&L (% of initial capital)",
        categories=tuple(str(r["symbol"]) for r in rows),
        series=(_Series("contribution", np.arange(len(rows), dtype=np.float64), values, ""),),
    )


def _fan_chart(mc: Mapping[str, Any]) -> _Chart:
    title = str(mc.get("title") or "Monte Carlo fan chart")
    if "bands" in mc:
        bands = sorted((float(p), _floats(v)) for p, v in dict(mc["bands"]).items())
    elif "paths" in mc:
        paths = np.asarray(mc["paths"], dtype=np.float64)
        if paths.ndim != 2 or paths.size == 0:
            raise DataError(f"monte_carlo 'paths' must be a non-empty 2-D array, got shape {paths.shape}")
        levels = np.percentile(paths, _FAN_PERCENTILES, axis=0)
        bands = [(p, levels[i]) for i, p in enumerate(_FAN_PERCENTILES)]
    else:
        raise DataError("monte_carlo data needs 'bands' ({percentile: values}) or 'paths' (simulations × steps)")
    lengths = {v.size for _, v in bands}
    if len(lengths) != 1 or 0 in lengths:
        raise DataError("monte_carlo bands must be non-empty and of one length")
    steps = lengths.pop()
    x = _floats(mc["x"]) if mc.get("x") is not None else np.arange(steps, dtype=np.float64)
    if x.size != steps:
        raise DataError(f"monte_carlo 'x' has {x.size} values, the bands {steps}")
    series: tuple[_Series, ...] = ()
    if mc.get("actual") is not None:
        actual = _floats(mc["actual"])
        actual_x = x if actual.size == steps else np.arange(actual.size, dtype=np.float64)
        series = (_Series("actual", actual_x, actual, "#000000"),)
    return _Chart(
        FAN_NAME,
        title,
        "fan",
        x_label=str(mc.get("x_label") or "trade #"),
        y_label=str(mc.get("y_label") or "equity (USD)"),
        series=series,
        bands=tuple(bands),
        x=x,
    )


def _charts(doc: Mapping[str, Any], monte_carlo: Mapping[str, Any] | None) -> list[_Chart]:
    charts = [
        _equity_chart(doc),
        _drawdown_chart(doc),
        _monthly_chart(doc),
        _yearly_chart(doc),
        _rolling_sharpe_chart(doc),
        _histogram_chart(doc, "pnl_usd", "pnl_distribution.png", "Trade P&L distribution", "net P&L per trade (USD)"),
        _histogram_chart(
            doc, "duration_hours", "trade_duration.png", "Trade duration distribution", "holding time (hours)"
        ),
        _time_chart(doc, "by_hour_utc", "hour", "returns_by_hour.png", "Net P&L by entry hour (UTC)"),
        _time_chart(doc, "by_weekday", "weekday", "returns_by_weekday.png", "Net P&L by entry weekday (UTC)"),
        _symbol_chart(doc),
    ]
    if monte_carlo is not None:
        charts.append(_fan_chart(monte_carlo))
    return charts


# --------------------------------------------------------------------------- matplotlib (PNG)


def _png(chart: _Chart, path: Path) -> Path:
    fig = Figure(figsize=_SIZE, dpi=_DPI)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.9, bottom=0.13)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(chart.title, loc="left", fontsize=11)
    if chart.empty:
        ax.text(0.5, 0.5, chart.note, ha="center", va="center", transform=ax.transAxes, color=_GREY)
        ax.set_xticks([])
        ax.set_yticks([])
    else:
        _MPL_DRAW[chart.kind](fig, ax, chart)
        ax.set_xlabel(chart.x_label)
        ax.set_ylabel(chart.y_label)
    with atomic_output(path, binary=True) as f:
        fig.savefig(f, format="png")
    return path


def _date_axis(ax: Axes) -> None:
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def _mpl_line(fig: Figure, ax: Axes, chart: _Chart) -> None:
    for s in chart.series:
        ax.plot(s.x, s.y, label=s.label, color=s.color, linewidth=1.2)
    if chart.log_scale:
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(_THOUSANDS)
    if chart.name == "rolling_sharpe.png":
        ax.axhline(0.0, color=_GREY, linewidth=0.8)
    if len(chart.series) > 1:
        ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    _date_axis(ax)


def _mpl_area(fig: Figure, ax: Axes, chart: _Chart) -> None:
    s = chart.series[0]
    ax.fill_between(s.x, s.y, 0.0, color=s.color, alpha=0.35, linewidth=0)
    ax.plot(s.x, s.y, color=s.color, linewidth=0.8)
    ax.set_ylim(top=0.0 if np.nanmin(s.y) < 0 else 1.0)
    ax.grid(alpha=0.3)
    _date_axis(ax)


def _mpl_bars(fig: Figure, ax: Axes, chart: _Chart) -> None:
    s = chart.series[0]
    ax.bar(s.x, s.y, color=_signed_colors(s.y))
    ax.set_xticks(s.x, chart.categories)
    ax.axhline(0.0, color=_GREY, linewidth=0.8)
    ax.grid(axis="y", alpha=0.3)


def _mpl_grouped_bars(fig: Figure, ax: Axes, chart: _Chart) -> None:
    width = 0.8 / len(chart.series)
    for k, s in enumerate(chart.series):
        ax.bar(s.x + (k - (len(chart.series) - 1) / 2) * width, s.y, width=width, label=s.label, color=s.color)
    ax.set_xticks(chart.series[0].x, chart.categories)
    ax.axhline(0.0, color=_GREY, linewidth=0.8)
    ax.legend(loc="upper left")
    ax.grid(axis="y", alpha=0.3)


def _mpl_histogram(fig: Figure, ax: Axes, chart: _Chart) -> None:
    assert chart.edges is not None
    s = chart.series[0]
    colors = _signed_colors(s.x) if not s.color else s.color
    ax.bar(chart.edges[:-1], s.y, width=np.diff(chart.edges), align="edge", color=colors, edgecolor="white")
    ax.grid(axis="y", alpha=0.3)


def _mpl_hbars(fig: Figure, ax: Axes, chart: _Chart) -> None:
    s = chart.series[0]
    ax.barh(s.x, s.y, color=_signed_colors(s.y))
    ax.set_yticks(s.x, chart.categories)
    ax.axvline(0.0, color=_GREY, linewidth=0.8)
    ax.invert_yaxis()
    ax.grid(axis="x", alpha=0.3)


def _mpl_heatmap(fig: Figure, ax: Axes, chart: _Chart) -> None:
    assert chart.matrix is not None
    values = chart.matrix
    finite = values[np.isfinite(values)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    bound = bound or 1.0
    cmap = colormaps["RdYlGn"].with_extremes(bad="#f0f0f0")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-bound, vmax=bound, aspect="auto")
    ax.set_xticks(np.arange(12), chart.categories)
    ax.set_yticks(np.arange(len(chart.row_labels)), chart.row_labels)
    if values.shape[0] <= 12:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="%")


def _mpl_fan(fig: Figure, ax: Axes, chart: _Chart) -> None:
    assert chart.x is not None
    x = chart.x
    bands = dict(chart.bands)
    levels = sorted(bands)
    for lo, hi in zip(levels, reversed(levels), strict=True):
        if lo >= hi:
            break
        ax.fill_between(x, bands[lo], bands[hi], color=_BLUE, alpha=0.15, linewidth=0, label=f"{lo:g}-{hi:g}%")
    median = min(levels, key=lambda p: abs(p - 50.0))
    ax.plot(x, bands[median], color=_BLUE, linewidth=1.4, label=f"{median:g}% (median)")
    for s in chart.series:
        ax.plot(s.x, s.y, color=s.color, linewidth=1.2, label=s.label)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)


_MPL_DRAW: Final[dict[str, Callable[[Figure, Axes, _Chart], None]]] = {
    "line": _mpl_line,
    "area": _mpl_area,
    "bars": _mpl_bars,
    "grouped_bars": _mpl_grouped_bars,
    "histogram": _mpl_histogram,
    "hbars": _mpl_hbars,
    "heatmap": _mpl_heatmap,
    "fan": _mpl_fan,
}


# --------------------------------------------------------------------------- plotly (HTML)


def _plotly_figure(chart: _Chart) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure()
    if chart.empty:
        fig.add_annotation(text=chart.note, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
    else:
        _PLOTLY_DRAW[chart.kind](fig, chart)
        fig.update_xaxes(title_text=chart.x_label or None)
        fig.update_yaxes(title_text=chart.y_label or None)
    fig.update_layout(
        title={"text": chart.title, "x": 0.01},
        template="plotly_white",
        height=420,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1.0, "xanchor": "right"},
    )
    return fig


def _plotly_line(fig: Any, chart: _Chart) -> None:
    import plotly.graph_objects as go

    for s in chart.series:
        fig.add_trace(go.Scatter(x=s.x, y=s.y, name=s.label, mode="lines", line={"color": s.color, "width": 1.5}))
    if chart.log_scale:
        fig.update_yaxes(type="log")
    if chart.name == "rolling_sharpe.png":
        fig.add_hline(y=0.0, line={"color": _GREY, "width": 1})


def _plotly_area(fig: Any, chart: _Chart) -> None:
    import plotly.graph_objects as go

    s = chart.series[0]
    fig.add_trace(
        go.Scatter(x=s.x, y=s.y, name=s.label, mode="lines", fill="tozeroy", line={"color": s.color, "width": 1})
    )


def _plotly_bars(fig: Any, chart: _Chart) -> None:
    import plotly.graph_objects as go

    s = chart.series[0]
    fig.add_trace(go.Bar(x=list(chart.categories), y=s.y, name=s.label, marker_color=_signed_colors(s.y)))


def _plotly_grouped_bars(fig: Any, chart: _Chart) -> None:
    import plotly.graph_objects as go

    for s in chart.series:
        fig.add_trace(go.Bar(x=list(chart.categories), y=s.y, name=s.label, marker_color=s.color))
    fig.update_layout(barmode="group")


def _plotly_histogram(fig: Any, chart: _Chart) -> None:
    import plotly.graph_objects as go

    assert chart.edges is not None
    s = chart.series[0]
    colors = _signed_colors(s.x) if not s.color else s.color
    fig.add_trace(go.Bar(x=s.x, y=s.y, width=np.diff(chart.edges), name=s.label, marker_color=colors))
    fig.update_layout(bargap=0.02)


def _plotly_hbars(fig: Any, chart: _Chart) -> None:
    import plotly.graph_objects as go

    s = chart.series[0]
    fig.add_trace(
        go.Bar(x=s.y, y=list(chart.categories), orientation="h", name=s.label, marker_color=_signed_colors(s.y))
    )
    fig.update_yaxes(autorange="reversed")


def _plotly_heatmap(fig: Any, chart: _Chart) -> None:
    import plotly.graph_objects as go

    assert chart.matrix is not None
    z = [[None if not np.isfinite(v) else round(float(v), 2) for v in row] for row in chart.matrix]
    fig.add_trace(
        go.Heatmap(
            z=z,
            x=list(chart.categories),
            y=list(chart.row_labels),
            colorscale="RdYlGn",
            zmid=0.0,
            texttemplate="%{z:.1f}",
            hovertemplate="%{y} %{x}: %{z:.2f}%<extra></extra>",
            colorbar={"title": {"text": "%"}},
        )
    )
    fig.update_yaxes(autorange="reversed", type="category")


def _plotly_fan(fig: Any, chart: _Chart) -> None:
    import plotly.graph_objects as go

    assert chart.x is not None
    x = chart.x
    bands = dict(chart.bands)
    levels = sorted(bands)
    for lo, hi in zip(levels, reversed(levels), strict=True):
        if lo >= hi:
            break
        fig.add_trace(go.Scatter(x=x, y=bands[hi], mode="lines", line={"width": 0}, showlegend=False, hoverinfo="skip"))
        fig.add_trace(
            go.Scatter(
                x=x,
                y=bands[lo],
                mode="lines",
                line={"width": 0},
                fill="tonexty",
                fillcolor="rgba(41,98,255,0.15)",
                name=f"{lo:g}-{hi:g}%",
            )
        )
    median = min(levels, key=lambda p: abs(p - 50.0))
    fig.add_trace(go.Scatter(x=x, y=bands[median], mode="lines", line={"color": _BLUE}, name=f"{median:g}% (median)"))
    for s in chart.series:
        fig.add_trace(go.Scatter(x=s.x, y=s.y, mode="lines", line={"color": s.color}, name=s.label))


_PLOTLY_DRAW: Final[dict[str, Callable[[Any, _Chart], None]]] = {
    "line": _plotly_line,
    "area": _plotly_area,
    "bars": _plotly_bars,
    "grouped_bars": _plotly_grouped_bars,
    "histogram": _plotly_histogram,
    "hbars": _plotly_hbars,
    "heatmap": _plotly_heatmap,
    "fan": _plotly_fan,
}


def _html_page(doc: Mapping[str, Any], charts: list[_Chart]) -> str:
    import plotly.io as pio

    config = {"displaylogo": False, "responsive": True}
    parts = []
    for i, chart in enumerate(charts):
        div = pio.to_html(
            _plotly_figure(chart),
            include_plotlyjs=(i == 0),
            full_html=False,
            config=config,
            div_id=f"chart-{i}",
        )
        parts.append(f'<section class="chart">{div}</section>')
    cfg, period = doc.get("config", {}), doc.get("period", {})
    title = f"{cfg.get('strategy', '?')} · {', '.join(cfg.get('symbols', []))} · {cfg.get('timeframe', '')}"
    subtitle = f"{period.get('first_bar', '')} — {period.get('last_bar', '')}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)} — charts</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222}"
        "h1{font-size:20px;margin:0}p.sub{color:#666;margin:4px 0 16px}"
        "section.chart{margin:0 0 18px;border:1px solid #eee;border-radius:6px;padding:6px}</style>"
        f'</head><body><h1>{html.escape(title)}</h1><p class="sub">{html.escape(subtitle)}</p>'
        + "\n".join(parts)
        + "</body></html>\n"
    )


# --------------------------------------------------------------------------- public API


def write_charts(
    doc: Mapping[str, Any], out_dir: str | Path, monte_carlo: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write the PNG charts and ``charts.html`` of a backtest document to ``out_dir``; return their paths.

    ``doc`` is the dict of ``build_report`` / ``load_report``. ``monte_carlo`` (optional) adds the
    fan chart (see the module docstring for its format). The folder is created if needed; existing
    files of the same names are replaced.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        charts = _charts(doc, monte_carlo)
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(f"cannot draw charts: the backtest document is missing or has a bad {e}") from None
    written = [_png(chart, out / chart.name) for chart in charts]
    written.append(write_text_atomic(out / HTML_NAME, _html_page(doc, charts)))
    return written
