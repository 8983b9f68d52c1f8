"""Fuzz targets: every way bytes from outside reach AutoTrader, each with its accepted / rejected contract.

Shared by the short hypothesis pass of the test suite (``tests/fuzz/test_fuzz.py``) and the volume run
(``python -m bench fuzz``, at least 100,000 inputs per target). Each target turns an input into

* **accepted** - the input was taken (a decision persisted, candles returned, settings built ...);
* **rejected** - refused with the error type its caller expects (``DataError``, ``ConfigError``, an
  ``invalid`` intake verdict ...), in one line, and without changing any stored state;
* **unhandled** - anything else escaped, or an invariant on the stored state broke. Must be 0.

Inputs come from valid seeds (recorded Bybit payloads, a real backtest report, candle files in every
format, a full configuration), mutated by a seeded random generator (cheap, so 100,000 inputs take
seconds to minutes), or, in the test pass, from hypothesis strategies (which drive the same mutator
through ``st.randoms`` and add raw binaries and structured values).

Targets:

* ``signals``  - ``classify`` and the robot's intake (``Robot.handle``) on a SQLite state store;
* ``import``   - ``import_candles`` on CSV, CSV.gz, JSON, JSON.gz and Parquet files;
* ``analyze``  - the backtest JSON as ``autotrader analyze`` reads it (``load_report``, the saved
  configuration, the metrics summary);
* ``exchange`` - every Bybit v5 parser on mutated recorded payloads;
* ``config``   - ``load_settings`` on a mutated TOML file and environment.
"""

from __future__ import annotations

import asyncio
import copy
import gzip
import importlib.util
import io
import json
import os
import random
import shutil
import string
import tempfile
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "seeds"
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
HOUR_MS = 3_600_000


# ------------------------------------------------------------------------------------ mutation


INTERESTING_BYTES = [
    b"",
    b"0",
    b"-1",
    b"1e999",
    b"-1e308",
    b"NaN",
    b"Infinity",
    b"null",
    b"true",
    b"99999999999999999999999999999",
    b"\x00",
    b"\xff\xfe",
    b"\xc3(",
    b'"',
    b"'",
    b",",
    b";",
    b"\t",
    b"\n",
    b"\r\n",
    b"[",
    b"]",
    b"{",
    b"}",
    b":",
    b"=",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    "é€😀".encode(),
    b"2024-13-45T25:61:61",
    b" ",
]

INTERESTING_VALUES: list[Any] = [
    None,
    "",
    " ",
    "x",
    "abc",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "1e999",
    "-1",
    "0",
    "1.5",
    "99999999999999999999999",
    0,
    -1,
    1,
    2,
    1.5,
    -0.0,
    1e308,
    -1e308,
    float("nan"),
    float("inf"),
    10**30,
    -(10**30),
    2**63,
    True,
    False,
    [],
    {},
    [[]],
    [None],
    {"": None},
    "9" * 5000,
    "x" * 300,
    "\x00",
    "\ud800",
    "2024-13-45",
    "2024-01-01T00:00:00Z",
    "Buy",
    "Sell",
    "Filled",
    "linear",
    "spot",
]


