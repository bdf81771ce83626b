"""The GPU check: a few real steps of every gpu recipe (and the cluster recipes that fit one GPU).

On a CUDA machine, for each recipe: s/step, tokens/s, ``torch.cuda.max_memory_allocated`` and
``max_memory_reserved``, beside the memory planner's estimate (``plan-memory``) and the step-time
planner's (``alignkit.step_time``), and their errors. Everything goes to
``results/gpu_check/<gpu-name>.json`` (committed: the README's GPU table reads it).

    python benchmarks/gpu_check.py                        # on a GPU: ~10 min in all
    python benchmarks/gpu_check.py --model smollm2-135m   # a GPU machine with no hub access
    python benchmarks/gpu_check.py --dry-run              # CPU: every recipe built, one step each

The whole check keeps to ``--budget-s`` (default 540 s): each recipe gets an equal share, and a
recipe stops after the step that spends its share (at least one step; the first step is a warm-up
and is not timed when more follow). ``--dry-run`` substitutes the bundled model, tiny lengths and
one step (``alignkit.recipe.cpu_substitutes``) so CI checks that the script and every recipe build.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from alignkit.io import atomic_write_json
from alignkit.memory import CARDS, HEADROOM
from alignkit.recipe import build_trainer, cpu_substitutes, list_recipes, load_recipe, plan_recipe
from alignkit.runtime import environment_report, results_root
from alignkit.step_time import GPUS, recipe_hours


class StepTimer(TrainerCallback):
    """Records each optimiser step's wall time and stops training once ``budget_s`` is spent."""

    def __init__(self, budget_s: float, max_steps: int):
        self.budget_s, self.max_steps, self.times, self.start = budget_s, max_steps, [], None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._t)
        if time.perf_counter() - self.start > self.budget_s or len(self.times) >= self.max_steps:
            control.should_training_stop = True


def card_gib() -> float:
    """This GPU's memory in GiB, or the 80 GB card's on a CPU (a dry run plans for it)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_properties(0).total_memory / 2**30
    return CARDS["80 GB (A100, H100)"]


def gpu_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu-dry-run"


def step_time_gpu(name: str) -> str | None:
    """The ``alignkit.step_time.GPUS`` entry this card is (by name), if any."""
    return next((g for g in GPUS if re.search(rf"\b{g}\b", name)), None)


def selected(card: float) -> tuple[list[str], dict[str, str]]:
    """The recipes to run on one card of ``card`` GiB, and the skipped ones with the reason."""
    run, skipped = [], {}
    for name in list_recipes():
        if name.endswith("/gpu.yaml"):
            run.append(name)
            continue
        plan = plan_recipe(load_recipe(name), n_gpus=1, zero_stage=0)
        peak = plan.peak_gib(card)
        if peak <= HEADROOM * card:
            run.append(name)
        else:
            skipped[name] = f"planner: {peak:.0f} GiB on one GPU without sharding > {HEADROOM:.0%} of {card:.0f} GiB"
    return run, skipped


def check_recipe(name: str, *, steps: int, budget_s: float, dry_run: bool, model: str | None,
                 card: float) -> dict:
    """Build ``name``'s trainer, run up to ``steps`` steps within ``budget_s``, and measure."""
    recipe = load_recipe(name)
    overrides = cpu_substitutes(recipe) if dry_run else []
    if model and not dry_run:
        overrides += ["--model.name", model]
    overrides += ["--grpo.max_steps", str(1 if dry_run else steps), "--grpo.logging_steps", "1",
                  "--grpo.save_strategy", '"no"', "--grpo.report_to", "none"]
    recipe = load_recipe(name, overrides)
    timer = StepTimer(budget_s, 1 if dry_run else steps)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as out:
        trainer = build_trainer(recipe, output_dir=out, callbacks=[timer])
        built = time.perf_counter() - t0
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        tokens = max([log.get("num_tokens", 0) for log in trainer.state.log_history] or [0])
    timed = timer.times[1:] if len(timer.times) > 1 else timer.times
    s_per_step = sum(timed) / len(timed)
    plan = plan_recipe(recipe, n_gpus=1, zero_stage=0)
    row = {"recipe": name, "model": recipe["model"]["name"], "overrides": overrides, "steps": len(timer.times),
           "build_s": round(built, 1), "s_per_step": round(s_per_step, 3),
           "tokens_per_s": round(tokens / sum(timer.times), 1) if tokens else None,
           "plan_gib": round(plan.peak_gib(card), 2)}
    if torch.cuda.is_available():
        allocated, reserved = torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30
        row.update(max_allocated_gib=round(allocated, 2), max_reserved_gib=round(reserved, 2),
                   plan_error=round(plan.peak_gib(card) / reserved - 1, 3))
        known = step_time_gpu(gpu_name())
        if known:
            estimate = recipe_hours(recipe, gpu=known)["total"]
            row.update(step_time_estimate_s=round(estimate, 2), step_time_error=round(estimate / s_per_step - 1, 3))
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="CPU: bundled model, one step per recipe")
    parser.add_argument("--steps", type=int, default=4, help="steps per recipe (default 4, the first untimed)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="seconds for the whole check (default 540)")
    parser.add_argument("--model", default=None, help="run every recipe with this model (e.g. smollm2-135m)")
    parser.add_argument("--recipes", nargs="*", default=None, help="only these recipes")
    parser.add_argument("--out", default=None, help="JSON path (default results/gpu_check/<gpu-name>.json)")
    args = parser.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU here; on a CPU run it with --dry-run")
    if args.steps < 1 or args.budget_s <= 0:
        sys.exit(f"gpu_check: --steps must be >= 1 and --budget-s > 0, got {args.steps} and {args.budget_s}")
    start, card = time.perf_counter(), card_gib()
    names, skipped = selected(card)
    if args.recipes:
        unknown = sorted(set(args.recipes) - set(names) - set(skipped))
        if unknown:
            sys.exit(f"gpu_check: unknown recipe(s) {unknown}; known: {', '.join(list_recipes())}")
        names = [n for n in names if n in args.recipes]
    share = args.budget_s / max(len(names), 1)
    rows = []
    for name in names:
        print(f"== {name} (budget {share:.0f} s)", flush=True)
        rows.append(check_recipe(name, steps=args.steps, budget_s=share, dry_run=args.dry_run,
                                 model=args.model, card=card))
        print(json.dumps(rows[-1]), flush=True)
    env = environment_report(show=False)
    result = {"gpu": gpu_name(), "memory_gib": round(card, 1), "dry_run": args.dry_run,
              "environment": {k: env[k] for k in ("torch", "transformers", "trl", "peft", "bitsandbytes", "dtype")},
              "recipes": rows, "skipped": skipped, "seconds": round(time.perf_counter() - start, 1)}
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu_name()).strip("-").lower()
    path = Path(args.out) if args.out else results_root() / "gpu_check" / f"{slug}.json"
    atomic_write_json(path, result)
    print(f"gpu_check: {len(rows)} recipe(s) in {result['seconds']:.0f} s -> {path}")
    return result


if __name__ == "__main__":
    main()
