"""Chapter 0 (start here): the tasks of its end-to-end GRPO run (recipe tasks ``addition`` and
``brevity``) and the chapter's pre-registered claims.

The demo trains on ``addition``: a teen plus a digit, rewarded for the right answer. A reward that
only a correct answer earns cannot be gamed by the form of the reply, unlike ``brevity`` (a
word count), which earlier versions of the chapter used and which the policy learned to satisfy
with short off-topic replies.
"""

from __future__ import annotations

import re

from alignkit.data import prompt_rows
from alignkit.ledger import Claim

SUBJECTS = ["cats", "rain", "trains", "coffee", "mountains", "chess", "bees", "glass", "clouds",
            "maps", "salt", "owls", "bridges", "paper", "snow", "clocks", "rivers", "bread",
            "violins", "deserts", "lanterns", "ferns", "harbours", "kites"]


# two worked examples before each question: the reply format a 135M model copies ("a + b = c")
SUM_SHOTS = [{"role": "user", "content": "What is 4 + 3?"}, {"role": "assistant", "content": "4 + 3 = 7"},
             {"role": "user", "content": "What is 2 + 6?"}, {"role": "assistant", "content": "2 + 6 = 8"}]


def sum_pairs(seed: int = 0) -> list[tuple[int, int]]:
    """Every sum ``(a, b)`` of a teen and a digit, 11 <= a <= 19, 2 <= b <= 9 (72 in all), in a
    seeded order: the first ones train, the rest are held out. The bundled model gets about a third
    of them right (greedy, measured on 30: 37%; one-digit sums are too easy at 92%)."""
    import random

    pairs = [(a, b) for a in range(11, 20) for b in range(2, 10)]
    random.Random(seed).shuffle(pairs)
    return pairs


def sum_prompt(a: int, b: int) -> list[dict]:
    """The chat prompt for ``a + b``: the two worked examples, then the question."""
    return SUM_SHOTS + [{"role": "user", "content": f"What is {a} + {b}?"}]


def last_integer(text: str) -> int | None:
    """The last integer written in ``text`` (None when there is none)."""
    found = re.findall(r"-?\d+", text)
    return int(found[-1]) if found else None


def sum_reward(completions, answer, **kwargs) -> list[float]:
    """TRL reward: 1.0 when the last integer of the reply is the sum (``answer`` column), else 0.0.

    Chapter 0's demo reward. Only the right number earns it, so a higher reward means more right
    answers: there is no cheaper way to the reward than doing the sum.
    """
    from alignkit.rewards import completion_text

    if len(answer) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers")
    return [float(last_integer(completion_text(c)) == int(a)) for c, a in zip(completions, answer, strict=True)]


def held_out_scores(model, tokenizer, pairs: list[tuple[int, int]], *, n: int = 4, seed: int = 0,
                    max_new_tokens: int = 16):
    """Score ``model`` on the sums ``pairs``: per sum its greedy reply, whether that reply is right
    (:func:`sum_reward`), and the mean reward of ``n`` sampled replies (temperature 1, seeded).

    Chapter 0 calls it on the base model and on the GRPO-trained one: the same sums, the same
    seed, so the two tables pair up row by row. Returns a pandas DataFrame with columns ``sum``,
    ``prompt``, ``greedy``, ``correct`` and ``reward``.
    """
    import pandas as pd

    from alignkit.generation import greedy_completions, sample_completions

    if not pairs or n < 1:
        raise ValueError(f"need at least one sum and n >= 1, got {len(pairs)} sums and n={n}")
    prompts = [sum_prompt(a, b) for a, b in pairs]
    answers = [str(a + b) for a, b in pairs]
    greedy = greedy_completions(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=50)
    sampled = sample_completions(model, tokenizer, prompts, n=n, seed=seed, progress=False,
                                 max_new_tokens=max_new_tokens, batch_size=50)
    reward = [sum(sum_reward(texts, [y] * n)) / n for texts, y in zip(sampled.texts, answers, strict=True)]
    return pd.DataFrame({"sum": [f"{a} + {b}" for a, b in pairs], "prompt": [p[-1]["content"] for p in prompts],
                         "greedy": greedy, "correct": sum_reward(greedy, answers), "reward": reward})


