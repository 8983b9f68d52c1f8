"""What is traded, at which costs and under which risk limits: the fields a backtest and the robot share.

``BacktestConfig`` (backtest.runner) and ``RobotConfig`` (live.robot_config) both subclass
``TradingConfig``, so the same trading fields give the same risk limits and the same fee in a
backtest and in the robot, and a saved backtest keeps its flat field names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autotrader.domain.errors import ConfigError
from autotrader.domain.fees import DEFAULT_SLIPPAGE_BPS, default_taker_fee
from autotrader.domain.timeframe import Timeframe
from autotrader.risk.limits import RiskLevel, RiskLimits, Sizing, risk_limits

Market = Literal["spot", "linear"]


class TradingConfig(BaseModel):
    """Symbols, market, timeframe, leverage, risk level and overrides, sizing and costs.

    Frozen; unknown fields are refused.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbols: tuple[str, ...]
    market: Market = "spot"
    timeframe: str = "1h"
    leverage: float = Field(default=1.0, ge=1.0)
    risk_level: RiskLevel = "medium"
    risk_overrides: dict[str, Any] = Field(default_factory=dict)
    sizing: Sizing = "fixed"
    fee: float | None = Field(
        default=None, ge=0, lt=0.1, description="taker fee per side; None = the venue's default for the market"
    )
    slippage_bps: float = Field(default=DEFAULT_SLIPPAGE_BPS, ge=0, lt=1000)

    @field_validator("symbols")
    @classmethod
    def _upper(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        out = tuple(dict.fromkeys(s.strip().upper().replace("/", "") for s in v if s.strip()))
        if not out:
            raise ValueError("at least one symbol is needed")
        return out

    @property
    def fee_rate(self) -> float:
        """The taker fee per side in effect: ``fee``, else the venue's default for the market."""
        return default_taker_fee(self.market) if self.fee is None else self.fee

    @property
    def tf(self) -> Timeframe:
        return Timeframe.parse(self.timeframe)

    def limits(self) -> RiskLimits:
        """The risk level's limits with the overrides applied; ``ConfigError`` for leverage on spot
        or above the risk level's cap, or for a bad override."""
        limits = risk_limits(self.risk_level, **self.risk_overrides)
        if self.market == "spot" and self.leverage != 1.0:
            raise ConfigError("leverage applies to --market linear only (spot trades without leverage)")
        if self.leverage > limits.max_leverage:
            raise ConfigError(
                f"leverage {self.leverage:g} exceeds the {self.risk_level} risk level's cap of {limits.max_leverage:g}"
            )
        return limits
