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

from autotrader.cli.common import (
    JsonLogsOption,
    LogBackupsOption,
    LogFileOption,
    LogMaxMbOption,
    ParamOption,
    StoredExchangeOption,
    StoredTimeframeOption,
    SymbolsOption,
)

if TYPE_CHECKING:
    from autotrader.config import Settings
    from autotrader.domain.aligned import AlignedCandles
    from autotrader.marketdata.store import CandleStore
    from autotrader.risk.trading import TradingConfig
    from autotrader.signals.prediction import Prediction
    from autotrader.strategy.base import Signals, Strategy

_DIRECTIONS = {1: "long", -1: "short", 0: "flat"}

_UNITS_MS = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000))


def register(app: typer.Typer) -> None:
    """Add the ``signals`` command group (``publish``, ``tail``) to ``app``."""
    signals_app = typer.Typer(help="Prediction signals over Kafka: publish a strategy's, or tail a topic.")
    signals_app.command("serve")(serve)
    signals_app.command("publish")(publish)
    signals_app.command("tail")(tail)
    app.add_typer(signals_app, name="signals")


# ---------------------------------------------------------------------------------------------- serve

REPLAY_WARMUP_MS = 365 * 86_400_000
"""A replay starts this long after the first stored bar by default: the ``ml`` model's year of training."""


