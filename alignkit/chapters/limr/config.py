"""Chapter 2 (LIMR): the paper's GRPO-side fields and the two experiments' sizes per scale.

* :data:`PAPER_GRPO`: LIMR's released training settings (OpenRLHF PPO, ``scripts/train.sh`` in
  GAIR-NLP/LIMR) mapped onto TRL's GRPO, each with the paper's value; the recipes
  ``02_limr/{gpu,cluster}.yaml`` take them from here.
* :data:`PAPER_RUN`: the paper's learning rate, generation length and batch, for the notebook's
  side-by-side table of the real-LM track's ``GRPOConfig`` (:func:`~alignkit.chapters.limr.lm.paper_vs_ours`);
* :data:`TOY_SIZES` (the toy arithmetic pipeline, :mod:`~alignkit.chapters.limr.toy`) and
  :data:`LM_SIZES` (the real-LM track, :mod:`~alignkit.chapters.limr.lm`), read with
  :func:`toy_sizes` / :func:`lm_sizes`. At gpu and cluster scale the chapter trains with the recipes.
"""

from __future__ import annotations

from alignkit.scale import sizes_for

PAPER_GRPO: dict = dict(
    num_generations=8,  # paper: 8 samples per prompt
    temperature=1.2,  # paper: 1.2
    top_p=1.0,  # paper: 1.0
    top_k=0,  # paper: -1 (no top-k); 0 disables it in transformers
    beta=0.01,  # paper: KL 0.01 (folded into the reward per token in OpenRLHF)
    loss_type="grpo",  # GRPO's per-sequence normalisation; the paper's PPO has no such choice
    scale_rewards="group",  # GRPO's group-normalised advantages (paper: GAE with a critic, whitened)
    epsilon=0.2,  # paper: PPO clip 0.2
    num_iterations=1,  # paper: 1 PPO epoch per rollout batch
    adam_beta2=0.95,  # paper: Adam (0.9, 0.95)
    weight_decay=0.0,  # paper: 0
    max_grad_norm=1.0,  # paper: 1.0
)

# the paper's values of the sizes every run sets itself (scripts/train.sh of GAIR-NLP/LIMR; the
# cluster recipe uses them), shown beside the real-LM track's own in the notebook
PAPER_RUN: dict = dict(
    learning_rate=5e-7,  # paper: actor 5e-7, full fine-tuning (no LoRA)
    max_completion_length=3072,  # paper: generation <= 3,072 tokens (prompt <= 1,024)
    per_device_train_batch_size=4,  # paper: micro batch 4 per GPU, 256 per optimiser step
)

# the toy pipeline: pretraining mix and pool sizes, epochs of the scoring run, retraining steps, seeds
TOY_SIZES: dict[str, dict] = {
    "smoke": dict(n_sft=6000, n_pool=128, n_eval=300, sft_steps=400, epochs=4, steps=32, seeds=(0,)),
    # 10 seeds: the pilot (5 seeds) gave per-seed differences with SD ~0.035, so 10 seeds bring the
    # 95% half-width of LIM - FULL and LIM - RAND to ~0.025 (see the notebook's design section)
    "cpu": dict(n_sft=6000, n_pool=256, n_eval=500, sft_steps=400, epochs=8, steps=128,
                seeds=tuple(range(10))),
}

# the real-LM track: pool size, epochs over it, prompts per GRPO step, rollouts per prompt, lengths,
# eval size, learning rate, temperature, shots (worked examples in the prompt, lm.SHOTS).
# Temperature 1.0, not the paper's 1.2: at 1.2 the 135M model's answers are mostly noise.
# cpu: 32 steps of 2 prompts x 8 rollouts (16 problems, 4 of each kind, 4 epochs); 120 held-out
# problems, paired before and after. Sized to the CPU: a rollout's training pass over its ~100
# prompt tokens costs ~3 s on one core, so 512 rollouts take ~25 min.
LM_SIZES: dict[str, dict] = {
    "smoke": dict(n_pool=2, epochs=2, prompts_per_step=2, num_generations=4, max_completion_length=16,
                  n_eval=2, learning_rate=2e-4, temperature=1.0, shots=2),
    "cpu": dict(n_pool=16, epochs=4, prompts_per_step=2, num_generations=8, max_completion_length=16,
                n_eval=120, learning_rate=2e-4, temperature=1.0, shots=2),
}

HINT = "at gpu and cluster scale train with the recipes in alignkit/recipes/02_limr/"


def toy_sizes(scale: str) -> dict:
    """The toy pipeline's sizes at ``scale`` (a copy)."""
    return dict(sizes_for(TOY_SIZES, scale, owner="chapter 2's toy pipeline", hint=HINT))


def lm_sizes(scale: str) -> dict:
    """The real-LM track's sizes at ``scale`` (a copy)."""
    return dict(sizes_for(LM_SIZES, scale, owner="chapter 2's real-LM track", hint=HINT))
