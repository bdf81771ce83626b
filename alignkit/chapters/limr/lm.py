"""LIMR's real-LM track (chapter 2): GRPO on arithmetic problems with the LIMR reward, every
rollout recorded, and LIM scores from the run.

The bundled SmolLM2-135M-Instruct is trained with TRL's ``GRPOTrainer`` (through
``alignkit.training.build_grpo_trainer``) on a small pool of generated problems for several
epochs. The reward is LIMR's rule reward (``alignkit.rewards.limr_reward``: +1 correct
``\\boxed{}`` answer, -0.5 boxed but wrong, -1 no box, garbled or truncated). A
``TrajectoryRecorder`` wraps the reward, so after training we have each problem's per-epoch
accuracy, the format and accuracy rates per epoch, and LIM scores, exactly the raw material the
paper selects from.

The problems are chosen so that the model can partly solve them before training (one- and
two-digit sums and differences, :data:`KINDS`; 20-30% correct greedy), and the prompt is the
paper's system prompt plus two worked examples (:data:`SHOTS`) that show the box. Without the
examples the 135M model almost never writes ``\\boxed{}``, every reward is -1, and GRPO learns
nothing but the format (measured on the old word problems: accuracy 0.00 -> 0.00).

    python -m alignkit.chapters.limr.lm --scale smoke|cpu [--out results/02_limr/lm_<scale>.json]

At ``cpu`` scale the trainer reports to TensorBoard: event files in ``runs/02_limr/lm_cpu/runs/``
(:func:`lm_output_dir`). :func:`lm_grpo_config` builds the run's ``trl.GRPOConfig`` without the
model, and :func:`paper_vs_ours` sets its paper-critical fields beside the paper's values.

Also defines the recipe tasks ``limr_arithmetic`` (these problems) and ``limr_hub`` (the
released LIMR / MATH sets from the hub or a local JSON file in the same schema).
"""

from __future__ import annotations

import argparse
import contextlib
import random
import tempfile
import time
from functools import partial

import numpy as np

from alignkit.chapters.limr.config import LM_SIZES, PAPER_GRPO, PAPER_RUN, lm_sizes

SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."  # the paper's
# the worked examples shown before the question (``shots``): each answer writes the sum straight into
# the box, the habit a 135M model can copy. One example ending in "The answer is \\boxed{7}." made
# the model copy the 7 (measured: 6% correct on one-digit sums); this form gives 44% (2 shots).
SHOTS = [{"role": "user", "content": "What is 4 + 3?"}, {"role": "assistant", "content": "4 + 3 = \\boxed{7}"},
         {"role": "user", "content": "What is 12 + 9?"}, {"role": "assistant", "content": "12 + 9 = \\boxed{21}"}]
USER_SUFFIX = ""  # the examples show the box; kept as a knob for prompts without them

# the problem family: four kinds of rising difficulty for the bundled model (greedy, 2 shots,
# measured on 32 each): add1 44%, sub1 28%, add22 16%, add2 9%
KINDS = {
    "add1": lambda rng: (rng.randint(1, 9), "+", rng.randint(1, 9)),
    "sub1": lambda rng: (rng.randint(10, 19), "-", rng.randint(2, 9)),
    "add2": lambda rng: (rng.randint(10, 49), "+", rng.randint(2, 9)),
    "add22": lambda rng: (rng.randint(10, 49), "+", rng.randint(10, 49)),
}


def arithmetic_problem(rng: random.Random, kind: str | None = None) -> dict:
    """One problem ``{"question": "What is 23 + 7?", "answer": "30", "kind": "add2"}`` drawn with
    ``rng`` (``kind`` one of :data:`KINDS`, or drawn too). Answers are non-negative integers."""
    kind = kind or rng.choice(sorted(KINDS))
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; accepted: {', '.join(KINDS)}")
    a, op, b = KINDS[kind](rng)
    return {"question": f"What is {a} {op} {b}?", "answer": str(a + b if op == "+" else a - b), "kind": kind}


