"""Atomic writes: a result or checkpoint file is either the old one or the whole new one.

A run killed mid-write must never leave a half-written JSON that a later resume trusts.
Used by ``ledger.py``, ``training.py`` and the experiment scripts.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_json(path: str | os.PathLike, obj, *, indent: int = 2) -> Path:
    """``json.dump`` to ``path`` atomically (NaN and inf are rejected: JSON has none)."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, allow_nan=False, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike):
    """Load a JSON file written by ``atomic_write_json``."""
    with open(path) as f:
        return json.load(f)
