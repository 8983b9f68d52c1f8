"""The five commands of the README's quick start, exactly as written, in order, on a fresh AUTOTRADER_HOME.

backtest -> analyze (the file the backtest wrote) -> autotrade demo (paper wallet, built-in ml model) ->
autotrade live (against a local Bybit-compatible exchange-sim via BYBIT_BASE_URL, the confirmation typed
at a terminal) -> autotrade status (on the demo's store). Only the environment differs from what a user
types: AUTOTRADER_METRICS_PORT=0 so a robot already running on this machine cannot collide on 9108, and
the live robot gets its own AUTOTRADER_HOME (a store belongs to one account).
"""

from __future__ import annotations

import json
import os
import pty
import re
import shlex
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from autotrader.adapters.state import open_state_store
from autotrader.domain.candles import parse_date_ms
from autotrader.exchange_sim import SimAccountSpec, SimConfig, SimServer
from autotrader.marketdata.bundled import bundled_files, read_parquet_candles

BACKTEST = (
    "autotrader backtest --symbols=BTCUSDT,ETHUSDT,BNBUSDT,ADAUSDT,STRKUSDT --period=2020-01-01:2024-12-31 "
    "--initial-capital=10000 --output-format=tradingview"
)
ANALYZE = "autotrader analyze --backtest-file=results/backtest_2020_2024.json --generate-charts=true --stress-test=true"
DEMO = "autotrader autotrade --mode=demo --symbols=BTCUSDT,ETHUSDT --capital=1000 --risk=medium"
LIVE = "autotrader autotrade --mode=live --exchange=bybit --symbols=BTCUSDT --capital=500 --risk=conservative"
STATUS = "autotrader autotrade --mode=status"


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    assert words[0] == "autotrader"
    return [sys.executable, "-m", "autotrader", *words[1:]]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYBIT_", "POSTGRES_", "AUTOTRADER_"))}
    return {**env, "AUTOTRADER_HOME": str(home), "AUTOTRADER_METRICS_PORT": "0", "COLUMNS": "120",
            "PYTHONUNBUFFERED": "1", **extra}  # fmt: skip


def _run(command: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_argv(command), capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def _first_line(text: str) -> str:
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), "")


