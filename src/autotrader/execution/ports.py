"""The exchange port: everything the robot asks of a venue, as one async Protocol.

Adapters (``autotrader.adapters.exchange.bybit.BybitExchange``) implement it; backtest, paper and
live differ only in which implementation they are given. Errors follow the taxonomy of
``autotrader.domain.errors``: ``RateLimited``/``TemporaryExchangeError`` (retry later),
``OrderRejected``/``InsufficientFunds`` (do not resend unchanged), ``AuthError`` (stop).

``fit_to_instrument`` is the venue-rules check every order passes before it is sent: it rounds with
the same ``*_nb`` functions the backtest uses, so backtest and live agree on what is tradable. It
rounds an order once: its result carries a ``VenueFit`` mark, and an adapter sends an order that
``is_fitted`` exactly as it is, with no second rounding and no price lookup.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from decimal import Decimal
from typing import Protocol, runtime_checkable

from autotrader.domain.candles import Candles
from autotrader.domain.errors import OrderRejected
from autotrader.domain.instrument import Instrument, Market
from autotrader.domain.orders import (
    AccountBalance,
    Fill,
    Order,
    Position,
    SubmitOrder,
    Ticker,
    VenueFit,
)


@runtime_checkable
class ExchangePort(Protocol):
    """An exchange account: market data, balances, positions and idempotent order entry."""

    venue: str

    async def server_time_ms(self) -> int:
        """The venue's clock (UTC ms)."""
        ...

    async def instruments(self, market: Market, symbols: Sequence[str] | None = None) -> dict[str, Instrument]:
        """Tradable instruments with their filters (tick, lot step, minimum qty and notional)."""
        ...

    async def candles(
        self,
        market: Market,
        symbol: str,
        timeframe: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 200,
    ) -> Candles:
        """CLOSED bars with ``start_ms <= ts <= end_ms`` (the still-open bar is never returned), oldest first."""
        ...

    async def ticker(self, market: Market, symbol: str) -> Ticker: ...

    async def balance(self) -> AccountBalance: ...

    async def positions(self, symbol: str | None = None) -> list[Position]:
        """Open perpetual positions (one entry per symbol; a flat symbol asked for by name is size 0)."""
        ...

    async def create_order(self, order: SubmitOrder) -> Order:
        """Place ``order`` exactly once.

        ``order.client_order_id`` must be stored by the caller before this is called. After an
        ambiguous failure (timeout, 5xx, dropped connection) the adapter looks the id up at the
        venue before anything else and never re-sends under another id; what it returns is the
        venue's acknowledgement (status ACCEPTED/UNTRIGGERED) or, after a lookup, the venue's view.
        Raises ``OrderRejected`` (and subclasses) for a refusal, ``TemporaryExchangeError`` when
        the outcome is still unknown after its retries (look the id up again later).

        An order that ``is_fitted`` to the venue's current rules is sent exactly as given; any other is
        fitted first (``fit_to_instrument``: rounded, or refused with ``OrderRejected``).
        """
        ...

    async def cancel_order(self, market: Market, symbol: str, client_order_id: str) -> Order | None:
        """Cancel by client id; the order's final state, or ``None`` when the venue never had it."""
        ...

    async def request_cancel(self, market: Market, symbol: str, client_order_id: str) -> bool:
        """Cancel by client id without looking the order up afterwards (one round trip).

        ``True`` when the venue accepted the cancel; ``False`` when it holds no open order by that id
        (filled, cancelled or unknown: look it up to learn which).
        """
        ...

    async def amend_trigger(self, market: Market, symbol: str, client_order_id: str, trigger_price: Decimal) -> bool:
        """Move a resting conditional order's trigger price in place (Bybit ``/v5/order/amend``).

        The order keeps its ids and stays at the venue throughout: no gap in protection. ``True``
        when the venue accepted the amend (or the order already had that trigger price); ``False``
        when it holds no open order by that id any more (filled, triggered, cancelled: look it up).
        Raises ``OrderRejected`` when the venue refuses the new price (the old one still rests),
        ``TemporaryExchangeError`` when the outcome is unknown (look the order up).
        """
        ...

    async def open_orders(self, market: Market, symbol: str | None = None) -> list[Order]: ...

    async def order_by_client_id(self, market: Market, symbol: str, client_order_id: str) -> Order | None:
        """The venue's view of one order (open or recently closed), ``None`` if unknown."""
        ...

    async def fills(
        self,
        market: Market,
        symbol: str | None = None,
        since_ms: int | None = None,
        client_order_id: str | None = None,
    ) -> list[Fill]:
        """Executions, oldest first."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


def fit_to_instrument(order: SubmitOrder, instrument: Instrument, reference_price: Decimal) -> SubmitOrder:
    """``order`` with qty rounded DOWN to the lot step and prices rounded to the tick.

    ``reference_price`` is what a market order is expected to fill at (the last price); limit
    orders use their own price. Raises ``OrderRejected`` naming the cause when the order is below
    the instrument's minimum quantity or notional after rounding (reduce-only perpetual orders are
    exempt from the notional minimum so a small position can always be closed). The result is marked
    as fitted to ``instrument`` (``is_fitted``).
    """
    from autotrader.risk.rules import round_down_nb, round_to_tick_nb, venue_quantity_nb

    if order.symbol != instrument.symbol or order.market != instrument.market:
        raise ValueError(f"instrument {instrument.symbol}/{instrument.market} does not match the order")
    if not instrument.is_trading:
        raise OrderRejected(f"{order.symbol} is not trading on {order.market} (status {instrument.status})")
    price = (
        _on_grid(round_to_tick_nb(float(order.price), float(instrument.tick_size)), instrument.tick_size)
        if (order.price is not None)
        else None
    )
    fill_price = price if price is not None else reference_price
    if not fill_price > 0:
        raise OrderRejected(f"{order.symbol}: no price to check the order's notional against")
    min_notional = 0.0 if order.reduce_only else float(instrument.min_notional)
    qty_f = venue_quantity_nb(
        float(order.qty), float(fill_price), float(instrument.lot_step), float(instrument.min_qty), min_notional
    )
    if qty_f <= 0.0:
        rounded = _on_grid(round_down_nb(float(order.qty), float(instrument.lot_step)), instrument.lot_step)
        if rounded < instrument.min_qty or rounded <= 0:
            why = f"is below the minimum quantity {instrument.min_qty}"
        else:
            why = (
                f"has a notional of {rounded * fill_price:.2f} {instrument.quote_coin}, below the minimum "
                f"{instrument.min_notional} {instrument.quote_coin}"
            )
        raise OrderRejected(
            f"{order.symbol} {order.side} qty {order.qty} (rounded down to lot step {instrument.lot_step}: "
            f"{rounded}) {why}; order not sent"
        )
    qty = _on_grid(qty_f, instrument.lot_step)
    if instrument.max_qty is not None and qty > instrument.max_qty:
        raise OrderRejected(f"{order.symbol} qty {qty} above the maximum {instrument.max_qty}; order not sent")
    if _above_market_maximum(order, qty, instrument):
        raise OrderRejected(
            f"{order.symbol} market qty {qty} above the venue's largest market order {instrument.max_market_qty}; "
            "order not sent"
        )

    def tick(value: Decimal | None) -> Decimal | None:
        if value is None:
            return None
        return _on_grid(round_to_tick_nb(float(value), float(instrument.tick_size)), instrument.tick_size)

    fitted = dataclasses.replace(
        order,
        qty=qty,
        price=price,
        trigger_price=tick(order.trigger_price),
        take_profit=tick(order.take_profit),
        stop_loss=tick(order.stop_loss),
    )
    return mark_fitted(fitted, instrument)


def mark_fitted(order: SubmitOrder, instrument: Instrument) -> SubmitOrder:
    """``order`` as it is, marked as fitted to ``instrument`` (no rounding, no check).

    ``fit_to_instrument`` marks what it returns; call this only for an order rebuilt from one it
    approved (a stored order sent under its id): the mark is the caller's word that the order's
    notional was checked. ``is_fitted`` still checks the grid before the order is sent unchanged.
    """
    approved = dataclasses.replace(order, fitted=None)
    return dataclasses.replace(approved, fitted=VenueFit(instrument, approved))


def is_fitted(order: SubmitOrder, instrument: Instrument) -> bool:
    """Whether ``order`` may be sent unchanged to a venue trading ``instrument``, with no price lookup.

    True when it carries the mark of a fit to these very rules, is the order that was marked (any
    value changed since, e.g. by ``dataclasses.replace``, voids the mark) and keeps the rules that
    need no price: trading status, quantity on the lot step within the minimum and maximum, every
    price on the tick; a priced order also its minimum value (a market order's waits for a price:
    the mark vouches for it).
    """
    fit = order.fitted
    return (
        fit is not None
        and fit.instrument == instrument
        and fit.approved == order
        and on_instrument_grid(order, instrument)
        and (order.price is None or order.reduce_only or order.qty * order.price >= instrument.min_notional)
    )


def on_instrument_grid(order: SubmitOrder, instrument: Instrument) -> bool:
    """Whether ``order`` keeps ``instrument``'s rules that need no price (all but the notional minimum)."""
    if order.symbol != instrument.symbol or order.market != instrument.market or not instrument.is_trading:
        return False
    if not _is_multiple(order.qty, instrument.lot_step) or order.qty < instrument.min_qty:
        return False
    if instrument.max_qty is not None and order.qty > instrument.max_qty:
        return False
    if _above_market_maximum(order, order.qty, instrument):
        return False
    prices = (order.price, order.trigger_price, order.take_profit, order.stop_loss)
    return all(p is None or _is_multiple(p, instrument.tick_size) for p in prices)


def _above_market_maximum(order: SubmitOrder, qty: Decimal, instrument: Instrument) -> bool:
    """A market order (or a conditional one that becomes one) larger than the venue's largest market order."""
    return order.price is None and instrument.max_market_qty is not None and qty > instrument.max_market_qty


def _is_multiple(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or value % step == 0


def _on_grid(value: float, step: Decimal) -> Decimal:
    """A float already on the ``step`` grid (up to float noise) as the exact decimal multiple."""
    if step <= 0:
        return Decimal(repr(value))
    n = round(Decimal(repr(value)) / step)
    return step * n
