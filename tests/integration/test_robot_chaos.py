"""Chaos: the robot is SIGKILLed at 20+ random moments while signals flow, and restarted each time.

A replayed market (exchange-sim, market clock at 120x) and a Kafka topic fed continuously with
signals (some malformed, some duplicated) drive a robot process that is killed with SIGKILL at
random moments — during start-up, reconciliation, decisions, order sends — and restarted at once
(forked from a pre-imported parent, see ``robot_zygote.py``). Tight stop-losses make stops fill at
the exchange while the robot is down. Afterwards, with the market frozen and one last clean run:

* no client order id appears twice at the exchange, and every order there with the robot's
  prefix is one the store knows; no signal got two entry orders;
* the stored positions equal the exchange's coin balances, exactly; the stored cash equals the
  USDT balance, so equity reconciles to the exchange's;
* every valid signal has a decision (acted on, or skipped with a reason), every malformed one a
  dead letter;
* every open position has exactly one stop resting at the exchange, and nothing else is open.
"""

from __future__ import annotations

pytest_plugins = ["conftest_kafka"]

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from robot_harness import new_account, sim_server, venue_equity, venue_view  # noqa: E402

from autotrader.adapters.broker.kafka import KafkaSignalPublisher  # noqa: E402
from autotrader.adapters.state import open_state_store  # noqa: E402
from autotrader.live.records import IntentKind, Outcome  # noqa: E402

KILLS = 22
TAG = "chaos"


class Zygote:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        script = Path(__file__).with_name("robot_zygote.py")
        self.proc = subprocess.Popen(
            [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        ready = json.loads(self.proc.stdout.readline())
        assert "ready" in ready
        self.n = 0

    def spawn(self, spec: dict, env: dict[str, str]) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.n += 1
        request = {"spawn": spec, "log": str(self.log_dir / f"robot-{self.n:02d}.log"), "env": env}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return int(json.loads(self.proc.stdout.readline())["pid"])

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"exit": True}) + "\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        assert time.monotonic() < deadline, f"robot {pid} did not exit"
        time.sleep(0.02)


class Publisher(threading.Thread):
    """Feeds the topic: valid signals (unique ids), some malformed, some duplicates."""

    def __init__(self, url: str, clock_ms, seed: int = 7) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.clock_ms = clock_ms
        self.rng = random.Random(seed)
        self.valid: list[str] = []
        self.invalid = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with KafkaSignalPublisher(self.url) as publisher:
            i = 0
            while not self.stop.is_set():
                i += 1
                if i % 17 == 0:
                    publisher.send_raw(b'{"id": "broken", "symbol": ', key=b"x")
                    self.invalid += 1
                elif i % 13 == 0 and self.valid:
                    publisher.send_raw(self._message(self.rng.choice(self.valid)), key=b"x")  # duplicate
                else:
                    signal_id = f"c-{i:05d}"
                    publisher.send_raw(self._message(signal_id), key=b"x")
                    self.valid.append(signal_id)
                publisher.flush()
                time.sleep(0.08)

    def _message(self, signal_id: str) -> bytes:
        rng = random.Random(signal_id)
        return json.dumps(
            {
                "id": signal_id,
                "symbol": rng.choice(["BTCUSDT", "ETHUSDT"]),
                "ts": self.clock_ms(),
                "direction": rng.choice(["long", "long", "flat", "short"]),
                "confidence": round(rng.uniform(0.45, 0.95), 3),
                "horizon": "1h",
                "model": "chaos-model",
            }
        ).encode()


