"""Chapter 1 (BLEUBERI): the agreement study, the learned-reward baseline, SFT and evaluation.

The paper's claim 1 asks how often a metric's higher-scored response is the one a human preferred.
Offline we have no human labels, so :func:`verifier_pairs` builds response pairs whose winner is
decided by :mod:`alignkit.verifier` (which never reads the references), and :func:`agreement`
/ :func:`agreement_table` measure each metric against that label with paired bootstrap intervals.
The same module holds the pieces of claim 2's training comparison that are not plain GRPO: the
reward model used by GRPO-RM (TRL ``RewardTrainer`` on the ``preference`` split), the SFT
baseline (TRL ``SFTTrainer`` with LoRA on the references) and the held-out evaluation.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from alignkit.rewards import bleu, bleu_rouge_f1, completion_text, rouge_l, word_count
from alignkit.verifier import check_all

# ---------------------------------------------------------------------------------------------
# Agreement (claim 1)
# ---------------------------------------------------------------------------------------------


def agreement(score_a, score_b, a_wins) -> np.ndarray:
    """Per pair: 1 when the metric prefers the labelled winner, 0 when it prefers the loser,
    0.5 when it scores both the same (a coin flip would be right half the time).

    ``score_a``/``score_b`` are the metric's scores of the two responses, ``a_wins`` the label
    (True when response a is the preferred one). The paper drops human ties before this step.
    """
    a, b, w = (np.asarray(x, dtype=float) for x in (score_a, score_b, a_wins))
    if not a.shape == b.shape == w.shape or a.ndim != 1:
        raise ValueError(f"score_a, score_b and a_wins must be 1-D of equal length, got {a.shape}, {b.shape}, "
                         f"{w.shape}")
    if not np.isin(w, (0.0, 1.0)).all():
        raise ValueError("a_wins must hold booleans (True when response a is preferred)")
    sign = np.sign(a - b) * np.where(w == 1.0, 1.0, -1.0)
    return (sign + 1) / 2


def zscore(values) -> np.ndarray:
    """``(x - mean) / std`` over the data set (all zeros when the values are constant)."""
    x = np.asarray(values, dtype=float)
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def combine_zscores(*score_lists) -> np.ndarray:
    """BLEU+RM as in the paper's agreement script: z-score each metric over the data set, average."""
    if not score_lists:
        raise ValueError("combine_zscores needs at least one list of scores")
    return np.mean([zscore(s) for s in score_lists], axis=0)


def paired_bootstrap(correct: dict[str, np.ndarray], *, n_boot: int = 2000, seed: int = 0,
                     confidence: float = 0.95, clusters=None) -> dict[str, tuple[float, float, float]]:
    """Percentile bootstrap ``(mean, lo, hi)`` of each metric's agreement, resampling the *same*
    pairs for every metric (so differences between metrics get a paired interval too).

    ``correct[name]`` holds per-pair agreement (0, 0.5 or 1). With ``clusters`` (e.g. the prompt
    of each pair) whole clusters are resampled, since pairs from one prompt are not independent.
    The result also keeps the bootstrap draws (``"_boots"``, ``"_names"``) for :func:`bootstrap_diff`.
    """
    names = list(correct)
    if not names:
        raise ValueError("correct is empty: pass one array of per-pair agreement per metric")
    mat = np.stack([np.asarray(correct[n], dtype=float) for n in names])
    n = mat.shape[1]
    if n == 0:
        raise ValueError("no pairs to bootstrap")
    rng = np.random.default_rng(seed)
    if clusters is None:
        idx = rng.integers(0, n, size=(n_boot, n))
        boots = np.stack([mat[:, i].mean(1) for i in idx])
    else:
        groups = _cluster_index(clusters, n)
        picks = rng.integers(0, len(groups), size=(n_boot, len(groups)))
        boots = np.stack([mat[:, np.concatenate([groups[g] for g in p])].mean(1) for p in picks])
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boots, alpha, axis=0), np.quantile(boots, 1 - alpha, axis=0)
    out = {name: (float(mat[k].mean()), float(lo[k]), float(hi[k])) for k, name in enumerate(names)}
    out["_boots"] = boots  # (n_boot, metrics): for paired differences, see bootstrap_diff
    out["_names"] = names
    return out


