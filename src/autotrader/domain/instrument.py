"""Exchange trading rules of one instrument: tick size, lot step, minimum quantity and notional."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Market = Literal["spot", "linear"]


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    """What the venue accepts for one symbol (Bybit ``instruments-info`` filters)."""

    symbol: str
    market: Market
    tick_size: float
    lot_step: float
    min_qty: float
    min_notional_usd: float
    max_leverage: float = 1.0


# Defaults shaped like Bybit's filters for the bundled symbols, used when no live instrument
# list is loaded (backtests). Live trading loads the real filters from the exchange at start.
_SPOT_DEFAULTS: dict[str, tuple[float, float, float]] = {
    # symbol: (tick_size, lot_step, min_qty)
    "BTCUSDT": (0.01, 0.000001, 0.000048),
    "ETHUSDT": (0.01, 0.00001, 0.00062),
    "BNBUSDT": (0.1, 0.001, 0.001),
    "ADAUSDT": (0.0001, 0.01, 1.0),
    "STRKUSDT": (0.0001, 0.01, 1.0),
}
_LINEAR_DEFAULTS: dict[str, tuple[float, float, float]] = {
    "BTCUSDT": (0.1, 0.001, 0.001),
    "ETHUSDT": (0.01, 0.01, 0.01),
    "BNBUSDT": (0.01, 0.01, 0.01),
    "ADAUSDT": (0.0001, 1.0, 1.0),
    "STRKUSDT": (0.0001, 0.1, 0.1),
}
SPOT_MIN_NOTIONAL_USD = 5.0
LINEAR_MIN_NOTIONAL_USD = 5.0


def default_rules(symbol: str, market: Market, reference_price: float) -> InstrumentRules:
    """Bybit-like rules for ``symbol``; unknown symbols get steps scaled to ``reference_price``."""
    table = _SPOT_DEFAULTS if market == "spot" else _LINEAR_DEFAULTS
    if symbol in table:
        tick, step, min_qty = table[symbol]
    else:
        magnitude = 10.0 ** round(__import__("math").log10(max(reference_price, 1e-12)))
        tick, step = magnitude * 1e-5, 1e-6 / magnitude * 10.0
        min_qty = step
    return InstrumentRules(
        symbol=symbol,
        market=market,
        tick_size=tick,
        lot_step=step,
        min_qty=min_qty,
        min_notional_usd=SPOT_MIN_NOTIONAL_USD if market == "spot" else LINEAR_MIN_NOTIONAL_USD,
        max_leverage=1.0 if market == "spot" else 100.0,
    )
