"""Atomic writes: a result or checkpoint file is either the old one or the whole new one.

A run killed mid-write must never leave a half-written JSON that a later resume trusts.
Used by ``ledger.py``, ``training.py`` and the experiment scripts.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (``/proc/self/status``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (briefly process-wide)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The file gets the mode a plain ``open(path, "w")`` would give (``0o666`` less the umask, so
    0644 under umask 022), not ``mkstemp``'s private 0600. A leftover ``<name>.<random>.tmp``
    only remains if the process is killed between creating and renaming it.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}: {path!r:.80}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    path = Path(path)
    if not path.name:
        raise ValueError(f"path must name a file, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
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
    if indent is not None and (isinstance(indent, bool) or not isinstance(indent, int) or indent < 0):
        raise TypeError(f"indent must be an int >= 0 or None, got {indent!r}")
    try:
        text = json.dumps(obj, indent=indent, allow_nan=False, sort_keys=False)
    except (TypeError, ValueError) as err:  # NaN/inf, or a value JSON has no type for
        raise type(err)(f"obj cannot be written as JSON: {err}") from None
    return atomic_write_text(path, text + "\n")


def read_json(path: str | os.PathLike):
    """Load a JSON file written by ``atomic_write_json``."""
    with open(path) as f:
        return json.load(f)
