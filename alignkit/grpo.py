"""GRPO from scratch, readable top to bottom (CleanRL / nanoGPT style). Chapter 2 introduces it.

Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath) in four moves per step:

1. take a batch of prompts and sample a *group* of G completions for each (no critic);
2. score each completion with a reward function;
3. turn rewards into advantages by normalising within each group: ``A = (r - mean) / (std + eps)``;
4. maximise the PPO clipped objective ``min(ratio * A, clip(ratio, 1-eps, 1+eps) * A)`` per
   token, minus ``beta`` times a KL estimate to a frozen reference policy (optional).

The numbers follow TRL's ``GRPOTrainer`` (``loss_type="grpo"``, ``scale_rewards="group"``):
unbiased group std, ``eps = 1e-4``, the k3 KL estimator ``exp(ref - logp) - (ref - logp) - 1``,
per-sequence mean over tokens then mean over sequences. ``tests/test_grpo_toy.py`` checks both
against hand computations and against TRL's own ``nanstd``.

Any policy works that has two methods (the toy transformer in ``alignkit.toy_arithmetic`` does):

* ``sample(prompts, temperature) -> completions``: token ids, shape (N, T), no gradient;
* ``token_logprobs(prompts, completions) -> logp``: log pi(token) per completion token, (N, T).

A hook ``on_rewards(step, epoch, sample_ids, rewards)`` sees every rollout's reward, which is
how LIMR's per-sample learning trajectories are recorded (``alignkit.trajectories``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class GRPOConfig:
    """GRPO knobs (TRL's names where TRL has the same one).

    Attributes:
        num_generations: G, completions sampled per prompt (TRL ``num_generations``).
        prompts_per_step: distinct prompts per optimiser step (the batch is that times G).
        learning_rate: Adam step size.
        epsilon: PPO clip range (TRL ``epsilon``, 0.2).
        beta: KL coefficient to the frozen start policy; 0 skips the reference (TRL ``beta``).
        temperature: sampling temperature of the rollouts.
        num_iterations: gradient steps on each batch of rollouts (1 = on-policy, ratio = 1).
        scale_rewards: divide by the group std (True) or only subtract the group mean (False).
        max_grad_norm: gradient clipping.
    """

    num_generations: int = 8
    prompts_per_step: int = 16
    learning_rate: float = 1e-3
    epsilon: float = 0.2
    beta: float = 0.0
    temperature: float = 1.0
    num_iterations: int = 1
    scale_rewards: bool = True
    max_grad_norm: float = 1.0

    def __post_init__(self):
        if self.num_generations < 2:
            raise ValueError(f"num_generations must be >= 2 (a group needs a spread), got {self.num_generations}")
        if self.prompts_per_step < 1 or self.num_iterations < 1:
            raise ValueError(f"prompts_per_step and num_iterations must be >= 1, got "
                             f"{self.prompts_per_step} and {self.num_iterations}")
        if self.beta < 0 or self.epsilon <= 0 or self.temperature <= 0 or self.learning_rate <= 0:
            raise ValueError(f"need beta >= 0 and epsilon, temperature, learning_rate > 0; got beta="
                             f"{self.beta}, epsilon={self.epsilon}, temperature={self.temperature}, "
                             f"learning_rate={self.learning_rate}")


def group_advantages(rewards: torch.Tensor, *, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Group-normalised advantages of a (prompts, G) reward tensor: ``(r - mean) / (std + eps)``.

    ``std`` is the unbiased (Bessel-corrected) std within each group, as in TRL. A group whose
    completions all got the same reward has advantage 0: it teaches nothing (LIM's always-solved
    and never-solved samples are exactly such groups).
    """
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ValueError(f"rewards must have shape (prompts, G >= 2), got {tuple(rewards.shape)}")
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    return centred / (rewards.std(dim=1, keepdim=True) + eps)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, *,
              epsilon: float = 0.2, beta: float = 0.0, ref_logp: torch.Tensor | None = None,
              mask: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The GRPO loss (to minimise) and its statistics.

    Args:
        logp: per-token log-probs under the current policy, (N, T), with gradient.
        old_logp: the same under the policy that sampled, (N, T), no gradient.
        advantages: one advantage per completion, (N,).
        epsilon: clip range; ``beta`` and ``ref_logp`` (N, T): the KL-to-reference term.
        mask: 1 for real completion tokens, 0 for padding (all ones when None).
    """
    mask = torch.ones_like(logp) if mask is None else mask.to(logp.dtype)
    ratio = torch.exp(logp - old_logp)
    adv = advantages.unsqueeze(1)
    per_token = -torch.min(ratio * adv, torch.clamp(ratio, 1 - epsilon, 1 + epsilon) * adv)
    kl = torch.zeros_like(logp)
    if beta > 0:
        if ref_logp is None:
            raise ValueError("beta > 0 needs ref_logp, the reference policy's per-token log-probs")
        kl = torch.exp(ref_logp - logp) - (ref_logp - logp) - 1  # k3 estimator, >= 0
        per_token = per_token + beta * kl
    per_seq = (per_token * mask).sum(1) / mask.sum(1).clamp(min=1.0)
    loss = per_seq.mean()
    clipped = ((ratio < 1 - epsilon) | (ratio > 1 + epsilon)).to(logp.dtype)
    stats = {"loss": loss.item(),
             "kl": ((kl * mask).sum() / mask.sum().clamp(min=1.0)).item(),
             "clip_fraction": ((clipped * mask).sum() / mask.sum().clamp(min=1.0)).item()}
    return loss, stats


RewardFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
RewardHook = Callable[[int, int, np.ndarray, np.ndarray], None]


def grpo_step(policy, optimizer: torch.optim.Optimizer, prompts: torch.Tensor, sample_ids: torch.Tensor,
              reward_fn: RewardFn, cfg: GRPOConfig, *, ref_policy=None, step: int = 0, epoch: int = 0,
              on_rewards: RewardHook | None = None) -> dict[str, float]:
    """One GRPO step on a batch of prompts (B, P): sample, score, normalise, clip, update.

    ``reward_fn(prompts, completions, sample_ids) -> rewards`` (one float per completion);
    ``on_rewards(step, epoch, sample_ids, rewards)`` receives every rollout's reward.
    """
    g = cfg.num_generations
    rep_prompts = prompts.repeat_interleave(g, dim=0)  # each prompt G times, groups contiguous
    rep_ids = sample_ids.repeat_interleave(g, dim=0)
    # 1. rollouts from the current policy, and their log-probs before the update
    with torch.no_grad():
        completions = policy.sample(rep_prompts, temperature=cfg.temperature)
        old_logp = policy.token_logprobs(rep_prompts, completions)
        ref_logp = ref_policy.token_logprobs(rep_prompts, completions) if cfg.beta > 0 else None
    # 2. rewards, and the hook that records per-sample trajectories
    rewards = torch.as_tensor(reward_fn(rep_prompts, completions, rep_ids), dtype=torch.float32)
    if rewards.shape != (len(rep_prompts),) or not torch.isfinite(rewards).all():
        raise ValueError(f"reward_fn must return {len(rep_prompts)} finite rewards, got {rewards!r:.200}")
    if on_rewards is not None:
        on_rewards(step, epoch, rep_ids.numpy(), rewards.numpy())
    # 3. group-normalised advantages
    adv = group_advantages(rewards.view(-1, g), scale=cfg.scale_rewards).view(-1)
    # 4. clipped policy-gradient updates (num_iterations > 1 reuses the same rollouts)
    for _ in range(cfg.num_iterations):
        logp = policy.token_logprobs(rep_prompts, completions)
        loss, stats = grpo_loss(logp, old_logp, adv, epsilon=cfg.epsilon, beta=cfg.beta, ref_logp=ref_logp)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
        optimizer.step()
    solved = (rewards.view(-1, g).std(dim=1) == 0).float().mean().item()
    return {"step": step, "epoch": epoch, "reward": rewards.mean().item(), "zero_std_groups": solved, **stats}


def train_grpo(policy, pool: torch.Tensor, reward_fn: RewardFn, cfg: GRPOConfig, *, steps: int,
               seed: int = 0, pool_ids: torch.Tensor | None = None, on_rewards: RewardHook | None = None,
               eval_fn: Callable[[object], float] | None = None, eval_every: int = 0) -> list[dict]:
    """Run ``steps`` GRPO steps over a prompt pool (N, P), epoch by epoch; returns the step log.

    Each epoch is one reshuffled pass over the pool in batches of ``cfg.prompts_per_step``
    (the last short batch is dropped, like OpenRLHF's ``drop_last``; pick a pool size that the
    batch divides to score every sample every epoch). ``pool_ids`` names the rows for the hook
    (default ``0..N-1``). ``eval_fn(policy)`` runs every ``eval_every`` steps and at the end,
    logged as ``eval``. With ``beta > 0`` the reference is a frozen copy of the starting policy.
    """
    n = len(pool)
    if n < cfg.prompts_per_step:
        raise ValueError(f"the pool has {n} prompts, fewer than prompts_per_step={cfg.prompts_per_step}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    pool_ids = torch.arange(n) if pool_ids is None else torch.as_tensor(pool_ids)
    gen = torch.Generator().manual_seed(seed)
    ref_policy = copy.deepcopy(policy).eval() if cfg.beta > 0 else None
    optimizer = torch.optim.Adam(policy.parameters(), lr=cfg.learning_rate)
    per_epoch = n // cfg.prompts_per_step
    log: list[dict] = []
    order = None
    for step in range(steps):
        epoch, b = divmod(step, per_epoch)
        if b == 0:
            order = torch.randperm(n, generator=gen)
        rows = order[b * cfg.prompts_per_step:(b + 1) * cfg.prompts_per_step]
        row = grpo_step(policy, optimizer, pool[rows], pool_ids[rows], reward_fn, cfg,
                        ref_policy=ref_policy, step=step, epoch=epoch, on_rewards=on_rewards)
        if eval_fn is not None and ((eval_every and (step + 1) % eval_every == 0) or step + 1 == steps):
            row["eval"] = float(eval_fn(policy))
        log.append(row)
    return log