@pytest.mark.slow
def test_robot_chaos_sigkill_restarts_lose_nothing_and_duplicate_nothing(kafka_url, tmp_path) -> None:
    rng = random.Random(20260720)
    db = f"sqlite:///{tmp_path / 'state.db'}"
    with sim_server(speed=120.0, ws_tick_s=0.1) as sim:
        key, secret = new_account(sim, "10000")
        spec = {
            "config": {
                "symbols": ["BTCUSDT", "ETHUSDT"],
                "timeframe": "1m",
                "capital": 10_000.0,
                "risk_level": "aggressive",
                "risk_overrides": {"stop_loss": 0.004},
                "tag": TAG,
                "poll_interval_s": 0.1,
                "reconcile_interval_s": 3.0,
                "lookback_bars": 200,
                "price_max_age_s": 0.5,
            },
            "db": db,
            "exchange_url": sim.url,
            "signals": kafka_url,
            "kill_switch_file": str(tmp_path / "KILL"),
            "kafka_group": "chaos-robot",
            "kafka_session_timeout_ms": 2000,
        }
        env = {"BYBIT_API_KEY": key, "BYBIT_API_SECRET": secret, "AUTOTRADER_HOME": str(tmp_path / "home")}
        zygote = Zygote(tmp_path)
        publisher = Publisher(kafka_url, sim.state.clock.now_ms)
        try:
            publisher.start()
            started = time.monotonic()
            for k in range(KILLS):
                pid = zygote.spawn(spec, env)
                # half of the kills land in start-up, reconciliation or the group join, half while trading
                time.sleep(rng.uniform(0.2, 2.0) if k % 2 else rng.uniform(4.5, 7.0))
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid)
            publisher.stop.set()
            publisher.join(10)
            sim.admin.set_speed(0.0)  # freeze the market: no stop can fill after the last reconciliation
            final = zygote.spawn(spec, env)
            store = open_state_store(db)
            deadline = time.monotonic() + 60
            while not _all_decided(store, publisher):
                assert alive(final), _tail(tmp_path)
                assert time.monotonic() < deadline, f"signals left undecided; {_tail(tmp_path)}"
                time.sleep(0.3)
            time.sleep(1.0)  # let it finish acting on the last decisions
            os.kill(final, signal.SIGTERM)
            wait_gone(final)
            elapsed = time.monotonic() - started
        finally:
            publisher.stop.set()
            zygote.close()
        view = venue_view(sim, key)
        prices = {s: float(sim.state.engine.replay.price(s)) for s in ("BTCUSDT", "ETHUSDT")}

    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("robot-*.log")))
    assert "robot failed" not in logs, _tail(tmp_path)
    starts = logs.count('"message": "robot chaos started')
    assert starts >= 5  # most children were killed before or after they finished starting

    # 1. nothing twice at the exchange, nothing unknown, no signal with two entries
    ours = [link for link in view["link_ids"] if link]
    assert len(ours) == len(set(ours))
    prefix = f"{TAG}-"
    unknown = [link for link in ours if link.startswith(prefix) and store.load_order(link) is None]
    assert unknown == []
    entries = Counter(
        store.load_order(link).signal_id for link in ours if store.load_order(link).kind is IntentKind.ENTRY
    )
    assert entries and max(entries.values()) == 1

    # 2. positions and cash equal the exchange's; equity reconciles
    positions = store.load_positions()
    for symbol, coin in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH")):
        mine = positions[symbol].qty if symbol in positions else Decimal(0)
        assert mine == view["wallet"].get(coin, Decimal(0)), symbol
    ledger = store.load_ledger()
    assert ledger.cash == view["wallet"]["USDT"]
    mine_equity = ledger.cash + sum((p.qty * Decimal(repr(prices[s])) for s, p in positions.items()), Decimal(0))
    assert abs(mine_equity - venue_equity(view, prices)) < Decimal("1e-9")

    # 3. every signal decided (acted on or skipped with a reason), every malformed one dead-lettered
    decisions = {d.signal_id: d for d in store.decisions()}
    missing = [s for s in publisher.valid if s not in decisions]
    assert missing == []
    for d in decisions.values():
        assert d.outcome in (Outcome.ENTRY, Outcome.EXIT) or d.reason, d
    assert len(store.dead_letters()) == publisher.invalid  # once each, however often redelivered
    outcomes = Counter(d.outcome for d in decisions.values())
    assert outcomes[Outcome.ENTRY] >= 5
    assert outcomes[Outcome.EXIT] >= 2

    # 4. every open position has exactly one resting stop, nothing else open
    open_orders = view["open"]
    for symbol in ("BTCUSDT", "ETHUSDT"):
        pos = positions.get(symbol)
        stops = [link for link in open_orders if link.startswith(f"{prefix}{symbol}-sl-")]
        holding = pos is not None and pos.entry_qty > 0
        assert len(stops) == (1 if holding else 0), (symbol, pos, open_orders)
    assert all("-sl-" in link for link in open_orders)
    assert [o for o in store.load_orders(open_only=True) if o.kind is not IntentKind.STOP] == []
    fills_at_venue = {e["execId"] for e in view["executions"] if e["orderLinkId"].startswith(prefix)}
    assert fills_at_venue == {f.fill.fill_id for f in store.load_fills()}
    reasons = Counter(d.reason for d in decisions.values() if d.outcome is Outcome.SKIPPED)
    print(
        f"chaos: {KILLS} kills in {elapsed:.1f} s, {starts} completed starts, {len(decisions)} decisions "
        f"{dict(outcomes)}, skipped {dict(reasons)}, {len(fills_at_venue)} fills, {len(store.load_trades())} trades"
    )
    store.close()


def _all_decided(store, publisher: Publisher) -> bool:
    decided = {d.signal_id for d in store.decisions()}
    return all(s in decided for s in publisher.valid) and len(store.dead_letters()) >= publisher.invalid


def _tail(path: Path) -> str:
    logs = sorted(path.glob("robot-*.log"))
    if not logs:
        return "no robot logs"
    return logs[-1].read_text()[-3000:]