def _cluster_index(clusters, n: int) -> list[np.ndarray]:
    """Indices of the pairs in each cluster (clusters given as one label per pair)."""
    labels = list(clusters)
    if len(labels) != n:
        raise ValueError(f"clusters must give one label per pair ({n}), got {len(labels)}")
    groups: dict = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    return [np.array(v) for v in groups.values()]


def bootstrap_diff(boot: dict, a: str, b: str, confidence: float = 0.95) -> tuple[float, float, float]:
    """Paired difference ``agreement(a) - agreement(b)`` with its bootstrap interval."""
    names = boot["_names"]
    for name in (a, b):
        if name not in names:
            raise ValueError(f"unknown metric {name!r}; bootstrapped: {names}")
    d = boot["_boots"][:, names.index(a)] - boot["_boots"][:, names.index(b)]
    alpha = (1 - confidence) / 2
    return boot[a][0] - boot[b][0], float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha))


def verifier_score(text: str, constraints: list[dict]) -> float:
    """Fraction of the constraints ``text`` satisfies (IFEval's loose, instruction-level view)."""
    ok = check_all(text, constraints)
    return sum(ok) / len(ok)


def verifier_pairs(rows: Sequence[dict], completions: Sequence[Sequence[str]], *,
                   max_pairs_per_prompt: int = 3) -> list[dict]:
    """Response pairs labelled by the verifier, the offline stand-in for Chatbot Arena votes.

    For each prompt (row with ``prompt``, ``references``, ``constraints``) and its sampled
    ``completions``, every two *distinct* completions whose verifier scores differ form a pair
    whose winner is the one satisfying more constraints (equal scores are dropped, as the paper
    drops ``tie (bothbad)``). At most ``max_pairs_per_prompt`` pairs per prompt, the ones with
    the largest score gap first, so that no prompt dominates. Response ``a`` is whichever came
    first in sampling order, so the winner sits on either side.
    """
    if len(rows) != len(completions):
        raise ValueError(f"{len(rows)} rows but {len(completions)} lists of completions")
    pairs = []
    for p, (row, texts) in enumerate(zip(rows, completions, strict=True)):
        uniq = list(dict.fromkeys(t for t in texts if t.strip()))
        scores = [verifier_score(t, row["constraints"]) for t in uniq]
        cand = [(abs(scores[i] - scores[j]), i, j) for i, j in itertools.combinations(range(len(uniq)), 2)
                if scores[i] != scores[j]]
        cand.sort(key=lambda c: (-c[0], c[1], c[2]))
        for _, i, j in cand[:max_pairs_per_prompt]:
            pairs.append({"prompt_index": p, "prompt": row["prompt"], "references": list(row["references"]),
                          "response_a": uniq[i], "response_b": uniq[j], "a_wins": scores[i] > scores[j],
                          "verifier_a": scores[i], "verifier_b": scores[j]})
    return pairs


