"""What one robot trades and how: ``RobotConfig``, its trading hours and the exit settings it can honour."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from autotrader.domain.errors import ConfigError
from autotrader.risk.limits import RiskLimits
from autotrader.risk.trading import TradingConfig

_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
MINUTE_MS = 60_000
DAY_MS = 86_400_000


class RobotConfig(TradingConfig):
    """What one robot trades and how (frozen; unknown fields are refused).

    The trading fields (symbols, market, timeframe, leverage, risk, sizing, fee, slippage) and
    ``limits()`` come from ``TradingConfig``, shared with the backtest's ``BacktestConfig``.
    """

    mode: Literal["demo", "live"] = "demo"
    capital: float = Field(gt=0)
    tag: str = Field(default="atrobot", min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")
    strategy: str | None = None
    strategy_params: dict[str, Any] = Field(default_factory=dict)
    trading_hours: str = "24/7"
    poll_interval_s: float = Field(default=0.2, gt=0)
    reconcile_interval_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    price_max_age_s: float = Field(default=2.0, gt=0)
    lookback_bars: int = Field(default=300, ge=20, le=100_000)
    signal_batch: int = Field(default=200, ge=1)
    # the state store may fail this long without a break (each failure is one fault); longer stops the robot
    store_outage_limit_s: float = Field(default=300.0, gt=0, le=86_400)

    @model_validator(mode="before")
    @classmethod
    def _old_fee_name(cls, data: Any) -> Any:
        """Robot configs stored before the shared ``TradingConfig`` name the fee ``fee_rate``: still read."""
        if isinstance(data, dict) and "fee_rate" in data:
            data = dict(data)
            old = data.pop("fee_rate")
            if data.setdefault("fee", old) != old:
                raise ValueError("give the fee once, as 'fee' ('fee_rate' is its old name)")
        return data

    @field_validator("trading_hours")
    @classmethod
    def _hours(cls, v: str) -> str:
        parse_trading_hours(v)
        return v


def check_exit_settings(market: str, limits: RiskLimits) -> None:
    """Refuse (one-line ``ConfigError`` naming the setting) an exit the robot could not place as backtested.

    Stop-loss, take-profit and trailing stop rest at the venue as conditional orders, or are held
    by the robot when the venue refuses them, on spot and linear alike. What no venue can hold is
    a short's take-profit at or below zero (``take_profit`` of 100 % or more on linear, where
    shorts are traded): the backtest never fires it, and the robot will not pretend to.
    """
    if market == "linear" and limits.take_profit is not None and limits.take_profit >= 1.0:
        raise ConfigError(
            f"risk setting 'take_profit' {limits.take_profit:g} cannot be honoured on linear: "
            "a short's target would be at or below zero (use less than 1)"
        )


def parse_trading_hours(text: str) -> list[tuple[int, int]]:
    """``"24/7"`` (empty list = always) or ``"HH:MM-HH:MM,..."`` UTC windows (may wrap midnight)."""
    text = text.strip()
    if text.lower() in ("24/7", "always", ""):
        return []
    windows = []
    for part in text.split(","):
        m = _HOURS.match(part.strip())
        if not m:
            raise ConfigError(f"trading hours {text!r}: expected 24/7 or HH:MM-HH:MM[,HH:MM-HH:MM...] (UTC)")
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ConfigError(f"trading hours {part.strip()!r}: not a time of day")
        windows.append((h1 * 60 + m1, h2 * 60 + m2))
    return windows


def in_trading_hours(windows: Sequence[tuple[int, int]], now_ms: int) -> bool:
    """Whether ``now_ms`` falls in one of the windows of ``parse_trading_hours`` (none: always)."""
    if not windows:
        return True
    minute = (now_ms % DAY_MS) // MINUTE_MS
    for start, end in windows:
        if start <= end and start <= minute < end:
            return True
        if start > end and (minute >= start or minute < end):
            return True
    return False


__all__ = ["RobotConfig", "check_exit_settings", "in_trading_hours", "parse_trading_hours"]
