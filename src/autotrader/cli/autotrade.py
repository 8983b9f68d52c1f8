"""``autotrader autotrade``: the trading robot (demo, live) and its status report.

Wiring lives here, at the edge: the Bybit adapter (or a local ``exchange-sim``), the state store,
the Kafka signal source, the clock and the metrics endpoint are built and handed to
``autotrader.live.robot.Robot``.

Demo mode never sends an order to a real account. It runs against one of:

* ``--exchange-url http://127.0.0.1:PORT`` — a local ``autotrader exchange-sim`` (replayed prices);
* ``--exchange-url bybit-demo`` — Bybit's demo trading (paper money, live prices, demo keys);
* nothing — a paper wallet: an in-process exchange-sim funded with ``--capital`` that replays the
  stored candles of ``--symbols`` from ``--replay-start`` at ``--replay-speed``.

Any other URL is refused in demo mode (an allow-list: Bybit demo trading and testnet over https,
or a server on a loopback address). Live mode needs the keys (BYBIT_API_KEY /
BYBIT_API_SECRET, from the environment only), ``--confirm-live`` (or a typed "yes"), and an
account balance of at least ``--capital``.

Heavy libraries are imported inside the command.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from autotrader.cli.common import (
    JsonLogsOption,
    LogBackupsOption,
    LogFileOption,
    LogMaxMbOption,
    SettingsFileOption,
    SymbolsOption,
)

if TYPE_CHECKING:
    from autotrader.config import Settings
    from autotrader.live.robot_config import RobotConfig

log = logging.getLogger("autotrader.cli.autotrade")

# Demo mode connects to these only (an allow-list): Bybit's demo trading and testnet, or a local server.
DEMO_HOSTS = frozenset({"api-demo.bybit.com", "api-testnet.bybit.com"})


def register(app: typer.Typer) -> None:
    """Add the ``autotrade`` command to ``app``."""
    app.command("autotrade")(autotrade)


@dataclass
class RobotOptions:
    """Everything ``run_robot`` needs (the CLI flags, parsed)."""

    config: RobotConfig
    db: str | None = None
    exchange_url: str | None = None
    signals: str | None = None
    clock: str = "auto"
    metrics_port: int | None = None
    allowed_hosts: tuple[str, ...] = ()
    kill_switch_file: Path | None = None
    confirm_live: bool = False
    replay_speed: float = 60.0
    replay_start: str | None = None
    replay_exchange: str = "binance"
    kafka_group: str | None = None
    kafka_session_timeout_ms: int = 6000
    settings_file: Path | None = None
    json_logs: bool | None = None
    log_level: str = "INFO"
    reset_paper: bool = False
    log_file: Path | None = None
    log_max_bytes: int = 20 * 1_048_576
    log_backups: int = 5
    max_start_failures: int = 5


def autotrade(
    mode: Annotated[
        str, typer.Option(help="demo (paper money), live (real money) or status (report and exit).")
    ] = "demo",
    exchange: Annotated[str, typer.Option(help="Exchange (bybit).")] = "bybit",
    symbols: SymbolsOption = "BTCUSDT",
    capital: Annotated[float, typer.Option(help="Capital the robot trades with (USDT).")] = 1000.0,
    risk: Annotated[str, typer.Option(help="Risk level: conservative, medium or aggressive.")] = "medium",
    signals: Annotated[
        str | None,
        typer.Option(envvar="AUTOTRADER_SIGNALS", help="Signal source kafka://HOST:PORT/TOPIC (default: --strategy)."),
    ] = None,
    strategy: Annotated[
        str | None,
        typer.Option(help="Compute signals from closed candles with this strategy (default: the built-in ml model)."),
    ] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Strategy parameter key=value.")] = None,
    sizing: Annotated[str, typer.Option(help="Position sizing: fixed, kelly or volatility.")] = "fixed",
    market: Annotated[str, typer.Option(help="spot (long only) or linear (USDT perpetuals).")] = "spot",
    leverage: Annotated[float, typer.Option(help="Leverage for linear markets.")] = 1.0,
    timeframe: Annotated[str, typer.Option(help="Bar length for marking, risk and strategy signals.")] = "1h",
    db: Annotated[
        str | None, typer.Option(help="State store URL (default: POSTGRES_DSN, else $AUTOTRADER_HOME/state.db).")
    ] = None,
    exchange_url: Annotated[
        str | None,
        typer.Option(help="REST base URL (exchange-sim: http://127.0.0.1:PORT; 'bybit-demo': Bybit demo trading)."),
    ] = None,
    trading_hours: Annotated[str, typer.Option(help='"24/7" or UTC windows "HH:MM-HH:MM,...".')] = "24/7",
    days: Annotated[int, typer.Option(help="--mode=status: report results over this many days.")] = 30,
    confirm_live: Annotated[bool, typer.Option("--confirm-live", help="Confirm trading real money.")] = False,
    kill_switch_file: Annotated[
        Path | None, typer.Option(help="While this file exists, no new entries (default $AUTOTRADER_HOME/KILL).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar="AUTOTRADER_METRICS_PORT",
            help="Serve /metrics, /health and /kill-switch on 127.0.0.1:PORT (0: any free port).",
        ),
    ] = 9108,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", help="Host name the control endpoint also answers (default: loopback only)."),
    ] = None,
    robot_id: Annotated[str, typer.Option(help="Prefix of the robot's client order ids (1-8 letters/digits).")] = (
        "atrobot"
    ),
    clock: Annotated[
        str, typer.Option(help="auto, wall or venue (the exchange's market clock, for replays).")
    ] = "auto",
    replay_speed: Annotated[float, typer.Option(help="Paper wallet: market seconds per wall second.")] = 60.0,
    replay_start: Annotated[str | None, typer.Option(help="Paper wallet: replay from this date (YYYY-MM-DD).")] = None,
    replay_exchange: Annotated[str, typer.Option(help="Paper wallet: stored candles of this exchange.")] = "binance",
    json_logs: JsonLogsOption = None,
    reset_paper: Annotated[
        bool, typer.Option("--reset-paper", help="Demo: start the paper wallet and the robot's records over.")
    ] = False,
    log_file: LogFileOption = None,
    log_max_mb: LogMaxMbOption = 20.0,
    log_backups: LogBackupsOption = 5,
    max_start_failures: Annotated[
        int, typer.Option(min=1, help="Refuse to start after this many failed start-ups in a row (exit 78).")
    ] = 5,
    config: SettingsFileOption = None,
) -> None:
    """Run the trading robot (demo or live), or print its status from the state store.

    Signals come from Kafka (--signals) or from a strategy on live candles (--strategy); every
    decision goes through the backtest's risk engine and sizing; orders, fills and positions are
    persisted before and after each exchange call, and the robot reconciles with the exchange on
    every start. Stop it with Ctrl-C (or SIGTERM); a kill -9 is safe too.
    """
    from autotrader.domain.errors import ConfigError

    if exchange.lower() != "bybit":
        raise ConfigError(f"--exchange {exchange!r}: only bybit is supported")
    if mode == "status":
        status_report(db=db, days=days, settings_file=config)
        return
    if mode not in ("demo", "live"):
        raise ConfigError(f"--mode {mode!r}: choose demo, live or status")
    if signals and strategy:
        raise ConfigError("give one signal source: --signals kafka://HOST:PORT/TOPIC or --strategy NAME, not both")
    if not signals:
        signals = None
        strategy = strategy or "ml"
    robot_config = build_config(
        mode, symbols, risk, strategy, param or [], timeframe,
        capital=capital, sizing=sizing, market=market, leverage=leverage, trading_hours=trading_hours, tag=robot_id,
    )  # fmt: skip
    options = RobotOptions(
        config=robot_config,
        db=db,
        exchange_url=exchange_url,
        signals=signals,
        clock=clock,
        metrics_port=metrics_port,
        allowed_hosts=tuple(allowed_host or ()),
        kill_switch_file=kill_switch_file,
        confirm_live=confirm_live,
        replay_speed=replay_speed,
        replay_start=replay_start,
        replay_exchange=replay_exchange,
        settings_file=config,
        json_logs=json_logs,
        reset_paper=reset_paper,
        log_file=log_file,
        log_max_bytes=int(log_max_mb * 1_048_576),
        log_backups=log_backups,
        max_start_failures=max_start_failures,
    )
    raise SystemExit(run_robot(options))


def build_config(
    mode: str, symbols: str, risk: str, strategy: str | None, params: list[str], timeframe: str, **fields: Any
) -> RobotConfig:
    """The robot's frozen configuration from CLI values (``ConfigError`` in one line).

    ``fields`` are ``RobotConfig`` fields the CLI gives as they are (capital, sizing, market, leverage, ...).
    """
    from pydantic import ValidationError

    from autotrader.domain.errors import ConfigError
    from autotrader.domain.timeframe import Timeframe
    from autotrader.live.robot_config import RobotConfig

    lookback = 300
    if strategy:
        lookback = max(lookback, strategy_warmup_bars(strategy, params, risk) + 1)
    parsed: dict[str, Any] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--param {item!r}: expected key=value")
        parsed[key.strip()] = value.strip()
    try:
        cfg = RobotConfig(
            mode=mode,
            symbols=tuple(symbols.split(",")),
            risk_level=risk,
            strategy=strategy,
            strategy_params=parsed,
            timeframe=Timeframe.parse(timeframe).name,
            lookback_bars=lookback,
            **fields,
        )  # type: ignore[arg-type]
        cfg.limits()
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"autotrade: {where}: {first['msg']}") from None
    return cfg


def strategy_warmup_bars(strategy: str, params: list[str], risk: str) -> int:
    """Closed bars the strategy needs before it gives a signal (the robot loads that much history)."""
    from autotrader.cli.common import parse_params
    from autotrader.risk.trading import TradingConfig
    from autotrader.strategy.build import build_strategy

    try:
        trading = TradingConfig(symbols=("BTCUSDT",), risk_level=risk)  # type: ignore[arg-type]
    except ValueError:
        return 0  # build_config reports the bad value in its own words
    from autotrader.live.signal_engine import window_bars_for

    return window_bars_for(build_strategy(strategy, parse_params(params), trading)) - 1


# ------------------------------------------------------------------------------------------- running


def run_robot(options: RobotOptions, ready: Any = None) -> int:
    """Build everything, start the robot and run it until SIGINT/SIGTERM. Returns the exit code.

    Start-up failures in a row (of the environment: database, broker, exchange, reconciliation; not
    configuration errors) are counted in ``$AUTOTRADER_HOME/startup-failures.json``: each retry
    waits longer (up to a minute), and after ``max_start_failures`` the robot refuses to start with
    the last reason (exit 78, which the systemd unit does not restart) until the cause is fixed and
    the file removed, or a start succeeds.
    """
    from autotrader.config import load_settings
    from autotrader.logs import configure_logging

    configure_logging(
        options.log_level,
        json_lines=options.json_logs,
        log_file=options.log_file,
        max_bytes=options.log_max_bytes,
        backups=options.log_backups,
    )
    settings = load_settings(options.settings_file)
    import asyncio  # lazily: `autotrader --help` does not pay for it

    failures = StartupFailures(settings.home / "startup-failures.json", options.max_start_failures)
    failures.before_start()
    try:
        return asyncio.run(_run(options, settings, ready, failures))
    except BaseException as e:
        from autotrader.domain.errors import ConfigError

        # the environment failed (database, broker, exchange, reconciliation): a bad option is not retried
        if not failures.started and not isinstance(e, KeyboardInterrupt | SystemExit | ConfigError):
            failures.record(e)
        raise


class StartupFailures:
    """Consecutive failed start-ups of the robot, kept in a small JSON file."""

    EXIT_CODE = 78  # EX_CONFIG: the systemd unit's RestartPreventExitStatus

    def __init__(self, path: Path, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.started = False

    def _read(self) -> dict[str, Any]:
        import json

        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"count": 0, "reason": ""}
        return data if isinstance(data, dict) else {"count": 0, "reason": ""}

    def before_start(self) -> None:
        """Refuse (exit 78) after ``limit`` failures in a row; else wait a back-off after earlier failures."""
        from autotrader.domain.errors import ConfigError

        data = self._read()
        count = int(data.get("count", 0))
        if count >= self.limit:
            error = ConfigError(
                f"start-up failed {count} times in a row, last: {data.get('reason', '?')}; not retrying. "
                f"Fix the cause, then delete {self.path} (or start with --max-start-failures {count + 1})"
            )
            error.exit_code = self.EXIT_CODE
            raise error
        if count:
            wait_s = min(60.0, 2.0 ** (count - 1))
            log.warning(
                "start-up failed %d time(s) in a row (last: %s); retrying in %g s", count, data.get("reason"), wait_s
            )
            time.sleep(wait_s)

    def record(self, error: BaseException) -> None:
        import json

        from autotrader.files import write_text_atomic

        data = self._read()
        reason = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        data = {"count": int(data.get("count", 0)) + 1, "reason": reason, "at_ms": time.time_ns() // 1_000_000}
        with contextlib.suppress(OSError):
            write_text_atomic(self.path, json.dumps(data))

    def succeeded(self) -> None:
        self.started = True
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


async def _run(  # noqa: C901 - wiring, in order
    options: RobotOptions, settings: Settings, ready: Any, failures: StartupFailures | None = None
) -> int:
    import asyncio

    from autotrader.adapters.exchange.bybit import BybitExchange
    from autotrader.adapters.state import open_state_store, state_url
    from autotrader.api.control import ControlServer
    from autotrader.api.security import load_api_token
    from autotrader.domain.errors import AuthError, ConfigError
    from autotrader.live.metrics import LogCounter, RobotMetrics
    from autotrader.live.reconcile import ReconcileError
    from autotrader.live.risk_state import KillSwitch
    from autotrader.live.robot import Robot

    cfg = options.config
    if options.metrics_port:
        _check_port_free(options.metrics_port)
    url = options.exchange_url or settings.exchange.base_url
    key = settings.exchange.api_key.get_secret_value() if settings.exchange.api_key else None
    secret = settings.exchange.api_secret.get_secret_value() if settings.exchange.api_secret else None
    if cfg.mode == "live":
        _exchange_config(cfg.mode, url, key, secret)  # missing keys: say so before anything else
    if options.signals:
        _check_broker(options.signals)
    store = open_state_store(state_url(settings.home, options.db))
    paper = None
    exchange: Any = None
    server: ControlServer | None = None
    source = None
    metrics = RobotMetrics()
    counter = LogCounter(metrics.exchange_retries)
    try:
        if options.reset_paper:
            if cfg.mode != "demo" or url is not None:
                raise ConfigError("--reset-paper starts the demo's paper wallet over: use it with --mode=demo only")
            deleted = store.reset_trading_state()
            log.warning("paper wallet and robot records reset (%d rows deleted)", sum(deleted.values()))
        if cfg.mode == "demo" and url is None:
            paper, url, key, secret = _paper_wallet(options, settings, store)
        exchange_config = _exchange_config(cfg.mode, url, key, secret)
        if cfg.mode == "live":
            _confirm_live(options, exchange_config)
        exchange = BybitExchange(exchange_config)
        logging.getLogger("autotrader.adapters.exchange").addHandler(counter)
        kill = KillSwitch(options.kill_switch_file or settings.home / "KILL")
        clock = _clock(options, exchange, url)
        if cfg.mode == "live":
            await _check_balance(exchange, cfg)
        strategy = _strategy(cfg, settings) if cfg.strategy else None
        if options.signals:
            from autotrader.adapters.broker.kafka import KafkaSignalSource

            source = KafkaSignalSource(
                options.signals,
                group_id=options.kafka_group or f"autotrader-{cfg.tag}",
                seen=store.seen,
                clock_ms=clock.now_ms,
                session_timeout_ms=options.kafka_session_timeout_ms,
                config=settings.kafka.client_config(),
            )
        robot = Robot(cfg, exchange, store, clock, signals=source, strategy=strategy, kill_switch=kill, metrics=metrics)
        if options.metrics_port is not None:
            server = ControlServer(
                metrics,
                kill,
                health=lambda: {"status": robot.status, "mode": cfg.mode},
                token=load_api_token(settings.home),
                port=options.metrics_port,
                allowed_hosts=options.allowed_hosts,
            )
            port = server.start()
            log.info("metrics endpoint http://127.0.0.1:%d/metrics", port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            summary = await robot.start()
        except ReconcileError as e:
            raise ReconcileError(f"{e}; {_reconcile_hint(options, paper is not None, store.url)}") from None
        if failures is not None:
            failures.succeeded()
        log.info("reconciled with %s: %s", exchange_config.rest_url, summary)
        if ready is not None:
            ready(robot)
        await robot.run(stop)
        await robot.stop()
        return 0
    except AuthError as e:
        raise ConfigError(f"the exchange refused the API key: {e}") from None
    finally:
        if server is not None:
            server.stop()
        if source is not None:
            with contextlib.suppress(Exception):
                source.close()
        if exchange is not None:
            await exchange.close()
        logging.getLogger("autotrader.adapters.exchange").removeHandler(counter)
        if paper is not None:
            paper.stop()
        store.close()


def _reconcile_hint(options: RobotOptions, paper: bool, store_url: str) -> str:
    if paper:
        cfg = options.config
        return (
            "to start the paper wallet over, run: autotrader autotrade --mode=demo "
            f"--symbols={','.join(cfg.symbols)} --capital={cfg.capital:g} --reset-paper"
        )
    return (
        f"compare the account with the store ({store_url}) and settle the difference on the exchange, "
        "or give this account its own store with --db"
    )


def _check_port_free(port: int) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as e:
            raise _port_taken(port, e) from None


def _port_taken(port: int, error: OSError) -> Exception:
    """The control endpoint's own wording (``autotrader.api.control``), said before any other work."""
    import errno

    from autotrader.domain.errors import ConfigError

    why = "is in use by another process" if error.errno == errno.EADDRINUSE else f"cannot be opened ({error.strerror})"
    return ConfigError(
        f"--metrics-port {port}: port {port} on 127.0.0.1 {why}; choose another --metrics-port (0 picks a free port)"
    )