def _wait(predicate, timeout_s: float, proc: subprocess.Popen, what: str, log: Path):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"{what}: the process exited with {proc.returncode}: {log.read_text()[-3000:]}")
        time.sleep(0.3)
    pytest.fail(f"{what}: not within {timeout_s} s: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


@pytest.mark.slow
def test_documented_commands_run_as_written_in_order(tmp_path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    home = tmp_path / "home"
    env = _env(home)
    report: list[tuple[str, int, str]] = []

    # 1. backtest: the headline ml run, also saved under the name analyze looks for
    backtest = _run(BACKTEST, env, work)
    assert backtest.returncode == 0, backtest.stderr[-2000:]
    report.append((BACKTEST, backtest.returncode, _first_line(backtest.stdout)))
    saved = work / "results" / "backtest_2020_2024.json"
    assert saved.is_file()
    assert (work / "results" / "backtest_20200101_20241231.json").read_bytes() == saved.read_bytes()
    doc = json.loads(saved.read_text())
    assert doc["config"]["strategy"] == "ml"
    assert doc["config"]["symbols"] == ["BTCUSDT", "ETHUSDT", "BNBUSDT", "ADAUSDT", "STRKUSDT"]
    assert "Total Return" in backtest.stdout

    # 2. analyze the file the backtest wrote
    analyze = _run(ANALYZE, env, work)
    assert analyze.returncode == 0, analyze.stderr[-2000:]
    report.append((ANALYZE, analyze.returncode, _first_line(analyze.stdout)))
    assert "Stress Test Survival:" in analyze.stdout
    assert (work / "results" / "backtest_2020_2024_analysis" / "charts" / "charts.html").is_file() or any(
        (work / "results" / "backtest_2020_2024_analysis").rglob("charts.html")
    )

    # 3. the demo: paper wallet, built-in ml model on closed candles, asked at every bar close (at 60x a bar
    # closes every minute; the calibrated model enters only when confident, days apart)
    demo_log = tmp_path / "demo.log"
    with demo_log.open("w") as out:
        demo = subprocess.Popen(_argv(DEMO), env=env, cwd=work, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(lambda: "robot atrobot started (demo" in demo_log.read_text(), 120, demo, "demo start", demo_log)
        store = open_state_store(f"sqlite:///{home / 'state.db'}")
        try:
            asked = re.compile(r"strategy ml: no signal at the bar close|signal ml-[A-Z]+-1h-\d+")
            _wait(lambda: asked.search(demo_log.read_text()) or store.decisions(), 120, demo, "the model", demo_log)
            decisions = store.decisions()
            wallet = store.load_paper_wallet("paper:atrobot")
            beat = store.last_heartbeat()
        finally:
            store.close()
        code = _stop(demo)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    assert code == 0, demo_log.read_text()[-3000:]
    report.append((DEMO, code, _first_line(demo_log.read_text())))
    assert {d.model for d in decisions} <= {"ml"}
    assert {d.symbol for d in decisions} <= {"BTCUSDT", "ETHUSDT"}
    assert wallet is not None
    assert Decimal(wallet["wallet"]["USDT"]) <= Decimal(1000)
    assert beat is not None
    assert beat.mode == "demo"

    # 4. live, against a local Bybit-compatible exchange-sim; the confirmation answered at a terminal
    report.append(_live(tmp_path, work))

    # 5. status of the demo's store
    status = _run(STATUS, env, work)
    assert status.returncode == 0, status.stderr[-2000:]
    report.append((STATUS, status.returncode, _first_line(status.stdout)))
    assert "RISK MANAGEMENT" in status.stdout
    assert "Robot: atrobot (demo" in status.stdout
    assert "Signals:" in status.stdout
    print("\n" + "\n".join(f"{code}  {cmd}\n     -> {line}" for cmd, code, line in report))


def _live(tmp_path: Path, work: Path) -> tuple[str, int, str]:
    candles = {s: read_parquet_candles(p) for k, p in bundled_files().items()
               if (s := k.symbol) == "BTCUSDT" and k.timeframe == "1h"}  # fmt: skip
    key, secret = f"live{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    config = SimConfig(
        candles=candles,
        timeframe="1h",
        start_ms=parse_date_ms("2022-06-01"),
        speed=60.0,
        accounts=[SimAccountSpec(key, secret, {"USDT": Decimal(2000)})],
    )
    live_home = tmp_path / "live-home"
    env = _env(live_home, BYBIT_API_KEY=key, BYBIT_API_SECRET=secret)
    log_path = tmp_path / "live.log"
    with SimServer(config).start() as sim:
        env["BYBIT_BASE_URL"] = sim.url
        master, slave = pty.openpty()
        with log_path.open("w") as log:
            proc = subprocess.Popen(_argv(LIVE), env=env, cwd=work, stdin=slave, stdout=slave, stderr=log)
        os.close(slave)
        seen = b""
        try:
            deadline = time.monotonic() + 60
            while b"Type 'yes'" not in seen and time.monotonic() < deadline and proc.poll() is None:
                seen += os.read(master, 4096)
            assert b"Trade REAL money on" in seen, seen
            os.write(master, b"yes\n")
            _wait(lambda: "robot atrobot started (live" in log_path.read_text(), 120, proc, "live start", log_path)
            code = _stop(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
    assert code == 0, log_path.read_text()[-3000:]
    store = open_state_store(f"sqlite:///{live_home / 'state.db'}")
    try:
        beat = store.last_heartbeat()
        assert beat is not None
        assert beat.mode == "live"
        assert store.get_meta("config")["capital"] == 500
        assert store.get_meta("config")["risk_level"] == "conservative"
    finally:
        store.close()
    return LIVE, code, _first_line(seen.decode(errors="replace"))
