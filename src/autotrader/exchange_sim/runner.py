"""Start and stop a simulator from Python: in a background thread or as a subprocess.

    with SimServer(config).start() as sim:       # binds 127.0.0.1 on a free port
        exchange = BybitExchange(BybitConfig.custom(sim.url, key, secret))
        sim.admin.advance(60_000)                # move the market clock one minute
        ...

Both runners expose ``url`` (REST base), ``ws_url`` and an ``admin`` client for the test-only
admin API (``SimConfig.admin`` must be on for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from autotrader.domain.candles import SeriesKey
from autotrader.domain.errors import DataError
from autotrader.exchange_sim.app import SimConfig, SimState, create_app
from autotrader.marketdata.store import CandleStore


def sim_candles_from_store(
    store: CandleStore, exchange: str, timeframe: str, symbols: Sequence[str] | None = None
) -> dict[str, Any]:
    """Candles to replay: every stored symbol of ``exchange``/``timeframe`` (or just ``symbols``)."""
    wanted = {s.upper().replace("/", "") for s in symbols} if symbols else None
    keys = [
        k
        for k in store.keys()
        if k.exchange == exchange.lower()
        and k.timeframe == SeriesKey.of(exchange, "X", timeframe).timeframe
        and (wanted is None or k.symbol in wanted)
    ]
    if wanted:
        missing = wanted - {k.symbol for k in keys}
        if missing:
            raise DataError(
                f"no {timeframe} candles for {', '.join(sorted(missing))} on {exchange} in the store "
                "(see 'autotrader data list')"
            )
    if not keys:
        raise DataError(
            f"the store holds no {timeframe} candles from {exchange} to replay (see 'autotrader data list')"
        )
    return {k.symbol: store.read(k) for k in keys}


class SimAdmin:
    """Client of the simulator's admin API (``/sim-admin/...``)."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self._http = httpx.Client(base_url=base_url, timeout=10.0)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: Mapping[str, Any]) -> Any:
        r = self._http.post(path, json=dict(body))
        r.raise_for_status()
        return r.json()

    def state(self) -> dict[str, Any]:
        r = self._http.get("/sim-admin/state")
        r.raise_for_status()
        return r.json()

    def market_time_ms(self) -> int:
        return int(self._post("/sim-admin/clock", {})["market_time_ms"])

    def advance(self, ms: int) -> int:
        """Move the market clock forward (matching and WebSocket pushes follow)."""
        return int(self._post("/sim-admin/clock", {"advance_ms": ms})["market_time_ms"])

    def set_time(self, ms: int) -> int:
        return int(self._post("/sim-admin/clock", {"set_ms": ms})["market_time_ms"])

    def set_speed(self, speed: float) -> int:
        return int(self._post("/sim-admin/clock", {"speed": speed})["market_time_ms"])

    def skew(self, ms: int) -> None:
        """Shift the simulator's auth clock (``market/time`` and the receive-window check)."""
        self._post("/sim-admin/skew", {"ms": ms})

    def fault(self, kind: str, **options: Any) -> None:
        """Inject a fault: see ``autotrader.exchange_sim.app.Fault``."""
        self._post("/sim-admin/faults", {"kind": kind, **options})

    def clear_faults(self) -> None:
        self._http.delete("/sim-admin/faults").raise_for_status()

    def drop_websockets(self, refuse_s: float = 0.0) -> int:
        """Close every WebSocket; with ``refuse_s`` also refuse new ones for that long."""
        return int(self._post("/sim-admin/ws", {"drop": True, "refuse_s": refuse_s})["dropped"])

    def rate_limits(self, enabled: bool) -> None:
        self._post("/sim-admin/rate-limits", {"enabled": enabled})

    def add_account(
        self, api_key: str, api_secret: str, balances: Mapping[str, str] | None = None, read_only: bool = False
    ) -> int:
        body = {
            "api_key": api_key,
            "api_secret": api_secret,
            "balances": dict(balances or {"USDT": "10000"}),
            "read_only": read_only,
        }
        return int(self._post("/sim-admin/accounts", body)["uid"])


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed: the stock selector loop in a side thread answers loopback requests ~40 ms late."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class SimServer:
    """A simulator served by uvicorn in a background thread (its own event loop)."""

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.host = host
        self._requested_port = port
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sock: socket.socket | None = None
        self._admin: SimAdmin | None = None
        self._error: BaseException | None = None
        self.app = create_app(config)
        self.port = 0

    @property
    def state(self) -> SimState:
        """The live state (touch it only from the server thread, or via ``call``)."""
        return self.app.state.sim  # type: ignore[no-any-return]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def admin(self) -> SimAdmin:
        if self._admin is None:
            self._admin = SimAdmin(self.url)
        return self._admin

    def start(self, timeout_s: float = 15.0) -> SimServer:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            access_log=False,
            ws="websockets-sansio",
            lifespan="on",
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=f"exchange-sim:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"exchange-sim failed to start: {self._error}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("exchange-sim did not start in time")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        loop = _new_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._server.serve(sockets=[self._sock]))
        except BaseException as e:  # reported to start()/stop()
            self._error = e
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the server's loop and return its result (thread-safe state access)."""
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> SimServer:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


_LISTENING = re.compile(r"listening on (http://[0-9.]+:(\d+))")


class SimProcess:
    """``autotrader exchange-sim`` as a child process (started with ``--port 0``); stop it with ``stop``."""

    def __init__(self, args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
        self.args = list(args)
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""
        self.port = 0
        self._admin: SimAdmin | None = None

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)

    @property
    def admin(self) -> SimAdmin:
        if self._admin is None:
            self._admin = SimAdmin(self.url)
        return self._admin

    def start(self, timeout_s: float = 60.0) -> SimProcess:
        cmd = [sys.executable, "-m", "autotrader", "exchange-sim", "--port", "0", *self.args]
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and CLI
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip())
            if m := _LISTENING.search(line):
                self.url, self.port = m.group(1), int(m.group(2))
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        self.stop()
        raise RuntimeError("exchange-sim did not start: " + " | ".join(seen[-5:]))

    def _drain(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> SimProcess:
        return self if self.proc is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
