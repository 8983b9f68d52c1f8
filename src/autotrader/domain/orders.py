"""Orders, fills, positions, balances and tickers as frozen values; the order state machine.

Pure: no I/O, no vendor library. Quantities and prices are ``Decimal`` (exchanges speak decimal
strings; floats would put 0.30000000000000004 on the wire). Every venue object keeps the raw
payload it was parsed from in ``raw`` (excluded from equality).

An ``Order`` never changes in place: ``order.apply(event)`` returns the next ``Order`` after
checking the move against ``TRANSITIONS``. Events are past tense (``OrderFilled``), the command
is imperative (``SubmitOrder``).

Client order ids are derived from the decision that made the order (``derive_client_order_id``)
so that a restarted robot re-derives the same id and the venue's duplicate check protects it.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any

from autotrader.domain.errors import AutoTraderError
from autotrader.domain.instrument import Instrument, Market

ZERO = Decimal(0)

# ------------------------------------------------------------------------------------------ enums


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is OrderSide.BUY else -1

    @property
    def opposite(self) -> OrderSide:
        return OrderSide.SELL if self is OrderSide.BUY else OrderSide.BUY


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_MARKET = "stop_market"  # conditional: becomes a market order when the trigger price trades
    STOP_LIMIT = "stop_limit"  # conditional: becomes a limit order at ``price`` when triggered

    @property
    def is_conditional(self) -> bool:
        return self in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT)

    @property
    def has_price(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)


class TimeInForce(StrEnum):
    GTC = "gtc"
    IOC = "ioc"
    FOK = "fok"
    POST_ONLY = "post_only"  # maker only: an order that would cross is cancelled, not filled


class OrderStatus(StrEnum):
    INITIALIZED = "initialized"  # built and stored locally, never sent
    DENIED = "denied"  # refused locally before sending (venue rules, risk)
    SUBMITTED = "submitted"  # sent; the venue's answer is not known yet
    UNTRIGGERED = "untriggered"  # conditional order resting until its trigger price trades
    ACCEPTED = "accepted"  # live on the venue's book
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"  # cancelled by us or by the venue (IOC remainder, post-only cross, expiry)
    REJECTED = "rejected"  # refused by the venue

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        """Live at the venue (or possibly live: submitted without an answer yet)."""
        return self in (
            OrderStatus.SUBMITTED,
            OrderStatus.UNTRIGGERED,
            OrderStatus.ACCEPTED,
            OrderStatus.PARTIALLY_FILLED,
        )


_TERMINAL = frozenset({OrderStatus.DENIED, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED})

_S = OrderStatus
# The order state machine: status -> statuses it may move to. Anything else is a bug or a stale
# event and raises ``OrderStateError``. SUBMITTED may jump straight to FILLED (a market order's
# fill can be seen before its acknowledgement) and UNTRIGGERED to FILLED (triggered and filled).
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    _S.INITIALIZED: frozenset({_S.SUBMITTED, _S.DENIED}),
    _S.SUBMITTED: frozenset({_S.ACCEPTED, _S.UNTRIGGERED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.REJECTED}),
    _S.UNTRIGGERED: frozenset({_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED}),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED}),
    _S.PARTIALLY_FILLED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED}),
    _S.DENIED: frozenset(),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.REJECTED: frozenset(),
}


class OrderStateError(AutoTraderError):
    """An event does not fit the order's current state (a bug or an event from another order)."""


# ------------------------------------------------------------------------------- client order id

CLIENT_ORDER_ID_MAX = 36
_CLIENT_ID_OK = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_NOT_ID_CHARS = re.compile(r"[^A-Za-z0-9]")


def is_valid_client_order_id(value: str) -> bool:
    """Bybit's ``orderLinkId`` rule: 1-36 characters from ``A-Z a-z 0-9 _ -``."""
    return bool(_CLIENT_ID_OK.match(value))


