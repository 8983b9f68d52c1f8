"""CLI commands for exchange connectivity: ``autotrader exchange-sim`` and ``autotrader data download``.

``register(app, data_app)`` adds them to the main CLI. Heavy imports (ccxt, uvicorn, FastAPI) happen
inside the commands so ``autotrader --help`` stays fast. Keys come from ``BYBIT_API_KEY`` /
``BYBIT_API_SECRET`` or ``--secrets-file``, never from flags, and are never printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from autotrader.domain.fees import DEFAULT_SLIPPAGE_BPS

ExchangeUrlOption = Annotated[
    str | None,
    typer.Option(
        "--exchange-url",
        help="Any Bybit v5-compatible base URL, e.g. http://127.0.0.1:8765 "
        "(default: BYBIT_BASE_URL, else Bybit mainnet).",
    ),
]
TestnetOption = Annotated[bool, typer.Option("--testnet", help="Use Bybit's testnet.")]
DemoOption = Annotated[bool, typer.Option("--demo", help="Use Bybit demo trading (api-demo.bybit.com, demo keys).")]

_FAULT_KINDS = (
    "http_error",
    "timeout",
    "drop_after_accept",
    "error_after_accept",
    "ret_code",
    "refuse_conditional",
    "rate_limit",
    "ip_ban",
)


def register(app: typer.Typer, data_app: typer.Typer) -> None:
    """Add ``exchange-sim`` to ``app`` and ``download`` to ``data_app``."""
    app.command("exchange-sim")(exchange_sim)
    data_app.command("download")(data_download)


def _settings(config: Path | None = None) -> Any:
    from autotrader.config import load_settings
    from autotrader.logs import configure_logging

    settings = load_settings(config)
    configure_logging(settings.log_level)
    return settings


def _period_ms(period: str, tf_ms: int) -> tuple[int, int]:
    from autotrader.domain.candles import parse_date_ms
    from autotrader.domain.errors import ConfigError

    start, sep, end = period.partition(":")
    if not sep or not start.strip() or not end.strip():
        raise ConfigError(f"--period {period!r}: expected FROM:TO dates, e.g. 2024-01-01:2024-06-30")
    try:
        start_ms, end_ms = parse_date_ms(start), parse_date_ms(end)
    except ValueError:
        raise ConfigError(f"--period {period!r}: dates must look like YYYY-MM-DD") from None
    if len(end.strip()) <= 10:  # a plain date is inclusive: up to the last bar that opens that day
        end_ms += 86_400_000 - tf_ms
    if end_ms < start_ms:
        raise ConfigError(f"--period {period!r}: the end is before the start")
    return start_ms, end_ms


# ------------------------------------------------------------------------------------------- download


def data_download(
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT.")],
    period: Annotated[str, typer.Option(help="FROM:TO dates (UTC, inclusive), e.g. 2024-01-01:2024-06-30.")],
    exchange: Annotated[str, typer.Option(help="Exchange to download from (bybit).")] = "bybit",
    timeframe: Annotated[str, typer.Option(help="Bar length: 1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w.")] = "1h",
    market: Annotated[str, typer.Option(help="spot or linear (USDT perpetuals).")] = "spot",
    store_as: Annotated[
        str | None, typer.Option(help="Exchange name in the store (default: bybit for spot, bybit-linear).")
    ] = None,
    page_size: Annotated[int, typer.Option(help="Bars per request (Bybit serves up to 1000).")] = 1000,
    exchange_url: ExchangeUrlOption = None,
    testnet: TestnetOption = False,
    demo: DemoOption = False,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Download candles from Bybit into the store: paginated, within rate limits, resumable.

    Running it again continues after the last stored bar; only closed bars are stored.
    """
    import asyncio

    from autotrader.domain.candles import format_ms
    from autotrader.domain.errors import ConfigError
    from autotrader.domain.timeframe import Timeframe

    if exchange.strip().lower() != "bybit":
        raise ConfigError(f"--exchange {exchange!r}: only bybit can be downloaded from")
    if market not in ("spot", "linear"):
        raise ConfigError(f"--market {market!r}: choose spot or linear")
    if not 1 <= page_size <= 1000:
        raise ConfigError("--page-size must be between 1 and 1000")
    tf = Timeframe.parse(timeframe)
    from autotrader.adapters.exchange.parsers import interval_for

    interval_for(tf)  # refuse timeframes Bybit does not have before any request
    start_ms, end_ms = _period_ms(period, tf.ms)
    wanted = [s.strip().upper().replace("/", "") for s in symbols.split(",") if s.strip()]
    if not wanted:
        raise ConfigError("--symbols: give at least one symbol")
    store_name = store_as or ("bybit" if market == "spot" else "bybit-linear")
    settings = _settings(config)

    from rich.console import Console

    console = Console()
    results = asyncio.run(
        _download(
            settings,
            wanted,
            tf.name,
            market,
            store_name,
            start_ms,
            end_ms,
            page_size,
            exchange_url,
            testnet,
            demo,
            console,
            quiet,
        )
    )
    for result in results:
        if result.bars_written:
            console.print(
                f"{result.key}: {result.bars_written:,} bars ({format_ms(result.first_ts or 0)} .. "
                f"{format_ms(result.last_ts or 0)}) in {result.requests} requests"
            )
        else:
            console.print(f"{result.key}: already up to date")


