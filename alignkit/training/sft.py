"""SFT: TRL's ``SFTTrainer`` on prompt-completion rows, every setting written out.

Chapter 1 introduces it (BLEUBERI's SFT baseline on the references); ``python -m alignkit train``
builds it for recipes with ``trainer: sft``. Precision follows ``alignkit.runtime``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from trl import SFTConfig, SFTTrainer

from alignkit.training.common import make_config, without_printed_logs

_SFT_DEFAULTS: dict = dict(per_device_train_batch_size=8, gradient_accumulation_steps=1, learning_rate=2e-5,
                           lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
                           completion_only_loss=True,  # loss on the completion tokens only
                           max_length=512, packing=False, gradient_checkpointing=True, logging_steps=1,
                           save_strategy="no", report_to="none", disable_tqdm=True)


def sft_config(output_dir: str, *, seed: int = 0, compute: torch.dtype | None = None, **fields) -> SFTConfig:
    """A ``trl.SFTConfig``: the defaults above, then ``fields``; precision from the policy."""
    return make_config(SFTConfig, {**_SFT_DEFAULTS, "output_dir": str(output_dir), "seed": seed, **fields},
                       compute=compute)


def build_sft_trainer(model, tokenizer, rows, *, output_dir: str, seed: int = 0, callbacks: Sequence | None = None,
                      compute: torch.dtype | None = None, **fields) -> SFTTrainer:
    """TRL ``SFTTrainer`` for ``model`` (a causal LM, e.g. with LoRA) on prompt-completion ``rows``
    (a list of dicts or a ``datasets.Dataset``); ``fields`` go to :func:`sft_config`.

    Chapter 1's SFT baseline: ``rows`` from ``alignkit.chapters.bleuberi.baselines.sft_rows``.
    """
    from datasets import Dataset

    if len(rows) == 0:
        raise ValueError("rows is empty; SFT needs at least one prompt-completion pair")
    data = rows if isinstance(rows, Dataset) else Dataset.from_list(list(rows))
    args = sft_config(output_dir, seed=seed, compute=compute, **fields)
    return without_printed_logs(SFTTrainer(model=model, args=args, train_dataset=data,
                                           processing_class=tokenizer, callbacks=list(callbacks or [])))
