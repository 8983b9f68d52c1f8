"""One instrument type: the venue's trading rules of a symbol (tick, lot step, minimum qty and notional).

``Instrument`` holds the filters as exact decimals, as the exchange sends them; the robot and the
exchange adapter round orders with them (``autotrader.execution.fit_to_instrument``), and the
backtest hands the same filters to its compiled kernel as float arrays (``kernel_filters``), so both
paths round with one set of numbers through the same compiled rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import numpy as np

Market = Literal["spot", "linear"]

QUOTE_COINS = ("USDT", "USDC", "USD")


@dataclass(frozen=True, slots=True)
class Instrument:
    """What the venue accepts for one symbol (Bybit ``instruments-info`` filters), as exact decimals."""

    symbol: str
    market: Market
    base_coin: str
    quote_coin: str
    status: str
    tick_size: Decimal  # the price step
    lot_step: Decimal  # the quantity step (base coin; contracts on linear)
    min_qty: Decimal
    min_notional: Decimal  # the smallest order value, in the quote coin
    max_qty: Decimal | None = None  # the largest limit order (``None``: the venue names no limit)
    max_market_qty: Decimal | None = None  # the largest market order (``None``: the venue names no limit)
    max_leverage: Decimal = Decimal(1)
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def is_trading(self) -> bool:
        return self.status == "Trading"

    @classmethod
    def trading(
        cls,
        symbol: str,
        market: Market,
        tick_size: float | Decimal | str,
        lot_step: float | Decimal | str,
        min_qty: float | Decimal | str,
        min_notional: float | Decimal | str,
        max_leverage: float | Decimal | str = 1,
    ) -> Instrument:
        """A trading instrument from plain numbers (a float is taken as its shortest decimal text).

        The coins are read from the symbol (``BTCUSDT`` → ``BTC``/``USDT``); a step of 0 means "no
        rounding" and a minimum of 0 "no minimum" (what-if backtests and tests).
        """
        quote = next((q for q in QUOTE_COINS if symbol.endswith(q) and len(symbol) > len(q)), "USDT")
        base = symbol[: -len(quote)] if symbol.endswith(quote) else symbol
        return cls(
            symbol=symbol,
            market=market,
            base_coin=base,
            quote_coin=quote,
            status="Trading",
            tick_size=_decimal(tick_size),
            lot_step=_decimal(lot_step),
            min_qty=_decimal(min_qty),
            min_notional=_decimal(min_notional),
            max_leverage=_decimal(max_leverage),
        )


def _decimal(value: float | Decimal | str) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value)
    return Decimal(repr(float(value)))  # repr: the shortest text that reads back as the same float


def kernel_filters(instruments: Sequence[Instrument]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-symbol float arrays ``(tick_size, lot_step, min_qty, min_notional)`` for the compiled kernels."""
    return (
        np.array([float(i.tick_size) for i in instruments], dtype=np.float64),
        np.array([float(i.lot_step) for i in instruments], dtype=np.float64),
        np.array([float(i.min_qty) for i in instruments], dtype=np.float64),
        np.array([float(i.min_notional) for i in instruments], dtype=np.float64),
    )


# Defaults shaped like Bybit's filters for the bundled symbols, used when no live instrument
# list is loaded (backtests). Live trading loads the real filters from the exchange at start.
_Filters = tuple[str, str, str]  # (tick_size, lot_step, min_qty)
_DEFAULT_FILTERS: dict[str, tuple[_Filters, _Filters]] = {
    # symbol: (spot filters, linear filters)
    "BTCUSDT": (("0.01", "0.000001", "0.000048"), ("0.1", "0.001", "0.001")),
    "ETHUSDT": (("0.01", "0.00001", "0.00062"), ("0.01", "0.01", "0.01")),
    "BNBUSDT": (("0.1", "0.001", "0.001"), ("0.01", "0.01", "0.01")),
    "ADAUSDT": (("0.0001", "0.01", "1"), ("0.0001", "1", "1")),
    "STRKUSDT": (("0.0001", "0.01", "1"), ("0.0001", "0.1", "0.1")),
}
SPOT_MIN_NOTIONAL_USD = Decimal(5)
LINEAR_MIN_NOTIONAL_USD = Decimal(5)


def default_instrument(symbol: str, market: Market, reference_price: float) -> Instrument:
    """Bybit-like filters for ``symbol``; unknown symbols get steps scaled to ``reference_price``."""
    tick: float | str
    step: float | str
    min_qty: float | str
    if symbol in _DEFAULT_FILTERS:
        spot, linear = _DEFAULT_FILTERS[symbol]
        tick, step, min_qty = spot if market == "spot" else linear
    else:
        magnitude = 10.0 ** round(math.log10(max(reference_price, 1e-12)))
        tick, step = magnitude * 1e-5, 1e-6 / magnitude * 10.0
        min_qty = step
    return Instrument.trading(
        symbol,
        market,
        tick_size=tick,
        lot_step=step,
        min_qty=min_qty,
        min_notional=SPOT_MIN_NOTIONAL_USD if market == "spot" else LINEAR_MIN_NOTIONAL_USD,
        max_leverage=1 if market == "spot" else 100,
    )
