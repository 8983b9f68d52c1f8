"""Helpers every command module shares: settings from the root options, the store, the console, option parsing.

The command modules import from here, never from ``autotrader.cli.root`` (which imports them to
register their commands), so the CLI package has no import loop. Heavy libraries are imported
inside the functions so ``autotrader --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from autotrader.backtest.runner import BacktestConfig
    from autotrader.config import Settings
    from autotrader.marketdata.store import CandleStore

# Options several commands declare alike (each command gives its own default).
SymbolsOption = Annotated[str, typer.Option(help="Comma-separated symbols.")]
PeriodOption = Annotated[str, typer.Option(help="FROM:TO dates (UTC, inclusive).")]
InitialCapitalOption = Annotated[float, typer.Option(help="Starting capital in USDT.")]
ParamOption = Annotated[list[str] | None, typer.Option("--param", help="Strategy parameter key=value (repeatable).")]
StoredTimeframeOption = Annotated[str, typer.Option(help="Bar length of the stored candles to use.")]
StoredExchangeOption = Annotated[str, typer.Option(help="Exchange whose stored candles to use.")]
RiskLevelOption = Annotated[str, typer.Option(help="conservative, medium or aggressive.")]
SettingsFileOption = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]
LogFileOption = Annotated[Path | None, typer.Option(help="Also log to this file (JSON lines), rotated by size.")]
LogMaxMbOption = Annotated[float, typer.Option(min=0.01, help="--log-file: rotate at this size (MB).")]
LogBackupsOption = Annotated[int, typer.Option(min=1, help="--log-file: rotated files kept.")]
JsonLogsOption = Annotated[
    bool | None,
    typer.Option("--json-logs/--text-logs", help="Log format on stderr (default: text on a terminal, else JSON)."),
]


class RootOptions:
    """The root options (``--config``, ``--verbose``) of the running command."""

    config_file: Path | None = None
    verbose: bool = False


root_options = RootOptions()


def settings_from_options() -> Settings:
    """Settings from ``--config`` (or the default file), with logging configured for the run."""
    from autotrader.config import load_settings
    from autotrader.logs import configure_logging

    settings = load_settings(root_options.config_file)
    configure_logging("INFO" if root_options.verbose else settings.log_level)
    return settings


def open_candle_store(settings: Settings) -> CandleStore:
    """The configured candle store (the caller closes it)."""
    from autotrader.adapters.storage import open_store

    return open_store(settings)


def stdout_console() -> Console:
    """A rich console on stdout."""
    from rich.console import Console

    return Console()


def parse_params(items: list[str]) -> dict[str, str]:
    """``--param key=value`` options as a dict; a malformed one is a ConfigError."""
    from autotrader.domain.errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def parse_period(period: str) -> tuple[str, str]:
    """``--period FROM:TO`` as two date strings; a malformed one is a ConfigError."""
    from autotrader.domain.candles import parse_date_ms
    from autotrader.domain.errors import ConfigError

    start, sep, end = period.partition(":")
    if not sep or not start or not end:
        raise ConfigError(f"--period {period!r}: expected FROM:TO, e.g. 2020-01-01:2024-12-31")
    for part in (start, end):
        try:
            parse_date_ms(part)
        except ValueError:
            raise ConfigError(f"--period {period!r}: {part!r} is not a date (YYYY-MM-DD)") from None
    return start.strip(), end.strip()


def backtest_config(symbols: str, start: str, end: str, **fields: Any) -> BacktestConfig:
    """A ``BacktestConfig`` from ``--symbols A,B``, the parsed ``--period`` and other fields (ConfigError if bad)."""
    from pydantic import ValidationError

    from autotrader.backtest.runner import BacktestConfig

    try:
        return BacktestConfig(symbols=tuple(symbols.split(",")), start=start, end=end, **fields)
    except ValidationError as e:
        raise config_error_from(e) from None


def config_error_from(e: Exception) -> Exception:
    """A pydantic ValidationError as a one-line ConfigError naming the option; other errors unchanged."""
    from pydantic import ValidationError

    from autotrader.domain.errors import ConfigError

    if isinstance(e, ValidationError):
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        return ConfigError(f"{where.replace('_', '-')}: {first['msg']}")
    return e