async def _download(
    settings: Any,
    symbols: list[str],
    timeframe: str,
    market: str,
    store_name: str,
    start_ms: int,
    end_ms: int,
    page_size: int,
    url: str | None,
    testnet: bool,
    demo: bool,
    console: Any,
    quiet: bool,
) -> list[Any]:
    from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange
    from autotrader.adapters.exchange.download import download_candles
    from autotrader.adapters.storage import open_store
    from autotrader.cli.progress import progress
    from autotrader.domain.candles import SeriesKey

    config = BybitConfig.from_settings(settings.exchange, url=url, testnet=testnet, demo=demo)
    store = open_store(settings)
    results = []
    try:
        async with BybitExchange(config) as exchange:
            for symbol in symbols:  # unknown symbols stop everything before the first download
                await exchange.instrument(market, symbol)  # type: ignore[arg-type]
            for symbol in symbols:
                key = SeriesKey.of(store_name, symbol, timeframe)
                with progress(f"downloading {key}", quiet=quiet) as advance:

                    def report(p: Any, key: Any = key, advance: Any = advance) -> None:
                        advance(p.bars_done, max(p.bars_total, p.bars_done), f"downloading {key}")

                    result = await download_candles(
                        exchange,
                        store,
                        key,
                        market,
                        start_ms,
                        end_ms,  # type: ignore[arg-type]
                        page_bars=page_size,
                        progress=report,
                    )
                    done = max(result.bars_written, 1)
                    advance(done, done, f"downloaded {key}: {result.bars_written:,} new bars")
                results.append(result)
    finally:
        store.close()
    return results


# ---------------------------------------------------------------------------------------- exchange-sim


