"""The fast CPU GRPO path (issue: fast GRPO on a laptop CPU) keeps TRL's numerics and learning.

alignkit samples rollouts with the LoRA adapter merged into the base weights (``merged_adapters``)
and picks bf16 autocast only where the CPU has native bf16 units; these tests check that neither
changes what is learned: merged logits equal unmerged ones, the base weights come back, a 4-bit
base is never merged, bf16 keeps float32 master weights, and on a task built for it the fast
path and plain ``trl.GRPOTrainer`` with the same settings both raise the reward.
"""

from functools import partial

import pytest
import torch
from datasets import Dataset

from alignkit import training
from alignkit.models import load_policy, load_tokenizer
from alignkit.rewards import brevity_reward
from alignkit.scale import get_scale


def lora_model_with_nonzero_adapter(seed=0):
    """The bundled model with a LoRA adapter whose B matrices are random (fresh ones are zero)."""
    model = load_policy("smollm2-135m", lora={"r": 8, "lora_alpha": 16, "lora_dropout": 0.0}, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    return model.eval()


@pytest.mark.slow
def test_merged_adapters_give_the_same_logits_and_restore_the_base_weights():
    model = lora_model_with_nonzero_adapter()
    tok = load_tokenizer("smollm2-135m")
    batch = tok(["The capital of France is", "Two plus two equals"], return_tensors="pt", padding=True)
    base = {n: p.detach().clone() for n, p in model.named_parameters() if "base_layer.weight" in n}
    with torch.no_grad():
        unmerged = model(**batch).logits
        for _ in range(20):  # one merge per GRPO step: rounding must not accumulate visibly
            with training.merged_adapters(model):
                merged = model(**batch).logits
                assert all(m.merged for m in model.modules() if hasattr(m, "merged"))
    # float32 rounding of W + BA against W x + B(A x): about 1e-4 of the logits' size (~16 here)
    assert torch.allclose(merged, unmerged, rtol=1e-4, atol=1e-3), (merged - unmerged).abs().max()
    assert not any(m.merged for m in model.modules() if hasattr(m, "merged"))
    drift = max((p.detach() - base[n]).abs().max().item() for n, p in model.named_parameters() if n in base)
    assert drift < 1e-5, f"base weights drifted by {drift} after 20 merge/unmerge cycles"
    # the adapter matters: with it disabled the logits differ, so the check above is not vacuous
    with torch.no_grad(), model.disable_adapter():
        assert (model(**batch).logits - unmerged).abs().max() > 1e-2


@pytest.mark.slow
def test_a_4bit_base_is_never_merged():
    model = load_policy("smollm2-135m", quantization="4bit", lora=True)
    with training.merged_adapters(model):
        assert not any(m.merged for m in model.modules() if hasattr(m, "merged"))


def test_bf16_is_only_chosen_where_it_is_fast(tmp_path, monkeypatch):
    from alignkit import runtime

    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: False)
    assert training.grpo_config(tmp_path, scale=get_scale("smoke")).bf16 is False
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    assert training.grpo_config(tmp_path, scale=get_scale("smoke")).bf16 is True


@pytest.mark.slow
def test_bf16_autocast_keeps_float32_master_weights(tmp_path):
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": "Say hi."}]}] * 2)
    scale = get_scale("smoke").replace(max_steps=1, max_completion_length=4, num_generations=2)

    def rank_reward(completions, **kwargs):  # distinct rewards: every step has a gradient
        return [float(i) for i in range(len(completions))]

    trainer = training.build_grpo_trainer("smollm2-135m", rank_reward, data, scale=scale,
                                          output_dir=tmp_path, compute=torch.bfloat16)
    assert trainer.args.bf16 and not trainer.args.fp16
    before = training.trainable_state(trainer.model)
    trainer.train()
    # the first step moves only the B matrices (the gradient of A is zero while B is zero)
    assert training.changed_fraction(before, trainer.model) >= 0.5
    dtypes = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    assert dtypes == {torch.float32}, dtypes


@pytest.mark.slow
def test_fast_path_and_plain_trl_both_learn_the_built_task(tmp_path):
    """Brevity with a 3-word target: the base model writes ~8 words in 10 tokens, so the reward has
    room to rise. Sized for CI (about 70 s a trainer on one thread); measured while sizing it:
    alignkit 0.39 -> 0.69, plain TRL 0.43 -> 0.71 (first 2 steps -> last 3)."""
    from trl import GRPOTrainer

    steps = 7
    data = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": f"Describe the number {i} in one short sentence."}]}
         for i in range(steps)])
    reward = partial(brevity_reward, target_words=3)
    reward.__name__ = "brevity_3_words"
    scale = get_scale("smoke").replace(num_generations=8, max_completion_length=10, max_steps=steps)
    curves = {}
    for kind in ("alignkit", "plain trl"):
        trainer = training.build_grpo_trainer(load_policy("smollm2-135m", lora=True), reward, data,
                                              scale=scale, output_dir=tmp_path / kind.replace(" ", "_"),
                                              learning_rate=1.5e-3, disable_tqdm=True)
        if kind == "plain trl":  # the same model and settings, TRL's own class (unmerged rollouts)
            trainer = GRPOTrainer(model=trainer.model, reward_funcs=trainer.reward_funcs, args=trainer.args,
                                  train_dataset=data, processing_class=trainer.processing_class)
            assert type(trainer) is GRPOTrainer
        else:
            assert isinstance(trainer, training.FastGRPOTrainer)
        trainer.train()
        curves[kind] = list(training.log_frame(trainer)["reward"])
    for kind, curve in curves.items():
        start, end = sum(curve[:2]) / 2, sum(curve[-3:]) / 3
        assert end > start + 0.1, f"{kind}: reward did not rise ({start:.2f} -> {end:.2f}): {curve}"
