"""Bybit v5 ``retCode`` → AutoTrader error class, and what the adapter does about each code.

The table is the single place where Bybit's numbers meet our taxonomy (STYLE.md): the adapter
looks a code up, acts on ``action`` (wait, resync, reconcile ...) and, when it gives up, raises
``error_for(code, message)`` ``from`` the vendor exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from autotrader.domain.errors import (
    AuthError,
    ExchangeError,
    InsufficientFunds,
    OrderRejected,
    RateLimited,
    TemporaryExchangeError,
)


class Action(StrEnum):
    """What the adapter does on a code before (or instead of) raising."""

    RAISE = "raise"  # definitive: raise the mapped error
    RETRY = "retry"  # transient: retry with capped backoff (an order create reconciles first)
    WAIT = "wait"  # rate limited: wait until the limit resets, then retry
    RESYNC = "resync"  # clock out of the receive window: resync with market/time, retry
    RECONCILE = "reconcile"  # duplicate orderLinkId: look the order up by its id
    NOT_FOUND = "not_found"  # the order does not exist (any more): reconcile by lookup
    SUCCESS = "success"  # "not modified": the wanted state already holds


class AmbiguousOutcome(TemporaryExchangeError):
    """The request may or may not have been executed (timeout, 5xx, dropped connection).

    For an order this means: look it up by its client order id before doing anything else.
    """


@dataclass(frozen=True, slots=True)
class RetCode:
    error: type[ExchangeError]
    action: Action
    meaning: str


_AUTH_HINT = "check BYBIT_API_KEY / BYBIT_API_SECRET and that the key belongs to this environment"

RET_CODES: dict[int, RetCode] = {
    # --- request / auth (10xxx)
    10000: RetCode(TemporaryExchangeError, Action.RETRY, "server timeout"),
    10001: RetCode(OrderRejected, Action.RAISE, "request parameter error"),
    10002: RetCode(TemporaryExchangeError, Action.RESYNC, "request time outside the receive window (clock skew)"),
    10003: RetCode(AuthError, Action.RAISE, f"API key invalid or used on the wrong environment; {_AUTH_HINT}"),
    10004: RetCode(AuthError, Action.RAISE, "signature error: the secret does not match the key"),
    10005: RetCode(AuthError, Action.RAISE, "permission denied: the API key lacks the permission for this call"),
    10006: RetCode(RateLimited, Action.WAIT, "too many requests for this endpoint (UID rate limit)"),
    10007: RetCode(AuthError, Action.RAISE, "user authentication failed"),
    10008: RetCode(AuthError, Action.RAISE, "the account is banned from this action"),
    10009: RetCode(AuthError, Action.RAISE, "IP banned for this key"),
    10010: RetCode(AuthError, Action.RAISE, "request IP not in the API key's IP whitelist"),
    10016: RetCode(TemporaryExchangeError, Action.RETRY, "server error or service restarting"),
    10017: RetCode(ExchangeError, Action.RAISE, "route not found (wrong path or method)"),
    10018: RetCode(RateLimited, Action.WAIT, "IP rate limit exceeded"),
    10027: RetCode(AuthError, Action.RAISE, "trading is banned for this account"),
    10429: RetCode(RateLimited, Action.WAIT, "system-level frequency protection"),
    33004: RetCode(AuthError, Action.RAISE, "API key expired"),
    # --- amend: the order already has what was asked (e.g. the same trigger price again)
    34040: RetCode(OrderRejected, Action.SUCCESS, "order not modified"),
    # --- derivatives orders (110xxx)
    110001: RetCode(OrderRejected, Action.NOT_FOUND, "order does not exist (or already triggered: too late to amend)"),
    110003: RetCode(OrderRejected, Action.RAISE, "order price outside the permissible range"),
    110004: RetCode(InsufficientFunds, Action.RAISE, "wallet balance insufficient"),
    110007: RetCode(InsufficientFunds, Action.RAISE, "available balance insufficient"),
    110008: RetCode(OrderRejected, Action.NOT_FOUND, "order already filled or cancelled"),
    110012: RetCode(InsufficientFunds, Action.RAISE, "available balance insufficient"),
    110017: RetCode(OrderRejected, Action.RAISE, "reduce-only order with no position to reduce"),
    110025: RetCode(OrderRejected, Action.SUCCESS, "position mode not modified"),
    110043: RetCode(OrderRejected, Action.SUCCESS, "leverage not modified"),
    110044: RetCode(InsufficientFunds, Action.RAISE, "available margin insufficient"),
    110045: RetCode(InsufficientFunds, Action.RAISE, "wallet balance insufficient"),
    110072: RetCode(OrderRejected, Action.RECONCILE, "duplicate orderLinkId"),
    110092: RetCode(OrderRejected, Action.RAISE, "rising trigger already at or below the price"),
    110093: RetCode(OrderRejected, Action.RAISE, "falling trigger already at or above the price"),
    110094: RetCode(OrderRejected, Action.RAISE, "order below the minimum notional value"),
    # --- spot orders (170xxx)
    170121: RetCode(OrderRejected, Action.RAISE, "invalid symbol"),
    170130: RetCode(OrderRejected, Action.RAISE, "invalid parameter value"),
    170131: RetCode(InsufficientFunds, Action.RAISE, "balance insufficient"),
    170134: RetCode(OrderRejected, Action.RAISE, "price has too many decimals"),
    170136: RetCode(OrderRejected, Action.RAISE, "quantity below the minimum"),
    170137: RetCode(OrderRejected, Action.RAISE, "quantity has too many decimals"),
    170140: RetCode(OrderRejected, Action.RAISE, "order value below the minimum"),
    170141: RetCode(OrderRejected, Action.RECONCILE, "duplicate clientOrderId"),
    170148: RetCode(OrderRejected, Action.RAISE, "market order amount too large"),
    170193: RetCode(OrderRejected, Action.RAISE, "buy price above the allowed band"),
    170194: RetCode(OrderRejected, Action.RAISE, "sell price below the allowed band"),
    170213: RetCode(OrderRejected, Action.NOT_FOUND, "order does not exist"),
}

DUPLICATE_CODES = frozenset(c for c, r in RET_CODES.items() if r.action is Action.RECONCILE)
NOT_FOUND_CODES = frozenset(c for c, r in RET_CODES.items() if r.action is Action.NOT_FOUND)
NOT_MODIFIED_CODES = frozenset(c for c, r in RET_CODES.items() if r.action is Action.SUCCESS)
# an amend that "changed nothing" is only 34040; 110025/110043 are position-mode/leverage answers
AMEND_NOT_MODIFIED_CODES = frozenset({34040})


def lookup(ret_code: int) -> RetCode:
    """The table entry for ``ret_code``; unknown codes are definitive ``ExchangeError``s."""
    return RET_CODES.get(ret_code, RetCode(ExchangeError, Action.RAISE, "unrecognised Bybit error"))


def error_for(ret_code: int, ret_msg: str, context: str = "", *, order: bool = True) -> ExchangeError:
    """The AutoTrader error for a Bybit refusal, with a one-line message naming the cause.

    ``order=False`` (a request that is not an order) turns order refusals into plain
    ``ExchangeError``: a bad parameter on a market-data call is not a rejected order. The code is
    kept on the error as ``ret_code``.
    """
    entry = lookup(ret_code)
    cls = entry.error
    if not order and issubclass(cls, OrderRejected):
        cls = ExchangeError
    if entry.action is Action.RETRY:
        cls = AmbiguousOutcome
    where = f"{context}: " if context else ""
    detail = f" ({ret_msg.strip()})" if ret_msg and ret_msg.strip() and ret_msg.strip() != "OK" else ""
    error = cls(f"{where}Bybit {ret_code}: {entry.meaning}{detail}")
    error.ret_code = ret_code  # type: ignore[attr-defined]
    return error


def http_error_for(status: int, context: str = "", ban_s: float | None = None) -> ExchangeError:
    """The error for a non-JSON HTTP failure (CDN/gateway answers)."""
    where = f"{context}: " if context else ""
    if status == 403:
        length = f"{ban_s / 60:.0f} min" if ban_s and ban_s >= 60 else f"{ban_s or 0:.1f} s"
        pause = f"; pausing all requests for {length}" if ban_s else ""
        return RateLimited(f"{where}Bybit HTTP 403: access too frequent (IP rate limit) or region blocked{pause}")
    if status == 429:
        return RateLimited(f"{where}Bybit HTTP 429: too many requests")
    if status in (401,):
        return AuthError(f"{where}Bybit HTTP 401: unauthorised; {_AUTH_HINT}")
    if status == 404:
        return ExchangeError(f"{where}Bybit HTTP 404: no such endpoint (wrong base URL or category)")
    return TemporaryExchangeError(f"{where}Bybit HTTP {status}: the exchange is unavailable")


def ret_code_of(error: BaseException) -> int | None:
    """The Bybit ``retCode`` an adapter error was mapped from (``None`` for transport failures)."""
    return getattr(error, "ret_code", None)