def arithmetic_problems(n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct problems, the kinds in turn (balanced), the same for the same ``seed``; never
    one of the worked examples' questions."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng, kinds = random.Random(seed), sorted(KINDS)
    seen, out = {m["content"] for m in SHOTS if m["role"] == "user"}, []
    for _ in range(100 * n):
        p = arithmetic_problem(rng, kinds[len(out) % len(kinds)])
        if p["question"] not in seen:
            seen.add(p["question"])
            out.append(p)
            if len(out) == n:
                return out
    raise ValueError(f"could not draw {n} distinct problems")  # pragma: no cover - thousands exist


def chat_rows(questions, answers, *, system_prompt: str = SYSTEM_PROMPT, user_suffix: str = "",
              extra: list[dict] | None = None, shots: int = 0) -> list[dict]:
    """GRPO rows with the LIMR chat prompt (system + user), the gold ``answer`` and a ``sample_id``.

    ``shots`` (0, 1 or 2) puts that many worked examples of :data:`SHOTS` between system and user.
    """
    if shots not in (0, 1, 2):
        raise ValueError(f"shots must be 0, 1 or 2, got {shots!r}")
    extra = extra or [{} for _ in questions]
    rows = []
    for i, (q, a, e) in enumerate(zip(questions, answers, extra, strict=True)):
        prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + SHOTS[:2 * shots]
        rows.append({"prompt": prompt + [{"role": "user", "content": q + user_suffix}],
                     "answer": str(a), "sample_id": i, **e})
    return rows


def _limr_reward_fn(wrap_dollars: bool):
    from alignkit.rewards import limr_reward

    reward = partial(limr_reward, wrap_dollars=wrap_dollars)
    reward.__name__ = "limr_reward"
    return reward


def limr_arithmetic_task(n_train: int = 16, seed: int = 0, system_prompt: str = SYSTEM_PROMPT,
                         user_suffix: str = USER_SUFFIX, wrap_dollars: bool = True, shots: int = 2):
    """Chapter 2's offline task: generated arithmetic problems, LIMR's boxed-answer prompt with
    ``shots`` worked examples, and the LIMR reward."""
    from datasets import Dataset

    probs = arithmetic_problems(n_train, seed)
    rows = chat_rows([p["question"] for p in probs], [p["answer"] for p in probs], system_prompt=system_prompt,
                     user_suffix=user_suffix, extra=[{"kind": p["kind"]} for p in probs], shots=shots)
    return Dataset.from_list(rows), [_limr_reward_fn(wrap_dollars)]


def limr_hub_task(n_train: int | None = None, seed: int = 0, path: str = "GAIR/LIMR", split: str = "train",
                  system_prompt: str = SYSTEM_PROMPT, wrap_dollars: bool = True, offline_fallback: bool = False):
    """The paper's data: GAIR/LIMR (1,389 problems) or any file in its schema, the paper's prompt,
    the LIMR reward. ``n_train`` takes a seeded random subset (None = all).

    ``offline_fallback=True``: when the hub cannot be reached (offline CI building the recipe on
    a CPU), warn and use the generated arithmetic problems of ``limr_arithmetic`` instead of failing.
    """
    import warnings

    from datasets import Dataset

    from alignkit.data import load_limr_rows

    try:
        rows = load_limr_rows(path, split)
    except (OSError, ConnectionError) as err:  # datasets raises these offline / on a missing file
        if not offline_fallback:
            raise
        warnings.warn(f"could not load {path!r} ({type(err).__name__}); offline_fallback: training on "
                      f"generated arithmetic problems instead", stacklevel=2)
        probs = arithmetic_problems(n_train or 64, seed)
        rows = [{"question": p["question"], "answer": p["answer"]} for p in probs]
    if n_train is not None and n_train < len(rows):
        rows = random.Random(seed).sample(rows, n_train)
    data = chat_rows([r["question"] for r in rows], [r["answer"] for r in rows], system_prompt=system_prompt)
    return Dataset.from_list(data), [_limr_reward_fn(wrap_dollars)]


# ---------------------------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------------------------

def trainer_fields(p: dict) -> dict:
    """The GRPO fields the real-LM track sets itself from its sizes ``p`` (:func:`lm_sizes`), over
    ``GRPO_DEFAULTS`` and the scale's: the group, ``prompts_per_step`` groups per optimiser step,
    the length, the steps (``epochs`` passes over the pool), the learning rate and temperature.

    Not the paper's ``PAPER_GRPO``: its temperature 1.2 and KL suit a 7B math model (see
    ``config.LM_SIZES``). One place, read by :func:`run` and :func:`lm_grpo_config`.
    """
    g, k = p["num_generations"], p["prompts_per_step"]
    return dict(num_generations=g, per_device_train_batch_size=g * k,
                max_completion_length=p["max_completion_length"], max_steps=p["epochs"] * (p["n_pool"] // k),
                learning_rate=p["learning_rate"], temperature=p["temperature"])


def lm_output_dir(scale_name: str) -> str:
    """Where the real-LM track's trainer writes at a scale that keeps logs (TensorBoard event
    files in ``<this>/runs/``): ``runs/02_limr/lm_<scale>``, relative to the working directory.
    At a scale with ``report_to="none"`` (smoke) :func:`run` uses a temporary directory instead."""
    return f"runs/02_limr/lm_{scale_name}"


def lm_grpo_config(scale_name: str, output_dir: str | None = None, seed: int = 0):
    """The ``trl.GRPOConfig`` that :func:`run` trains with at ``scale_name`` (output in
    :func:`lm_output_dir` unless given), built the same way (``alignkit.training.grpo_config``)
    but without loading the model: chapter 2 prints it beside the paper's values."""
    from alignkit.scale import get_scale
    from alignkit.training import grpo_config

    return grpo_config(output_dir or lm_output_dir(scale_name), scale=get_scale(scale_name), seed=seed,
                       **trainer_fields(lm_sizes(scale_name)))


def paper_vs_ours(args) -> list[tuple[str, object, object]]:
    """``(field, the paper's value, ours)`` for every paper-critical field (``PAPER_GRPO`` and
    ``PAPER_RUN``) of a ``GRPOConfig`` ``args``, for chapter 2's side-by-side table."""
    paper = {**PAPER_GRPO, **PAPER_RUN}
    missing = [f for f in paper if not hasattr(args, f)]
    if missing:
        raise ValueError(f"args has no field(s) {missing}; pass a trl.GRPOConfig")
    return [(field, value, getattr(args, field)) for field, value in paper.items()]


EVAL_SEED = 10_000  # held-out problems come from another seed of the same generator


def greedy_eval(model, tokenizer, rows: list[dict], max_new_tokens: int) -> dict:
    """Greedy answers to chat ``rows``: format rate (reward > -1), accuracy (reward == 1), mean
    reward, every completion and its 0/1 outcome (paired before and after training)."""
    from alignkit.generation import greedy_completions
    from alignkit.rewards import limr_math_reward

    completions = greedy_completions(model, tokenizer, [r["prompt"] for r in rows], max_new_tokens=max_new_tokens,
                                     batch_size=50)
    rewards = [limr_math_reward(c, r["answer"]) for c, r in zip(completions, rows, strict=True)]
    return {"format": float(np.mean([x > -1 for x in rewards])), "accuracy": float(np.mean([x == 1 for x in rewards])),
            "reward": float(np.mean(rewards)), "examples": completions[:4],
            "correct": [int(x == 1) for x in rewards], "completions": completions}


def per_epoch_rates(records: list[dict]) -> dict[str, list[float]]:
    """Format rate, accuracy and mean reward of the training rollouts, epoch by epoch."""
    epochs = sorted({r["epoch"] for r in records})
    by = {e: [r["reward"] for r in records if r["epoch"] == e] for e in epochs}
    return {"epoch": [e + 1 for e in epochs],
            "format": [float(np.mean([x > -1 for x in by[e]])) for e in epochs],
            "accuracy": [float(np.mean([x >= 1 for x in by[e]])) for e in epochs],
            "reward": [float(np.mean(by[e])) for e in epochs], "rollouts": [len(by[e]) for e in epochs]}


def run(scale_name: str = "smoke", seed: int = 0, out: str | None = None, threshold: float = 0.6,
        shots: int | None = None) -> dict:
    """Train, record, score; write the results JSON atomically and return it (``shots`` overrides
    the preset's number of worked examples in the prompt)."""
    from datasets import Dataset

    from alignkit.io import atomic_write_json
    from alignkit.runtime import results_root, seed_everything
    from alignkit.scale import get_scale
    from alignkit.selection import lim_scores, lim_select
    from alignkit.training import build_grpo_trainer, log_frame, train
    from alignkit.trajectories import TrajectoryRecorder

    p = lm_sizes(scale_name)
    if shots is not None:
        p["shots"] = shots
    scale = get_scale(scale_name)
    seed_everything(seed)
    t0 = time.time()
    probs = arithmetic_problems(p["n_pool"], seed)
    rows = chat_rows([x["question"] for x in probs], [x["answer"] for x in probs], user_suffix=USER_SUFFIX,
                     extra=[{"kind": x["kind"]} for x in probs], shots=p["shots"])
    held = [x for x in arithmetic_problems(p["n_eval"] + p["n_pool"], EVAL_SEED + seed)
            if x["question"] not in {q["question"] for q in probs}][:p["n_eval"]]  # never a training problem
    eval_rows = chat_rows([x["question"] for x in held], [x["answer"] for x in held], user_suffix=USER_SUFFIX,
                          shots=p["shots"])
    rec = TrajectoryRecorder()
    fields = trainer_fields(p)
    steps = fields["max_steps"]
    # the trainer's directory: kept where the scale reports to TensorBoard, temporary otherwise
    keep = scale.report_to != "none"
    with contextlib.nullcontext(lm_output_dir(scale_name)) if keep else tempfile.TemporaryDirectory() as tmp:
        # GRPO_DEFAULTS (the GRPO algorithm) with this track's sizes (trainer_fields)
        # limr_reward scores a rollout cut off at max_completion_length -1 (is_truncated, from TRL's
        # own test through checked_reward), as the released rule does
        trainer = build_grpo_trainer(scale.model, rec.wrap(_limr_reward_fn(True)), Dataset.from_list(rows),
                                     scale=scale, output_dir=tmp, seed=seed, callbacks=[rec.callback()],
                                     **fields)
        tok = trainer.processing_class
        before = greedy_eval(trainer.model, tok, eval_rows, p["max_completion_length"])
        t1 = time.time()
        train(trainer, resume=False)
        train_s = time.time() - t1
        after = greedy_eval(trainer.model, tok, eval_rows, p["max_completion_length"])
        log = log_frame(trainer)
    acc, ids = rec.acc_matrix(sample_ids=range(len(rows)), n_epochs=p["epochs"])
    scores = lim_scores(acc)
    kept = lim_select(scores, threshold)
    result = {
        "scale": scale_name, "model": scale.model, "seed": seed, "preset": p, "steps": steps,
        "base_accuracy": before["accuracy"], "trained_accuracy": after["accuracy"], "held_out": held,
        "system_prompt": SYSTEM_PROMPT, "user_suffix": USER_SUFFIX, "lim_threshold": threshold,
        "pool": probs, "eval_before": before, "eval_after": after, "per_epoch": per_epoch_rates(rec.records),
        "acc_matrix": np.round(acc, 4).tolist(), "lim_scores": [None if np.isnan(s) else round(float(s), 4)
                                                                 for s in scores],
        "lim_kept": kept.tolist(),
        "train_log": [{c: (None if v != v else v) for c, v in r.items()}  # NaN -> null
                      for r in log.to_dict("records")] if len(log) else [],
        "seconds": {"train": round(train_s, 1), "total": round(time.time() - t0, 1)},
    }
    atomic_write_json(out or results_root() / "02_limr" / f"lm_{scale_name}.json", result)
    return result


def main(argv=None) -> dict:
    """Command line: run at a scale and print the before/after numbers and the LIM selection."""
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=sorted(LM_SIZES), default="smoke")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--shots", type=int, choices=(0, 1, 2), default=None, help="worked examples in the prompt")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    r = run(args.scale, args.seed, args.out, shots=args.shots)
    b, a, pe = r["eval_before"], r["eval_after"], r["per_epoch"]
    print(f"held-out greedy: format {b['format']:.2f} -> {a['format']:.2f}, accuracy {b['accuracy']:.2f} -> "
          f"{a['accuracy']:.2f}")
    print(f"training rollouts per epoch: format {np.round(pe['format'], 2).tolist()}, "
          f"accuracy {np.round(pe['accuracy'], 2).tolist()}")
    print(f"LIM >= {r['lim_threshold']}: {len(r['lim_kept'])} of {len(r['pool'])} problems; "
          f"{r['seconds']['total']:.0f} s")
    return r


if __name__ == "__main__":
    main()
