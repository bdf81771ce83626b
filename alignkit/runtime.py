"""Where the code runs: device and dtype choice, seeding, Colab detection, environment report.

Introduced in chapter 0; every chapter's setup cell prints ``environment_report()``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import random
import socket
import sys
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from alignkit.scale import current_scale

# transformers 5 renamed gradient checkpointing to "activation checkpointing" and warns at every
# use of the old names. alignkit keeps the old config field (transformers 4.56+, which the
# requirements allow, has no new one) and TRL 1.16 / peft still call the old model methods, so the
# warning names nothing a reader can change: this one message alone is silenced, for
# every chapter (each imports this module in its setup cell) and every trainer builder.
warnings.filterwarnings("ignore", message=r"`(is_)?gradient_checkpointing\w*` is deprecated",
                        category=FutureWarning)



def pick_device() -> torch.device:
    """The best available device: CUDA, then Apple MPS, then CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when this CPU has native bfloat16 matrix units (AMX-BF16 or AVX512-BF16).

    Without them bfloat16 on a CPU is emulated and slower than float32, so the CPU path
    stays in float32. Reads ``/proc/cpuinfo`` (Linux); other systems answer False.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"amx_bf16", "avx512_bf16"} & flags)
    except OSError:
        pass
    return False


def cuda_capability(index: int = 0) -> tuple[int, int]:
    """``(major, minor)`` compute capability of CUDA device ``index`` (a T4 is (7, 5), an A100 (8, 0))."""
    return tuple(torch.cuda.get_device_capability(index))


# ---------------------------------------------------------------------------------------------
# The one precision policy. Every trainer config, the QLoRA compute dtype and vLLM's dtype ask
# these functions; nothing else in the package decides between bf16, fp16 and fp32.
# ---------------------------------------------------------------------------------------------

DTYPE_NAMES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """The compute dtype for ``device``: the one precision policy of the workbook.

    * CUDA, compute capability >= 8 (A100, L4, RTX 30xx/40xx, H100): bfloat16.
    * CUDA below 8 (T4, V100): float16. Never bfloat16: ``torch.cuda.is_bf16_supported()``
      counts emulation and says True on a T4, where bf16 runs emulated and vLLM refuses it.
    * Apple MPS: float16.
    * CPU: bfloat16 (autocast over float32 master weights) only where the CPU has native bf16
      units (AMX or AVX512-BF16, :func:`cpu_has_fast_bf16`); elsewhere bf16 is emulated and
      several times slower, so float32.

    Introduced in chapter 0 (the environment report prints it).
    """
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        return torch.bfloat16 if cuda_capability(device.index or 0) >= (8, 0) else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_fast_bf16() else torch.float32


def resolve_dtype(requested: str | torch.dtype | None = "auto",
                  device: torch.device | str | None = None) -> torch.dtype:
    """The compute dtype a run uses: :func:`pick_dtype` for ``"auto"``/None, else ``requested``
    checked against the policy (a recipe's ``model.dtype``).

    ``float32`` is allowed everywhere. ``bfloat16`` is refused where the policy would not pick it
    (a T4, a CPU without bf16 units: it would run emulated), and ``float16`` is refused on a CPU
    (no fp16 autocast for training there). Errors name the value and what is accepted.
    """
    device = torch.device(device) if device is not None else pick_device()
    if requested is None or requested == "auto":
        return pick_dtype(device)
    if isinstance(requested, str):
        if requested not in DTYPE_NAMES:
            raise ValueError(f"dtype {requested!r} is not one of 'auto', {', '.join(map(repr, DTYPE_NAMES))}")
        requested = DTYPE_NAMES[requested]
    if requested not in DTYPE_NAMES.values():
        raise ValueError(f"dtype {requested} is not one of {', '.join(DTYPE_NAMES)}")
    native = pick_dtype(device)
    if requested == torch.bfloat16 and native != torch.bfloat16:
        raise ValueError(f"dtype bfloat16 is not native on this {device.type} (the precision policy picks "
                         f"{str(native).replace('torch.', '')}); bf16 would run emulated. Use 'auto' or 'float32'")
    if requested == torch.float16 and device.type == "cpu":
        raise ValueError("dtype float16 is not supported for training on a CPU; use 'auto' or 'float32'")
    return requested


