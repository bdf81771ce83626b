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
from alignkit.training.fast_dropout import GapDropout


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
    # the CPU fast path's LoRA dropout (the chapters' p 0.05)
    dropouts = [d for m in trainer.model.modules() if hasattr(m, "lora_dropout") for d in m.lora_dropout.values()]
    assert dropouts and all(type(d) is GapDropout and d.p == 0.05 for d in dropouts)
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
    alignkit 0.39 -> 0.69, plain TRL 0.43 -> 0.71 (first 2 steps -> last 3). Both adapters are
    seeded: unseeded, the test failed 1 run in 3 (a different start each process)."""
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
        policy = load_policy("smollm2-135m", lora=True, seed=0)  # unseeded, each run would start elsewhere
        trainer = training.build_grpo_trainer(policy, reward, data,
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


# ---------------------------------------------------------------------------------------------
# The inference copy (issue 18): same sampling distribution, refreshed after every step
# ---------------------------------------------------------------------------------------------

def _tiny_trainer(tmp_path, model, *, steps=1, generations=4, tokens=6, **fields):
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": f"Name a colour, {i}."}]}
                              for i in range(steps)])

    def rank_reward(completions, **kwargs):  # distinct rewards: every step has a gradient
        return [float(i) for i in range(len(completions))]

    scale = get_scale("smoke").replace(max_steps=steps, max_completion_length=tokens, num_generations=generations)
    return training.build_grpo_trainer(model, rank_reward, data, scale=scale, output_dir=tmp_path,
                                       disable_tqdm=True, **fields)


def _prompt_ids(trainer, text="Name a colour."):
    return list(trainer.processing_class.apply_chat_template([{"role": "user", "content": text}],
                                                             add_generation_prompt=True, return_dict=True)["input_ids"])


@pytest.mark.slow
def test_the_inference_copy_samples_what_trl_samples(tmp_path, monkeypatch):
    """Same seed, same prompts (two groups of 4, of different lengths, so one is left-padded): the
    copy (adapter merged, float32 here, each group's prompt prefilled once) draws the same tokens
    as TRL's own generation with the unmerged adapter when it samples as ``generate`` does, and its
    next-token distributions match the trained policy's to float rounding (the training-inference
    mismatch, in nats per token). Its own faster sampler draws other tokens from the same
    distributions (tests/test_rollout.py)."""
    from trl import GRPOTrainer

    from alignkit.runtime import seed_everything
    from alignkit.training.rollout import sampling_mismatch

    # float32 on every CPU (a bf16 copy differs by ~5e-3 nats a token: benchmarks/grpo_cpu.py)
    monkeypatch.setattr("alignkit.training.rollout.pick_dtype", lambda *args: torch.float32)
    trainer = _tiny_trainer(tmp_path, lora_model_with_nonzero_adapter(), tokens=12, temperature=0.7,
                            compute=torch.float32)
    prompts = [_prompt_ids(trainer)] * 4 + [_prompt_ids(trainer, "Name a colour that is not red or blue.")] * 4
    assert len(prompts[0]) != len(prompts[-1])
    draws = {}
    for kind in ("trl", "copy", "no adapter"):
        seed_everything(3)
        if kind == "trl":
            draws[kind], _ = GRPOTrainer._generate_single_turn(trainer, prompts, None, {}, 8)
        elif kind == "copy":
            trainer.rollout_sampler().fast_sampling = False  # multinomial, as generate draws
            draws[kind], logprobs = trainer._generate_single_turn(prompts, None, {}, 8)
            assert logprobs is None and trainer.inference_copy is not None
        else:
            with trainer.model.disable_adapter():
                draws[kind], _ = GRPOTrainer._generate_single_turn(trainer, prompts, None, {}, 8)
    assert draws["copy"] == draws["trl"], "the inference copy sampled other tokens than TRL's generation"
    assert draws["no adapter"] != draws["trl"], "the adapter does not matter here: the check above is vacuous"
    # the distributions themselves, on the sampled completions (positions after an EOS masked out)
    k = max(len(c) for c in draws["copy"])
    ids = torch.tensor([prompts[0] + c + [0] * (k - len(c)) for c in draws["copy"][:4]])
    mask = torch.tensor([[1] * (len(prompts[0]) + len(c)) + [0] * (k - len(c)) for c in draws["copy"][:4]])
    mismatch = sampling_mismatch(trainer.model, trainer.inference_copy.model, ids, mask, k, temperature=0.7)
    assert mismatch["kl"] < 1e-6 and mismatch["max_abs_logp"] < 1e-3, mismatch
    with trainer.model.disable_adapter():  # a real difference is seen: the measure can fail
        assert sampling_mismatch(trainer.model, trainer.inference_copy.model, ids, mask, k)["kl"] > 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("mode, loss", [("sequence_mask", "grpo"), ("token_truncate", "grpo"),
                                        ("token_truncate", "vespo")])
def test_a_bf16_copys_rollouts_get_trls_importance_sampling_correction(tmp_path, monkeypatch, mode, loss):
    """A bfloat16 copy samples from a slightly different distribution than the float32 policy.
    The trainer corrects it as TRL corrects vLLM's rollouts: w = pi / mu from the copy's own
    log-probs, clipped per ``vllm_importance_sampling_mode``, and the loss (value and gradient)
    equals TRL's own vLLM-path loss with that ratio. With one gradient step per generation batch
    the policy's log-probs are the loss forward's own: no extra forward pass after sampling. Runs
    on any CPU (bf16 is emulated where it is not native)."""
    from alignkit.training import grpo

    monkeypatch.setattr("alignkit.training.rollout.pick_dtype", lambda *args: torch.bfloat16)
    # the policy in float32 (no autocast), so the two losses compare to float32 rounding
    trainer = _tiny_trainer(tmp_path, lora_model_with_nonzero_adapter(), generations=4, tokens=8,
                            temperature=0.7, compute=torch.float32, vllm_importance_sampling_mode=mode, loss_type=loss,
                            vllm_importance_sampling_clip_max=1.02 if mode == "token_truncate" else 3.0)
    seen, forwards = {}, []
    original_weights, original_correct = grpo.importance_weights, trainer._correct_mismatch
    original_logps = trainer._completion_logps

    def weights(*args, **kwargs):
        seen["w"] = original_weights(*args, **kwargs)
        seen["policy"], seen["sampler"] = args[0], args[1]
        return seen["w"]

    def correct(output, **kwargs):
        seen["A"] = output["advantages"].clone()
        original_correct(output, **kwargs)

    def logps(*args, **kwargs):
        forwards.append(torch.is_grad_enabled())
        return original_logps(*args, **kwargs)

    monkeypatch.setattr(grpo, "importance_weights", weights)
    trainer._correct_mismatch, trainer._completion_logps = correct, logps
    batch = [{"prompt": [{"role": "user", "content": "Name a colour."}]}] * 4
    trainer.model.train()  # as in a training step (the adapter has no dropout)
    out = trainer._generate_and_score_completions(batch)
    assert trainer.inference_copy.dtype == torch.bfloat16 and trainer.corrects_mismatch(trainer.inference_copy)
    assert not forwards and not seen and out.get("old_per_token_logps") is None  # deferred to the loss
    A = out["advantages"].clone()

    def loss_and_grads(inputs):
        trainer.model.zero_grad()
        loss = trainer._compute_loss(trainer.model, inputs)
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}

    trainer.current_gradient_accumulation_steps = 1  # what Trainer sets before a training step
    ours, ours_grads = loss_and_grads(out)
    assert forwards == [True], "the correction took a forward pass of its own"
    w, mask = seen["w"], out["completion_mask"].bool()
    torch.testing.assert_close(seen["A"], A)
    assert w.shape == ((4, 1) if mode.startswith("sequence") else mask.shape)
    if loss == "vespo":  # VESPO takes the ratio into its own weights (TRL hands it over, vLLM or not)
        assert out["importance_sampling_ratio"] is w and torch.equal(out["advantages"], A)
    else:
        torch.testing.assert_close(out["advantages"], A[:, None] * w)
    # the sampler's log-probs are the copy's: close to the policy's, yet not the same numbers
    gap = (seen["policy"] - seen["sampler"]).abs()[mask]
    assert 0 < gap.mean() < 0.1 and gap.max() < 1.0, gap
    if mode == "token_truncate":
        assert (w[mask] < 1).any() and w.max() <= 1.02  # the clip bites: the check is not vacuous
    logged = trainer._metrics["train"]["sampling/sampling_logp_difference/mean"]
    assert logged and logged[-1] == pytest.approx(gap.mean().item(), rel=1e-5)
    # the policy's log-probs the weights used are those of a separate no-grad forward, to rounding
    with torch.no_grad():
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], 1)
        attn = torch.cat([out["prompt_mask"], out["completion_mask"]], 1)
        separate, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, attn, ids.size(1) -
                                                                     out["prompt_ids"].size(1))
    torch.testing.assert_close(seen["policy"][mask], separate[mask], rtol=1e-5, atol=1e-5)
    ours_again = trainer._compute_loss(trainer.model, out).detach()  # corrected once, not twice
    torch.testing.assert_close(ours_again, ours)

    monkeypatch.setattr(trainer, "use_vllm", True)  # TRL's own vLLM path, handed the same ratio
    trl_inputs = {**out, "advantages": A, "importance_sampling_ratio": w}  # what TRL's vLLM path hands its loss
    theirs, their_grads = loss_and_grads(trl_inputs)
    torch.testing.assert_close(ours, theirs)
    assert ours_grads.keys() == their_grads.keys() and ours_grads
    for name, grad in ours_grads.items():
        torch.testing.assert_close(grad, their_grads[name], rtol=1e-4, atol=1e-6)  # float32 rounding


def _merged_weights(policy):
    """The policy's weights with the adapter merged, computed independently (peft's merge_and_unload
    on a copy), for the tensors LoRA adapts."""
    import copy

    merged = copy.deepcopy(policy).merge_and_unload().state_dict()
    adapted = {n.replace(".base_layer", "").removeprefix("base_model.model.")
               for n, _ in policy.named_parameters() if "base_layer.weight" in n}
    return {n: merged[n] for n in adapted}


@pytest.mark.slow
def test_the_inference_copy_equals_the_trained_weights_after_every_step(tmp_path):
    trainer = _tiny_trainer(tmp_path, load_policy("smollm2-135m", lora=True, seed=0), steps=3,
                            learning_rate=1e-2)
    seen = []
    original = trainer._generate_single_turn

    def check_after_refresh(*args, **kwargs):  # each rollout: the copy holds the current weights
        out = original(*args, **kwargs)
        copy_params = dict(trainer.inference_copy.model.named_parameters())
        expected = _merged_weights(trainer.model)
        # the trained weights in the copy's dtype (bfloat16 on a CPU with native bf16)
        worst = max((copy_params[n].float() - w.to(copy_params[n].dtype).float()).abs().max().item()
                    for n, w in expected.items())
        seen.append((trainer.state.global_step, worst, {n: copy_params[n].clone() for n in list(expected)[:4]}))
        return out

    trainer._generate_single_turn = check_after_refresh
    trainer.train()
    assert [step for step, _, _ in seen] == [0, 1, 2], "one rollout per optimizer step expected"
    for step, worst, _ in seen:
        assert worst < 1e-6, f"after step {step} the inference copy differs from the trained weights by {worst}"
    # the steps moved the weights, so the copy was really refreshed (not equal by never changing)
    first, last = seen[0][2], seen[-1][2]
    assert any(not torch.equal(first[n], last[n]) for n in first)
    assert all(not p.requires_grad for p in trainer.inference_copy.model.parameters())


@pytest.mark.slow
def test_the_inference_copy_takes_the_native_dtype(monkeypatch):
    from alignkit import runtime
    from alignkit.training.rollout import InferenceCopy

    model = load_policy("smollm2-135m", lora=True)
    assert InferenceCopy(model).dtype == torch.float32 or runtime.cpu_has_fast_bf16()
    monkeypatch.setattr(runtime, "cpu_has_fast_bf16", lambda: True)
    sampler = InferenceCopy(model)
    assert {p.dtype for p in sampler.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}, "the trained model was cast too"


@pytest.mark.slow
def test_a_4bit_base_samples_from_the_model_itself(tmp_path):
    from alignkit.training.rollout import InferenceCopy, supports_inference_copy

    model = load_policy("smollm2-135m", quantization="4bit", lora=True)
    assert not supports_inference_copy(model)
    with pytest.raises(ValueError, match="cannot be mirrored"):
        InferenceCopy(model)


@pytest.mark.slow
def test_completion_only_log_probs_equal_trls_fused_head(tmp_path):
    """The fast path scores only the completion positions; TRL's fused head scores every position
    on a CPU. Same log-probs and entropies, and the LM head really sees fewer positions."""
    from trl import GRPOTrainer

    from alignkit.training.rollout import _training_attention

    trainer = _tiny_trainer(tmp_path, lora_model_with_nonzero_adapter(), temperature=0.7)
    tok = trainer.processing_class
    batch = tok(["The capital of France is Paris, a city", "Two plus two equals four, and"],
                return_tensors="pt", padding=True, padding_side="left")
    ids, mask, k = batch["input_ids"], batch["attention_mask"], 5
    rows = []
    hook = trainer.model.get_base_model().lm_head.register_forward_hook(
        lambda m, args, out: rows.append(args[0].shape[:-1].numel()))
    try:
        ours, ours_ent, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, k,
                                                                       compute_entropy=True)
    finally:
        hook.remove()
    with trainer.accelerator.autocast(), _training_attention(ids):  # the same attention kernel as ours
        # (the kernel's choice and its agreement with the flash kernel: tests/test_rollout.py)
        theirs, theirs_ent, _ = GRPOTrainer._get_per_token_logps_and_entropies(trainer, trainer.model, ids, mask, k,
                                                                               compute_entropy=True)
    assert ours.shape == theirs.shape == (2, k)
    assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()
    # entropy sums 49k terms: TRL's chunked kernel and one float32 softmax differ by ~5e-4 nats
    assert torch.allclose(ours_ent, theirs_ent, atol=2e-3), (ours_ent - theirs_ent).abs().max()
    assert rows == [2 * (k + 1)], f"the LM head scored {rows} positions, expected only the completion's"
