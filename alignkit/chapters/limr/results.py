"""Load chapter 2's experiment results; run the experiment only when asked.

The notebook ``02_limr.ipynb`` reads ``results/02_limr/toy_<scale>.json`` (the toy pipeline,
``alignkit.chapters.limr.toy``) and ``results/02_limr/lm_<scale>.json`` (the real-LM track,
``alignkit.chapters.limr.lm``). At ``cpu`` scale these come from the long command-line runs
(committed, and carried by an installed wheel); a missing file is an error that names the
command, never a silent 25-minute run. At ``smoke`` the notebook asks for a rerun (seconds) so
that CI exercises the code.
"""

from __future__ import annotations

from pathlib import Path

from alignkit.io import read_json
from alignkit.runtime import find_result, missing_result, results_root

KINDS = ("toy", "lm")
COMMANDS = {kind: f"python -m alignkit.chapters.limr.{kind} --scale {{scale}}" for kind in KINDS}


def results_path(kind: str, scale: str) -> Path:
    """``results/02_limr/<kind>_<scale>.json`` at the repository root."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return results_root() / "02_limr" / f"{kind}_{scale}.json"


def load_or_run(kind: str, scale: str, *, rerun: bool = False) -> dict:
    """The results of experiment ``kind`` ("toy" or "lm") at ``scale``. With ``rerun`` it runs
    the experiment (and writes the file atomically under ``results/``); otherwise it reads the
    file there or the installed package's copy, and a missing one raises an error naming the
    command that makes it."""
    from alignkit.chapters.limr import lm as limr_lm
    from alignkit.chapters.limr import toy as limr_toy
    from alignkit.chapters.limr.config import lm_sizes, toy_sizes

    path = results_path(kind, scale)
    (toy_sizes if kind == "toy" else lm_sizes)(scale)  # a scale the chapter does not size: a clear error
    if not rerun:
        found = find_result(f"02_limr/{path.name}")
        if found is None:
            raise missing_result(f"02_limr/{path.name}", COMMANDS[kind].format(scale=scale))
        return read_json(found)
    if kind == "toy":
        limr_toy.main(["--scale", scale, "--out", str(path)])
    else:
        limr_lm.run(scale, out=str(path))
    return read_json(path)
