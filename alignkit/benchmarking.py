"""Measure a model: batched generation throughput, and how far two models' predictions differ.

Introduced in chapter 0 (full precision vs 4-bit); ``benchmarks/`` scripts use the same code.
"""

from __future__ import annotations

import time

import torch


def _new_token_counts(new_tokens: torch.Tensor, eos_ids: set[int]) -> list[int]:
    """Tokens generated per row, up to and including the first end-of-sequence token."""
    counts = []
    for row in new_tokens.tolist():
        n = len(row)
        for i, tok in enumerate(row):
            if tok in eos_ids:
                n = i + 1
                break
        counts.append(n)
    return counts


@torch.inference_mode()
def generation_throughput(model, tokenizer, prompts: list[str], *, max_new_tokens: int = 32,
                          do_sample: bool = False, warmup: bool = True) -> dict:
    """Generate one reply per prompt (user messages, chat template applied) in a single batch.

    Returns ``{"tokens", "seconds", "tokens_per_s", "texts"}`` where ``tokens`` counts real new
    tokens (padding after an end-of-sequence token is not counted).
    """
    if not prompts:
        raise ValueError("prompts is empty; give at least one prompt")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    messages = [[{"role": "user", "content": p}] for p in prompts]
    batch = tokenizer.apply_chat_template(messages, add_generation_prompt=True, padding=True,
                                          return_tensors="pt", return_dict=True).to(model.device)
    kwargs = dict(max_new_tokens=max_new_tokens, do_sample=do_sample,
                  pad_token_id=tokenizer.pad_token_id)
    if warmup:  # first call pays one-off costs (allocations, kernel choice)
        model.generate(**{k: v[:1] for k, v in batch.items()}, **{**kwargs, "max_new_tokens": 2})
    start = time.perf_counter()
    out = model.generate(**batch, **kwargs)
    seconds = time.perf_counter() - start
    new = out[:, batch["input_ids"].shape[1]:]
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    eos |= set(getattr(model.generation_config, "eos_token_id", None) or []) if isinstance(
        getattr(model.generation_config, "eos_token_id", None), list) else set()
    tokens = sum(_new_token_counts(new, eos))
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "texts": texts}


@torch.inference_mode()
def next_token_kl(model_p, model_q, tokenizer, texts: list[str]) -> float:
    """Mean over positions of KL(p(.|prefix) || q(.|prefix)) in nats, on the given texts.

    A direct measure of how much a change to a model (4-bit quantisation, a LoRA update) moves
    its predictions, averaged over every real (non-padding) position of ``texts``.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError("texts is empty (or all blank); give at least one non-empty text")
    batch = tokenizer(texts, return_tensors="pt", padding=True).to(model_p.device)
    logp = torch.log_softmax(model_p(**batch).logits.float(), dim=-1)
    logq = torch.log_softmax(model_q(**batch).logits.float().to(logp.device), dim=-1)
    kl = (logp.exp() * (logp - logq)).sum(-1)
    mask = batch["attention_mask"].bool()
    return float(kl[mask].mean())


class GRPOPhaseTimer:
    """Time the phases of each TRL GRPO step: generation, rewards, log-probs without gradient
    (old / reference policy), the loss forward, backward, optimiser, and the whole step.

    Wraps the trainer instance's own methods (no copy of TRL's loop), so the numbers describe
    exactly what ``trainer.train()`` does. Used by ``benchmarks/grpo_cpu.py`` (issue: fast GRPO
    on a laptop CPU). ``steps`` holds one dict of seconds per optimiser step.
    """

    PHASES = ("generation", "rewards", "logprobs_nograd", "loss_forward", "backward", "optimizer")
    # TRL's private GRPOTrainer methods this timer wraps (no public hook exists for these phases;
    # the optimiser is timed through the public on_pre_optimizer_step / on_optimizer_step callbacks,
    # the backward pass through ``trainer.accelerator.backward``). tests/test_trl_hooks.py checks
    # that each still exists on trl.GRPOTrainer and is really called during a step.
    TRL_METHODS = ("_generate", "_calculate_rewards", "_get_per_token_logps_and_entropies")

    def __init__(self, trainer):
        from transformers import TrainerCallback

        missing = [name for name in self.TRL_METHODS if not callable(getattr(trainer, name, None))]
        if missing:
            import trl

            raise TypeError(f"{type(trainer).__name__} has no {missing}: GRPOPhaseTimer wraps these private "
                            f"GRPOTrainer methods, which TRL {trl.__version__} renamed or removed")
        self.steps: list[dict[str, float]] = []
        self._current = dict.fromkeys(self.PHASES, 0.0)
        timer = self

        def timed(name_or_fn, fn):
            def wrapper(*args, **kwargs):
                name = name_or_fn() if callable(name_or_fn) else name_or_fn
                start = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    timer._current[name] += time.perf_counter() - start
            return wrapper

        trainer._generate = timed("generation", trainer._generate)
        trainer._calculate_rewards = timed("rewards", trainer._calculate_rewards)
        trainer._get_per_token_logps_and_entropies = timed(
            lambda: "loss_forward" if torch.is_grad_enabled() else "logprobs_nograd",
            trainer._get_per_token_logps_and_entropies)
        trainer.accelerator.backward = timed("backward", trainer.accelerator.backward)

        class _Callback(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                timer._current = dict.fromkeys(timer.PHASES, 0.0)
                timer._step_start = time.perf_counter()

            def on_pre_optimizer_step(self, args, state, control, **kw):
                timer._opt_start = time.perf_counter()

            def on_optimizer_step(self, args, state, control, **kw):
                timer._current["optimizer"] += time.perf_counter() - timer._opt_start

            def on_step_end(self, args, state, control, **kw):
                timer._current["step"] = time.perf_counter() - timer._step_start
                timer.steps.append(dict(timer._current))

        trainer.add_callback(_Callback())

    def median(self, skip: int = 1) -> dict[str, float]:
        """Median seconds per phase over the steps after the first ``skip`` (warm-up)."""
        import statistics

        kept = self.steps[skip:] or self.steps
        if not kept:
            raise ValueError("no steps were timed; call trainer.train() first")
        return {k: statistics.median(s[k] for s in kept) for k in kept[0]}
