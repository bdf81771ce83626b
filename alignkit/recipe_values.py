"""Recipe values checked against TRL's own config fields, before any model loads.

A recipe's trainer section (and each ``--grpo.key value`` override) is checked for the type of
its ``trl.GRPOConfig`` / ``SFTConfig`` / ``RewardConfig`` field, coerced where YAML reads a
number as a string (``1e-4``), and held to a range for the fields that matter. Used by
:func:`alignkit.recipe.validate`; introduced with the recipe launcher.
"""

from __future__ import annotations

import enum
import math
import re
import types
import typing
from dataclasses import fields

# ranges of the key trainer fields, checked before anything loads: (test, what is accepted)
_RANGES: dict = {
    "max_steps": (lambda v: v >= 1, "a positive int (the number of optimiser steps)"),
    "learning_rate": (lambda v: v > 0, "> 0"),
    "temperature": (lambda v: v > 0, "> 0"),
    "beta": (lambda v: v >= 0, ">= 0"),
    "top_p": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "top_k": (lambda v: v >= 0, ">= 0 (0: no top-k truncation)"),
    "num_generations": (lambda v: v >= 2, ">= 2 (GRPO's advantages need a group)"),
    "per_device_train_batch_size": (lambda v: v >= 1, ">= 1"),
    "gradient_accumulation_steps": (lambda v: v >= 1, ">= 1"),
    "max_completion_length": (lambda v: v >= 1, ">= 1"),
    "num_iterations": (lambda v: v >= 1, ">= 1"),
    "epsilon": (lambda v: v >= 0, ">= 0"),
    "num_train_epochs": (lambda v: v > 0, "> 0"),
    "warmup_steps": (lambda v: v >= 0, ">= 0"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "max_grad_norm": (lambda v: v >= 0, ">= 0"),
    "save_steps": (lambda v: v > 0, "> 0"),
    "logging_steps": (lambda v: v > 0, "> 0"),
    "seed": (lambda v: v >= 0, ">= 0"),
}
# GRPO fields with a fixed set of values (loss_type's is read from TRL's own help text)
_GRPO_CHOICES: dict = {"scale_rewards": ("group", "batch", "none", True, False),
                       "importance_sampling_level": ("token", "sequence"),
                       "vllm_mode": ("colocate", "server")}
_GRPO_LOSS_TYPES = ("grpo", "dr_grpo", "dapo", "bnpo", "cispo", "sapo", "luspo", "vespo")  # TRL 1.x


def _supported_values(field) -> tuple[str, ...] | None:
    """The values a TRL config field's help lists after "Supported values are" (None if none)."""
    match = re.search(r"Supported values are:?\s*(.*?)\.(?:\s|$)", field.metadata.get("help", ""))
    values = tuple(re.findall(r"'([A-Za-z0-9_]+)'", match.group(1))) if match else ()
    return values or None


def _options(annotation) -> tuple:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _type_name(annotation) -> str:
    names = []
    for option in _options(annotation):
        base = typing.get_origin(option) or option
        names.append("null" if option is type(None) else getattr(base, "__name__", str(option)))
    return " or ".join(names)


_NO_VALUE = object()


def _coerce(value, annotation):
    """``value`` as a field of type ``annotation`` takes it, or ``_NO_VALUE`` when it cannot.

    Exact types first; then a numeric string or an int for a float field ("1e-4": YAML reads a
    mantissa without a dot as a string), an integer string or integral float for an int field.
    """
    options = _options(annotation)
    checkable = True
    for option in options:
        base = typing.get_origin(option) or option
        if option is type(None):
            if value is None:
                return None
        elif base is bool:
            if isinstance(value, bool):
                return value
        elif base is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        elif base is float:
            if isinstance(value, float):
                return value
        elif base is str:
            if isinstance(value, str):
                return value
        elif base in (list, tuple):
            if isinstance(value, (list, tuple)):
                return value
        elif base is dict:
            if isinstance(value, dict):
                return value
        elif isinstance(base, type) and issubclass(base, enum.Enum):
            if isinstance(value, str) and value in {m.value for m in base}:
                return value
        else:
            checkable = False  # a class we do not know how to check (e.g. an accelerate config)
    bases = {typing.get_origin(o) or o for o in options}
    if isinstance(value, bool):
        pass
    elif float in bases and isinstance(value, int):
        return float(value)
    elif float in bases and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    elif int in bases and isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    elif int in bases and isinstance(value, float) and value.is_integer():
        return int(value)
    return value if not checkable else _NO_VALUE


def check_values(trainer: str, config_cls, section: dict) -> dict:
    """``section`` (a recipe's ``trainer`` section) with each value checked against its field of
    ``config_cls`` (the TRL config: numeric strings coerced for float fields, ``1e-4``) and the
    key fields' ranges; ``ValueError`` names the key, the value and what is accepted."""
    declared = {f.name: f for f in fields(config_cls)}
    checked = {}
    for key, value in section.items():
        field = declared.get(key)
        if field is None:
            checked[key] = value  # unknown keys are reported by validate
            continue
        annotation = field.type
        if isinstance(annotation, str):
            annotation = typing.get_type_hints(config_cls).get(key, typing.Any)
        enums = [o for o in _options(annotation) if isinstance(o, type) and issubclass(o, enum.Enum)]
        allowed = [m.value for e in enums for m in e]
        if enums and isinstance(value, str) and value not in allowed:  # e.g. lr_scheduler_type
            raise ValueError(f"{trainer}.{key}: {value!r} is not one of {', '.join(map(repr, allowed))} "
                             f"(trl.{config_cls.__name__}.{key})")
        coerced = _coerce(value, annotation)
        if coerced is _NO_VALUE:
            kind = _type_name(annotation)
            hint = ("; YAML reads no/yes/off/on as booleans: quote the word ('\"no\"')"
                    if isinstance(value, bool) and "str" in kind else "")
            raise ValueError(f"{trainer}.{key}: {value!r} is not {'an' if kind[0] in 'aeiou' else 'a'} {kind} "
                             f"(trl.{config_cls.__name__}.{key}){hint}")
        if isinstance(coerced, float) and math.isnan(coerced):
            raise ValueError(f"{trainer}.{key}: nan is not a number")
        rule = _RANGES.get(key)
        if rule is not None and isinstance(coerced, (int, float)) and not isinstance(coerced, bool) \
                and not rule[0](coerced):
            raise ValueError(f"{trainer}.{key}: {value!r} is out of range; it must be {rule[1]}")
        choices = _GRPO_CHOICES.get(key) if trainer == "grpo" else None
        if trainer == "grpo" and key == "loss_type":
            choices = _supported_values(field) or _GRPO_LOSS_TYPES
        if choices is not None and coerced not in choices:
            raise ValueError(f"{trainer}.{key}: {value!r} is not one of {', '.join(map(repr, choices))} "
                             f"(trl.{config_cls.__name__}.{key})")
        checked[key] = coerced
    return checked