def metric_scores(pairs: Sequence[dict], max_refs: int = 4, rm_scorer: Callable | None = None) -> dict:
    """Each metric's scores of both responses of every pair: ``{name: (scores_a, scores_b)}``.

    Metrics (the paper's table, offline): ``BLEU k ref`` for k = 1..max_refs (the first k
    references, cumulative as in the paper), ``ROUGE-L`` and ``BLEU-ROUGE-L`` with one reference
    (the paper's non-BLEU metrics use one), ``Longer wins`` (word count), and with ``rm_scorer``
    (``f(prompts, responses) -> scores``) ``RM`` and ``BLEU+RM`` (z-scored average of the RM and
    BLEU with all references).
    """
    if not pairs:
        raise ValueError("pairs is empty; nothing to score")
    out = {}
    for k in range(1, max_refs + 1):
        out[f"BLEU {k} ref"] = tuple(np.array([bleu(p[side], p["references"][:k]) for p in pairs])
                                     for side in ("response_a", "response_b"))
    for name, fn in (("ROUGE-L", rouge_l), ("BLEU-ROUGE-L", bleu_rouge_f1)):
        out[name] = tuple(np.array([fn(p[side], p["references"][:1]) for p in pairs])
                          for side in ("response_a", "response_b"))
    out["Longer wins"] = tuple(np.array([word_count(p[side]) for p in pairs], dtype=float)
                               for side in ("response_a", "response_b"))
    if rm_scorer is not None:
        prompts = [p["prompt"] for p in pairs]
        ra = np.asarray(rm_scorer(prompts, [p["response_a"] for p in pairs]), dtype=float)
        rb = np.asarray(rm_scorer(prompts, [p["response_b"] for p in pairs]), dtype=float)
        out["RM"] = (ra, rb)
        bleu_all = out[f"BLEU {max_refs} ref"]
        # z-score over the whole data set (both sides together), then average with BLEU's z-scores
        n = len(pairs)
        z = combine_zscores(np.concatenate(bleu_all), np.concatenate([ra, rb]))
        out["BLEU+RM"] = (z[:n], z[n:])
    return out


def agreement_table(pairs: Sequence[dict], scores: dict, *, n_boot: int = 2000,
                    seed: int = 0) -> tuple[list[dict], dict[str, list[float]]]:
    """One row per metric: agreement with the verifier label in %, and its 95% cluster-bootstrap
    interval (pairs resampled by prompt), sorted like the paper's table (best first); and the paired
    differences (points, with intervals) between the metrics the claims compare."""
    label = np.array([p["a_wins"] for p in pairs])
    correct = {name: agreement(a, b, label) for name, (a, b) in scores.items()}
    boot = paired_bootstrap(correct, n_boot=n_boot, seed=seed, clusters=[p["prompt_index"] for p in pairs])
    rows = [{"metric": name, "agreement": 100 * boot[name][0], "lo": 100 * boot[name][1],
             "hi": 100 * boot[name][2], "n_pairs": len(pairs)} for name in correct]
    rows.sort(key=lambda r: -r["agreement"])
    diffs = {}
    for a, b in (("BLEU 4 ref", "BLEU 1 ref"), ("BLEU 1 ref", "Longer wins"), ("BLEU+RM", "RM"),
                 ("BLEU+RM", "BLEU 4 ref"), ("BLEU 4 ref", "RM"), ("BLEU 1 ref", "ROUGE-L")):
        if a in correct and b in correct:
            d = bootstrap_diff(boot, a, b)
            diffs[f"{a} - {b}"] = [100 * v for v in d]
    return rows, diffs


# ---------------------------------------------------------------------------------------------
# The learned reward (GRPO-RM's reward and the RM row of the agreement table)
# ---------------------------------------------------------------------------------------------


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
                         steps: int = 300, l2: float = 1e-3):
    """Bradley-Terry reward model on ``preference`` rows: a linear head on the frozen bundled model.

    The model is the one TRL's ``RewardTrainer`` fits with ``freeze_backbone=True``
    (``AutoModelForSequenceClassification``, score read at the last token), but the head is fitted
    on features computed once (:func:`alignkit.reward_model.train_bt_head`): on one CPU thread a
    forward pass per text per step would cost minutes (the paper uses 8B/27B Skywork RMs).
    Returns ``(model, tokenizer, train_accuracy)``; the accuracy is the share of training pairs
    ranked right.
    """
    import torch

    from alignkit.reward_model import last_token_features, load_reward_model, train_bt_head

    model, tok = load_reward_model(model_name, freeze_backbone=True, seed=seed)
    data = preference_rows(tok, rows)
    chosen = last_token_features(model, tok, [d["chosen"] for d in data], batch_size=16)
    rejected = last_token_features(model, tok, [d["rejected"] for d in data], batch_size=16)
    head = train_bt_head(chosen, rejected, steps=steps, l2=l2, seed=seed)
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