def serve(
    ctx: typer.Context,
    symbols: SymbolsOption = "BTCUSDT,ETHUSDT",
    brokers: Annotated[
        str, typer.Option(envvar="AUTOTRADER_BROKERS", help="Kafka bootstrap servers HOST:PORT[,HOST:PORT].")
    ] = "127.0.0.1:9092",
    topic: Annotated[str, typer.Option(envvar="AUTOTRADER_TOPIC", help="Topic to publish to.")] = "predictions",
    strategy: Annotated[str, typer.Option(help="The model (default: the built-in ML model).")] = "ml",
    param: ParamOption = None,
    timeframe: Annotated[str, typer.Option(help="Bar length.")] = "1h",
    risk: Annotated[str, typer.Option(help="Risk level whose confidence threshold the model uses.")] = "medium",
    replay: Annotated[
        bool, typer.Option("--replay", help="Replay stored candles on the stack's market clock (demos).")
    ] = False,
    speed: Annotated[float, typer.Option(min=0.001, help="--replay: market seconds per wall second.")] = 60.0,
    replay_start: Annotated[
        str | None, typer.Option(help="--replay: start a new replay clock at this date (YYYY-MM-DD).")
    ] = None,
    candles_exchange: Annotated[
        str, typer.Option("--candles-exchange", help="--replay: stored candles of this exchange.")
    ] = "binance",
    exchange_url: Annotated[
        str | None,
        typer.Option(help="Without --replay: REST base URL for candles (default BYBIT_BASE_URL, else Bybit)."),
    ] = None,
    market: Annotated[str, typer.Option(help="Without --replay: spot or linear candles.")] = "spot",
    db: Annotated[
        str | None, typer.Option(help="State store for the replay clock and the checkpoint (default as autotrade).")
    ] = None,
    create_topics: Annotated[
        bool, typer.Option("--create-topics", help="Create the topic and its .dlq when missing (else refuse).")
    ] = False,
    poll: Annotated[float, typer.Option(min=0.01, help="Seconds between looks at the clock.")] = 0.2,
    log_file: LogFileOption = None,
    log_max_mb: LogMaxMbOption = 20.0,
    log_backups: LogBackupsOption = 5,
    json_logs: JsonLogsOption = None,
    once: Annotated[bool, typer.Option("--once", help="Publish the bars due now, then exit.")] = False,
) -> None:
    """The signal engine: at each bar close, publish the model's prediction on closed candles to Kafka.

    Runs until stopped (Ctrl-C / SIGTERM). Each prediction is logged with 'HONEST SIGNAL'. With
    --replay the bars come from the candle store on the replay clock kept in the state store, the
    one clock the demo robot's paper wallet also follows; otherwise from the exchange on the wall
    clock. Message ids are '<model>-<symbol>-<timeframe>-<bar open ms>': a restart never publishes
    a bar under a second id, and it catches up the bars that closed while it was down.
    """
    import signal as signals_mod
    import threading

    from autotrader.adapters.broker.kafka import KafkaSignalPublisher, parse_kafka_url
    from autotrader.adapters.state import open_state_store, state_url
    from autotrader.domain.errors import ConfigError
    from autotrader.domain.timeframe import Timeframe
    from autotrader.live.signal_engine import BarModel, SignalEngine

    address = parse_kafka_url(f"kafka://{brokers}/{topic}")
    tf = Timeframe.parse(timeframe)
    if market not in ("spot", "linear"):
        raise ConfigError(f"--market {market!r}: choose spot or linear")
    config, params = _model_config("signals serve", symbols, tf.name, param, risk)
    settings = _settings(ctx)
    from autotrader.logs import configure_logging

    configure_logging(
        "INFO", json_lines=json_logs, log_file=log_file, max_bytes=int(log_max_mb * 1_048_576), backups=log_backups
    )
    check_topic(address, create=create_topics)
    model = BarModel(_build_model(strategy, params, config, None), tf.name)
    store = open_state_store(state_url(settings.home, db))
    key = f"signal_engine:{address.topic}:{model.model}:{tf.name}"
    closers: list[Any] = [store.close]
    try:
        if replay:
            candles, now_ms = _replay_source(settings, store, candles_exchange, config, model, speed, replay_start)
        else:
            candles, now_ms, close = _exchange_source(settings, config, market, exchange_url)
            closers.append(close)
        publisher = KafkaSignalPublisher(str(address))
        closers.append(publisher.close)
        engine = SignalEngine(
            model,
            config.symbols,
            candles=candles,
            publish=publisher.publish,
            now_ms=now_ms,
            checkpoint=(lambda: store.get_meta(key), lambda bar: store.set_meta(key, bar)),
        )
        import logging

        log = logging.getLogger("autotrader.signal_engine")
        log.info(
            "signal engine: %s on %s %s, publishing to %s (%s)",
            model.model,
            ",".join(config.symbols),
            tf.name,
            address,
            "replay of stored candles" if replay else "live candles",
        )
        if once:
            engine.run_once()
            return
        stop = threading.Event()
        for sig in (signals_mod.SIGINT, signals_mod.SIGTERM):
            signals_mod.signal(sig, lambda *_: stop.set())
        engine.run(stop, poll_s=poll)
        log.info("signal engine stopped: %d predictions on %d bars", engine.published, engine.bars)
    finally:
        for close in reversed(closers):
            close()


def check_topic(address: Any, *, create: bool, timeout_s: float = 10.0) -> None:
    """The broker answers and the topic exists (or is created with ``create``); else one clear line."""
    from autotrader.adapters.broker.kafka import ensure_topics
    from autotrader.adapters.broker.tansu import wait_for_kafka
    from autotrader.domain.errors import BrokerError

    try:
        wait_for_kafka(address.bootstrap, timeout_s=timeout_s)
    except TimeoutError as e:
        raise BrokerError(f"cannot reach the Kafka broker at {address.bootstrap}: {e}") from None
    if create:
        ensure_topics(address.bootstrap, [address.topic, address.dlq_topic])
        return
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": address.bootstrap}).list_topics(timeout=timeout_s).topics
    if address.topic not in topics:
        raise BrokerError(
            f"topic {address.topic!r} does not exist on {address.bootstrap}: create it ('autotrader broker start' "
            "does, or pass --create-topics)"
        )


