"""One JSON sanitiser for every document the project writes (reports, validation results, CLI output).

``json_safe`` turns a nest of dicts, lists, tuples, numpy arrays and scalars into plain JSON types,
so ``json.dumps(json_safe(x), allow_nan=False)`` never fails and never writes the non-standard
``NaN``/``Infinity`` tokens: NaN becomes ``null`` and ±inf the strings ``"inf"``/``"-inf"``.

``finite_or_none`` is the one-value helper for a figure that is only meaningful when finite
(a ratio, a percentile): NaN and ±inf alike become ``None``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import Any

import numpy as np

__all__ = ["finite_or_none", "json_safe"]


_PLAIN = frozenset((float, int, str, bool))


def _float(x: float) -> float | str | None:
    return x if math.isfinite(x) else None if math.isnan(x) else "inf" if x > 0 else "-inf"


def json_safe(obj: Any) -> Any:
    """A JSON-ready copy of ``obj``: plain dicts (str keys), lists, str, int, float, bool and None only.

    NaN → ``None``; ±inf → ``"inf"``/``"-inf"``; numpy scalars and arrays → Python values and (nested)
    lists; tuples and sets → lists; datetimes and dates → ISO 8601 text; ``Decimal`` → its exact text;
    anything else → ``str(obj)``.
    """
    if type(obj) in _PLAIN or obj is None:  # exact plain types first: the bulk of a report (its trades)
        return _float(obj) if type(obj) is float else obj
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "biu" or (obj.dtype.kind == "f" and bool(np.isfinite(obj).all())):
            return obj.tolist()  # already plain JSON types: skip the per-element walk
        return [json_safe(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        return json_safe(obj.item())
    if isinstance(obj, bool | int | str) or obj is None:
        return obj
    if isinstance(obj, float):
        return _float(obj)
    if isinstance(obj, set | frozenset):
        return [json_safe(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, datetime | date | time):
        return obj.isoformat()
    return str(obj)  # Decimal keeps its exact text this way


def finite_or_none(v: float | None) -> float | None:
    """``v`` as a float, or ``None`` when it is missing, NaN or infinite."""
    return None if v is None or not math.isfinite(v) else float(v)
