"""Bybit v5 wire payloads (REST envelopes and WebSocket messages) → frozen domain values.

Every parser takes the payload exactly as Bybit sends it (numbers as strings, newest-first
klines, ``""`` for absent values) and keeps the item it read in ``raw``. Nothing here does I/O.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ParamSpec, TypeVar

import numpy as np

from autotrader.domain.candles import Candles
from autotrader.domain.errors import DataError, ExchangeError
from autotrader.domain.instrument import Instrument, Market
from autotrader.domain.orders import (
    ZERO,
    AccountBalance,
    Balance,
    Fill,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    Ticker,
    TimeInForce,
)
from autotrader.domain.timeframe import Timeframe

Payload = Mapping[str, Any]
_P = ParamSpec("_P")
_R = TypeVar("_R")
_MALFORMED = (KeyError, IndexError, TypeError, ValueError, AttributeError, ArithmeticError)


def _wire(parse: Callable[_P, _R]) -> Callable[_P, _R]:
    """At the boundary: a payload of the wrong shape (a list for an object, ``"abc"`` for a number ...) is a
    ``DataError`` in one line, never a ``KeyError`` or ``TypeError`` from deep inside the parser."""
    what = parse.__name__.removeprefix("parse_").replace("_", " ")

    @functools.wraps(parse)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return parse(*args, **kwargs)
        except _MALFORMED as e:
            detail = " ".join(str(e).split())[:200]
            raise DataError(f"Bybit sent a malformed {what} payload ({type(e).__name__}: {detail})") from e

    return guarded


# ------------------------------------------------------------------------------------ intervals

_MINUTE_INTERVALS = (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)


def interval_for(timeframe: str | Timeframe) -> str:
    """Bybit's kline ``interval`` for a timeframe (``1h`` → ``60``, ``1d`` → ``D``)."""
    tf = timeframe if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
    minutes, rest = divmod(tf.ms, 60_000)
    if rest == 0 and minutes in _MINUTE_INTERVALS:
        return str(minutes)
    if tf.ms == 86_400_000:
        return "D"
    if tf.ms == 604_800_000:
        return "W"
    from autotrader.domain.errors import ConfigError

    raise ConfigError(f"Bybit has no {tf} candles; use one of 1m 3m 5m 15m 30m 1h 2h 4h 6h 12h 1d 1w")


@_wire
def timeframe_for(interval: str) -> Timeframe:
    """The timeframe of a Bybit kline ``interval`` (``60`` → ``1h``)."""
    if interval == "D":
        return Timeframe.parse("1d")
    if interval == "W":
        return Timeframe.parse("1w")
    minutes = int(interval)
    if minutes % 60 == 0:
        return Timeframe.parse(f"{minutes // 60}h")
    return Timeframe.parse(f"{minutes}m")


# -------------------------------------------------------------------------------------- helpers


def dec(value: Any) -> Decimal | None:
    """A decimal from a wire value; ``None`` for ``""``/``None``."""
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise DataError(f"Bybit sent {value!r} where a number was expected") from None


def dec0(value: Any) -> Decimal:
    return dec(value) or ZERO


def positive(value: Any) -> Decimal | None:
    """A decimal that means something only when > 0 (Bybit sends ``"0"`` for "not set")."""
    d = dec(value)
    return d if d is not None and d > 0 else None


def _int(value: Any, default: int = 0) -> int:
    if value is None or value == "":
        return default
    return int(value)


@_wire
def result_of(payload: Payload) -> Mapping[str, Any]:
    """The ``result`` of a successful envelope; ``ExchangeError`` if ``retCode`` is not 0."""
    code = payload.get("retCode", payload.get("ret_code"))
    if code not in (0, "0"):
        from autotrader.adapters.exchange.errors import error_for

        raise error_for(int(code) if code is not None else -1, str(payload.get("retMsg", "")))
    result = payload.get("result")
    return result if isinstance(result, Mapping) else {}


@_wire
def items_of(payload: Payload) -> Sequence[Mapping[str, Any]]:
    return list(result_of(payload).get("list") or [])


@_wire
def next_cursor(payload: Payload) -> str | None:
    """The ``nextPageCursor`` to pass back, ``None`` on the last page."""
    cursor = result_of(payload).get("nextPageCursor")
    return cursor or None


@_wire
def envelope_time_ms(payload: Payload) -> int | None:
    t = payload.get("time")
    return int(t) if t not in (None, "") else None


def split_symbol(symbol: str) -> tuple[str, str]:
    """``BTCUSDT`` → (``BTC``, ``USDT``) for the quote coins Bybit lists."""
    for quote in ("USDT", "USDC", "USDE", "EUR", "BTC", "ETH", "USD"):
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    return symbol, "USDT"


