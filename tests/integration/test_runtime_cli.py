"""Running AutoTrader as a service: the local broker, bad input at start-up, start-up failure limit, log files,
the paper wallet's persistence and the backtest file names ``analyze`` looks for. Real processes where it matters."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from autotrader.adapters.broker.tansu import free_port
from autotrader.cli import calendar_years
from autotrader.exchange_sim import SimAccountSpec, SimConfig, SimServer, synthetic_candles
from autotrader.exchange_sim.persist import account_state, restore_account
from autotrader.logs import configure_logging

MINUTE = 60_000


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120):
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "autotrader", *args], capture_output=True, text=True, env=full_env, cwd=cwd,
        timeout=timeout,
    )  # fmt: skip


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


# ------------------------------------------------------------------------------------------ broker


@pytest.mark.slow
def test_broker_start_is_idempotent_reports_status_and_stops(tmp_path) -> None:
    port = str(free_port())
    env = {"AUTOTRADER_HOME": str(tmp_path / "home")}
    try:
        first = run("broker", "start", "--port", port, env=env)
        assert first.returncode == 0, first.stderr
        assert f"started at 127.0.0.1:{port}" in first.stdout
        assert "predictions, predictions.dlq (created)" in first.stdout
        again = run("broker", "start", "--port", port, env=env)
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        status = run("broker", "status", env=env)
        assert status.returncode == 0
        assert "topics: predictions, predictions.dlq" in status.stdout
        assert (tmp_path / "home" / "broker" / "broker.json").is_file()
    finally:
        stopped = run("broker", "stop", env=env)
    assert stopped.returncode == 0
    assert "stopped" in stopped.stdout
    after = run("broker", "status", env=env)
    assert after.returncode == 3
    assert "no broker is running" in after.stdout


def test_broker_start_on_a_taken_port_is_one_clear_line(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run("broker", "start", "--port", str(port), env={"AUTOTRADER_HOME": str(tmp_path)})
    assert f"port 127.0.0.1:{port} is in use" in one_line_error(result)


# ------------------------------------------------------------------------------------- bad input


@pytest.mark.slow
def test_signals_serve_unreachable_broker_is_one_clear_line(tmp_path) -> None:
    port = free_port()
    result = run("signals", "serve", "--brokers", f"127.0.0.1:{port}", "--topic", "predictions", "--replay",
                 env={"AUTOTRADER_HOME": str(tmp_path)}, timeout=60)  # fmt: skip
    assert f"cannot reach the Kafka broker at 127.0.0.1:{port}" in one_line_error(result)


def test_signals_serve_missing_topic_is_one_clear_line(tmp_path) -> None:
    from autotrader.adapters.broker.tansu import TansuBroker

    with TansuBroker() as broker:
        result = run("signals", "serve", "--brokers", broker.bootstrap, "--topic", "nosuchtopic", "--replay",
                     env={"AUTOTRADER_HOME": str(tmp_path)})  # fmt: skip
    line = one_line_error(result)
    assert "topic 'nosuchtopic' does not exist" in line
    assert "--create-topics" in line


def test_autotrade_metrics_port_taken_names_the_option(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = run("autotrade", "--mode=demo", "--metrics-port", str(port), env={"AUTOTRADER_HOME": str(tmp_path)})
    line = one_line_error(result)
    assert f"--metrics-port {port}: port {port} on 127.0.0.1 is in use" in line
    assert "0 picks a free port" in line


def test_autotrade_unreachable_database_and_bad_values_are_one_clear_line(tmp_path) -> None:
    env = {"AUTOTRADER_HOME": str(tmp_path)}
    dsn = f"host=127.0.0.1 port={free_port()} dbname=test user=postgres"
    line = one_line_error(run("autotrade", "--mode=demo", "--metrics-port", "0", "--db", dsn, env=env))
    assert "state store" in line
    assert "risk_level" in one_line_error(run("autotrade", "--risk=wild", env=env))
    assert "demo, live or status" in one_line_error(run("autotrade", "--mode=paper", env=env))
    live = one_line_error(run("autotrade", "--mode=live", "--metrics-port", "0", env=env))
    assert "BYBIT_API_KEY" in live


def test_autotrade_stops_retrying_after_repeated_start_up_failures(tmp_path) -> None:
    env = {"AUTOTRADER_HOME": str(tmp_path)}
    dsn = f"host=127.0.0.1 port={free_port()} dbname=test user=postgres"
    args = ("autotrade", "--mode=demo", "--metrics-port", "0", "--db", dsn, "--max-start-failures", "2")
    first = run(*args, env=env)
    assert first.returncode == 5  # StorageError
    record = json.loads((tmp_path / "startup-failures.json").read_text())
    assert record["count"] == 1
    assert "state store" in record["reason"]
    run(*args, env=env)  # waits 1 s (back-off), fails again
    third = run(*args, env=env)
    assert third.returncode == 78
    line = one_line_error(third)
    assert "start-up failed 2 times in a row" in line
    assert "state store" in line
    assert "startup-failures.json" in line


# ------------------------------------------------------------------------------------------ logs


def test_log_file_rotates_by_size_and_keeps_json_lines(tmp_path) -> None:
    path = tmp_path / "logs" / "robot.log"
    configure_logging("INFO", json_lines=False, log_file=path, max_bytes=2_000, backups=2)
    log = logging.getLogger("autotrader.test_rotation")
    for i in range(200):
        log.info("line %d with some padding to fill the file quickly", i)
    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["robot.log", "robot.log.1", "robot.log.2"]
    record = json.loads(path.read_text().splitlines()[-1])
    assert record["message"].startswith("line 199")
    assert all(p.stat().st_size <= 2_200 for p in path.parent.iterdir())
    configure_logging("WARNING")


# ---------------------------------------------------------------------------------- paper wallet


def _sim(start_ms: int, key: str = "k", secret: str = "s") -> SimServer:
    candles = synthetic_candles(600, MINUTE, seed=3, start_price=100.0, amplitude=0.05, cycle_bars=60)
    return SimServer(
        SimConfig(
            candles={"BTCUSDT": candles},
            timeframe="1m",
            start_ms=start_ms,
            speed=0.0,
            accounts=[SimAccountSpec(key, secret, {"USDT": Decimal(1000)})],
            rate_limits=False,
        )
    )


def test_paper_wallet_state_restores_balances_orders_fills_and_matches_across_the_gap() -> None:
    candles = synthetic_candles(600, MINUTE, seed=3, start_price=100.0, amplitude=0.05, cycle_bars=60)
    t = int(candles.ts[100])
    sim = _sim(t)
    engine = sim.state.engine
    acct = engine.accounts["k"]
    engine.create_order(acct, {"category": "spot", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
                               "qty": "1", "marketUnit": "baseCoin", "orderLinkId": "entry-1"}, t)  # fmt: skip
    low = float(candles.low[101:400].min())
    stop_price = f"{float(candles.close[100]) * 0.5 + low * 0.5:.2f}"  # crossed somewhere in bars 101..399
    engine.create_order(acct, {"category": "spot", "symbol": "BTCUSDT", "side": "Sell", "orderType": "Market",
                               "qty": "0.99", "triggerPrice": stop_price, "orderFilter": "StopOrder",
                               "orderLinkId": "stop-1"}, t)  # fmt: skip
    saved = json.loads(json.dumps(account_state(engine, acct)))  # what the store keeps
    assert saved["wallet"]["BTC"] not in ("0", None)

    later = int(candles.ts[400])
    restored = _sim(later, key="k2")
    engine2 = restored.state.engine
    acct2 = engine2.accounts["k2"]
    restore_account(engine2, acct2, saved)
    assert acct2.wallet == acct.wallet
    assert set(acct2.orders) == set(acct.orders)
    assert acct2.links == acct.links
    assert len(acct2.executions) == len(acct.executions) == 1
    engine2.step(later)  # the market moved on while the process was down: the resting stop fills
    stop = next(o for o in acct2.orders.values() if o.link_id == "stop-1")
    assert stop.status == "Filled"
    assert len(acct2.executions) == 2


def test_paper_wallet_state_refuses_an_unknown_version() -> None:
    sim = _sim(int(synthetic_candles(600, MINUTE, seed=3).ts[100]))
    with pytest.raises(ValueError, match="version"):
        restore_account(sim.state.engine, sim.state.engine.accounts["k"], {"version": 99})


# ------------------------------------------------------------------------------- backtest files


def test_calendar_years_only_for_whole_years() -> None:
    assert calendar_years("2020-01-01", "2024-12-31") == ("2020", "2024")
    assert calendar_years("2023-01-01", "2023-12-31") == ("2023", "2023")
    assert calendar_years("2020-01-02", "2024-12-31") is None
    assert calendar_years("2023-01-01", "2023-06-30") is None


def test_analyze_missing_file_names_the_newest_saved_backtest(tmp_path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "backtest_20230101_20230630.json").write_text("{}")
    newest = results / "backtest_20230101_20231231.json"
    newest.write_text("{}")
    os.utime(results / "backtest_20230101_20230630.json", (1, 1))
    line = one_line_error(run("analyze", cwd=tmp_path, env={"AUTOTRADER_HOME": str(tmp_path / "h")}))
    assert "results/backtest_2020_2024.json does not exist" in line
    assert "results/backtest_20230101_20231231.json" in line


def test_paper_wallet_is_saved_before_the_order_answer_leaves() -> None:
    import asyncio

    from robot_harness import connect, new_account, sim_server

    from autotrader.domain.orders import OrderSide, OrderType, SubmitOrder

    saved: list[dict] = []
    with sim_server(ws_tick_s=30.0) as sim:  # no background matching step during the test
        account = new_account(sim, "10000")
        acct = sim.state.engine.accounts[account[0]]
        sim.state.on_change = lambda st: saved.append(account_state(st.engine, acct))

        async def place() -> None:
            async with connect(sim, account) as exchange:
                await exchange.create_order(
                    SubmitOrder("cid-1", "BTCUSDT", "spot", OrderSide.BUY, OrderType.MARKET, Decimal("0.01"))
                )

        asyncio.run(place())
        # the answer has arrived: the saved state already holds the order and its fill
        assert saved
        assert any(o["link_id"] == "cid-1" for o in saved[-1]["orders"])
        assert len(saved[-1]["executions"]) == 1


def test_backtest_over_whole_years_also_writes_the_file_analyze_reads(tmp_path) -> None:
    env = {"AUTOTRADER_HOME": str(tmp_path / "h")}
    result = run("backtest", "--strategy", "sma_cross", "--period", "2023-01-01:2023-12-31", "--output-format", "json",
                 "--quiet", cwd=tmp_path, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    by_year = tmp_path / "results" / "backtest_2023_2023.json"
    assert by_year.read_bytes() == (tmp_path / "results" / "backtest_20230101_20231231.json").read_bytes()
    partial = run("backtest", "--strategy", "sma_cross", "--period", "2023-01-01:2023-06-30", "--output-format",
                  "json", "--quiet", cwd=tmp_path, env=env)  # fmt: skip
    assert partial.returncode == 0, partial.stderr
    assert sorted(p.name for p in (tmp_path / "results").glob("backtest_2023_*.json")) == ["backtest_2023_2023.json"]


@pytest.mark.slow
def test_demo_refusal_names_reset_paper_and_reset_paper_starts_over(tmp_path) -> None:
    import signal
    import time

    from autotrader.adapters.state import open_state_store
    from autotrader.live.records import Ledger, PositionState

    home = tmp_path / "home"
    store = open_state_store(f"sqlite:///{home / 'state.db'}")
    store.save_ledger(Ledger(Decimal(1000), Decimal(700)))
    store.save_position(PositionState("BTCUSDT", qty=Decimal("0.01"), avg_price=Decimal(30000), entry_ms=1))
    store.close()
    env = {"AUTOTRADER_HOME": str(home)}
    args = ["autotrade", "--mode=demo", "--symbols=BTCUSDT", "--strategy", "sma_cross", "--metrics-port", "0"]
    refused = run(*args, env=env)
    assert refused.returncode == 8
    line = one_line_error(refused)
    assert "reconciliation failed" in line
    assert "autotrader autotrade --mode=demo --symbols=BTCUSDT --capital=1000 --reset-paper" in line

    out = tmp_path / "reset.log"
    with out.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "autotrader", *args, "--reset-paper"],
                                env={**os.environ, **env}, stdout=log, stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "robot atrobot started" not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, out.read_text()[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "paper wallet and robot records reset" in out.read_text()
    store = open_state_store(f"sqlite:///{home / 'state.db'}")
    try:
        assert store.load_positions() == {} or all(p.qty == 0 for p in store.load_positions().values())
        assert store.load_ledger().cash == Decimal(1000)
    finally:
        store.close()


@pytest.mark.parametrize(("tty", "json_expected"), [(True, False), (False, True)])
def test_log_format_on_stderr_is_text_on_a_terminal_and_json_otherwise(monkeypatch, tty, json_expected) -> None:
    import io

    class _Stream(io.StringIO):
        def isatty(self) -> bool:
            return tty

    stream = _Stream()
    monkeypatch.setattr(sys, "stderr", stream)
    configure_logging("INFO")
    configure_logging("INFO", json_lines=None)
    logging.getLogger("autotrader.test_format").info("hello")
    line = stream.getvalue().strip().splitlines()[-1]
    assert line.startswith("{") is json_expected
    assert "hello" in line
    configure_logging("WARNING")