def mutate_bytes(data: bytes, rng: random.Random, others: list[bytes] | None = None) -> bytes:
    """1-4 random byte-level edits: flips, inserts, deletes, duplicated or repeated chunks, splices."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        n = len(buf)
        at = rng.randint(0, n)
        if op == 0 and n:
            buf[rng.randrange(n)] = rng.randrange(256)
        elif op == 1:
            buf[at:at] = rng.choice(INTERESTING_BYTES)
        elif op == 2 and n:
            end = min(n, at + rng.randint(1, 32))
            del buf[at:end]
        elif op == 3 and n:
            end = min(n, at + rng.randint(1, 64))
            buf[at:at] = buf[at:end] * rng.randint(1, 4)
        elif op == 4:
            del buf[at:]  # truncate
        elif op == 5:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 6 and others:
            other = rng.choice(others)
            cut = rng.randint(0, len(other))
            buf = buf[:at] + bytearray(other[cut:])
        elif op == 7 and n:
            end = min(n, at + rng.randint(1, 8))
            buf[at:end] = rng.choice(INTERESTING_BYTES)
        elif op == 8 and n and rng.random() < 0.2:
            buf[at:at] = buf[at : at + 16] * rng.randint(100, 2000)  # oversized
    return bytes(buf)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.7 or depth > 2:
        return copy.deepcopy(rng.choice(INTERESTING_VALUES))
    if roll < 0.8:
        return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12)))
    if roll < 0.9:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "id", "list", "result", "x"]): random_value(rng, depth + 1) for _ in range(2)}


def _walk(obj: Any, rng: random.Random) -> list[Any]:
    """A random path from the root: at each level, stop or descend into a random key or item."""
    path: list[Any] = []
    node = obj
    while isinstance(node, dict | list) and node and rng.random() < 0.75:
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(min(len(node), 8))
        path.append(key)
        node = node[key]
    return path


def _apply(parent: Any, key: Any, rng: random.Random) -> None:
    """One edit of ``parent[key]`` (``parent`` is already a private copy)."""
    op = rng.randrange(6)
    if op <= 2:
        parent[key] = random_value(rng)
    elif op == 3 and isinstance(parent, dict):
        del parent[key]
    elif op == 3:
        del parent[key:]
    elif op == 4 and isinstance(parent, dict):
        parent[rng.choice(["extra", "", "ID", str(key) + " "])] = random_value(rng)
    elif op == 4:
        parent.append(parent[key])
    else:
        value = parent[key]
        if isinstance(value, str) and value:
            parent[key] = value * rng.randint(2, 50) if rng.random() < 0.5 else value[: rng.randrange(len(value))]
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parent[key] = rng.choice([str(value), -value, value * 10 ** rng.randint(1, 30), value + 1])
        else:
            parent[key] = random_value(rng)


def _edit(node: Any, path: list[Any], rng: random.Random) -> Any:
    """``node`` with one edit at ``path``, copying only the containers on the path (the seed is never changed)."""
    if not path:
        return random_value(rng) if rng.random() < 0.05 else node
    out = dict(node) if isinstance(node, dict) else list(node)
    if len(path) == 1:
        _apply(out, path[0], rng)
    else:
        out[path[0]] = _edit(node[path[0]], path[1:], rng)
    return out


def mutate_tree(obj: Any, rng: random.Random, edits: int | None = None) -> Any:
    """A JSON-like value with 1-3 edits: a value replaced, a key dropped or added, a list cut, a string grown."""
    out = obj
    for _ in range(edits or rng.randint(1, 3)):
        out = _edit(out, _walk(out, rng), rng)
    return out


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


# --------------------------------------------------------------------------------------- targets


class Rejected(Exception):
    """Raised by a target's ``run`` for an input refused the expected way."""


def one_line(error: Exception) -> None:
    """A rejection must be one line for a person (no traceback, no multi-line dump)."""
    if "\n" in str(error):
        raise AssertionError(f"a {type(error).__name__} of more than one line: {str(error)[:200]!r}")


@dataclass
class Tally:
    """What one target did with its inputs."""

    name: str
    tried: int = 0
    accepted: int = 0
    rejected: int = 0
    unhandled: int = 0
    examples: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    kinds: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (
            f"{self.name:<9} tried {self.tried:>8,}  accepted {self.accepted:>8,}  "
            f"rejected {self.rejected:>8,}  unhandled {self.unhandled:>4,}"
        )


class Target:
    """One fuzz target: ``generate`` an input, ``run`` it (True accepted, ``Rejected``, else unhandled)."""

    name = ""

    def open(self, workdir: Path) -> None:
        self.workdir = workdir

    def generate(self, rng: random.Random) -> Any:
        raise NotImplementedError

    def run(self, inp: Any) -> None:
        raise NotImplementedError

    def check(self) -> None:
        """Assert the invariants on stored state (called every few hundred inputs and at the end)."""

    def close(self) -> None:
        pass