def _side(value: Any) -> OrderSide:
    if value == "Buy":
        return OrderSide.BUY
    if value == "Sell":
        return OrderSide.SELL
    raise DataError(f"Bybit sent side {value!r}, expected Buy or Sell")


# ---------------------------------------------------------------------------------- market data


@_wire
def parse_server_time(payload: Payload) -> int:
    """``GET /v5/market/time`` → the server clock in ms."""
    result = result_of(payload)
    if nano := result.get("timeNano"):
        return int(nano) // 1_000_000
    if sec := result.get("timeSecond"):
        return int(sec) * 1000
    t = envelope_time_ms(payload)
    if t is None:
        raise DataError("Bybit market/time answer has no time")
    return t


@_wire
def parse_instrument(item: Mapping[str, Any], market: Market) -> Instrument:
    """One ``instruments-info`` entry (spot and linear filters differ)."""
    lot = item.get("lotSizeFilter") or {}
    price = item.get("priceFilter") or {}
    if market == "spot":
        step = dec(lot.get("basePrecision")) or dec(lot.get("qtyStep"))
        min_notional = dec0(lot.get("minOrderAmt"))
        max_qty = dec(lot.get("maxLimitOrderQty")) or dec(lot.get("maxOrderQty"))
        max_mkt = dec(lot.get("maxMarketOrderQty"))
        max_lev = Decimal(1)
    else:
        step = dec(lot.get("qtyStep"))
        min_notional = dec0(lot.get("minNotionalValue"))
        max_qty = dec(lot.get("maxOrderQty"))
        max_mkt = dec(lot.get("maxMktOrderQty"))
        max_lev = dec((item.get("leverageFilter") or {}).get("maxLeverage")) or Decimal(1)
    tick = dec(price.get("tickSize"))
    if step is None or tick is None:
        raise DataError(f"Bybit instrument {item.get('symbol')!r} has no lot step or tick size")
    return Instrument(
        symbol=str(item["symbol"]),
        market=market,
        base_coin=str(item.get("baseCoin", "")),
        quote_coin=str(item.get("quoteCoin", "")),
        status=str(item.get("status", "")),
        tick_size=tick,
        lot_step=step,
        min_qty=dec0(lot.get("minOrderQty")),
        min_notional=min_notional,
        max_qty=max_qty,
        max_market_qty=max_mkt,
        max_leverage=max_lev,
        raw=item,
    )


@_wire
def parse_instruments(payload: Payload, market: Market) -> dict[str, Instrument]:
    """``GET /v5/market/instruments-info`` (one page) → instruments by symbol."""
    return {i.symbol: i for i in (parse_instrument(item, market) for item in items_of(payload))}


@_wire
def parse_kline(payload: Payload, timeframe: str | Timeframe, now_ms: int | None = None) -> Candles:
    """``GET /v5/market/kline`` → closed bars, oldest first.

    Bybit lists bars newest first and the newest may still be open; a bar is kept only when it has
    closed by ``now_ms`` (default: the envelope's server ``time``).
    """
    tf = timeframe if isinstance(timeframe, Timeframe) else Timeframe.parse(timeframe)
    rows = result_of(payload).get("list") or []
    now = now_ms if now_ms is not None else envelope_time_ms(payload)
    if not rows:
        return Candles.empty()
    arr = np.array([[float(x) for x in row[:6]] for row in rows], dtype=np.float64)
    ts = np.array([int(row[0]) for row in rows], dtype=np.int64)
    order = np.argsort(ts, kind="stable")
    ts, arr = ts[order], arr[order]
    keep = np.ones(len(ts), dtype=bool)
    if len(ts) > 1:
        keep[1:] = ts[1:] != ts[:-1]
    if now is not None:
        keep &= ts + tf.ms <= now
    ts, arr = ts[keep], arr[keep]
    return Candles(ts, arr[:, 1].copy(), arr[:, 2].copy(), arr[:, 3].copy(), arr[:, 4].copy(), arr[:, 5].copy())


@_wire
def parse_ticker_item(item: Mapping[str, Any], market: Market, ts_ms: int = 0) -> Ticker:
    last = dec(item.get("lastPrice"))
    if last is None:
        raise DataError(f"Bybit ticker for {item.get('symbol')!r} has no last price")
    return Ticker(
        symbol=str(item["symbol"]),
        market=market,
        last=last,
        bid=positive(item.get("bid1Price")),
        ask=positive(item.get("ask1Price")),
        ts_ms=ts_ms,
        mark=positive(item.get("markPrice")),
        raw=item,
    )


@_wire
def parse_tickers(payload: Payload, market: Market) -> dict[str, Ticker]:
    """``GET /v5/market/tickers`` → tickers by symbol."""
    ts = envelope_time_ms(payload) or 0
    return {t.symbol: t for t in (parse_ticker_item(item, market, ts) for item in items_of(payload))}


