"""Bybit v5 adapter (spot and USDT linear perpetuals) through ``ccxt.async_support.bybit``.

ccxt signs and sends the requests (its raw v5 endpoints, e.g. ``privatePostV5OrderCreate``); this
module decides what to send, parses the raw answers with ``parsers`` and owns the behaviour that
costs money when wrong:

* **Endpoint**: mainnet, testnet, demo trading or any base URL (``BybitConfig``); for a custom URL
  every entry of ``urls['api']`` is replaced, as ccxt needs.
* **Idempotent orders**: every order carries its client order id as ``orderLinkId``. After an
  ambiguous failure (timeout, 5xx, dropped answer, ``10016``) the order is looked up by that id
  before anything else; if the venue does not have it, it is re-sent with the SAME id (a
  duplicate is refused by Bybit with 110072/170141, which again leads to the lookup). It is never
  re-sent under another id.
* **Rate limits**: ``RateLimiter`` buckets before each request; server headers adopted after;
  ``10006`` waits for the reset and retries; HTTP 403 pauses everything for minutes and says so.
* **Clock**: ``10002`` resynchronises with ``/v5/market/time`` and retries once.
* **Errors**: mapped at this edge to the taxonomy (``errors.py``) with ``raise … from e``; keys
  and secrets never appear in messages or logs (``10004`` echoes the signed string, which holds the
  key: it is redacted, and the ccxt exception chained as ``__cause__`` is a redacted copy).
* **Rounding**: an order ``fit_to_instrument`` already fitted is sent exactly as given (no second
  rounding, no price lookup); any other is fitted here, which rounds to the venue's steps and
  refuses orders below its minimums before anything is sent.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

from autotrader.adapters.exchange import parsers
from autotrader.adapters.exchange.errors import (
    AMEND_NOT_MODIFIED_CODES,
    DUPLICATE_CODES,
    NOT_FOUND_CODES,
    Action,
    AmbiguousOutcome,
    error_for,
    http_error_for,
    lookup,
    ret_code_of,
)
from autotrader.adapters.exchange.ratelimit import Backoff, RateLimiter
from autotrader.domain.candles import Candles
from autotrader.domain.errors import AuthError, ConfigError, ExchangeError, OrderRejected, TemporaryExchangeError
from autotrader.domain.instrument import Instrument, Market
from autotrader.domain.orders import (
    AccountBalance,
    Fill,
    Order,
    OrderAccepted,
    OrderSide,
    OrderSubmitted,
    Position,
    SubmitOrder,
    Ticker,
    TimeInForce,
)
from autotrader.domain.redact import redact, remember_secret, scrub
from autotrader.domain.timeframe import Timeframe
from autotrader.execution.ports import fit_to_instrument, is_fitted

if TYPE_CHECKING:
    from autotrader.config.settings import ExchangeSettings

log = logging.getLogger(__name__)

Environment = Literal["mainnet", "testnet", "demo", "custom"]

_URLS: dict[str, tuple[str, str, str]] = {
    # environment: (REST, public WebSocket base, private WebSocket)
    "mainnet": ("https://api.bybit.com", "wss://stream.bybit.com/v5/public", "wss://stream.bybit.com/v5/private"),
    "testnet": (
        "https://api-testnet.bybit.com",
        "wss://stream-testnet.bybit.com/v5/public",
        "wss://stream-testnet.bybit.com/v5/private",
    ),
    # demo trading: its own REST host and private stream; public data is mainnet's
    "demo": (
        "https://api-demo.bybit.com",
        "wss://stream.bybit.com/v5/public",
        "wss://stream-demo.bybit.com/v5/private",
    ),
}


@dataclass(frozen=True)
class BybitConfig:
    """Where and how to talk to Bybit (or a v5-compatible server). Secrets stay ``SecretStr``."""

    environment: Environment
    rest_url: str
    ws_public_url: str  # base: ``{ws_public_url}/{spot|linear}``
    ws_private_url: str
    api_key: SecretStr | None = field(default=None, repr=False)
    api_secret: SecretStr | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    recv_window_ms: int = 5000
    max_attempts: int = 4  # per request, for retryable failures
    backoff: Backoff = field(default_factory=Backoff)
    lookup_attempts: int = 3  # looking an order up after an ambiguous failure
    lookup_delay_s: float = 0.25
    rate_limits: bool = True
    ip_ban_s: float = 600.0
    max_rate_wait_s: float = 30.0
    price_cache_s: float = 60.0  # how old a cached price may be for the pre-send notional check

    @classmethod
    def for_environment(
        cls,
        environment: Environment = "mainnet",
        api_key: str | SecretStr | None = None,
        api_secret: str | SecretStr | None = None,
        **options: Any,
    ) -> BybitConfig:
        rest, ws_public, ws_private = _URLS[environment]
        return cls(environment, rest, ws_public, ws_private, _secret(api_key), _secret(api_secret), **options)

    @classmethod
    def custom(
        cls, url: str, api_key: str | SecretStr | None = None, api_secret: str | SecretStr | None = None, **options: Any
    ) -> BybitConfig:
        """Any v5-compatible server, e.g. ``http://127.0.0.1:8765`` (the local simulator)."""
        rest = url.rstrip("/")
        if not re.match(r"^https?://[^/\s]+$", rest):
            raise ConfigError(f"exchange URL {url!r}: expected http(s)://host[:port] without a path")
        ws = "ws" + rest[4:]
        return cls(
            "custom", rest, f"{ws}/v5/public", f"{ws}/v5/private", _secret(api_key), _secret(api_secret), **options
        )

    @classmethod
    def from_settings(
        cls,
        settings: ExchangeSettings,
        *,
        url: str | None = None,
        testnet: bool = False,
        demo: bool = False,
        secrets_file: Path | None = None,
        **options: Any,
    ) -> BybitConfig:
        """From ``ExchangeSettings`` (keys from ``BYBIT_API_KEY``/``BYBIT_API_SECRET``) and CLI choices.

        ``url`` (or ``BYBIT_BASE_URL``) wins over ``testnet``/``demo``; a ``secrets_file`` with
        ``BYBIT_API_KEY=…``/``BYBIT_API_SECRET=…`` lines supplies keys the environment lacks.
        """
        if testnet and demo:
            raise ConfigError("--testnet and --demo exclude each other (demo trading runs on mainnet)")
        key, secret = settings.api_key, settings.api_secret
        if secrets_file is not None:
            file_key, file_secret = load_secrets_file(secrets_file)
            key, secret = key or file_key, secret or file_secret
        base = url or settings.base_url
        if base:
            if testnet or demo:
                raise ConfigError("--exchange-url cannot be combined with --testnet or --demo")
            return cls.custom(base, key, secret, **options)
        return cls.for_environment("testnet" if testnet else "demo" if demo else "mainnet", key, secret, **options)

    @property
    def has_keys(self) -> bool:
        return bool(self.api_key and self.api_secret and self.api_key.get_secret_value())

    def ws_public(self, market: Market) -> str:
        return f"{self.ws_public_url}/{market}"


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value) if value else None


