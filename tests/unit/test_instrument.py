"""One instrument type: the robot's order fitting and the backtest kernel round with the same filters."""

from __future__ import annotations

from decimal import Decimal

import pytest

from autotrader.domain.errors import OrderRejected
from autotrader.domain.instrument import Instrument, default_instrument, kernel_filters
from autotrader.domain.orders import OrderSide, OrderType, SubmitOrder
from autotrader.execution import fit_to_instrument
from autotrader.risk.rules import venue_quantity_nb

BTC_LINEAR = Instrument.trading("BTCUSDT", "linear", "0.1", "0.001", "0.002", "5")


def _market_buy(qty: str, instrument: Instrument = BTC_LINEAR) -> SubmitOrder:
    return SubmitOrder(
        client_order_id="entry-1", symbol=instrument.symbol, market=instrument.market, side=OrderSide.BUY,
        type=OrderType.MARKET, qty=Decimal(qty),
    )  # fmt: skip


def test_plain_numbers_become_exact_decimals_and_the_coins_come_from_the_symbol() -> None:
    inst = Instrument.trading("ETHUSDC", "spot", tick_size=0.01, lot_step=1e-05, min_qty="0.0001", min_notional=5.0)
    assert (inst.base_coin, inst.quote_coin, inst.status) == ("ETH", "USDC", "Trading")
    assert inst.tick_size == Decimal("0.01")
    assert inst.lot_step == Decimal("0.00001")
    assert inst.min_notional == Decimal("5")
    assert inst.is_trading


def test_the_kernel_gets_the_same_filters_as_floats_in_symbol_order() -> None:
    eth = Instrument.trading("ETHUSDT", "linear", "0.01", "0.01", "0.01", "20")
    tick, lot, min_qty, min_notional = kernel_filters([BTC_LINEAR, eth])
    assert tick.tolist() == [0.1, 0.01]
    assert lot.tolist() == [0.001, 0.01]
    assert min_qty.tolist() == [0.002, 0.01]
    assert min_notional.tolist() == [5.0, 20.0]


def test_default_filters_are_bybits_for_known_symbols_and_scaled_to_the_price_otherwise() -> None:
    btc = default_instrument("BTCUSDT", "spot", 42_000.0)
    assert (btc.tick_size, btc.lot_step, btc.min_qty, btc.min_notional) == (
        Decimal("0.01"), Decimal("0.000001"), Decimal("0.000048"), Decimal(5),
    )  # fmt: skip
    assert default_instrument("BTCUSDT", "linear", 42_000.0).max_leverage == Decimal(100)
    odd = default_instrument("ODDUSDT", "spot", 3.0)  # price magnitude 1: tick 1e-5, step 1e-5
    assert float(odd.tick_size) == pytest.approx(1e-5)
    assert odd.lot_step == odd.min_qty


@pytest.mark.parametrize("qty", ["0.0123456", "0.002", "0.0029999", "1.23456789"])
def test_the_robot_and_the_backtest_kernel_accept_the_same_quantity(qty: str) -> None:
    price = 42_000.0
    fitted = fit_to_instrument(_market_buy(qty), BTC_LINEAR, Decimal(repr(price)))
    _, lot, min_qty, min_notional = kernel_filters([BTC_LINEAR])
    kernel_qty = venue_quantity_nb(float(qty), price, lot[0], min_qty[0], min_notional[0])
    assert float(fitted.qty) == pytest.approx(kernel_qty, rel=0, abs=1e-12)
    assert fitted.qty <= Decimal(qty)  # rounded down, never up
    assert fitted.qty % BTC_LINEAR.lot_step == 0


def test_both_paths_refuse_an_order_below_the_minimum_quantity() -> None:
    _, lot, min_qty, min_notional = kernel_filters([BTC_LINEAR])
    assert venue_quantity_nb(0.0019, 42_000.0, lot[0], min_qty[0], min_notional[0]) == 0.0
    with pytest.raises(OrderRejected, match=r"below the minimum quantity 0\.002"):
        fit_to_instrument(_market_buy("0.0019"), BTC_LINEAR, Decimal(42_000))