def _check_broker(url: str) -> None:
    from autotrader.adapters.broker.kafka import parse_kafka_url
    from autotrader.adapters.broker.tansu import wait_for_kafka
    from autotrader.domain.errors import BrokerError

    address = parse_kafka_url(url)
    try:
        wait_for_kafka(address.bootstrap, timeout_s=10.0)
    except TimeoutError as e:
        raise BrokerError(f"cannot reach the Kafka broker of --signals {address}: {e}") from None


def _exchange_config(mode: str, url: str | None, key: str | None, secret: str | None) -> Any:
    from autotrader.adapters.exchange.bybit import BybitConfig
    from autotrader.domain.errors import ConfigError

    if url == "bybit-demo":
        if not (key and secret):
            raise ConfigError("Bybit demo trading needs a demo API key: set BYBIT_API_KEY and BYBIT_API_SECRET")
        return BybitConfig.for_environment("demo", key, secret)
    if url is None:
        if mode == "demo":  # pragma: no cover - demo without a URL gets a paper wallet before this
            raise ConfigError("demo mode needs --exchange-url (exchange-sim or bybit-demo)")
        if not (key and secret):
            raise ConfigError("live mode needs BYBIT_API_KEY and BYBIT_API_SECRET in the environment")
        return BybitConfig.for_environment("mainnet", key, secret)
    if mode == "demo" and not demo_url_allowed(url):
        raise ConfigError(
            f"demo mode never trades a real account: {url!r} is not Bybit demo trading (https://api-demo.bybit.com), "
            "testnet (https://api-testnet.bybit.com) or a local simulator on 127.0.0.1/localhost; "
            "use --exchange-url bybit-demo, a local exchange-sim, or --mode=live"
        )
    if not (key and secret):
        raise ConfigError(f"{mode} mode needs the account's keys in BYBIT_API_KEY and BYBIT_API_SECRET")
    return BybitConfig.custom(url, key, secret)


