"""Named training tasks for recipes: each builds a prompt dataset and its reward functions.

A recipe says ``task: {name: brevity, n_train: 1000}``; ``build_task`` looks the name up here.
Chapters register their tasks next to the code that defines them (with ``@register_task``), and
list that module in ``TASK_MODULES`` so that the registry is filled on first use; this module
keeps only the registry and the chapter-0 toy task. Introduced with the recipe launcher.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

TASKS: dict[str, Callable] = {}

# modules that register chapter tasks; imported lazily so that ``import alignkit`` stays light
TASK_MODULES: tuple[str, ...] = (
    "alignkit.experiments.bleuberi",  # chapter 1: bleuberi
    "alignkit.diversity",  # chapter 3: keyword
    "alignkit.experiments.limr_lm",  # chapter 2: limr_arithmetic, limr_hub
)


def _load_task_modules() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)


def register_task(name: str):
    """Decorator: make a ``builder(n_train, seed, **kwargs) -> (dataset, reward_funcs)`` usable by name."""

    def decorate(builder: Callable) -> Callable:
        TASKS[name] = builder
        return builder

    return decorate


def task_arguments(name: str) -> list[str]:
    """The keyword arguments a task builder accepts (the valid keys of a recipe's ``task``)."""
    builder = get_task(name)
    return [p for p in inspect.signature(builder).parameters if p != "self"]


def get_task(name: str) -> Callable:
    """The builder registered as ``name``; an unknown name raises ``ValueError`` listing all tasks."""
    if name not in TASKS:
        _load_task_modules()
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name]


def build_task(name: str, **kwargs):
    """``(train_dataset, reward_funcs)`` for the named task; unknown arguments are named."""
    valid = task_arguments(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ValueError(f"task {name!r} got unknown argument(s) {unknown}; valid: {valid}")
    dataset, rewards = get_task(name)(**kwargs)
    if len(dataset) == 0:
        raise ValueError(f"task {name!r} built an empty dataset (n_train={kwargs.get('n_train')})")
    return dataset, rewards


SUBJECTS = ["cats", "rain", "trains", "coffee", "mountains", "chess", "bees", "glass", "clouds",
            "maps", "salt", "owls", "bridges", "paper", "snow", "clocks", "rivers", "bread",
            "violins", "deserts", "lanterns", "ferns", "harbours", "kites"]


def prompt_rows(texts, extra: list[dict] | None = None) -> list[dict]:
    """Conversational GRPO rows ``{"prompt": [{"role": "user", ...}], **extra}`` from prompt texts."""
    extra = extra or [{} for _ in texts]
    return [{"prompt": [{"role": "user", "content": t}], **e} for t, e in zip(texts, extra, strict=True)]


@register_task("brevity")
def brevity_task(n_train: int = 64, seed: int = 0, target_words: int = 10):
    """Chapter 0's toy task: 'Tell me about X.' prompts, rewarded for replies of ~``target_words``."""
    import random
    from functools import partial

    from datasets import Dataset

    from alignkit.rewards import brevity_reward

    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    rng = random.Random(seed)
    rows = prompt_rows([f"Tell me about {rng.choice(SUBJECTS)}." for _ in range(n_train)])
    reward = partial(brevity_reward, target_words=target_words)
    reward.__name__ = "brevity_reward"
    return Dataset.from_list(rows), [reward]