def load_dtype(compute: torch.dtype, device: torch.device | str | None = None, *,
               trains_weights: bool = False) -> torch.dtype:
    """The dtype to load a model's weights in, for a run that computes in ``compute`` on ``device``.

    On a CPU always float32: bf16 there is autocast over float32 master weights. On a GPU the
    compute dtype: a frozen base (LoRA, QLoRA) or a bf16 full fine-tuning run keeps its weights
    in 16 bits, and peft keeps the adapter itself in float32. The exception is fp16 full
    fine-tuning (``trains_weights``, a T4 or V100): fp16 mixed precision needs float32 master
    weights (the gradient scaler refuses fp16 gradients, and fp16 updates underflow), so float32.
    """
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cpu" or (trains_weights and compute == torch.float16):
        return torch.float32
    return compute


def trainer_precision(compute: torch.dtype | None = None) -> dict:
    """The mixed-precision fields of a ``transformers.TrainingArguments`` (GRPO, SFT, reward...)
    for ``compute`` (default: the policy's dtype on this machine): ``{"bf16": ..., "fp16": ...}``."""
    compute = compute or pick_dtype()
    return {"bf16": compute == torch.bfloat16, "fp16": compute == torch.float16}


def vllm_dtype(compute: torch.dtype | None = None) -> str:
    """vLLM's ``dtype`` argument for ``compute``: ``"bfloat16"``, ``"half"`` (T4, V100) or ``"float32"``."""
    compute = compute or pick_dtype()
    return {torch.bfloat16: "bfloat16", torch.float16: "half"}.get(compute, "float32")


# ---------------------------------------------------------------------------------------------
# The one repository root, and the folders under it (independent of the current directory)
# ---------------------------------------------------------------------------------------------

HOME_VAR = "ALIGNKIT_HOME"


def repo_root() -> Path:
    """The folder that holds ``results/``, ``runs/`` and ``data/``: the one root of the workbook.

    ``ALIGNKIT_HOME`` when set; else the checkout the package was imported from (editable
    install, ``make venv``), found from this file, never from the current directory, so a
    notebook run from ``notebooks/`` and a command run from the top agree; else (an installed
    wheel) the current directory.
    """
    if os.environ.get(HOME_VAR):
        return Path(os.environ[HOME_VAR]).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and (checkout / "alignkit").is_dir():
        return checkout
    return Path.cwd()


def results_root() -> Path:
    """``results/`` under :func:`repo_root`: ledgers and experiment summaries (committed)."""
    return repo_root() / "results"


def runs_root() -> Path:
    """``runs/`` under :func:`repo_root`: checkpoints and per-stage files (git-ignored)."""
    return repo_root() / "runs"


# A wheel carries the checkout's data/, results/ and constraints.txt as these sub-packages
# (pyproject.toml, [tool.setuptools.package-dir]); a checkout has none of them.
BUNDLED = {"data": "alignkit._data", "results": "alignkit._results"}


def bundled(kind: str, relative: str = "") -> Path | None:
    """The installed package's copy of ``data/`` or ``results/`` (``kind``), or of a path under
    it; None when this install carries no such copy (a checkout; ``install.constraints_text``
    reads the third bundled file, constraints.txt).

    Found through ``importlib`` (the sub-package's own folder), wherever pip put the package.
    The sub-packages have no ``__init__.py`` (the checkout's data/ and results/ stay plain
    folders), so they are namespace packages, whose one folder ``find_spec`` names.
    """
    if kind not in BUNDLED:
        raise ValueError(f"kind must be one of {', '.join(map(repr, BUNDLED))}, got {kind!r}")
    spec = importlib.util.find_spec(BUNDLED[kind])
    folders = list(spec.submodule_search_locations or []) if spec else []
    if not folders:
        return None
    path = Path(folders[0]) / relative
    return path if path.exists() else None