def derive_client_order_id(strategy: str, symbol: str, decision_id: str | int, intent: str, attempt: int = 0) -> str:
    """A deterministic client order id for one decision, at most 36 characters, Bybit-valid.

    ``decision_id`` identifies what caused the order (a signal id, or the bar open time); ``intent``
    what the order is for (``entry``, ``exit``, ``sl``, ``tp``...). The same inputs always give the
    same id, so an order re-derived after a crash collides with the one already at the venue
    instead of doubling it. ``attempt`` > 0 gives a fresh id for a deliberate re-submission, which
    is only safe once the venue has confirmed the earlier attempt does not exist.

    Format: ``<strategy:8>-<symbol:9>-<intent:4>-<hash:12>``, readable prefix plus a 60-bit hash of
    every input (the prefix alone may be truncated, the hash never).
    """
    digest = hashlib.sha256(f"{strategy}|{symbol}|{decision_id}|{intent}|{attempt}".encode()).digest()
    tag = base64.b32encode(digest).decode("ascii").lower()[:12]
    parts = [_NOT_ID_CHARS.sub("", p)[:n] for p, n in ((strategy, 8), (symbol.upper(), 9), (intent, 4))]
    cid = "-".join([*(p for p in parts if p), tag])
    assert is_valid_client_order_id(cid)
    return cid


# -------------------------------------------------------------------------------------- commands


class TriggerDirection(IntEnum):
    """When a conditional order fires: the price RISING to its trigger (1) or FALLING to it (2).

    Bybit's ``triggerDirection`` values. It follows from what the order is for, never from where the
    price happens to be: a long's stop-loss falls to its level even when the price is already below it.
    """

    RISING = 1
    FALLING = 2

    @classmethod
    def of_exit(cls, exit_side: OrderSide, *, protective: bool) -> TriggerDirection:
        """The direction of a resting exit: a SELL stop-loss falls, a SELL take-profit rises; BUY exits reversed."""
        falls = (exit_side is OrderSide.SELL) == protective
        return cls.FALLING if falls else cls.RISING

    def passed(self, trigger: Decimal, price: Decimal) -> bool:
        """Whether ``price`` is already at or through ``trigger`` (the venue would refuse such an order)."""
        return price >= trigger if self is TriggerDirection.RISING else price <= trigger


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """The command to place one order (what the robot asks the venue for).

    ``qty`` is always in the base coin (contracts for perpetuals). ``take_profit``/``stop_loss``
    attach exchange-resting exits to the order. Use ``autotrader.execution.fit_to_instrument`` to
    round to the venue's steps and refuse orders below its minimums before sending.
    """

    client_order_id: str
    symbol: str
    market: Market
    side: OrderSide
    type: OrderType
    qty: Decimal
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    trigger_direction: TriggerDirection | None = None  # ``None``: the venue adapter infers it from the price
    # set by ``fit_to_instrument`` (``execution.ports``): the rules and the exact order it approved
    fitted: VenueFit | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not is_valid_client_order_id(self.client_order_id):
            raise ValueError(f"client order id {self.client_order_id!r}: 1-36 characters from A-Z a-z 0-9 _ - required")
        if not self.qty > 0:
            raise ValueError(f"order qty must be positive, got {self.qty}")
        if self.type.has_price and (self.price is None or not self.price > 0):
            raise ValueError(f"a {self.type} order needs a positive price")
        if self.type.is_conditional and (self.trigger_price is None or not self.trigger_price > 0):
            raise ValueError(f"a {self.type} order needs a positive trigger price")
        if self.reduce_only and self.market == "spot":
            raise ValueError("reduce-only orders exist only on linear perpetuals")

    @property
    def is_post_only(self) -> bool:
        return self.time_in_force is TimeInForce.POST_ONLY


OrderRequest = SubmitOrder

ORDER_TERMS = (
    "client_order_id",
    "symbol",
    "market",
    "side",
    "type",
    "qty",
    "price",
    "trigger_price",
    "time_in_force",
    "reduce_only",
    "take_profit",
    "stop_loss",
)
"""The fields a ``SubmitOrder`` and the ``Order`` it makes share, with the same names: what was asked for."""


def order_terms(source: SubmitOrder | Order) -> dict[str, Any]:
    """``source``'s ``ORDER_TERMS`` by name (a command's for its order, an order's to send it again)."""
    return {name: getattr(source, name) for name in ORDER_TERMS}


@dataclass(frozen=True, slots=True)
class VenueFit:
    """The mark an order carries once fitted to a venue's rules: the instrument and the order as approved.

    It vouches only for that exact order: one changed with ``dataclasses.replace`` keeps the mark but no
    longer equals ``approved``, so it counts as un-fitted (``execution.ports.is_fitted``).
    """

    instrument: Instrument
    approved: SubmitOrder


