"""Contract tests of the candle store: every test runs on the embedded (Parquet) and PostgreSQL backends."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

import autotrader.files as atomic_files
from autotrader.adapters.storage import open_store
from autotrader.adapters.storage.parquet_store import ParquetCandleStore
from autotrader.adapters.storage.postgres_store import PostgresCandleStore
from autotrader.config import load_settings
from autotrader.domain.candles import COLUMNS, Candles, SeriesKey, format_ms, parse_date_ms
from autotrader.domain.errors import DataError, StorageError
from autotrader.marketdata.bundled import bundled_dir, bundled_files, read_parquet_candles
from autotrader.marketdata.store import CandleStore, read_aligned

HOUR_MS = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
BTC_1H = SeriesKey.of("binance", "BTCUSDT", "1h")
ETH_1H = SeriesKey.of("binance", "ETHUSDT", "1h")


class SabotageError(Exception):
    """Raised by a sabotaged write."""


def make_candles(n: int, start_ms: int = T0, step_ms: int = HOUR_MS, seed: int = 0) -> Candles:
    """Bars with full-precision random floats (every mantissa bit matters for the equality checks)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = close * (1.0 + rng.normal(0.0, 0.001, n))
    return Candles(
        ts=start_ms + np.arange(n, dtype=np.int64) * step_ms,
        open=open_,
        high=np.maximum(open_, close) * (1.0 + rng.random(n) * 0.01),
        low=np.minimum(open_, close) * (1.0 - rng.random(n) * 0.01),
        close=close,
        volume=rng.random(n) * 1e6,
    )


def assert_same(actual: Candles, expected: Candles) -> None:
    """Bitwise equality of every column (so -0.0, NaN payloads and the last ulp all count)."""
    assert len(actual) == len(expected)
    assert actual.ts.dtype == np.int64
    np.testing.assert_array_equal(actual.ts, expected.ts)
    for name in COLUMNS[1:]:
        got, want = getattr(actual, name), getattr(expected, name)
        assert got.dtype == np.float64, name
        assert np.array_equal(got.view(np.uint64), np.ascontiguousarray(want, np.float64).view(np.uint64)), name