def data_root() -> Path:
    """``data/`` under :func:`repo_root`, the data sets the project generates itself; in an
    installed wheel without that folder, the copy the package carries (read-only)."""
    local = repo_root() / "data"
    return local if local.is_dir() else (bundled("data") or local)


def find_result(relative: str) -> Path | None:
    """The results file ``relative`` (e.g. ``"02_limr/toy_cpu.json"``) a notebook reads: the one
    under :func:`results_root` (a new run writes there) or else the committed copy an installed
    wheel carries; None when neither exists. Introduced for chapters 1 and 2."""
    local = results_root() / relative
    return local if local.is_file() else bundled("results", relative)


def missing_result(relative: str, command: str) -> FileNotFoundError:
    """The error a notebook raises when a results file it needs is absent: it names the file and
    the command that makes it, rather than starting a long run nobody asked for."""
    return FileNotFoundError(
        f"results/{relative} not found (looked in {results_root()} and in the installed package). "
        f"Make it with `{command}` (or set rerun = True in the parameters cell to run it here), "
        f"or point ALIGNKIT_HOME at a checkout that has it")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices) so that two runs give the same numbers."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    try:  # transformers keeps its own helper; use it too when present
        from transformers import set_seed

        set_seed(seed)
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def progress_bars() -> bool:
    """False when ``TQDM_DISABLE`` is set (``make workbook`` and ``make test`` set it), else True.

    A tqdm bar in a notebook executed by nbconvert is stored as a widget that no static viewer
    renders (GitHub, the book show "0%| | 0/272" frozen), so executed notebooks run without bars;
    a reader running the notebook in Jupyter sees them. tqdm itself reads the same variable;
    trainers follow it through their ``disable_tqdm`` field; transformers' own bars (loading
    weights) follow ``HF_HUB_DISABLE_PROGRESS_BARS``, which the Makefile sets beside it.
    Introduced in chapter 0.
    """
    return os.environ.get("TQDM_DISABLE", "").strip().lower() not in {"1", "true", "yes"}


def in_colab() -> bool:
    """True inside Google Colab (the setup cells install the package there)."""
    return "google.colab" in sys.modules or os.environ.get("COLAB_RELEASE_TAG") is not None


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` is set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_reachable(timeout: float = 1.5) -> bool:
    """Whether huggingface.co answers on port 443. Never probes when offline mode is on."""
    if hub_offline():
        return False
    try:
        with socket.create_connection(("huggingface.co", 443), timeout=timeout):
            return True
    except OSError:
        return False


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def environment_report(*, probe_hub: bool = False, show: bool = True) -> dict:
    """Versions, device, dtype, scale and hub status, printed as a short table and returned.

    ``probe_hub=True`` tries a connection to the hub when offline mode is off; by default the
    report only says whether offline mode is on, so it never waits on the network. The
    "tested with" row holds the versions CI passed (constraints.txt); each package whose
    major.minor differs from them is printed as a warning (and listed under ``"warnings"``).
    """
    from alignkit.install import REPORTED, tested_versions, version_drift

    device = pick_device()
    scale = current_scale()
    if hub_offline():
        hub = "offline mode (HF_HUB_OFFLINE=1): bundled model and data"
    elif probe_hub:
        hub = "reachable" if hub_reachable() else "unreachable: bundled model and data"
    else:
        hub = "online mode (not probed)"
    report = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "trl": _version("trl"),
        "peft": _version("peft"),
        "accelerate": _version("accelerate"),
        "bitsandbytes": _version("bitsandbytes"),
        "device": str(device) + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""),
        "dtype": str(pick_dtype(device)).replace("torch.", ""),
        "cpu threads": torch.get_num_threads(),
        "cpu bf16 units": cpu_has_fast_bf16(),
        "scale": f"{scale.name}: {scale.description}",
        "hub": hub,
        "colab": in_colab(),
    }
    tested = tested_versions()
    report["tested with"] = ", ".join(f"{k} {v}" for k, v in tested.items())
    drift = version_drift({k: report[k] for k in REPORTED}, tested)
    if show:
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
        for line in drift:
            print(f"warning: {line}")
    report["warnings"] = drift
    return report
