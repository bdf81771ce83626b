"""Reward models: a sequence-classification head on a policy, trained with TRL's RewardTrainer.

Chapter 1 introduces this module (the learned reward of BLEUBERI's GRPO-RM baseline and the RM
row of its agreement table); chapter 5 fits one to two-group preferences, to watch the minority's
preference disappear. Two ways to train the same Bradley-Terry model, -log sigma(r(chosen) - r(rejected)):

* ``alignkit.training.build_reward_trainer``: TRL ``RewardTrainer`` on the model
  :func:`load_reward_model` returns (the real API; with ``freeze_backbone=True`` only the linear
  ``score`` head learns, which fits on a CPU);
* ``last_token_features`` + ``train_bt_head``: the same head on cached frozen features, from
  scratch in torch, fast enough to sweep many settings and seeds.

The head reads the final hidden state at the last non-padding token, exactly as transformers'
sequence-classification models do, so both paths fit the same model family.
"""

from __future__ import annotations

import numpy as np
import torch

from alignkit.models import load_tokenizer, resolve
from alignkit.runtime import pick_device


def load_reward_model(name: str = "smollm2-135m", *, freeze_backbone: bool = True, seed: int = 0,
                      device: torch.device | str | None = None):
    """A one-output sequence-classification model and its tokenizer, for ``name`` (short name, hub id, folder).

    The ``score`` head is new (initialised under ``seed``); ``freeze_backbone=True`` leaves only it
    trainable. Returns ``(model, tokenizer)`` with the pad token set on both.
    """
    import transformers
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(name)
    torch.manual_seed(seed)
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # "score.weight newly initialised" is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(resolve(name), num_labels=1,
                                                                   dtype=torch.float32)
    finally:
        transformers.logging.set_verbosity(verbosity)
    model.config.pad_token_id = tokenizer.pad_token_id
    if freeze_backbone:
        for pname, param in model.named_parameters():
            param.requires_grad = pname.startswith("score.")
    return model.to(pick_device() if device is None else device), tokenizer


@torch.no_grad()
def _last_hidden(model, tokenizer, texts: list[str], batch_size: int) -> torch.Tensor:
    """Final hidden states at each text's last non-pad token (the position the score head reads)."""
    if len(texts) == 0:
        raise ValueError("texts is empty")
    backbone = getattr(model, "base_model", model)
    device = next(model.parameters()).device
    out = []
    model.eval()
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True).to(device)
        hidden = backbone(**batch).last_hidden_state
        non_pad = (batch["input_ids"] != tokenizer.pad_token_id).int()
        last = (torch.arange(non_pad.shape[1], device=device) * non_pad).argmax(-1)
        out.append(hidden[torch.arange(hidden.shape[0], device=device), last].float().cpu())
    return torch.cat(out)


def last_token_features(model, tokenizer, texts: list[str], batch_size: int = 32) -> torch.Tensor:
    """Frozen features, one row per text: what a sequence-classification head would see."""
    return _last_hidden(model, tokenizer, list(texts), batch_size)


@torch.no_grad()
def score_texts(model, tokenizer, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Rewards of a sequence-classification reward model for ``texts`` (prompt + completion strings)."""
    feats = _last_hidden(model, tokenizer, list(texts), batch_size).to(model.score.weight.device)
    return model.score(feats.to(model.score.weight.dtype)).squeeze(-1).float().cpu().numpy()


def train_bt_head(chosen: torch.Tensor, rejected: torch.Tensor, *, steps: int = 300, lr: float = 0.05,
                  l2: float = 1e-3, seed: int = 0) -> torch.nn.Linear:
    """A linear reward head on frozen features, fitted with the Bradley-Terry loss (full-batch Adam).

    ``chosen[i]`` and ``rejected[i]`` are the features of pair i. ``l2`` is a ridge penalty on the
    weights, so that separable data still gives finite rewards. Deterministic for a given seed,
    but the fixed number of Adam steps stops short of the optimum, so the answer moves with the
    seed and with small changes of the features: :func:`fit_bt_head` solves the same problem to
    convergence (chapters 1 and 5 now use that one).
    """
    if chosen.shape != rejected.shape or chosen.ndim != 2 or chosen.shape[0] == 0:
        raise ValueError(f"chosen and rejected must be equal, non-empty 2-D, got {tuple(chosen.shape)}, "
                         f"{tuple(rejected.shape)}")
    torch.manual_seed(seed)
    head = torch.nn.Linear(chosen.shape[1], 1)
    mu, sd = chosen.mean(0), torch.cat([chosen, rejected]).std(0) + 1e-6
    opt = torch.optim.Adam([head.weight], lr=lr)
    diff = (chosen - rejected) / sd  # standardised; a bias cancels in r(chosen) - r(rejected)
    for _ in range(steps):
        opt.zero_grad()
        margin = diff @ head.weight.squeeze(0)  # no bias here: it would reward "being chosen"
        loss = -torch.nn.functional.logsigmoid(margin).mean() + l2 * head.weight.pow(2).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():  # fold the standardisation into the head: r(x) = w . x / sd
        head.weight /= sd
        head.bias.copy_(-(head.weight @ mu))
    return head


def fit_bt_head(chosen, rejected, *, l2: float = 1e-2, max_iter: int = 500):
    """The ridge Bradley-Terry head on frozen features, solved to convergence (L-BFGS, float64).

    Minimises mean -log sigma(w . (chosen - rejected) / sd) + l2 |w|^2 over standardised
    features (sd over all rows), a strictly convex problem: the answer does not depend on an
    initialisation, and a small change of the features (another CPU's kernels, bf16) changes it
    only a little. Chapter 5 introduces it in place of :func:`train_bt_head`, whose fixed-step Adam
    (lr 0.05) stops short of the optimum and jitters around it, so the held-out reward moves with
    the seed of the head and the precision of the features. Returns a
    ``torch.nn.Linear`` like ``train_bt_head`` (r(x) = w . x + b; the bias only centres rewards).
    """
    if chosen.shape != rejected.shape or chosen.ndim != 2 or chosen.shape[0] == 0:
        raise ValueError(f"chosen and rejected must be equal, non-empty 2-D, got {tuple(chosen.shape)}, "
                         f"{tuple(rejected.shape)}")
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0 (it makes the optimum unique), got {l2!r}")
    both = torch.cat([chosen, rejected]).double()
    sd = both.std(0) + 1e-6
    diff = (chosen.double() - rejected.double()) / sd
    w = torch.zeros(diff.shape[1], dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], lr=1, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -torch.nn.functional.logsigmoid(diff @ w).mean() + l2 * w.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    head = torch.nn.Linear(diff.shape[1], 1)
    with torch.no_grad():
        weight = w.detach() / sd
        head.weight.copy_(weight.float()[None, :])
        head.bias.copy_(-(weight @ both.mean(0)).float())
    return head