# ---------------------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution (a trade) of an order."""

    fill_id: str
    client_order_id: str
    venue_order_id: str
    symbol: str
    market: Market
    side: OrderSide
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    is_maker: bool
    ts_ms: int
    fee_rate: Decimal | None = None
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def notional(self) -> Decimal:
        return self.qty * self.price


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    market: Market
    last: Decimal
    bid: Decimal | None
    ask: Decimal | None
    ts_ms: int
    mark: Decimal | None = None
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def mid(self) -> Decimal:
        if self.bid is not None and self.ask is not None and self.bid > 0 and self.ask > 0:
            return (self.bid + self.ask) / 2
        return self.last


@dataclass(frozen=True, slots=True)
class Position:
    """A perpetual position; ``size`` is unsigned, ``side`` says which way (``None`` when flat)."""

    symbol: str
    market: Market
    side: OrderSide | None
    size: Decimal
    avg_price: Decimal
    leverage: Decimal
    mark_price: Decimal | None = None
    liq_price: Decimal | None = None
    unrealised_pnl: Decimal = ZERO
    realised_pnl: Decimal = ZERO
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    updated_ms: int = 0
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def signed_size(self) -> Decimal:
        if self.side is None:
            return ZERO
        return self.size * self.side.sign

    @property
    def is_flat(self) -> bool:
        return self.side is None or self.size == 0


@dataclass(frozen=True, slots=True)
class Balance:
    """One coin of the account."""

    coin: str
    wallet: Decimal  # total balance of the coin
    available: Decimal  # free for new orders
    locked: Decimal = ZERO  # held by open orders
    equity: Decimal | None = None  # wallet + unrealised P&L
    unrealised_pnl: Decimal = ZERO
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """The whole account: totals in USD(T) and each coin."""

    total_equity: Decimal
    total_available: Decimal
    coins: Mapping[str, Balance]
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def coin(self, name: str) -> Balance:
        """The balance of ``name``; a zero balance when the account holds none."""
        return self.coins.get(name.upper()) or Balance(name.upper(), ZERO, ZERO)


# ---------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class OrderEvent:
    client_order_id: str
    ts_ms: int


@dataclass(frozen=True, slots=True)
class OrderDenied(OrderEvent):
    """Refused before sending: below the venue's minimum, a risk limit, ..."""

    reason: str


@dataclass(frozen=True, slots=True)
class OrderSubmitted(OrderEvent):
    """Sent to the venue (the id was stored before this)."""


@dataclass(frozen=True, slots=True)
class OrderAccepted(OrderEvent):
    """The venue acknowledged the order and gave it an id."""

    venue_order_id: str


@dataclass(frozen=True, slots=True)
class OrderRejected(OrderEvent):
    """The venue refused the order."""

    reason: str
    code: int | None = None


@dataclass(frozen=True, slots=True)
class OrderTriggered(OrderEvent):
    """A conditional order's trigger price traded: it is now a live order."""


@dataclass(frozen=True, slots=True)
class OrderFilled(OrderEvent):
    """A (partial) execution; duplicates of a fill already applied are ignored."""

    fill: Fill


@dataclass(frozen=True, slots=True)
class OrderCanceled(OrderEvent):
    reason: str = ""


# ----------------------------------------------------------------------------------------- order


