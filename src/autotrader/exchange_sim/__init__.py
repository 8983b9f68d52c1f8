"""``exchange-sim``: a local exchange that speaks Bybit's v5 REST and WebSocket protocol.

It replays stored candles on a market clock, matches orders against the replayed prices and
answers like Bybit — signatures, receive window, error codes, rate-limit headers, duplicate
``orderLinkId`` refusals — so ccxt, pybit and AutoTrader's adapter work against it unchanged.
Faults (5xx, timeouts, answers dropped after an order was accepted, 10006 bursts, IP bans) can be
injected from the CLI or the test-only admin API. It binds 127.0.0.1 unless told otherwise.

Start it with ``autotrader exchange-sim`` or, from Python, ``SimServer(SimConfig(...)).start()``.
"""

from autotrader.exchange_sim.app import Fault, SimAccountSpec, SimConfig, create_app
from autotrader.exchange_sim.market import synthetic_candles
from autotrader.exchange_sim.runner import SimAdmin, SimProcess, SimServer, sim_candles_from_store

__all__ = [
    "Fault",
    "SimAccountSpec",
    "SimAdmin",
    "SimConfig",
    "SimProcess",
    "SimServer",
    "create_app",
    "sim_candles_from_store",
    "synthetic_candles",
]
