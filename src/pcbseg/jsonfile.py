"""JSON that other tools can read: ``null`` where a number is undefined, and files replaced atomically.

Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON; a reader killed halfway
through a file being rewritten sees half a file. Neither happens here.

Example:
    >>> import json, math
    >>> json.dumps(jsonable({"iou": math.nan, "per_class": [0.5, float("inf")]}))
    '{"iou": null, "per_class": [0.5, null]}'
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """``obj`` with NaN/inf as None, NumPy scalars and arrays as Python ones, tuples as lists."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON, replacing ``path`` in one step (a temp file in the same folder, renamed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(jsonable(obj), indent=indent, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