def demo_url_allowed(url: str) -> bool:
    """True for the hosts demo mode may trade on: Bybit demo/testnet over https, or a loopback server."""
    import ipaddress
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.username is not None or parts.password is not None:
        return False
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    return parts.scheme == "https" and host in DEMO_HOSTS


def _confirm_live(options: RobotOptions, exchange_config: Any) -> None:
    from autotrader.domain.errors import ConfigError

    if not exchange_config.has_keys:
        raise ConfigError("live mode needs BYBIT_API_KEY and BYBIT_API_SECRET in the environment")
    if options.confirm_live:
        return
    if not os.isatty(0):
        raise ConfigError("live mode trades real money: pass --confirm-live (no terminal to ask)")
    answer = typer.prompt(
        f"Trade REAL money on {exchange_config.rest_url} with {options.config.capital:g} USDT? Type 'yes'"
    )
    if answer.strip().lower() != "yes":
        raise ConfigError("live trading not confirmed")


async def _check_balance(exchange: Any, cfg: RobotConfig) -> None:
    from autotrader.domain.errors import ConfigError

    balance = await exchange.balance()
    usdt = float(balance.coin("USDT").wallet)
    if usdt < cfg.capital:
        raise ConfigError(f"the account holds {usdt:,.2f} USDT, less than --capital {cfg.capital:,.2f}: not trading")


