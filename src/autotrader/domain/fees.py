"""The venue's fee table: one place for the taker and maker fee of each market (Bybit's base tier)."""

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


def default_taker_fee(market: str) -> float:
    """The venue's default taker fee per side for ``market`` (``spot`` or ``linear``)."""
    return DEFAULT_FEES[market].taker