def execute(target: Target, inp: Any, tally: Tally) -> None:
    """Run one input and count it."""
    tally.tried += 1
    try:
        target.run(inp)
    except Rejected as e:
        tally.rejected += 1
        tally.kinds[str(e)] += 1
    except Exception as e:
        tally.unhandled += 1
        where = traceback.extract_tb(e.__traceback__)[-1]
        kind = f"{type(e).__name__} at {Path(where.filename).name}:{where.lineno}"
        if kind not in tally.seen and len(tally.examples) < 8:  # one example per distinct failure
            tally.seen.add(kind)
            tally.examples.append(f"{kind}: {str(e)[:160]} for {repr(inp)[:200]}")
    else:
        tally.accepted += 1


def _generate(target: Target, rng: random.Random) -> Any:
    """The next input; a generator that trips over its own mutation just draws again."""
    for _ in range(100):
        try:
            return target.generate(rng)
        except Exception:  # a bad draw of the generator, not a finding
            continue
    raise RuntimeError(f"the {target.name} generator failed 100 times in a row")


def check(target: Target, tally: Tally) -> None:
    try:
        target.check()
    except AssertionError as e:
        tally.unhandled += 1
        tally.examples.append(f"stored state broke an invariant: {e}")


def fuzz(target: Target, n: int, seed: int = 0, workdir: Path | None = None, every: int = 500) -> Tally:
    """Run ``n`` generated inputs through ``target``; the invariants are checked every ``every`` inputs."""
    tally = Tally(target.name)
    rng = random.Random(f"{target.name}-{seed}")
    own = workdir is None
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None  # a private mkdtemp folder in RAM
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target.name}-", dir=shm)) if own else workdir
    assert work is not None
    target.open(work)
    try:
        for i in range(n):
            execute(target, _generate(target, rng), tally)
            if (i + 1) % every == 0:
                check(target, tally)
        check(target, tally)
    finally:
        target.close()
        if own:
            shutil.rmtree(work, ignore_errors=True)
    return tally


# --------------------------------------------------------------------------------- (a) signals


def valid_signal(i: int) -> dict[str, Any]:
    rng = random.Random(i)
    return {
        "id": f"s-{i}",
        "symbol": rng.choice(["BTCUSDT", "ETHUSDT", "btc/usdt", "SOLUSDT"]),
        "ts": T0 + rng.randint(-10, 10) * HOUR_MS,
        "direction": rng.choice(["long", "short", "flat", 1, -1, 0, "+1"]),
        "confidence": rng.choice([0.0, 0.5, 0.62, 1, 1.0]),
        "horizon": rng.choice(["30m", "4h", "1d", "4H", "30d", "2w"]),
        "model": rng.choice(["lgbm-v3", "m", "x" * 200]),
    }


