"""Error taxonomy, grouped by what the caller must do (see STYLE.md).

* ``ConfigError``   - refuse to start; the user must fix the configuration.
* ``DataError``     - fail fast; the data is wrong or missing.
* ``StrategyError`` - user strategy code raised; halt that strategy only.
* ``ExchangeError`` - the venue failed; subclasses say whether to retry, reject or stop.

Every ``AutoTraderError`` message is a single line meant for a person: the CLI prints it
as-is and exits non-zero, without a traceback.
"""

from __future__ import annotations


class AutoTraderError(Exception):
    """Base of every error AutoTrader raises on purpose."""

    exit_code: int = 1


class ConfigError(AutoTraderError):
    """Bad configuration or command-line input: refuse to start."""

    exit_code = 2


class DataError(AutoTraderError):
    """Missing, malformed or inconsistent market data: fail fast."""

    exit_code = 3


class StrategyError(AutoTraderError):
    """A strategy raised or produced invalid output: halt that strategy only."""

    exit_code = 4


class StorageError(AutoTraderError):
    """The store could not be reached or refused the operation."""

    exit_code = 5


class StoreUnavailable(StorageError):
    """A store transaction failed for a passing reason (connection lost, timeout, lock, disk full): nothing
    of it was kept, and a later one may succeed. The robot counts it as a fault and goes on."""


class BrokerError(AutoTraderError):
    """The message broker failed in a way retrying will not fix (fatal client error, undelivered messages)."""

    exit_code = 7


class ExchangeError(AutoTraderError):
    """The exchange failed to do what was asked."""

    exit_code = 6


class TemporaryExchangeError(ExchangeError):
    """Transient venue failure (timeout, 5xx): retry with capped backoff."""


class RateLimited(TemporaryExchangeError):
    """The venue throttled us: wait until the limit resets, then retry."""


class OrderRejected(ExchangeError):
    """The venue refused this order; do not retry it unchanged."""


class InsufficientFunds(OrderRejected):
    """Not enough balance or margin for the order."""


class AuthError(ExchangeError):
    """Keys missing, wrong or without permission: stop."""
