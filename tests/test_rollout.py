"""The CPU rollout sampler (``alignkit.training.rollout``) on a tiny random Llama: fast, exact checks.

The same properties as the slow tests in test_fast_grpo.py on the bundled model, but in seconds:
the inference copy holds the merged weights and stays separate from the trained model, a group's
shared prompt prefilled once samples the same tokens as a full prefill, and completion-only
log-probs equal TRL's fused head.
"""

import pytest
import torch

from alignkit.training.rollout import (
    MATH_ATTENTION_MAX_LENGTH,
    InferenceCopy,
    InverseCDFSampler,
    completion_logps,
    fast_sampling,
    importance_weights,
    sampling_mismatch,
    sampling_warpers,
    supports_inference_copy,
)


def tiny_lora_model(seed=0, dropout=0.0):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout,
                                                                target_modules="all-linear"))
    with torch.no_grad():  # fresh B matrices are zero; random ones make the adapter matter
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    return model.eval()


def test_the_copy_holds_the_merged_weights_and_follows_every_change():
    model = tiny_lora_model()
    sampler = InferenceCopy(model, dtype=torch.float32)
    assert "forward" not in vars(sampler.model) and not any(p.requires_grad for p in sampler.model.parameters())
    ids = torch.randint(3, 97, (2, 9))
    mask = torch.ones_like(ids)
    with torch.no_grad():
        assert torch.allclose(sampler.model(ids).logits, model(ids).logits, atol=1e-5)
        for name, p in model.named_parameters():  # a "training step": every adapter moves
            if "lora_" in name:
                p.add_(torch.randn_like(p) * 0.1)
        stale = sampling_mismatch(model, sampler.model, ids, mask, 4)["kl"]
        sampler.refresh(model)
        fresh = sampling_mismatch(model, sampler.model, ids, mask, 4)["kl"]
    assert stale > 1e-4 and fresh < 1e-7, (stale, fresh)  # measured: 1.3e-2 and 7e-9
    assert not any(getattr(m, "merged", False) for m in model.modules()), "the trained model was merged"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_merged_weight_written_by_addmm_is_peft_s_merge(dtype):
    """The refresh's one-``addmm`` merge writes what peft's own merge computes (base weight plus
    ``get_delta_weight``), into a float32 copy in place and into a bfloat16 copy by one cast."""
    from alignkit.training.rollout import _lora_layers, _write_merged_weight

    model = tiny_lora_model()
    for name, layer in _lora_layers(model).items():
        expected = layer.base_layer.weight + layer.get_delta_weight("default")
        target = torch.zeros(expected.shape, dtype=dtype)
        _write_merged_weight(layer, target)
        torch.testing.assert_close(target, expected.detach().to(dtype), atol=1e-6, rtol=1e-6, msg=name)
        assert (layer.get_delta_weight("default")).abs().max() > 1e-3, "the adapter is zero: vacuous"


def test_the_mismatch_is_measured_without_the_policys_dropout():
    """A policy left in training mode (as the trainer leaves it) with LoRA dropout: the measure
    runs it in eval mode, so a fresh copy still matches it to rounding, and the mode is restored.
    Measured in training mode, the dropout's noise alone gives a KL far above rounding."""
    model = tiny_lora_model(dropout=0.5)
    sampler = InferenceCopy(model, dtype=torch.float32)
    ids = torch.randint(3, 97, (2, 9))
    mask = torch.ones_like(ids)
    model.train()
    assert sampling_mismatch(model, sampler.model, ids, mask, 4)["kl"] < 1e-7
    assert model.training and all(m.training for m in model.modules()), "the training mode was not restored"
    with torch.no_grad():  # what the measure would see with the dropout left on
        noisy = torch.log_softmax(model(ids).logits[:, -5:-1], -1)
        clean = torch.log_softmax(sampler.model(ids).logits[:, -5:-1], -1)
    assert (clean.exp() * (clean - noisy)).sum(-1).mean() > 1e-4


def test_the_copy_is_in_the_dtype_asked_for_and_leaves_the_model_alone():
    model = tiny_lora_model()
    sampler = InferenceCopy(model, dtype=torch.bfloat16)
    assert {p.dtype for p in sampler.model.parameters()} == {torch.bfloat16}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_a_quantised_base_or_modules_to_save_cannot_be_mirrored():
    model = tiny_lora_model()
    model.get_base_model().is_loaded_in_4bit = True
    assert not supports_inference_copy(model)
    with pytest.raises(ValueError, match="cannot be mirrored"):
        InferenceCopy(model)


