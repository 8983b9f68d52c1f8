"""The robot's book: cash and positions of its capital, changed only by fills (exact decimals).

Spot: a buy pays ``qty × price`` and receives ``qty`` minus a fee charged in the base coin (as
Bybit charges spot fees in the coin received); a sell delivers ``qty`` and receives the quote
minus the fee. So the book's base quantity equals the account's coin balance, dust included.
Linear (USDT perpetuals, one-way): a fill opens or adds at a weighted average price, or closes
and realises ``(price - avg) × closed`` into cash; fees are paid in USDT.

A position whose quantity can no longer be traded (below the lot, minimum quantity or notional
after rounding down) is *dust*: it stays in the book, as at the exchange, but counts as flat.
When a position goes flat this way, the round trip becomes a ``ClosedTrade``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal

from autotrader.domain.instrument import Instrument, Market
from autotrader.domain.orders import ZERO, Fill, OrderSide
from autotrader.live.records import ClosedTrade, Ledger, PositionState
from autotrader.risk.rules import venue_quantity_nb


def round_down(qty: Decimal, step: Decimal) -> Decimal:
    """``qty`` rounded down to a multiple of ``step`` (exact)."""
    if step <= 0:
        return qty
    return (qty / step).to_integral_value(rounding="ROUND_FLOOR") * step


class Book:
    """Cash and positions; ``apply_fill`` is the only way they change."""

    def __init__(
        self,
        market: Market,
        ledger: Ledger,
        positions: Mapping[str, PositionState],
        instruments: Mapping[str, Instrument],
    ) -> None:
        self.market = market
        self.ledger = ledger
        self.positions: dict[str, PositionState] = dict(positions)
        self.instruments = dict(instruments)

    # ----------------------------------------------------------------------------------- queries

    @property
    def cash(self) -> Decimal:
        return self.ledger.cash

    def position(self, symbol: str) -> PositionState:
        return self.positions.get(symbol) or PositionState(symbol)

    def tradable_qty(self, symbol: str, price: float | Decimal | None = None) -> Decimal:
        """The position's size that can be sent as a closing order (0 for dust), unsigned."""
        pos = self.position(symbol)
        if pos.qty == 0:
            return ZERO
        inst = self.instruments.get(symbol)
        if inst is None:
            return abs(pos.qty)
        qty = round_down(abs(pos.qty), inst.lot_step)
        if qty < inst.min_qty or qty <= 0:
            return ZERO
        if self.market == "spot":
            ref = float(price) if price is not None else float(pos.avg_price)
            ok = venue_quantity_nb(float(qty), ref, float(inst.lot_step), float(inst.min_qty), float(inst.min_notional))
            if ok <= 0.0:
                return ZERO
        return qty

    def open_side(self, symbol: str, price: float | Decimal | None = None) -> int:
        """+1 / -1 for a tradable position, 0 when flat (or only dust)."""
        if self.tradable_qty(symbol, price) == 0:
            return 0
        return self.position(symbol).side

    def entry_price(self, symbol: str) -> Decimal:
        pos = self.position(symbol)
        return pos.entry_value / pos.entry_qty if pos.entry_qty > 0 else pos.avg_price

    def unrealised(self, symbol: str, price: float) -> float:
        pos = self.position(symbol)
        if pos.qty == 0:
            return 0.0
        if self.market == "spot":
            return float(pos.qty) * (price - float(pos.avg_price))
        return float(pos.qty) * (price - float(pos.avg_price))

    def equity(self, prices: Mapping[str, float]) -> float:
        """Cash plus positions marked at ``prices`` (spot: coins at value; linear: unrealised P&L)."""
        total = float(self.ledger.cash)
        for symbol, pos in self.positions.items():
            if pos.qty == 0:
                continue
            price = prices.get(symbol, float(pos.avg_price))
            if self.market == "spot":
                total += float(pos.qty) * price
            else:
                total += float(pos.qty) * (price - float(pos.avg_price))
        return total

    def gross_exposure(self, prices: Mapping[str, float]) -> float:
        return sum(abs(float(p.qty)) * prices.get(s, float(p.avg_price)) for s, p in self.positions.items() if p.qty)

    def signed_exposure(self, symbol: str, price: float) -> float:
        pos = self.position(symbol)
        return float(pos.qty) * price if self.open_side(symbol, price) else 0.0

    def free_cash(self, prices: Mapping[str, float], leverage: float = 1.0) -> float:
        """What an entry may use: spot cash; linear cash minus margin in use plus unrealised P&L (kernel rule)."""
        if self.market == "spot":
            return float(self.ledger.cash)
        used = 0.0
        upnl = 0.0
        for symbol, pos in self.positions.items():
            if pos.qty:
                used += abs(float(pos.qty)) * float(pos.avg_price) / leverage
                upnl += self.unrealised(symbol, prices.get(symbol, float(pos.avg_price)))
        return float(self.ledger.cash) - used + upnl

    # ----------------------------------------------------------------------------------- changes

    def with_position(self, position: PositionState) -> PositionState:
        self.positions[position.symbol] = position
        return position

    def apply_fill(
        self,
        fill: Fill,
        *,
        opening: bool,
        now_ms: int,
        signal_id: str | None = None,
        confidence: float = 0.0,
        exit_reason: str = "signal",
        exit_signal_id: str | None = None,
    ) -> tuple[PositionState, Ledger, ClosedTrade | None]:
        """Apply one execution; returns the new position, the new ledger and the trade it closed, if any.

        ``opening`` says whether the order that filled opens a position (an entry) or closes one.
        """
        pos = self.position(fill.symbol)
        if self.market == "spot":
            pos, ledger = self._spot(pos, fill, opening, now_ms, signal_id, confidence)
        else:
            pos, ledger = self._linear(pos, fill, opening, now_ms, signal_id, confidence)
        trade = None
        if not opening and pos.exit_qty > 0 and self._is_flat_after(pos, fill.price):
            trade = self._close_trade(pos, fill, exit_reason, exit_signal_id)
            pos = dataclasses.replace(
                pos,
                entry_ms=0,
                entry_fees=ZERO,
                entry_qty=ZERO,
                entry_value=ZERO,
                exit_qty=ZERO,
                exit_value=ZERO,
                exit_fees=ZERO,
                entry_client_order_id=None,
                signal_id=None,
                confidence=0.0,
                stop_client_order_id=None,
                stop_price=None,
                stop_attempt=0,
            )
            ledger = dataclasses.replace(ledger, realised_pnl=ledger.realised_pnl + trade.pnl)
        self.positions[fill.symbol] = pos
        self.ledger = ledger
        return pos, ledger, trade

    def _is_flat_after(self, pos: PositionState, price: Decimal) -> bool:
        saved = self.positions.get(pos.symbol)
        self.positions[pos.symbol] = pos
        try:
            return self.tradable_qty(pos.symbol, price) == 0
        finally:
            if saved is None:
                del self.positions[pos.symbol]
            else:
                self.positions[pos.symbol] = saved

    def _spot(
        self, pos: PositionState, fill: Fill, opening: bool, now_ms: int, signal_id: str | None, confidence: float
    ) -> tuple[PositionState, Ledger]:
        inst = self.instruments.get(fill.symbol)
        base = inst.base_coin if inst is not None else fill.symbol.removesuffix("USDT")
        fee_in_base = fill.fee_currency.upper() == base.upper()
        fee_quote = fill.fee * fill.price if fee_in_base else fill.fee
        ledger = self.ledger
        if fill.side is OrderSide.BUY:
            net = fill.qty - fill.fee if fee_in_base else fill.qty
            spent = fill.qty * fill.price + (ZERO if fee_in_base else fill.fee)
            cash = ledger.cash - spent
            held = pos.qty + net
            avg = (pos.qty * pos.avg_price + spent) / held if held > 0 else ZERO
            pos = dataclasses.replace(
                pos,
                qty=held,
                avg_price=avg,
                entry_ms=pos.entry_ms or fill.ts_ms,
                entry_fees=pos.entry_fees + fee_quote,
                entry_qty=pos.entry_qty + fill.qty,
                entry_value=pos.entry_value + fill.qty * fill.price,
                entry_client_order_id=pos.entry_client_order_id or (fill.client_order_id if opening else None),
                signal_id=pos.signal_id or signal_id,
                confidence=pos.confidence or confidence,
                updated_ms=now_ms,
            )
        else:
            proceeds = fill.qty * fill.price - (ZERO if fee_in_base else fill.fee)
            cash = ledger.cash + proceeds
            held = pos.qty - (fill.qty + (fill.fee if fee_in_base else ZERO))
            pos = dataclasses.replace(
                pos,
                qty=held,
                exit_qty=pos.exit_qty + fill.qty,
                exit_value=pos.exit_value + fill.qty * fill.price,
                exit_fees=pos.exit_fees + fee_quote,
                updated_ms=now_ms,
            )
        ledger = dataclasses.replace(ledger, cash=cash, fees=ledger.fees + fee_quote, updated_ms=now_ms)
        return pos, ledger

    def _linear(
        self, pos: PositionState, fill: Fill, opening: bool, now_ms: int, signal_id: str | None, confidence: float
    ) -> tuple[PositionState, Ledger]:
        ledger = self.ledger
        delta = fill.qty * fill.side.sign
        cash = ledger.cash - fill.fee
        if pos.qty == 0 or (pos.qty > 0) == (delta > 0):
            new_qty = pos.qty + delta
            avg = (abs(pos.qty) * pos.avg_price + fill.qty * fill.price) / abs(new_qty)
            pos = dataclasses.replace(
                pos,
                qty=new_qty,
                avg_price=avg,
                entry_ms=pos.entry_ms or fill.ts_ms,
                entry_fees=pos.entry_fees + fill.fee,
                entry_qty=pos.entry_qty + fill.qty,
                entry_value=pos.entry_value + fill.qty * fill.price,
                entry_client_order_id=pos.entry_client_order_id or (fill.client_order_id if opening else None),
                signal_id=pos.signal_id or signal_id,
                confidence=pos.confidence or confidence,
                updated_ms=now_ms,
            )
        else:
            closed = min(abs(pos.qty), fill.qty)
            pnl = (fill.price - pos.avg_price) * closed * (1 if pos.qty > 0 else -1)
            cash += pnl
            new_qty = pos.qty + delta
            pos = dataclasses.replace(
                pos,
                qty=new_qty if abs(delta) <= abs(pos.qty) else ZERO,
                exit_qty=pos.exit_qty + closed,
                exit_value=pos.exit_value + closed * fill.price,
                exit_fees=pos.exit_fees + fill.fee,
                updated_ms=now_ms,
            )
            # a fill larger than the position would flip it; the robot never sends one (reduce-only)
        ledger = dataclasses.replace(ledger, cash=cash, fees=ledger.fees + fill.fee, updated_ms=now_ms)
        return pos, ledger

    def _close_trade(self, pos: PositionState, fill: Fill, exit_reason: str, exit_signal_id: str | None) -> ClosedTrade:
        side = 1 if pos.entry_value >= 0 and (fill.side is OrderSide.SELL) else -1
        entry_price = pos.entry_value / pos.entry_qty if pos.entry_qty > 0 else pos.avg_price
        exit_price = pos.exit_value / pos.exit_qty
        if self.market == "spot":
            pnl = pos.exit_value - pos.exit_fees - pos.exit_qty * pos.avg_price
        else:
            pnl = (pos.exit_value - pos.exit_qty * pos.avg_price) * side - pos.entry_fees - pos.exit_fees
        return ClosedTrade(
            symbol=pos.symbol,
            side=side,
            qty=pos.exit_qty,
            entry_ms=pos.entry_ms,
            exit_ms=fill.ts_ms,
            entry_price=entry_price,
            exit_price=exit_price,
            fees=pos.entry_fees + pos.exit_fees,
            pnl=pnl,
            exit_reason=exit_reason,
            entry_client_order_id=pos.entry_client_order_id,
            exit_client_order_id=fill.client_order_id,
            signal_id=pos.signal_id,
            exit_signal_id=exit_signal_id,
            confidence=pos.confidence,
        )
