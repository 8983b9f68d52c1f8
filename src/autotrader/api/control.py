"""The robot's control plane over HTTP: ``/metrics``, ``/health`` and the kill switch (an ASGI app on uvicorn).

    server = ControlServer(metrics, kill, health=lambda: {"status": robot.status}, token=token, port=9108)
    port = server.start()      # ConfigError naming --metrics-port when the port is taken
    ...
    server.stop()

* ``GET /metrics`` — the robot's metrics in the Prometheus text format, rendered by ``prometheus_client``;
* ``GET /health`` — ``{"status": …, "kill_switch": …}``;
* ``GET /kill-switch`` — whether entries are paused, and why;
* ``POST /kill-switch`` (JSON body, e.g. ``{"reason": "manual"}``) — pause entries at once. When the
  kill file cannot be written the answer is 500 and says entries are paused in memory only;
* ``DELETE /kill-switch`` — release the endpoint's switch. A kill file the operator created is never
  deleted: the answer is 409 and entries stay paused until the operator removes it.

Every request passes ``autotrader.api.security.RequestGuard`` (loopback ``Host`` unless allowed,
matching ``Origin``, JSON bodies, the API token on state-changing requests, size and time limits).

The server runs on its own thread and event loop, so it answers while the robot's loop waits on a
slow store or exchange call: the kill switch and health stay reachable exactly when they matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from autotrader.api.security import RequestGuard
from autotrader.domain.errors import ConfigError
from autotrader.domain.redact import redact
from autotrader.live.metrics import Counter, Gauge, Histogram, RobotMetrics
from autotrader.live.risk_state import KillNotPersisted, KillSwitch

log = logging.getLogger(__name__)

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# ---------------------------------------------------------------------------------------- /metrics


class RobotCollector:
    """A ``prometheus_client`` collector reading ``RobotMetrics`` at scrape time."""

    def __init__(self, metrics: RobotMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in [*self.metrics.all(), *list(self.metrics.latency_by_kind.values())]:
            if isinstance(metric, Histogram):
                yield _histogram(metric)
            else:
                yield _samples(metric)


def _samples(metric: Counter | Gauge) -> Metric:
    kind = "counter" if isinstance(metric, Counter) else "gauge"
    name = metric.name.removesuffix("_total") if kind == "counter" else metric.name
    family = Metric(name, metric.help, kind)
    sample = f"{name}_total" if kind == "counter" else name
    for labels, value in sorted(dict(metric.values).items()):
        family.add_sample(sample, dict(labels), value)
    return family


def _histogram(metric: Histogram) -> Metric:
    counts = list(metric.counts)
    running, buckets = 0, []
    for bound, n in zip(metric.buckets, counts, strict=False):
        running += n
        buckets.append((repr(float(bound)), running))
    total = running + counts[-1]
    buckets.append(("+Inf", total))
    return HistogramMetricFamily(metric.name, metric.help, buckets=buckets, sum_value=metric.sum)


# ----------------------------------------------------------------------------------------- the app


def create_control_app(
    metrics: RobotMetrics,
    kill: KillSwitch,
    *,
    health: Callable[[], dict[str, Any]],
    token: str,
    allowed_hosts: Iterable[str] = (),
) -> RequestGuard:
    """The control app behind its ``RequestGuard`` (the token is required on POST and DELETE)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RobotCollector(metrics))  # type: ignore[arg-type]

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=PROMETHEUS_CONTENT_TYPE)

    async def health_endpoint(_: Request) -> JSONResponse:
        return JSONResponse({**health(), "kill_switch": kill.engaged}, headers={"Cache-Control": "no-store"})

    async def kill_switch(request: Request) -> JSONResponse:
        if request.method == "GET":
            return _kill_state(kill)
        if request.method == "POST":
            return await _engage(kill, request)
        return _release(kill)

    routes = [
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/health", health_endpoint, methods=["GET"]),
        Route("/kill-switch", kill_switch, methods=["GET", "POST", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    return RequestGuard(app, allowed_hosts=allowed_hosts, token=token)


def _kill_state(kill: KillSwitch, status: int = 200, **extra: Any) -> JSONResponse:
    body = {"engaged": kill.engaged, "why": kill.why() if kill.engaged else "", **extra}
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})


async def _engage(kill: KillSwitch, request: Request) -> JSONResponse:
    raw = await request.body()
    payload = json.loads(raw) if raw.strip() else {}
    reason = payload.get("reason") if isinstance(payload, dict) else None
    reason = str(reason)[:200] if reason else "endpoint"
    try:
        kill.engage(reason)
    except KillNotPersisted as e:
        log.error("%s", e)
        return _kill_state(kill, 500, error=str(e), persisted=False)
    log.warning("kill switch engaged through the endpoint (%s)", reason)
    return _kill_state(kill, persisted=True)


def _release(kill: KillSwitch) -> JSONResponse:
    if kill.release():
        log.warning("kill switch released through the endpoint")
        return _kill_state(kill)
    message = (
        f"the kill switch file {kill.path} was not created through this endpoint and is left in place: "
        "entries stay paused until you delete it"
    )
    log.warning("%s", message)
    return _kill_state(kill, 409, error=message)


# -------------------------------------------------------------------------------------- the server


class ControlServer:
    """``create_control_app`` on uvicorn, on its own thread and event loop (``start`` / ``stop``)."""

    def __init__(
        self,
        metrics: RobotMetrics,
        kill: KillSwitch,
        *,
        health: Callable[[], dict[str, Any]],
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        allowed_hosts: Iterable[str] = (),
        option: str = "--metrics-port",
        head_timeout_s: float | None = None,
    ) -> None:
        self.app = create_control_app(metrics, kill, health=health, token=token, allowed_hosts=allowed_hosts)
        self.host = host
        self.port = port
        self.option = option
        self.head_timeout_s = head_timeout_s
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> int:
        """Bind, start serving, and return the port (``ConfigError`` in one line when it is taken)."""
        import uvicorn

        from autotrader.api.protocol import MAX_HEADER_BYTES, GuardedH11Protocol

        protocol: type = GuardedH11Protocol
        if self.head_timeout_s is not None:
            protocol = type("GuardedH11Protocol", (GuardedH11Protocol,), {"head_timeout_s": self.head_timeout_s})
        sock = self._bind()
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            http=protocol,
            ws="none",
            lifespan="off",
            log_level="warning",
            access_log=False,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=1,
            limit_concurrency=32,
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        started = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            try:

                async def main() -> None:
                    task = asyncio.ensure_future(self._server.serve(sockets=[sock]))
                    while not self._server.started and not task.done():
                        await asyncio.sleep(0.01)
                    started.set()
                    await task

                loop.run_until_complete(main())
            except BaseException as e:  # reported to start(), or logged once serving
                failure.append(e)
                if started.is_set():
                    log.error("control endpoint stopped: %s", redact(str(e)))
            finally:
                started.set()
                sock.close()
                loop.close()

        self._thread = threading.Thread(target=serve, name="autotrader-control", daemon=True)
        self._thread.start()
        if not started.wait(timeout_s) or failure or not self._server.started:
            self.stop()
            why = f": {failure[0]}" if failure else ""
            raise ConfigError(f"{self.option} {self.port}: the control endpoint did not start{why}")
        return self.port

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers; a listener still refuses
        try:
            sock.bind((self.host, self.port))
            sock.listen(64)
        except OSError as e:
            sock.close()
            why = "is in use by another process" if e.errno == errno.EADDRINUSE else f"cannot be opened ({e.strerror})"
            raise ConfigError(
                f"{self.option} {self.port}: port {self.port} on {self.host} {why}; "
                f"choose another {self.option} (0 picks a free port)"
            ) from None
        sock.set_inheritable(False)
        return sock

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout_s)
            self._thread = None
