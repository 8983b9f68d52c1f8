"""Bybit v5 payloads, shaped exactly as in Bybit's API documentation, parsed into domain values."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pytest

from autotrader.adapters.exchange import parsers
from autotrader.adapters.exchange.errors import AmbiguousOutcome, ret_code_of
from autotrader.domain.errors import ConfigError, ExchangeError, InsufficientFunds, OrderRejected
from autotrader.domain.instrument import kernel_filters
from autotrader.domain.orders import OrderSide, OrderStatus, OrderType, TimeInForce

# GET /v5/market/instruments-info?category=linear&symbol=BTCUSDT (docs: market/instrument)
LINEAR_INSTRUMENTS = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "category": "linear",
        "list": [
            {
                "symbol": "BTCUSDT",
                "symbolId": 5,
                "contractType": "LinearPerpetual",
                "status": "Trading",
                "baseCoin": "BTC",
                "quoteCoin": "USDT",
                "launchTime": "1585526400000",
                "deliveryTime": "0",
                "deliveryFeeRate": "",
                "priceScale": "2",
                "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
                "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
                "lotSizeFilter": {
                    "maxOrderQty": "1190.000",
                    "minOrderQty": "0.001",
                    "qtyStep": "0.001",
                    "postOnlyMaxOrderQty": "1190.000",
                    "maxMktOrderQty": "500.000",
                    "minNotionalValue": "5",
                },
                "unifiedMarginTrade": True,
                "fundingInterval": 480,
                "settleCoin": "USDT",
                "copyTrading": "both",
                "upperFundingRate": "0.00375",
                "lowerFundingRate": "-0.00375",
                "isPreListing": False,
                "preListingInfo": None,
                "riskParameters": {"priceLimitRatioX": "0.01", "priceLimitRatioY": "0.02"},
                "symbolType": "",
            }
        ],
        "nextPageCursor": "",
    },
    "retExtInfo": {},
    "time": 1735809771618,
}

# GET /v5/market/instruments-info?category=spot&symbol=BTCUSDT
SPOT_INSTRUMENTS = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "category": "spot",
        "list": [
            {
                "symbolId": 9,
                "symbol": "BTCUSDT",
                "baseCoin": "BTC",
                "quoteCoin": "USDT",
                "innovation": "0",
                "status": "Trading",
                "marginTrading": "utaOnly",
                "stTag": "0",
                "lotSizeFilter": {
                    "basePrecision": "0.000001",
                    "quotePrecision": "0.0000001",
                    "minOrderQty": "0.000011",
                    "maxOrderQty": "83",
                    "minOrderAmt": "5",
                    "maxOrderAmt": "8000000",
                    "maxLimitOrderQty": "83",
                    "maxMarketOrderQty": "41.5",
                    "postOnlyMaxLimitOrderSize": "60000",
                },
                "priceFilter": {"tickSize": "0.1"},
                "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
                "symbolType": "",
            }
        ],
    },
    "retExtInfo": {},
    "time": 1760027412300,
}

# GET /v5/market/kline?category=inverse&symbol=BTCUSD&interval=60&start=1670601600000&end=1670608800000
KLINE = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "symbol": "BTCUSD",
        "category": "inverse",
        "list": [
            ["1670608800000", "17071", "17073", "17027", "17055.5", "268611", "15.74462667"],
            ["1670605200000", "17071.5", "17071.5", "17061", "17071", "4177", "0.24469757"],
            ["1670601600000", "17086.5", "17088", "16978", "17071.5", "6356", "0.37288112"],
        ],
    },
    "retExtInfo": {},
    "time": 1672025956592,
}

# GET /v5/market/tickers?category=spot&symbol=BTCUSDT
SPOT_TICKERS = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "category": "spot",
        "list": [
            {
                "symbol": "BTCUSDT",
                "bid1Price": "20517.96",
                "bid1Size": "2",
                "ask1Price": "20527.77",
                "ask1Size": "1.862172",
                "lastPrice": "20533.13",
                "prevPrice24h": "20393.48",
                "price24hPcnt": "0.0068",
                "highPrice24h": "21128.12",
                "lowPrice24h": "20318.89",
                "turnover24h": "243765620.65899866",
                "volume24h": "11801.27771",
                "usdIndexPrice": "20784.12009279",
            }
        ],
    },
    "retExtInfo": {},
    "time": 1673859087947,
}

# GET /v5/account/wallet-balance?accountType=UNIFIED&coin=BTC
WALLET = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "list": [
            {
                "totalEquity": "18070.32797922",
                "accountIMRate": "0.0101",
                "totalMarginBalance": "18070.32797922",
                "totalInitialMargin": "182.60183684",
                "accountType": "UNIFIED",
                "totalAvailableBalance": "17887.72614237",
                "accountMMRate": "0",
                "totalPerpUPL": "-0.11001349",
                "totalWalletBalance": "18070.43799271",
                "totalMaintenanceMargin": "0.38106773",
                "coin": [
                    {
                        "availableToBorrow": "2.5",
                        "bonus": "0",
                        "accruedInterest": "0",
                        "availableToWithdraw": "0.805994",
                        "totalOrderIM": "0",
                        "equity": "0.805994",
                        "totalPositionMM": "0",
                        "usdValue": "12920.95352538",
                        "unrealisedPnl": "0",
                        "borrowAmount": "0",
                        "totalPositionIM": "0",
                        "walletBalance": "0.805994",
                        "cumRealisedPnl": "0",
                        "coin": "BTC",
                    }
                ],
            }
        ]
    },
    "retExtInfo": {},
    "time": 1672125441042,
}

# GET /v5/position/list?category=inverse&symbol=BTCUSD
POSITIONS = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "list": [
            {
                "positionIdx": 0,
                "riskId": 1,
                "riskLimitValue": "150",
                "symbol": "BTCUSD",
                "side": "Sell",
                "size": "300",
                "avgPrice": "27464.50441675",
                "positionValue": "0.01092319",
                "tradeMode": 0,
                "positionStatus": "Normal",
                "autoAddMargin": 1,
                "adlRankIndicator": 2,
                "leverage": "10",
                "positionBalance": "0.00139186",
                "markPrice": "28224.50",
                "liqPrice": "",
                "bustPrice": "999999.00",
                "positionMM": "0.0000015",
                "positionIM": "0.00010923",
                "tpslMode": "Full",
                "takeProfit": "0.00",
                "stopLoss": "0.00",
                "trailingStop": "0.00",
                "unrealisedPnl": "-0.00029413",
                "cumRealisedPnl": "-0.00096902",
                "seq": 5723621632,
                "isReduceOnly": False,
                "mmrSysUpdateTime": "",
                "leverageSysUpdatedTime": "",
                "createdTime": "1676538056258",
                "updatedTime": "1697673600012",
            }
        ],
        "nextPageCursor": "",
        "category": "inverse",
    },
    "retExtInfo": {},
    "time": 1697684980172,
}

# GET /v5/order/realtime?category=linear&symbol=ETHUSDT&openOnly=0&limit=1
OPEN_ORDERS = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "list": [
            {
                "orderId": "fd4300ae-7847-404e-b947-b46980a4d140",
                "orderLinkId": "test-000005",
                "blockTradeId": "",
                "symbol": "ETHUSDT",
                "price": "1600.00",
                "qty": "0.10",
                "side": "Buy",
                "isLeverage": "",
                "positionIdx": 1,
                "orderStatus": "New",
                "cancelType": "UNKNOWN",
                "rejectReason": "EC_NoError",
                "avgPrice": "0",
                "leavesQty": "0.10",
                "leavesValue": "160",
                "cumExecQty": "0.00",
                "cumExecValue": "0",
                "cumExecFee": "0",
                "timeInForce": "GTC",
                "orderType": "Limit",
                "stopOrderType": "UNKNOWN",
                "orderIv": "",
                "triggerPrice": "0.00",
                "takeProfit": "2500.00",
                "stopLoss": "1500.00",
                "tpTriggerBy": "LastPrice",
                "slTriggerBy": "LastPrice",
                "triggerDirection": 0,
                "triggerBy": "UNKNOWN",
                "lastPriceOnCreated": "",
                "reduceOnly": False,
                "closeOnTrigger": False,
                "smpType": "None",
                "smpGroup": 0,
                "smpOrderId": "",
                "tpslMode": "Full",
                "tpLimitPrice": "",
                "slLimitPrice": "",
                "placeType": "",
                "createdTime": "1684738540559",
                "updatedTime": "1684738540561",
            }
        ],
        "nextPageCursor": "page_args%3Dfd4300ae-7847-404e-b947-b46980a4d140%26symbol%3D6%26",
        "category": "linear",
    },
    "retExtInfo": {},
    "time": 1684765770483,
}

# GET /v5/execution/list?category=linear&limit=1
EXECUTIONS = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "nextPageCursor": "132766%3A2%2C132766%3A2",
        "category": "linear",
        "list": [
            {
                "symbol": "ETHPERP",
                "orderType": "Market",
                "underlyingPrice": "",
                "orderLinkId": "",
                "side": "Buy",
                "indexPrice": "",
                "orderId": "8c065341-7b52-4ca9-ac2c-37e31ac55c94",
                "stopOrderType": "UNKNOWN",
                "leavesQty": "0",
                "execTime": "1672282722429",
                "feeCurrency": "",
                "isMaker": False,
                "execFee": "0.071409",
                "feeRate": "0.0006",
                "execId": "e0cbe81d-0f18-5866-9415-cf319b5dab3b",
                "tradeIv": "",
                "blockTradeId": "",
                "markPrice": "1183.54",
                "execPrice": "1190.15",
                "markIv": "",
                "orderQty": "0.1",
                "orderPrice": "1236.9",
                "execValue": "119.015",
                "execType": "Trade",
                "execQty": "0.1",
                "closedSize": "",
                "extraFees": "",
                "seq": 4688002127,
            }
        ],
    },
    "retExtInfo": {},
    "time": 1672283754510,
}

# POST /v5/order/create
ORDER_ACK = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {"orderId": "1321003749386327552", "orderLinkId": "spot-test-postonly"},
    "retExtInfo": {},
    "time": 1672211918471,
}

# GET /v5/market/time
SERVER_TIME = {
    "retCode": 0,
    "retMsg": "OK",
    "result": {"timeSecond": "1688639403", "timeNano": "1688639403423213947"},
    "retExtInfo": {},
    "time": 1688639403423,
}

# WebSocket kline.5.BTCUSDT
WS_KLINE = {
    "topic": "kline.5.BTCUSDT",
    "data": [
        {
            "start": 1672324800000,
            "end": 1672325099999,
            "interval": "5",
            "open": "16649.5",
            "close": "16677",
            "high": "16677",
            "low": "16608",
            "volume": "2.081",
            "turnover": "34666.4005",
            "confirm": False,
            "timestamp": 1672324988882,
        }
    ],
    "ts": 1672324988882,
    "type": "snapshot",
}

# WebSocket execution
WS_EXECUTION = {
    "id": "592324803b2785-26fa-4214-9963-bdd4727f07be",
    "topic": "execution",
    "creationTime": 1672364174455,
    "data": [
        {
            "category": "linear",
            "symbol": "XRPUSDT",
            "execFee": "0.005061",
            "execId": "7e2ae69c-4edf-5800-a352-893d52b446aa",
            "execPrice": "0.3374",
            "execQty": "25",
            "execType": "Trade",
            "execValue": "8.435",
            "isMaker": False,
            "feeRate": "0.0006",
            "tradeIv": "",
            "markIv": "",
            "blockTradeId": "",
            "markPrice": "0.3391",
            "indexPrice": "",
            "underlyingPrice": "",
            "leavesQty": "0",
            "orderId": "f6e324ff-99c2-4e89-9739-3086e47f9381",
            "orderLinkId": "",
            "orderPrice": "0.3207",
            "orderQty": "25",
            "orderType": "Market",
            "stopOrderType": "UNKNOWN",
            "side": "Sell",
            "execTime": "1672364174443",
            "isLeverage": "0",
        }
    ],
}

# WebSocket position
WS_POSITION = {
    "id": "1003076014fb7eedb-c7e6-45d6-a8c1-270f0169171a",
    "topic": "position",
    "creationTime": 1697682317044,
    "data": [
        {
            "positionIdx": 2,
            "tradeMode": 0,
            "riskId": 1,
            "riskLimitValue": "2000000",
            "symbol": "BTCUSDT",
            "side": "",
            "size": "0",
            "entryPrice": "0",
            "leverage": "10",
            "positionValue": "0",
            "positionBalance": "0",
            "markPrice": "28184.5",
            "positionIM": "0",
            "positionMM": "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "trailingStop": "0",
            "unrealisedPnl": "0",
            "curRealisedPnl": "1.26",
            "cumRealisedPnl": "-25.06579337",
            "sessionAvgPrice": "0",
            "createdTime": "1694402496913",
            "updatedTime": "1697682317038",
            "tpslMode": "Full",
            "liqPrice": "0",
            "bustPrice": "",
            "category": "linear",
            "positionStatus": "Normal",
            "adlRankIndicator": 0,
            "autoAddMargin": 0,
            "leverageSysUpdatedTime": "",
            "mmrSysUpdatedTime": "",
            "seq": 8327597863,
            "isReduceOnly": False,
        }
    ],
}

# WebSocket order (an option order in Bybit's example, shown here for linear)
WS_ORDER = {
    "id": "5923240c6880ab-c59f-420b-9adb-3639adc9dd90",
    "topic": "order",
    "creationTime": 1672364262474,
    "data": [
        {
            "symbol": "ETHUSDT",
            "orderId": "5cf98598-39a7-459e-97bf-76ca765ee020",
            "side": "Sell",
            "orderType": "Market",
            "cancelType": "UNKNOWN",
            "price": "72.5",
            "qty": "1",
            "orderIv": "",
            "timeInForce": "IOC",
            "orderStatus": "Filled",
            "orderLinkId": "entry-42",
            "lastPriceOnCreated": "",
            "reduceOnly": False,
            "leavesQty": "",
            "leavesValue": "",
            "cumExecQty": "1",
            "cumExecValue": "75",
            "avgPrice": "75",
            "blockTradeId": "",
            "positionIdx": 0,
            "cumExecFee": "0.358635",
            "createdTime": "1672364262444",
            "updatedTime": "1672364262457",
            "rejectReason": "EC_NoError",
            "stopOrderType": "",
            "tpslMode": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "closeOnTrigger": False,
            "category": "linear",
            "placeType": "price",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "feeCurrency": "",
        }
    ],
}


def test_parse_linear_instrument_reads_qty_step_tick_and_min_notional():
    [inst] = parsers.parse_instruments(LINEAR_INSTRUMENTS, "linear").values()
    assert inst.symbol == "BTCUSDT"
    assert inst.tick_size == Decimal("0.1")
    assert inst.lot_step == Decimal("0.001")
    assert inst.min_qty == Decimal("0.001")
    assert inst.min_notional == Decimal("5")
    assert inst.max_market_qty == Decimal("500")
    assert inst.max_leverage == Decimal("100")
    assert inst.is_trading
    assert inst.raw is LINEAR_INSTRUMENTS["result"]["list"][0]
    assert kernel_filters([inst])[1][0] == pytest.approx(0.001)  # the float the backtest kernel gets


def test_parse_spot_instrument_uses_base_precision_and_min_order_amount():
    inst = parsers.parse_instruments(SPOT_INSTRUMENTS, "spot")["BTCUSDT"]
    assert inst.lot_step == Decimal("0.000001")
    assert inst.min_notional == Decimal("5")
    assert inst.max_qty == Decimal("83")
    assert inst.max_market_qty == Decimal("41.5")
    assert inst.base_coin == "BTC"
    assert inst.quote_coin == "USDT"


def test_parse_kline_sorts_oldest_first_and_drops_the_open_bar():
    # server time falls inside the newest bar (17:00-18:00): it is still open and must be dropped
    candles = parsers.parse_kline(KLINE, "1h", now_ms=1670608800000 + 1_000)
    assert list(candles.ts) == [1670601600000, 1670605200000]
    assert list(candles.open) == [17086.5, 17071.5]
    assert list(candles.close) == [17071.5, 17071.0]
    assert list(candles.volume) == [6356.0, 4177.0]


def test_parse_kline_keeps_every_bar_once_all_closed():
    candles = parsers.parse_kline(KLINE, "1h")  # envelope time is weeks later
    assert len(candles) == 3
    assert bool(np.all(np.diff(candles.ts) == 3_600_000))
    assert candles.high[-1] == 17073.0


def test_parse_ticker_reads_last_bid_ask():
    ticker = parsers.parse_tickers(SPOT_TICKERS, "spot")["BTCUSDT"]
    assert ticker.last == Decimal("20533.13")
    assert ticker.bid == Decimal("20517.96")
    assert ticker.ask == Decimal("20527.77")
    assert ticker.mark is None
    assert ticker.ts_ms == 1673859087947


def test_parse_wallet_balance_reads_totals_and_coins():
    balance = parsers.parse_balance(WALLET)
    assert balance.total_equity == Decimal("18070.32797922")
    assert balance.total_available == Decimal("17887.72614237")
    btc = balance.coin("BTC")
    assert btc.wallet == Decimal("0.805994")
    assert btc.available == Decimal("0.805994")
    assert balance.coin("ETH").wallet == 0


def test_parse_positions_reads_side_size_and_treats_zero_tp_as_unset():
    [pos] = parsers.parse_positions(POSITIONS)
    assert pos.side is OrderSide.SELL
    assert pos.size == Decimal("300")
    assert pos.signed_size == Decimal("-300")
    assert pos.avg_price == Decimal("27464.50441675")
    assert pos.leverage == Decimal("10")
    assert pos.take_profit is None and pos.stop_loss is None
    assert pos.liq_price is None


def test_parse_open_order_maps_status_type_and_prices():
    [order] = parsers.parse_orders(OPEN_ORDERS, "linear")
    assert order.client_order_id == "test-000005"
    assert order.venue_order_id == "fd4300ae-7847-404e-b947-b46980a4d140"
    assert order.status is OrderStatus.ACCEPTED
    assert order.type is OrderType.LIMIT
    assert order.side is OrderSide.BUY
    assert order.price == Decimal("1600.00")
    assert order.qty == Decimal("0.10")
    assert order.filled_qty == 0
    assert order.avg_fill_price is None
    assert order.take_profit == Decimal("2500.00")
    assert order.time_in_force is TimeInForce.GTC
    assert order.reason == ""
    assert parsers.next_cursor(OPEN_ORDERS) == "page_args%3Dfd4300ae-7847-404e-b947-b46980a4d140%26symbol%3D6%26"


def test_parse_execution_reads_fill_and_fee():
    [fill] = parsers.parse_fills(EXECUTIONS, "linear")
    assert fill.fill_id == "e0cbe81d-0f18-5866-9415-cf319b5dab3b"
    assert fill.qty == Decimal("0.1")
    assert fill.price == Decimal("1190.15")
    assert fill.fee == Decimal("0.071409")
    assert fill.fee_rate == Decimal("0.0006")
    assert fill.fee_currency == "USDT"  # perpetual fees are in the settle coin when Bybit leaves it blank
    assert fill.is_maker is False
    assert fill.ts_ms == 1672282722429


def test_parse_order_ack_and_server_time():
    assert parsers.parse_order_ack(ORDER_ACK) == ("1321003749386327552", "spot-test-postonly")
    assert parsers.parse_server_time(SERVER_TIME) == 1688639403423


def test_parse_ws_kline_reports_unconfirmed_bar():
    symbol, tf, candles, confirmed = parsers.parse_ws_kline(WS_KLINE)
    assert (symbol, tf.name) == ("BTCUSDT", "5m")
    assert list(candles.ts) == [1672324800000]
    assert candles.close[0] == 16677.0
    assert not confirmed[0]


def test_parse_ws_execution_order_and_position():
    [fill] = parsers.parse_ws_fills(WS_EXECUTION)
    assert (fill.symbol, fill.side, fill.qty, fill.market) == ("XRPUSDT", OrderSide.SELL, Decimal("25"), "linear")
    [order] = parsers.parse_ws_orders(WS_ORDER)
    assert order.status is OrderStatus.FILLED
    assert order.client_order_id == "entry-42"
    assert order.avg_fill_price == Decimal("75")
    assert order.price is None  # a market order's protective price is not its price
    [pos] = parsers.parse_ws_positions(WS_POSITION)
    assert pos.is_flat and pos.side is None
    assert pos.realised_pnl == Decimal("-25.06579337")


def test_spot_fill_without_fee_currency_is_charged_in_the_coin_received():
    item = {**EXECUTIONS["result"]["list"][0], "symbol": "BTCUSDT"}
    assert parsers.parse_fill(item, "spot").fee_currency == "BTC"
    assert parsers.parse_fill({**item, "side": "Sell"}, "spot").fee_currency == "USDT"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (10001, OrderRejected),
        (110007, InsufficientFunds),
        (170131, InsufficientFunds),
        (110094, OrderRejected),
        (10016, AmbiguousOutcome),
        (99999, ExchangeError),
    ],
)
def test_envelope_with_error_code_raises_the_mapped_class(code, cls):
    with pytest.raises(cls) as info:
        parsers.result_of({"retCode": code, "retMsg": "boom", "result": {}, "time": 1})
    assert ret_code_of(info.value) == code
    assert str(code) in str(info.value)


@pytest.mark.parametrize(("tf", "interval"), [("1m", "1"), ("15m", "15"), ("1h", "60"), ("4h", "240"), ("1d", "D")])
def test_interval_mapping_round_trips(tf, interval):
    assert parsers.interval_for(tf) == interval
    assert parsers.timeframe_for(interval).name == tf


def test_interval_for_unsupported_timeframe_is_a_config_error():
    with pytest.raises(ConfigError, match="Bybit has no 2m candles"):
        parsers.interval_for("2m")


# ---------------------------------------------------------- parsed orders moved by events; venue rules


def _command(**kw):
    from autotrader.domain.orders import SubmitOrder

    base = {
        "client_order_id": "entry-1",
        "symbol": "BTCUSDT",
        "market": "linear",
        "side": OrderSide.BUY,
        "type": OrderType.LIMIT,
        "qty": Decimal("0.0123456"),
        "price": Decimal("42000.04"),
    }
    return SubmitOrder(**{**base, **kw})


def test_order_lifecycle_follows_the_transition_table():
    from autotrader.domain.orders import Order, OrderAccepted, OrderFilled, OrderSubmitted

    [fill] = parsers.parse_fills(EXECUTIONS, "linear")
    order = Order.from_command(_command(qty=Decimal("0.2")), 1)
    assert order.status is OrderStatus.INITIALIZED
    order = order.apply(OrderSubmitted("entry-1", 2)).apply(OrderAccepted("entry-1", 3, "v-1"))
    assert (order.status, order.venue_order_id) == (OrderStatus.ACCEPTED, "v-1")
    first = dataclasses.replace(fill, client_order_id="entry-1", fill_id="f1")
    order = order.apply(OrderFilled("entry-1", 4, first))
    assert order.status is OrderStatus.PARTIALLY_FILLED and order.filled_qty == Decimal("0.1")
    assert order.apply(OrderFilled("entry-1", 5, first)) is order  # the same execution twice counts once
    second = dataclasses.replace(first, fill_id="f2", price=Decimal("1200.15"))
    order = order.apply(OrderFilled("entry-1", 6, second))
    assert order.status is OrderStatus.FILLED
    assert order.avg_fill_price == Decimal("1195.15")
    assert order.fees == Decimal("0.142818")


def test_order_refuses_an_event_its_state_does_not_allow():
    from autotrader.domain.orders import Order, OrderAccepted, OrderCanceled, OrderStateError, OrderSubmitted

    order = Order.from_command(_command(), 1)
    with pytest.raises(OrderStateError, match="from initialized to accepted"):
        order.apply(OrderAccepted("entry-1", 2, "v"))
    done = order.apply(OrderSubmitted("entry-1", 2)).apply(OrderCanceled("entry-1", 3))
    with pytest.raises(OrderStateError, match="from canceled"):
        done.apply(OrderCanceled("entry-1", 4))
    with pytest.raises(OrderStateError, match="applied to order"):
        done.apply(OrderCanceled("other", 4))


def test_sync_events_bring_a_local_order_to_the_venue_state():
    from autotrader.domain.orders import Order, sync_events

    [venue] = parsers.parse_ws_orders(WS_ORDER)
    fill = dataclasses.replace(parsers.parse_ws_fills(WS_EXECUTION)[0], client_order_id="entry-42", qty=Decimal(1))
    local = Order.from_command(
        _command(
            client_order_id="entry-42",
            symbol="ETHUSDT",
            side=OrderSide.SELL,
            type=OrderType.MARKET,
            qty=Decimal(1),
            price=None,
        ),
        1,
    )
    for event in sync_events(local, venue, [fill]):
        local = local.apply(event)
    assert local.status is OrderStatus.FILLED
    assert local.venue_order_id == venue.venue_order_id
    assert local.filled_qty == Decimal(1)


def test_client_order_id_is_deterministic_short_and_bybit_valid():
    from autotrader.domain.orders import derive_client_order_id, is_valid_client_order_id

    a = derive_client_order_id("donchian_breakout", "1000PEPEUSDT", 1704067200000, "entry")
    assert a == derive_client_order_id("donchian_breakout", "1000PEPEUSDT", 1704067200000, "entry")
    assert a != derive_client_order_id("donchian_breakout", "1000PEPEUSDT", 1704067200000, "entry", attempt=1)
    assert a != derive_client_order_id("donchian_breakout", "1000PEPEUSDT", 1704070800000, "entry")
    assert len(a) <= 36 and is_valid_client_order_id(a)
    assert is_valid_client_order_id(derive_client_order_id("ml/strategy v2!", "btc/usdt", "sig:9", "stop loss"))
    assert not is_valid_client_order_id("x" * 37)
    assert not is_valid_client_order_id("has space")


def test_fit_to_instrument_rounds_qty_down_and_price_to_tick():
    from autotrader.execution import fit_to_instrument

    inst = parsers.parse_instruments(LINEAR_INSTRUMENTS, "linear")["BTCUSDT"]
    fitted = fit_to_instrument(_command(), inst, Decimal(42000))
    assert fitted.qty == Decimal("0.012")
    assert fitted.price == Decimal("42000.0")
    assert format(fitted.qty, "f") == "0.012"


def test_fit_to_instrument_refuses_below_minimum_notional_with_the_reason():
    from autotrader.execution import fit_to_instrument

    inst = parsers.parse_instruments(SPOT_INSTRUMENTS, "spot")["BTCUSDT"]
    with pytest.raises(OrderRejected, match=r"notional of 4\.20 USDT, below the minimum 5 USDT"):
        fit_to_instrument(_command(market="spot", qty=Decimal("0.0001")), inst, Decimal(42000))
    linear = parsers.parse_instruments(LINEAR_INSTRUMENTS, "linear")["BTCUSDT"]
    with pytest.raises(OrderRejected, match=r"below the minimum quantity 0\.001"):
        fit_to_instrument(_command(qty=Decimal("0.0009")), linear, Decimal(42000))
    # a reduce-only close of a small position is allowed below the notional minimum
    small = fit_to_instrument(
        _command(qty=Decimal("0.001"), price=Decimal(100), reduce_only=True), linear, Decimal(100)
    )
    assert small.qty == Decimal("0.001")


def test_a_fitted_order_is_marked_and_the_mark_vouches_for_that_exact_order_only():
    from autotrader.execution.ports import fit_to_instrument, is_fitted, mark_fitted

    inst = parsers.parse_instruments(LINEAR_INSTRUMENTS, "linear")["BTCUSDT"]
    fitted = fit_to_instrument(_command(stop_loss=Decimal("41000.03")), inst, Decimal(42000))
    assert is_fitted(fitted, inst)
    # the same values without the mark, or the mark after a change, are fitted again before sending
    assert not is_fitted(dataclasses.replace(fitted, fitted=None), inst)
    assert not is_fitted(dataclasses.replace(fitted, qty=Decimal("0.011")), inst)  # on the lot step, still voided
    assert not is_fitted(dataclasses.replace(fitted, stop_loss=Decimal("41000.1")), inst)
    assert is_fitted(fit_to_instrument(fitted, inst, Decimal(42000)), inst)  # fitting again changes nothing
    # a mark for other rules, or on an order off the grid, does not let it through
    coarser = dataclasses.replace(inst, tick_size=Decimal(1))
    assert not is_fitted(fitted, coarser)
    assert not is_fitted(mark_fitted(_command(price=Decimal(42000)), inst), inst)  # qty off the lot step
    assert not is_fitted(mark_fitted(_command(qty=Decimal("0.012")), inst), inst)  # price off the tick
    larger_minimum = dataclasses.replace(inst, min_qty=Decimal("0.005"))
    below_minimum = mark_fitted(_command(qty=Decimal("0.002"), price=Decimal(42000)), larger_minimum)
    assert not is_fitted(below_minimum, larger_minimum)
    assert is_fitted(mark_fitted(_command(qty=Decimal("0.012"), price=Decimal(42000)), inst), inst)
    # a priced order's value is checked too; a market order above the venue's largest is never let through
    assert not is_fitted(mark_fitted(_command(qty=Decimal("0.001"), price=Decimal(1000)), inst), inst)  # 1 < 5 USDT
    capped = dataclasses.replace(inst, max_market_qty=Decimal("0.010"))
    market = _command(type=OrderType.MARKET, price=None, qty=Decimal("0.012"))
    assert not is_fitted(mark_fitted(market, capped), capped)
    with pytest.raises(OrderRejected, match="largest market order"):
        fit_to_instrument(market, capped, Decimal(42000))