@pytest.mark.parametrize("group", [1, 4])
def test_a_shared_prompt_prefilled_once_samples_the_same_tokens(group):
    from transformers import GenerationConfig

    model = tiny_lora_model()
    sampler = InferenceCopy(model, dtype=torch.float32)
    config = GenerationConfig(do_sample=True, max_new_tokens=12, min_new_tokens=12, temperature=0.8, top_k=0,
                              top_p=1.0, pad_token_id=0, eos_token_id=1)
    short, long = [5, 6, 7], [8, 9, 10, 11, 12, 13]  # two prompts, the short one left-padded
    ids = torch.tensor([[0] * 3 + short] * 4 + [long] * 4)
    mask = (ids != 0).long()
    draws = []
    for g in (1, group):
        torch.manual_seed(7)
        draws.append(sampler.generate(ids, mask, config, group=g))
    assert torch.equal(draws[0], draws[1])
    torch.manual_seed(8)
    assert not torch.equal(sampler.generate(ids, mask, config, group=group), draws[0]), "the seed does not matter?"


def _chi_square_p(draws: torch.Tensor, probs: torch.Tensor) -> float:
    """Pearson's chi-square test of integer ``draws`` against the distribution ``probs`` (tokens
    expected fewer than 5 times pooled into one cell); the p-value."""
    from scipy.stats import chisquare

    expected = probs.double() / probs.double().sum() * draws.numel()
    observed = torch.bincount(draws.flatten(), minlength=probs.numel()).double()
    big = expected >= 5
    cells_o = torch.cat([observed[big], observed[~big].sum(0, keepdim=True)])
    cells_e = torch.cat([expected[big], expected[~big].sum(0, keepdim=True)])
    keep = cells_e > 0
    return float(chisquare(cells_o[keep].numpy(), cells_e[keep].numpy()).pvalue)


def test_the_inverse_cdf_sampler_draws_each_token_with_its_softmax_probability():
    """200,000 rows of one distribution (a token of probability 0 among them): the drawn tokens
    pass a chi-square test against softmax(scores), the zero one never comes, each row's output
    is 0 at its draw and -inf elsewhere, and the test rejects a slightly different distribution."""
    scores = torch.tensor([2.0, 0.5, -float("inf"), 1.0, -1.0, 0.0, 3.0])
    probs = torch.softmax(scores, -1)
    torch.manual_seed(0)
    out = InverseCDFSampler()(None, scores.expand(200_000, -1).contiguous())
    assert ((out == 0).sum(-1) == 1).all() and ((out == 0) | (out == -float("inf"))).all()
    draws = out.argmax(-1)
    assert (draws != 2).all()
    assert _chi_square_p(draws, probs) > 1e-3
    other = torch.softmax(scores + torch.tensor([0.05, 0, 0, 0, 0, 0, 0]), -1)
    assert _chi_square_p(draws, other) < 1e-6, "the test cannot tell a 5% shift of one logit"


def test_a_uniform_that_rounds_up_to_the_total_still_draws_a_possible_token(monkeypatch):
    scores = torch.tensor([[1.0, 2.0, -float("inf"), -float("inf")]])
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.ones(shape, **kw))  # u = the total
    assert InverseCDFSampler()(None, scores).argmax(-1).item() == 1


def test_the_two_level_cumulative_sum_draws_across_blocks_with_the_softmax_probabilities(monkeypatch):
    """A vocabulary of 2.5 blocks (the last one padded) with mass in every block but the middle
    one: 20,000 draws of the one row pass a chi-square test, the empty block is never drawn, the
    draws equal one float64 cumulative sum's on the same uniforms, and u at the total (or a block's
    sum rounding above its cumulative sum) still gives the last token of positive probability."""
    from alignkit.training.rollout import CDF_BLOCK, inverse_cdf_draw

    vocab = CDF_BLOCK * 5 // 2
    scores = torch.full((vocab,), -float("inf"))
    live = torch.tensor([0, 3, CDF_BLOCK - 1, 2 * CDF_BLOCK, 2 * CDF_BLOCK + 7, vocab - 1])
    scores[live] = torch.tensor([1.0, 0.0, 2.0, -1.0, 1.5, 0.5])
    torch.manual_seed(0)
    rows = scores.expand(20_000, -1).contiguous()
    draws = inverse_cdf_draw(rows)
    assert torch.isin(draws, live).all()
    index = {int(t): i for i, t in enumerate(live)}
    assert _chi_square_p(torch.tensor([index[int(t)] for t in draws]),
                         torch.softmax(scores[live], -1)) > 1e-3
    torch.manual_seed(1)
    ours = inverse_cdf_draw(rows[:2000])
    torch.manual_seed(1)
    cdf = torch.softmax(rows[:2000], -1).cumsum(-1, dtype=torch.float64)
    u = torch.rand((2000, 1), dtype=torch.float64) * cdf[:, -1:]
    assert torch.equal(ours, torch.searchsorted(cdf, u, right=True).squeeze(-1))
    monkeypatch.setattr(torch, "rand", lambda shape, **kw: torch.ones(shape, **kw))  # u = the total
    assert inverse_cdf_draw(scores[None]).item() == vocab - 1
    top = scores.clone()
    top[2 * CDF_BLOCK:] = -float("inf")  # the last positive token ends the first block
    assert inverse_cdf_draw(top[None]).item() == CDF_BLOCK - 1


