"""The simulator's venue: instruments, unified accounts, order validation, matching, fees, positions.

Plain Python on the server's event loop (no locks). It speaks Bybit's vocabulary — wire dicts with
string numbers, ``retCode`` refusals via ``SimError`` — so the HTTP layer only routes.

Modelled: spot and USDT-linear one-way accounts; market, limit (GTC/IOC/FOK/PostOnly) and
conditional (stop-market/stop-limit) orders; reduce-only; TP/SL attached to an order (linear: on
the position; spot: two conditional child orders, one cancels the other); spot fees in the coin
received; linear margin, fees and realised P&L. Market orders fill at once at the ask/bid plus
slippage; resting orders fill when the replayed price path touches them; a triggered stop-market
(standalone or a position's stop-loss) fills at the worse of its trigger and the first traded price
past it (the next bar's open when the price gaps through), plus slippage. Not modelled: partial
fills, order book depth, funding, liquidation, hedge mode.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from autotrader.domain.fees import DEFAULT_FEES
from autotrader.domain.instrument import default_instrument
from autotrader.exchange_sim.market import MarketReplay

D0 = Decimal(0)
D1 = Decimal(1)
_LINK_ID = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
QUOTE = "USDT"


class SimError(Exception):
    """A Bybit refusal: answered as HTTP 200 with this ``retCode``/``retMsg``."""

    def __init__(self, ret_code: int, ret_msg: str) -> None:
        super().__init__(f"{ret_code} {ret_msg}")
        self.ret_code = ret_code
        self.ret_msg = ret_msg


def fmt(value: Decimal | None) -> str:
    """A wire number: plain decimal notation, no exponent, no trailing zeros."""
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _dec(value: Any, name: str) -> Decimal:
    try:
        d = Decimal(str(value))
    except Exception:
        raise SimError(10001, f"params error: {name} invalid") from None
    if not d.is_finite():
        raise SimError(10001, f"params error: {name} invalid")
    return d


def _dec_float(value: float | Decimal) -> Decimal:
    return Decimal(repr(float(value)))


def on_grid(value: Decimal, step: Decimal) -> bool:
    return step <= 0 or (value / step) == (value / step).to_integral_value()


def _check_trigger_side(direction: int, trigger: Decimal, last: Decimal) -> None:
    """Bybit refuses a conditional order whose trigger is already passed for its direction (110092/110093)."""
    if direction == 1 and trigger <= last:
        raise SimError(110092, f"expect Rising, but trigger_price[{fmt(trigger)}] <= current[{fmt(last)}]??LastPrice")
    if direction == 2 and trigger >= last:
        raise SimError(110093, f"expect Falling, but trigger_price[{fmt(trigger)}] >= current[{fmt(last)}]??LastPrice")


def to_tick(price: float | Decimal, tick: Decimal) -> Decimal:
    p = price if isinstance(price, Decimal) else _dec_float(price)
    return (p / tick).to_integral_value(ROUND_HALF_EVEN) * tick


# ---------------------------------------------------------------------------------- instruments


@dataclass(frozen=True)
class SimInstrument:
    symbol: str
    category: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_qty: Decimal
    max_market_qty: Decimal
    max_leverage: Decimal

    def to_wire(self) -> dict[str, Any]:
        if self.category == "spot":
            return {
                "symbol": self.symbol,
                "baseCoin": self.base,
                "quoteCoin": self.quote,
                "innovation": "0",
                "status": "Trading",
                "marginTrading": "none",
                "stTag": "0",
                "lotSizeFilter": {
                    "basePrecision": fmt(self.step),
                    "quotePrecision": "0.00000001",
                    "minOrderQty": fmt(self.min_qty),
                    "maxOrderQty": fmt(self.max_qty),
                    "minOrderAmt": fmt(self.min_notional),
                    "maxOrderAmt": "8000000",
                    "maxLimitOrderQty": fmt(self.max_qty),
                    "maxMarketOrderQty": fmt(self.max_market_qty),
                },
                "priceFilter": {"tickSize": fmt(self.tick)},
                "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
                "symbolType": "",
            }
        return {
            "symbol": self.symbol,
            "contractType": "LinearPerpetual",
            "status": "Trading",
            "baseCoin": self.base,
            "quoteCoin": self.quote,
            "launchTime": "1585526400000",
            "deliveryTime": "0",
            "deliveryFeeRate": "",
            "priceScale": str(max(0, -self.tick.normalize().as_tuple().exponent)),  # type: ignore[operator]
            "leverageFilter": {"minLeverage": "1", "maxLeverage": fmt(self.max_leverage), "leverageStep": "0.01"},
            "priceFilter": {"minPrice": fmt(self.tick), "maxPrice": "1999999.8", "tickSize": fmt(self.tick)},
            "lotSizeFilter": {
                "maxOrderQty": fmt(self.max_qty),
                "minOrderQty": fmt(self.min_qty),
                "qtyStep": fmt(self.step),
                "postOnlyMaxOrderQty": fmt(self.max_qty),
                "maxMktOrderQty": fmt(self.max_market_qty),
                "minNotionalValue": fmt(self.min_notional),
            },
            "unifiedMarginTrade": True,
            "fundingInterval": 480,
            "settleCoin": self.quote,
            "copyTrading": "both",
            "upperFundingRate": "0.00375",
            "lowerFundingRate": "-0.00375",
            "isPreListing": False,
            "preListingInfo": None,
            "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
            "symbolType": "",
        }


def build_instruments(replay: MarketReplay) -> dict[tuple[str, str], SimInstrument]:
    """Spot and linear instruments for every replayed symbol, with Bybit-like filters."""
    out: dict[tuple[str, str], SimInstrument] = {}
    for symbol, tape in replay.tapes.items():
        ref = float(tape.c.close[len(tape.c) // 2])
        base = symbol[: -len(QUOTE)] if symbol.endswith(QUOTE) else symbol
        for category in ("spot", "linear"):
            rules = default_instrument(symbol, category, ref)  # type: ignore[arg-type]
            step = _dec_float(rules.lot_step)
            out[(category, symbol)] = SimInstrument(
                symbol=symbol,
                category=category,
                base=base,
                quote=QUOTE,
                tick=_dec_float(rules.tick_size),
                step=step,
                min_qty=_dec_float(rules.min_qty),
                min_notional=_dec_float(rules.min_notional),
                max_qty=(Decimal(10_000_000) / _dec_float(max(ref, 1e-9))).quantize(step, ROUND_DOWN) or step,
                max_market_qty=(Decimal(2_000_000) / _dec_float(max(ref, 1e-9))).quantize(step, ROUND_DOWN) or step,
                max_leverage=Decimal(1) if category == "spot" else Decimal(100),
            )
    return out


# ------------------------------------------------------------------------------------- accounts


@dataclass
class SimOrder:
    order_id: str
    link_id: str
    category: str
    symbol: str
    side: str  # Buy / Sell
    order_type: str  # Market / Limit
    qty: Decimal
    price: Decimal
    tif: str
    status: str
    created_ms: int
    updated_ms: int
    armed_ms: int
    trigger_price: Decimal = D0
    trigger_direction: int = 0
    stop_order_type: str = ""
    reduce_only: bool = False
    close_on_trigger: bool = False
    take_profit: Decimal = D0
    stop_loss: Decimal = D0
    cum_qty: Decimal = D0
    cum_value: Decimal = D0
    cum_fee: Decimal = D0
    reject_reason: str = "EC_NoError"
    cancel_type: str = "UNKNOWN"
    locked: Decimal = D0  # spot: coin amount held; linear: order initial margin
    sibling_id: str = ""  # spot TP/SL pair: the other leg
    market_unit: str = ""
    last_price_on_created: Decimal = D0

    @property
    def is_open(self) -> bool:
        return self.status in ("New", "PartiallyFilled", "Untriggered")

    @property
    def sign(self) -> int:
        return 1 if self.side == "Buy" else -1

    def to_wire(self) -> dict[str, Any]:
        avg = self.cum_value / self.cum_qty if self.cum_qty > 0 else None
        leaves = self.qty - self.cum_qty if self.is_open else D0
        return {
            "orderId": self.order_id,
            "orderLinkId": self.link_id,
            "blockTradeId": "",
            "symbol": self.symbol,
            "price": fmt(self.price),
            "qty": fmt(self.qty),
            "side": self.side,
            "isLeverage": "0" if self.category == "spot" else "",
            "positionIdx": 0,
            "orderStatus": self.status,
            "cancelType": self.cancel_type,
            "rejectReason": self.reject_reason,
            "avgPrice": fmt(avg) if avg is not None else ("" if self.category == "spot" else "0"),
            "leavesQty": fmt(leaves),
            "leavesValue": fmt(leaves * self.price),
            "cumExecQty": fmt(self.cum_qty),
            "cumExecValue": fmt(self.cum_value),
            "cumExecFee": fmt(self.cum_fee),
            "timeInForce": self.tif,
            "orderType": self.order_type,
            "stopOrderType": self.stop_order_type or ("" if self.category == "spot" else "UNKNOWN"),
            "orderIv": "",
            "marketUnit": self.market_unit,
            "triggerPrice": fmt(self.trigger_price),
            "takeProfit": fmt(self.take_profit),
            "stopLoss": fmt(self.stop_loss),
            "tpTriggerBy": "LastPrice" if self.take_profit else "",
            "slTriggerBy": "LastPrice" if self.stop_loss else "",
            "triggerDirection": self.trigger_direction,
            "triggerBy": "LastPrice" if self.trigger_price else "UNKNOWN",
            "lastPriceOnCreated": fmt(self.last_price_on_created),
            "reduceOnly": self.reduce_only,
            "closeOnTrigger": self.close_on_trigger,
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "tpslMode": "Full" if (self.take_profit or self.stop_loss) else "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "placeType": "",
            "createdTime": str(self.created_ms),
            "updatedTime": str(self.updated_ms),
        }


@dataclass
class SimPosition:
    symbol: str
    size: Decimal = D0  # signed: > 0 long, < 0 short
    avg_price: Decimal = D0
    cum_realised: Decimal = D0
    cur_realised: Decimal = D0
    take_profit: Decimal = D0
    stop_loss: Decimal = D0
    created_ms: int = 0
    updated_ms: int = 0
    armed_ms: int = 0  # TP/SL only look at prices after this


@dataclass
class SimAccount:
    uid: int
    api_key: str
    secret: str
    read_only: bool = False
    wallet: dict[str, Decimal] = field(default_factory=dict)
    cum_realised: Decimal = D0
    orders: dict[str, SimOrder] = field(default_factory=dict)
    links: dict[tuple[str, str], str] = field(default_factory=dict)
    executions: list[dict[str, Any]] = field(default_factory=list)
    positions: dict[str, SimPosition] = field(default_factory=dict)
    leverage: dict[str, Decimal] = field(default_factory=dict)

    live: dict[str, SimOrder] = field(default_factory=dict)  # open orders (closed ones dropped lazily)
    executions_by_order: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # order id -> its fills

    def add_execution(self, execution: dict[str, Any]) -> None:
        self.executions.append(execution)
        self.executions_by_order.setdefault(execution["orderId"], []).append(execution)

    def orders_by_id(self, category: str, order_id: str | None, link_id: str | None) -> list[SimOrder]:
        """The orders a lookup by ``orderId`` and/or ``orderLinkId`` can match (index, not a scan)."""
        oid = order_id or self.links.get((category, link_id or ""))
        order = self.orders.get(oid) if oid else None
        if order is None or (link_id and order.link_id != link_id):
            return []
        return [order]

    def add_order(self, order: SimOrder) -> None:
        self.orders[order.order_id] = order
        self.live[order.order_id] = order
        if order.link_id:
            self.links[(order.category, order.link_id)] = order.order_id

    def open_orders(self) -> list[SimOrder]:
        for oid in [oid for oid, o in self.live.items() if not o.is_open]:
            del self.live[oid]
        return list(self.live.values())


Listener = Callable[[SimAccount, str, list[dict[str, Any]]], None]


@dataclass
class Fees:
    """The venue's fee rates (defaults: the one fee table, ``domain.fees.DEFAULT_FEES``)."""

    spot_taker: Decimal = Decimal(repr(DEFAULT_FEES["spot"].taker))
    spot_maker: Decimal = Decimal(repr(DEFAULT_FEES["spot"].maker))
    linear_taker: Decimal = Decimal(repr(DEFAULT_FEES["linear"].taker))
    linear_maker: Decimal = Decimal(repr(DEFAULT_FEES["linear"].maker))

    def rate(self, category: str, maker: bool) -> Decimal:
        if category == "spot":
            return self.spot_maker if maker else self.spot_taker
        return self.linear_maker if maker else self.linear_taker


