"""The deployment's services, docker-compose.yml's own command lines, as local processes: Tansu for Kafka,
the machine's PostgreSQL (libpq key=value DSN),
the signal engine replaying stored candles, the demo robot consuming its predictions, the dashboard reading both.

The robot and the engine are each killed with SIGKILL and started again: every bar the replay closed is
published (the engine catches up what closed while it was down, under the same ids), every published
prediction gets exactly one decision, no signal leads to two orders, and the paper wallet carries on.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from autotrader.adapters.broker.kafka import tail_messages
from autotrader.adapters.broker.tansu import free_port
from autotrader.adapters.state import open_state_store, state_url

ADMIN_DSN = os.environ.get("AUTOTRADER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
HOUR = 3_600_000


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh PostgreSQL database; yields its libpq key=value DSN."""
    name = f"t_stack_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"host=127.0.0.1 port=5432 dbname={name} user=postgres"
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Service:
    """One command line as a process, its output in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.out = logs / f"{name}.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> Service:
        self.starts += 1
        with self.out.open("a") as out:
            out.write(f"--- start {self.starts}\n")
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "autotrader", *self.args], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    def text(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(f"{self.name} exited ({self.proc.returncode}) waiting for {what}: {self.text()[-3000:]}")
            time.sleep(0.25)
        pytest.fail(f"{self.name}: {what} not within {timeout_s} s: {self.text()[-3000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def compose_command(service: str, replace: dict[str, str], extra: list[str]) -> list[str]:
    """The ``autotrader`` arguments of a docker-compose service, with hosts and ports replaced for this machine."""
    import yaml

    command = yaml.safe_load(COMPOSE.read_text())["services"][service]["command"]
    out = []
    for arg in command:
        for old, new in replace.items():
            arg = arg.replace(old, new)
        out.append(arg)
    return out + extra


def _engine_bars(log_file: Path) -> list[int]:
    """Bar closes the engine handled (published, no signal, or warming), from its JSON log file."""
    closes = []
    for line in log_file.read_text().splitlines():
        message = json.loads(line)["message"]
        m = re.search(
            r"bar close (\d{4}-\d{2}-\d{2} \d{2}:\d{2}) UTC|bar closing (\d{4}-\d{2}-\d{2} \d{2}:\d{2})", message
        )
        if m:
            closes.append(m.group(1) or m.group(2))
    from autotrader.domain.candles import parse_date_ms

    return sorted({parse_date_ms(c.replace(" ", "T")) for c in closes})


@pytest.mark.slow
def test_stack_services_publish_decide_persist_and_survive_sigkill(tmp_path, database) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BYBIT_", "POSTGRES_", "AUTOTRADER_"))},
        "AUTOTRADER_HOME": str(tmp_path / "home"),
        "POSTGRES_DSN": database,
        "PYTHONUNBUFFERED": "1",
    }
    broker = subprocess.run([sys.executable, "-m", "autotrader", "broker", "start", "--port", str(port)],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert broker.returncode == 0, broker.stderr
    engine_log, robot_log = logs / "engine.jsonl", logs / "robot.jsonl"
    # the compose file's command lines; kafka:9092 is the local broker, ports are free ones, the replay runs
    # at 3600x (an hour of market a second) so the test sees many bars, and each service logs to a file
    dash_port = free_port()
    hosts = {"kafka:9092": f"127.0.0.1:{port}"}
    # the model: a fast SMA cross instead of the default ml, whose calibrated entries come days apart
    fast_model = ["--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8"]
    engine_args = compose_command(
        "analytics-engine", hosts, ["--speed", "3600", "--log-file", str(engine_log), *fast_model]
    )
    robot_args = compose_command("autotrade", {**hosts, "9108": "0"}, ["--log-file", str(robot_log)])
    dash_args = compose_command("dashboard", {"0.0.0.0": "127.0.0.1", "8050": str(dash_port)},
                                ["--log-file", str(logs / "dash.jsonl")])  # fmt: skip
    assert "--replay" in engine_args
    assert "--mode=demo" in robot_args
    engine = Service("engine", engine_args, env, logs)
    robot = Service("robot", robot_args, env, logs)
    dashboard = Service("dashboard", dash_args, env, logs)
    store = None
    t0 = time.monotonic()
    try:
        engine.start()
        engine.wait_for(lambda: engine_log.is_file() and "HONEST SIGNAL" in engine_log.read_text(), 90, "a signal")
        print(f"engine's first signal after {time.monotonic() - t0:.1f} s")
        robot.start()
        store = open_state_store(state_url(tmp_path, database))
        robot.wait_for(lambda: sum(d.outcome.value == "entry" for d in store.decisions()) >= 1, 90, "an entry")
        print(f"robot's first entry after {time.monotonic() - t0:.1f} s")
        dashboard.start()
        snapshot = dashboard.wait_for(lambda: _snapshot(dash_port), 60, "/api/snapshot")
        assert snapshot["robot"]["mode"] == "demo"
        assert snapshot["robot"]["status"] == "alive"
        assert {s["model"] for s in snapshot["signals"]} == {"sma_cross"}
        entries = {d.signal_id for d in store.decisions() if d.outcome.value == "entry"}
        assert entries & {s["signal_id"] for s in snapshot["signals"] if s["outcome"] == "entry"}
        assert snapshot["has_data"]
        assert snapshot["account"]["equity"] is not None

        # the robot dies hard and comes back: the paper wallet is restored and reconciles
        before = store.load_paper_wallet("paper:atrobot")
        robot.kill9()
        time.sleep(2)
        robot.start()
        robot.wait_for(lambda: robot.text().count("robot atrobot started (demo") >= 2, 60, "the restart")
        restarted = robot.text().split("--- start 2")[1]
        assert "paper wallet paper:atrobot restored" in restarted
        assert "reconciliation failed" not in restarted
        n_decided = len(store.decisions())
        robot.wait_for(lambda: len(store.decisions()) > n_decided, 60, "decisions after the restart")

        # the engine dies hard and comes back: it catches up the bars that closed meanwhile
        engine.kill9()
        time.sleep(3)
        engine.start()
        engine.wait_for(lambda: engine.text().count("signal engine:") >= 2, 60, "the engine restart")
        last_before = _engine_bars(engine_log)[-1]
        engine.wait_for(lambda: _engine_bars(engine_log)[-1] >= last_before + 4 * HOUR, 60, "bars after the restart")
        dashboard.stop()
        assert engine.stop() == 0, engine.text()[-3000:]
        # let the robot decide what is still in flight, then stop it
        published = {json.loads(m.value)["id"] for m in tail_messages(f"kafka://127.0.0.1:{port}/predictions",
                                                                       idle_timeout_s=2.0)}  # fmt: skip
        robot.wait_for(lambda: published <= {d.signal_id for d in store.decisions()}, 60, "every signal decided")
        assert robot.stop() == 0, robot.text()[-3000:]
    finally:
        for service in (dashboard, engine, robot):
            service.stop()
        subprocess.run([sys.executable, "-m", "autotrader", "broker", "stop"], env=env, timeout=60, capture_output=True)
        if store is not None:
            store.close()
    store = open_state_store(state_url(tmp_path, database))
    decisions = store.decisions()
    orders = store.load_orders(open_only=False)
    fills = store.load_fills()
    wallet = store.load_paper_wallet("paper:atrobot")
    store.close()
    # no bar lost: the engine handled every bar close from its first to its last, across its SIGKILL
    bars = _engine_bars(engine_log)
    assert "HONEST SIGNAL" in engine_log.read_text()
    assert json.loads(robot_log.read_text().splitlines()[-1])["logger"].startswith("autotrader")  # JSON lines
    assert "dashboard of" in (logs / "dash.jsonl").read_text()
    assert bars == list(range(bars[0], bars[-1] + HOUR, HOUR))
    # no signal lost, none decided twice, no signal traded twice
    decided = Counter(d.signal_id for d in decisions)
    assert published <= set(decided)
    assert max(decided.values()) == 1
    per_signal = Counter((o.signal_id, o.kind) for o in orders if o.signal_id and str(o.kind) in ("entry", "exit"))
    assert per_signal and max(per_signal.values()) == 1
    assert any(o.signal_id in decided for o in orders)
    assert fills
    # the paper wallet carried on: restored from what was saved before the SIGKILL, then kept trading
    assert before is not None and wallet is not None
    assert len(wallet["orders"]) >= len(before["orders"])
    assert len(wallet["executions"]) >= len(before["executions"])
    assert wallet["executions"][: len(before["executions"])] == before["executions"]


def _snapshot(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/snapshot", timeout=5) as r:
            data = json.loads(r.read())
    except OSError:
        return None
    return data if data.get("signals") else None
