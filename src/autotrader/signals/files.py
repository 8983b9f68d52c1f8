"""Read stored predictions from CSV, JSON lines or Parquet files, with strict validation.

The file has exactly the ``Prediction`` columns: ``id, symbol, ts, direction, confidence, horizon,
model``. In files (not in live messages) ``ts`` may also be an ISO-8601 date-time (UTC when it has
no zone) or, in Parquet, a timestamp column. The first problem found stops the load with one
``DataError`` line naming the file, the line (CSV, JSON lines) or row (Parquet) and the problem.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from autotrader.domain.errors import ConfigError, DataError
from autotrader.signals.prediction import Prediction

COLUMNS = tuple(Prediction.model_fields)
SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
_INT = re.compile(r"^[+-]?\d+$")


def read_predictions(path: str | Path) -> list[Prediction]:
    """All predictions of a ``.csv``, ``.jsonl``/``.ndjson``/``.json`` (one object per line) or ``.parquet`` file.

    A missing file or unknown suffix is a ``ConfigError``; bad contents (missing or extra columns,
    a bad value, a duplicate ``id``, no rows at all) a ``DataError``.
    """
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{path}: unknown prediction file type {path.suffix!r}; use one of {', '.join(SUFFIXES)}")
    if not path.is_file():
        raise ConfigError(f"{path}: prediction file not found")
    rows = {"csv": _csv_rows, "jsonl": _jsonl_rows, "parquet": _parquet_rows}[kind](path)
    out: list[Prediction] = []
    first_seen: dict[str, str] = {}
    for where, record in rows:
        _check_columns(path, where, record)
        prediction = _validate(path, where, record)
        if prediction.id in first_seen:
            raise DataError(f"{path}: {where}: duplicate id {prediction.id!r} (first at {first_seen[prediction.id]})")
        first_seen[prediction.id] = where
        out.append(prediction)
    if not out:
        raise DataError(f"{path}: no predictions in the file")
    return out


def _check_columns(path: Path, where: str, record: dict[str, Any]) -> None:
    missing = [c for c in COLUMNS if c not in record]
    if missing:
        raise DataError(f"{path}: {where}: missing column(s) {', '.join(missing)}")
    extra = [str(c) for c in record if c not in COLUMNS]
    if extra:
        raise DataError(f"{path}: {where}: unknown column(s) {', '.join(extra)}; expected {', '.join(COLUMNS)}")


def _validate(path: Path, where: str, record: dict[str, Any]) -> Prediction:
    try:
        values = dict(record)
        values["ts"] = _ts_ms(values["ts"])
        return Prediction.model_validate(values)
    except (ValidationError, ValueError) as e:
        raise DataError(f"{path}: {where}: {_problem(e)}") from None


def _problem(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"]) or "row"
        msg = str(err["msg"]).removeprefix("Value error, ")
        return f"{field}: {msg} (got {err.get('input')!r})"
    return str(e)


def _ts_ms(value: Any) -> Any:
    """Epoch ms from an int, an integral string or an ISO-8601 string/datetime; anything else is left to the model."""
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(aware.timestamp() * 1000)
    if isinstance(value, str):
        text = value.strip()
        if _INT.match(text):
            return int(text)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"ts: {value!r} is neither epoch milliseconds nor an ISO-8601 date-time") from None
        return _ts_ms(parsed)
    return value


def _csv_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise DataError(f"{path}: empty file (expected a header line {','.join(COLUMNS)})")
        for record in reader:
            where = f"line {reader.line_num}"
            if None in record:
                raise DataError(f"{path}: {where}: more values than header columns")
            if any(v is None for v in record.values()):
                raise DataError(f"{path}: {where}: fewer values than header columns")
            yield where, {k.strip(): v for k, v in record.items()}


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: {where}: invalid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: {where}: expected a JSON object, got {type(record).__name__}")
            yield where, record


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    for number, record in enumerate(table.to_pylist(), start=1):
        yield f"row {number}", record
