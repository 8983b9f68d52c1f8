"""The simulator's HTTP and WebSocket face: Bybit v5 paths, auth, envelope, limits and faults.

Request handling follows Bybit's order of checks: IP limit (HTTP 403) → injected transport
faults → route (HTTP 404) → signature and receive window (``10001``-``10005``) → UID rate limit
(``10006`` with ``X-Bapi-Limit*`` headers) → the endpoint. Signatures are verified over the raw
bytes received (the query string as sent for GET, the body for POST), which is what lets ccxt
(insertion-ordered, URL-encoded) and pybit (sorted, not encoded, ``json.dumps`` with spaces) both
work unchanged.

The admin API under ``/sim-admin/`` (only with ``SimConfig.admin``) moves the market clock, skews
the auth clock, injects faults, drops WebSockets and reports state; it is for tests and
rehearsals and is never part of Bybit's protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import parse_qsl

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from autotrader.adapters.exchange.ratelimit import IP_BAN_S, IP_LIMIT, IP_WINDOW_S, endpoint_limit
from autotrader.domain.candles import Candles
from autotrader.domain.timeframe import Timeframe
from autotrader.exchange_sim.engine import QUOTE, SimAccount, SimEngine, SimError, fmt
from autotrader.exchange_sim.market import Bar, MarketClock, MarketReplay

log = logging.getLogger(__name__)

FaultKind = Literal[
    "http_error",  # answer HTTP ``status`` (HTML body) without processing
    "timeout",  # hold the request ``delay_s`` without processing, then HTTP 504
    "drop_after_accept",  # process the request, then hold the answer ``delay_s`` (the client times out)
    "error_after_accept",  # process the request, then answer HTTP ``status`` instead of the result
    "ret_code",  # answer ``ret_code``/``ret_msg`` without processing
    "refuse_conditional",  # answer ``ret_code``/``ret_msg`` to order creates with a trigger price (stops) only
    "rate_limit",  # answer 10006 with a reset ``duration_s`` ahead, without processing
    "ip_ban",  # answer HTTP 403 to everything for ``duration_s``
]


@dataclass
class Fault:
    """One injected fault. It fires on requests whose path starts with ``path`` (all when empty),
    ``count`` times (``None``: unlimited) with ``probability``."""

    kind: FaultKind
    path: str = ""
    count: int | None = 1
    probability: float = 1.0
    status: int = 502
    ret_code: int = 10016
    ret_msg: str = "Internal System Error."
    delay_s: float = 30.0
    duration_s: float = 1.0
    fired: int = 0

    def matches(self, path: str, rng: random.Random) -> bool:
        if self.count is not None and self.fired >= self.count:
            return False
        if self.path and not path.startswith(self.path):
            return False
        return self.probability >= 1.0 or rng.random() < self.probability


@dataclass
class SimAccountSpec:
    api_key: str
    api_secret: str
    balances: Mapping[str, Decimal] = field(default_factory=lambda: {QUOTE: Decimal(10_000)})
    read_only: bool = False


@dataclass
class SimConfig:
    """What the simulator replays and how it behaves."""

    candles: Mapping[str, Candles]
    timeframe: str = "1h"
    start_ms: int | None = None  # default: ``warmup_bars`` after the first bar of the data
    warmup_bars: int = 200
    speed: float = 1.0  # market ms per wall ms; 0 = the market clock moves only via the admin API
    accounts: list[SimAccountSpec] = field(default_factory=list)
    slippage_bps: float = 2.0
    spread_bps: float = 1.0
    price_band_pct: float = 10.0
    rate_limits: bool = True
    ip_limit: int = IP_LIMIT
    ip_window_s: float = IP_WINDOW_S
    ip_ban_s: float = IP_BAN_S
    kline_max_limit: int = 1000
    admin: bool = False
    faults: list[Fault] = field(default_factory=list)
    seed: int | None = None
    ws_tick_s: float = 0.05
    ws_idle_timeout_s: float = 600.0


def _html(status: int, text: str) -> Response:
    body = f"<html><head><title>{status}</title></head><body><center><h1>{status} {text}</h1></center></body></html>"
    return Response(body, status_code=status, media_type="text/html")


def _num(x: float) -> str:
    """A float as the shortest plain decimal that reads back as the same float."""
    return np.format_float_positional(x, trim="-")


_INTERVALS = {"1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W"}


def _interval_ms(interval: str) -> int:
    if interval == "D":
        return 86_400_000
    if interval == "W":
        return 604_800_000
    return int(interval) * 60_000


# ------------------------------------------------------------------------------------ websocket


@dataclass(eq=False)
class _Conn:
    ws: WebSocket
    kind: str  # spot / linear / private
    queue: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    topics: set[str] = field(default_factory=set)
    account: SimAccount | None = None
    conn_id: str = field(default_factory=lambda: uuid.uuid4().hex[:20])
    kline_last: dict[str, int] = field(default_factory=dict)  # topic -> start of the last confirmed bar sent
    kline_partial: dict[str, str] = field(default_factory=dict)  # topic -> last partial bar sent
    ticker_last: dict[str, str] = field(default_factory=dict)


class SimState:
    """Everything one simulator instance holds."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        tf = Timeframe.parse(config.timeframe)
        self.tf_ms = tf.ms
        first = min(int(c.ts[0]) for c in config.candles.values() if len(c))
        start = config.start_ms if config.start_ms is not None else first + config.warmup_bars * tf.ms
        self.clock = MarketClock(start, config.speed)
        self.replay = MarketReplay(config.candles, tf.ms, self.clock)
        self.engine = SimEngine(
            self.replay,
            slippage_bps=config.slippage_bps,
            spread_bps=config.spread_bps,
            price_band_pct=config.price_band_pct,
        )
        for spec in config.accounts:
            self.engine.add_account(spec.api_key, spec.api_secret, dict(spec.balances), spec.read_only)
        self.engine.listeners.append(self._on_account_event)
        self.rng = random.Random(config.seed)  # noqa: S311 - fault dice, not cryptography
        self.faults: list[Fault] = list(config.faults)
        self.skew_ms = 0
        self.rate_limits = config.rate_limits
        self.ip_hits: dict[str, deque[float]] = defaultdict(deque)
        self.ip_banned_until: dict[str, float] = {}
        self.uid_hits: dict[tuple[int, str], deque[float]] = defaultdict(deque)
        self.requests: dict[str, int] = defaultdict(int)
        self.conns: set[_Conn] = set()
        self.ws_refuse_until = 0.0
        self.ws_connects = 0
        self.on_change: Callable[[SimState], None] | None = None  # persists accounts (the paper wallet)
        self._changed = False

    # clocks
    def auth_now_ms(self) -> int:
        return int(time.time() * 1000) + self.skew_ms

    def market_now_ms(self) -> int:
        return self.clock.now_ms()

    # faults
    def take_fault(self, path: str, kinds: tuple[str, ...]) -> Fault | None:
        for fault in self.faults:
            if fault.kind in kinds and fault.matches(path, self.rng):
                fault.fired += 1
                return fault
        return None

    def flush_changes(self) -> None:
        """Hand the state to ``on_change`` if an account changed since the last call (before answering)."""
        if self._changed and self.on_change is not None:
            self._changed = False
            self.on_change(self)

    # private pushes
    def _on_account_event(self, acct: SimAccount, topic: str, data: list[dict[str, Any]]) -> None:
        self._changed = True
        for conn in self.conns:
            if conn.account is not acct:
                continue
            category = data[0].get("category", "") if data and topic != "wallet" else ""
            if topic in conn.topics or (category and f"{topic}.{category}" in conn.topics):
                msg = {
                    "id": uuid.uuid4().hex,
                    "topic": topic,
                    "creationTime": self.market_now_ms(),
                    "data": data,
                }
                conn.queue.put_nowait(json.dumps(msg))


