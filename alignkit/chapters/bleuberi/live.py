"""Chapter 1 (BLEUBERI): the helpers of the notebook's live GRPO-BLEU run (section 3).

The notebook writes the TRL objects out itself (``LoraConfig``, ``GRPOConfig``, ``GRPOTrainer``);
these helpers do only what would clutter its cells: the hard selection on a small pool (the
experiment's rule, :func:`alignkit.selection.select_hard_with_model`), the samples printed
before and after training, and the comparison of two configs on the paper-critical fields.
Sizes: :data:`alignkit.chapters.bleuberi.config.LIVE`.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Sequence

from alignkit.chapters.bleuberi.config import ExperimentConfig, LiveRun


def live_hard_rows(model, tokenizer, cfg: ExperimentConfig, live: LiveRun) -> tuple[list[dict], list[float]]:
    """The ``live.k_hard`` hardest of the first ``live.pool`` training prompts, as the experiment
    selects them (one sampled base-model answer each, temperature 0.7, top_p 0.9, seed 42, BLEU
    against ``cfg.n_refs`` references, the lowest kept). Returns the rows (``prompt``,
    ``references``: a GRPO data set) and their base-model BLEU, hardest first."""
    from alignkit.data import read_instruction_rows
    from alignkit.selection import select_hard_with_model

    rows = read_instruction_rows("train")[:live.pool]
    prompts = [r["prompt"][0]["content"] for r in rows]
    refs = [r["references"][:cfg.n_refs] for r in rows]
    sel, _ = select_hard_with_model(model, tokenizer, prompts, refs, live.k_hard,
                                    max_new_tokens=cfg.max_completion_length, progress=False)
    hard = [{"prompt": rows[i]["prompt"], "references": refs[i]} for i in sel.indices]
    return hard, sel.selected_scores


def show_samples(model, tokenizer, rows: Sequence[dict], *, max_new_tokens: int, n: int = 3,
                 width: int = 96) -> list[float]:
    """Print the greedy answer to the first ``n`` of ``rows`` (prompt -> completion, BLEU reward
    against the row's references) and return the rewards. Used before and after training."""
    from alignkit.generation import greedy_completions
    from alignkit.rewards import make_text_reward

    if n < 1 or not rows:
        raise ValueError(f"need n >= 1 and at least one row, got n={n} and {len(rows)} rows")
    rows = list(rows)[:n]
    answers = greedy_completions(model, tokenizer, [r["prompt"][0]["content"] for r in rows],
                                 max_new_tokens=max_new_tokens)
    rewards = make_text_reward("bleu")(answers, references=[r["references"] for r in rows])
    for row, answer, reward in zip(rows, answers, rewards, strict=True):
        print("PROMPT ", textwrap.shorten(row["prompt"][0]["content"], width))
        print("  ->   ", textwrap.shorten(answer, width, placeholder=" ...") or "(empty)")
        print(f"  BLEU  {reward:.3f}")
    return [float(r) for r in rewards]


def differing_fields(a, b, keys: Iterable[str]) -> dict[str, tuple]:
    """The fields among ``keys`` where configs ``a`` and ``b`` differ: ``{name: (a's, b's)}``.
    Empty when the notebook's hand-written ``GRPOConfig`` and the helper's agree."""
    out = {}
    for key in keys:
        va, vb = getattr(a, key), getattr(b, key)
        if va != vb:
            out[key] = (va, vb)
    return out