class SignalTarget(Target):
    """Prediction messages through ``classify`` and the robot's intake, on a SQLite state store.

    Accepted: a valid ``Prediction`` (accepted, duplicate or stale) whose decision the robot stored.
    Rejected: an ``invalid`` verdict, dead-lettered (only a bounded ``dead_letters`` row is written).
    Unhandled: anything escaping ``Robot.handle``, a message that took the poison path (its decision
    or persistence raised), or a store whose rows disagree with the verdicts.
    """

    name = "signals"

    def open(self, workdir: Path) -> None:
        from autotrader.adapters.state import open_state_store
        from autotrader.live.clock import FunctionClock
        from autotrader.live.robot import Robot, RobotConfig
        from autotrader.live.signal_intake import SignalIntake

        super().open(workdir)
        self.store = open_state_store("sqlite:///:memory:")
        self.poisoned: list[str] = []
        target = self

        class IntakeOnly(SignalIntake):
            """The robot's intake with the trade decision replaced by a recorded skip (no exchange)."""

            async def on_signal(self, p: Any, source: str, received_ms: int, perf: float, **_kw: Any) -> None:
                self._record_skip(p, source, received_ms, "fuzz", f"{p.symbol} {p.direction} {p.horizon}")

            async def _poison(self, delivery: Any, error: Exception) -> None:
                target.poisoned.append(f"{type(error).__name__}: {str(error)[:200]}")
                await super()._poison(delivery, error)

        config = RobotConfig(symbols=("BTCUSDT", "ETHUSDT"), timeframe="1h", capital=1000.0)
        self.robot = Robot(config, None, self.store, FunctionClock(lambda: T0 + 60_000))  # type: ignore[arg-type]
        robot = self.robot
        robot.intake = IntakeOnly(robot.state, robot.exits, robot.pause, robot.exchange_fault, robot.store_fault)
        self.loop = asyncio.new_event_loop()
        self.offset = 0
        self.counted: Counter[str] = Counter()
        self.seeds = [dumps(valid_signal(i)) for i in range(20)]

    def generate(self, rng: random.Random) -> bytes | None:
        roll = rng.random()
        message = valid_signal(rng.randrange(1000))
        message["id"] = f"f-{rng.getrandbits(40):x}"  # mostly new ids, so most valid ones are decided
        if roll < 0.6:
            return dumps(mutate_tree(message, rng))
        if roll < 0.75:
            return dumps(message)
        if roll < 0.92:
            return mutate_bytes(dumps(message), rng, self.seeds)
        if roll < 0.95:  # a key given twice
            text = dumps(message)
            key = rng.choice(list(message))
            return text.replace(b"{", b'{"' + key.encode() + b'": ' + dumps(random_value(rng)) + b", ", 1)
        if roll < 0.99:
            return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
        return None

    def run(self, inp: bytes | None) -> None:
        from autotrader.signals.intake import MAX_DETAIL_CHARS, Delivery, Verdict, classify

        outcome = classify(inp, T0 + 60_000, self.store.seen)
        assert len(outcome.detail) <= MAX_DETAIL_CHARS, "intake detail longer than its bound"
        delivery = Delivery(outcome.prediction, outcome, inp or b"", 0, self.offset, "fuzz", T0 + 60_000)
        self.offset += 1
        before = len(self.poisoned)
        self.loop.run_until_complete(self.robot.handle([delivery]))
        if len(self.poisoned) > before:
            raise RuntimeError(f"poison path: {self.poisoned[-1]}")
        self.counted[outcome.verdict.value] += 1
        if outcome.verdict is Verdict.INVALID:
            raise Rejected(outcome.reason)

    def check(self) -> None:
        counts = self.store.counts()
        decided = self.counted["accepted"] + self.counted["stale"]
        assert counts["signals"] == decided, f"{counts['signals']} decisions stored for {decided} decided signals"
        assert counts["dead_letters"] == self.counted["invalid"], (
            f"{counts['dead_letters']} dead letters for {self.counted['invalid']} rejected messages"
        )
        assert counts["intents"] == counts["orders"] == counts["fills"] == 0, (
            f"a signal changed trading state: {counts}"
        )
        for letter in self.store.dead_letters(since_ms=T0):
            assert len(letter.raw) <= 4096 and "\x00" not in letter.raw, "unbounded dead letter"

    def close(self) -> None:
        self.loop.close()
        self.store.close()


# ---------------------------------------------------------------------------------- (b) import


def candle_rows(n: int = 24) -> list[list[Any]]:
    rng = random.Random(5)
    rows, price = [], 42_000.0
    for i in range(n):
        o = price
        c = o * (1 + rng.uniform(-0.01, 0.01))
        h, lo = max(o, c) * 1.002, min(o, c) * 0.998
        rows.append(
            [T0 + i * HOUR_MS, round(o, 2), round(h, 2), round(lo, 2), round(c, 2), round(rng.uniform(1, 9), 3)]
        )
        price = c
    return rows


def candle_seeds() -> dict[str, bytes]:
    """A valid 24-bar 1h file per format (suffix -> bytes)."""
    import pandas as pd

    rows = candle_rows()
    csv = "ts,open,high,low,close,volume\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    binance = "".join(",".join(map(str, r)) + ",0,0,0,0,0\n" for r in rows)
    iso = "date;o;h;l;c;v\n" + "".join(
        ";".join([pd.Timestamp(r[0], unit="ms", tz="UTC").isoformat(), *map(str, r[1:])]) + "\n" for r in rows
    )
    frame = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    objects = [dict(zip(["timestamp", "open", "high", "low", "close", "volume"], r, strict=True)) for r in rows]
    return {
        ".csv": csv.encode(),
        ".csv ": binance.encode(),  # headerless (Binance dump); the space is dropped from the file name
        ".csv  ": iso.encode(),
        ".csv.gz": gzip.compress(csv.encode(), mtime=0),
        ".json": dumps(rows),
        ".json ": dumps(objects),
        ".json.gz": gzip.compress(dumps(rows), mtime=0),
        ".parquet": parquet.getvalue(),
    }