def addition_task(n_train: int = 32, seed: int = 0):
    """Chapter 0's GRPO task: the first ``n_train`` of :func:`sum_pairs` as chat prompts with an
    ``answer`` column, and :func:`sum_reward`."""
    from datasets import Dataset

    pairs = sum_pairs(seed)
    if not 1 <= n_train < len(pairs):
        raise ValueError(f"n_train must be in [1, {len(pairs) - 1}] (the rest is held out), got {n_train}")
    rows = [{"prompt": sum_prompt(a, b), "answer": str(a + b)} for a, b in pairs[:n_train]]
    return Dataset.from_list(rows), [sum_reward]


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


# the demo's LoRA learning rate (the notebook's parameters cell holds the same literal): 5e-4
# collapsed 1 of 3 seeds on the cpu run (every reply wrong, so every advantage 0), 2e-4 learned on
# all 4 (see seed_study and results/00_start_here/seeds_cpu.json)
DEMO_LEARNING_RATE = 2e-4
DEMO_TRAIN = 32  # training sums; the rest of sum_pairs is held out


def demo_run(scale_name: str = "cpu", seed: int = 0, learning_rate: float = DEMO_LEARNING_RATE) -> dict:
    """Chapter 0's GRPO demo as the notebook runs it (section "The shortcut"): the trainer from
    ``build_grpo_trainer`` on the first :data:`DEMO_TRAIN` sums, held-out greedy accuracy and
    sampled reward before and after training. Returns a JSON-ready summary with a few samples."""
    import tempfile
    import time

    from alignkit.runtime import seed_everything
    from alignkit.scale import get_scale
    from alignkit.training import build_grpo_trainer, log_frame, train

    scale = get_scale(scale_name)
    seed_everything(seed)
    train_set, rewards = addition_task(n_train=DEMO_TRAIN, seed=seed)
    held_out = sum_pairs(seed)[DEMO_TRAIN:DEMO_TRAIN + scale.n_eval]
    with tempfile.TemporaryDirectory(prefix="alignkit-ch0-") as tmp:
        trainer = build_grpo_trainer(scale.model, rewards, train_set, scale=scale, seed=seed,
                                     output_dir=tmp, learning_rate=learning_rate, max_completion_length=16)
        tok = trainer.processing_class
        before = held_out_scores(trainer.model, tok, held_out, seed=seed)
        # the scoring reseeded torch: reseed as the trainer's construction left it, so that the
        # training run is the notebook's own (which scores the base model before building)
        seed_everything(trainer.args.seed)
        start = time.perf_counter()
        train(trainer, resume=False)
        seconds = time.perf_counter() - start
        after = held_out_scores(trainer.model, tok, held_out, seed=seed)
        rewards_logged = log_frame(trainer)["reward"].dropna().tolist()
    return {"seed": seed, "learning_rate": learning_rate, "steps": scale.max_steps,
            "accuracy": [round(float(before["correct"].mean()), 4), round(float(after["correct"].mean()), 4)],
            "reward": [round(float(before["reward"].mean()), 4), round(float(after["reward"].mean()), 4)],
            "train_reward": [round(float(r), 4) for r in rewards_logged], "train_seconds": round(seconds, 1),
            "samples": [{"sum": s, "before": b, "after": a} for s, b, a in
                        zip(after["sum"][:4], before["greedy"][:4], after["greedy"][:4], strict=True)]}


def _study_path(scale_name: str):
    """Where :func:`seed_study` keeps a scale's runs: ``results/00_start_here/seeds_<scale>.json``."""
    from alignkit.runtime import results_root

    return results_root() / "00_start_here" / f"seeds_{scale_name}.json"


def _study_runs(path) -> list[dict]:
    """The runs a seed study file holds, none when it does not exist yet."""
    import json

    try:
        with open(path) as f:
            return json.load(f)["runs"]
    except FileNotFoundError:
        return []


def seed_study(seeds=(0, 1, 2, 3), scale_name: str = "cpu", learning_rate: float = DEMO_LEARNING_RATE,
               out=None) -> list[dict]:
    """:func:`demo_run` for each seed, kept in ``results/00_start_here/seeds_<scale>.json`` (written
    after every seed, atomically): a seed already there at this learning rate is not run again.
    Chapter 0 shows the table: one seed's run alone cannot tell a method from luck."""
    from alignkit.io import atomic_write_json

    path = out or _study_path(scale_name)
    runs = _study_runs(path)
    for seed in seeds:
        if any(r["seed"] == seed and r["learning_rate"] == learning_rate for r in runs):
            continue
        runs.append(demo_run(scale_name, seed, learning_rate))
        atomic_write_json(path, {"scale": scale_name, "runs": runs})
    return [r for r in runs if r["seed"] in seeds and r["learning_rate"] == learning_rate]