@pytest.mark.parametrize("fields", [dict(temperature=1.0, top_k=0, top_p=1.0),  # GRPO_DEFAULTS
                                    dict(temperature=0.7, top_k=50, top_p=0.9, min_p=0.05),
                                    dict(temperature=1.3, top_k=5, repetition_penalty=1.2)])
def test_the_warpers_are_the_ones_transformers_samples_with(fields):
    """Scores through our warpers equal the scores through the warper part of transformers' own
    processor list for the same config, and the greedy config keeps the other processors."""
    from transformers import GenerationConfig

    model = tiny_lora_model().get_base_model()
    config = GenerationConfig(do_sample=True, pad_token_id=0, eos_token_id=1, max_new_tokens=4, **fields)
    theirs = model._get_logits_processor(config, input_ids_seq_length=3, device="cpu")
    greedy, ours = fast_sampling(config)
    kept = model._get_logits_processor(greedy, input_ids_seq_length=3, device="cpu")
    assert not greedy.do_sample and [type(p) for p in theirs][:len(kept)] == [type(p) for p in kept]
    ids, scores = torch.tensor([[5, 6, 7]]), torch.randn(1, 97, generator=torch.Generator().manual_seed(0))
    expected = scores.clone()
    for p in theirs:
        expected = p(ids, expected)
    got = scores.clone()
    for p in [*kept, *ours[:-1]]:
        got = p(ids, got)
    torch.testing.assert_close(got, expected)
    assert isinstance(ours[-1], InverseCDFSampler)


def test_configs_the_fast_sampler_does_not_cover_are_left_to_generate():
    from transformers import GenerationConfig

    assert sampling_warpers(GenerationConfig(do_sample=False)) is None
    assert sampling_warpers(GenerationConfig(do_sample=True, typical_p=0.9)) is None
    assert sampling_warpers(GenerationConfig(do_sample=True, epsilon_cutoff=3e-4)) is None
    assert sampling_warpers(GenerationConfig(do_sample=True, num_beams=2)) is None
    assert sampling_warpers(GenerationConfig(do_sample=True, top_k=0)) == []


def test_the_copys_fast_draws_follow_the_policys_next_token_distribution():
    """The copy's own sampler (inverse CDF, greedy generate) against the policy's softmax at the
    first new token, over 20,000 rows of one prompt; with ``fast_sampling=False`` the copy draws
    exactly what ``generate``'s multinomial draws."""
    from transformers import GenerationConfig

    model = tiny_lora_model()
    with torch.no_grad():  # a random model's logits are nearly flat: spread them (the check then tells 0.8 from 0.85)
        model.get_base_model().lm_head.weight.mul_(6)
    config = GenerationConfig(do_sample=True, max_new_tokens=1, temperature=0.8, top_k=20, top_p=1.0,
                              pad_token_id=0, eos_token_id=1)
    ids = torch.tensor([[5, 6, 7, 8]] * 20_000)
    mask = torch.ones_like(ids)
    torch.manual_seed(0)
    draws = InferenceCopy(model, dtype=torch.float32).generate(ids, mask, config, group=20_000)[:, -1]
    with torch.no_grad():
        logits = model(input_ids=ids[:1], attention_mask=mask[:1]).logits[0, -1] / 0.8
    top = logits.topk(20)
    probs = torch.zeros_like(logits).scatter_(0, top.indices, torch.softmax(top.values, -1))
    assert _chi_square_p(draws, probs) > 1e-3
    plain = InferenceCopy(model, dtype=torch.float32, fast_sampling=False)
    torch.manual_seed(1)
    theirs = model.generate(input_ids=ids[:8], attention_mask=mask[:8], generation_config=config)
    torch.manual_seed(1)
    assert torch.equal(plain.generate(ids[:8], mask[:8], config), theirs)