def default_replay_start(ts: Any, tf_ms: int, warmup_bars: int) -> int:
    """Where a new replay starts: after ``REPLAY_WARMUP_MS`` of stored bars, or ``warmup_bars`` of them
    (plus a day's margin for gaps) if that is later, so the model speaks from the first bar."""
    n = len(ts)
    by_time = int(ts[0]) + REPLAY_WARMUP_MS
    by_bars = int(ts[min(n - 1, warmup_bars + 24)]) + tf_ms
    return (max(by_time, by_bars) // tf_ms) * tf_ms


def replay_clock(store: Any, *, default_start_ms: int, speed: float, start: str | None) -> Any:
    """The stack's one replay clock from the state store; the first process to start sets it.

    A new clock starts at ``default_start_ms`` (see ``default_replay_start``); ``start`` (YYYY-MM-DD)
    replaces the stored clock with a new one from that date.
    """
    import logging

    from autotrader.domain.candles import parse_date_ms
    from autotrader.domain.errors import ConfigError
    from autotrader.live.clock import REPLAY_CLOCK_KEY, ReplayClock

    log = logging.getLogger("autotrader.replay")
    if start is not None:
        try:
            start_ms = parse_date_ms(start)
        except ValueError:
            raise ConfigError(f"--replay-start {start!r}: expected YYYY-MM-DD") from None
        clock = ReplayClock.starting(start_ms, speed)
        store.set_meta(REPLAY_CLOCK_KEY, clock.to_meta())
        log.info("new replay clock: market time %s at %gx", start, speed)
        return clock
    wanted = ReplayClock.starting(default_start_ms, speed)
    clock = ReplayClock.from_meta(store.claim_meta(REPLAY_CLOCK_KEY, wanted.to_meta()))
    from autotrader.domain.candles import format_ms

    if clock != wanted and clock.speed != speed:
        log.warning("the replay clock of this stack runs at %gx (not %gx): following it", clock.speed, speed)
    log.info("replay clock: market time %s UTC at %gx", format_ms(clock.now_ms()), clock.speed)
    return clock


def _replay_source(
    settings: Settings, store: Any, exchange: str, config: TradingConfig, model: Any, speed: float, start: str | None
) -> tuple[Any, Any]:
    import numpy as np

    from autotrader.adapters.storage import open_store
    from autotrader.domain.aligned import AlignedCandles
    from autotrader.marketdata.store import read_aligned

    candle_store = open_store(settings)
    try:
        data = read_aligned(candle_store, exchange, config.symbols, config.timeframe)
    finally:
        candle_store.close()
    tf_ms = model.tf.ms
    clock = replay_clock(
        store, default_start_ms=default_replay_start(data.ts, tf_ms, model.window_bars), speed=speed, start=start
    )

    def candles(first_ms: int, bar_ms: int) -> AlignedCandles | None:
        i = int(np.searchsorted(data.ts, bar_ms))
        if i >= data.n_bars or int(data.ts[i]) != bar_ms:
            return None
        a = int(np.searchsorted(data.ts, first_ms))
        cols = ("ts", "open", "high", "low", "close", "volume", "present")
        return AlignedCandles(data.symbols, *(getattr(data, c)[a : i + 1] for c in cols))

    return candles, clock.now_ms


def _exchange_source(settings: Settings, config: TradingConfig, market: str, url: str | None) -> tuple[Any, Any, Any]:
    """Closed candles from the exchange's public klines (paged: Bybit serves at most 1000 bars a request)."""
    import asyncio

    import numpy as np

    from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange
    from autotrader.domain.aligned import align
    from autotrader.domain.candles import COLUMNS, Candles
    from autotrader.domain.timeframe import Timeframe

    base = url or settings.exchange.base_url
    exchange_config = BybitConfig.custom(base, "", "") if base else BybitConfig.for_environment("mainnet", "", "")
    loop = asyncio.new_event_loop()
    exchange = BybitExchange(exchange_config)
    tf_ms = Timeframe.parse(config.timeframe).ms

    async def fetch(symbol: str, first_ms: int, bar_ms: int) -> Any:
        parts = []
        start = first_ms
        while start <= bar_ms:
            end = min(bar_ms, start + 999 * tf_ms)
            page = await exchange.candles(market, symbol, config.timeframe, start_ms=start, end_ms=end, limit=1000)  # type: ignore[arg-type]
            if len(page):
                parts.append(page)
            start = end + tf_ms
        if not parts:
            return None
        merged = Candles(*(np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS))
        keep = np.flatnonzero(merged.ts <= bar_ms)
        _, first = np.unique(merged.ts[keep], return_index=True)
        return merged.take(keep[first])

    def candles(first_ms: int, bar_ms: int) -> AlignedCandles | None:
        series = {}
        for symbol in config.symbols:
            got = loop.run_until_complete(fetch(symbol, first_ms, bar_ms))
            if got is None or not len(got):
                return None
            series[symbol] = got
        return align(series)

    def close() -> None:
        loop.run_until_complete(exchange.close())
        loop.close()

    def venue_ms() -> int:  # a local exchange-sim replays its own market clock: follow it, as the robot does
        ticker = loop.run_until_complete(exchange.ticker(market, config.symbols[0]))  # type: ignore[arg-type]
        return int(ticker.ts_ms or time.time_ns() // 1_000_000)

    local = base is not None and any(h in base for h in ("127.0.0.1", "localhost", "[::1]"))
    return candles, (venue_ms if local else (lambda: time.time_ns() // 1_000_000)), close


# -------------------------------------------------------------------------------------------- publish


def publish(
    ctx: typer.Context,
    to: Annotated[str, typer.Option("--to", help="Destination, kafka://HOST:PORT/TOPIC.")],
    symbols: SymbolsOption = "BTCUSDT,ETHUSDT",
    strategy: Annotated[str, typer.Option(help="Strategy that makes the predictions (default: the ML model).")] = "ml",
    param: ParamOption = None,
    timeframe: StoredTimeframeOption = "1h",
    exchange: StoredExchangeOption = "binance",
    risk: Annotated[str, typer.Option(help="Risk level whose confidence threshold the strategy uses.")] = "medium",
    lookback_bars: Annotated[
        int | None, typer.Option(min=2, help="Bars of history the strategy sees (default: what it needs, >= 5000).")
    ] = None,
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
    config, params = _model_config("signals publish", symbols, tf.name, param, risk)
    settings = _settings(ctx)
    strat = _build_model(strategy, params, config, settings.cache_dir)
    if lookback_bars is None:  # the ml model needs a year of bars before its first prediction
        lookback_bars = max(5000, int(getattr(strat, "warmup_bars", 0)) + 48)
    published: set[str] = set()
    with KafkaSignalPublisher(str(address), config=settings.kafka.client_config()) as publisher:
        while True:
            data = _latest_candles(settings, exchange, config.symbols, tf.name, lookback_bars)
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
    from autotrader.cli.common import parse_params as parse

    return parse(items)


def _first_error(e: ValueError) -> str:
    from pydantic import ValidationError

    if isinstance(e, ValidationError):
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        return f"{where.replace('_', '-')}: {first['msg']}"
    return str(e)


def _model_config(
    command: str, symbols: str, timeframe: str, param: list[str] | None, risk: str
) -> tuple[TradingConfig, dict[str, str]]:
    """The model's trading fields and strategy parameters from the command's options.

    A bad value is one ConfigError line.
    """
    from autotrader.domain.errors import ConfigError
    from autotrader.risk.trading import TradingConfig

    try:
        config = TradingConfig(
            symbols=tuple(symbols.split(",")),
            timeframe=timeframe,
            risk_level=risk,  # type: ignore[arg-type]
        )
        config.limits()
        params = _parse_params(param or [])
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"{command}: {_first_error(e)}") from None
    return config, params


def _build_model(strategy: str, params: dict[str, str], config: TradingConfig, cache_dir: Path | None) -> Strategy:
    """The model ``strategy`` set up for ``config`` (threshold and costs), the one way strategies are built."""
    from autotrader.strategy.build import build_strategy

    return build_strategy(strategy, params, config, cache_dir=cache_dir)