def load_secrets_file(path: Path) -> tuple[SecretStr | None, SecretStr | None]:
    """Read ``BYBIT_API_KEY``/``BYBIT_API_SECRET`` from a ``KEY=VALUE`` file (``#`` comments)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"secrets file {path}: {e.strerror}") from None
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return _secret(values.get("BYBIT_API_KEY")), _secret(values.get("BYBIT_API_SECRET"))


# ------------------------------------------------------------------------------- ccxt plumbing


@dataclass
class _Record:
    """What ccxt saw of one response (filled in by ``handle_errors``, per asyncio context)."""

    status: int | None = None
    headers: Mapping[str, str] | None = None
    ret_code: int | None = None
    ret_msg: str = ""


_RECORD: contextvars.ContextVar[_Record | None] = contextvars.ContextVar("bybit_response", default=None)
_CLIENT_CLASS: Any = None


def _client_class() -> Any:
    """``ccxt.async_support.bybit`` with a hook that records each answer's status, headers and code."""
    global _CLIENT_CLASS
    if _CLIENT_CLASS is None:
        import ccxt.async_support as ccxt_async

        class _RecordingBybit(ccxt_async.bybit):  # type: ignore[misc, name-defined]
            def handle_errors(self, code, reason, url, method, headers, body, response, req_headers, req_body):  # type: ignore[no-untyped-def]
                record = _RECORD.get()
                if record is not None:
                    record.status = code
                    record.headers = headers
                    if isinstance(response, dict) and "retCode" in response:
                        record.ret_code = int(response["retCode"])
                        record.ret_msg = str(response.get("retMsg", ""))
                return super().handle_errors(code, reason, url, method, headers, body, response, req_headers, req_body)

        _CLIENT_CLASS = _RecordingBybit
    return _CLIENT_CLASS