# -------------------------------------------------------------------------------------- account


@_wire
def parse_balance(payload: Payload) -> AccountBalance:
    """``GET /v5/account/wallet-balance?accountType=UNIFIED`` → the account's balances."""
    accounts = items_of(payload)
    if not accounts:
        return AccountBalance(ZERO, ZERO, {})
    account = accounts[0]
    coins: dict[str, Balance] = {}
    for c in account.get("coin") or []:
        wallet = dec0(c.get("walletBalance"))
        locked = dec0(c.get("locked")) + dec0(c.get("totalOrderIM"))
        equity = dec(c.get("equity"))
        free = dec(c.get("availableToWithdraw"))
        if free is None:  # deprecated ("") on UTA 2.0: equity minus what orders and positions hold
            free = (equity if equity is not None else wallet) - locked - dec0(c.get("totalPositionIM"))
        coins[str(c["coin"])] = Balance(
            coin=str(c["coin"]),
            wallet=wallet,
            available=max(ZERO, free),
            locked=locked,
            equity=equity,
            unrealised_pnl=dec0(c.get("unrealisedPnl")),
            raw=c,
        )
    return AccountBalance(
        total_equity=dec0(account.get("totalEquity")),
        total_available=dec0(account.get("totalAvailableBalance")),
        coins=coins,
        raw=account,
    )


@_wire
def parse_position(item: Mapping[str, Any], market: Market = "linear") -> Position:
    """One ``position/list`` entry or one WebSocket ``position`` item."""
    size = dec0(item.get("size"))
    side = _side(item["side"]) if item.get("side") in ("Buy", "Sell") and size > 0 else None
    avg = dec(item.get("avgPrice"))
    if avg is None:
        avg = dec(item.get("entryPrice"))  # the WebSocket push names it entryPrice
    return Position(
        symbol=str(item["symbol"]),
        market=market,
        side=side,
        size=size,
        avg_price=avg or ZERO,
        leverage=dec(item.get("leverage")) or Decimal(1),
        mark_price=positive(item.get("markPrice")),
        liq_price=positive(item.get("liqPrice")),
        unrealised_pnl=dec0(item.get("unrealisedPnl")),
        realised_pnl=dec0(item.get("cumRealisedPnl")),
        take_profit=positive(item.get("takeProfit")),
        stop_loss=positive(item.get("stopLoss")),
        updated_ms=_int(item.get("updatedTime")),
        raw=item,
    )


@_wire
def parse_positions(payload: Payload) -> list[Position]:
    """``GET /v5/position/list`` → positions (flat entries included, ``side=None``)."""
    category = result_of(payload).get("category") or "linear"
    return [parse_position(item, "spot" if category == "spot" else "linear") for item in items_of(payload)]


# --------------------------------------------------------------------------------------- orders

_STATUS = {
    "Created": OrderStatus.ACCEPTED,
    "New": OrderStatus.ACCEPTED,
    "Active": OrderStatus.ACCEPTED,
    "PartiallyFilled": OrderStatus.PARTIALLY_FILLED,
    "Filled": OrderStatus.FILLED,
    "Untriggered": OrderStatus.UNTRIGGERED,
    "Triggered": OrderStatus.ACCEPTED,
    "Cancelled": OrderStatus.CANCELED,
    "PartiallyFilledCanceled": OrderStatus.CANCELED,
    "Deactivated": OrderStatus.CANCELED,
    "Rejected": OrderStatus.REJECTED,
}
_TIF = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK, "PostOnly": TimeInForce.POST_ONLY}


def order_status(value: str) -> OrderStatus:
    try:
        return _STATUS[value]
    except KeyError:
        raise DataError(f"Bybit sent order status {value!r}") from None


@_wire
def parse_order(item: Mapping[str, Any], market: Market) -> Order:
    """One order record (``order/realtime``, ``order/history`` or the WebSocket ``order`` topic)."""
    trigger = positive(item.get("triggerPrice"))
    is_limit = item.get("orderType") == "Limit"
    if trigger is not None:
        otype = OrderType.STOP_LIMIT if is_limit else OrderType.STOP_MARKET
    else:
        otype = OrderType.LIMIT if is_limit else OrderType.MARKET
    status = order_status(str(item.get("orderStatus", "")))
    reason = str(item.get("rejectReason") or "")
    if reason == "EC_NoError":
        reason = ""
    if status is OrderStatus.CANCELED and not reason:
        reason = str(item.get("cancelType") or "")
    filled = dec0(item.get("cumExecQty"))
    price = positive(item.get("price"))
    return Order(
        client_order_id=str(item.get("orderLinkId") or ""),
        symbol=str(item["symbol"]),
        market=market,
        side=_side(item.get("side")),
        type=otype,
        qty=dec0(item.get("qty")),
        status=status,
        price=price if otype.has_price else None,
        trigger_price=trigger,
        time_in_force=_TIF.get(str(item.get("timeInForce")), TimeInForce.GTC),
        reduce_only=bool(item.get("reduceOnly", False)),
        take_profit=positive(item.get("takeProfit")),
        stop_loss=positive(item.get("stopLoss")),
        venue_order_id=str(item.get("orderId") or "") or None,
        filled_qty=filled,
        avg_fill_price=positive(item.get("avgPrice")) if filled > 0 else None,
        fees=dec0(item.get("cumExecFee")),
        reason=reason,
        created_ms=_int(item.get("createdTime")),
        updated_ms=_int(item.get("updatedTime")),
        raw=item,
    )


