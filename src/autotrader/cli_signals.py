"""``autotrader signals``: publish a strategy's predictions to Kafka, and tail a topic.

``publish`` stands in for the upstream ML platform: it runs a strategy (the built-in ``ml`` one by
default) on the latest stored candles and publishes the latest bar's signals as ``Prediction``
messages. ``tail`` prints a topic's messages (with dead-letter headers) for debugging.

Wire it into the main app with ``register(app)``. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from autotrader.config import Settings
    from autotrader.marketdata.store import AlignedCandles, CandleStore
    from autotrader.signals.prediction import Prediction
    from autotrader.strategy.base import Signals

_DIRECTIONS = {1: "long", -1: "short", 0: "flat"}
_UNITS_MS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000))


def register(app: typer.Typer) -> None:
    """Add the ``signals`` command group (``publish``, ``tail``) to ``app``."""
    signals_app = typer.Typer(help="Prediction signals over Kafka: publish a strategy's, or tail a topic.")
    signals_app.command("publish")(publish)
    signals_app.command("tail")(tail)
    app.add_typer(signals_app, name="signals")


# -------------------------------------------------------------------------------------------- publish


def publish(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Destination, kafka://HOST:PORT/TOPIC.")],
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols.")] = "BTCUSDT,ETHUSDT",
    strategy: Annotated[str, typer.Option(help="Strategy that makes the predictions (default: the ML model).")] = "ml",
    param: Annotated[
        list[str] | None, typer.Option("--param", help="Strategy parameter key=value (repeatable).")
    ] = None,
    timeframe: Annotated[str, typer.Option(help="Bar length of the stored candles to use.")] = "1h",
    exchange: Annotated[str, typer.Option(help="Exchange whose stored candles to use.")] = "binance",
    risk: Annotated[str, typer.Option(help="Risk level whose confidence threshold the strategy uses.")] = "medium",
    lookback_bars: Annotated[int, typer.Option(min=2, help="Bars of history the strategy sees.")] = 5000,
    horizon: Annotated[
        str | None, typer.Option(help="Prediction horizon, e.g. 4h (default: the strategy's, else one bar).")
    ] = None,
    stamp: Annotated[
        str,
        typer.Option(help="Prediction time: 'bar' (the bar's close, honest) or 'now' (demos on old data)."),
    ] = "bar",
    once: Annotated[bool, typer.Option("--once", help="Publish the latest bar's signals once and exit.")] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between checks for a new bar.")] = 60.0,
) -> None:
    """Run a strategy on the latest stored candles and publish the latest bar's signals to Kafka.

    One message per symbol with a signal on its latest closed bar, keyed by symbol; the id is
    '<strategy>-<symbol>-<timeframe>-<bar open ms>', so a bar published twice is one signal to the
    robot. Without --once it keeps checking the store every --interval seconds and publishes each
    new bar once.
    """
    from autotrader.adapters.broker.kafka import KafkaSignalPublisher, parse_kafka_url
    from autotrader.backtest.runner import BacktestConfig
    from autotrader.backtest.session import build_strategy
    from autotrader.domain.errors import ConfigError
    from autotrader.domain.timeframe import Timeframe

    address = parse_kafka_url(to)
    if stamp not in ("bar", "now"):
        raise ConfigError(f"--stamp {stamp!r}: choose 'bar' or 'now'")
    tf = Timeframe.parse(timeframe)
    if horizon is not None:
        from autotrader.signals.prediction import MAX_HORIZON_MS

        if Timeframe.parse(horizon).ms > MAX_HORIZON_MS:
            raise ConfigError(f"--horizon {horizon}: a prediction's horizon is at most 30 days")
        horizon = Timeframe.parse(horizon).name
    try:
        config = BacktestConfig(
            symbols=tuple(symbols.split(",")),
            exchange=exchange,
            timeframe=tf.name,
            strategy=strategy,
            params=_parse_params(param or []),
            risk_level=risk,  # type: ignore[arg-type]
        )
        config.limits()
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"signals publish: {_first_error(e)}") from None
    settings = _settings(ctx)
    strat = build_strategy(config, settings.cache_dir)
    published: set[str] = set()
    with KafkaSignalPublisher(str(address), config=settings.kafka.client_config()) as publisher:
        while True:
            data = _latest_candles(settings, config.exchange, config.symbols, tf.name, lookback_bars)
            now_ms = time.time_ns() // 1_000_000
            predictions = latest_predictions(
                strat.generate(data), data, tf.ms, model=strategy, timeframe=tf.name,
                horizon=horizon, now_ms=now_ms, stamp=stamp,
            )  # fmt: skip
            fresh = [p for p in predictions if p.id not in published]
            if fresh:
                publisher.publish(fresh)
                published.update(p.id for p in fresh)
            _report(fresh, address.topic, now_ms, once)
            if once:
                return
            time.sleep(interval)


def latest_predictions(
    signals: Signals,
    data: AlignedCandles,
    bar_ms: int,
    *,
    model: str,
    timeframe: str,
    now_ms: int,
    horizon: str | None = None,
    stamp: str = "bar",
) -> list[Prediction]:
    """One ``Prediction`` per symbol from its latest closed bar (close ``<= now_ms``) that has a signal.

    ``ts`` is that bar's close (``stamp="bar"``) or ``now_ms`` (``stamp="now"``); ``horizon`` defaults
    to the strategy's ``horizon_bars`` bars, else one bar. A symbol whose latest closed bar has no
    signal (NaN) gets no message.
    """
    import numpy as np

    from autotrader.signals.prediction import MAX_HORIZON_MS, Prediction

    if horizon is None:
        horizon = _duration(min(bar_ms * (signals.horizon_bars or 1), MAX_HORIZON_MS))
    closed = data.ts + bar_ms <= now_ms
    out: list[Prediction] = []
    for j, symbol in enumerate(data.symbols):
        rows = np.flatnonzero(data.present[:, j] & closed)
        if len(rows) == 0:
            continue
        row = int(rows[-1])
        direction = float(signals.direction[row, j])
        if np.isnan(direction):
            continue
        confidence = float(signals.confidence[row, j])
        bar_open_ms = int(data.ts[row])
        out.append(
            Prediction(
                id=f"{model}-{symbol}-{timeframe}-{bar_open_ms}",
                symbol=symbol,
                ts=now_ms if stamp == "now" else bar_open_ms + bar_ms,
                direction=_DIRECTIONS[int(np.sign(direction))],  # type: ignore[arg-type]
                confidence=1.0 if np.isnan(confidence) else min(max(confidence, 0.0), 1.0),
                horizon=horizon,
                model=model,
            )
        )
    return out


def _duration(ms: int) -> str:
    for unit, size in _UNITS_MS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{max(1, ms // 60_000)}m"


def _latest_candles(
    settings: Settings, exchange: str, symbols: tuple[str, ...], timeframe: str, lookback_bars: int
) -> AlignedCandles:
    from autotrader.adapters.storage import open_store
    from autotrader.domain.candles import SeriesKey
    from autotrader.domain.timeframe import Timeframe
    from autotrader.marketdata.store import read_aligned

    store: CandleStore = open_store(settings)
    try:
        last_ms = max(_last_bar_ms(store, SeriesKey.of(exchange, s, timeframe)) for s in symbols)
        start_ms = last_ms - (lookback_bars - 1) * Timeframe.parse(timeframe).ms
        return read_aligned(store, exchange, symbols, timeframe, start_ms, last_ms)
    finally:
        store.close()


def _last_bar_ms(store: CandleStore, key: Any) -> int:
    from autotrader.domain.errors import DataError

    coverage = store.coverage(key)
    if not coverage:
        raise DataError(
            f"no {key.timeframe} candles for {key.symbol} on {key.exchange} "
            "(see 'autotrader data list'; add data with 'autotrader data import')"
        )
    return int(coverage[0].last_ts)


def _report(predictions: list[Prediction], topic: str, now_ms: int, once: bool) -> None:
    from autotrader.domain.candles import format_ms

    if not predictions:
        if once:
            typer.echo("no new signal on the latest bar; nothing published")
        return
    for p in predictions:
        stale = "  [already stale: the robot will skip it]" if now_ms >= p.ts + p.horizon_ms else ""
        typer.echo(
            f"published to {topic}: {p.id} {p.symbol} {p.direction} confidence {p.confidence:.3f} "
            f"horizon {p.horizon} at {format_ms(p.ts)} UTC{stale}"
        )


# ----------------------------------------------------------------------------------------------- tail


def tail(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Topic to read, kafka://HOST:PORT/TOPIC (e.g. predictions.dlq).")],
    from_beginning: Annotated[
        bool,
        typer.Option("--from-beginning/--latest", help="Start at the oldest message or only show new ones."),
    ] = True,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new messages.")] = False,
    max_messages: Annotated[int | None, typer.Option("--max", min=1, help="Stop after this many messages.")] = None,
    idle_timeout: Annotated[
        float, typer.Option(min=0.1, help="Without --follow, stop after this quiet time (s).")
    ] = 3.0,
) -> None:
    """Print a topic's messages: partition@offset, time, key, value and headers.

    Joins no consumer group and commits nothing, so it never disturbs the robot.
    """
    from autotrader.adapters.broker.kafka import tail_messages
    from autotrader.domain.candles import format_ms

    count = 0
    for m in tail_messages(
        url,
        from_beginning=from_beginning,
        idle_timeout_s=None if follow else idle_timeout,
        max_messages=max_messages,
        config=_settings(ctx).kafka.client_config(),
    ):
        count += 1
        when = format_ms(m.timestamp_ms) if m.timestamp_ms is not None else "-"
        headers = "  " + " ".join(f"{k}={_text(v)}" for k, v in m.headers.items()) if m.headers else ""
        typer.echo(f"{m.partition}@{m.offset}  {when}  key={_text(m.key)}  {_text(m.value)}{headers}")
    if count == 0:
        typer.echo("no messages", err=True)


def _text(value: bytes | None) -> str:
    if value is None:
        return "null"
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return repr(value)


# -------------------------------------------------------------------------------------------- helpers


def _settings(ctx: typer.Context) -> Settings:
    """Settings honouring the root ``--config`` / ``--verbose`` options when the main app has them."""
    from autotrader.config import load_settings
    from autotrader.logs import configure_logging

    root = ctx.find_root().params
    config_file = root.get("config")
    settings = load_settings(Path(config_file) if config_file else None)
    configure_logging("INFO" if root.get("verbose") else settings.log_level)
    return settings


def _parse_params(items: list[str]) -> dict[str, str]:
    from autotrader.cli import _parse_params as parse

    return parse(items)


def _first_error(e: ValueError) -> str:
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        return f"{where.replace('_', '-')}: {first['msg']}"
    return str(e)
