"""Scales: one object that decides model, data size, steps, generations, lengths and seeds.

Every chapter reads ``current_scale()`` in its parameters cell and takes all its sizes from the
returned :class:`Scale`; nothing else in a notebook hard-codes a size. Introduced in chapter 0.

=========  ==========================  ==================================================
scale      where                       purpose
=========  ==========================  ==================================================
smoke      CI, 2 CPU cores             every code path runs, each notebook <= 3 min
cpu        a laptop, no GPU, offline   the small-scale reproduction (the default)
gpu        one 16-24 GB GPU            the papers' setups, 4-bit QLoRA on a 1.5-7B model
cluster    several GPUs                the papers' recipes, full fine-tuning
=========  ==========================  ==================================================
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

ENV_VAR = "ALIGNKIT_SCALE"
DEFAULT = "cpu"
T = TypeVar("T")


@dataclass(frozen=True)
class Scale:
    """Sizes for one scale. Chapters read these fields instead of typing numbers.

    Attributes:
        name: ``smoke``, ``cpu``, ``gpu`` or ``cluster``.
        model: short name (see ``alignkit.models.REGISTRY``) or hub id of the policy.
        quantization: ``None`` (full precision) or ``"4bit"`` (NF4 QLoRA).
        lora: train a LoRA adapter (True) or all weights (False).
        n_train: training prompts for the language-model experiments.
        n_eval: held-out prompts for evaluation.
        max_steps: optimiser steps of a language-model RL or SFT run.
        num_generations: completions per prompt (the GRPO group size G).
        max_completion_length: new tokens per completion.
        seeds: seeds for repeated runs; results report a mean and interval over them.
        toy_steps: optimiser steps of the exact toy experiments (numpy / tiny torch models).
        toy_samples: Monte Carlo samples for checks against exact computations.
        report_to: where trainers send their logs: ``"none"`` at smoke (CI keeps nothing),
            ``"tensorboard"`` elsewhere (event files under ``<output_dir>/runs/``; open them with
            ``tensorboard --logdir <output_dir>/runs``). Works offline.
        description: one line for tables and the environment report.
    """

    name: str
    model: str
    quantization: str | None
    lora: bool
    n_train: int
    n_eval: int
    max_steps: int
    num_generations: int
    max_completion_length: int
    seeds: tuple[int, ...]
    toy_steps: int
    toy_samples: int
    description: str
    report_to: str = "tensorboard"

    def replace(self, **changes) -> Scale:
        """A copy with some fields changed, e.g. ``scale.replace(max_steps=10)``.

        Unknown field names raise a ``TypeError`` that lists the valid ones.
        """
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise TypeError(f"unknown Scale field(s) {unknown}; valid fields: {sorted(valid)}")
        return dataclasses.replace(self, **changes)


SCALES: dict[str, Scale] = {
    "smoke": Scale(
        name="smoke",
        model="smollm2-135m",
        quantization=None,
        lora=True,
        n_train=8,
        n_eval=8,
        max_steps=2,
        num_generations=4,
        max_completion_length=16,
        seeds=(0,),
        toy_steps=60,
        toy_samples=2_000,
        description="CI on 2 CPU cores: every code path runs, numbers mean little",
        report_to="none",
    ),
    "cpu": Scale(
        name="cpu",
        model="smollm2-135m",
        quantization=None,
        lora=True,
        n_train=64,
        n_eval=64,
        max_steps=40,
        num_generations=8,
        max_completion_length=48,
        seeds=(0, 1, 2),
        toy_steps=600,
        toy_samples=50_000,
        description="a laptop CPU, offline: the bundled SmolLM2-135M and exact toy models",
    ),
    "gpu": Scale(
        name="gpu",
        model="Qwen/Qwen2.5-1.5B-Instruct",
        quantization="4bit",
        lora=True,
        n_train=1_000,
        n_eval=500,
        max_steps=500,
        num_generations=8,
        max_completion_length=512,
        seeds=(0, 1, 2),
        toy_steps=5_000,
        toy_samples=1_000_000,
        description="one 16-24 GB GPU: a 1.5-7B model in 4-bit NF4 with LoRA (QLoRA)",
    ),
    "cluster": Scale(
        name="cluster",
        model="Qwen/Qwen2.5-7B",
        quantization=None,
        lora=False,
        n_train=5_000,
        n_eval=1_000,
        max_steps=1_000,
        num_generations=8,
        max_completion_length=1_024,
        seeds=(0, 1, 2),
        toy_steps=5_000,
        toy_samples=1_000_000,
        description="several GPUs, accelerate + DeepSpeed ZeRO-3 or FSDP: the papers' recipes",
    ),
}


def check_scale_name(name) -> str:
    """``name`` normalised (``" CPU "`` -> ``"cpu"``) if it is a scale, else ``ValueError`` listing
    the accepted ones. The one place that decides what a scale name is."""
    key = str(name).strip().lower()
    if key not in SCALES:
        raise ValueError(
            f"unknown scale {name!r}; accepted scales: {', '.join(SCALES)} "
            f"(set {ENV_VAR} to one of them, or leave it unset for {DEFAULT!r})"
        )
    return key


def get_scale(name: str) -> Scale:
    """The preset called ``name``; an unknown name raises ``ValueError`` listing the valid ones."""
    return SCALES[check_scale_name(name)]


def current_scale(default: str = DEFAULT) -> Scale:
    """The scale named by the ``ALIGNKIT_SCALE`` environment variable (``cpu`` when unset)."""
    return get_scale(os.environ.get(ENV_VAR) or default)


def sizes_for(table: Mapping[str, T], scale: str | Scale, *, owner: str, hint: str = "") -> T:
    """The entry of a chapter's size table (keyed by scale name) for ``scale``.

    Every chapter keeps one such table beside its experiment (e.g.
    ``alignkit.chapters.bleuberi.config.SIZES``) and reads it through this function, so a bad
    scale name and a scale the chapter does not size get the same clear error. ``owner`` names
    the table in that error; ``hint`` says what to do instead (e.g. "use the cluster recipe").
    """
    name = check_scale_name(scale.name if isinstance(scale, Scale) else scale)
    if name not in table:
        raise ValueError(f"{owner} has no sizes for scale {name!r}; it has {', '.join(table)}"
                         + (f" ({hint})" if hint else ""))
    return table[name]