_ORIGIN = re.compile(r"origin_string\[[^\]]*\]")
_QUIET_CCXT = logging.getLogger("autotrader.adapters.exchange.ccxt")
_QUIET_CCXT.setLevel(logging.WARNING)


@dataclass
class _Failure:
    action: Action | Literal["ban"]
    error: ExchangeError


_ORDER_PATHS = ("/v5/order/create", "/v5/order/cancel", "/v5/order/amend")
_BYBIT_SIDE = {OrderSide.BUY: "Buy", OrderSide.SELL: "Sell"}
_BYBIT_TIF = {TimeInForce.GTC: "GTC", TimeInForce.IOC: "IOC", TimeInForce.FOK: "FOK", TimeInForce.POST_ONLY: "PostOnly"}


def _wire(value: Decimal) -> str:
    return format(value, "f")


def _trigger_direction(order: SubmitOrder, trigger: Decimal, reference: Decimal) -> int:
    """Bybit's ``triggerDirection``: the order's own (what it is for), else inferred from the price."""
    if order.trigger_direction is not None:
        return int(order.trigger_direction)
    return 1 if trigger > reference else 2


class BybitExchange:
    """``ExchangePort`` for Bybit v5. Use ``async with BybitExchange(config) as ex:`` or ``await ex.close()``."""

    venue = "bybit"

    def __init__(
        self,
        config: BybitConfig,
        *,
        limiter: RateLimiter | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self.limiter = limiter or RateLimiter(ip_ban_s=config.ip_ban_s, max_wait_s=config.max_rate_wait_s)
        options = {
            "apiKey": config.api_key.get_secret_value() if config.api_key else "",
            "secret": config.api_secret.get_secret_value() if config.api_secret else "",
            "enableRateLimit": False,  # ours is per endpoint and honours the server's headers
            "timeout": int(config.timeout_s * 1000),
            "options": {"recvWindow": config.recv_window_ms, "adjustForTimeDifference": False, "timeDifference": 0},
        }
        for value in (options["apiKey"], options["secret"]):
            remember_secret(value)  # masked in every log line and error text of this process
        self._client = _client_class()(options)
        # ccxt logs every request's headers (the API key among them) at DEBUG: never let it through
        self._client.logger = _QUIET_CCXT
        self._client.timeout_on_exit = 0
        for name in list(self._client.urls["api"]):
            self._client.urls["api"][name] = config.rest_url
        self._instruments: dict[Market, tuple[float, dict[str, Instrument]]] = {}
        self._instruments_lock = asyncio.Lock()
        self._prices: dict[tuple[Market, str], tuple[float, Decimal]] = {}
        self.clock_offset_ms = 0.0

    async def __aenter__(self) -> BybitExchange:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.close()

    # ------------------------------------------------------------------------------ requests

    def _secrets(self) -> list[str]:
        return [s.get_secret_value() for s in (self.config.api_key, self.config.api_secret) if s is not None]

    def _redact(self, text: str) -> str:
        return redact(_ORIGIN.sub("origin_string[…]", text), self._secrets())

    def _scrub(self, cause: Exception | None) -> Exception | None:
        """The ccxt exception, redacted (its text and headers may hold the key): ``raise … from self._scrub(e)``."""
        if cause is None:
            return None
        copy = scrub(cause, self._secrets())
        if copy is not None:
            copy.args = (_ORIGIN.sub("origin_string[…]", str(copy)),)
        return copy

    def _classify(self, e: Exception, record: _Record, path: str) -> _Failure:
        import ccxt

        order = path in _ORDER_PATHS
        if record.ret_code not in (None, 0):
            assert record.ret_code is not None
            entry = lookup(record.ret_code)
            return _Failure(entry.action, error_for(record.ret_code, self._redact(record.ret_msg), path, order=order))
        status = record.status
        if status == 403:
            return _Failure("ban", http_error_for(403, path, self.config.ip_ban_s))
        if status == 429:
            return _Failure(Action.WAIT, http_error_for(429, path))
        if status is not None and (status >= 500 or status == 408):
            return _Failure(Action.RETRY, AmbiguousOutcome(f"{path}: Bybit HTTP {status}: the exchange is unavailable"))
        if status is not None and status >= 400:
            return _Failure(Action.RAISE, http_error_for(status, path))
        if isinstance(e, ccxt.RequestTimeout):
            return _Failure(
                Action.RETRY, AmbiguousOutcome(f"{path}: no answer from Bybit within {self.config.timeout_s:g} s")
            )
        if isinstance(e, ccxt.NetworkError):
            return _Failure(
                Action.RETRY,
                AmbiguousOutcome(f"{path}: connection to {self.config.rest_url} failed ({type(e).__name__})"),
            )
        if isinstance(e, ccxt.AuthenticationError):
            return _Failure(Action.RAISE, AuthError(f"{path}: API key and secret are required for this call"))
        return _Failure(Action.RAISE, ExchangeError(f"{path}: {self._redact(str(e))[:300]}"))

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, Any],
        *,
        category: str | None = None,
        retry_temporary: bool = True,
    ) -> dict[str, Any]:
        """Send one v5 request through ccxt with limits, retries, clock resync and error mapping."""
        resynced = False
        attempt = 0
        while True:
            attempt += 1
            payload, failure, cause, record = await self._attempt(method, path, params, category)
            if failure is None:
                return payload
            resynced = await self._recover(failure, cause, record, path, category, attempt, resynced, retry_temporary)

    async def _attempt(
        self, method: str, path: str, params: dict[str, Any], category: str | None
    ) -> tuple[dict[str, Any], _Failure | None, Exception | None, _Record]:
        import ccxt

        ticket = await self.limiter.acquire(path, category) if self.config.rate_limits else None
        record = _Record()
        token = _RECORD.set(record)
        try:
            payload: dict[str, Any] = await getattr(self._client, method)(params)
        except ccxt.BaseError as e:
            return {}, self._classify(e, record, path), e, record
        finally:
            _RECORD.reset(token)
            if ticket is not None:
                self.limiter.release(ticket)
        if self.config.rate_limits:
            self.limiter.observe(path, category, record.headers)
        return payload, None, None, record

    async def _recover(
        self,
        failure: _Failure,
        cause: Exception | None,
        record: _Record,
        path: str,
        category: str | None,
        attempt: int,
        resynced: bool,
        retry_temporary: bool,
    ) -> bool:
        """Wait, resync or back off so the request can be retried (returns ``resynced``), or raise."""
        if self.config.rate_limits and failure.action is not Action.WAIT:
            self.limiter.observe(path, category, record.headers)
        last = attempt >= self.config.max_attempts
        if failure.action == "ban":
            self.limiter.ban(self.config.ip_ban_s)
        elif failure.action is Action.WAIT and not last:
            wait = self.limiter.on_rate_limited(path, category, record.headers)
            if not self.config.rate_limits:  # nobody else will hold the next request back
                await self._sleep(wait)
            return resynced
        elif failure.action is Action.RESYNC and not resynced:
            await self.sync_clock()
            return True
        elif failure.action is Action.RESYNC:
            raise TemporaryExchangeError(
                f"{failure.error}; still outside the receive window after resynchronising "
                f"(clock offset {self.clock_offset_ms:+.0f} ms): check the system clock"
            ) from self._scrub(cause)
        elif failure.action is Action.RETRY and retry_temporary and not last:
            delay = self.config.backoff.delay(attempt - 1)
            log.warning(
                "%s (attempt %d of %d); retrying in %.2f s", failure.error, attempt, self.config.max_attempts, delay
            )
            await self._sleep(delay)
            return resynced
        raise failure.error from self._scrub(cause)

    # ------------------------------------------------------------------------------ clock

    async def server_time_ms(self) -> int:
        return parsers.parse_server_time(await self._call("publicGetV5MarketTime", "/v5/market/time", {}))

    async def sync_clock(self) -> float:
        """Measure the server clock against ours and sign with it from now on; returns the offset (ms)."""
        before = time.time() * 1000
        server = await self.server_time_ms()
        after = time.time() * 1000
        offset = server - (before + after) / 2
        self.clock_offset_ms = offset
        self._client.options["timeDifference"] = int(-offset)  # ccxt signs with now - timeDifference
        self.limiter.server_offset_ms = offset
        log.warning("clock resynchronised with Bybit: server is %+.0f ms from the local clock", offset)
        return offset

    # ------------------------------------------------------------------------------ market data

    async def instruments(self, market: Market, symbols: Sequence[str] | None = None) -> dict[str, Instrument]:
        async with self._instruments_lock:
            cached = await self._load_instruments(market)
        everything = cached[1]
        if symbols is None:
            return dict(everything)
        return {s: everything[s] for s in (x.upper() for x in symbols) if s in everything}

    async def _load_instruments(self, market: Market) -> tuple[float, dict[str, Instrument]]:
        cached = self._instruments.get(market)
        if cached is None or time.monotonic() - cached[0] > 3600:
            found: dict[str, Instrument] = {}
            cursor: str | None = None
            for _ in range(100):
                params: dict[str, Any] = {"category": market}
                if market != "spot":
                    params["limit"] = 1000
                if cursor:
                    params["cursor"] = cursor
                payload = await self._call("publicGetV5MarketInstrumentsInfo", "/v5/market/instruments-info", params)
                found.update(parsers.parse_instruments(payload, market))
                cursor = parsers.next_cursor(payload)
                if not cursor:
                    break
            cached = self._instruments[market] = (time.monotonic(), found)
        return cached

    async def instrument(self, market: Market, symbol: str) -> Instrument:
        """One instrument; ``ConfigError`` naming the symbol when Bybit does not list it."""
        found = (await self.instruments(market, [symbol])).get(symbol.upper())
        if found is None:
            import difflib

            close = difflib.get_close_matches(symbol.upper(), list(await self.instruments(market)), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ConfigError(f"unknown symbol {symbol!r} on Bybit {market}{hint}")
        return found

    async def kline_page(
        self,
        market: Market,
        symbol: str,
        timeframe: str | Timeframe,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 1000,
    ) -> tuple[Candles, int | None]:
        """One ``kline`` request: closed bars (oldest first) and the server time of the answer."""
        params: dict[str, Any] = {
            "category": market,
            "symbol": symbol.upper(),
            "interval": parsers.interval_for(timeframe),
        }
        if start_ms is not None:
            params["start"] = int(start_ms)
        if end_ms is not None:
            params["end"] = int(end_ms)
        params["limit"] = int(limit)
        payload = await self._call("publicGetV5MarketKline", "/v5/market/kline", params)
        candles = parsers.parse_kline(payload, timeframe)
        if len(candles):
            self._prices[(market, symbol.upper())] = (time.monotonic(), Decimal(repr(float(candles.close[-1]))))
        return candles, parsers.envelope_time_ms(payload)

    async def candles(
        self,
        market: Market,
        symbol: str,
        timeframe: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 200,
    ) -> Candles:
        candles, _ = await self.kline_page(market, symbol, timeframe, start_ms, end_ms, limit)
        return candles

    async def ticker(self, market: Market, symbol: str) -> Ticker:
        payload = await self._call(
            "publicGetV5MarketTickers", "/v5/market/tickers", {"category": market, "symbol": symbol.upper()}
        )
        found = parsers.parse_tickers(payload, market).get(symbol.upper())
        if found is None:
            raise ExchangeError(f"Bybit sent no ticker for {symbol} ({market})")
        self._prices[(market, found.symbol)] = (time.monotonic(), found.last)
        return found

    async def _reference_price(self, market: Market, symbol: str) -> Decimal:
        cached = self._prices.get((market, symbol))
        if cached is not None and time.monotonic() - cached[0] <= self.config.price_cache_s:
            return cached[1]
        return (await self.ticker(market, symbol)).last

    # ------------------------------------------------------------------------------ account

    async def balance(self) -> AccountBalance:
        payload = await self._call(
            "privateGetV5AccountWalletBalance", "/v5/account/wallet-balance", {"accountType": "UNIFIED"}
        )
        return parsers.parse_balance(payload)

    async def positions(self, symbol: str | None = None) -> list[Position]:
        params: dict[str, Any] = {"category": "linear"}
        if symbol:
            params["symbol"] = symbol.upper()
        else:
            params["settleCoin"] = "USDT"
            params["limit"] = 200
        payload = await self._call("privateGetV5PositionList", "/v5/position/list", params, category="linear")
        found = parsers.parse_positions(payload)
        return found if symbol else [p for p in found if not p.is_flat]

    async def set_leverage(self, symbol: str, leverage: Decimal) -> None:
        """Set a perpetual's leverage (both sides); "not modified" counts as success."""
        value = _wire(leverage)
        params = {"category": "linear", "symbol": symbol.upper(), "buyLeverage": value, "sellLeverage": value}
        try:
            await self._call("privatePostV5PositionSetLeverage", "/v5/position/set-leverage", params, category="linear")
        except ExchangeError as e:
            if ret_code_of(e) not in (110043,):
                raise

    # ------------------------------------------------------------------------------ orders

    def _order_params(self, order: SubmitOrder, reference: Decimal) -> dict[str, Any]:
        p: dict[str, Any] = {
            "category": order.market,
            "symbol": order.symbol,
            "side": _BYBIT_SIDE[order.side],
            "orderType": "Limit" if order.type.has_price else "Market",
            "qty": _wire(order.qty),
            "orderLinkId": order.client_order_id,
        }
        if order.market == "spot" and not order.type.has_price:
            p["marketUnit"] = "baseCoin"  # qty in the base coin, never the quote default of market buys
        if order.price is not None:
            p["price"] = _wire(order.price)
        if order.type.has_price:
            p["timeInForce"] = _BYBIT_TIF[order.time_in_force]
        if order.trigger_price is not None:
            p["triggerPrice"] = _wire(order.trigger_price)
            p["triggerDirection"] = _trigger_direction(order, order.trigger_price, reference)
            p["triggerBy"] = "LastPrice"
            if order.market == "spot":
                p["orderFilter"] = "StopOrder"
        if order.market == "linear":
            p["positionIdx"] = 0
            if order.reduce_only:
                p["reduceOnly"] = True
        if order.take_profit is not None or order.stop_loss is not None:
            if order.market == "linear":
                p["tpslMode"] = "Full"
            if order.take_profit is not None:
                p["takeProfit"] = _wire(order.take_profit)
                p["tpTriggerBy"] = "LastPrice"
            if order.stop_loss is not None:
                p["stopLoss"] = _wire(order.stop_loss)
                p["slTriggerBy"] = "LastPrice"
        return p

    async def prepare(self, order: SubmitOrder) -> SubmitOrder:
        """``order`` as it will be sent; ``OrderRejected`` if below the instrument's minimums.

        An order already fitted to the instrument's current rules (``is_fitted``) is sent exactly as
        given, with no price lookup; any other is fitted here (a market order's notional is checked
        at the last price: cached, or one ticker request) and a change is logged.
        """
        instrument = await self.instrument(order.market, order.symbol)
        if is_fitted(order, instrument):
            return order
        reference = order.price if order.price is not None else await self._reference_price(order.market, order.symbol)
        fitted = fit_to_instrument(order, instrument, reference)
        if fitted.qty != order.qty or fitted.price != order.price:
            log.info(
                "order %s rounded to the venue's steps: qty %s -> %s, price %s -> %s",
                order.client_order_id,
                order.qty,
                fitted.qty,
                order.price,
                fitted.price,
                extra={"symbol": order.symbol, "client_order_id": order.client_order_id},
            )
        return fitted

    async def create_order(self, order: SubmitOrder) -> Order:
        fitted = await self.prepare(order)
        infer_direction = fitted.trigger_price is not None and fitted.trigger_direction is None
        reference = await self._reference_price(fitted.market, fitted.symbol) if infer_direction else Decimal(0)
        params = self._order_params(fitted, reference)
        bind = {"symbol": fitted.symbol, "client_order_id": fitted.client_order_id}
        last_error: Exception | None = None
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                payload = await self._call(
                    "privatePostV5OrderCreate",
                    "/v5/order/create",
                    params,
                    category=fitted.market,
                    retry_temporary=False,
                )
            except AmbiguousOutcome as e:
                last_error = e
                log.warning("order %s: %s; looking it up before deciding", fitted.client_order_id, e, extra=bind)
                found = await self._lookup_after_ambiguity(fitted)
                if found is not None:
                    return found
                if attempt < self.config.max_attempts:
                    await self._sleep(self.config.backoff.delay(attempt - 1))
                continue
            except OrderRejected as e:
                if ret_code_of(e) not in DUPLICATE_CODES:
                    raise
                log.warning(
                    "order %s: Bybit already has this id; adopting the existing order",
                    fitted.client_order_id,
                    extra=bind,
                )
                found = await self._lookup_after_ambiguity(fitted)
                if found is not None:
                    return found
                raise AmbiguousOutcome(
                    f"order {fitted.client_order_id}: Bybit reports the id as used but does not list the order; "
                    "look it up again before placing anything for this decision"
                ) from e
            order_id, _ = parsers.parse_order_ack(payload)
            ts = parsers.envelope_time_ms(payload) or int(time.time() * 1000)
            acked = Order.from_command(fitted, ts)
            acked = acked.apply(OrderSubmitted(fitted.client_order_id, ts))
            acked = acked.apply(OrderAccepted(fitted.client_order_id, ts, order_id))
            log.info("order %s accepted by Bybit as %s", fitted.client_order_id, order_id, extra=bind)
            return acked
        raise AmbiguousOutcome(
            f"order {fitted.client_order_id}: outcome unknown after {self.config.max_attempts} attempts "
            f"({last_error}); look it up by client order id before placing anything for this decision"
        ) from last_error

    async def _lookup_after_ambiguity(self, order: SubmitOrder) -> Order | None:
        for attempt in range(self.config.lookup_attempts):
            try:
                found = await self.order_by_client_id(order.market, order.symbol, order.client_order_id)
            except TemporaryExchangeError as e:
                log.warning("looking up order %s failed: %s", order.client_order_id, e)
                found = None
            if found is not None:
                log.info(
                    "order %s found at Bybit (%s) after an ambiguous failure",
                    order.client_order_id,
                    found.status,
                    extra={"symbol": order.symbol, "client_order_id": order.client_order_id},
                )
                return found
            if attempt + 1 < self.config.lookup_attempts:
                await self._sleep(self.config.lookup_delay_s * (attempt + 1))
        return None

    async def request_cancel(self, market: Market, symbol: str, client_order_id: str) -> bool:
        """Ask the venue to cancel; ``True`` when it accepted (retCode 0), ``False`` when it has no open
        order by that id (already filled, cancelled, or never placed: 110001, 170213, ...)."""
        params = {"category": market, "symbol": symbol.upper(), "orderLinkId": client_order_id}
        try:
            await self._call("privatePostV5OrderCancel", "/v5/order/cancel", params, category=market)
        except OrderRejected as e:
            if ret_code_of(e) not in NOT_FOUND_CODES:
                raise
            return False
        return True

    async def amend_trigger(self, market: Market, symbol: str, client_order_id: str, trigger_price: Decimal) -> bool:
        """``POST /v5/order/amend`` with the new ``triggerPrice`` (rounded to the tick).

        ``True``: accepted, or 34040 "not modified" (it already has that price). ``False``: no open
        order by that id (110001, 170213, 110008: filled, triggered or cancelled). Other refusals
        (10001 bad price, ...) raise ``OrderRejected``; the order then still rests unchanged.
        """
        instrument = await self.instrument(market, symbol)
        tick = instrument.tick_size
        price = tick * round(trigger_price / tick) if tick > 0 else trigger_price
        params = {
            "category": market,
            "symbol": symbol.upper(),
            "orderLinkId": client_order_id,
            "triggerPrice": _wire(price),
        }
        try:
            payload = await self._call("privatePostV5OrderAmend", "/v5/order/amend", params, category=market)
        except OrderRejected as e:
            code = ret_code_of(e)
            if code in AMEND_NOT_MODIFIED_CODES:
                return True
            if code in NOT_FOUND_CODES:
                return False
            raise
        result = payload.get("result") if isinstance(payload, dict) else None
        answered = str(result.get("orderLinkId") or "") if isinstance(result, dict) else ""
        if answered != client_order_id:
            raise ExchangeError(
                f"amend of {client_order_id}: Bybit answered for order {answered or 'none'!r}, not ours; "
                "the trigger price is not known to have changed"
            )
        log.info(
            "order %s: trigger price amended to %s",
            client_order_id,
            price,
            extra={"symbol": symbol, "client_order_id": client_order_id},
        )
        return True

    async def cancel_order(self, market: Market, symbol: str, client_order_id: str) -> Order | None:
        await self.request_cancel(market, symbol, client_order_id)
        return await self.order_by_client_id(market, symbol, client_order_id)

    async def open_orders(self, market: Market, symbol: str | None = None) -> list[Order]:
        params: dict[str, Any] = {"category": market, "openOnly": 0, "limit": 50}
        if symbol:
            params["symbol"] = symbol.upper()
        elif market == "linear":
            params["settleCoin"] = "USDT"
        orders: list[Order] = []
        for _ in range(100):
            payload = await self._call("privateGetV5OrderRealtime", "/v5/order/realtime", params, category=market)
            orders.extend(o for o in parsers.parse_orders(payload, market) if o.is_open)
            cursor = parsers.next_cursor(payload)
            if not cursor:
                break
            params["cursor"] = cursor
        return orders

    async def order_by_client_id(self, market: Market, symbol: str, client_order_id: str) -> Order | None:
        params = {"category": market, "symbol": symbol.upper(), "orderLinkId": client_order_id}
        for method, path in (
            ("privateGetV5OrderRealtime", "/v5/order/realtime"),
            ("privateGetV5OrderHistory", "/v5/order/history"),
        ):
            payload = await self._call(method, path, dict(params), category=market)
            found = [o for o in parsers.parse_orders(payload, market) if o.client_order_id == client_order_id]
            if found:
                return found[0]
        return None

    async def fills(
        self,
        market: Market,
        symbol: str | None = None,
        since_ms: int | None = None,
        client_order_id: str | None = None,
    ) -> list[Fill]:
        params: dict[str, Any] = {"category": market, "limit": 100}
        if symbol:
            params["symbol"] = symbol.upper()
        if since_ms is not None:
            params["startTime"] = int(since_ms)
        if client_order_id:
            params["orderLinkId"] = client_order_id
        out: list[Fill] = []
        for _ in range(100):
            payload = await self._call("privateGetV5ExecutionList", "/v5/execution/list", params, category=market)
            out.extend(parsers.parse_fills(payload, market))
            cursor = parsers.next_cursor(payload)
            if not cursor:
                break
            params["cursor"] = cursor
        unique = {f.fill_id: f for f in out}
        return sorted(unique.values(), key=lambda f: f.ts_ms)