def _clock(options: RobotOptions, exchange: Any, url: str | None) -> Any:
    from autotrader.domain.errors import ConfigError
    from autotrader.live.clock import VenueClock, WallClock

    kind = options.clock
    if kind == "auto":
        local = url is not None and any(h in url for h in ("127.0.0.1", "localhost", "[::1]"))
        kind = "venue" if local else "wall"
    if kind == "wall":
        return WallClock()
    if kind == "venue":
        return VenueClock(exchange, options.config.market, options.config.symbols[0])
    raise ConfigError(f"--clock {options.clock!r}: choose auto, wall or venue")


def _strategy(cfg: RobotConfig, settings: Settings) -> Any:
    from autotrader.strategy.build import build_strategy

    assert cfg.strategy is not None
    return build_strategy(cfg.strategy, cfg.strategy_params, cfg, cache_dir=settings.cache_dir)


def _paper_wallet(options: RobotOptions, settings: Settings, state: Any) -> tuple[Any, str, str, str]:
    """An in-process exchange-sim replaying stored candles on the stack's replay clock (demo without a URL).

    Its account (balances, orders, fills, positions) lives in the state store: it is restored on
    start and saved whenever it changes, before the robot hears of the change, so a ``kill -9``
    and a restart continue where the wallet was. The market clock is the replay clock kept in the
    same store (``autotrader signals serve --replay`` follows it too).
    """
    import secrets
    from decimal import Decimal

    import numpy as np

    from autotrader.adapters.storage import open_store
    from autotrader.cli.signals import default_replay_start, replay_clock
    from autotrader.domain.timeframe import Timeframe
    from autotrader.exchange_sim import SimAccountSpec, SimConfig, SimServer, sim_candles_from_store
    from autotrader.exchange_sim.persist import account_state, restore_account

    cfg = options.config
    store = open_store(settings)
    try:
        candles = sim_candles_from_store(store, options.replay_exchange, cfg.timeframe, list(cfg.symbols))
    finally:
        store.close()
    tf_ms = Timeframe.parse(cfg.timeframe).ms
    grid = np.unique(np.concatenate([c.ts for c in candles.values()]))
    clock = replay_clock(
        state,
        default_start_ms=default_replay_start(grid, tf_ms, max(cfg.lookback_bars, 200)),
        speed=options.replay_speed,
        start=options.replay_start,
    )
    key, secret = "paper" + secrets.token_hex(6), secrets.token_hex(16)
    sim = SimServer(
        SimConfig(
            candles=candles,
            timeframe=cfg.timeframe,
            start_ms=clock.now_ms(),
            speed=clock.speed,
            accounts=[SimAccountSpec(key, secret, {"USDT": Decimal(repr(cfg.capital))})],
        )
    )
    sim_state = sim.state
    account = sim_state.engine.accounts[key]
    name = f"paper:{cfg.tag}"
    saved = state.load_paper_wallet(name)
    if saved is not None:
        restore_account(sim_state.engine, account, saved)
        log.info("paper wallet %s restored from %s: %s", name, state.url, _wallet_text(account.wallet))
    else:
        log.info("new paper wallet %s with %g USDT", name, cfg.capital)

    def save(st: Any) -> None:
        state.save_paper_wallet(name, account_state(st.engine, account), st.market_now_ms())

    sim_state.on_change = save
    save(sim_state)
    sim.start()
    log.info(
        "paper wallet: exchange-sim at %s replaying %s %s candles at %gx",
        sim.url,
        options.replay_exchange,
        cfg.timeframe,
        clock.speed,
    )
    return sim, sim.url, key, secret


