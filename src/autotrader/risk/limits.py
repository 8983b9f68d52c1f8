"""Risk limits and the three risk levels (conservative / medium / aggressive)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

RiskLevel = Literal["conservative", "medium", "aggressive"]
Sizing = Literal["fixed", "kelly", "volatility"]


class RiskLimits(BaseModel):
    """Every limit the risk engine enforces. Fractions, not percent (0.05 = 5 %)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position_size: float = Field(gt=0, le=1, description="max notional of one position / equity")
    stop_loss: float | None = Field(gt=0, lt=1, description="stop distance from the entry price; None = none")
    take_profit: float | None = Field(default=None, gt=0, description="target distance from entry; None = none")
    trailing_stop: float | None = Field(default=None, gt=0, lt=1, description="trailing distance; None = none")
    daily_loss: float = Field(gt=0, le=1, description="loss from the UTC day's start that blocks entries")
    max_drawdown: float = Field(gt=0, le=1, description="drawdown from peak that halts trading")
    correlation: float = Field(gt=-1, le=1, description="max exposure-weighted avg pairwise correlation")
    correlation_window_bars: int = Field(default=168, ge=10)
    max_leverage: float = Field(default=1.0, ge=1, description="cap on linear (perpetual) leverage")
    min_confidence: float = Field(default=0.55, ge=0, le=1, description="signals below it are skipped")
    risk_per_trade: float = Field(
        default=0.00125,
        gt=0,
        le=1,
        description="volatility sizing: each position's expected daily volatility, as a share of equity",
    )
    kelly_fraction: float = Field(default=0.5, gt=0, le=1, description="share of full Kelly used")
    kelly_min_trades: int = Field(default=20, ge=1, description="closed trades needed before Kelly sizes")
    atr_multiple: float = Field(default=2.0, gt=0, description="stop distance in ATRs for volatility sizing")
    flatten_on_halt: bool = True


RISK_LEVELS: dict[str, RiskLimits] = {
    "conservative": RiskLimits(
        position_size=0.02,
        stop_loss=0.01,
        daily_loss=0.02,
        max_drawdown=0.10,
        correlation=0.7,
        max_leverage=2.0,
        min_confidence=0.60,
        risk_per_trade=0.0005,  # a full-size position at 2.5 % daily volatility
    ),
    "medium": RiskLimits(
        position_size=0.05,
        stop_loss=0.02,
        daily_loss=0.05,
        max_drawdown=0.15,
        correlation=0.7,
        max_leverage=3.0,
        min_confidence=0.55,
        risk_per_trade=0.00125,  # a full-size position at 2.5 % daily volatility
    ),
    "aggressive": RiskLimits(
        position_size=0.10,
        stop_loss=0.03,
        daily_loss=0.10,
        max_drawdown=0.20,
        correlation=0.7,
        max_leverage=5.0,
        min_confidence=0.52,
        risk_per_trade=0.0025,  # a full-size position at 2.5 % daily volatility
    ),
}


def risk_limits(level: str, **overrides: object) -> RiskLimits:
    """The preset for ``level`` with ``overrides`` applied (validated)."""
    from autotrader.domain.errors import ConfigError

    if level not in RISK_LEVELS:
        raise ConfigError(f"unknown risk level {level!r}: choose conservative, medium or aggressive")
    try:
        return RiskLimits.model_validate({**RISK_LEVELS[level].model_dump(), **overrides})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"risk setting {where!r}: {first['msg']}") from None
