"""Exchange-adapter benchmark against exchange-sim on loopback (the simulator runs in a child process).

Run ``python bench/bench_exchange.py`` (``--orders N`` for more latency samples). It prints:

* requests per second through ``BybitExchange`` at Bybit's limits (order create 10/s on linear and
  20/s on spot, order reads 50/s, public klines under the 600-per-5-s IP limit), with the number of
  ``10006`` answers the simulator had to give (goal: none);
* the latency of one order (p50 / p99) placed through the adapter, through ccxt's unified API, through
  pybit, and as a bare signed HTTP POST; "added" is the adapter's cost on top of the bare request.

Limits are off on both sides for the latency part so that only the code path is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import statistics
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

KEY, SECRET = "benchkey", "benchsecret"


# ------------------------------------------------------------------------------ the simulator process


def serve(rate_limits: bool) -> None:
    """Child process: a synthetic BTCUSDT/ETHUSDT simulator with a frozen clock on a free port."""
    import socket

    import uvicorn

    from autotrader.exchange_sim import SimAccountSpec, SimConfig, create_app, synthetic_candles

    config = SimConfig(
        candles={
            "BTCUSDT": synthetic_candles(3000, seed=1),
            "ETHUSDT": synthetic_candles(3000, seed=2, start_price=2500),
        },
        timeframe="1m",
        speed=0.0,
        accounts=[SimAccountSpec(KEY, SECRET, {"USDT": Decimal(100_000_000), "BTC": Decimal(1000)})],
        rate_limits=rate_limits,
        admin=True,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)  # connections queue until uvicorn accepts them: no refusal after the line below
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning", access_log=False)).run(sockets=[sock])


class Sim:
    def __init__(self, rate_limits: bool) -> None:
        self.rate_limits = rate_limits

    def __enter__(self) -> str:
        args = [sys.executable, str(Path(__file__).resolve()), "--serve"] + (
            [] if self.rate_limits else ["--no-limits"]
        )
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"the simulator did not start: {line!r}")
        return line.split("listening on ")[1].strip()

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def sim_state(url: str) -> dict:
    import httpx

    return httpx.get(url + "/sim-admin/state", timeout=10).json()


# ------------------------------------------------------------------------------------ throughput


def _order(cid: str, market: str, price: Decimal, symbol: str = "BTCUSDT"):  # type: ignore[no-untyped-def]
    from autotrader.domain.orders import OrderSide, OrderType, SubmitOrder

    return SubmitOrder(cid, symbol, market, OrderSide.BUY, OrderType.LIMIT, Decimal("0.001"), price=price)  # type: ignore[arg-type]


async def throughput(url: str) -> list[tuple[str, int, float, int, str]]:
    from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange

    rows = []
    async with BybitExchange(BybitConfig.custom(url, KEY, SECRET)) as ex:
        await ex.instruments("spot")
        await ex.instruments("linear")
        price = ((await ex.ticker("linear", "BTCUSDT")).last * Decimal("0.7")).quantize(Decimal("0.1"))
        await ex.create_order(_order("warm-up", "linear", price))  # first call loads the compiled risk rules

        async def measure(name: str, limit: str, burst: int, n: int, make) -> None:  # type: ignore[no-untyped-def]
            await asyncio.sleep(1.2)  # let the previous window drain
            before = ex.limiter.stats.rate_limited
            started = time.perf_counter()
            await asyncio.gather(*(make(i) for i in range(n)))
            elapsed = time.perf_counter() - started
            # the first `burst` requests of a fresh window go at once; the rest show the sustained rate
            rows.append((name, n, (n - burst) / elapsed, ex.limiter.stats.rate_limited - before, limit))

        await measure(
            "order/create linear", "10/s", 10, 60, lambda i: ex.create_order(_order(f"tl{i}", "linear", price))
        )
        await measure("order/create spot", "20/s", 20, 120, lambda i: ex.create_order(_order(f"ts{i}", "spot", price)))
        await measure(
            "order/realtime (lookup by id)",
            "50/s",
            50,
            300,
            lambda i: ex.order_by_client_id("linear", "BTCUSDT", f"tl{i % 60}"),
        )
        await measure(
            "market/kline (public, 200 bars)",
            "600/5s per IP",
            0,
            400,
            lambda i: ex.candles("spot", "ETHUSDT", "1m", limit=200),
        )
    return rows


# --------------------------------------------------------------------------------------- latency


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def latency_adapter(url: str, n: int) -> list[float]:
    from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange

    out = []
    async with BybitExchange(BybitConfig.custom(url, KEY, SECRET, rate_limits=False)) as ex:
        price = ((await ex.ticker("spot", "BTCUSDT")).last * Decimal("0.7")).quantize(Decimal("0.01"))
        await ex.create_order(_order("warm-a", "spot", price))
        for i in range(n):
            started = time.perf_counter()
            await ex.create_order(_order(f"la{i}", "spot", price))
            out.append(time.perf_counter() - started)
    return out


async def latency_raw(url: str, n: int, price: str) -> list[float]:
    """A bare signed POST /v5/order/create with aiohttp: the floor any client pays."""
    import aiohttp

    out = []
    async with aiohttp.ClientSession() as session:
        for i in range(-1, n):
            body = json.dumps(
                {
                    "category": "spot",
                    "symbol": "BTCUSDT",
                    "side": "Buy",
                    "orderType": "Limit",
                    "qty": "0.001",
                    "price": price,
                    "orderLinkId": f"lr{i}",
                },
                separators=(",", ":"),
            )
            started = time.perf_counter()
            ts = str(int(time.time() * 1000))
            sign = hmac.new(SECRET.encode(), (ts + KEY + "5000" + body).encode(), hashlib.sha256).hexdigest()
            headers = {
                "X-BAPI-API-KEY": KEY,
                "X-BAPI-TIMESTAMP": ts,
                "X-BAPI-RECV-WINDOW": "5000",
                "X-BAPI-SIGN": sign,
                "Content-Type": "application/json",
            }
            async with session.post(url + "/v5/order/create", data=body, headers=headers) as r:
                payload = await r.json()
            assert payload["retCode"] == 0, payload
            if i >= 0:
                out.append(time.perf_counter() - started)
    return out


async def latency_ccxt(url: str, n: int, price: float) -> list[float]:
    import ccxt.async_support as ccxt_async

    ex = ccxt_async.bybit(
        {
            "apiKey": KEY,
            "secret": SECRET,
            "enableRateLimit": False,  # the code path only
            "options": {"fetchMarkets": {"types": ["spot"]}},
        }
    )
    for name in list(ex.urls["api"]):
        ex.urls["api"][name] = url
    out = []
    try:
        await ex.load_markets()
        await ex.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": "lc-warm"})
        for i in range(n):
            started = time.perf_counter()
            await ex.create_order("BTC/USDT", "limit", "buy", 0.001, price, {"clientOrderId": f"lc{i}"})
            out.append(time.perf_counter() - started)
    finally:
        await ex.close()
    return out


def latency_pybit(url: str, n: int, price: str) -> list[float]:
    from pybit.unified_trading import HTTP

    session = HTTP(api_key=KEY, api_secret=SECRET)
    session.endpoint = url
    out = []
    try:
        for i in range(-1, n):
            started = time.perf_counter()
            session.place_order(
                category="spot",
                symbol="BTCUSDT",
                side="Buy",
                orderType="Limit",
                qty="0.001",
                price=price,
                orderLinkId=f"lp{i}",
            )
            if i >= 0:
                out.append(time.perf_counter() - started)
    finally:
        session.client.close()
    return out


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=500, help="orders per latency sample")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-limits", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(rate_limits=not args.no_limits)
        return 0
    import logging

    logging.getLogger("autotrader").setLevel(logging.ERROR)
    print("Exchange adapter vs exchange-sim on 127.0.0.1 (simulator in a child process)\n")
    with Sim(rate_limits=True) as url:
        rows = asyncio.run(throughput(url))
        served = sim_state(url)
    print("requests/second through BybitExchange at Bybit's limits (concurrent callers; sustained rate after the")
    print("first window's burst; 10006 = refusals the simulator had to send)")
    print(f"{'endpoint':34} {'limit':>14} {'requests':>9} {'req/s':>8} {'10006':>6}")
    for name, n, rate, limited, limit in rows:
        print(f"{name:34} {limit:>14} {n:>9} {rate:>8.1f} {limited:>6}")
    print(f"requests the simulator answered: {sum(served['requests'].values()):,}")

    n = args.orders
    with Sim(rate_limits=False) as url:
        price_f = 20_000.0
        price = f"{price_f:.2f}"
        raw = asyncio.run(latency_raw(url, n, price))
        adapter = asyncio.run(latency_adapter(url, n))
        ccxt_unified = asyncio.run(latency_ccxt(url, n, price_f))
        pybit = latency_pybit(url, n, price)
    print(f"\nlatency of one limit order, {n} sequential orders each (ms)")
    print(f"{'client':36} {'p50':>7} {'p99':>7} {'mean':>7}")
    for name, samples in (
        ("bare signed POST (aiohttp)", raw),
        ("AutoTrader BybitExchange.create_order", adapter),
        ("ccxt create_order (unified)", ccxt_unified),
        ("pybit place_order", pybit),
    ):
        print(
            f"{name:36} {pct(samples, 50) * 1e3:7.2f} {pct(samples, 99) * 1e3:7.2f} "
            f"{statistics.fmean(samples) * 1e3:7.2f}"
        )
    print(
        f"{'added by the adapter over bare POST':36} {(pct(adapter, 50) - pct(raw, 50)) * 1e3:7.2f} "
        f"{(pct(adapter, 99) - pct(raw, 99)) * 1e3:7.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