def exchange_sim(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one and prints it).")] = 8765,
    source_exchange: Annotated[str, typer.Option(help="Exchange whose stored candles are replayed.")] = "binance",
    timeframe: Annotated[str, typer.Option(help="Stored timeframe to replay (klines of multiples are served).")] = "1h",
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols (default: all stored).")] = None,
    start: Annotated[
        str | None, typer.Option(help="Market time to start at, YYYY-MM-DD (default: 200 bars in).")
    ] = None,
    speed: Annotated[float, typer.Option(help="Market seconds per wall second (60: an hour a minute).")] = 60.0,
    manual_clock: Annotated[
        bool, typer.Option("--manual-clock", help="Freeze the market clock; move it with the admin API.")
    ] = False,
    balance: Annotated[float, typer.Option(help="Starting USDT of every account.")] = 10_000.0,
    slippage_bps: Annotated[
        float, typer.Option(help="Slippage of market and stop fills, basis points.")
    ] = DEFAULT_SLIPPAGE_BPS,
    spread_bps: Annotated[float, typer.Option(help="Bid/ask spread, basis points.")] = 1.0,
    rate_limits: Annotated[bool, typer.Option(help="Enforce Bybit's rate limits (10006, HTTP 403).")] = True,
    admin: Annotated[bool, typer.Option("--admin", help="Enable the test-only admin API under /sim-admin/.")] = False,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help="KIND:PROBABILITY[:PATH], repeatable; KIND is one of "
            + ", ".join(_FAULT_KINDS)
            + ". E.g. --fault drop_after_accept:0.02:/v5/order/create",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the fault dice.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="TOML settings file.")] = None,
) -> None:
    """Run a local exchange that speaks Bybit's v5 REST and WebSocket API (for tests, demos, rehearsal).

    It replays stored candles and matches orders against them. It accepts the keys in
    BYBIT_API_KEY / BYBIT_API_SECRET, or makes up a pair and prints it. Point AutoTrader, ccxt or
    pybit at the printed URL.
    """
    import secrets
    import socket
    from decimal import Decimal

    from autotrader.domain.candles import parse_date_ms
    from autotrader.domain.errors import ConfigError
    from autotrader.domain.timeframe import Timeframe

    tf = Timeframe.parse(timeframe)
    faults = [_parse_fault(spec) for spec in fault or []]
    start_ms = None
    if start is not None:
        try:
            start_ms = parse_date_ms(start)
        except ValueError:
            raise ConfigError(f"--start {start!r}: expected a date, YYYY-MM-DD") from None
    if speed < 0:
        raise ConfigError("--speed must be >= 0")
    settings = _settings(config)

    from autotrader.adapters.storage import open_store
    from autotrader.exchange_sim import SimAccountSpec, SimConfig, create_app, sim_candles_from_store

    store = open_store(settings)
    try:
        candles = sim_candles_from_store(
            store, source_exchange, tf.name, [s.strip() for s in symbols.split(",")] if symbols else None
        )
    finally:
        store.close()
    key = settings.exchange.api_key.get_secret_value() if settings.exchange.api_key else None
    secret = settings.exchange.api_secret.get_secret_value() if settings.exchange.api_secret else None
    generated = not (key and secret)
    if generated:
        key, secret = "sim" + secrets.token_hex(8), secrets.token_hex(16)
    assert key is not None
    assert secret is not None
    sim_config = SimConfig(
        candles=candles,
        timeframe=tf.name,
        start_ms=start_ms,
        speed=0.0 if manual_clock else speed / 1.0,
        accounts=[SimAccountSpec(key, secret, {"USDT": Decimal(repr(balance))})],
        slippage_bps=slippage_bps,
        spread_bps=spread_bps,
        rate_limits=rate_limits,
        admin=admin,
        faults=faults,
        seed=seed,
    )
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)  # clients queue until the server accepts: the URL printed below works at once
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None
    bound = sock.getsockname()[1]
    app = create_app(sim_config)
    state = app.state.sim
    url = f"http://{host}:{bound}"
    print(f"exchange-sim listening on {url} (WebSocket ws://{host}:{bound}/v5/public/spot|linear, /v5/private)")
    print(
        f"replaying {len(candles)} symbols ({', '.join(sorted(candles))}) of {source_exchange} {tf.name} candles "
        f"from {_fmt_ms(state.market_now_ms())} at {'a manual clock' if manual_clock else f'{speed:g}x'}"
    )
    if generated:
        print(f"sim-only credentials: export BYBIT_BASE_URL={url} BYBIT_API_KEY={key} BYBIT_API_SECRET={secret}")
    else:
        print(f"accepting the keys in BYBIT_API_KEY / BYBIT_API_SECRET; export BYBIT_BASE_URL={url}")
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.secho(
            f"warning: bound to {host}, not loopback: anyone who can reach it can trade on it",
            fg=typer.colors.YELLOW,
            err=True,
        )
    if faults:
        print(
            "fault injection: "
            + ", ".join(f"{f.kind} p={f.probability:g}{' ' + f.path if f.path else ''}" for f in faults)
        )
    import sys

    sys.stdout.flush()
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, ws="websockets-sansio", timeout_graceful_shutdown=2)
    )
    server.run(sockets=[sock])


def _fmt_ms(ms: int) -> str:
    from autotrader.domain.candles import format_ms

    return format_ms(ms) + " UTC"


def _parse_fault(spec: str) -> Any:
    from autotrader.domain.errors import ConfigError
    from autotrader.exchange_sim import Fault

    kind, _, rest = spec.partition(":")
    probability, _, path = rest.partition(":")
    if kind not in _FAULT_KINDS:
        raise ConfigError(f"--fault {spec!r}: unknown kind {kind!r}; choose one of {', '.join(_FAULT_KINDS)}")
    try:
        p = float(probability or "1")
    except ValueError:
        raise ConfigError(f"--fault {spec!r}: the probability must be a number between 0 and 1") from None
    if not 0 < p <= 1:
        raise ConfigError(f"--fault {spec!r}: the probability must be between 0 and 1")
    if path and not path.startswith("/v5/"):
        raise ConfigError(f"--fault {spec!r}: the path must start with /v5/, e.g. /v5/order/create")
    options: dict[str, Any] = {"count": None, "probability": p, "path": path}
    if kind in ("timeout", "drop_after_accept"):
        options["delay_s"] = 15.0
    if kind == "ip_ban":
        options["duration_s"] = 60.0
    if kind == "refuse_conditional":
        options.update(
            path=path or "/v5/order/create", ret_code=10001, ret_msg="params error: conditional orders refused"
        )
    return Fault(kind=kind, **options)  # type: ignore[arg-type]