def seed_table(scale_name: str = "cpu", path=None):
    """The seed study kept by :func:`seed_study` as a table, one row a seed (empty when the study
    was not run at this scale). Chapter 0 shows it next to its own seed's run."""
    import pandas as pd

    runs = _study_runs(path or _study_path(scale_name))
    columns = ["seed", "learning rate", "accuracy before", "accuracy after", "reward after", "train s"]
    return pd.DataFrame([[r["seed"], r["learning_rate"], *r["accuracy"], r["reward"][1], r["train_seconds"]]
                         for r in runs], columns=columns)


def main(argv=None) -> list[dict]:
    """Command line: ``python -m alignkit.chapters.start_here --seeds 0 1 2 3 [--lr 2e-4]``."""
    import argparse

    ap = argparse.ArgumentParser(description="Chapter 0's GRPO demo over several seeds")
    ap.add_argument("--scale", default="cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--lr", type=float, default=DEMO_LEARNING_RATE)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    runs = seed_study(args.seeds, args.scale, args.lr, args.out)
    for r in runs:
        print(f"seed {r['seed']} lr {r['learning_rate']:g}: held-out accuracy {r['accuracy'][0]:.3f} -> "
              f"{r['accuracy'][1]:.3f}, sampled reward {r['reward'][0]:.3f} -> {r['reward'][1]:.3f} "
              f"({r['train_seconds']:.0f} s)")
    return runs


# ---------------------------------------------------------------------------------------------
# The chapter's pre-registered claims: the workbook's own claims about the bundled model on a
# laptop CPU (measured when the workbook was designed), and what the GRPO demo must show.
# ---------------------------------------------------------------------------------------------

_DESIGN = "derived here (measured on a 2-core CPU when the workbook was designed)"
CLAIMS = [
    Claim("load", "After the one-off conversion, the bundled model loads from the cache in about 0.1 s",
          "empirical", source=_DESIGN, paper="0.1 s (model + tokenizer)",
          statistic="median seconds to load model + tokenizer from the cache, 5 loads",
          hypothesis="less", margin=0.2, margin_reason="'about 0.1 s': within a factor of 2"),
    Claim("throughput", "Batched generation (batch 16) of the bundled model runs at about 140 tokens/s "
          "on 2 CPU cores", "empirical", source=_DESIGN, paper="about 140 tokens/s",
          statistic="median new tokens per second over 5 timed batches of 16",
          hypothesis="greater", margin=112.0, margin_reason="'about 140': at least 80% of it"),
    Claim("4bit-kl", "In 4-bit NF4 (bitsandbytes, on CPU) the model still answers like the full one",
          "empirical", source="QLoRA (Dettmers et al. 2023, arXiv 2305.14314), section 3: NF4 keeps "
          "16-bit quality", paper="no number for this model",
          statistic="mean KL(full || 4-bit) of the next-token distributions, nats per token",
          hypothesis="less", margin=0.5,
          margin_reason="below half a nat per token the greedy replies stay fluent and on topic"),
    Claim("grpo-step", "A GRPO step with LoRA on the bundled model takes 10-25 s on 2 CPU cores",
          "empirical", source=_DESIGN, paper="10-25 s a step (8 x 32 tokens, 4-bit)",
          statistic="mean seconds per GRPO step (TRL's step_time)", hypothesis="less", margin=25.0,
          margin_reason="the upper end of the design's range"),
    Claim("grpo-reward", "GRPO raises the reward on prompts it did not train on", "empirical",
          source="Shao et al. 2024 (DeepSeekMath, arXiv 2402.03300), section 4: GRPO", paper="no number "
          "for this toy", statistic="mean sum reward of sampled replies, trained minus base "
          "(the 40 held-out sums x 4 samples, paired by prompt)", hypothesis="greater", margin=0.0,
          margin_reason="direction only", bounds=(-1.0, 1.0)),
    Claim("grpo-accuracy", "The reward cannot be gamed: its gain is a gain in greedy accuracy on "
          "held-out sums", "empirical",
          source="derived here (the reward pays only the right number; reward hacking, Skalse et "
          "al. 2022, arXiv 2209.13085, needs a cheaper way to the reward)", paper="no number",
          statistic="greedy accuracy on the 40 held-out sums, trained minus base, paired by prompt",
          hypothesis="greater", margin=0.0, margin_reason="direction only", bounds=(-1.0, 1.0)),
]


if __name__ == "__main__":
    main()