class ImportTarget(Target):
    """Candle files through ``import_candles`` (what ``autotrader data import`` stores when it returns).

    Accepted: candles returned. Rejected: ``DataError``. The importer writes nothing: after every input
    the work folder holds only the input files.
    """

    name = "import"

    def open(self, workdir: Path) -> None:
        super().open(workdir)
        self.seeds = candle_seeds()
        self.texts = [v for k, v in self.seeds.items() if not k.strip().endswith((".gz", ".parquet"))]
        self.trees = {k: json.loads(v) for k, v in self.seeds.items() if k.strip() == ".json"}

    def generate(self, rng: random.Random) -> tuple[str, bytes]:
        suffix = rng.choice(list(self.seeds))
        data = self.seeds[suffix]
        kind = suffix.strip()
        roll = rng.random()
        if kind == ".json" and roll < 0.5:
            return suffix, dumps(mutate_tree(self.trees[suffix], rng))
        if kind.startswith(".csv") and kind != ".csv.gz" and roll < 0.5:
            return suffix, self._mutate_cells(data, rng)
        if kind.endswith(".gz") and roll < 0.7:  # a well-formed gzip of a mutated file
            inner = gzip.decompress(data)
            return suffix, gzip.compress(mutate_bytes(inner, rng, self.texts), mtime=0)
        if kind == ".parquet" and roll < 0.3:
            return suffix, self._mutate_frame(rng)
        return suffix, mutate_bytes(data, rng, self.texts)

    def _mutate_cells(self, data: bytes, rng: random.Random) -> bytes:
        lines = data.split(b"\n")
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(lines))
            sep = b";" if b";" in lines[0] else b","
            cells = lines[i].split(sep)
            j = rng.randrange(len(cells))
            cells[j] = (
                rng.choice(INTERESTING_BYTES)
                if rng.random() < 0.7
                else str(random_value(rng)).encode("utf-8", "replace")
            )
            lines[i] = sep.join(cells)
            if rng.random() < 0.2:
                lines.insert(rng.randrange(len(lines)), lines[i])  # a duplicated row
        return b"\n".join(lines)

    def _mutate_frame(self, rng: random.Random) -> bytes:
        import pandas as pd

        rows = candle_rows()
        frame = pd.DataFrame(rows, columns=["ts", "open", "high", "low", "close", "volume"])
        column = rng.choice(list(frame.columns))
        roll = rng.random()
        if roll < 0.3:
            frame = frame.rename(columns={column: rng.choice(["", "Open", "x", "date", "TS"])})
        elif roll < 0.6:
            frame[column] = frame[column].astype(str)
            text = str(rng.choice(INTERESTING_VALUES)).encode("utf-8", "replace").decode()
            frame.loc[rng.randrange(len(frame)), column] = text
        elif roll < 0.8:
            frame[column] = rng.choice([float("nan"), -1.0, 1e308, 0.0, 10**18])
        else:
            frame = frame.drop(columns=[column])
        out = io.BytesIO()
        frame.to_parquet(out, index=rng.random() < 0.3)
        return out.getvalue()

    def run(self, inp: tuple[str, bytes]) -> None:
        from autotrader.domain.errors import DataError
        from autotrader.marketdata.importer import import_candles

        suffix, data = inp
        path = self.workdir / f"candles{suffix.strip()}"
        path.write_bytes(data)
        try:
            import_candles(path, "1h")
        except DataError as e:
            one_line(e)
            raise Rejected("DataError") from None
        finally:
            path.unlink()

    def check(self) -> None:
        left = os.listdir(self.workdir)
        assert not left, f"the importer left files behind: {left[:3]}"


# --------------------------------------------------------------------------------- (c) analyze