def sabotage_embedded(store: ParquetCandleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the final step of a Parquet write (replacing the file) fail after the new file is complete."""
    real_replace = os.replace

    def failing_replace(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        if Path(dst).is_relative_to(store.root):
            raise SabotageError("disk vanished")
        real_replace(src, dst)

    monkeypatch.setattr(atomic_files.os, "replace", failing_replace)  # the writer every store file goes through


def sabotage_postgres(store: PostgresCandleStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every COPY into the candles table fail right after its rows reached the server."""
    real_copy_in = PostgresCandleStore._copy_in

    def failing_copy_in(raw, table, candles, key):  # type: ignore[no-untyped-def]
        real_copy_in(raw, table, candles, key)
        if key is not None:  # the COPY straight into the table, after any staged merge
            raise SabotageError("connection lost mid-write")

    monkeypatch.setattr(PostgresCandleStore, "_copy_in", staticmethod(failing_copy_in))


@pytest.fixture(params=["embedded", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[CandleStore, Callable[..., None]]]:
    """A fresh, empty store of each backend and a function that makes its next writes fail midway."""
    if request.param == "embedded":
        embedded = ParquetCandleStore(tmp_path / "store")
        yield embedded, lambda mp: sabotage_embedded(embedded, mp)
        embedded.close()
    else:
        dsn, schema = request.getfixturevalue("postgres_schema")
        postgres = PostgresCandleStore(dsn, schema=schema)
        try:
            yield postgres, lambda mp: sabotage_postgres(postgres, mp)
        finally:
            postgres.close()


@pytest.fixture
def store(backend: tuple[CandleStore, Callable[..., None]]) -> CandleStore:
    return backend[0]


def snapshot(store: CandleStore) -> dict[SeriesKey, Candles]:
    keys = store.keys()
    return {key: store.read(key) for key in keys}


# -- protocol, upsert and read ---------------------------------------------------------------------
def test_store_any_backend_satisfies_protocol(store: CandleStore) -> None:
    assert isinstance(store, CandleStore)


def test_upsert_new_series_reads_back_bitwise_identical(store: CandleStore) -> None:
    candles = make_candles(500)
    candles.close[3] = -0.0
    candles.close[4] = 5e-324  # smallest subnormal
    candles.close[5] = 1.7976931348623157e308
    candles.volume[6] = 0.1 + 0.2

    written = store.upsert(BTC_1H, candles)

    assert written == 500
    assert_same(store.read(BTC_1H), candles)


def test_read_result_arrays_are_writable_numpy_copies(store: CandleStore) -> None:
    store.upsert(BTC_1H, make_candles(10))

    got = store.read(BTC_1H)
    got.close[0] = 1.0

    assert store.read(BTC_1H).close[0] != 1.0


def test_upsert_same_data_twice_is_idempotent(store: CandleStore) -> None:
    candles = make_candles(300)

    first = store.upsert(BTC_1H, candles)
    second = store.upsert(BTC_1H, candles)

    assert first == second == 300
    assert_same(store.read(BTC_1H), candles)
    assert store.coverage(BTC_1H)[0].rows == 300


def test_upsert_overlapping_bars_overwrites_with_new_values(store: CandleStore) -> None:
    old = make_candles(100, seed=1)
    new = make_candles(100, start_ms=T0 + 50 * HOUR_MS, seed=2)  # bars 50..149
    store.upsert(BTC_1H, old)

    written = store.upsert(BTC_1H, new)

    got = store.read(BTC_1H)
    assert written == 100
    assert len(got) == 150
    assert_same(got.slice_range(None, T0 + 49 * HOUR_MS), old.slice_range(None, T0 + 49 * HOUR_MS))
    assert_same(got.slice_range(T0 + 50 * HOUR_MS), new)


def test_upsert_bars_inside_a_hole_merges_in_time_order(store: CandleStore) -> None:
    full = make_candles(30)
    store.upsert(BTC_1H, full.take(np.r_[0:10, 20:30]))

    store.upsert(BTC_1H, full.take(np.arange(10, 20)))

    assert_same(store.read(BTC_1H), full)


def test_upsert_unsorted_with_duplicate_ts_stores_sorted_and_last_wins(store: CandleStore) -> None:
    base = make_candles(5)
    later = base.take([1])
    later = Candles(later.ts, *(getattr(later, c) * 2 for c in COLUMNS[1:]))
    parts = (base.take([4, 0, 3, 1, 2]), later)
    given = Candles(*(np.concatenate([getattr(p, c) for p in parts]) for c in COLUMNS))

    written = store.upsert(BTC_1H, given)

    got = store.read(BTC_1H)
    assert written == 5
    np.testing.assert_array_equal(got.ts, base.ts)
    assert got.close[1] == base.close[1] * 2
    assert got.close[2] == base.close[2]


def test_upsert_empty_candles_writes_nothing(store: CandleStore) -> None:
    assert store.upsert(BTC_1H, Candles.empty()) == 0

    assert store.keys() == []


def test_read_range_bounds_are_inclusive(store: CandleStore) -> None:
    candles = make_candles(48)
    store.upsert(BTC_1H, candles)

    got = store.read(BTC_1H, T0 + 10 * HOUR_MS, T0 + 20 * HOUR_MS)

    assert_same(got, candles.take(np.arange(10, 21)))


def test_read_range_with_open_or_off_grid_bounds_returns_bars_within(store: CandleStore) -> None:
    candles = make_candles(48)
    store.upsert(BTC_1H, candles)

    assert_same(store.read(BTC_1H, start_ms=T0 + 40 * HOUR_MS), candles.take(np.arange(40, 48)))
    assert_same(store.read(BTC_1H, end_ms=T0 + 2 * HOUR_MS), candles.take(np.arange(0, 3)))
    assert_same(store.read(BTC_1H, T0 + 1, T0 + 2 * HOUR_MS - 1), candles.take([1]))
    assert len(store.read(BTC_1H, T0 + 100 * HOUR_MS, T0 + 200 * HOUR_MS)) == 0


def test_read_unknown_key_returns_empty_candles(store: CandleStore) -> None:
    store.upsert(BTC_1H, make_candles(5))

    got = store.read(SeriesKey.of("binance", "DOGEUSDT", "1h"))

    assert len(got) == 0
    assert got.ts.dtype == np.int64
    assert got.close.dtype == np.float64


# -- keys and coverage --------------------------------------------------------------------------------
def test_keys_empty_store_returns_empty_list(store: CandleStore) -> None:
    assert store.keys() == []


def test_keys_several_series_lists_each_once_sorted(store: CandleStore) -> None:
    btc_30m = SeriesKey.of("binance", "BTCUSDT", "30m")
    bybit = SeriesKey.of("bybit", "ADAUSDT", "4h")
    for key in (bybit, ETH_1H, BTC_1H, btc_30m):
        store.upsert(key, make_candles(20, step_ms=key.tf.ms))
    store.upsert(BTC_1H, make_candles(5, start_ms=T0 + 20 * HOUR_MS))

    assert store.keys() == [btc_30m, BTC_1H, ETH_1H, bybit]


def test_coverage_series_with_hole_reports_first_last_rows_gaps(store: CandleStore) -> None:
    candles = make_candles(100)
    store.upsert(BTC_1H, candles.take(np.r_[0:40, 43:70, 75:100]))  # holes of 3 and 5 bars

    (cov,) = store.coverage(BTC_1H)

    assert cov.key == BTC_1H
    assert (cov.first_ts, cov.last_ts, cov.rows) == (T0, T0 + 99 * HOUR_MS, 92)
    assert [(g.after_ts, g.missing_bars) for g in cov.gaps] == [
        (T0 + 39 * HOUR_MS, 3),
        (T0 + 69 * HOUR_MS, 5),
    ]
    assert cov.missing_bars == 8


def test_coverage_without_key_covers_every_series(store: CandleStore) -> None:
    store.upsert(BTC_1H, make_candles(10))
    store.upsert(ETH_1H, make_candles(7, start_ms=T0 + HOUR_MS))

    covs = store.coverage()

    assert [(c.key, c.rows, c.first_ts, c.gaps) for c in covs] == [
        (BTC_1H, 10, T0, ()),
        (ETH_1H, 7, T0 + HOUR_MS, ()),
    ]


def test_coverage_unknown_key_returns_empty_list(store: CandleStore) -> None:
    assert store.coverage(ETH_1H) == []


# -- delete ------------------------------------------------------------------------------------------
def test_delete_whole_series_removes_rows_and_key(store: CandleStore) -> None:
    store.upsert(BTC_1H, make_candles(30))
    store.upsert(ETH_1H, make_candles(10))

    removed = store.delete(BTC_1H)

    assert removed == 30
    assert store.keys() == [ETH_1H]
    assert len(store.read(BTC_1H)) == 0
    assert len(store.read(ETH_1H)) == 10


def test_delete_range_removes_only_bars_within_inclusive_bounds(store: CandleStore) -> None:
    candles = make_candles(30)
    store.upsert(BTC_1H, candles)

    removed = store.delete(BTC_1H, T0 + 10 * HOUR_MS, T0 + 19 * HOUR_MS)

    assert removed == 10
    assert_same(store.read(BTC_1H), candles.take(np.r_[0:10, 20:30]))
    assert [(g.after_ts, g.missing_bars) for g in store.coverage(BTC_1H)[0].gaps] == [(T0 + 9 * HOUR_MS, 10)]


def test_delete_open_ended_range_removes_the_tail_and_empties_the_series(store: CandleStore) -> None:
    store.upsert(BTC_1H, make_candles(30))

    assert store.delete(BTC_1H, start_ms=T0 + 25 * HOUR_MS) == 5
    assert store.coverage(BTC_1H)[0].rows == 25
    assert store.delete(BTC_1H, end_ms=T0 + 24 * HOUR_MS) == 25
    assert store.keys() == []


def test_delete_unknown_series_or_empty_range_returns_zero(store: CandleStore) -> None:
    store.upsert(BTC_1H, make_candles(10))

    assert store.delete(ETH_1H) == 0
    assert store.delete(BTC_1H, T0 + 50 * HOUR_MS, T0 + 60 * HOUR_MS) == 0
    assert store.coverage(BTC_1H)[0].rows == 10


# -- all-or-nothing writes -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "start_bar"),
    [(BTC_1H, 50), (ETH_1H, 0)],
    ids=["overlapping-existing-series", "new-series"],
)
def test_upsert_failing_midway_leaves_store_unchanged(
    backend: tuple[CandleStore, Callable[..., None]],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    key: SeriesKey,
    start_bar: int,
) -> None:
    store, sabotage = backend
    store.upsert(BTC_1H, make_candles(100, seed=1))
    before = snapshot(store)
    files_before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    sabotage(monkeypatch)

    with pytest.raises(SabotageError):
        store.upsert(key, make_candles(100, start_ms=T0 + start_bar * HOUR_MS, seed=2))

    monkeypatch.undo()
    after = snapshot(store)
    assert list(after) == list(before)
    for k in before:
        assert_same(after[k], before[k])
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == files_before  # no temp files


# -- alignment and real data -------------------------------------------------------------------------
def test_read_aligned_symbol_listed_later_is_nan_before_listing(store: CandleStore) -> None:
    btc = make_candles(48, seed=1)
    eth = make_candles(38, start_ms=T0 + 10 * HOUR_MS, seed=2)
    store.upsert(BTC_1H, btc)
    store.upsert(ETH_1H, eth)

    aligned = read_aligned(store, "binance", ["BTC/USDT", "ETHUSDT"], "1h")

    assert aligned.symbols == ("BTCUSDT", "ETHUSDT")
    np.testing.assert_array_equal(aligned.ts, btc.ts)
    assert np.isnan(aligned.close[:10, 1]).all()
    assert np.isnan(aligned.open[:10, 1]).all()
    assert (aligned.volume[:10, 1] == 0).all()
    assert not aligned.present[:10, 1].any()
    assert aligned.present[10:].all()
    np.testing.assert_array_equal(aligned.close[10:, 1], eth.close)
    np.testing.assert_array_equal(aligned.close[:, 0], btc.close)


def test_bundled_btc_file_loaded_gives_known_coverage(store: CandleStore) -> None:
    candles = read_parquet_candles(bundled_dir() / "binance_BTCUSDT_1h.parquet")

    store.upsert(BTC_1H, candles)

    (cov,) = store.coverage(BTC_1H)
    assert format_ms(cov.first_ts) == "2020-01-01 00:00"
    assert format_ms(cov.last_ts) == "2024-12-31 23:00"
    assert cov.rows == 43816
    assert len(cov.gaps) == 15
    assert cov.missing_bars == 32
    assert_same(store.read(BTC_1H), candles)


# -- backend selection and seeding ---------------------------------------------------------------------
def test_open_store_default_settings_picks_embedded_and_seeds_bundled(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = load_settings(env={"AUTOTRADER_HOME": str(home)})

    store = open_store(settings)
    try:
        assert isinstance(store, ParquetCandleStore)
        assert store.root == home / "data"
        assert store.keys() == sorted(bundled_files(), key=lambda k: (k.exchange, k.symbol, k.tf.ms))
        (cov,) = store.coverage(BTC_1H)
        # the 2017-2019 file and the 2020-2024 file join into one series without a seam
        assert (cov.rows, len(cov.gaps), cov.missing_bars) == (20707 + 43816, 13 + 15, 97 + 32)
        assert format_ms(cov.first_ts) == "2017-08-17 04:00"
        assert format_ms(cov.last_ts) == "2024-12-31 23:00"
    finally:
        store.close()


def test_open_store_existing_store_without_history_gets_pre2020_history(tmp_path: Path) -> None:
    settings = load_settings(env={"AUTOTRADER_HOME": str(tmp_path / "home")})
    first = open_store(settings)
    first.delete(BTC_1H, end_ms=parse_date_ms("2019-12-31 23:00"))
    assert format_ms(first.coverage(BTC_1H)[0].first_ts) == "2020-01-01 00:00"
    first.close()

    second = open_store(settings)

    assert format_ms(second.coverage(BTC_1H)[0].first_ts) == "2017-08-17 04:00"
    assert second.coverage(BTC_1H)[0].rows == 20707 + 43816
    second.close()


def test_open_store_existing_embedded_store_is_not_seeded_again(tmp_path: Path) -> None:
    settings = load_settings(env={"AUTOTRADER_HOME": str(tmp_path / "home")})
    first = open_store(settings)
    first.delete(BTC_1H)
    first.close()

    second = open_store(settings)

    keys = second.keys()
    assert BTC_1H not in keys
    assert ETH_1H in keys
    second.close()


def test_open_store_seed_disabled_leaves_store_empty(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[storage]\nseed_bundled = false\n", encoding="utf-8")

    store = open_store(load_settings(env={"AUTOTRADER_HOME": str(home)}))

    assert store.keys() == []
    store.close()


def test_open_store_postgres_dsn_picks_postgres_and_seeds_bundled(
    tmp_path: Path, postgres_schema: tuple[str, str]
) -> None:
    dsn, schema = postgres_schema
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(f'[storage]\npostgres_schema = "{schema}"\n', encoding="utf-8")
    settings = load_settings(env={"AUTOTRADER_HOME": str(home), "POSTGRES_DSN": dsn})

    store = open_store(settings)
    try:
        assert isinstance(store, PostgresCandleStore)
        assert set(store.keys()) == set(bundled_files())
        (cov,) = store.coverage(BTC_1H)
        assert (cov.rows, len(cov.gaps), cov.missing_bars) == (20707 + 43816, 13 + 15, 97 + 32)
        assert not (home / "data").exists()
    finally:
        store.close()


# -- backend-specific behaviour ----------------------------------------------------------------------
def test_postgres_store_unreachable_server_raises_storage_error_without_password() -> None:
    with pytest.raises(StorageError) as info:
        PostgresCandleStore("postgresql://trader:s3cr3t-pw@127.0.0.1:1/markets")

    message = str(info.value)
    assert "127.0.0.1:1" in message
    assert "is PostgreSQL running?" in message
    assert "s3cr3t-pw" not in message
    assert "\n" not in message


def test_postgres_store_schema_needing_quotes_is_created_and_used(postgres_schema: tuple[str, str]) -> None:
    dsn, _ = postgres_schema
    schema = f'Odd "name"; {uuid.uuid4().hex[:6]}'
    try:
        with PostgresCandleStore(dsn, schema=schema) as store:
            store.upsert(BTC_1H, make_candles(3))
            assert store.coverage(BTC_1H)[0].rows == 3
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def test_parquet_store_series_files_follow_documented_layout(tmp_path: Path) -> None:
    store = ParquetCandleStore(tmp_path)

    store.upsert(SeriesKey.of("Binance", "eth/usdt", "1H"), make_candles(3))

    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.parquet")] == ["binance/ETHUSDT/1h.parquet"]


def test_parquet_store_key_escaping_the_root_is_rejected(tmp_path: Path) -> None:
    store = ParquetCandleStore(tmp_path / "store")

    with pytest.raises(DataError, match="invalid name"):
        store.read(SeriesKey("..", "BTCUSDT", "1h"))
