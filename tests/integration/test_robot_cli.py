"""``autotrader autotrade`` from the command line: live-mode safety, demo guard, a real demo process.

The demo run is a separate process started with the command's flags against exchange-sim: it
trades on its own strategy's signals, writes JSON logs with symbol, client order id and signal
id on every order line, serves /metrics and the kill switch, and stops cleanly on SIGTERM.
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
from pathlib import Path

import pytest
import typer
from robot_harness import new_account, sim_server
from typer.testing import CliRunner

from autotrader.adapters.state import open_state_store
from autotrader.cli.autotrade import register

# The real CLI's entry point (its error handling) with ``autotrade`` registered, as autotrader.cli does.
_APP = """
import typer
import autotrader.cli as cli
from autotrader.cli.autotrade import register
app = typer.Typer(pretty_exceptions_enable=False)
register(app)
app.command("noop")(lambda: None)
cli.app = app
cli.main()
"""


def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    a.command("noop")(lambda: None)
    return a


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app(), ["autotrade", *args], env=env)
    text = result.output + (str(result.exception) if result.exception else "")
    return result.exit_code, text


def test_autotrade_live_refuses_without_keys() -> None:
    code, out = invoke(["--mode", "live", "--strategy", "sma_cross", "--db", "sqlite:///:memory:"])
    assert code != 0
    assert "BYBIT_API_KEY" in out


def test_autotrade_live_refuses_without_confirmation() -> None:
    env = {"BYBIT_API_KEY": "k", "BYBIT_API_SECRET": "s"}
    code, out = invoke(["--mode", "live", "--strategy", "sma_cross"], env)
    assert code != 0
    assert "--confirm-live" in out


def test_autotrade_demo_refuses_a_real_bybit_account() -> None:
    env = {"BYBIT_API_KEY": "k", "BYBIT_API_SECRET": "s"}
    code, out = invoke(["--mode", "demo", "--strategy", "sma_cross", "--exchange-url", "https://api.bybit.com"], env)
    assert code != 0
    assert "never trades a real account" in out


def test_autotrade_rejects_bad_flags() -> None:
    code, out = invoke(["--mode", "paper", "--strategy", "sma_cross"])
    assert code != 0
    assert "demo, live or status" in out
    code, out = invoke(["--mode", "demo", "--signals", "kafka://127.0.0.1:9/p", "--strategy", "sma_cross"])
    assert "not both" in out
    code, out = invoke(["--mode", "demo", "--strategy", "sma_cross", "--trading-hours", "9-17"])
    assert "HH:MM-HH:MM" in out
    code, out = invoke(["--mode", "demo", "--strategy", "sma_cross", "--risk", "wild"])
    assert "risk_level" in out


def test_autotrade_live_refuses_when_balance_below_capital(tmp_path) -> None:
    with sim_server() as sim:
        key, secret = new_account(sim, "500")
        env = {"BYBIT_API_KEY": key, "BYBIT_API_SECRET": secret}
        code, out = invoke(
            [
                "--mode",
                "live",
                "--confirm-live",
                "--strategy",
                "sma_cross",
                "--capital",
                "1000",
                "--exchange-url",
                sim.url,
                "--db",
                f"sqlite:///{tmp_path / 's.db'}",
                "--metrics-port",
                "0",
                "--timeframe",
                "1m",
            ],
            env,
        )
    assert code != 0
    assert "less than --capital" in out


@pytest.mark.slow
def test_autotrade_demo_process_trades_logs_json_serves_metrics_and_stops(tmp_path) -> None:
    db = f"sqlite:///{tmp_path / 'state.db'}"
    kill_file = tmp_path / "KILL"
    with sim_server(speed=600.0, ws_tick_s=0.1) as sim:
        key, secret = new_account(sim, "10000")
        env = {
            **os.environ,
            "BYBIT_API_KEY": key,
            "BYBIT_API_SECRET": secret,
            "PYTHONUNBUFFERED": "1",
            "AUTOTRADER_HOME": str(tmp_path / "home"),
        }
        args = [
            "autotrade",
            "--mode",
            "demo",
            "--exchange-url",
            sim.url,
            "--strategy",
            "sma_cross",
            "--param",
            "fast=3",
            "--param",
            "slow=8",
            "--symbols",
            "BTCUSDT,ETHUSDT",
            "--timeframe",
            "1m",
            "--capital",
            "10000",
            "--risk",
            "aggressive",
            "--db",
            db,
            "--metrics-port",
            "0",
            "--kill-switch-file",
            str(kill_file),
            "--robot-id",
            "clirobot",
        ]
        log_path = tmp_path / "robot.log"
        with log_path.open("w") as log:
            proc = subprocess.Popen([sys.executable, "-c", _APP, *args], env=env, stdout=log, stderr=log)
        try:
            port = _wait_for(lambda: _metrics_port(log_path), 180, proc, log_path)
            store = open_state_store(db)
            _wait_for(lambda: len(store.load_fills()) >= 3 or None, 180, proc, log_path)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            kill_file.write_text("pause")
            _wait_for(lambda: "autotrader_kill_switch 1" in _get(port) or None, 30, proc, log_path)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0, log_path.read_text()[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert "autotrader_orders_total" in metrics
    assert "autotrader_signal_to_ack_seconds_bucket" in metrics
    assert "autotrader_loop_lag_seconds" in metrics
    order_lines = []
    for line in log_path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record["logger"].endswith("order_manager"):
            order_lines.append(record)
    assert order_lines
    for record in order_lines:
        assert {"symbol", "client_order_id", "signal_id"} <= set(record), record
        assert record["client_order_id"].startswith("clirobot-")
    assert store.last_heartbeat().status == "stopped"
    assert any(d.outcome.value == "entry" for d in store.decisions())
    store.close()


def _get(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def _metrics_port(path: Path) -> int | None:
    m = re.search(r"metrics endpoint http://127\.0\.0\.1:(\d+)/metrics", path.read_text())
    return int(m.group(1)) if m else None


def _wait_for(fn, timeout_s: float, proc: subprocess.Popen, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.2)