@pytest.mark.parametrize("top_k", [0, 5])
def test_the_samplers_log_probs_are_the_trainers_temperature_scaled_log_probs(top_k):
    """The copy returns log softmax(logits / temperature) of each drawn token over the whole
    vocabulary, the quantity the trainer computes for its policy (top-k and the EOS ban of
    min_new_tokens shape the draw, not this number): a teacher-forced forward agrees."""
    from transformers import GenerationConfig

    sampler = InferenceCopy(tiny_lora_model(), dtype=torch.float32)
    config = GenerationConfig(do_sample=True, max_new_tokens=8, min_new_tokens=8, temperature=0.7, top_k=top_k,
                              top_p=1.0, pad_token_id=0, eos_token_id=1)
    ids = torch.tensor([[0, 0, 5, 6, 7], [8, 9, 10, 11, 12]])
    mask = (ids != 0).long()
    torch.manual_seed(0)
    plain = sampler.generate(ids, mask, config)
    torch.manual_seed(0)
    seqs, logps = sampler.generate(ids, mask, config, logprobs=True)
    assert torch.equal(seqs, plain) and logps.shape == (2, 8)  # asking for log-probs changes no draw
    full = torch.cat([mask, torch.ones(2, 8, dtype=mask.dtype)], 1)
    with torch.no_grad():
        positions = (full.cumsum(-1) - 1).clamp(min=0)  # as generate counts them: real tokens only
        logits = sampler.model(input_ids=seqs, attention_mask=full, position_ids=positions).logits[:, -9:-1]
    expected = torch.log_softmax(logits / 0.7, -1).gather(-1, seqs[:, -8:, None]).squeeze(-1)
    assert torch.allclose(logps, expected, atol=1e-4), (logps - expected).abs().max()
    if top_k:  # every draw is among the top k of the tokens allowed (EOS is barred)
        logits[..., 1] = -float("inf")
        ranks = (logits > logits.gather(-1, seqs[:, -8:, None])).sum(-1)
        assert (ranks < top_k).all()


def test_importance_weights_follow_trls_four_modes():
    policy = torch.log(torch.tensor([[0.5, 0.2, 0.9], [0.4, 0.4, 0.1]]))
    sampler = torch.log(torch.tensor([[0.25, 0.4, 0.3], [0.4, 0.2, 0.9]]))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])  # the last token of row 2 is padding
    ratio = torch.tensor([[2.0, 0.5, 3.0], [1.0, 2.0, 1.0]])  # pi / mu, padding counts as 1
    close = dict(rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(importance_weights(policy, sampler, mask, mode="token_truncate", clip_max=2.5),
                               ratio.clamp(max=2.5), **close)
    torch.testing.assert_close(importance_weights(policy, sampler, mask, mode="token_mask", clip_min=0.6,
                                                  clip_max=2.5),
                               torch.tensor([[2.0, 0.0, 0.0], [1.0, 2.0, 1.0]]), **close)
    seq = ratio.prod(-1, keepdim=True)  # 3.0 and 2.0
    torch.testing.assert_close(importance_weights(policy, sampler, mask, mode="sequence_truncate", clip_max=2.5),
                               seq.clamp(max=2.5), **close)
    torch.testing.assert_close(importance_weights(policy, sampler, mask),  # TRL's default: mask above 3
                               seq, **close)
    torch.testing.assert_close(importance_weights(policy, sampler, mask, clip_max=2.5),
                               torch.tensor([[0.0], [2.0]]), **close)
    nan = sampler.clone()
    nan[0, 0] = float("nan")  # a token the sampler could not score counts as no difference
    assert importance_weights(policy, nan, mask, mode="token_truncate")[0, 0] == 1.0
    with pytest.raises(ValueError, match="sequence_mask"):
        importance_weights(policy, sampler, mask, mode="tis")


def test_completion_only_log_probs_equal_trls_fused_head():
    from trl.trainer.utils import add_fused_lm_head

    model = tiny_lora_model()
    ids = torch.randint(3, 97, (3, 11))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # a left-padded row
    k = 5
    ours, ours_entropy = completion_logps(model, ids, mask, k, temperature=0.7, compute_entropy=True)
    add_fused_lm_head(model.get_base_model(), temperature=0.7, outputs=("log_probs", "entropy"))
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-k] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    assert torch.allclose(ours, out.log_probs[:, -k:], atol=1e-5)
    assert torch.allclose(ours_entropy, out.entropy[:, -k:], atol=1e-5)


