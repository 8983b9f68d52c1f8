"""The venue's fee table (Bybit's base tier), the default slippage, and the round trip's cost.

One place for the taker and maker fee of each market and for the slippage a backtest, the robot
and the ML model's cost assume unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class FeeSchedule:
    """A market's fees per side, as fractions of the traded notional (0.001 = 0.1 %)."""

    taker: float
    maker: float


DEFAULT_FEES: Final[Mapping[str, FeeSchedule]] = MappingProxyType(
    {
        "spot": FeeSchedule(taker=0.001, maker=0.001),
        "linear": FeeSchedule(taker=0.00055, maker=0.0002),
    }
)


DEFAULT_SLIPPAGE_BPS: Final = 2.0
"""Slippage per market fill, in basis points, when none is given."""


def default_taker_fee(market: str) -> float:
    """The venue's default taker fee per side for ``market`` (``spot`` or ``linear``)."""
    return DEFAULT_FEES[market].taker


def round_trip_cost(fee_rate: float, slippage_bps: float) -> float:
    """The cost of an entry and its exit as a fraction of the notional: the fee and slippage, twice."""
    return 2.0 * (fee_rate + slippage_bps / 10_000.0)


def default_fee_help() -> str:
    """The default taker fees of the fee table, for a ``--fee`` option's help."""
    return ", ".join(f"{market} {fees.taker:g}" for market, fees in DEFAULT_FEES.items())
