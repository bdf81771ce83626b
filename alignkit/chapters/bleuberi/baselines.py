"""Chapter 1 (BLEUBERI), claim 2's baselines: the learned reward of GRPO-RM and SFT's rows.

The reward model is a Bradley-Terry head on the frozen bundled model (the model TRL's
``RewardTrainer`` fits with a frozen backbone, fitted here on features computed once, see
:mod:`alignkit.reward_model`), trained on the ``preference`` split of the offline instruction set.
SFT itself is :func:`alignkit.training.build_sft_trainer` on :func:`sft_rows`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from alignkit.rewards import completion_text


def rm_text(tokenizer, prompt, response: str) -> str:
    """What the reward model reads: the chat template of [user, assistant], ending in EOS.

    Used for training (TRL would append EOS to plain text that lacks it) and for scoring, so the
    two see exactly the same string.
    """
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    text = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
    text = text.rstrip("\n")
    return text if text.endswith(tokenizer.eos_token) else text + tokenizer.eos_token



def preference_rows(tokenizer, rows: Sequence[dict]) -> list[dict]:
    """``chosen``/``rejected`` full texts (implicit prompt) from rows of the ``preference`` split."""
    if not rows:
        raise ValueError("rows is empty; the reward model needs preference pairs")
    missing = [k for k in ("prompt", "chosen", "rejected") if k not in rows[0]]
    if missing:
        raise ValueError(f"preference rows need prompt, chosen and rejected; missing {missing}")
    return [{"chosen": rm_text(tokenizer, r["prompt"], r["chosen"]),
             "rejected": rm_text(tokenizer, r["prompt"], r["rejected"])} for r in rows]



def train_instruction_rm(rows: Sequence[dict], *, model_name: str = "smollm2-135m", seed: int = 0,
                         l2: float = 1e-2):
    """Bradley-Terry reward model on ``preference`` rows: a linear head on the frozen bundled model.

    The model is the one TRL's ``RewardTrainer`` fits with ``freeze_backbone=True``
    (``AutoModelForSequenceClassification``, score read at the last token), but the head is fitted
    on features computed once and solved to convergence (:func:`alignkit.reward_model.fit_bt_head`,
    so the head does not move with a seed or the CPU's kernels): on one CPU thread a forward pass
    per text per step would cost minutes (the paper uses 8B/27B Skywork RMs).
    Returns ``(model, tokenizer, train_accuracy)``; the accuracy is the share of training pairs
    ranked right.
    """
    import torch

    from alignkit.reward_model import fit_bt_head, last_token_features, load_reward_model

    model, tok = load_reward_model(model_name, freeze_backbone=True, seed=seed)
    data = preference_rows(tok, rows)
    chosen = last_token_features(model, tok, [d["chosen"] for d in data], batch_size=16)
    rejected = last_token_features(model, tok, [d["rejected"] for d in data], batch_size=16)
    head = fit_bt_head(chosen, rejected, l2=l2)
    with torch.no_grad():  # the sequence-classification head has no bias; a bias cancels in every comparison
        model.score.weight.copy_(head.weight.to(model.score.weight.dtype))
        acc = float(((chosen - rejected) @ head.weight.squeeze(0) > 0).float().mean())
    model.eval()
    return model, tok, acc



def rm_scorer(model, tokenizer, batch_size: int = 16) -> Callable:
    """``f(prompts, responses) -> np.ndarray`` of reward-model scores (prompts as chat messages).

    Scores are cached by text, so a response that appears in several pairs is scored once.
    """
    from alignkit.reward_model import score_texts

    cache: dict[str, float] = {}

    def score(prompts, responses):
        texts = [rm_text(tokenizer, p, r) for p, r in zip(prompts, responses, strict=True)]
        todo = list(dict.fromkeys(t for t in texts if t not in cache))
        if todo:
            cache.update(zip(todo, map(float, score_texts(model, tokenizer, todo, batch_size=batch_size)), strict=True))
        return np.array([cache[t] for t in texts])

    return score



def rm_reward(model, tokenizer) -> Callable:
    """A TRL reward function scoring each completion with the reward model (GRPO-RM's reward)."""
    scorer = rm_scorer(model, tokenizer)

    def reward(prompts, completions, **kwargs) -> list[float]:
        texts = [completion_text(c) for c in completions]
        return [float(v) for v in scorer(prompts, texts)]

    reward.__name__ = "rm_reward"
    return reward



def sft_rows(rows: Sequence[dict], n_refs: int = 1) -> list[dict]:
    """Prompt-completion rows for SFT: one per (prompt, reference) with the first ``n_refs``
    references (the paper trains on the gold reference only: ``n_refs=1``)."""
    if n_refs < 1:
        raise ValueError(f"n_refs must be >= 1, got {n_refs}")
    return [{"prompt": list(r["prompt"]), "completion": [{"role": "assistant", "content": ref}]}
            for r in rows for ref in r["references"][:n_refs]]