# ---------------------------------------------------------------------------------------------
# SFT on the references (the paper's SFT baseline) and held-out evaluation
# ---------------------------------------------------------------------------------------------


def sft_rows(rows: Sequence[dict], n_refs: int = 1) -> list[dict]:
    """Prompt-completion rows for SFT: one per (prompt, reference) with the first ``n_refs``
    references (the paper trains on the gold reference only: ``n_refs=1``)."""
    if n_refs < 1:
        raise ValueError(f"n_refs must be >= 1, got {n_refs}")
    return [{"prompt": list(r["prompt"]), "completion": [{"role": "assistant", "content": ref}]}
            for r in rows for ref in r["references"][:n_refs]]


def build_sft_trainer(model, tokenizer, rows: Sequence[dict], *, output_dir: str, max_steps: int,
                      batch_size: int, learning_rate: float, seed: int = 0, **overrides):
    """TRL ``SFTTrainer`` on prompt-completion rows (loss on the completion only), settings explicit.

    ``model`` is a (LoRA) causal LM already loaded; ``rows`` come from :func:`sft_rows`. The paper's
    SFT: lr 5e-6 full fine-tuning, constant_with_warmup, max_grad_norm 0.2, completion-only loss.
    """
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if not rows:
        raise ValueError("rows is empty; SFT needs at least one prompt-completion pair")
    on_gpu = torch.cuda.is_available()
    fields = dict(output_dir=output_dir, max_steps=max_steps, per_device_train_batch_size=batch_size,
                  gradient_accumulation_steps=1, learning_rate=learning_rate, lr_scheduler_type="constant",
                  warmup_steps=0, max_grad_norm=0.2, seed=seed, completion_only_loss=True, max_length=512,
                  packing=False, bf16=on_gpu and torch.cuda.is_bf16_supported(), fp16=False,
                  gradient_checkpointing=False, use_cpu=not on_gpu, logging_steps=1, save_strategy="no",
                  report_to="none", disable_tqdm=True)
    fields.update(overrides)
    return SFTTrainer(model=model, args=SFTConfig(**fields), train_dataset=Dataset.from_list(list(rows)),
                      processing_class=tokenizer)


def greedy_answers(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int = 16) -> list[str]:
    """Greedy answers to user messages (chat template applied), batched with left padding."""
    import torch

    from alignkit.generation import chat_prompts

    if not prompts:
        raise ValueError("prompts is empty")
    model.eval()
    device = next(model.parameters()).device
    out = []
    texts = chat_prompts(tokenizer, list(prompts))
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            gen = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                 pad_token_id=tokenizer.pad_token_id)
            out += [t.strip() for t in tokenizer.batch_decode(gen[:, batch["input_ids"].shape[1]:],
                                                               skip_special_tokens=True)]
    return out


def evaluate_answers(answers: Sequence[str], rows: Sequence[dict]) -> dict:
    """Held-out metrics of one model's answers: strict verifier pass rate, share of constraints
    met, mean BLEU against all references, mean length in words; plus the per-prompt values."""
    if len(answers) != len(rows):
        raise ValueError(f"{len(answers)} answers but {len(rows)} rows")
    passed = [float(all(check_all(a, r["constraints"]))) for a, r in zip(answers, rows, strict=True)]
    partial = [verifier_score(a, r["constraints"]) for a, r in zip(answers, rows, strict=True)]
    bleus = [bleu(a, r["references"]) if a.strip() else 0.0 for a, r in zip(answers, rows, strict=True)]
    words = [word_count(a) for a in answers]
    return {"pass_rate": float(np.mean(passed)), "constraint_rate": float(np.mean(partial)),
            "bleu": float(np.mean(bleus)), "length_words": float(np.mean(words)),
            "per_prompt": {"pass": passed, "partial": partial, "bleu": bleus, "words": words}}