@_wire
def parse_orders(payload: Payload, market: Market) -> list[Order]:
    return [parse_order(item, market) for item in items_of(payload)]


@_wire
def parse_order_ack(payload: Payload) -> tuple[str, str]:
    """``POST /v5/order/create`` or ``/cancel`` → (orderId, orderLinkId)."""
    result = result_of(payload)
    order_id = result.get("orderId")
    if not order_id:
        raise ExchangeError("Bybit acknowledged the order without an orderId")
    return str(order_id), str(result.get("orderLinkId") or "")


@_wire
def parse_fill(item: Mapping[str, Any], market: Market) -> Fill:
    """One execution (``execution/list`` or the WebSocket ``execution`` topic)."""
    side = _side(item.get("side"))
    fee_currency = str(item.get("feeCurrency") or "")
    if not fee_currency:
        base, quote = split_symbol(str(item["symbol"]))
        # spot fees are charged in the coin received; perpetual fees in the settle coin
        fee_currency = base if market == "spot" and side is OrderSide.BUY else quote
    return Fill(
        fill_id=str(item["execId"]),
        client_order_id=str(item.get("orderLinkId") or ""),
        venue_order_id=str(item.get("orderId") or ""),
        symbol=str(item["symbol"]),
        market=market,
        side=side,
        qty=dec0(item.get("execQty")),
        price=dec0(item.get("execPrice")),
        fee=dec0(item.get("execFee")),
        fee_currency=fee_currency,
        is_maker=bool(item.get("isMaker", False)),
        ts_ms=_int(item.get("execTime")),
        fee_rate=dec(item.get("feeRate")),
        raw=item,
    )


@_wire
def parse_fills(payload: Payload, market: Market) -> list[Fill]:
    """``GET /v5/execution/list`` → trade executions, oldest first (funding and others skipped)."""
    fills = [
        parse_fill(item, market)
        for item in items_of(payload)
        if item.get("execType", "Trade") in ("Trade", "BustTrade", "AdlTrade")
    ]
    return sorted(fills, key=lambda f: f.ts_ms)


# ------------------------------------------------------------------------------------ websocket


def _category(item: Mapping[str, Any], default: Market = "linear") -> Market:
    return "spot" if item.get("category") == "spot" else default


@_wire
def parse_ws_kline(message: Payload) -> tuple[str, Timeframe, Candles, np.ndarray]:
    """A ``kline.{interval}.{symbol}`` push → (symbol, timeframe, bars, confirmed flags)."""
    _, interval, symbol = str(message["topic"]).split(".", 2)
    data = message.get("data") or []
    bars = sorted(data, key=lambda d: int(d["start"]))
    candles = Candles.from_columns(
        {
            "ts": [int(b["start"]) for b in bars],
            "open": [float(b["open"]) for b in bars],
            "high": [float(b["high"]) for b in bars],
            "low": [float(b["low"]) for b in bars],
            "close": [float(b["close"]) for b in bars],
            "volume": [float(b["volume"]) for b in bars],
        }
    )
    confirmed = np.array([bool(b.get("confirm")) for b in bars], dtype=bool)
    return symbol, timeframe_for(interval), candles, confirmed


@_wire
def parse_ws_ticker(message: Payload, market: Market) -> Ticker:
    """A ``tickers.{symbol}`` push (snapshot; linear deltas carry only changed fields)."""
    data = message.get("data") or {}
    return parse_ticker_item(data, market, int(message.get("ts") or 0))


@_wire
def parse_ws_orders(message: Payload) -> list[Order]:
    return [parse_order(item, _category(item)) for item in message.get("data") or []]


@_wire
def parse_ws_fills(message: Payload) -> list[Fill]:
    return [
        parse_fill(item, _category(item))
        for item in message.get("data") or []
        if item.get("execType", "Trade") in ("Trade", "BustTrade", "AdlTrade")
    ]


@_wire
def parse_ws_positions(message: Payload) -> list[Position]:
    return [parse_position(item, _category(item)) for item in message.get("data") or []]