@dataclass(frozen=True, slots=True)
class Order:
    """An order and everything known about it. Change it only with ``apply(event)``."""

    client_order_id: str
    symbol: str
    market: Market
    side: OrderSide
    type: OrderType
    qty: Decimal
    status: OrderStatus
    price: Decimal | None = None
    trigger_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reduce_only: bool = False
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    venue_order_id: str | None = None
    filled_qty: Decimal = ZERO
    avg_fill_price: Decimal | None = None
    fees: Decimal = ZERO
    reason: str = ""
    created_ms: int = 0
    updated_ms: int = 0
    fill_ids: tuple[str, ...] = ()
    raw: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_command(cls, command: SubmitOrder, ts_ms: int) -> Order:
        """A new INITIALIZED order for ``command``."""
        return cls(**order_terms(command), status=OrderStatus.INITIALIZED, created_ms=ts_ms, updated_ms=ts_ms)

    @property
    def leaves_qty(self) -> Decimal:
        return max(ZERO, self.qty - self.filled_qty)

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def apply(self, event: OrderEvent) -> Order:
        """The order after ``event``; ``OrderStateError`` if the move is not in ``TRANSITIONS``."""
        if event.client_order_id != self.client_order_id:
            raise OrderStateError(f"event for order {event.client_order_id} applied to order {self.client_order_id}")
        if isinstance(event, OrderFilled) and event.fill.fill_id in self.fill_ids:
            return self  # the same execution seen twice (socket and REST): already counted
        target, changes = self._effect(event)
        if target not in TRANSITIONS[self.status]:
            raise OrderStateError(
                f"order {self.client_order_id}: {type(event).__name__} cannot move it from {self.status} to {target}"
            )
        return replace(self, status=target, updated_ms=max(self.updated_ms, event.ts_ms), **changes)

    def _effect(self, event: OrderEvent) -> tuple[OrderStatus, dict[str, Any]]:
        match event:
            case OrderSubmitted():
                return OrderStatus.SUBMITTED, {}
            case OrderDenied(reason=reason):
                return OrderStatus.DENIED, {"reason": reason}
            case OrderAccepted(venue_order_id=vid):
                target = OrderStatus.UNTRIGGERED if self.type.is_conditional else OrderStatus.ACCEPTED
                return target, {"venue_order_id": vid}
            case OrderRejected(reason=reason):
                return OrderStatus.REJECTED, {"reason": reason}
            case OrderTriggered():
                return OrderStatus.ACCEPTED, {}
            case OrderCanceled(reason=reason):
                return OrderStatus.CANCELED, {"reason": reason}
            case OrderFilled(fill=fill):
                return self._fill_effect(fill)
        raise OrderStateError(f"unknown order event {type(event).__name__}")

    def _fill_effect(self, fill: Fill) -> tuple[OrderStatus, dict[str, Any]]:
        filled = self.filled_qty + fill.qty
        if filled > self.qty:
            raise OrderStateError(
                f"order {self.client_order_id}: fills total {filled}, more than the order qty {self.qty}"
            )
        prev_value = (self.avg_fill_price or ZERO) * self.filled_qty
        avg = (prev_value + fill.price * fill.qty) / filled
        status = OrderStatus.FILLED if filled == self.qty else OrderStatus.PARTIALLY_FILLED
        changes: dict[str, Any] = {
            "filled_qty": filled,
            "avg_fill_price": avg,
            "fees": self.fees + fill.fee,
            "fill_ids": (*self.fill_ids, fill.fill_id),
        }
        if self.venue_order_id is None and fill.venue_order_id:
            changes["venue_order_id"] = fill.venue_order_id
        return status, changes


def sync_events(local: Order, venue: Order, fills: Sequence[Fill] = ()) -> list[OrderEvent]:
    """The events that bring ``local`` to what the venue reports (for reconciliation).

    ``venue`` is the venue's snapshot of the same order (as returned by the exchange port) and
    ``fills`` its executions; fills already applied are skipped. Applying the result in order to
    ``local`` gives the venue's status.
    """
    if local.client_order_id != venue.client_order_id:
        raise OrderStateError(f"cannot sync order {local.client_order_id} with {venue.client_order_id}")
    ts = venue.updated_ms or local.updated_ms
    cid = local.client_order_id
    events: list[OrderEvent] = []
    status = local.status
    if status is OrderStatus.INITIALIZED:
        events.append(OrderSubmitted(cid, ts))
        status = OrderStatus.SUBMITTED
    if venue.status is OrderStatus.REJECTED:
        if status is OrderStatus.SUBMITTED:
            events.append(OrderRejected(cid, ts, venue.reason or "rejected by the venue"))
        return events
    if status is OrderStatus.SUBMITTED and venue.venue_order_id:
        events.append(OrderAccepted(cid, ts, venue.venue_order_id))
        status = OrderStatus.UNTRIGGERED if local.type.is_conditional else OrderStatus.ACCEPTED
    if status is OrderStatus.UNTRIGGERED and venue.status not in (OrderStatus.UNTRIGGERED, OrderStatus.CANCELED):
        events.append(OrderTriggered(cid, ts))
    seen = set(local.fill_ids)
    for fill in sorted(fills, key=lambda f: f.ts_ms):
        if fill.client_order_id == cid and fill.fill_id not in seen:
            seen.add(fill.fill_id)
            events.append(OrderFilled(cid, fill.ts_ms, fill))
    if venue.status is OrderStatus.CANCELED and not local.status.is_terminal:
        events.append(OrderCanceled(cid, ts, venue.reason or "cancelled at the venue"))
    return events
