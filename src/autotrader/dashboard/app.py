"""The dashboard's web app: one page, a JSON snapshot and a Server-Sent Events stream of it.

    app = create_app(open_state_store(url), refresh_s=1.0)    # serve with uvicorn

* ``GET /`` — the page with the current snapshot inside, so it shows the figures at once
  (self-contained; plotly.js comes from the installed ``plotly`` package);
* ``GET /api/snapshot`` — the current snapshot (``autotrader.dashboard.snapshot``);
* ``GET /api/stream`` — ``event: snapshot`` whenever the snapshot changes (checked every
  ``refresh_s``) and a keep-alive comment in between; it ends when the client goes away;
* ``GET /healthz`` — ``{"ok": true}`` while the store answers.

Every request passes ``autotrader.api.security.RequestGuard``: only loopback ``Host`` names (plus
``allowed_hosts``) are answered, so a DNS-rebinding page cannot read positions; each answer carries
a Content-Security-Policy (the page's script runs by nonce) and ``X-Frame-Options: DENY``; with a
``token`` every request needs it (``Authorization: Bearer``, or open ``/?token=…`` once: a
``SameSite=Strict`` cookie carries it from then on). Error texts are redacted before they are sent.

The store is synchronous, so it is read in a worker thread; concurrent readers share one
snapshot per half refresh interval.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from autotrader.api.security import DEFAULT_CSP, RequestGuard
from autotrader.dashboard.page import PAGE_HTML
from autotrader.dashboard.snapshot import build_snapshot, fingerprint, to_json
from autotrader.domain.errors import AutoTraderError, ConfigError
from autotrader.domain.redact import redact
from autotrader.live.ports import StateStore

log = logging.getLogger(__name__)

KEEPALIVE_S = 15.0


def wall_ms() -> int:
    """The wall clock, UTC epoch milliseconds."""
    return time.time_ns() // 1_000_000


def plotly_js_path() -> Path:
    """``plotly.min.js`` bundled with the installed ``plotly`` package (served at ``/static/plotly.min.js``)."""
    import plotly

    return Path(plotly.__file__).with_name("package_data") / "plotly.min.js"


class SnapshotFeed:
    """Builds snapshots from the store, sharing a recent one between concurrent readers."""

    def __init__(self, store: StateStore, max_age_s: float, clock_ms: Callable[[], int] = wall_ms) -> None:
        self.store = store
        self.max_age_s = max_age_s
        self.clock_ms = clock_ms
        self._lock = threading.Lock()
        self._latest: tuple[dict[str, Any], str] | None = None
        self._built_at = 0.0

    def latest(self, fresh: bool = False) -> tuple[dict[str, Any], str]:
        """The snapshot and its fingerprint (blocking: call from a worker thread)."""
        with self._lock:
            if fresh or self._latest is None or time.monotonic() - self._built_at >= self.max_age_s:
                snapshot = build_snapshot(self.store, self.clock_ms())
                self._latest = (snapshot, fingerprint(snapshot))
                self._built_at = time.monotonic()
            return self._latest


def create_app(
    store: StateStore,
    *,
    refresh_s: float = 1.0,
    keepalive_s: float = KEEPALIVE_S,
    clock_ms: Callable[[], int] = wall_ms,
    allowed_hosts: Iterable[str] = (),
    token: str | None = None,
) -> RequestGuard:
    """The dashboard app reading ``store``; the stream checks for changes every ``refresh_s`` seconds.

    ``allowed_hosts`` are answered besides the loopback names; a ``token`` is then required on every request.
    """
    if not refresh_s > 0:
        raise ConfigError(f"dashboard refresh {refresh_s!r} s: must be a positive number of seconds")
    app = FastAPI(title="AutoTrader dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    feed = SnapshotFeed(store, refresh_s / 2, clock_ms)
    app.state.feed = feed
    app.state.open_streams = 0
    page = PAGE_HTML.replace("__REFRESH_MS__", str(round(refresh_s * 1000)))
    plotly_js = plotly_js_path()

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        try:
            current, _ = await run_in_threadpool(feed.latest, True)
        except AutoTraderError as e:
            current = {"error": redact(str(e))}
        initial = to_json(current).replace("<", "\\u003c")  # no "</script>" inside the script element
        nonce = secrets.token_urlsafe(16)
        html = page.replace("__INITIAL_SNAPSHOT__", initial).replace("<script>", f'<script nonce="{nonce}">')
        csp = DEFAULT_CSP.replace("script-src 'self'", f"script-src 'self' 'nonce-{nonce}'")
        return HTMLResponse(html, headers={"Cache-Control": "no-store", "Content-Security-Policy": csp})

    @app.get("/static/plotly.min.js")
    def plotly_bundle() -> FileResponse:
        return FileResponse(plotly_js, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        try:
            await run_in_threadpool(store.last_heartbeat)
        except AutoTraderError as e:
            return JSONResponse({"ok": False, "error": redact(str(e))}, status_code=503)
        return JSONResponse({"ok": True})

    @app.get("/api/snapshot")
    async def snapshot() -> Response:
        try:
            current, _ = await run_in_threadpool(feed.latest, True)
        except AutoTraderError as e:
            return JSONResponse({"error": redact(str(e))}, status_code=503)
        return Response(to_json(current), media_type="application/json", headers={"Cache-Control": "no-store"})

    @app.get("/api/stream")
    async def stream() -> StreamingResponse:
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(
            _events(app, feed, refresh_s, keepalive_s), media_type="text/event-stream", headers=headers
        )

    return RequestGuard(app, allowed_hosts=allowed_hosts, token=token, token_for_reads=token is not None)


async def _events(app: FastAPI, feed: SnapshotFeed, refresh_s: float, keepalive_s: float) -> AsyncIterator[str]:
    """The SSE body: a snapshot whenever it changed, a comment when quiet; cancelled on disconnect."""
    app.state.open_streams += 1
    sent: str | None = None
    problem: str | None = None
    quiet_since = time.monotonic()
    number = 0
    try:
        yield f"retry: {max(1000, round(refresh_s * 1000))}\n\n"
        while True:
            try:
                current, digest = await run_in_threadpool(feed.latest)
            except AutoTraderError as e:
                if redact(str(e)) != problem:
                    problem = redact(str(e))
                    log.warning("dashboard: %s", problem)
                    yield f"event: problem\ndata: {to_json({'error': problem})}\n\n"
                    quiet_since = time.monotonic()
            else:
                problem = None
                if digest != sent:
                    sent = digest
                    number += 1
                    yield f"event: snapshot\nid: {number}\ndata: {to_json(current)}\n\n"
                    quiet_since = time.monotonic()
            if time.monotonic() - quiet_since >= keepalive_s:
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(refresh_s)
    finally:
        app.state.open_streams -= 1