class _NullConsole:
    """Takes what ``analyze`` prints without laying it out (the rows are built from the file all the same)."""

    def print(self, *_args: Any, **_kw: Any) -> None:
        pass


class AnalyzeTarget(Target):
    """A backtest JSON file as ``autotrader analyze`` reads it: ``load_report``, the saved configuration
    (``BacktestConfig``) and the metrics summary it prints first.

    Accepted: all three went through. Rejected: ``DataError`` (one line). Writes nothing.
    """

    name = "analyze"

    def open(self, workdir: Path) -> None:
        super().open(workdir)
        self.seed_text = (SEEDS / "backtest.json").read_bytes()
        self.seed = json.loads(self.seed_text)
        self.console = _NullConsole()

    def generate(self, rng: random.Random) -> bytes:
        roll = rng.random()
        if roll < 0.8:
            return dumps(mutate_tree(self.seed, rng))
        if roll < 0.95:
            return mutate_bytes(self.seed_text, rng)
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))

    def run(self, inp: bytes) -> None:
        from autotrader.analytics.report_data import load_report
        from autotrader.cli.analyze import _render_metrics
        from autotrader.domain.errors import DataError
        from autotrader.validation.analysis import saved_config

        path = self.workdir / "backtest.json"
        path.write_bytes(inp)
        try:
            doc = load_report(path)
            saved_config(doc, path)
            _render_metrics(self.console, doc)
        except DataError as e:
            one_line(e)
            raise Rejected("DataError") from None


# -------------------------------------------------------------------------------- (d) exchange


