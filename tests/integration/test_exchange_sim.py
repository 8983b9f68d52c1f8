"""The Bybit adapter against exchange-sim over real HTTP and WebSocket on 127.0.0.1.

One simulator per module (market clock moved only by the tests); every test gets its own account.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
import uuid
from decimal import Decimal

import numpy as np
import pytest

from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange
from autotrader.adapters.exchange.errors import RET_CODES, Action, AmbiguousOutcome, ret_code_of
from autotrader.adapters.exchange.stream import BybitStream, StreamSettings
from autotrader.domain.candles import Candles
from autotrader.domain.errors import (
    AuthError,
    ConfigError,
    ExchangeError,
    InsufficientFunds,
    OrderRejected,
    RateLimited,
)
from autotrader.domain.orders import OrderSide, OrderStatus, OrderType, SubmitOrder, TimeInForce, TriggerDirection
from autotrader.exchange_sim import SimConfig, SimServer, synthetic_candles
from autotrader.execution.ports import fit_to_instrument

MINUTE = 60_000
BTC = synthetic_candles(6_000, MINUTE, seed=1, start_price=40_000.0)
ETH = synthetic_candles(6_000, MINUTE, seed=2, start_price=2_500.0)


@pytest.fixture(scope="module")
def sim():
    config = SimConfig(
        candles={"BTCUSDT": BTC, "ETHUSDT": ETH},
        timeframe="1m",
        speed=0.0,
        warmup_bars=600,
        admin=True,
        ws_tick_s=0.02,
        ws_idle_timeout_s=1.0,  # sockets that stop pinging are closed quickly
        ip_ban_s=2.0,
    )
    with SimServer(config).start() as server:
        yield server


@pytest.fixture
def account(sim):
    key, secret = f"key{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    sim.admin.add_account(key, secret, {"USDT": "100000", "BTC": "1"})
    yield key, secret
    sim.admin.clear_faults()
    sim.admin.skew(0)
    sim.admin.rate_limits(True)


def connect(sim, account, **options) -> BybitExchange:
    options = {"timeout_s": 2.0, "lookup_delay_s": 0.05, **options}
    return BybitExchange(BybitConfig.custom(sim.url, *account, **options))


def run(coro):
    return asyncio.run(coro)


def order(cid: str, **kw) -> SubmitOrder:
    base = {
        "symbol": "BTCUSDT",
        "market": "linear",
        "side": OrderSide.BUY,
        "type": OrderType.MARKET,
        "qty": Decimal("0.01"),
    }
    return SubmitOrder(cid, **{**base, **kw})


def orders_at_sim(sim, link_id: str) -> int:
    state = sim.admin.state()
    return sum(acct["order_link_ids"].count(link_id) for acct in state["accounts"].values())


# ----------------------------------------------------------------------------------- market data


def test_market_data_instruments_candles_and_ticker_match_the_replay(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            linear = await ex.instruments("linear")
            spot = await ex.instruments("spot", ["BTCUSDT"])
            now = sim.admin.market_time_ms()
            candles = await ex.candles("spot", "BTCUSDT", "1m", limit=50)
            ticker = await ex.ticker("linear", "BTCUSDT")
            return linear, spot, now, candles, ticker

    linear, spot, now, candles, ticker = run(go())
    assert set(linear) == {"BTCUSDT", "ETHUSDT"}
    assert linear["BTCUSDT"].lot_step == Decimal("0.001") and linear["BTCUSDT"].min_notional == Decimal(5)
    assert spot["BTCUSDT"].lot_step == Decimal("0.000001")
    # only closed bars, oldest first, equal to the stored ones
    assert len(candles) == 49
    assert int(candles.ts[-1]) + MINUTE <= now
    expect = BTC.slice_range(int(candles.ts[0]), int(candles.ts[-1]))
    assert (candles.ts == expect.ts).all() and (candles.close == expect.close).all()
    assert abs(float(ticker.last) / float(BTC.close[(now - int(BTC.ts[0])) // MINUTE - 1]) - 1) < 0.01
    assert ticker.bid < ticker.ask


def test_unknown_symbol_is_a_clear_config_error(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            with pytest.raises(ConfigError, match="unknown symbol 'BTCUSTD' on Bybit linear; did you mean BTCUSDT"):
                await ex.instrument("linear", "BTCUSTD")
            with pytest.raises(ExchangeError, match="10001") as info:
                await ex.candles("spot", "NOPEUSDT", "1m")
            assert not isinstance(info.value, OrderRejected)  # a bad market-data call is not a rejected order

    run(go())


# ------------------------------------------------------------------------------------- orders


def test_order_lifecycle_limit_rests_fills_then_reduce_only_close(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            last = (await ex.ticker("linear", "BTCUSDT")).last
            limit = (last * Decimal("0.995")).quantize(Decimal("0.1"))
            acked = await ex.create_order(order("life-1", type=OrderType.LIMIT, price=limit, qty=Decimal("0.05")))
            assert acked.status is OrderStatus.ACCEPTED and acked.venue_order_id
            [resting] = await ex.open_orders("linear", "BTCUSDT")
            assert resting.client_order_id == "life-1" and resting.price == limit
            filled = None
            for _ in range(12):  # the replayed price cycles ±2 % every 4 h
                sim.admin.advance(30 * MINUTE)
                filled = await ex.order_by_client_id("linear", "BTCUSDT", "life-1")
                if filled.status is OrderStatus.FILLED:
                    break
            assert filled is not None and filled.status is OrderStatus.FILLED
            assert filled.avg_fill_price == limit
            [fill] = await ex.fills("linear", "BTCUSDT", client_order_id="life-1")
            assert (
                fill.is_maker
                and fill.qty == Decimal("0.05")
                and fill.fee == Decimal("0.05") * limit * Decimal("0.0002")
            )
            [position] = await ex.positions()
            assert position.side is OrderSide.BUY and position.size == Decimal("0.05")
            closed = await ex.create_order(order("life-2", side=OrderSide.SELL, qty=Decimal("0.05"), reduce_only=True))
            assert closed.status is OrderStatus.ACCEPTED
            assert await ex.positions() == []
            assert (await ex.order_by_client_id("linear", "BTCUSDT", "life-2")).status is OrderStatus.FILLED
            assert await ex.open_orders("linear") == []
            balance = await ex.balance()
            return balance

    balance = run(go())
    assert balance.coin("USDT").wallet != Decimal(100000)  # fees and P&L were booked


def test_spot_market_buy_is_in_base_and_pays_fee_in_base(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            before = (await ex.balance()).coin("BTC").wallet
            await ex.create_order(order("spot-1", market="spot", qty=Decimal("0.01")))
            after = await ex.balance()
            [fill] = await ex.fills("spot", "BTCUSDT")
            return before, after, fill

    before, after, fill = run(go())
    assert fill.qty == Decimal("0.01") and fill.fee_currency == "BTC"
    assert after.coin("BTC").wallet == before + Decimal("0.01") - Decimal("0.00001")


def test_cancel_open_order_and_cancel_of_unknown_order(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            last = (await ex.ticker("spot", "BTCUSDT")).last
            await ex.create_order(
                order(
                    "cxl-1",
                    market="spot",
                    type=OrderType.LIMIT,
                    price=(last * Decimal("0.95")).quantize(Decimal("0.01")),
                    time_in_force=TimeInForce.POST_ONLY,
                )
            )
            cancelled = await ex.cancel_order("spot", "BTCUSDT", "cxl-1")
            again = await ex.cancel_order("spot", "BTCUSDT", "cxl-1")  # 170213: already gone -> its final state
            unknown = await ex.cancel_order("linear", "BTCUSDT", "never-placed")  # 110001 -> None
            await ex.create_order(
                order(
                    "cxl-2",
                    market="spot",
                    type=OrderType.LIMIT,
                    price=(last * Decimal("0.95")).quantize(Decimal("0.01")),
                    time_in_force=TimeInForce.POST_ONLY,
                )
            )
            requested = await ex.request_cancel("spot", "BTCUSDT", "cxl-2")  # retCode 0, no lookup
            requested_again = await ex.request_cancel("spot", "BTCUSDT", "cxl-2")  # 170213: nothing open
            return cancelled, again, unknown, requested, requested_again

    cancelled, again, unknown, requested, requested_again = run(go())
    assert cancelled.status is OrderStatus.CANCELED and again.status is OrderStatus.CANCELED
    assert unknown is None
    assert requested is True and requested_again is False


def test_stop_market_order_waits_for_its_trigger_then_fills(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            last = (await ex.ticker("linear", "BTCUSDT")).last
            trigger = (last * Decimal("1.004")).quantize(Decimal("0.1"))
            placed = await ex.create_order(order("stop-1", type=OrderType.STOP_MARKET, trigger_price=trigger))
            assert placed.status is OrderStatus.UNTRIGGERED
            [waiting] = await ex.open_orders("linear", "BTCUSDT")
            assert waiting.status is OrderStatus.UNTRIGGERED and waiting.trigger_price == trigger
            for _ in range(12):
                sim.admin.advance(30 * MINUTE)
                found = await ex.order_by_client_id("linear", "BTCUSDT", "stop-1")
                if found.status is OrderStatus.FILLED:
                    return trigger, found
            raise AssertionError("the stop never triggered")

    placed_ms = sim.admin.market_time_ms()
    trigger, filled = run(go())
    # filled at the worse of the trigger and the first traded price past it, plus slippage (2 bps):
    # the first bar whose high reaches the trigger, at the trigger when it trades through it, at
    # its open when the open is already past it (recomputed here from the candles)
    first = None
    for i in range(int(np.searchsorted(BTC.ts, placed_ms, side="right")), len(BTC)):
        if BTC.open[i] >= float(trigger):
            first = Decimal(repr(float(BTC.open[i])))
            break
        if BTC.high[i] >= float(trigger):
            first = trigger
            break
    assert first is not None
    assert filled.avg_fill_price == (first * Decimal("1.0002")).quantize(Decimal("0.1"))


@pytest.mark.parametrize("market", ["linear", "spot"])
def test_amend_moves_a_resting_stop_in_place_and_answers_like_bybit(sim, account, market):
    """``/v5/order/amend``: the same order (ids, status) at the new trigger; "not modified" is success
    (34040); an order that is gone is ``False`` (110001/170213); a trigger off the tick is refused (10001)."""

    async def go():
        async with connect(sim, account) as ex:
            last = (await ex.ticker(market, "BTCUSDT")).last
            trigger = (last * Decimal("0.95")).quantize(Decimal("0.1"))
            cid = f"amend-{market}"
            side = {"side": OrderSide.SELL, "type": OrderType.STOP_MARKET, "trigger_price": trigger}
            placed = await ex.create_order(order(cid, market=market, **side))
            moved = (last * Decimal("0.97")).quantize(Decimal("0.1"))
            assert await ex.amend_trigger(market, "BTCUSDT", cid, moved) is True
            [resting] = await ex.open_orders(market, "BTCUSDT")
            again = await ex.amend_trigger(market, "BTCUSDT", cid, moved)  # 34040: already there
            with pytest.raises(OrderRejected) as unchanged:
                await ex._call(
                    "privatePostV5OrderAmend",
                    "/v5/order/amend",
                    {"category": market, "symbol": "BTCUSDT", "orderLinkId": cid, "triggerPrice": str(moved)},
                    category=market,
                )
            assert ret_code_of(unchanged.value) == 34040
            with pytest.raises(OrderRejected) as refused:
                await ex._call(
                    "privatePostV5OrderAmend",
                    "/v5/order/amend",
                    {
                        "category": market,
                        "symbol": "BTCUSDT",
                        "orderLinkId": cid,
                        "triggerPrice": str(moved + Decimal("0.001")),
                    },
                    category=market,
                )
            await ex.request_cancel(market, "BTCUSDT", cid)
            gone = await ex.amend_trigger(market, "BTCUSDT", cid, trigger)
            unknown = await ex.amend_trigger(market, "BTCUSDT", "never-placed", trigger)
            return placed, moved, resting, again, ret_code_of(refused.value), gone, unknown

    placed, moved, resting, again, refused_code, gone, unknown = run(go())
    assert resting.client_order_id == placed.client_order_id and resting.venue_order_id == placed.venue_order_id
    assert resting.status is OrderStatus.UNTRIGGERED and resting.trigger_price == moved
    assert again is True
    assert refused_code == 10001
    assert gone is False and unknown is False


def _gap_sim(crash: tuple[float, float, float, float]) -> SimServer:
    """40 flat bars at 40,000, then ``crash`` (open, high, low, close) at bar 40, then flat at its close."""
    n = 60
    o, h, lo, c = (np.full(n, 40_000.0) for _ in range(4))
    o[40], h[40], lo[40], c[40] = crash
    o[41:] = h[41:] = lo[41:] = c[41:] = crash[3]
    ts = BTC.ts[:n]
    candles = Candles(ts, o, h, lo, c, np.full(n, 100.0))
    config = SimConfig(candles={"BTCUSDT": candles}, timeframe="1m", speed=0.0, warmup_bars=30, admin=True)
    return SimServer(config)


@pytest.mark.parametrize(
    ("crash", "expected"),
    [
        ((36_000.0, 36_100.0, 35_900.0, 36_000.0), Decimal("35992.8")),  # gap: the open, less 2 bps
        ((40_000.0, 40_000.0, 38_000.0, 38_500.0), Decimal("38992.2")),  # traded through: the trigger, less 2 bps
    ],
    ids=["gap", "through"],
)
@pytest.mark.parametrize("kind", ["standalone_linear", "attached_linear", "standalone_spot"])
def test_triggered_stop_fills_at_the_worse_of_trigger_and_first_price_past_it(crash, expected, kind):
    with _gap_sim(crash).start() as gap_sim:
        key, secret = f"key{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
        gap_sim.admin.add_account(key, secret, {"USDT": "100000", "BTC": "1"})
        market = "spot" if kind == "standalone_spot" else "linear"
        stop = Decimal("39000")

        async def go():
            async with connect(gap_sim, (key, secret)) as ex:
                if kind == "attached_linear":
                    await ex.create_order(order("gap-entry", stop_loss=stop))
                else:
                    if market == "linear":
                        await ex.create_order(order("gap-entry"))
                    await ex.create_order(
                        order(
                            "gap-stop",
                            market=market,
                            side=OrderSide.SELL,
                            type=OrderType.STOP_MARKET,
                            trigger_price=stop,
                            reduce_only=market == "linear",
                        )
                    )
                gap_sim.admin.advance(20 * MINUTE)
                await asyncio.sleep(0)
                fills = await ex.fills(market, "BTCUSDT")
                return [f for f in fills if f.side is OrderSide.SELL]

        [sell] = run(go())
    assert sell.price == expected


def test_stop_loss_and_take_profit_rest_on_the_exchange(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            last = (await ex.ticker("linear", "ETHUSDT")).last
            sl = (last * Decimal("0.9")).quantize(Decimal("0.01"))
            tp = (last * Decimal("1.012")).quantize(Decimal("0.01"))
            await ex.create_order(order("tpsl-1", symbol="ETHUSDT", qty=Decimal("1"), stop_loss=sl, take_profit=tp))
            [position] = await ex.positions("ETHUSDT")
            assert position.stop_loss == sl and position.take_profit == tp
            for _ in range(12):
                sim.admin.advance(30 * MINUTE)
                if not await ex.positions():
                    break
            return await ex.positions(), await ex.fills("linear", "ETHUSDT")

    positions, fills = run(go())
    assert positions == []  # the take-profit closed it on the exchange, with no order from us
    assert len(fills) == 2 and fills[1].side is OrderSide.SELL


def test_rounding_and_minimum_notional_refusal_before_sending(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            placed = await ex.create_order(order("round-1", qty=Decimal("0.0123456")))
            before = sim.admin.state()["requests"].get("/v5/order/create", 0)
            with pytest.raises(OrderRejected, match="below the minimum"):
                await ex.create_order(order("round-2", qty=Decimal("0.0001")))
            with pytest.raises(OrderRejected, match="notional"):
                await ex.create_order(order("round-3", market="spot", qty=Decimal("0.0001")))
            after = sim.admin.state()["requests"].get("/v5/order/create", 0)
            venue = await ex.order_by_client_id("linear", "BTCUSDT", "round-1")
            return placed, before, after, venue

    placed, before, after, venue = run(go())
    assert placed.qty == Decimal("0.012") and venue.qty == Decimal("0.012")
    assert after == before  # refused orders never reached the exchange


def requests_to(sim, path: str) -> int:
    return sim.admin.state()["requests"].get(path, 0)


def test_a_fitted_market_order_reaches_the_wire_as_given_without_a_price_lookup(sim, account):
    async def go():
        async with connect(sim, account, price_cache_s=0.0) as ex:  # no cached price to spare a ticker request
            instrument = await ex.instrument("linear", "BTCUSDT")
            last = (await ex.ticker("linear", "BTCUSDT")).last
            fitted = fit_to_instrument(order("fitted-1", qty=Decimal("0.0123456")), instrument, last)
            stop = order(
                "fitted-stop",
                side=OrderSide.SELL,
                type=OrderType.STOP_MARKET,
                trigger_price=last * Decimal("0.9"),
                reduce_only=True,
                trigger_direction=TriggerDirection.FALLING,  # its own direction: no price needed to infer one
            )
            fitted_stop = fit_to_instrument(stop, instrument, last)
            tickers = requests_to(sim, "/v5/market/tickers")
            placed = await ex.create_order(fitted)
            placed_stop = await ex.create_order(fitted_stop)
            sent_without_lookup = requests_to(sim, "/v5/market/tickers") == tickers
            venue = await ex.order_by_client_id("linear", "BTCUSDT", "fitted-1")
            return fitted, placed, venue, fitted_stop, placed_stop, sent_without_lookup

    fitted, placed, venue, fitted_stop, placed_stop, sent_without_lookup = run(go())
    assert fitted.qty == Decimal("0.012")
    assert placed.qty == fitted.qty and venue.qty == fitted.qty
    assert placed_stop.trigger_price == fitted_stop.trigger_price and placed_stop.status is OrderStatus.UNTRIGGERED
    assert sent_without_lookup


def test_an_order_changed_after_fitting_is_checked_again_before_sending(sim, account):
    async def go():
        async with connect(sim, account, price_cache_s=0.0) as ex:
            linear = await ex.instrument("linear", "BTCUSDT")
            spot = await ex.instrument("spot", "BTCUSDT")
            last = (await ex.ticker("linear", "BTCUSDT")).last
            fitted = fit_to_instrument(order("changed-1"), linear, last)
            tickers = requests_to(sim, "/v5/market/tickers")
            placed = await ex.create_order(dataclasses.replace(fitted, qty=Decimal("0.0123456")))
            looked_up = requests_to(sim, "/v5/market/tickers") > tickers
            small = fit_to_instrument(order("changed-2", market="spot", qty=Decimal("0.001")), spot, last)
            creates = requests_to(sim, "/v5/order/create")
            with pytest.raises(OrderRejected, match="notional"):  # on the lot step, below the minimum notional
                await ex.create_order(dataclasses.replace(small, qty=Decimal("0.0001")))
            refused_before_sending = requests_to(sim, "/v5/order/create") == creates
            return placed, looked_up, refused_before_sending

    placed, looked_up, refused_before_sending = run(go())
    assert placed.qty == Decimal("0.012")  # rounded to the lot step, as an order that was never fitted
    assert looked_up and refused_before_sending


# -------------------------------------------------------------------------------- error codes


def test_bad_key_wrong_secret_and_read_only_key_are_auth_errors(sim, account):
    key, _secret = account
    read_only = f"ro{uuid.uuid4().hex[:10]}"
    sim.admin.add_account(read_only, "ro-secret", read_only=True)

    async def go():
        async with connect(sim, ("nosuchkey", "x")) as ex:
            with pytest.raises(AuthError, match="10003"):
                await ex.balance()
        async with connect(sim, (key, "wrong-secret-value")) as ex:
            with pytest.raises(AuthError, match="10004") as info:
                await ex.balance()
            message = str(info.value)
            assert key not in message and "wrong-secret-value" not in message  # the signed string is redacted
        async with connect(sim, (read_only, "ro-secret")) as ex:
            assert (await ex.balance()).coin("USDT").wallet == Decimal(10000)
            with pytest.raises(AuthError, match="10005"):
                await ex.create_order(order("ro-1"))

    run(go())


def test_venue_refusals_map_to_the_taxonomy(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            last = (await ex.ticker("linear", "BTCUSDT")).last
            cases = [
                (order("ref-1", qty=Decimal("50")), InsufficientFunds, 110007),
                (order("ref-2", market="spot", qty=Decimal("5")), InsufficientFunds, 170131),
                (order("ref-3", side=OrderSide.SELL, reduce_only=True), OrderRejected, 110017),
                (
                    order("ref-4", type=OrderType.LIMIT, price=(last * Decimal("1.5")).quantize(Decimal("0.1"))),
                    OrderRejected,
                    110003,
                ),
                (
                    order(
                        "ref-5",
                        market="spot",
                        type=OrderType.LIMIT,
                        price=(last * Decimal("1.5")).quantize(Decimal("0.01")),
                    ),
                    OrderRejected,
                    170193,
                ),
            ]
            for cmd, cls, code in cases:
                with pytest.raises(cls) as info:
                    await ex.create_order(cmd)
                assert ret_code_of(info.value) == code, (cmd.client_order_id, info.value)
                assert str(code) in str(info.value)

    run(go())


RAISE_CODES = sorted(code for code, entry in RET_CODES.items() if entry.action is Action.RAISE)


def test_every_definitive_ret_code_is_mapped_to_its_class(sim, account):
    async def go():
        async with connect(sim, account, rate_limits=False) as ex:
            await ex.instruments("linear")
            await ex.ticker("linear", "BTCUSDT")
            for code in RAISE_CODES:
                sim.admin.fault("ret_code", path="/v5/order/create", ret_code=code, ret_msg=f"injected {code}")
                with pytest.raises(ExchangeError) as info:
                    await ex.create_order(order(f"code-{code}"))
                assert type(info.value) is RET_CODES[code].error, code
                assert ret_code_of(info.value) == code
                assert f"injected {code}" in str(info.value)

    run(go())
    assert len(RAISE_CODES) >= 25


# ------------------------------------------------------------------------- rate limits and clock


def test_client_limiter_keeps_a_burst_under_bybits_limit(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            last = (await ex.ticker("spot", "BTCUSDT")).last
            price = (last * Decimal("0.9")).quantize(Decimal("0.01"))
            await ex.instruments("spot")
            started = time.monotonic()
            placed = await asyncio.gather(
                *(
                    ex.create_order(
                        order(f"burst-{i}", market="spot", type=OrderType.LIMIT, price=price, qty=Decimal("0.001"))
                    )
                    for i in range(30)
                )
            )
            return time.monotonic() - started, placed, ex.limiter.stats

    elapsed, placed, stats = run(go())
    assert len(placed) == 30 and all(p.status is OrderStatus.ACCEPTED for p in placed)
    assert stats.rate_limited == 0  # never a 10006
    assert stats.waits >= 10
    assert 1.0 <= elapsed < 3.0  # 20/s on spot: the last ten waited one window


def test_10006_waits_until_the_reset_then_succeeds(sim, account):
    async def go():
        async with connect(sim, account, rate_limits=False) as ex:
            await ex.instruments("linear")
            await ex.ticker("linear", "BTCUSDT")
            sim.admin.fault("rate_limit", path="/v5/order/create", count=2, duration_s=0.3)
            started = time.monotonic()
            placed = await ex.create_order(order("rl-1"))
            return time.monotonic() - started, placed, ex.limiter.stats.rate_limited

    elapsed, placed, limited = run(go())
    assert placed.status is OrderStatus.ACCEPTED
    assert limited == 2
    assert elapsed >= 0.5  # two waits of ~0.3 s for the reset
    assert orders_at_sim(sim, "rl-1") == 1


def test_server_enforced_limit_without_client_limiter_is_survived(sim, account):
    async def go():
        async with connect(sim, account, rate_limits=False) as ex:
            await ex.instruments("linear")
            last = (await ex.ticker("linear", "BTCUSDT")).last
            price = (last * Decimal("0.9")).quantize(Decimal("0.1"))
            placed = await asyncio.gather(
                *(ex.create_order(order(f"srv-{i}", type=OrderType.LIMIT, price=price)) for i in range(14))
            )
            return placed, ex.limiter.stats.rate_limited

    placed, limited = run(go())
    assert len(placed) == 14
    assert limited >= 1  # the server said 10006 and the adapter waited for the reset


def test_http_403_backs_off_for_minutes_and_says_so(sim, account, caplog):
    async def go():
        async with connect(sim, account, ip_ban_s=0.4, max_rate_wait_s=0.1) as ex:
            sim.admin.fault("ip_ban", duration_s=0.3)
            with pytest.raises(RateLimited, match="HTTP 403"):
                await ex.balance()
            hits = sim.admin.state()["requests"].get("/v5/account/wallet-balance", 0)
            with pytest.raises(RateLimited, match="IP ban in effect"):
                await ex.balance()
            assert sim.admin.state()["requests"].get("/v5/account/wallet-balance", 0) == hits  # not even sent
            await asyncio.sleep(0.5)
            return await ex.balance()

    with caplog.at_level("WARNING"):
        balance = run(go())
    assert balance.coin("USDT").wallet > 0
    assert "backing off" in caplog.text


def test_clock_out_of_window_resyncs_with_market_time(sim, account):
    sim.admin.skew(30_000)  # the exchange's clock is 30 s ahead of ours

    async def go():
        async with connect(sim, account) as ex:
            balance = await ex.balance()
            return balance, ex.clock_offset_ms

    balance, offset = run(go())
    assert balance.coin("USDT").wallet > 0
    assert 29_000 < offset < 31_000


# --------------------------------------------------------------------------------- idempotency


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("drop_after_accept", {"delay_s": 1.5}),  # accepted, answer never arrives
        ("error_after_accept", {"status": 502}),  # accepted, then a gateway error
        ("timeout", {"delay_s": 1.5}),  # never processed, no answer
        ("http_error", {"status": 503}),  # never processed
        ("ret_code", {"ret_code": 10016}),  # server error, never processed
    ],
)
def test_ambiguous_failure_resolved_by_lookup_with_exactly_one_order(sim, account, kind, options):
    cid = f"amb-{kind}"[:36]

    async def go():
        async with connect(sim, account, timeout_s=0.4) as ex:
            await ex.instruments("linear")
            await ex.ticker("linear", "BTCUSDT")
            sim.admin.fault(kind, path="/v5/order/create", **options)
            return await ex.create_order(order(cid))

    placed = run(go())
    assert placed.client_order_id == cid
    assert placed.status in (OrderStatus.ACCEPTED, OrderStatus.FILLED)
    assert orders_at_sim(sim, cid) == 1


def test_outcome_unknown_after_all_attempts_raises_and_never_duplicates(sim, account):
    async def go():
        async with connect(sim, account, max_attempts=2, lookup_attempts=2) as ex:
            await ex.instruments("linear")
            await ex.ticker("linear", "BTCUSDT")
            sim.admin.fault("error_after_accept", path="/v5/order/create", count=None, status=502)
            sim.admin.fault("http_error", path="/v5/order/realtime", count=None, status=502)
            sim.admin.fault("http_error", path="/v5/order/history", count=None, status=502)
            with pytest.raises(AmbiguousOutcome, match="look it up"):
                await ex.create_order(order("unknown-1"))
            sim.admin.clear_faults()
            # the robot retries the same decision: the venue's duplicate check leads to adoption
            return await ex.create_order(order("unknown-1"))

    placed = run(go())
    assert placed.status is OrderStatus.FILLED
    assert orders_at_sim(sim, "unknown-1") == 1


def test_duplicate_client_id_adopts_the_existing_order(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            first = await ex.create_order(order("dup-1", market="spot"))
            second = await ex.create_order(order("dup-1", market="spot"))  # 170141 -> lookup
            return first, second

    first, second = run(go())
    assert second.venue_order_id == first.venue_order_id
    assert orders_at_sim(sim, "dup-1") == 1


# ------------------------------------------------------------------------------------ clients


def test_pybit_works_against_the_sim_unchanged(sim, account):
    from pybit.unified_trading import HTTP

    key, secret = account
    session = HTTP(api_key=key, api_secret=secret, recv_window=5000)
    session.endpoint = sim.url
    try:
        kline = session.get_kline(category="linear", symbol="BTCUSDT", interval="1", limit=5)
        placed = session.place_order(
            category="linear",
            symbol="BTCUSDT",
            side="Buy",
            orderType="Limit",
            qty="0.01",
            price="30000",
            orderLinkId="pybit-1",
        )
        open_orders = session.get_open_orders(category="linear", symbol="BTCUSDT")
        session.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="pybit-1")
        wallet = session.get_wallet_balance(accountType="UNIFIED", coin="USDT")
    finally:
        session.client.close()
    assert len(kline["result"]["list"]) == 5
    assert placed["result"]["orderLinkId"] == "pybit-1"
    assert [o["orderLinkId"] for o in open_orders["result"]["list"]] == ["pybit-1"]
    assert wallet["result"]["list"][0]["coin"][0]["coin"] == "USDT"


def test_ccxt_unified_api_works_against_the_sim_unchanged(sim, account):
    import ccxt.async_support as ccxt_async

    async def go():
        ex = ccxt_async.bybit(
            {"apiKey": account[0], "secret": account[1], "options": {"fetchMarkets": {"types": ["spot", "linear"]}}}
        )
        for name in list(ex.urls["api"]):
            ex.urls["api"][name] = sim.url
        try:
            markets = await ex.load_markets()
            balance = await ex.fetch_balance()
            created = await ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 30000, {"clientOrderId": "ccxt-1"})
            open_orders = await ex.fetch_open_orders("BTC/USDT:USDT")
            return markets, balance, created, open_orders
        finally:
            await ex.close()

    markets, balance, created, open_orders = run(go())
    assert "BTC/USDT" in markets and "BTC/USDT:USDT" in markets
    assert balance["USDT"]["total"] == 100000
    assert created["id"]
    assert [o["clientOrderId"] for o in open_orders] == ["ccxt-1"]


# ---------------------------------------------------------------------------------- websocket


def test_stream_emits_only_confirmed_klines_and_survives_a_dropped_socket(sim, account):
    got: list[tuple[int, float]] = []
    unconfirmed_seen = []

    async def go():
        async with connect(sim, account) as ex:
            config = ex.config
            stream = BybitStream(
                config,
                "linear",
                rest=ex,
                settings=StreamSettings(
                    ping_interval_s=0.2, reconnect_base_s=0.05, reconnect_cap_s=0.2, poll_interval_s=0.1
                ),
                on_kline=lambda symbol, tf, bars: got.extend(zip(bars.ts.tolist(), bars.close.tolist(), strict=True)),
            )
            stream.subscribe_klines("BTCUSDT", "1m")
            task = asyncio.create_task(stream.run())
            await wait_for(lambda: stream.public_up)
            start = sim.admin.market_time_ms()
            sim.admin.advance(30_000)  # half a bar: nothing confirmed yet
            await asyncio.sleep(0.2)
            unconfirmed_seen.append(len(got))
            sim.admin.advance(3 * MINUTE)
            await wait_for(lambda: len(got) >= 3)
            sim.admin.drop_websockets()
            sim.admin.advance(4 * MINUTE)  # bars close while the socket is down
            await wait_for(lambda: stream.stats.reconnects >= 1 and len(got) >= 7)
            sim.admin.advance(2 * MINUTE)
            await wait_for(lambda: len(got) >= 9)
            stream.stop()
            await task
            return start, stream.stats

    _start, stats = run(go())
    assert unconfirmed_seen == [0]
    ts = [t for t, _ in got]
    assert ts == sorted(set(ts))  # each bar once, in order
    assert all(b - a == MINUTE for a, b in itertools.pairwise(ts))  # no gap across the reconnect
    index = {int(t): i for i, t in enumerate(BTC.ts.tolist())}
    assert all(close == BTC.close[index[t]] for t, close in got)
    assert stats.reconnects >= 1


def test_stream_heartbeat_keeps_an_idle_socket_open(sim, account):
    tickers = []

    async def go():
        async with connect(sim, account) as ex:
            stream = BybitStream(
                ex.config, "linear", settings=StreamSettings(ping_interval_s=0.25), on_ticker=tickers.append
            )
            stream.subscribe_ticker("BTCUSDT")
            task = asyncio.create_task(stream.run())
            await wait_for(lambda: stream.public_up)
            await asyncio.sleep(2.0)  # twice the simulator's idle timeout, with nothing else sent
            up, stats = stream.public_up, stream.stats
            stream.stop()
            await task
            return up, stats

    up, stats = run(go())
    assert up and stats.reconnects == 0 and stats.connects == 1
    assert stats.messages >= 6  # the pongs (and a ticker) kept arriving
    assert tickers and tickers[0].symbol == "BTCUSDT" and tickers[0].bid < tickers[0].last < tickers[0].ask


def test_stream_polls_rest_while_the_socket_is_refused(sim, account):
    got: list[int] = []

    async def go():
        async with connect(sim, account) as ex:
            stream = BybitStream(
                ex.config,
                "spot",
                rest=ex,
                settings=StreamSettings(
                    ping_interval_s=0.2, reconnect_base_s=0.3, reconnect_cap_s=0.5, poll_interval_s=0.1
                ),
                on_kline=lambda s, tf, bars: got.extend(bars.ts.tolist()),
            )
            stream.subscribe_klines("ETHUSDT", "1m")
            task = asyncio.create_task(stream.run())
            await wait_for(lambda: stream.public_up)
            sim.admin.advance(MINUTE)
            await wait_for(lambda: len(got) >= 1)
            sim.admin.drop_websockets(refuse_s=3.0)
            sim.admin.advance(3 * MINUTE)
            await wait_for(lambda: len(got) >= 4, timeout=2.5)  # polled while the socket is refused
            polled_while_down = not stream.public_up
            stream.stop()
            await task
            return polled_while_down, stream.stats.polls

    polled_while_down, polls = run(go())
    assert polled_while_down and polls >= 1
    assert all(b - a == MINUTE for a, b in itertools.pairwise(got))


def test_private_stream_pushes_orders_fills_positions_and_reconciles_after_reconnect(sim, account):
    orders, fills, positions, reconciled = [], [], [], []

    async def go():
        async with connect(sim, account) as ex:
            stream = BybitStream(
                ex.config,
                "linear",
                rest=ex,
                settings=StreamSettings(
                    ping_interval_s=0.2, reconnect_base_s=0.05, reconnect_cap_s=0.2, poll_interval_s=5
                ),
                on_order=orders.append,
                on_fill=fills.append,
                on_position=positions.append,
                on_reconnect=lambda: reconciled.append(True),
            )
            stream.subscribe_private()
            task = asyncio.create_task(stream.run())
            await wait_for(lambda: stream.private_up)
            await asyncio.sleep(0.1)  # the subscription is processed
            await ex.create_order(order("ws-1", qty=Decimal("0.02")))
            await wait_for(lambda: fills and positions)
            sim.admin.drop_websockets()
            await wait_for(lambda: reconciled and stream.private_up)
            stream.stop()
            await task

    run(go())
    assert [o.client_order_id for o in orders] == ["ws-1"] and orders[0].status is OrderStatus.FILLED
    assert fills[0].qty == Decimal("0.02") and fills[0].client_order_id == "ws-1"
    assert positions[-1].size == Decimal("0.02")
    assert reconciled


def test_private_stream_with_a_bad_secret_raises_auth_error(sim, account):
    async def go():
        async with connect(sim, (account[0], "bad")) as ex:
            stream = BybitStream(ex.config, "linear", settings=StreamSettings(ping_interval_s=0.2))
            stream.subscribe_private()
            await asyncio.wait_for(stream.run(), timeout=5)

    with pytest.raises(AuthError, match="private stream login"):
        run(go())


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_stream_subscription_to_an_unknown_symbol_is_a_config_error(sim, account):
    async def go():
        async with connect(sim, account) as ex:
            stream = BybitStream(ex.config, "spot", settings=StreamSettings(ping_interval_s=0.2))
            stream.subscribe_klines("NOPEUSDT", "1m")
            await asyncio.wait_for(stream.run(), timeout=5)

    with pytest.raises(ConfigError, match=r"refused the subscription to kline\.1\.NOPEUSDT"):
        run(go())


def test_cli_simulator_subprocess_replays_the_candle_store(isolated_home):
    from autotrader.adapters.storage.parquet_store import ParquetCandleStore
    from autotrader.domain.candles import SeriesKey
    from autotrader.exchange_sim import SimProcess

    store = ParquetCandleStore(isolated_home / "data")
    store.upsert(SeriesKey.of("binance", "BTCUSDT", "1m"), BTC)
    store.close()
    config = isolated_home / "config.toml"
    config.write_text("[storage]\nseed_bundled = false\n")
    args = ["--timeframe", "1m", "--manual-clock", "--admin", "--config", str(config)]
    with SimProcess(args, env={"BYBIT_API_KEY": "cli-key", "BYBIT_API_SECRET": "cli-secret"}) as proc:
        proc.admin.advance(10 * MINUTE)

        async def go():
            async with connect(proc, ("cli-key", "cli-secret")) as ex:
                return await ex.candles("spot", "BTCUSDT", "1m", limit=20), await ex.balance()

        candles, balance = run(go())
    assert len(candles) == 19
    start = int(candles.ts[0])
    expect = BTC.slice_range(start, int(candles.ts[-1]))
    assert (candles.close == expect.close).all()
    assert balance.coin("USDT").wallet == Decimal(10000)


@pytest.mark.parametrize("market", ["linear", "spot"])
def test_a_trigger_already_passed_for_its_direction_is_refused_like_bybit(sim, account, market):
    """Bybit refuses a conditional order (or an amend) whose trigger the price has already passed in its
    direction: 110092 "expect Rising" / 110093 "expect Falling"; the adapter raises ``OrderRejected``."""

    async def go():
        async with connect(sim, account) as ex:
            last = (await ex.ticker(market, "BTCUSDT")).last
            above = (last * Decimal("1.02")).quantize(Decimal("0.1"))
            below = (last * Decimal("0.98")).quantize(Decimal("0.1"))
            stop = {"type": OrderType.STOP_MARKET}
            codes = []
            for cid, side, trigger, direction in (
                (f"fall-{market}", OrderSide.SELL, above, TriggerDirection.FALLING),  # a long's stop, passed
                (f"rise-{market}", OrderSide.BUY, below, TriggerDirection.RISING),  # a short's stop, passed
            ):
                with pytest.raises(OrderRejected) as refused:
                    await ex.create_order(
                        order(cid, market=market, side=side, trigger_price=trigger, trigger_direction=direction, **stop)
                    )
                codes.append(ret_code_of(refused.value))
            cid = f"amend-wrong-{market}"
            await ex.create_order(
                order(
                    cid,
                    market=market,
                    side=OrderSide.SELL,
                    trigger_price=below,
                    trigger_direction=TriggerDirection.FALLING,
                    **stop,
                )
            )
            with pytest.raises(OrderRejected) as amend_refused:
                await ex.amend_trigger(market, "BTCUSDT", cid, above)
            [resting] = await ex.open_orders(market, "BTCUSDT")
            await ex.request_cancel(market, "BTCUSDT", cid)
            return codes, ret_code_of(amend_refused.value), resting, below

    codes, amend_code, resting, below = run(go())
    assert codes == [110093, 110092]
    assert amend_code == 110093
    assert resting.trigger_price == below  # the refused amend left the order as it was
