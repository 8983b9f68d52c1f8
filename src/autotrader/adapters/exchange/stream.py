"""Bybit v5 WebSocket streams: public klines/tickers and private order/execution/position.

``BybitStream`` keeps one public connection (``/v5/public/{spot|linear}``) and, with keys, one
private connection (``/v5/private``) alive:

* **Heartbeat**: ``{"op":"ping"}`` every ``ping_interval_s`` (20 s, as Bybit asks); a connection
  silent for ``ping_interval_s + pong_timeout_s`` is treated as stalled and replaced.
* **Reconnection** with capped exponential backoff and jitter, then re-authentication,
  re-subscription and a **REST reconciliation**: missed confirmed klines are fetched and emitted
  in order, and ``on_reconnect`` (the robot's order/fill/position reconciliation) is awaited —
  Bybit does not replay private messages.
* **Only confirmed klines** (``confirm=true``) reach ``on_kline``, each bar once, oldest first.
* **REST polling fallback**: while the public socket is down, klines and tickers are polled every
  ``poll_interval_s``; while the private socket is down, ``on_reconnect`` is called at that pace.

Callbacks may be plain functions or coroutines. An exception in a callback is logged and counted;
it does not kill the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import inspect
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autotrader.adapters.exchange import parsers
from autotrader.adapters.exchange.ratelimit import Backoff
from autotrader.domain.candles import Candles
from autotrader.domain.errors import AuthError, ConfigError, ExchangeError
from autotrader.domain.instrument import Market
from autotrader.domain.orders import Fill, Ticker
from autotrader.domain.timeframe import Timeframe

if TYPE_CHECKING:
    from autotrader.adapters.exchange.bybit import BybitConfig, BybitExchange

log = logging.getLogger(__name__)
# websockets logs every frame at DEBUG, the private login (key and signature) among them
_WS_LOG = logging.getLogger("autotrader.adapters.exchange.stream.websockets")
_WS_LOG.setLevel(logging.INFO)

Callback = Callable[..., Any]


@dataclass(frozen=True)
class StreamSettings:
    ping_interval_s: float = 20.0
    pong_timeout_s: float = 10.0
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 30.0
    poll_interval_s: float = 5.0
    auth_expiry_s: float = 10.0
    open_timeout_s: float = 10.0


@dataclass
class StreamStats:
    connects: int = 0
    reconnects: int = 0
    messages: int = 0
    polls: int = 0
    reconciliations: int = 0
    callback_errors: int = 0
    stalls: int = 0


@dataclass
class _Channel:
    name: str  # "public" or "private"
    url: str
    topics: list[str]
    up: bool = False
    down_since: float = field(default_factory=time.monotonic)
    connected_once: bool = False
    ws: Any = None


class BybitStream:
    """Live market data and account events for one market (spot or linear)."""

    def __init__(
        self,
        config: BybitConfig,
        market: Market,
        *,
        rest: BybitExchange | None = None,
        settings: StreamSettings | None = None,
        on_kline: Callback | None = None,
        on_ticker: Callback | None = None,
        on_order: Callback | None = None,
        on_fill: Callback | None = None,
        on_position: Callback | None = None,
        on_reconnect: Callback | None = None,
    ) -> None:
        self.config = config
        self.market = market
        self.rest = rest
        self.settings = settings or StreamSettings()
        self.on_kline, self.on_ticker = on_kline, on_ticker
        self.on_order, self.on_fill, self.on_position = on_order, on_fill, on_position
        self.on_reconnect = on_reconnect
        self.stats = StreamStats()
        self._klines: dict[str, tuple[str, Timeframe]] = {}  # topic -> (symbol, timeframe)
        self._tickers: dict[str, str] = {}  # topic -> symbol
        self._private = False
        self._last_bar: dict[tuple[str, str], int] = {}  # (symbol, tf) -> open time of the last emitted bar
        self._ticker_state: dict[str, dict[str, Any]] = {}
        self._seen_fills: OrderedDict[str, None] = OrderedDict()
        self._stop = asyncio.Event()
        self._channels: list[_Channel] = []
        self._backoff = Backoff(self.settings.reconnect_base_s, self.settings.reconnect_cap_s)

    # ---------------------------------------------------------------------------------- set-up

    def subscribe_klines(self, symbol: str, timeframe: str) -> None:
        tf = Timeframe.parse(timeframe)
        self._klines[f"kline.{parsers.interval_for(tf)}.{symbol.upper()}"] = (symbol.upper(), tf)

    def subscribe_ticker(self, symbol: str) -> None:
        self._tickers[f"tickers.{symbol.upper()}"] = symbol.upper()

    def subscribe_private(self) -> None:
        """Order, execution and position updates (needs API keys)."""
        if not self.config.has_keys:
            raise AuthError("the private stream needs BYBIT_API_KEY and BYBIT_API_SECRET")
        self._private = True

    def last_bar_ms(self, symbol: str, timeframe: str) -> int | None:
        return self._last_bar.get((symbol.upper(), Timeframe.parse(timeframe).name))

    @property
    def public_up(self) -> bool:
        return any(c.up for c in self._channels if c.name == "public")

    @property
    def private_up(self) -> bool:
        return any(c.up for c in self._channels if c.name == "private")

    # ---------------------------------------------------------------------------------- running

    async def run(self) -> None:
        """Run until ``stop()``; ``AuthError`` if the private login is refused, ``ConfigError`` if a
        subscription is (e.g. an unknown symbol). ``public_up``/``private_up`` turn true once the
        subscriptions are confirmed."""
        self._stop.clear()
        channels = []
        public_topics = [*self._klines, *self._tickers]
        if public_topics:
            channels.append(_Channel("public", self.config.ws_public(self.market), public_topics))
        if self._private:
            channels.append(_Channel("private", self.config.ws_private_url, ["order", "execution", "position"]))
        if not channels:
            raise ExchangeError("nothing to stream: subscribe to klines, tickers or the private topics first")
        self._channels = channels
        tasks = [asyncio.create_task(self._keep_connected(c)) for c in channels]
        tasks.append(asyncio.create_task(self._poll_while_down()))
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stop], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            self._stop.set()
            for task in [*tasks]:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            stop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stop

    def stop(self) -> None:
        self._stop.set()

    async def _keep_connected(self, channel: _Channel) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake, WebSocketException

        attempt = 0
        while not self._stop.is_set():
            try:
                async with connect(
                    channel.url,
                    ping_interval=None,  # Bybit wants its own JSON ping
                    open_timeout=self.settings.open_timeout_s,
                    close_timeout=1,
                    max_size=2**22,
                    logger=_WS_LOG,
                ) as ws:
                    channel.ws = ws
                    if channel.name == "private":
                        await self._authenticate(ws)
                    await self._subscribe(ws, channel.topics)
                    channel.up = True
                    attempt = 0
                    self.stats.connects += 1
                    if channel.connected_once:
                        self.stats.reconnects += 1
                        log.info("Bybit %s stream reconnected; reconciling over REST", channel.name)
                        await self._reconcile(channel)
                    channel.connected_once = True
                    await self._read(ws, channel)
            except (AuthError, ConfigError):
                raise
            except (OSError, TimeoutError, InvalidHandshake, WebSocketException, ExchangeError) as e:
                log.warning("Bybit %s stream down: %s", channel.name, e or type(e).__name__)
            finally:
                if channel.up:
                    channel.down_since = time.monotonic()
                channel.up = False
                channel.ws = None
            if self._stop.is_set():
                break
            delay = self._backoff.delay(attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)

    async def _authenticate(self, ws: Any) -> None:
        assert self.config.api_key is not None
        assert self.config.api_secret is not None
        expires = int((time.time() + self.settings.auth_expiry_s) * 1000)
        secret = self.config.api_secret.get_secret_value().encode()
        signature = hmac.new(secret, f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
        await ws.send(json.dumps({"op": "auth", "args": [self.config.api_key.get_secret_value(), expires, signature]}))
        reply = json.loads(await asyncio.wait_for(ws.recv(), timeout=self.settings.open_timeout_s))
        if reply.get("op") == "auth" and not reply.get("success"):
            raise AuthError(f"Bybit refused the private stream login: {reply.get('ret_msg') or 'unknown reason'}")

    async def _subscribe(self, ws: Any, topics: list[str]) -> None:
        """Subscribe and wait for Bybit's confirmations (data arriving meanwhile is dispatched)."""
        pending: set[str] = set()
        for i in range(0, len(topics), 10):  # spot takes at most 10 args per request
            req_id = f"sub-{i}"
            pending.add(req_id)
            await ws.send(json.dumps({"op": "subscribe", "req_id": req_id, "args": topics[i : i + 10]}))
        deadline = time.monotonic() + self.settings.open_timeout_s
        while pending:
            raw = await asyncio.wait_for(ws.recv(), timeout=max(0.01, deadline - time.monotonic()))
            msg = json.loads(raw)
            if msg.get("op") != "subscribe":
                await self._dispatch(msg)
                continue
            if not msg.get("success"):
                raise ConfigError(f"Bybit refused the subscription to {', '.join(topics)}: {msg.get('ret_msg')}")
            req_id = str(msg.get("req_id"))
            if req_id in pending:
                pending.discard(req_id)
            else:  # a server that does not echo req_id: count the confirmation anyway
                pending.pop()

    async def _read(self, ws: Any, channel: _Channel) -> None:
        last_rx = time.monotonic()
        settings = self.settings

        async def heartbeat() -> None:
            n = 0
            while True:
                await asyncio.sleep(settings.ping_interval_s)
                n += 1
                if time.monotonic() - last_rx > settings.ping_interval_s + settings.pong_timeout_s:
                    self.stats.stalls += 1
                    log.warning(
                        "Bybit %s stream silent for %.0f s: reconnecting", channel.name, time.monotonic() - last_rx
                    )
                    await ws.close()
                    return
                await ws.send(json.dumps({"op": "ping", "req_id": f"ping-{n}"}))

        beat = asyncio.create_task(heartbeat())
        try:
            async for raw in ws:
                last_rx = time.monotonic()
                self.stats.messages += 1
                await self._dispatch(json.loads(raw))
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    # ---------------------------------------------------------------------------------- messages

    async def _dispatch(self, msg: dict[str, Any]) -> None:
        topic = str(msg.get("topic") or "")
        if not topic:
            if msg.get("op") == "subscribe" and not msg.get("success"):
                log.error("Bybit refused a subscription: %s", msg.get("ret_msg"))
            return
        if topic.startswith("kline."):
            symbol, tf, candles, confirmed = parsers.parse_ws_kline(msg)
            closed = candles.take(confirmed.nonzero()[0])
            await self._emit_bars(symbol, tf, closed)
        elif topic.startswith("tickers."):
            state = self._ticker_state.setdefault(topic, {})
            state.update({k: v for k, v in (msg.get("data") or {}).items() if v not in (None, "")})
            if self.on_ticker is not None and state.get("lastPrice"):
                await self._call(self.on_ticker, parsers.parse_ws_ticker({**msg, "data": state}, self.market))
        elif topic.split(".")[0] == "order" and self.on_order is not None:
            for order in parsers.parse_ws_orders(msg):
                await self._call(self.on_order, order)
        elif topic.split(".")[0] == "execution":
            for fill in parsers.parse_ws_fills(msg):
                await self._on_fill(fill)
        elif topic.split(".")[0] == "position" and self.on_position is not None:
            for position in parsers.parse_ws_positions(msg):
                await self._call(self.on_position, position)

    async def _emit_bars(self, symbol: str, tf: Timeframe, closed: Candles) -> None:
        """Emit confirmed bars not emitted before, oldest first, each exactly once."""
        if len(closed) == 0:
            return
        key = (symbol, tf.name)
        last = self._last_bar.get(key)
        if last is not None:
            closed = closed.take((closed.ts > last).nonzero()[0])
        if len(closed) == 0:
            return
        self._last_bar[key] = int(closed.ts[-1])
        if self.on_kline is not None:
            await self._call(self.on_kline, symbol, tf.name, closed)

    async def _on_fill(self, fill: Fill) -> None:
        if fill.fill_id in self._seen_fills:
            return
        self._seen_fills[fill.fill_id] = None
        while len(self._seen_fills) > 10_000:
            self._seen_fills.popitem(last=False)
        if self.on_fill is not None:
            await self._call(self.on_fill, fill)

    async def _call(self, callback: Callback, *args: Any) -> None:
        try:
            result = callback(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.stats.callback_errors += 1
            log.exception("stream callback %s failed", getattr(callback, "__name__", callback))

    # ---------------------------------------------------------------------------------- REST side

    async def _reconcile(self, channel: _Channel) -> None:
        if channel.name == "public":
            await self._poll_public(backfill=True)
        elif self.on_reconnect is not None:
            self.stats.reconciliations += 1
            await self._call(self.on_reconnect)

    async def _poll_public(self, backfill: bool = False) -> None:
        """Fetch confirmed klines since the last emitted bar (and tickers) over REST."""
        if self.rest is None:
            return
        self.stats.polls += 1
        for symbol, tf in self._klines.values():
            last = self._last_bar.get((symbol, tf.name))
            if last is None and backfill:
                continue
            try:
                candles = await self.rest.candles(
                    self.market, symbol, tf.name, start_ms=None if last is None else last + tf.ms, limit=1000
                )
            except ExchangeError as e:
                log.warning("polling %s %s klines failed: %s", symbol, tf, e)
                continue
            if last is None and len(candles):
                candles = candles.take([len(candles) - 1])  # first contact: only the newest closed bar
            await self._emit_bars(symbol, tf, candles)
        if not backfill and self.on_ticker is not None:
            for symbol in self._tickers.values():
                try:
                    ticker: Ticker = await self.rest.ticker(self.market, symbol)
                except ExchangeError as e:
                    log.warning("polling the %s ticker failed: %s", symbol, e)
                    continue
                await self._call(self.on_ticker, ticker)

    async def _poll_while_down(self) -> None:
        interval = self.settings.poll_interval_s
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=interval)
            if self._stop.is_set():
                return
            now = time.monotonic()
            for channel in self._channels:
                if channel.up or now - channel.down_since < interval:
                    continue
                if channel.name == "public":
                    await self._poll_public()
                elif self.on_reconnect is not None:
                    self.stats.reconciliations += 1
                    await self._call(self.on_reconnect)