def _recorded_payloads() -> dict[str, Any]:
    """The Bybit v5 payloads recorded in ``tests/unit/test_bybit_parsers.py`` (shaped as Bybit's docs show)."""
    path = HERE.parent / "unit" / "test_bybit_parsers.py"
    spec = importlib.util.spec_from_file_location("_bybit_payloads", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {k: v for k, v in vars(module).items() if k.isupper() and isinstance(v, dict)}


def _parser_calls() -> list[tuple[str, str, Callable[[Any], Any]]]:
    from autotrader.adapters.exchange import parsers as p

    return [
        ("LINEAR_INSTRUMENTS", "parse_instruments", lambda x: p.parse_instruments(x, "linear")),
        ("SPOT_INSTRUMENTS", "parse_instruments", lambda x: p.parse_instruments(x, "spot")),
        ("KLINE", "parse_kline", lambda x: p.parse_kline(x, "1h", now_ms=T0 + 10**12)),
        ("SPOT_TICKERS", "parse_tickers", lambda x: p.parse_tickers(x, "spot")),
        ("WALLET", "parse_balance", p.parse_balance),
        ("POSITIONS", "parse_positions", p.parse_positions),
        ("OPEN_ORDERS", "parse_orders", lambda x: p.parse_orders(x, "linear")),
        ("EXECUTIONS", "parse_fills", lambda x: p.parse_fills(x, "spot")),
        ("ORDER_ACK", "parse_order_ack", p.parse_order_ack),
        ("SERVER_TIME", "parse_server_time", p.parse_server_time),
        ("WS_KLINE", "parse_ws_kline", p.parse_ws_kline),
        ("WS_EXECUTION", "parse_ws_fills", p.parse_ws_fills),
        ("WS_POSITION", "parse_ws_positions", p.parse_ws_positions),
        ("WS_ORDER", "parse_ws_orders", p.parse_ws_orders),
        ("OPEN_ORDERS", "next_cursor", p.next_cursor),
        ("KLINE", "envelope_time_ms", p.envelope_time_ms),
    ]


class ExchangeTarget(Target):
    """Every Bybit v5 parser on mutated recorded payloads (pure: nothing is stored).

    Accepted: a domain value came back. Rejected: ``DataError`` or ``ExchangeError`` (the error
    mapped from ``retCode``).
    """

    name = "exchange"

    def open(self, workdir: Path) -> None:
        super().open(workdir)
        self.payloads = _recorded_payloads()
        self.calls = _parser_calls()

    def generate(self, rng: random.Random) -> tuple[int, Any]:
        i = rng.randrange(len(self.calls))
        payload = self.payloads[self.calls[i][0]]
        if rng.random() < 0.9:
            return i, mutate_tree(payload, rng)
        try:
            return i, json.loads(mutate_bytes(dumps(payload), rng))
        except (ValueError, RecursionError):
            return i, random_value(rng)

    def run(self, inp: tuple[int, Any]) -> None:
        from autotrader.domain.errors import DataError, ExchangeError

        i, payload = inp
        try:
            self.calls[i][2](payload)
        except (DataError, ExchangeError) as e:
            raise Rejected(type(e).__name__) from None


# ---------------------------------------------------------------------------------- (e) config


CONFIG_TOML = """\
log_level = "INFO"

[storage]
backend = "embedded"
postgres_schema = "public"
seed_bundled = true

[exchange]
base_url = "http://127.0.0.1:8080"

[kafka]
security_protocol = "sasl_plaintext"
sasl_mechanism = "SCRAM-SHA-256"
sasl_username = "robot"
sasl_password = "secret"
"""

ENV_NAMES = [
    "POSTGRES_DSN",
    "AUTOTRADER_STORE",
    "BYBIT_API_KEY",
    "BYBIT_API_SECRET",
    "BYBIT_BASE_URL",
    "AUTOTRADER_KAFKA_SECURITY_PROTOCOL",
    "AUTOTRADER_KAFKA_SASL_MECHANISM",
    "AUTOTRADER_KAFKA_SASL_USERNAME",
    "AUTOTRADER_KAFKA_SASL_PASSWORD",
    "AUTOTRADER_KAFKA_SSL_CA_LOCATION",
]
TOML_VALUES = ['""', "0", "-1", "1e999", "nan", "true", "[]", "{}", '"x"', '"DEBUG"', '"postgres"', "1979-05-27", "'''"]


class ConfigTarget(Target):
    """``load_settings`` on a mutated TOML file and environment.

    Accepted: ``Settings`` built. Rejected: ``ConfigError`` (one line, naming the file or setting).
    """

    name = "config"

    def open(self, workdir: Path) -> None:
        super().open(workdir)
        self.lines = CONFIG_TOML.splitlines()

    def generate(self, rng: random.Random) -> tuple[bytes, dict[str, str]]:
        lines = list(self.lines)
        for _ in range(rng.randint(0, 3)):
            i = rng.randrange(len(lines))
            roll = rng.random()
            if roll < 0.5 and "=" in lines[i]:
                key = lines[i].split("=", 1)[0]
                lines[i] = f"{key}= {rng.choice(TOML_VALUES)}"
            elif roll < 0.65:
                del lines[i]
            elif roll < 0.8:
                lines.insert(i, rng.choice(["[storage]", "[x]", "unknown = 1", "[kafka]", "log_level = 'WARNING'"]))
            else:
                lines[i] = lines[i].replace("=", rng.choice(["==", ":", "= =", "="]), 1)
        text = ("\n".join(lines) + "\n").encode()
        if rng.random() < 0.2:
            text = mutate_bytes(text, rng)
        env = {"AUTOTRADER_HOME": str(self.workdir / "home")}
        for _ in range(rng.randint(0, 3)):
            value = rng.choice([*INTERESTING_VALUES, "sasl_ssl", "ssl", "PLAIN", "postgresql://u:p@h/db", "embedded"])
            env[rng.choice(ENV_NAMES)] = str(value)
        return text, env

    def run(self, inp: tuple[bytes, dict[str, str]]) -> None:
        from autotrader.config import load_settings
        from autotrader.domain.errors import ConfigError

        text, env = inp
        path = self.workdir / "config.toml"
        path.write_bytes(text)
        try:
            settings = load_settings(path, env={k: v.replace("\x00", "") for k, v in env.items()})
            settings.kafka.client_config()
        except ConfigError as e:
            one_line(e)
            raise Rejected("ConfigError") from None


TARGETS: dict[str, type[Target]] = {
    t.name: t for t in (SignalTarget, ImportTarget, AnalyzeTarget, ExchangeTarget, ConfigTarget)
}
