"""Order execution: the exchange port (what a venue must offer) and the venue-rules check."""

from autotrader.execution.ports import ExchangePort, fit_to_instrument

__all__ = ["ExchangePort", "fit_to_instrument"]
