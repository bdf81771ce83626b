"""Trainer builders, one per trainer type, each writing every field that matters explicitly.

* :mod:`alignkit.training.grpo`: GRPO (chapters 0-3), with the merged-LoRA fast rollout;
* :mod:`alignkit.training.sft`: SFT (chapter 1's baseline);
* :mod:`alignkit.training.reward`: Bradley-Terry reward models (chapters 1 and 5);
* :mod:`alignkit.training.common`: the precision fields, checked rewards, resume (the run's
  saved configuration, finished runs, broken checkpoints), logs.

A new trainer type (DPO, say) is one new module beside these and one line in
``alignkit.recipe.TRAINERS``; nothing else changes.
"""

from alignkit.training.common import (
    RUN_CONFIG,
    RunConfigMismatch,
    changed_fraction,
    checked_reward,
    clear_run,
    last_checkpoint,
    log_frame,
    read_run_config,
    read_trainer_state,
    run_config,
    train,
    trainable_digest,
    trainable_state,
    write_rank_summary,
)
from alignkit.training.grpo import (
    GRPO_DEFAULTS,
    FastGRPOTrainer,
    build_grpo_trainer,
    grpo_config,
    grpo_settings,
    merged_adapters,
)
from alignkit.training.reward import build_reward_trainer, reward_config
from alignkit.training.sft import build_sft_trainer, sft_config

__all__ = ["GRPO_DEFAULTS", "RUN_CONFIG", "FastGRPOTrainer", "RunConfigMismatch", "clear_run",
           "read_run_config", "read_trainer_state", "run_config", "build_grpo_trainer", "build_reward_trainer",
           "build_sft_trainer", "changed_fraction", "checked_reward", "grpo_config", "grpo_settings",
           "last_checkpoint", "log_frame", "merged_adapters", "reward_config", "sft_config", "train",
           "trainable_digest", "trainable_state", "write_rank_summary"]