def _wallet_text(wallet: dict[str, Any]) -> str:
    return ", ".join(f"{v} {coin}" for coin, v in sorted(wallet.items()) if v) or "empty"


# -------------------------------------------------------------------------------------------- status


def status_report(*, db: str | None, days: int, settings_file: Path | None = None, now_ms: int | None = None) -> str:
    """Print (and return) the RISK MANAGEMENT and LIVE TRADING RESULTS blocks from the state store."""
    from autotrader.adapters.state import open_state_store, state_url
    from autotrader.adapters.storage import open_store
    from autotrader.cli.status import render_results, render_risk
    from autotrader.config import load_settings
    from autotrader.live.status import live_results, results_window, risk_management
    from autotrader.validation.live_comparison import backtest_comparison

    settings = load_settings(settings_file)
    store = open_state_store(state_url(settings.home, db))
    try:
        wall = time.time_ns() // 1_000_000
        risk = risk_management(store, wall)
        beat = store.last_heartbeat()
        until = now_ms or (beat.ts_ms if beat is not None else wall)
        first_start = min((e.ts_ms for e in store.events(kinds=["start"])), default=None)
        since, window = results_window(until, days, first_start)
        comparison = backtest_comparison(
            store.get_meta("config") or {},
            [d.model for d in store.decisions(since)],
            lambda: open_store(settings),
            since,
            until,
            cache_dir=settings.cache_dir,
        )
        results = live_results(store, since, until, comparison)
        results["window"] = window
        text = render_risk(risk) + "\n\n" + render_results(results, days)
    finally:
        store.close()
    typer.echo(text)
    return text
