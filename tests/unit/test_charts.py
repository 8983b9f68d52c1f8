"""Charts of a backtest document: valid PNG images and one HTML page that loads offline."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from autotrader.analytics.charts import HTML_NAME, PNG_NAMES, write_charts
from autotrader.analytics.report_data import build_report
from autotrader.backtest.runner import BacktestConfig, run_backtest
from autotrader.domain.aligned import AlignedCandles, align
from autotrader.domain.candles import Candles
from autotrader.domain.errors import DataError
from autotrader.strategy.base import Signals, Strategy

T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
HOUR = 3_600_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _bars(n: int, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"), seed: int = 3) -> AlignedCandles:
    rng = np.random.default_rng(seed)
    series = {}
    for k, sym in enumerate(symbols):
        close = (100.0 + 50 * k) * np.exp(np.cumsum(rng.normal(0.0001, 0.01, n)))
        open_ = np.concatenate(([close[0]], close[:-1]))
        ts = T0 + HOUR * np.arange(n, dtype=np.int64)
        cols = {
            "ts": ts,
            "open": open_,
            "high": np.maximum(open_, close) * 1.003,
            "low": np.minimum(open_, close) * 0.997,
            "close": close,
            "volume": np.full(n, 1e6),
        }
        series[sym] = Candles.from_columns(cols)
    return align(series)


class _Cycle(Strategy):
    """Long for 10 bars out of every 24, offset per symbol."""

    name = "test_charts_cycle"

    def generate(self, data: AlignedCandles) -> Signals:
        direction = np.full(data.close.shape, np.nan)
        for j in range(len(data.symbols)):
            phase = (np.arange(data.n_bars) + 7 * j) % 24
            direction[phase == 0, j] = 1.0
            direction[phase == 10, j] = 0.0
        return Signals.from_direction(direction)


class _Never(Strategy):
    name = "test_charts_never"

    def generate(self, data: AlignedCandles) -> Signals:
        return Signals.from_direction(np.full(data.close.shape, np.nan))


def _doc(strategy: Strategy, n_bars: int) -> dict:
    data = _bars(n_bars)
    config = BacktestConfig(
        symbols=data.symbols,
        strategy=strategy.name,
        start="2024-01-01",
        end="2024-12-31",
        risk_overrides={"correlation": 1.0, "daily_loss": 1.0, "max_drawdown": 1.0},
    )
    doc = build_report(run_backtest(config, data, strategy))
    return json.loads(json.dumps(doc, allow_nan=False))  # as load_report gives it back


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, list[Path]]:
    doc = _doc(_Cycle(), 24 * 75)  # 75 days: three months, a rolling Sharpe
    rng = np.random.default_rng(0)
    paths = 10_000 * np.cumprod(1 + rng.normal(0.001, 0.02, (200, 50)), axis=1)
    out = tmp_path_factory.mktemp("charts")
    return doc, write_charts(doc, out, monte_carlo={"paths": paths, "actual": paths[0], "x_label": "trade #"})


def test_write_charts_lists_every_png_then_the_html(written: tuple[dict, list[Path]]) -> None:
    _, paths = written
    assert [p.name for p in paths] == [*PNG_NAMES, "monte_carlo_fan.png", HTML_NAME]
    assert all(p.is_file() for p in paths)


def test_pngs_are_valid_images(written: tuple[dict, list[Path]]) -> None:
    _, paths = written
    for path in paths[:-1]:
        assert path.read_bytes()[:8] == PNG_MAGIC, path.name
        pixels = mpimg.imread(path)
        assert pixels.ndim == 3
        assert pixels.shape[0] > 100
        assert pixels.shape[1] > 100
        assert pixels.shape[2] in (3, 4)
        assert float(np.ptp(pixels[..., :3])) > 0.0, f"{path.name} is blank"


def test_html_loads_offline_with_plotly_inline(written: tuple[dict, list[Path]]) -> None:
    _, paths = written
    text = paths[-1].read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    # no script or stylesheet fetched from anywhere: every <script> is inline, no <link>, no @import
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link\b[^>]*href\s*=\s*[\"']?(https?:)?//", text, re.IGNORECASE)
    assert not re.search(r"@import\s+url\(\s*[\"']?(https?:)?//", text, re.IGNORECASE)
    assert re.search(r"plotly\.js v\d+\.\d+", text), "the plotly.js bundle is not inline"
    assert len(text) > 1_000_000
    assert text.count("Plotly.newPlot(") == len(PNG_NAMES) + 1  # one figure per chart, fan included
    assert "Monthly returns (%)" in text


def test_fan_chart_accepts_bands(tmp_path: Path) -> None:
    from autotrader.analytics import charts

    chart = charts._fan_chart({"bands": {"5": [1, 2, 3], "50": [2, 3, 4], "95": [3, 4, 5]}, "x": [10, 20, 30]})
    assert [p for p, _ in chart.bands] == [5.0, 50.0, 95.0]
    assert chart.x is not None
    assert chart.x.tolist() == [10.0, 20.0, 30.0]
    path = charts._png(chart, tmp_path / "fan.png")
    assert mpimg.imread(path).shape[0] > 100


def test_bad_monte_carlo_data_is_a_data_error(tmp_path: Path) -> None:
    from autotrader.analytics import charts

    with pytest.raises(DataError, match="'bands'"):
        charts._fan_chart({"samples": [1, 2]})
    with pytest.raises(DataError, match="one length"):
        charts._fan_chart({"bands": {5: [1, 2], 95: [1, 2, 3]}})


def test_run_without_trades_still_draws_every_chart_with_a_note(tmp_path: Path) -> None:
    from autotrader.analytics import charts

    doc = _doc(_Never(), 48)
    drawn = charts._charts(doc, None)
    assert [c.name for c in drawn] == list(PNG_NAMES)
    notes = {c.name: c.note for c in drawn}
    assert notes["pnl_distribution.png"] == "no closed trades"
    assert notes["rolling_sharpe.png"].startswith("needs at least 60 days")
    assert notes["equity.png"] == ""
    for chart in drawn:
        path = charts._png(chart, tmp_path / chart.name)
        assert mpimg.imread(path).size > 0
        figure = charts._plotly_figure(chart)  # the HTML page draws the same empty charts
        assert figure.layout.title.text == chart.title


def test_foreign_document_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="equity_curve"):
        write_charts({"schema": "something/1"}, tmp_path)
