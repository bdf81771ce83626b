"""Where the code runs: device and dtype choice, seeding, Colab detection, environment report.

Introduced in chapter 0; every chapter's setup cell prints ``environment_report()``.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import socket
import sys
from functools import lru_cache

import numpy as np
import torch

from alignkit.scale import current_scale


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


def pick_dtype(device: torch.device | str | None = None) -> torch.dtype:
    """The compute dtype for ``device``: CUDA bf16 where supported else fp16, MPS fp16, CPU fp32.

    On a CPU we keep float32 for correctness by default; ``alignkit.training`` may opt into
    bfloat16 autocast where ``cpu_has_fast_bf16()`` says the hardware supports it.
    """
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


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
    report only says whether offline mode is on, so it never waits on the network.
    """
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
        "bitsandbytes": _version("bitsandbytes"),
        "device": str(device) + (f" ({torch.cuda.get_device_name(0)})" if device.type == "cuda" else ""),
        "dtype": str(pick_dtype(device)).replace("torch.", ""),
        "cpu threads": torch.get_num_threads(),
        "cpu bf16 units": cpu_has_fast_bf16(),
        "scale": f"{scale.name}: {scale.description}",
        "hub": hub,
        "colab": in_colab(),
    }
    if show:
        width = max(len(k) for k in report)
        for key, value in report.items():
            print(f"{key:<{width}}  {value}")
    return report
