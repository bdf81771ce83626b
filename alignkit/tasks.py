"""Named training tasks for recipes: each builds a prompt dataset and its reward functions.

A recipe says ``task: {name: brevity, n_train: 1000}``; :func:`build_task` looks the name up here.
Each chapter defines its tasks beside its own code and lists them in its entry of
``alignkit.chapters.index``; the registry is filled from that index on first use (so that
``import alignkit`` stays light) and the chapters never import this module back.
Introduced with the recipe launcher.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import lru_cache


@lru_cache(maxsize=1)
def registry() -> dict[str, Callable]:
    """``{task name: builder(n_train, seed, **kwargs) -> (dataset, reward_funcs)}`` of every chapter."""
    from alignkit.chapters.index import task_builders

    return task_builders()


def get_task(name: str) -> Callable:
    """The builder registered as ``name``; an unknown name raises ``ValueError`` listing all tasks."""
    tasks = registry()
    if name not in tasks:
        raise ValueError(f"unknown task {name!r}; registered tasks: {', '.join(sorted(tasks))}")
    return tasks[name]


def task_arguments(name: str) -> list[str]:
    """The keyword arguments a task builder accepts (the valid keys of a recipe's ``task``)."""
    return [p for p in inspect.signature(get_task(name)).parameters if p != "self"]


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
