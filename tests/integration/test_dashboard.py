"""The web dashboard against a real state store: snapshot figures, the live stream, the page, the CLI.

The store is filled through its public API the way the robot fills it (decisions with their
intents and orders, a fill with its position and cash, risk state, limit usage, equity, heartbeat,
events); every figure the dashboard serves must be the store's, or ``risk_management``'s.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from typer.testing import CliRunner

from autotrader.adapters.state import SqlStateStore, open_state_store
from autotrader.cli import app as cli_app
from autotrader.dashboard import build_snapshot, create_app
from autotrader.dashboard.snapshot import equity_curve, iso_ms
from autotrader.domain.orders import (
    Fill,
    Order,
    OrderAccepted,
    OrderFilled,
    OrderSide,
    OrderSubmitted,
    OrderType,
    SubmitOrder,
)
from autotrader.live.records import (
    Decision,
    EquitySnapshot,
    Heartbeat,
    Intent,
    IntentKind,
    Ledger,
    Outcome,
    PositionState,
    RiskSnapshot,
    RobotEvent,
)
from autotrader.live.status import risk_management
from autotrader.risk.limits import RISK_LEVELS
from tests.e2e.test_cli_data import run_cli

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC, the robot's market clock
MINUTE = 60_000
WALL = 1_750_000_000_000  # the wall clock the tests' dashboard sees


# --------------------------------------------------------------------------------- a robot's store


def decision(
    signal_id: str, symbol: str, direction: int, confidence: float, outcome: Outcome, at_ms: int, **extra: Any
) -> Decision:
    return Decision(
        signal_id,
        symbol,
        direction,
        confidence,
        at_ms - 1000,
        "1h",
        "lgbm",
        "signals[0]@1",
        at_ms - 500,
        at_ms,
        outcome,
        **extra,
    )


def new_order(cid: str, symbol: str, side: OrderSide, kind: OrderType, qty: str, at_ms: int, **prices: str) -> Order:
    command = SubmitOrder(cid, symbol, "spot", side, kind, Decimal(qty), **{k: Decimal(v) for k, v in prices.items()})
    return Order.from_command(command, at_ms)


def fill_btc_entry(store: SqlStateStore) -> None:
    """A BTC long: signal, entry order, fill, position with its stop (resting at the venue) and cash."""
    cid = "atr-entr-btc1"
    store.record_decision(
        decision(
            "sig-btc-1", "BTCUSDT", 1, 0.81, Outcome.ENTRY, T0, reason="signal", client_order_id=cid, price=40000.0
        ),
        [
            (
                Intent(cid, IntentKind.ENTRY, "BTCUSDT", OrderSide.BUY, T0, "signal", "sig-btc-1", 0.2, 10000.0),
                new_order(cid, "BTCUSDT", OrderSide.BUY, OrderType.MARKET, "0.05", T0),
            )
        ],
    )
    order = new_order(cid, "BTCUSDT", OrderSide.BUY, OrderType.MARKET, "0.05", T0).apply(OrderSubmitted(cid, T0 + 1))
    store.save_order(order, "submitted")
    order = order.apply(OrderAccepted(cid, T0 + 2, "v-1"))
    store.save_order(order, "accepted")
    fill = Fill(
        "x-1",
        cid,
        "v-1",
        "BTCUSDT",
        "spot",
        OrderSide.BUY,
        Decimal("0.05"),
        Decimal(40000),
        Decimal(2),
        "USDT",
        False,
        T0 + 3,
    )
    position = PositionState(
        "BTCUSDT",
        qty=Decimal("0.05"),
        avg_price=Decimal(40040),
        entry_ms=T0 + 3,
        entry_fees=Decimal(2),
        entry_qty=Decimal("0.05"),
        entry_value=Decimal(2000),
        entry_client_order_id=cid,
        signal_id="sig-btc-1",
        stop_client_order_id="atr-stop-btc1",
        stop_price=Decimal(39200),
    )
    ledger = Ledger(Decimal(10000), Decimal(7998), Decimal(2), Decimal(0), T0 + 3)
    assert store.record_fill(fill, order.apply(OrderFilled(cid, T0 + 3, fill)), position, ledger)
    stop_cid = "atr-stop-btc1"
    stop = new_order(stop_cid, "BTCUSDT", OrderSide.SELL, OrderType.STOP_MARKET, "0.05", T0 + 4, trigger_price="39200")
    store.save_intent(
        Intent(stop_cid, IntentKind.STOP, "BTCUSDT", OrderSide.SELL, T0 + 4, "stop_loss", "sig-btc-1"), stop
    )
    store.save_order(stop.apply(OrderSubmitted(stop_cid, T0 + 5)), "submitted")


def rest_eth_limit_and_skip_one(store: SqlStateStore) -> None:
    """An ETH limit entry resting on the book, and a signal skipped for its low confidence."""
    cid = "atr-entr-eth1"
    at = T0 + 10 * MINUTE
    store.record_decision(
        decision("sig-eth-1", "ETHUSDT", 1, 0.66, Outcome.ENTRY, at, reason="signal", client_order_id=cid),
        [
            (
                Intent(cid, IntentKind.ENTRY, "ETHUSDT", OrderSide.BUY, at, "signal", "sig-eth-1"),
                new_order(cid, "ETHUSDT", OrderSide.BUY, OrderType.LIMIT, "1.5", at, price="2400.5"),
            )
        ],
    )
    order = new_order(cid, "ETHUSDT", OrderSide.BUY, OrderType.LIMIT, "1.5", at, price="2400.5")
    store.save_order(order.apply(OrderSubmitted(cid, at + 1)).apply(OrderAccepted(cid, at + 2, "v-2")), "accepted")
    store.record_decision(
        decision("sig-eth-2", "ETHUSDT", -1, 0.41, Outcome.SKIPPED, at + MINUTE, reason="low_confidence")
    )


def mark(store: SqlStateStore, equity: float, at_ms: int, *, btc_price: float, position_fraction: float) -> None:
    """What the robot writes when it marks its book: risk state, equity snapshot, limit usage."""
    risk = store.load_risk()
    peak = max(equity, risk.peak_equity if risk else 10000.0)
    store.save_risk(RiskSnapshot(0, peak, 10050.0, T0, equity, at_ms))
    store.snapshot_equity(EquitySnapshot(at_ms, equity, 7998.0, 0.2, peak, 10050.0, 0))
    store.set_meta(
        "risk_usage",
        {
            "ts_ms": at_ms,
            "equity": equity,
            "max_position_fraction": position_fraction,
            "gross_exposure": position_fraction,
            "correlation": 0.0,
            "leverage": position_fraction,
            "prices": {"BTCUSDT": btc_price},
        },
    )


def beat(store: SqlStateStore, wall_ms: int, status: str = "running") -> None:
    store.heartbeat(Heartbeat("atrobot", T0 + 30 * MINUTE, wall_ms, 4242, "demo", status))


def robot_store(store: SqlStateStore, wall_ms: int = WALL) -> SqlStateStore:
    """``store`` as a demo robot leaves it: one BTC position with a stop, one resting ETH order, 3 signals."""
    store.set_meta("config", {"mode": "demo", "capital": 10000.0, "symbols": ["BTCUSDT", "ETHUSDT"]})
    store.set_meta("limits", RISK_LEVELS["medium"].model_dump(mode="json"))
    store.save_ledger(Ledger(Decimal(10000), Decimal(10000), updated_ms=T0))
    for i, equity in enumerate((10000.0, 10100.0, 10020.0)):
        mark(store, equity, T0 + i * MINUTE, btc_price=40000.0, position_fraction=0.0)
    fill_btc_entry(store)
    rest_eth_limit_and_skip_one(store)
    mark(store, 10023.0, T0 + 20 * MINUTE, btc_price=40500.0, position_fraction=0.2)
    store.record_event(RobotEvent(T0 + 21 * MINUTE, "fault", "timeout: order create took 2.1 s", "ETHUSDT"))
    beat(store, wall_ms - 2000)
    return store


@pytest.fixture
def store(tmp_path) -> Iterator[SqlStateStore]:
    s = open_state_store(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` on uvicorn on a free 127.0.0.1 port in a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not stop"


@contextlib.contextmanager
def client_for(store: SqlStateStore, **options: Any) -> Iterator[httpx.Client]:
    """An HTTP client of the dashboard on ``store``, served by uvicorn, whose wall clock reads ``WALL``.

    (Starlette's ``TestClient`` warns that it wants ``httpx2``; a real server needs no shim.)
    """
    with (
        serving(create_app(store, clock_ms=lambda: WALL, **options)) as url,
        httpx.Client(base_url=url, timeout=10) as c,
    ):
        yield c


# ----------------------------------------------------------------------------------- /api/snapshot


def assert_snapshot_is_the_stores(snap: dict[str, Any], store: SqlStateStore) -> None:
    block = risk_management(store, WALL)
    account = snap["account"]
    assert account["equity"] == block.equity == 10023.0
    assert account["cash"] == block.cash == 7998.0
    assert account["today_pnl"] == pytest.approx(block.today_pnl) == pytest.approx(10023.0 - 10050.0)
    assert account["drawdown"] == pytest.approx(block.drawdown) == pytest.approx(1 - 10023.0 / 10100.0)
    assert account["exposure"] == pytest.approx(block.exposure) == pytest.approx(0.05 * 40500.0)

    [position] = snap["positions"]
    [expected] = block.positions
    assert position["symbol"] == expected.symbol == "BTCUSDT"
    assert position["side"] == "long"
    assert position["qty"] == expected.qty == 0.05
    assert position["entry_price"] == expected.entry_price == 40000.0
    assert position["price"] == expected.price == 40500.0
    assert position["unrealised"] == pytest.approx(expected.unrealised) == pytest.approx(0.05 * (40500 - 40040))
    assert position["stop"] == expected.stop == 39200.0
    # the stop rests on the exchange at the initial stop-loss, 3.21 % below the price; no take-profit is set
    assert (position["stop_where"], position["stop_kind"]) == ("exchange", "initial")
    assert position["stop_distance"] == pytest.approx(expected.stop_distance) == pytest.approx(1300 / 40500)
    assert (position["take_profit"], position["take_profit_where"], position["take_profit_distance"]) == (None,) * 3
    assert position["since_ms"] == T0 + 3
    assert position["since_at"] == "2024-01-01T00:00:00.003Z"

    orders = {o["client_order_id"]: o for o in snap["orders"]}
    assert set(orders) == {o.client_order_id for o in store.load_orders(open_only=True)}
    assert set(orders) == {"atr-stop-btc1", "atr-entr-eth1"}  # the filled entry is not open
    stop, limit = orders["atr-stop-btc1"], orders["atr-entr-eth1"]
    assert (stop["side"], stop["type"], stop["kind"], stop["status"]) == ("sell", "stop_market", "stop", "submitted")
    assert (stop["qty"], stop["trigger_price"], stop["price"]) == (0.05, 39200.0, None)
    assert (limit["type"], limit["qty"], limit["price"], limit["status"]) == ("limit", 1.5, 2400.5, "accepted")
    assert limit["signal_id"] == "sig-eth-1"

    assert [s["signal_id"] for s in snap["signals"]] == ["sig-eth-2", "sig-eth-1", "sig-btc-1"]  # newest first
    skipped = snap["signals"][0]
    assert (skipped["symbol"], skipped["direction"], skipped["direction_label"]) == ("ETHUSDT", -1, "short")
    assert (skipped["confidence"], skipped["outcome"], skipped["reason"]) == (0.41, "skipped", "low_confidence")
    assert skipped["decided_ms"] == T0 + 11 * MINUTE
    assert skipped["decided_at"] == iso_ms(T0 + 11 * MINUTE) == "2024-01-01T00:11:00.000Z"

    usage = {u["name"]: u for u in snap["risk"]["usage"]}
    assert [u["name"] for u in snap["risk"]["usage"]] == [u.name for u in block.usage]
    for u in block.usage:
        assert usage[u.name]["used"] == pytest.approx(u.used)
        assert usage[u.name]["limit"] == pytest.approx(u.limit)
        assert usage[u.name]["ratio"] == pytest.approx(u.ratio)
    # usage of the CURRENT state: the open position marked at its price, not a cached figure
    assert usage["position size"]["used"] == pytest.approx(100 * 0.05 * 40500 / 10023.0)  # ~20 % against 5 %
    assert usage["position size"]["breached"] is True
    assert usage["gross exposure"]["used"] == pytest.approx(100 * 0.05 * 40500 / 10023.0)
    assert usage["drawdown"]["breached"] is False
    # each open position's distance from its price to its stop
    assert usage["stop-loss distance BTCUSDT"]["used"] == pytest.approx(100 * (40500 - 39200) / 40500)
    assert usage["stop-loss distance BTCUSDT"]["breached"] is False
    assert snap["risk"]["state"] == "ACTIVE"
    assert snap["risk"]["kill_switch"] is False
    assert snap["risk"]["min_confidence"] == RISK_LEVELS["medium"].min_confidence

    curve = [e.equity for e in store.equity_series()]
    assert snap["equity_curve"]["equity"] == curve == [10000.0, 10100.0, 10020.0, 10023.0]
    assert snap["equity_curve"]["ts_ms"] == [e.ts_ms for e in store.equity_series()]
    assert snap["faults"] == {"timeout": 1}
    assert snap["fault_count"] == 1
    assert snap["events"][0]["detail"] == "timeout: order create took 2.1 s"
    robot = snap["robot"]
    assert (robot["name"], robot["mode"], robot["status"], robot["alive"]) == ("atrobot", "demo", "alive", True)
    assert robot["heartbeat_age_s"] == 2.0
    assert robot["market_at"] == "2024-01-01T00:30:00.000Z"
    assert snap["has_data"] is True


SNAPSHOT_KEYS = {  # what the dashboard page and any other reader of /api/snapshot rely on
    "account": {"capital", "equity", "cash", "exposure", "today_pnl", "drawdown", "peak_equity"},
    "position": {
        "symbol", "side", "qty", "entry_price", "price", "value", "unrealised", "stop", "stop_where", "stop_kind",
        "stop_distance", "take_profit", "take_profit_where", "take_profit_distance", "since_ms", "since_at",
    },
    "risk": {"state", "halted", "halted_reason", "kill_switch", "min_confidence", "usage"},
}  # fmt: skip


def test_the_status_block_is_a_frozen_typed_snapshot_and_the_dashboard_json_keeps_its_keys(store) -> None:
    import dataclasses

    from autotrader.live.status import OpenPosition, RiskManagement

    robot_store(store)
    block = risk_management(store, WALL)
    assert isinstance(block, RiskManagement)
    assert [type(p) for p in block.positions] == [OpenPosition]
    with pytest.raises(dataclasses.FrozenInstanceError):
        block.equity = 0.0  # type: ignore[misc]
    snap = build_snapshot(store, WALL)
    assert set(snap["account"]) == SNAPSHOT_KEYS["account"]
    assert [set(p) for p in snap["positions"]] == [SNAPSHOT_KEYS["position"]]
    assert set(snap["risk"]) == SNAPSHOT_KEYS["risk"]
    json.dumps(snap, allow_nan=False)  # strict JSON, no dataclass left inside


def test_dashboard_snapshot_figures_are_the_stores_and_risk_managements(store) -> None:
    robot_store(store)
    with client_for(store) as client:
        response = client.get("/api/snapshot")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert_snapshot_is_the_stores(response.json(), store)


def test_dashboard_snapshot_on_postgres_equals_the_sqlite_one(postgres_schema, tmp_path) -> None:
    dsn, schema = postgres_schema
    pg = open_state_store(dsn, schema=schema)
    lite = open_state_store(f"sqlite:///{tmp_path / 'lite.db'}")
    try:
        robot_store(pg)
        robot_store(lite)
        with client_for(pg) as client:
            snap = client.get("/api/snapshot").json()
        assert_snapshot_is_the_stores(snap, pg)
        assert {k: v for k, v in snap.items() if k != "generated_ms"} == {
            k: v for k, v in build_snapshot(lite, WALL).items() if k != "generated_ms"
        }
    finally:
        pg.close()
        lite.close()


def test_dashboard_empty_store_says_no_robot_data_without_error(store) -> None:
    with client_for(store) as client:
        snap = client.get("/api/snapshot").json()
        page = client.get("/")
        health = client.get("/healthz")
    assert snap["has_data"] is False
    assert snap["robot"]["status"] == "none"
    assert snap["account"]["equity"] is None
    assert (snap["positions"], snap["orders"], snap["signals"], snap["risk"]["usage"]) == ([], [], [], [])
    assert snap["equity_curve"] == {"points": 0, "total": 0, "ts_ms": [], "equity": []}
    assert page.status_code == 200
    assert "No robot data yet" in page.text
    assert health.json() == {"ok": True}


def test_dashboard_heartbeat_older_than_30_s_is_stale_and_a_halt_shows_halted(store) -> None:
    robot_store(store)
    beat(store, WALL - 31_000)
    assert build_snapshot(store, WALL)["robot"]["status"] == "stale"
    beat(store, WALL - 31_000, status="stopped")
    assert build_snapshot(store, WALL)["robot"]["status"] == "stopped"
    store.save_risk(RiskSnapshot(2, 10100.0, 10050.0, T0, 8500.0, T0 + 40 * MINUTE, "drawdown_halt", True))
    snap = build_snapshot(store, WALL)
    assert snap["robot"]["status"] == "halted"
    assert (snap["risk"]["halted"], snap["risk"]["halted_reason"], snap["risk"]["kill_switch"]) == (
        True,
        "drawdown_halt",
        True,
    )


def test_dashboard_equity_curve_thins_long_series_keeping_ends_and_extremes() -> None:
    series = [EquitySnapshot(T0 + i * MINUTE, 10000.0 + (i % 100), 0.0, 0.0, 0.0, 0.0, 0) for i in range(10_000)]
    series[5_000] = EquitySnapshot(T0 + 5_000 * MINUTE, 7000.0, 0.0, 0.0, 0.0, 0.0, 0)  # the crash
    curve = equity_curve(series, max_points=2000)
    assert curve["points"] <= 2000
    assert curve["total"] == 10_000
    assert curve["ts_ms"][0] == series[0].ts_ms
    assert curve["ts_ms"][-1] == series[-1].ts_ms
    assert curve["ts_ms"] == sorted(curve["ts_ms"])
    assert min(curve["equity"]) == 7000.0
    assert max(curve["equity"]) == 10099.0
    short = equity_curve(series[:50])
    assert short["equity"] == [e.equity for e in series[:50]]


def test_dashboard_page_has_the_panels_and_serves_plotly_locally(store) -> None:
    with client_for(store, refresh_s=2.5) as client:
        page = client.get("/").text
        plotly_js = client.get("/static/plotly.min.js")
    for element in ("robot-status", "equity-chart", "positions", "orders", "signals", "risk", "events"):
        assert f'id="{element}"' in page
    assert '<script src="/static/plotly.min.js"></script>' in page
    assert "http://" not in page
    assert "https://" not in page
    assert "const REFRESH_MS = 2500;" in page
    assert 'new EventSource("/api/stream")' in page
    assert plotly_js.status_code == 200
    assert len(plotly_js.content) > 1_000_000
    assert b"plotly.js" in plotly_js.content[:2000]


# ----------------------------------------------------------------------------------------- stream


def read_events(lines: Iterator[str], count: int) -> list[tuple[str, dict[str, Any] | str]]:
    """The next ``count`` SSE events or comments: ``("snapshot", data)`` or ``(":", comment)``."""
    out: list[tuple[str, dict[str, Any] | str]] = []
    event, data = "message", ""
    for line in lines:
        if line.startswith(":"):
            out.append((":", line[1:].strip()))
        elif line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            data += line.split(":", 1)[1].strip()
        elif line == "" and data:
            out.append((event, json.loads(data)))
            event, data = "message", ""
        if len(out) == count:
            return out
    raise AssertionError(f"the stream ended after {out}")


def test_dashboard_stream_sends_a_snapshot_then_only_changes_then_stops_on_disconnect(store) -> None:
    robot_store(store)
    app = create_app(store, refresh_s=0.1, keepalive_s=0.5, clock_ms=lambda: WALL)
    with serving(app) as url, httpx.Client(base_url=url, timeout=5) as http:
        with http.stream("GET", "/api/stream") as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            [(kind, first)] = read_events(lines, 1)
            assert kind == "snapshot"
            assert_snapshot_is_the_stores(first, store)
            assert app.state.open_streams == 1
            # nothing changes: a keep-alive comment comes, not a second snapshot
            [(kind, comment)] = read_events(lines, 1)
            assert (kind, comment) == (":", "keep-alive")
            # the robot writes a new signal and a new mark: the next snapshots carry them
            store.record_decision(decision("sig-btc-2", "BTCUSDT", 0, 0.9, Outcome.EXIT, T0 + 40 * MINUTE))
            mark(store, 10300.0, T0 + 40 * MINUTE, btc_price=46000.0, position_fraction=0.23)
            latest: dict[str, Any] = {}
            deadline = time.monotonic() + 5
            while latest.get("account", {}).get("equity") != 10300.0 and time.monotonic() < deadline:
                [(kind, data)] = read_events(lines, 1)
                if kind == "snapshot":
                    latest = data
            assert latest["signals"][0]["signal_id"] == "sig-btc-2"
            assert latest["account"]["equity"] == 10300.0
            assert latest["positions"][0]["price"] == 46000.0
            assert latest["equity_curve"]["equity"][-1] == 10300.0
        deadline = time.monotonic() + 5
        while app.state.open_streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.open_streams == 0, "the stream kept running after the client left"
        assert http.get("/healthz").json() == {"ok": True}


def test_dashboard_snapshot_when_the_store_fails_is_503_with_the_reason(store) -> None:
    robot_store(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE heartbeat")
    with client_for(store) as client:
        response = client.get("/api/snapshot")
    assert response.status_code == 503
    assert "heartbeat" in response.json()["error"]


def test_dashboard_stream_reports_a_failing_store_once_and_keeps_the_connection(store) -> None:
    robot_store(store)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE heartbeat")
    app = create_app(store, refresh_s=0.1, keepalive_s=0.3, clock_ms=lambda: WALL)
    with (
        serving(app) as url,
        httpx.Client(base_url=url, timeout=5) as http,
        http.stream("GET", "/api/stream") as response,
    ):
        [(kind, data), (then, comment)] = read_events(response.iter_lines(), 2)
    assert kind == "problem"
    assert "heartbeat" in data["error"]
    assert (then, comment) == (":", "keep-alive")  # the same problem is not repeated every refresh


# ---------------------------------------------------------------------------------------------- CLI


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["dashboard", *args], env={"COLUMNS": "200", **(env or {})})
    text = result.output + (str(result.exception) if result.exception else "")
    return result.exit_code, text


def test_dashboard_cli_help_explains_every_option() -> None:
    code, out = invoke("--help")
    assert code == 0
    for option in ("--db", "--host", "--port", "--refresh"):
        assert option in out
    assert "POSTGRES_DSN" in out
    assert "state.db" in out


def test_dashboard_cli_refuses_a_store_that_does_not_exist_yet_without_creating_it(tmp_path) -> None:
    missing = tmp_path / "nowhere" / "state.db"
    result = run_cli("dashboard", "--db", str(missing))  # the real entry point, in its own process
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: no state store at {missing}: the robot has not run with it yet "
        "(start 'autotrader autotrade', or point --db / POSTGRES_DSN at its store)"
    ]
    assert not missing.exists()
    code, out = invoke()  # the default store under $AUTOTRADER_HOME, never written by a robot here
    assert code != 0
    assert "no state store at" in out
    assert "state.db" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--db", "mysql://u@h/db"], "expected sqlite:///PATH, a path, or postgresql://"),
        (["--db", "sqlite:///:memory:"], "in-memory store"),
        (["--refresh", "0"], "--refresh 0"),
        (["--port", "70000"], "Invalid value for '--port'"),
    ],
)
def test_dashboard_cli_bad_input_is_one_line_and_nonzero(args, message) -> None:
    code, out = invoke(*args)
    assert code != 0
    assert message in out
    assert "Traceback" not in out


def test_dashboard_cli_refuses_a_port_in_use(store, tmp_path) -> None:
    robot_store(store)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out = invoke("--db", str(tmp_path / "state.db"), "--port", str(port))
    assert code != 0
    assert f"--port {port}: the address is in use" in out
