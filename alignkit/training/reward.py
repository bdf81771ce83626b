"""Reward models: TRL's ``RewardTrainer`` (Bradley-Terry loss) with every setting written out.

Chapter 1 introduces the reward model (BLEUBERI's GRPO-RM baseline) and chapter 5 trains one with
this builder; the model itself comes from ``alignkit.reward_model.load_reward_model``. Precision
follows ``alignkit.runtime``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from trl import RewardConfig, RewardTrainer

from alignkit.runtime import progress_bars
from alignkit.training.common import make_config, without_printed_logs


def reward_config(output_dir: str, *, max_steps: int, learning_rate: float = 1e-3, batch_size: int = 16,
                  seed: int = 0, compute: torch.dtype | None = None, **fields) -> RewardConfig:
    """A ``trl.RewardConfig`` whose defaults suit a frozen backbone with a linear head.

    No gradient checkpointing (TRL turns it on by default; a frozen backbone gains nothing from
    it), no checkpoints, no reporting integrations; ``fields`` are any other ``RewardConfig``
    fields. Precision follows the policy.
    """
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps must be an int >= 1, got {max_steps!r}")
    settings = dict(output_dir=str(output_dir), max_steps=max_steps, learning_rate=learning_rate,
                    per_device_train_batch_size=batch_size, lr_scheduler_type="constant", warmup_steps=0,
                    weight_decay=0.0, seed=seed, gradient_checkpointing=False, max_length=256,
                    center_rewards_coefficient=None, disable_dropout=True,
                    logging_steps=max(1, max_steps // 5), save_strategy="no", report_to="none",
                    disable_tqdm=not progress_bars())
    return make_config(RewardConfig, {**settings, **fields}, compute=compute)


def build_reward_trainer(model, tokenizer, train_rows, *, output_dir: str, max_steps: int,
                         learning_rate: float = 1e-3, batch_size: int = 16, seed: int = 0,
                         peft_config=None, callbacks: Sequence | None = None,
                         compute: torch.dtype | None = None, **fields) -> RewardTrainer:
    """TRL ``RewardTrainer`` for ``model`` on preference rows (dicts with prompt/chosen/rejected).

    ``train_rows`` may be a list of dicts or a ``datasets.Dataset``; extra columns are dropped.
    ``peft_config`` (e.g. ``LoraConfig(task_type="SEQ_CLS", modules_to_save=["score"])``) trains an
    adapter on the backbone instead; load the model with ``freeze_backbone=False`` then.
    ``fields`` go to :func:`reward_config`.
    """
    from datasets import Dataset

    if not isinstance(train_rows, Dataset):
        if len(train_rows) == 0:
            raise ValueError("train_rows is empty; a reward model needs at least one preference pair")
        keys = [k for k in ("prompt", "chosen", "rejected") if k in train_rows[0]]
        train_rows = Dataset.from_dict({k: [r[k] for r in train_rows] for k in keys})
    args = reward_config(output_dir, max_steps=max_steps, learning_rate=learning_rate,
                         batch_size=batch_size, seed=seed, compute=compute, **fields)
    return without_printed_logs(RewardTrainer(model=model, args=args, train_dataset=train_rows,
                                              processing_class=tokenizer, peft_config=peft_config,
                                              callbacks=list(callbacks or [])))