# ------------------------------------------------------------------------------------ the app


Handler = Callable[[SimState, SimAccount | None, dict[str, Any], int], Any]


def create_app(config: SimConfig) -> FastAPI:
    """The FastAPI application of one simulator (state in ``app.state.sim``)."""
    state = SimState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(_publisher(state))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for conn in list(state.conns):
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001)

    app = FastAPI(
        title="AutoTrader Bybit v5 simulator", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.sim = state

    @app.api_route("/v5/{rest:path}", methods=["GET", "POST"])
    async def v5(request: Request, rest: str) -> Response:
        return await _handle(state, request, "/v5/" + rest)

    @app.websocket("/v5/public/{category}")
    async def ws_public(websocket: WebSocket, category: str) -> None:
        await _ws_session(state, websocket, category)

    @app.websocket("/v5/private")
    async def ws_private(websocket: WebSocket) -> None:
        await _ws_session(state, websocket, "private")

    if config.admin:
        _add_admin(app)
    return app


async def _handle(state: SimState, request: Request, path: str) -> Response:
    state.requests[path] += 1
    early = await _transport(state, request, path)
    if early is not None:
        return early
    route = _ROUTES.get(path)
    if route is None:
        return _html(404, "Not Found")
    method, private, write, handler = route
    if request.method != method:
        return _envelope(state, 10017, "route not found", {}, time_ms=state.market_now_ms())
    try:
        params, account = await _admit(state, request, method, private, write)
    except SimError as e:
        return _envelope(state, e.ret_code, e.ret_msg, {}, time_ms=state.market_now_ms())
    headers, refusal = _limits_and_faults(state, account, path, params)
    if refusal is not None:
        return refusal
    now = state.market_now_ms()
    try:
        result = handler(state, account, params, now)
    except SimError as e:
        state.flush_changes()  # a step before the refusal may have filled a resting order
        return _envelope(state, e.ret_code, e.ret_msg, {}, headers, time_ms=now)
    state.flush_changes()  # durable before the client hears of it, as on a venue
    time_ms = state.auth_now_ms() if path == "/v5/market/time" else now
    response = _envelope(state, 0, "OK", result, headers, time_ms=time_ms)
    fault = state.take_fault(path, ("drop_after_accept", "error_after_accept"))
    if fault is not None and fault.kind == "drop_after_accept":
        await asyncio.sleep(fault.delay_s)  # the client gives up first: the answer goes nowhere
    elif fault is not None:
        return _html(fault.status, "Bad Gateway")
    return response


async def _transport(state: SimState, request: Request, path: str) -> Response | None:
    """The IP limit and injected transport faults: answers that never reach the endpoint."""
    host = request.client.host if request.client else "?"
    if (blocked := _ip_limit(state, host)) is not None:
        return blocked
    fault = state.take_fault(path, ("http_error", "timeout", "ip_ban"))
    if fault is None:
        return None
    if fault.kind == "ip_ban":
        state.ip_banned_until[host] = time.monotonic() + fault.duration_s
        return PlainTextResponse("access too frequent", status_code=403)
    if fault.kind == "timeout":
        await asyncio.sleep(fault.delay_s)
        return _html(504, "Gateway Time-out")
    return _html(fault.status, "Bad Gateway")


async def _admit(
    state: SimState, request: Request, method: str, private: bool, write: bool
) -> tuple[dict[str, Any], SimAccount | None]:
    """Parse the parameters and, for private endpoints, check signature, window and permission."""
    raw_query = request.scope.get("query_string", b"").decode("latin-1")
    body = (await request.body()).decode("utf-8", errors="replace") if method == "POST" else ""
    params = _params(method, raw_query, body)
    account = _authenticate(state, request, raw_query if method == "GET" else body) if private else None
    if account is not None and write and account.read_only:
        raise SimError(10005, "Permission denied, please check your API key permissions.")
    return params, account


_TOO_MANY = "Too many visits. Exceeded the API Rate Limit."


def _limits_and_faults(
    state: SimState, account: SimAccount | None, path: str, params: dict[str, Any]
) -> tuple[dict[str, str], Response | None]:
    """The UID rate limit and injected refusals; returns the limit headers and a refusal, if any."""
    headers: dict[str, str] = {}
    if account is not None:
        limited, headers = _uid_limit(state, account, path, params.get("category"))
        if limited:
            return headers, _envelope(state, 10006, _TOO_MANY, {}, headers, time_ms=state.market_now_ms())
    fault = state.take_fault(path, ("ret_code", "rate_limit"))
    if fault is None and params.get("triggerPrice") not in (None, "", "0"):
        fault = state.take_fault(path, ("refuse_conditional",))
    if fault is None:
        return headers, None
    if fault.kind == "rate_limit":
        reset = state.auth_now_ms() + int(fault.duration_s * 1000)
        headers = {**headers, "X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(reset)}
        return headers, _envelope(state, 10006, _TOO_MANY, {}, headers, time_ms=state.market_now_ms())
    return headers, _envelope(state, fault.ret_code, fault.ret_msg, {}, headers, time_ms=state.market_now_ms())


def _envelope(
    state: SimState,
    code: int,
    msg: str,
    result: Any,
    headers: Mapping[str, str] | None = None,
    *,
    time_ms: int,
) -> Response:
    body = {
        "retCode": code,
        "retMsg": msg,
        "result": result if result is not None else {},
        "retExtInfo": {},
        "time": time_ms,
    }
    out = dict(headers or {})
    out["Timenow"] = str(state.auth_now_ms())
    return JSONResponse(body, headers=out)


def _params(method: str, raw_query: str, body: str) -> dict[str, Any]:
    if method == "GET":
        return dict(parse_qsl(raw_query, keep_blank_values=True))
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except json.JSONDecodeError:
        raise SimError(10001, "Request parameter error.") from None
    if not isinstance(parsed, dict):
        raise SimError(10001, "Request parameter error.")
    return {k: v for k, v in parsed.items() if v is not None}


def _authenticate(state: SimState, request: Request, payload: str) -> SimAccount:
    h = request.headers
    key, ts, sign = h.get("x-bapi-api-key", ""), h.get("x-bapi-timestamp", ""), h.get("x-bapi-sign", "")
    recv = h.get("x-bapi-recv-window", "5000") or "5000"
    if not key or not ts or not sign:
        raise SimError(10001, f"empty value: apiTimestamp[{ts}] apiKey[{key}] apiSignature[{sign}]")
    account = state.engine.accounts.get(key)
    if account is None:
        raise SimError(10003, "API key is invalid.")
    try:
        ts_ms, recv_ms = int(ts), int(recv)
    except ValueError:
        raise SimError(10001, "params error: timestamp or recv_window invalid") from None
    server = state.auth_now_ms()
    if not (server - recv_ms <= ts_ms < server + 1000):
        raise SimError(
            10002,
            "invalid request, please check your server timestamp or recv_window param. "
            f"req_timestamp[{ts_ms}],server_timestamp[{server}],recv_window[{recv_ms}]",
        )
    origin = f"{ts}{key}{recv}{payload}"
    expected = hmac.new(account.secret.encode(), origin.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, sign.lower()):
        raise SimError(10004, f"error sign! origin_string[{origin}]")
    return account


def _ip_limit(state: SimState, host: str) -> Response | None:
    if not state.rate_limits:
        return None
    now = time.monotonic()
    if state.ip_banned_until.get(host, 0.0) > now:
        return PlainTextResponse("access too frequent", status_code=403)
    hits = state.ip_hits[host]
    while hits and hits[0] <= now - state.config.ip_window_s:
        hits.popleft()
    if len(hits) >= state.config.ip_limit:
        state.ip_banned_until[host] = now + state.config.ip_ban_s
        log.warning(
            "IP %s over %d requests / %.0f s: banned for %.0f s",
            host,
            state.config.ip_limit,
            state.config.ip_window_s,
            state.config.ip_ban_s,
        )
        return PlainTextResponse("access too frequent", status_code=403)
    hits.append(now)
    return None


def _uid_limit(state: SimState, account: SimAccount, path: str, category: Any) -> tuple[bool, dict[str, str]]:
    limit = endpoint_limit(path, str(category) if category else None)
    if limit is None or not state.rate_limits:
        return False, {}
    now_ms = state.auth_now_ms()
    hits = state.uid_hits[(account.uid, f"{path}#{category or ''}")]
    while hits and hits[0] <= now_ms - 1000:
        hits.popleft()
    if len(hits) >= limit:
        reset = hits[0] + 1000
        return True, {
            "X-Bapi-Limit": str(limit),
            "X-Bapi-Limit-Status": "0",
            "X-Bapi-Limit-Reset-Timestamp": str(reset),
        }
    hits.append(now_ms)
    remaining = limit - len(hits)
    reset = hits[0] + 1000 if remaining == 0 else now_ms
    return False, {
        "X-Bapi-Limit": str(limit),
        "X-Bapi-Limit-Status": str(remaining),
        "X-Bapi-Limit-Reset-Timestamp": str(reset),
    }


# ------------------------------------------------------------------------------------ handlers


def _h_time(state: SimState, _a: SimAccount | None, _p: dict[str, Any], _now: int) -> dict[str, Any]:
    t = state.auth_now_ms()
    return {"timeSecond": str(t // 1000), "timeNano": str(t * 1_000_000)}


def _category(p: dict[str, Any], default: str | None = None) -> str:
    category = str(p.get("category") or default or "")
    if category not in ("spot", "linear"):
        raise SimError(10001, "params error: category only support spot and linear")
    return category


def _h_instruments(state: SimState, _a: SimAccount | None, p: dict[str, Any], _now: int) -> dict[str, Any]:
    category = _category(p)
    symbol = p.get("symbol")
    status = p.get("status")
    items = [
        inst.to_wire()
        for (cat, sym), inst in sorted(state.engine.instruments.items())
        if cat == category and (not symbol or sym == symbol)
    ]
    if status and status != "Trading":
        items = []
    if category == "spot":
        return {"category": category, "list": items}
    limit = max(1, min(int(p.get("limit") or 500), 1000))
    offset = int(p.get("cursor") or 0)
    page = items[offset : offset + limit]
    cursor = str(offset + limit) if offset + limit < len(items) else ""
    return {"category": category, "list": page, "nextPageCursor": cursor}


def _bar_row(bar: Bar) -> list[str]:
    return [
        str(bar.ts),
        _num(bar.open),
        _num(bar.high),
        _num(bar.low),
        _num(bar.close),
        _num(bar.volume),
        _num(bar.volume * bar.close),
    ]


def _kline_request(state: SimState, p: dict[str, Any]) -> tuple[str, int]:
    symbol = str(p.get("symbol") or "")
    if symbol not in state.replay.tapes:
        raise SimError(10001, "Not supported symbols")
    interval = str(p.get("interval") or "")
    if interval not in _INTERVALS:
        raise SimError(10001, "Invalid period!")
    ims = _interval_ms(interval)
    if ims % state.tf_ms != 0:
        raise SimError(
            10001, f"interval {interval} not available: this simulator replays {state.config.timeframe} bars"
        )
    return symbol, ims


def _h_kline(state: SimState, _a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    category = _category(p, "linear")
    symbol, ims = _kline_request(state, p)
    limit = int(p.get("limit") or 200)
    if not 1 <= limit <= 1000:
        raise SimError(10001, "params error: limit must be between 1 and 1000")
    limit = min(limit, state.config.kline_max_limit)
    start = int(p["start"]) if p.get("start") else None
    end = int(p["end"]) if p.get("end") else None
    bars = state.replay.klines(symbol, ims, start, end, limit, now)
    return {"symbol": symbol, "category": category, "list": [_bar_row(b) for b in bars]}


def _ticker(state: SimState, category: str, symbol: str, now: int) -> dict[str, Any]:
    inst = state.engine.instruments[(category, symbol)]
    tape = state.replay.tapes[symbol]
    last = state.engine.last_price(inst, now)
    bid, ask = state.engine.bid_ask(inst, now)
    prev = tape.price_at(now - 86_400_000)
    rng = tape.range_between(now - 86_400_000, now) or (float(last), float(last))
    i_now, i_then = tape.index_at(now), max(tape.index_at(now - 86_400_000), 0)
    vol = float(np.sum(tape.c.volume[i_then : i_now + 1])) if i_now >= 0 else 0.0
    prev_d = Decimal(repr(prev)) if prev else last
    item: dict[str, Any] = {
        "symbol": symbol,
        "lastPrice": fmt(last),
        "bid1Price": fmt(bid),
        "bid1Size": "1",
        "ask1Price": fmt(ask),
        "ask1Size": "1",
        "prevPrice24h": fmt(prev_d),
        "price24hPcnt": fmt(((last - prev_d) / prev_d).quantize(Decimal("0.000001"))) if prev_d else "0",
        "highPrice24h": _num(rng[1]),
        "lowPrice24h": _num(rng[0]),
        "turnover24h": _num(vol * float(last)),
        "volume24h": _num(vol),
    }
    if category == "linear":
        item.update(
            {
                "markPrice": fmt(last),
                "indexPrice": fmt(last),
                "prevPrice1h": _num(tape.price_at(now - 3_600_000) or float(last)),
                "openInterest": "0",
                "openInterestValue": "0",
                "fundingRate": "0.0001",
                "nextFundingTime": str((now // 28_800_000 + 1) * 28_800_000),
                "predictedDeliveryPrice": "",
                "basisRate": "",
                "deliveryFeeRate": "",
                "deliveryTime": "0",
            }
        )
    else:
        item["usdIndexPrice"] = fmt(last)
    return item


def _h_tickers(state: SimState, _a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    category = _category(p)
    symbol = p.get("symbol")
    if symbol and (category, symbol) not in state.engine.instruments:
        raise SimError(10001, "Not supported symbols")
    symbols = [symbol] if symbol else state.replay.symbols
    items = [_ticker(state, category, s, now) for s in symbols if state.replay.price(s, now) is not None]
    return {"category": category, "list": items}


def _acct(a: SimAccount | None) -> SimAccount:
    assert a is not None
    return a


def _h_create(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    return state.engine.create_order(_acct(a), p, now)


def _h_cancel(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    return state.engine.cancel_order(_acct(a), p, now)


def _h_amend(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    return state.engine.amend_order(_acct(a), p, now)


def _h_cancel_all(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    return state.engine.cancel_all(_acct(a), p, now)


def _h_realtime(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    state.engine.step(now)
    return {
        "list": state.engine.query_orders(_acct(a), p, history=False),
        "nextPageCursor": "",
        "category": p.get("category"),
    }


def _h_history(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    state.engine.step(now)
    return {
        "list": state.engine.query_orders(_acct(a), p, history=True),
        "nextPageCursor": "",
        "category": p.get("category"),
    }


def _h_executions(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    state.engine.step(now)
    _category(p)
    return {"list": state.engine.execution_list(_acct(a), p), "nextPageCursor": "", "category": p.get("category")}


def _h_positions(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    state.engine.step(now)
    return {"list": state.engine.positions(_acct(a), p, now), "nextPageCursor": "", "category": "linear"}


def _h_leverage(state: SimState, a: SimAccount | None, p: dict[str, Any], _now: int) -> dict[str, Any]:
    state.engine.set_leverage(_acct(a), p)
    return {}


def _h_trading_stop(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    state.engine.trading_stop(_acct(a), p, now)
    return {}


def _h_wallet(state: SimState, a: SimAccount | None, p: dict[str, Any], now: int) -> dict[str, Any]:
    state.engine.step(now)
    account_type = p.get("accountType")
    if account_type != "UNIFIED":
        raise SimError(10001, "accountType only support UNIFIED.")
    coins = [c for c in str(p.get("coin") or "").split(",") if c]
    return {"list": [state.engine.wallet(_acct(a), now, coins or None)]}


def _h_account_info(state: SimState, _a: SimAccount | None, _p: dict[str, Any], now: int) -> dict[str, Any]:
    return {
        "unifiedMarginStatus": 4,
        "marginMode": "REGULAR_MARGIN",
        "isMasterTrader": False,
        "spotHedgingStatus": "OFF",
        "updatedTime": str(now),
        "dcpStatus": "OFF",
        "timeWindow": 10,
        "smpGroup": 0,
    }


def _h_query_api(state: SimState, a: SimAccount | None, _p: dict[str, Any], _now: int) -> dict[str, Any]:
    acct = _acct(a)
    return {
        "id": str(acct.uid),
        "note": "exchange-sim",
        "apiKey": acct.api_key,
        "readOnly": 1 if acct.read_only else 0,
        "secret": "",
        "permissions": {
            "ContractTrade": ["Order", "Position"],
            "Spot": ["SpotTrade"],
            "Wallet": ["AccountTransfer"],
            "Options": [],
            "Derivatives": [],
            "CopyTrading": [],
            "BlockTrade": [],
            "Exchange": [],
            "NFT": [],
        },
        "ips": ["*"],
        "type": 1,
        "deadlineDay": 90,
        "expiredAt": "",
        "createdAt": "",
        "unified": 0,
        "uta": 1,
        "userID": acct.uid,
        "inviterID": 0,
        "vipLevel": "No VIP",
        "mktMakerLevel": "0",
        "affiliateID": 0,
        "rsaPublicKey": "",
        "isMaster": True,
        "parentUid": "0",
        "kycLevel": "LEVEL_DEFAULT",
        "kycRegion": "",
    }


def _h_coin_info(state: SimState, _a: SimAccount | None, _p: dict[str, Any], _now: int) -> dict[str, Any]:
    coins = sorted({QUOTE} | {inst.base for inst in state.engine.instruments.values()})
    chain = {
        "chainType": "ETH",
        "confirmation": "6",
        "withdrawFee": "1",
        "depositMin": "0",
        "withdrawMin": "1",
        "chain": "ETH",
        "chainDeposit": "1",
        "chainWithdraw": "1",
        "minAccuracy": "8",
        "withdrawPercentageFee": "0",
        "contractAddress": "",
        "safeConfirmNumber": "6",
    }
    return {"rows": [{"name": c, "coin": c, "remainAmount": "1000000", "chains": [chain]} for c in coins]}


def _h_fee_rate(state: SimState, _a: SimAccount | None, p: dict[str, Any], _now: int) -> dict[str, Any]:
    category = _category(p, "linear")
    fees = state.engine.fees
    symbols = [p["symbol"]] if p.get("symbol") else state.replay.symbols
    return {
        "list": [
            {
                "symbol": s,
                "baseCoin": "",
                "takerFeeRate": fmt(fees.rate(category, False)),
                "makerFeeRate": fmt(fees.rate(category, True)),
            }
            for s in symbols
        ]
    }


# path -> (method, private, write, handler)
_ROUTES: dict[str, tuple[str, bool, bool, Handler]] = {
    "/v5/market/time": ("GET", False, False, _h_time),
    "/v5/market/instruments-info": ("GET", False, False, _h_instruments),
    "/v5/market/kline": ("GET", False, False, _h_kline),
    "/v5/market/tickers": ("GET", False, False, _h_tickers),
    "/v5/order/create": ("POST", True, True, _h_create),
    "/v5/order/cancel": ("POST", True, True, _h_cancel),
    "/v5/order/amend": ("POST", True, True, _h_amend),
    "/v5/order/cancel-all": ("POST", True, True, _h_cancel_all),
    "/v5/order/realtime": ("GET", True, False, _h_realtime),
    "/v5/order/history": ("GET", True, False, _h_history),
    "/v5/execution/list": ("GET", True, False, _h_executions),
    "/v5/position/list": ("GET", True, False, _h_positions),
    "/v5/position/set-leverage": ("POST", True, True, _h_leverage),
    "/v5/position/trading-stop": ("POST", True, True, _h_trading_stop),
    "/v5/account/wallet-balance": ("GET", True, False, _h_wallet),
    "/v5/account/info": ("GET", True, False, _h_account_info),
    "/v5/account/fee-rate": ("GET", True, False, _h_fee_rate),
    "/v5/user/query-api": ("GET", True, False, _h_query_api),
    "/v5/asset/coin/query-info": ("GET", True, False, _h_coin_info),
}


# ------------------------------------------------------------------------------------ websocket


async def _ws_session(state: SimState, websocket: WebSocket, kind: str) -> None:
    if kind not in ("spot", "linear", "private") or time.monotonic() < state.ws_refuse_until:
        await websocket.close(code=1008)
        return
    await websocket.accept()
    state.ws_connects += 1
    conn = _Conn(websocket, kind)
    state.conns.add(conn)
    writer = asyncio.create_task(_ws_writer(conn))
    try:
        while True:
            text = await asyncio.wait_for(websocket.receive_text(), timeout=state.config.ws_idle_timeout_s)
            reply = _ws_op(state, conn, text)
            if reply is not None:
                conn.queue.put_nowait(json.dumps(reply))
    except (WebSocketDisconnect, TimeoutError, RuntimeError):
        pass
    finally:
        state.conns.discard(conn)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        with contextlib.suppress(Exception):
            await websocket.close()


async def _ws_writer(conn: _Conn) -> None:
    while True:
        text = await conn.queue.get()
        await conn.ws.send_text(text)


def _ws_op(state: SimState, conn: _Conn, text: str) -> dict[str, Any] | None:
    try:
        msg = json.loads(text)
    except json.JSONDecodeError:
        return {"success": False, "ret_msg": "Invalid request", "conn_id": conn.conn_id}
    op, req_id = msg.get("op"), msg.get("req_id")
    base = {"conn_id": conn.conn_id, **({"req_id": req_id} if req_id is not None else {})}
    if op == "ping":
        if conn.kind == "private":
            return {**base, "op": "pong", "args": [str(state.auth_now_ms())]}
        return {**base, "success": True, "ret_msg": "pong", "op": "ping"}
    if op == "auth":
        return {**base, "op": "auth", **_ws_auth(state, conn, msg.get("args") or [])}
    if op in ("subscribe", "unsubscribe"):
        args = [str(a) for a in msg.get("args") or []]
        if conn.kind == "private" and conn.account is None:
            return {**base, "op": op, "success": False, "ret_msg": "Request not authorized"}
        bad = [a for a in args if not _topic_ok(state, conn, a)]
        if bad:
            return {**base, "op": op, "success": False, "ret_msg": f"error:handler not found,topic:{bad[0]}"}
        for topic in args:
            if op == "subscribe":
                conn.topics.add(topic)
                if topic.startswith("kline."):
                    _, interval, _symbol = topic.split(".", 2)
                    ims = _interval_ms(interval)
                    conn.kline_last[topic] = (state.market_now_ms() // ims) * ims - ims
            else:
                conn.topics.discard(topic)
        return {**base, "op": op, "success": True, "ret_msg": ""}
    return {**base, "success": False, "ret_msg": f"unknown op {op!r}"}


def _ws_auth(state: SimState, conn: _Conn, args: list[Any]) -> dict[str, Any]:
    if conn.kind != "private" or len(args) != 3:
        return {"success": False, "ret_msg": "Params Error"}
    key, expires, signature = str(args[0]), args[1], str(args[2])
    account = state.engine.accounts.get(key)
    if account is None:
        return {"success": False, "ret_msg": "Invalid apikey"}
    try:
        expires_ms = int(expires)
    except (TypeError, ValueError):
        return {"success": False, "ret_msg": "Params Error"}
    if expires_ms < state.auth_now_ms():
        return {"success": False, "ret_msg": "Request expired"}
    expected = hmac.new(account.secret.encode(), f"GET/realtime{expires_ms}".encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return {"success": False, "ret_msg": "Invalid sign"}
    conn.account = account
    return {"success": True, "ret_msg": ""}


def _topic_ok(state: SimState, conn: _Conn, topic: str) -> bool:
    if conn.kind == "private":
        return topic.split(".")[0] in ("order", "execution", "position", "wallet")
    parts = topic.split(".")
    if parts[0] == "kline" and len(parts) == 3:
        interval, symbol = parts[1], parts[2]
        return interval in _INTERVALS and symbol in state.replay.tapes and _interval_ms(interval) % state.tf_ms == 0
    if parts[0] == "tickers" and len(parts) == 2:
        return parts[1] in state.replay.tapes
    return False


async def _publisher(state: SimState) -> None:
    """Steps the matching engine and pushes public klines/tickers every ``ws_tick_s``."""
    while True:
        await asyncio.sleep(state.config.ws_tick_s)
        try:
            now = state.market_now_ms()
            state.engine.step(now)
            state.flush_changes()
            for conn in list(state.conns):
                if conn.kind != "private":
                    _push_public(state, conn, now)
        except Exception:  # the publisher must never die
            log.exception("exchange-sim publisher failed")


def _push_public(state: SimState, conn: _Conn, now: int) -> None:
    for topic in list(conn.topics):
        parts = topic.split(".")
        if parts[0] == "kline":
            _push_kline(state, conn, topic, parts[1], parts[2], now)
        elif parts[0] == "tickers":
            inst_cat = "spot" if conn.kind == "spot" else "linear"
            if state.replay.price(parts[1], now) is None:
                continue
            item = _ticker(state, inst_cat, parts[1], now)
            if item["lastPrice"] != conn.ticker_last.get(topic):
                conn.ticker_last[topic] = item["lastPrice"]
                msg = {"topic": topic, "type": "snapshot", "data": item, "cs": now, "ts": now}
                conn.queue.put_nowait(json.dumps(msg))


def _kline_item(bar: Bar, ims: int, interval: str, confirm: bool, now: int) -> dict[str, Any]:
    return {
        "start": bar.ts,
        "end": bar.ts + ims - 1,
        "interval": interval,
        "open": _num(bar.open),
        "close": _num(bar.close),
        "high": _num(bar.high),
        "low": _num(bar.low),
        "volume": _num(bar.volume),
        "turnover": _num(bar.volume * bar.close),
        "confirm": confirm,
        "timestamp": min(now, bar.ts + ims - 1),
    }


def _push_kline(state: SimState, conn: _Conn, topic: str, interval: str, symbol: str, now: int) -> None:
    ims = _interval_ms(interval)
    last = conn.kline_last.get(topic, (now // ims) * ims - ims)
    current = (now // ims) * ims
    tape = state.replay.tapes[symbol]
    start = last + ims
    if start < current:
        bars = state.replay.klines(symbol, ims, start, current - 1, 100_000, now)
        for bar in reversed(bars):  # oldest first
            if bar.ts + ims <= now:
                item = _kline_item(bar, ims, interval, True, now)
                conn.queue.put_nowait(json.dumps({"topic": topic, "data": [item], "ts": now, "type": "snapshot"}))
        conn.kline_last[topic] = current - ims
    if current < tape.end_ms:
        partial = state.replay.klines(symbol, ims, current, current, 1, now)
        if partial:
            item = _kline_item(partial[0], ims, interval, False, now)
            key = f"{item['start']}:{item['close']}:{item['high']}:{item['low']}"
            if conn.kline_partial.get(topic) != key:
                conn.kline_partial[topic] = key
                conn.queue.put_nowait(json.dumps({"topic": topic, "data": [item], "ts": now, "type": "snapshot"}))


# --------------------------------------------------------------------------------------- admin


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    return json.loads(raw) if raw.strip() else {}


def _sim(request: Request) -> SimState:
    return request.app.state.sim  # type: ignore[no-any-return]


async def _admin_state(request: Request) -> dict[str, Any]:
    state = _sim(request)
    return {
        **state.engine.state(),
        "auth_time_ms": state.auth_now_ms(),
        "skew_ms": state.skew_ms,
        "requests": dict(state.requests),
        "faults": [asdict(f) for f in state.faults],
        "ws_connections": len(state.conns),
        "ws_connects": state.ws_connects,
    }


async def _admin_clock(request: Request) -> dict[str, Any]:
    """Body: ``speed`` (market ms per wall ms), ``set_ms`` (jump to), ``advance_ms`` (move by)."""
    state, body = _sim(request), await _body(request)
    if "speed" in body:
        state.clock.set_speed(float(body["speed"]))
    if "set_ms" in body:
        state.clock.set(int(body["set_ms"]))
    if "advance_ms" in body:
        state.clock.advance(int(body["advance_ms"]))
    now = state.market_now_ms()
    state.engine.step(now)
    return {"market_time_ms": now}


async def _admin_skew(request: Request) -> dict[str, Any]:
    state = _sim(request)
    state.skew_ms = int((await _body(request)).get("ms", 0))
    return {"skew_ms": state.skew_ms}


async def _admin_add_fault(request: Request) -> dict[str, Any]:
    state = _sim(request)
    state.faults.append(Fault(**await _body(request)))
    return {"faults": len(state.faults)}


async def _admin_clear_faults(request: Request) -> dict[str, Any]:
    state = _sim(request)
    state.faults.clear()
    state.ip_banned_until.clear()
    return {"faults": 0}


async def _admin_ws(request: Request) -> dict[str, Any]:
    """Body: ``drop`` (close every socket, default true), ``refuse_s`` (refuse new ones that long)."""
    state, body = _sim(request), await _body(request)
    if body.get("refuse_s"):
        state.ws_refuse_until = time.monotonic() + float(body["refuse_s"])
    dropped = 0
    if body.get("drop", True):
        for conn in list(state.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(code=1011)
            dropped += 1
    return {"dropped": dropped}


async def _admin_limits(request: Request) -> dict[str, Any]:
    state = _sim(request)
    state.rate_limits = bool((await _body(request)).get("enabled", True))
    state.uid_hits.clear()
    state.ip_hits.clear()
    return {"enabled": state.rate_limits}


async def _admin_account(request: Request) -> dict[str, Any]:
    state, body = _sim(request), await _body(request)
    balances = {k: Decimal(str(v)) for k, v in (body.get("balances") or {QUOTE: "10000"}).items()}
    acct = state.engine.add_account(body["api_key"], body["api_secret"], balances, bool(body.get("read_only")))
    return {"uid": acct.uid}


def _add_admin(app: FastAPI) -> None:
    """The test-only admin API (never part of Bybit's protocol)."""
    app.add_api_route("/sim-admin/state", _admin_state, methods=["GET"])
    app.add_api_route("/sim-admin/clock", _admin_clock, methods=["POST"])
    app.add_api_route("/sim-admin/skew", _admin_skew, methods=["POST"])
    app.add_api_route("/sim-admin/faults", _admin_add_fault, methods=["POST"])
    app.add_api_route("/sim-admin/faults", _admin_clear_faults, methods=["DELETE"])
    app.add_api_route("/sim-admin/ws", _admin_ws, methods=["POST"])
    app.add_api_route("/sim-admin/rate-limits", _admin_limits, methods=["POST"])
    app.add_api_route("/sim-admin/accounts", _admin_account, methods=["POST"])
