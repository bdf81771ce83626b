"""Load chapter 2's experiment results, running the experiment first when they are missing.

The notebook ``02_limr.ipynb`` reads ``results/02_limr/toy_<scale>.json`` (the toy pipeline,
``alignkit.chapters.limr.toy``) and ``results/02_limr/lm_<scale>.json`` (the real-LM track,
``alignkit.chapters.limr.lm``). At ``cpu`` scale these come from the long command-line runs;
at ``smoke`` the notebook reruns them (seconds) so that CI exercises the code.
"""

from __future__ import annotations

from pathlib import Path

from alignkit.io import read_json
from alignkit.runtime import results_root

KINDS = ("toy", "lm")


def results_path(kind: str, scale: str) -> Path:
    """``results/02_limr/<kind>_<scale>.json`` at the repository root."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return results_root() / "02_limr" / f"{kind}_{scale}.json"


def load_or_run(kind: str, scale: str, *, rerun: bool = False) -> dict:
    """The results of experiment ``kind`` ("toy" or "lm") at ``scale``; runs it (and writes the
    file atomically) when the file is missing or ``rerun`` is true."""
    from alignkit.chapters.limr import lm as limr_lm
    from alignkit.chapters.limr import toy as limr_toy
    from alignkit.chapters.limr.config import lm_sizes, toy_sizes

    path = results_path(kind, scale)
    if path.is_file() and not rerun:
        return read_json(path)
    (toy_sizes if kind == "toy" else lm_sizes)(scale)  # a scale the chapter does not size: a clear error
    if kind == "toy":
        limr_toy.main(["--scale", scale, "--out", str(path)])
    else:
        limr_lm.run(scale, out=str(path))
    return read_json(path)