@pytest.mark.parametrize("length", [11, MATH_ATTENTION_MAX_LENGTH + 1])
def test_short_sequences_under_cpu_autocast_attend_with_the_math_kernel(length, monkeypatch):
    """Under bf16 autocast a short batch is scored with SDPA's math kernel, a long one with
    torch's own choice; either way the log-probs and the adapter's gradients are those of the
    flash kernel to bf16 rounding (and temperature 1 skips nothing but a division)."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    model = tiny_lora_model().train()
    ids = torch.randint(3, 97, (3, length))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0
    seen, sdpa = [], F.scaled_dot_product_attention

    def spy(query, key, value, *args, **kwargs):  # the kernel SDPA picks for autocast's bf16 inputs
        seen.append(torch._fused_sdp_choice(*(t.to(torch.bfloat16) for t in (query, key, value)), *args, **kwargs))
        return sdpa(query, key, value, *args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)

    def scored(flash: bool):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            if flash:
                with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
                    logps, _ = completion_logps(model, ids, mask, 5)
            else:
                logps, _ = completion_logps(model, ids, mask, 5)
        logps.sum().backward()
        return logps.detach(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    ours, ours_grads = scored(flash=False)
    chosen = set(seen)
    theirs, their_grads = scored(flash=True)
    short = length <= MATH_ATTENTION_MAX_LENGTH
    assert chosen == ({SDPBackend.MATH.value} if short else {SDPBackend.FLASH_ATTENTION.value})
    torch.testing.assert_close(ours, theirs, atol=0.05, rtol=0)
    for a, b in zip(ours_grads, their_grads, strict=True):
        torch.testing.assert_close(a, b, atol=0.05 * b.abs().max().item(), rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_packed_linears_give_the_plain_copys_outputs_and_follow_every_refresh(dtype):
    """oneDNN-prepacked layers (where torch has them): the same logits as the plain copy of the
    same dtype, before and after the trained weights change, and the same sampled tokens on a
    fixed seed."""
    from alignkit.runtime import cpu_has_fast_bf16
    from alignkit.training.rollout import PackedLinear, packed_linear_available

    if not packed_linear_available():
        pytest.skip("this torch has no oneDNN prepacked linear")
    if dtype == torch.bfloat16 and not cpu_has_fast_bf16():
        pytest.skip("no native bf16 on this CPU: the inference copy is float32 here")
    model = tiny_lora_model()
    plain = InferenceCopy(model, dtype=dtype, packed=False, fused=False)
    packed = InferenceCopy(model, dtype=dtype, packed=True, fused=False)
    linears = [m for m in packed.model.modules() if isinstance(m, torch.nn.Linear)]
    assert packed.packed == len(linears) > 0 and all(isinstance(m, PackedLinear) for m in linears)
    ids = torch.randint(3, 97, (4, 7))
    for _ in range(2):
        with torch.no_grad():
            a, b = plain.model(input_ids=ids).logits, packed.model(input_ids=ids).logits
        assert (a.float() - b.float()).abs().max().item() < (1e-4 if dtype == torch.float32 else 2e-2)
        with torch.no_grad():  # an optimizer step moves the adapter: both copies must follow
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.add_(0.1)
        plain.refresh(model)
        packed.refresh(model)
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=True, max_new_tokens=6, min_new_tokens=6, pad_token_id=0, eos_token_id=1)
    mask = torch.ones_like(ids)
    torch.manual_seed(0)
    first = plain.generate(ids, mask, config)
    torch.manual_seed(0)
    assert torch.equal(first, packed.generate(ids, mask, config))


def test_pack_for_decoding_keeps_the_logits_and_packs_only_where_it_pays():
    """pack_for_decoding: the same logits (float32 rounding), eval mode, no gradients; packed
    layers exactly where packing_pays says."""
    from alignkit.training.rollout import PackedLinear, pack_for_decoding, packing_pays

    model = tiny_lora_model().merge_and_unload()
    ids = torch.randint(3, 97, (2, 5))
    with torch.no_grad():
        before = model(input_ids=ids).logits
    packed = pack_for_decoding(model, batch_hint=2)
    with torch.no_grad():
        assert (packed(input_ids=ids).logits - before).abs().max().item() < 1e-4
    assert not packed.training and not any(p.requires_grad for p in packed.parameters())
    assert any(isinstance(m, PackedLinear) for m in packed.modules()) == packing_pays(torch.float32)