DEFAULT_LEVERAGE = Decimal(10)


@dataclass
class _Draft:
    """An order request being validated."""

    inst: SimInstrument
    category: str
    side: str
    order_type: str
    link_id: str
    qty: Decimal
    tif: str
    reduce_only: bool
    last: Decimal
    bid: Decimal
    ask: Decimal
    market_unit: str = ""
    price: Decimal = D0
    trigger: Decimal = D0
    direction: int = 0
    tp: Decimal = D0
    sl: Decimal = D0

    @property
    def spot(self) -> bool:
        return self.category == "spot"


class SimEngine:
    """All accounts of one simulated venue."""

    def __init__(
        self,
        replay: MarketReplay,
        *,
        fees: Fees | None = None,
        slippage_bps: float = 2.0,
        spread_bps: float = 1.0,
        price_band_pct: float = 10.0,
    ) -> None:
        self.replay = replay
        self.instruments = build_instruments(replay)
        self.fees = fees or Fees()
        self.slippage = Decimal(repr(slippage_bps)) / Decimal(10_000)
        self.half_spread = Decimal(repr(spread_bps)) / Decimal(20_000)
        self.band = Decimal(repr(price_band_pct)) / Decimal(100)
        self.accounts: dict[str, SimAccount] = {}
        self.listeners: list[Listener] = []
        self.last_step_ms = replay.now_ms()
        self._exec_seq = 0

    # ------------------------------------------------------------------------------- accounts

    def add_account(
        self, api_key: str, secret: str, balances: dict[str, Decimal] | None = None, read_only: bool = False
    ) -> SimAccount:
        acct = SimAccount(
            uid=100_000 + len(self.accounts) + 1,
            api_key=api_key,
            secret=secret,
            read_only=read_only,
            wallet=dict(balances or {QUOTE: Decimal(10_000)}),
        )
        self.accounts[api_key] = acct
        return acct

    def _emit(self, acct: SimAccount, topic: str, data: list[dict[str, Any]]) -> None:
        for listener in list(self.listeners):
            listener(acct, topic, data)

    # ---------------------------------------------------------------------------------- prices

    def instrument(self, category: str, symbol: str) -> SimInstrument:
        if category not in ("spot", "linear"):
            raise SimError(10001, "params error: category only support spot and linear")
        inst = self.instruments.get((category, symbol))
        if inst is None:
            if category == "spot":
                raise SimError(170121, "Invalid symbol.")
            raise SimError(10001, "params error: symbol invalid")
        return inst

    def last_price(self, inst: SimInstrument, now_ms: int) -> Decimal:
        p = self.replay.price(inst.symbol, now_ms)
        if p is None:
            raise SimError(10001 if inst.category == "linear" else 170121, f"{inst.symbol} is not trading yet")
        return to_tick(p, inst.tick)

    def bid_ask(self, inst: SimInstrument, now_ms: int) -> tuple[Decimal, Decimal]:
        last = self.last_price(inst, now_ms)
        bid = to_tick(last * (D1 - self.half_spread), inst.tick)
        ask = to_tick(last * (D1 + self.half_spread), inst.tick)
        if ask <= bid:
            ask = bid + inst.tick
        return bid, ask

    def _slipped(self, inst: SimInstrument, price: Decimal, side: str) -> Decimal:
        factor = D1 + self.slippage if side == "Buy" else D1 - self.slippage
        return to_tick(price * factor, inst.tick)

    # -------------------------------------------------------------------------------- balances

    def _locked(self, acct: SimAccount, coin: str) -> Decimal:
        total = D0
        for o in acct.open_orders():
            if o.category == "spot" and o.status != "Untriggered":
                inst = self.instruments[("spot", o.symbol)]
                if (o.side == "Buy" and coin == inst.quote) or (o.side == "Sell" and coin == inst.base):
                    total += o.locked
        return total

    def _order_im(self, acct: SimAccount) -> Decimal:
        return sum((o.locked for o in acct.open_orders() if o.category == "linear"), D0)

    def _position_im(self, acct: SimAccount) -> Decimal:
        total = D0
        for p in acct.positions.values():
            if p.size:
                total += abs(p.size) * p.avg_price / acct.leverage.get(p.symbol, DEFAULT_LEVERAGE)
        return total

    def _upl(self, acct: SimAccount, now_ms: int) -> Decimal:
        total = D0
        for p in acct.positions.values():
            if p.size:
                mark = self.last_price(self.instruments[("linear", p.symbol)], now_ms)
                total += (mark - p.avg_price) * p.size
        return total

    def available_quote(self, acct: SimAccount, now_ms: int) -> Decimal:
        wallet = acct.wallet.get(QUOTE, D0)
        return (
            wallet
            + self._upl(acct, now_ms)
            - self._position_im(acct)
            - self._order_im(acct)
            - self._locked(acct, QUOTE)
        )

    def available(self, acct: SimAccount, coin: str, now_ms: int) -> Decimal:
        if coin == QUOTE:
            return self.available_quote(acct, now_ms)
        return acct.wallet.get(coin, D0) - self._locked(acct, coin)

    # ------------------------------------------------------------------------------ order entry

    def create_order(self, acct: SimAccount, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Validate and place an order (``POST /v5/order/create``); returns the acknowledgement.

        The checks run in Bybit's order and answer with its codes: parameters (10001), duplicate
        id (110072/170141), tick and step (170134/170137/10001), reduce-only (110017), minimum
        and maximum quantity, minimum notional (110094/170140), price band (110003/170193/170194),
        then funds (110007/170131).
        """
        self.step(now_ms)
        d = self._draft(acct, p, now_ms)
        self._check_price(d, p)
        self._check_qty(acct, d)
        self._check_trigger(d, p)
        ref_price = self._check_notional_and_band(d)
        d.tp = self._tick_param(d, p, "takeProfit")
        d.sl = self._tick_param(d, p, "stopLoss")
        locked = self._check_funds(acct, d.inst, d.side, d.qty, ref_price, d.reduce_only, now_ms)
        order = SimOrder(
            order_id=str(uuid.uuid4()),
            link_id=d.link_id,
            category=d.category,
            symbol=d.inst.symbol,
            side=d.side,
            order_type=d.order_type,
            qty=d.qty,
            price=d.price,
            tif=d.tif,
            status="Untriggered" if d.trigger else "New",
            created_ms=now_ms,
            updated_ms=now_ms,
            armed_ms=now_ms,
            trigger_price=d.trigger,
            trigger_direction=d.direction,
            stop_order_type="Stop" if d.trigger else "",
            reduce_only=d.reduce_only,
            close_on_trigger=str(p.get("closeOnTrigger", "false")).lower() == "true",
            take_profit=d.tp,
            stop_loss=d.sl,
            locked=D0 if d.trigger else locked,
            market_unit=d.market_unit,
            last_price_on_created=d.last,
        )
        acct.add_order(order)
        self._after_placement(acct, d.inst, order, now_ms)
        return {"orderId": order.order_id, "orderLinkId": d.link_id}

    def _draft(self, acct: SimAccount, p: dict[str, Any], now_ms: int) -> _Draft:
        category = str(p.get("category", ""))
        symbol = str(p.get("symbol", ""))
        if not symbol:
            raise SimError(10001, "params error: symbol is required")
        inst = self.instrument(category, symbol)
        side, order_type = p.get("side"), p.get("orderType")
        if side not in ("Buy", "Sell"):
            raise SimError(10001, "params error: side invalid")
        if order_type not in ("Market", "Limit"):
            raise SimError(10001, "params error: orderType invalid")
        link_id = self._check_link(acct, category, str(p.get("orderLinkId") or ""))
        if "qty" not in p:
            raise SimError(10001, "params error: qty is required")
        qty = _dec(p["qty"], "qty")
        if qty <= 0:
            raise SimError(10001, "params error: qty invalid")
        tif = "IOC" if order_type == "Market" else str(p.get("timeInForce") or "GTC")
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise SimError(10001, "params error: timeInForce invalid")
        bid, ask = self.bid_ask(inst, now_ms)
        return _Draft(
            inst=inst,
            category=category,
            side=side,
            order_type=order_type,
            link_id=link_id,
            qty=qty,
            tif=tif,
            reduce_only=str(p.get("reduceOnly", "false")).lower() == "true" and category == "linear",
            last=self.last_price(inst, now_ms),
            bid=bid,
            ask=ask,
            market_unit=str(p.get("marketUnit") or ""),
        )

    @staticmethod
    def _check_link(acct: SimAccount, category: str, link_id: str) -> str:
        if link_id and not _LINK_ID.match(link_id):
            raise SimError(10001, "params error: orderLinkId invalid")
        if link_id and (category, link_id) in acct.links:
            if category == "spot":
                raise SimError(170141, "Duplicate clientOrderId.")
            raise SimError(110072, "OrderLinkedID is duplicate")
        return link_id

    @staticmethod
    def _check_price(d: _Draft, p: dict[str, Any]) -> None:
        if d.order_type != "Limit":
            return
        if p.get("price") in (None, ""):
            raise SimError(10001, "params error: price is required for a limit order")
        d.price = _dec(p["price"], "price")
        if d.price <= 0:
            raise SimError(10001, "params error: price invalid")
        if not on_grid(d.price, d.inst.tick):
            if d.spot:
                raise SimError(170134, "Order price has too many decimals.")
            raise SimError(10001, f"params error: price must be a multiple of tickSize {fmt(d.inst.tick)}")

    def _check_qty(self, acct: SimAccount, d: _Draft) -> None:
        inst = d.inst
        if d.spot and d.order_type == "Market":
            d.market_unit = d.market_unit or ("quoteCoin" if d.side == "Buy" else "baseCoin")
            if d.market_unit == "quoteCoin":  # qty is an amount of USDT: convert to base at the touch
                d.qty = (d.qty / (d.ask if d.side == "Buy" else d.bid)).quantize(inst.step, ROUND_DOWN)
                if d.qty <= 0:
                    raise SimError(170136, "Order quantity exceeded lower limit.")
        if not on_grid(d.qty, inst.step):
            if d.spot:
                raise SimError(170137, "Order quantity has too many decimals.")
            raise SimError(10001, f"params error: Qty invalid, must be a multiple of qtyStep {fmt(inst.step)}")
        if d.reduce_only:
            position = acct.positions.get(inst.symbol)
            size = position.size if position else D0
            if size == 0 or (size > 0) == (d.side == "Buy"):
                raise SimError(110017, "current position is zero, cannot fix reduce-only order qty")
            d.qty = min(d.qty, abs(size))
        if d.qty < inst.min_qty:
            if d.spot:
                raise SimError(170136, "Order quantity exceeded lower limit.")
            raise SimError(10001, "The number of contracts exceeds minimum limit allowed")
        if d.qty > (inst.max_market_qty if d.order_type == "Market" else inst.max_qty):
            if d.spot:
                raise SimError(170148, "Market order amount decimal too long.")
            raise SimError(10001, "The number of contracts exceeds maximum limit allowed")

    @staticmethod
    def _check_trigger(d: _Draft, p: dict[str, Any]) -> None:
        if p.get("triggerPrice") in (None, "", "0"):
            return
        d.trigger = _dec(p["triggerPrice"], "triggerPrice")
        if d.trigger <= 0 or not on_grid(d.trigger, d.inst.tick):
            raise SimError(10001, "params error: triggerPrice invalid")
        d.direction = int(p.get("triggerDirection") or 0) or (1 if d.trigger > d.last else 2)
        if d.direction not in (1, 2):
            raise SimError(10001, "params error: triggerDirection invalid")
        _check_trigger_side(d.direction, d.trigger, d.last)

    def _check_notional_and_band(self, d: _Draft) -> Decimal:
        """Minimum notional and the limit-price band; returns the price the order is valued at."""
        inst = d.inst
        touch = d.ask if d.side == "Buy" else d.bid
        ref_price = d.price if d.order_type == "Limit" else (d.trigger or self._slipped(inst, touch, d.side))
        notional = d.qty * ref_price
        if d.spot and notional < inst.min_notional:
            raise SimError(170140, "Order value exceeded lower limit.")
        if not d.spot and not d.reduce_only and notional < inst.min_notional:
            raise SimError(110094, f"Order does not meet minimum order value {fmt(inst.min_notional)}USDT")
        if d.order_type != "Limit" or d.trigger:
            return ref_price
        upper = to_tick(d.last * (D1 + self.band), inst.tick)
        lower = to_tick(d.last * (D1 - self.band), inst.tick)
        if d.side == "Buy" and d.price > upper:
            if d.spot:
                raise SimError(170193, f"Buy order price cannot be higher than {fmt(upper)}USDT.")
            raise SimError(110003, f"Order price exceeds the upper limit {fmt(upper)}")
        if d.side == "Sell" and d.price < lower:
            if d.spot:
                raise SimError(170194, f"Sell order price cannot be lower than {fmt(lower)}USDT.")
            raise SimError(110003, f"Order price exceeds the lower limit {fmt(lower)}")
        return ref_price

    @staticmethod
    def _tick_param(d: _Draft, p: dict[str, Any], name: str) -> Decimal:
        if p.get(name) in (None, "", "0"):
            return D0
        value = _dec(p[name], name)
        if value < 0 or not on_grid(value, d.inst.tick):
            raise SimError(10001, f"params error: {name} must be a multiple of tickSize")
        return value

    def _check_funds(
        self,
        acct: SimAccount,
        inst: SimInstrument,
        side: str,
        qty: Decimal,
        price: Decimal,
        reduce_only: bool,
        now_ms: int,
    ) -> Decimal:
        """Refuse an order the account cannot pay for; returns what it locks while resting."""
        if inst.category == "spot":
            if side == "Buy":
                need = qty * price
                if self.available(acct, inst.quote, now_ms) < need:
                    raise SimError(170131, "Insufficient balance.")
                return need
            if self.available(acct, inst.base, now_ms) < qty:
                raise SimError(170131, "Insufficient balance.")
            return qty
        if reduce_only:
            return D0
        lev = acct.leverage.get(inst.symbol, DEFAULT_LEVERAGE)
        im = qty * price / lev
        fee = qty * price * self.fees.linear_taker
        if self.available_quote(acct, now_ms) < im + fee:
            raise SimError(110007, "ab not enough for new order")
        return im

    def _after_placement(self, acct: SimAccount, inst: SimInstrument, order: SimOrder, now_ms: int) -> None:
        if order.status == "Untriggered":
            self._emit(acct, "order", [self._order_push(order)])
            return
        bid, ask = self.bid_ask(inst, now_ms)
        touch = ask if order.side == "Buy" else bid
        if order.order_type == "Market":
            self._fill(acct, inst, order, self._slipped(inst, touch, order.side), maker=False, now_ms=now_ms)
            return
        crosses = order.price >= ask if order.side == "Buy" else order.price <= bid
        if crosses and order.tif == "PostOnly":
            self._finish(acct, order, "Cancelled", now_ms, cancel_type="UNKNOWN", reason="EC_PostOnlyWillTakeLiquidity")
            return
        if crosses:
            self._fill(acct, inst, order, touch, maker=False, now_ms=now_ms)
            return
        if order.tif in ("IOC", "FOK"):
            self._finish(acct, order, "Cancelled", now_ms, reason="EC_CancelForNoFullFill")
            return
        self._emit(acct, "order", [self._order_push(order)])

    def _order_push(self, order: SimOrder) -> dict[str, Any]:
        return {"category": order.category, **order.to_wire(), "feeCurrency": ""}

    def _finish(
        self, acct: SimAccount, order: SimOrder, status: str, now_ms: int, cancel_type: str = "", reason: str = ""
    ) -> None:
        order.status = status
        order.updated_ms = now_ms
        order.locked = D0
        if cancel_type:
            order.cancel_type = cancel_type
        if reason:
            order.reject_reason = reason
        self._emit(acct, "order", [self._order_push(order)])
        if order.category == "spot":
            self._emit(acct, "wallet", [self.wallet(acct, now_ms)])

    # ---------------------------------------------------------------------------------- fills

    def _fill(
        self, acct: SimAccount, inst: SimInstrument, order: SimOrder, price: Decimal, maker: bool, now_ms: int
    ) -> None:
        qty = order.qty - order.cum_qty
        if order.reduce_only:
            pos = acct.positions.get(order.symbol)
            size = abs(pos.size) if pos and (pos.size > 0) != (order.side == "Buy") else D0
            if size == 0:
                self._finish(
                    acct,
                    order,
                    "Deactivated" if order.trigger_price else "Cancelled",
                    now_ms,
                    reason="EC_ReduceOnlyNoPosition",
                )
                return
            qty = min(qty, size)
        rate = self.fees.rate(inst.category, maker)
        value = qty * price
        if inst.category == "spot":
            if order.side == "Buy":
                fee = (qty * rate).quantize(Decimal("1e-12"))
                fee_coin = inst.base
                if acct.wallet.get(inst.quote, D0) < value:
                    self._finish(acct, order, "Cancelled", now_ms, reason="EC_InsufficientBalance")
                    return
                acct.wallet[inst.quote] = acct.wallet.get(inst.quote, D0) - value
                acct.wallet[inst.base] = acct.wallet.get(inst.base, D0) + qty - fee
            else:
                fee = (value * rate).quantize(Decimal("1e-12"))
                fee_coin = inst.quote
                if acct.wallet.get(inst.base, D0) < qty:
                    self._finish(acct, order, "Cancelled", now_ms, reason="EC_InsufficientBalance")
                    return
                acct.wallet[inst.base] = acct.wallet.get(inst.base, D0) - qty
                acct.wallet[inst.quote] = acct.wallet.get(inst.quote, D0) + value - fee
            closed = D0
        else:
            fee = (value * rate).quantize(Decimal("1e-12"))
            fee_coin = inst.quote
            acct.wallet[QUOTE] = acct.wallet.get(QUOTE, D0) - fee
            closed = self._apply_to_position(acct, order, qty, price, now_ms)
        order.cum_qty += qty
        order.cum_value += value
        order.cum_fee += fee
        order.status = "Filled"
        order.updated_ms = now_ms
        order.locked = D0
        self._exec_seq += 1
        execution = {
            "category": inst.category,
            "symbol": inst.symbol,
            "orderId": order.order_id,
            "orderLinkId": order.link_id,
            "side": order.side,
            "orderPrice": fmt(order.price),
            "orderQty": fmt(order.qty),
            "leavesQty": "0",
            "createType": "CreateByUser",
            "orderType": order.order_type,
            "stopOrderType": order.stop_order_type or ("" if inst.category == "spot" else "UNKNOWN"),
            "execFee": fmt(fee),
            "execId": str(uuid.uuid4()),
            "execPrice": fmt(price),
            "execQty": fmt(qty),
            "execType": "Trade",
            "execValue": fmt(value),
            "execTime": str(now_ms),
            "feeCurrency": fee_coin if inst.category == "spot" else "",
            "isMaker": maker,
            "feeRate": fmt(rate),
            "tradeIv": "",
            "markIv": "",
            "markPrice": fmt(price),
            "indexPrice": "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": fmt(closed) if inst.category == "linear" else "",
            "seq": self._exec_seq,
            "extraFees": "",
        }
        acct.add_execution(execution)
        self._emit(acct, "order", [self._order_push(order)])
        self._emit(acct, "execution", [execution])
        if inst.category == "linear":
            self._emit(acct, "position", [self.position_wire(acct, order.symbol, now_ms, push=True)])
        self._emit(acct, "wallet", [self.wallet(acct, now_ms)])
        if order.sibling_id:
            sibling = acct.orders.get(order.sibling_id)
            if sibling is not None and sibling.is_open:
                self._finish(acct, sibling, "Deactivated", now_ms, cancel_type="CancelByTpSlTsClear")
        if order.take_profit or order.stop_loss:
            self._attach_tpsl(acct, inst, order, qty, fee, now_ms)

    def _apply_to_position(
        self, acct: SimAccount, order: SimOrder, qty: Decimal, price: Decimal, now_ms: int
    ) -> Decimal:
        pos = acct.positions.setdefault(order.symbol, SimPosition(order.symbol, created_ms=now_ms))
        delta = qty * order.sign
        closed = D0
        if pos.size == 0 or (pos.size > 0) == (delta > 0):
            new_size = pos.size + delta
            pos.avg_price = (abs(pos.size) * pos.avg_price + qty * price) / abs(new_size)
            pos.size = new_size
        else:
            closed = min(abs(pos.size), qty)
            pnl = (price - pos.avg_price) * closed * (1 if pos.size > 0 else -1)
            acct.wallet[QUOTE] = acct.wallet.get(QUOTE, D0) + pnl
            pos.cum_realised += pnl
            pos.cur_realised += pnl
            acct.cum_realised += pnl
            remaining = qty - closed
            if remaining > 0:
                pos.size = remaining * order.sign
                pos.avg_price = price
            else:
                pos.size += delta
                if pos.size == 0:
                    pos.avg_price = D0
                    pos.take_profit = D0
                    pos.stop_loss = D0
        pos.updated_ms = now_ms
        pos.armed_ms = now_ms
        return closed

    def _attach_tpsl(
        self, acct: SimAccount, inst: SimInstrument, order: SimOrder, qty: Decimal, fee: Decimal, now_ms: int
    ) -> None:
        if inst.category == "linear":
            pos = acct.positions.get(order.symbol)
            if pos is not None and pos.size != 0:
                pos.take_profit = order.take_profit or pos.take_profit
                pos.stop_loss = order.stop_loss or pos.stop_loss
                pos.armed_ms = now_ms
                self._emit(acct, "position", [self.position_wire(acct, order.symbol, now_ms, push=True)])
            return
        # spot: two conditional orders closing what was bought (net of the fee); one cancels the other
        exit_side = "Sell" if order.side == "Buy" else "Buy"
        exit_qty = (qty - fee if order.side == "Buy" else qty).quantize(inst.step, ROUND_DOWN)
        legs: list[SimOrder] = []
        for price, kind in ((order.take_profit, "TakeProfit"), (order.stop_loss, "StopLoss")):
            if not price or exit_qty < inst.min_qty:
                continue
            rising = (kind == "TakeProfit") == (order.side == "Buy")
            leg = SimOrder(
                order_id=str(uuid.uuid4()),
                link_id=f"{order.link_id[:30]}-{'tp' if kind == 'TakeProfit' else 'sl'}" if order.link_id else "",
                category="spot",
                symbol=order.symbol,
                side=exit_side,
                order_type="Market",
                qty=exit_qty,
                price=D0,
                tif="IOC",
                status="Untriggered",
                created_ms=now_ms,
                updated_ms=now_ms,
                armed_ms=now_ms,
                trigger_price=price,
                trigger_direction=1 if rising else 2,
                stop_order_type="tpslOrder",
                market_unit="baseCoin",
            )
            legs.append(leg)
        if len(legs) == 2:
            legs[0].sibling_id, legs[1].sibling_id = legs[1].order_id, legs[0].order_id
        for leg in legs:
            acct.add_order(leg)
            self._emit(acct, "order", [self._order_push(leg)])

    # --------------------------------------------------------------------------------- matching

    def step(self, now_ms: int) -> None:
        """Match resting orders and position TP/SL against prices traded since the last step."""
        start = self.last_step_ms
        if now_ms <= start:
            return
        self.last_step_ms = now_ms
        for acct in self.accounts.values():
            for order in acct.open_orders():
                if order.is_open:  # a sibling may have been cancelled meanwhile
                    self._match(acct, order, max(start, order.armed_ms), now_ms)
            for pos in list(acct.positions.values()):
                if pos.size and (pos.take_profit or pos.stop_loss):
                    self._match_position(acct, pos, max(start, pos.armed_ms), now_ms)

    def _match(self, acct: SimAccount, order: SimOrder, a_ms: int, b_ms: int) -> None:
        tape = self.replay.tapes[order.symbol]
        rng = tape.range_between(a_ms, b_ms)
        if rng is None:
            return
        lo, hi = _dec_float(rng[0]), _dec_float(rng[1])
        inst = self.instruments[(order.category, order.symbol)]
        if order.status == "Untriggered":
            hit = hi >= order.trigger_price if order.trigger_direction == 1 else lo <= order.trigger_price
            if not hit:
                return
            if order.order_type == "Market":
                first = self._first_through(order.symbol, a_ms, b_ms, order.trigger_price, order.trigger_direction == 2)
                self._fill(acct, inst, order, self._slipped(inst, first, order.side), False, b_ms)
                return
            order.status = "New"
            order.armed_ms = b_ms
            order.updated_ms = b_ms
            if order.category == "spot":
                order.locked = order.qty * order.price if order.side == "Buy" else order.qty
            self._emit(acct, "order", [self._order_push(order)])
            crosses = order.price >= to_tick(hi, inst.tick) if order.side == "Buy" else order.price <= lo
            if crosses:
                self._fill(acct, inst, order, order.price, False, b_ms)
            return
        touched = lo <= order.price if order.side == "Buy" else hi >= order.price
        if touched:
            self._fill(acct, inst, order, order.price, True, b_ms)

    def _match_position(self, acct: SimAccount, pos: SimPosition, a_ms: int, b_ms: int) -> None:
        rng = self.replay.tapes[pos.symbol].range_between(a_ms, b_ms)
        if rng is None:
            return
        lo, hi = _dec_float(rng[0]), _dec_float(rng[1])
        long = pos.size > 0
        kind = ""
        trigger = D0
        if pos.stop_loss and ((long and lo <= pos.stop_loss) or (not long and hi >= pos.stop_loss)):
            kind, trigger = "StopLoss", pos.stop_loss  # stop first when both traded: the conservative case
        elif pos.take_profit and ((long and hi >= pos.take_profit) or (not long and lo <= pos.take_profit)):
            kind, trigger = "TakeProfit", pos.take_profit
        if not kind:
            return
        inst = self.instruments[("linear", pos.symbol)]
        side = "Sell" if long else "Buy"
        order = SimOrder(
            order_id=str(uuid.uuid4()),
            link_id="",
            category="linear",
            symbol=pos.symbol,
            side=side,
            order_type="Market",
            qty=abs(pos.size),
            price=D0,
            tif="IOC",
            status="Triggered",
            created_ms=b_ms,
            updated_ms=b_ms,
            armed_ms=b_ms,
            trigger_price=trigger,
            trigger_direction=2 if long == (kind == "StopLoss") else 1,
            stop_order_type=kind,
            reduce_only=True,
            close_on_trigger=True,
        )
        acct.add_order(order)
        first = self._first_through(pos.symbol, a_ms, b_ms, trigger, falling=long == (kind == "StopLoss"))
        self._fill(acct, inst, order, self._slipped(inst, first, side), False, b_ms)

    def _first_through(self, symbol: str, a_ms: int, b_ms: int, trigger: Decimal, falling: bool) -> Decimal:
        """Where a triggered market order fills before slippage: the worse of its trigger and the first
        traded price past it (a gap through the trigger fills at the gap's first price, the open)."""
        first = self.replay.tapes[symbol].first_through(a_ms, b_ms, float(trigger), falling)
        if first is None:
            return trigger
        price = _dec_float(first)
        return min(price, trigger) if falling else max(price, trigger)

    # ------------------------------------------------------------------------------ cancel/query

    def find_order(self, acct: SimAccount, category: str, order_id: str | None, link_id: str | None) -> SimOrder | None:
        if order_id:
            o = acct.orders.get(order_id)
            return o if o is not None and o.category == category else None
        if link_id:
            oid = acct.links.get((category, link_id))
            return acct.orders.get(oid) if oid else None
        return None

    def cancel_order(self, acct: SimAccount, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
        self.step(now_ms)
        category = str(p.get("category", ""))
        self.instrument(category, str(p.get("symbol", "")))
        order_id, link_id = p.get("orderId"), p.get("orderLinkId")
        if not order_id and not link_id:
            raise SimError(10001, "params error: orderId or orderLinkId is required")
        order = self.find_order(acct, category, order_id, link_id)
        if order is None or order.symbol != p.get("symbol"):
            if category == "spot":
                raise SimError(170213, "Order does not exist.")
            raise SimError(110001, "Order does not exist")
        if not order.is_open:
            if category == "spot":
                raise SimError(170213, "Order does not exist.")
            raise SimError(110008, "The order has been finished or canceled")
        status = "Deactivated" if order.status == "Untriggered" else "Cancelled"
        self._finish(acct, order, status, now_ms, cancel_type="CancelByUser")
        return {"orderId": order.order_id, "orderLinkId": order.link_id}

    def amend_order(self, acct: SimAccount, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Change an open order in place (``POST /v5/order/amend``); returns ``{orderId, orderLinkId}``.

        As Bybit: only an open order (untriggered, new or partially filled) can be amended; an
        unknown, finished or already triggered one answers 110001 (spot 170213); a request that
        changes nothing answers 34040 "not modified"; a trigger price or price off the tick, or a
        quantity off the step, answers 10001. The order keeps its ids, its queue and its side.
        """
        self.step(now_ms)
        category = str(p.get("category", ""))
        inst = self.instrument(category, str(p.get("symbol", "")))
        order_id, link_id = p.get("orderId"), p.get("orderLinkId")
        if not order_id and not link_id:
            raise SimError(10001, "params error: orderId or orderLinkId is required")
        order = self.find_order(acct, category, order_id, link_id)
        if order is None or order.symbol != p.get("symbol") or not order.is_open:
            if category == "spot":
                raise SimError(170213, "Order does not exist.")
            raise SimError(110001, "order not exists or too late to replace")
        trigger, price, qty = order.trigger_price, order.price, order.qty
        if p.get("triggerPrice") not in (None, ""):
            trigger = _dec(p["triggerPrice"], "triggerPrice")
            if order.status != "Untriggered" or trigger <= 0 or not on_grid(trigger, inst.tick):
                raise SimError(10001, "params error: triggerPrice invalid")
            if trigger != order.trigger_price:
                _check_trigger_side(order.trigger_direction, trigger, self.last_price(inst, now_ms))
        if p.get("price") not in (None, ""):
            price = _dec(p["price"], "price")
            if order.order_type != "Limit" or price <= 0 or not on_grid(price, inst.tick):
                raise SimError(10001, "params error: price invalid")
        if p.get("qty") not in (None, ""):
            qty = _dec(p["qty"], "qty")
            if qty <= order.cum_qty or not on_grid(qty, inst.step) or qty < inst.min_qty:
                raise SimError(10001, "params error: qty invalid")
        if (trigger, price, qty) == (order.trigger_price, order.price, order.qty):
            raise SimError(34040, "Not modified")
        order.trigger_price, order.price, order.qty = trigger, price, qty
        order.updated_ms = now_ms
        self._emit(acct, "order", [self._order_push(order)])
        return {"orderId": order.order_id, "orderLinkId": order.link_id}

    def cancel_all(self, acct: SimAccount, p: dict[str, Any], now_ms: int) -> dict[str, Any]:
        self.step(now_ms)
        category = str(p.get("category", ""))
        symbol = p.get("symbol")
        done = []
        for order in acct.open_orders():
            if order.category == category and (not symbol or order.symbol == symbol):
                self._finish(
                    acct,
                    order,
                    "Deactivated" if order.status == "Untriggered" else "Cancelled",
                    now_ms,
                    cancel_type="CancelByUser",
                )
                done.append({"orderId": order.order_id, "orderLinkId": order.link_id})
        return {"list": done, "success": "1"}

    def query_orders(self, acct: SimAccount, p: dict[str, Any], history: bool) -> list[dict[str, Any]]:
        category = str(p.get("category", ""))
        if category not in ("spot", "linear"):
            raise SimError(10001, "params error: category only support spot and linear")
        symbol, order_id, link_id = p.get("symbol"), p.get("orderId"), p.get("orderLinkId")
        if (
            category == "linear"
            and not (symbol or p.get("settleCoin") or p.get("baseCoin") or order_id or link_id)
            and not history
        ):
            raise SimError(10001, "params error: symbol or settleCoin is required")
        open_only = str(p.get("openOnly", "0")) == "0" and not history
        out = []
        if order_id or link_id:
            candidates = acct.orders_by_id(category, order_id, link_id)
        else:
            candidates = list(reversed(acct.orders.values()))  # newest first, as Bybit lists them
        for order in candidates:
            if order.category != category or (symbol and order.symbol != symbol):
                continue
            if order_id and order.order_id != order_id:
                continue
            if link_id and order.link_id != link_id:
                continue
            lookup = bool(order_id or link_id)
            if open_only and not lookup and not order.is_open:
                continue
            if history and order.is_open:
                continue
            out.append(order.to_wire())
        limit = int(p.get("limit") or 20)
        return out[: max(1, min(limit, 50))]

    def execution_list(self, acct: SimAccount, p: dict[str, Any]) -> list[dict[str, Any]]:
        category = str(p.get("category", ""))
        symbol, order_id, link_id = p.get("symbol"), p.get("orderId"), p.get("orderLinkId")
        start = int(p.get("startTime") or 0)
        end = int(p.get("endTime") or 2**62)
        if order_id or link_id:
            pool: list[dict[str, Any]] = [
                e
                for o in acct.orders_by_id(category, order_id, link_id)
                for e in acct.executions_by_order.get(o.order_id, [])
            ]
        else:
            pool = acct.executions
        out = [
            e
            for e in reversed(pool)
            if e["category"] == category
            and (not symbol or e["symbol"] == symbol)
            and (not order_id or e["orderId"] == order_id)
            and (not link_id or e["orderLinkId"] == link_id)
            and start <= int(e["execTime"]) <= end
        ]
        limit = int(p.get("limit") or 50)
        return [{k: v for k, v in e.items() if k != "category"} for e in out[: max(1, min(limit, 100))]]

    # --------------------------------------------------------------------------- account views

    def position_wire(self, acct: SimAccount, symbol: str, now_ms: int, push: bool = False) -> dict[str, Any]:
        pos = acct.positions.get(symbol) or SimPosition(symbol)
        inst = self.instruments[("linear", symbol)]
        lev = acct.leverage.get(symbol, DEFAULT_LEVERAGE)
        mark = self.last_price(inst, now_ms)
        size = abs(pos.size)
        value = size * pos.avg_price
        upl = (mark - pos.avg_price) * pos.size if pos.size else D0
        liq = D0
        if pos.size:
            liq = to_tick(
                pos.avg_price * (D1 - D1 / lev) if pos.size > 0 else pos.avg_price * (D1 + D1 / lev), inst.tick
            )
        wire: dict[str, Any] = {
            "positionIdx": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": symbol,
            "side": ("Buy" if pos.size > 0 else "Sell") if pos.size else "",
            "size": fmt(size),
            "avgPrice": fmt(pos.avg_price),
            "positionValue": fmt(value),
            "tradeMode": 0,
            "positionStatus": "Normal",
            "autoAddMargin": 0,
            "adlRankIndicator": 2 if pos.size else 0,
            "leverage": fmt(lev),
            "positionBalance": fmt(value / lev),
            "markPrice": fmt(mark),
            "liqPrice": fmt(liq) if pos.size else "",
            "bustPrice": "",
            "positionMM": fmt(value * Decimal("0.005")),
            "positionIM": fmt(value / lev),
            "tpslMode": "Full",
            "takeProfit": fmt(pos.take_profit),
            "stopLoss": fmt(pos.stop_loss),
            "trailingStop": "0",
            "unrealisedPnl": fmt(upl),
            "curRealisedPnl": fmt(pos.cur_realised),
            "cumRealisedPnl": fmt(pos.cum_realised),
            "seq": self._exec_seq,
            "isReduceOnly": False,
            "mmrSysUpdatedTime": "",
            "leverageSysUpdatedTime": "",
            "createdTime": str(pos.created_ms or now_ms),
            "updatedTime": str(pos.updated_ms or now_ms),
        }
        if push:
            wire = {"category": "linear", **wire, "entryPrice": wire["avgPrice"]}
        return wire

    def positions(self, acct: SimAccount, p: dict[str, Any], now_ms: int) -> list[dict[str, Any]]:
        category = str(p.get("category", ""))
        if category != "linear":
            raise SimError(10001, "params error: category only support linear")
        symbol = p.get("symbol")
        if symbol:
            self.instrument("linear", symbol)
            return [self.position_wire(acct, symbol, now_ms)]
        if not (p.get("settleCoin") or p.get("baseCoin")):
            raise SimError(10001, "params error: symbol or settleCoin is required")
        return [self.position_wire(acct, s, now_ms) for s, pos in sorted(acct.positions.items()) if pos.size]

    def set_leverage(self, acct: SimAccount, p: dict[str, Any]) -> None:
        inst = self.instrument(str(p.get("category", "")), str(p.get("symbol", "")))
        buy, sell = _dec(p.get("buyLeverage"), "buyLeverage"), _dec(p.get("sellLeverage"), "sellLeverage")
        if buy != sell:
            raise SimError(10001, "params error: buyLeverage must equal sellLeverage in one-way mode")
        if not D1 <= buy <= inst.max_leverage:
            raise SimError(10001, f"params error: leverage must be between 1 and {fmt(inst.max_leverage)}")
        if acct.leverage.get(inst.symbol, DEFAULT_LEVERAGE) == buy:
            raise SimError(110043, "Set leverage not modified")
        acct.leverage[inst.symbol] = buy

    def trading_stop(self, acct: SimAccount, p: dict[str, Any], now_ms: int) -> None:
        self.step(now_ms)
        inst = self.instrument(str(p.get("category", "")), str(p.get("symbol", "")))
        pos = acct.positions.get(inst.symbol)
        if pos is None or pos.size == 0:
            raise SimError(10001, "can not set tp/sl/ts for zero position")
        for key, attr in (("takeProfit", "take_profit"), ("stopLoss", "stop_loss")):
            if p.get(key) not in (None, ""):
                value = _dec(p[key], key)
                if value and not on_grid(value, inst.tick):
                    raise SimError(10001, f"params error: {key} must be a multiple of tickSize")
                setattr(pos, attr, value)
        pos.armed_ms = now_ms
        pos.updated_ms = now_ms
        self._emit(acct, "position", [self.position_wire(acct, inst.symbol, now_ms, push=True)])

    def coin_price(self, coin: str, now_ms: int) -> Decimal:
        if coin in (QUOTE, "USDC"):
            return D1
        p = self.replay.price(coin + QUOTE, now_ms)
        return _dec_float(p) if p is not None else D0

    def wallet(self, acct: SimAccount, now_ms: int, coins: Iterable[str] | None = None) -> dict[str, Any]:
        upl = self._upl(acct, now_ms)
        pos_im = self._position_im(acct)
        order_im = self._order_im(acct)
        wanted = {c.upper() for c in coins} if coins else None
        coin_list = []
        total_equity = D0
        total_wallet = D0
        for coin, bal in sorted(acct.wallet.items()):
            if wanted is not None and coin not in wanted:
                continue
            is_quote = coin == QUOTE
            equity = bal + (upl if is_quote else D0)
            usd = equity * self.coin_price(coin, now_ms)
            total_equity += usd
            total_wallet += bal * self.coin_price(coin, now_ms)
            coin_list.append(
                {
                    "coin": coin,
                    "equity": fmt(equity),
                    "usdValue": fmt(usd),
                    "walletBalance": fmt(bal),
                    "free": "",
                    "locked": fmt(self._locked(acct, coin)),
                    "spotHedgingQty": "0",
                    "borrowAmount": "0",
                    "availableToBorrow": "",
                    "availableToWithdraw": "",
                    "accruedInterest": "0",
                    "totalOrderIM": fmt(order_im if is_quote else D0),
                    "totalPositionIM": fmt(pos_im if is_quote else D0),
                    "totalPositionMM": fmt(pos_im * Decimal("0.05") if is_quote else D0),
                    "unrealisedPnl": fmt(upl if is_quote else D0),
                    "cumRealisedPnl": fmt(acct.cum_realised if is_quote else D0),
                    "bonus": "0",
                    "marginCollateral": True,
                    "collateralSwitch": True,
                }
            )
        available = self.available_quote(acct, now_ms)
        return {
            "accountType": "UNIFIED",
            "accountIMRate": "0",
            "accountMMRate": "0",
            "accountLTV": "0",
            "totalEquity": fmt(total_equity),
            "totalWalletBalance": fmt(total_wallet),
            "totalMarginBalance": fmt(total_equity),
            "totalAvailableBalance": fmt(max(D0, available)),
            "totalPerpUPL": fmt(upl),
            "totalInitialMargin": fmt(pos_im + order_im),
            "totalMaintenanceMargin": fmt(pos_im * Decimal("0.05")),
            "coin": coin_list,
        }

    def state(self) -> dict[str, Any]:
        """A summary for the admin endpoint and tests."""
        return {
            "market_time_ms": self.replay.now_ms(),
            "accounts": {
                acct.uid: {
                    "orders": len(acct.orders),
                    "open_orders": len(acct.open_orders()),
                    "order_link_ids": [o.link_id for o in acct.orders.values()],
                    "executions": len(acct.executions),
                    "wallet": {c: fmt(v) for c, v in acct.wallet.items()},
                    "positions": {s: fmt(p.size) for s, p in acct.positions.items() if p.size},
                }
                for acct in self.accounts.values()
            },
        }
