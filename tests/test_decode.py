"""The hand-written decode loop (``alignkit.training.decode``) against transformers' ``generate``.

On tiny random Llama and Qwen2 models in float32: the same greedy tokens (left padding, EOS, a
shared prompt prefilled once), the same draws on a fixed seed as ``generate`` with the inverse-CDF
sampler, log-probs equal to a teacher-forced forward, the refresh reaching the fused matrices, and
every model or generation setting the loop does not cover left to ``generate``.
"""

import pytest
import torch
from transformers import GenerationConfig

from alignkit.training.decode import FusedDecoder, decodable, supports_fused_decoding
from alignkit.training.rollout import InferenceCopy, packed_linear_available


def tiny_model(kind="llama", seed=0, targets="all-linear"):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    sizes = dict(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0, eos_token_id=1,
                 bos_token_id=2, tie_word_embeddings=True)
    model = (LlamaForCausalLM(LlamaConfig(**sizes)) if kind == "llama"
             else Qwen2ForCausalLM(Qwen2Config(**sizes)))  # Qwen2: biased q/k/v projections
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=targets))
    with torch.no_grad():  # random B matrices make the adapter matter; spread logits beyond flat
        for name, p in model.named_parameters():
            if "lora_B" in name or "bias" in name:
                p.normal_(0, 0.2)
        model.get_base_model().lm_head.weight.mul_(4)
    return model.eval()


PROMPTS = torch.tensor([[0, 0, 0, 5, 6, 7], [8, 9, 10, 11, 12, 13], [0, 20, 21, 22, 23, 24]])


def copies(model, **kwargs):
    """A float32 copy decoding with the loop and one decoding with ``generate``."""
    packed = packed_linear_available()
    return (InferenceCopy(model, dtype=torch.float32, packed=packed, **kwargs),
            InferenceCopy(model, dtype=torch.float32, packed=False, fused=False, **kwargs))


def greedy(**fields):
    return GenerationConfig(**{"do_sample": False, "max_new_tokens": 10, "pad_token_id": 0, "eos_token_id": 1,
                               **fields})


@pytest.mark.parametrize("kind", ["llama", "qwen2"])
def test_greedy_tokens_equal_generates_with_left_padding_and_eos(kind):
    fused, plain = copies(tiny_model(kind))
    assert fused.decoder is not None and plain.decoder is None
    mask = (PROMPTS != 0).long()
    ref = plain.generate(PROMPTS, mask, greedy(eos_token_id=None))
    assert torch.equal(fused.generate(PROMPTS, mask, greedy(eos_token_id=None)), ref)
    eos = int(ref[0, PROMPTS.size(1) + 3])  # a token row 0 emits mid-way: that row then ends early
    ref = plain.generate(PROMPTS, mask, greedy(eos_token_id=eos))
    ours = fused.generate(PROMPTS, mask, greedy(eos_token_id=eos))
    assert torch.equal(ours, ref), (ours, ref)
    assert (ours[0, PROMPTS.size(1) + 4:] == 0).all()  # padded after its EOS


@pytest.mark.parametrize("fields", [dict(temperature=0.8, top_k=0, top_p=1.0),
                                    dict(temperature=1.2, top_k=10, top_p=0.9),
                                    dict(temperature=1.0, top_k=0, top_p=1.0, min_p=0.05),
                                    dict(temperature=1.0, top_k=0, top_p=1.0, min_new_tokens=12)])
def test_sampled_tokens_equal_generates_on_a_fixed_seed(fields):
    """The loop draws one uniform a row and token, as ``generate`` with the inverse-CDF sampler
    does: on the same seed the same tokens, a shared prompt prefilled once included."""
    fused, plain = copies(tiny_model())
    eos = 13 if "min_new_tokens" in fields else 1  # a token the random model draws often: EOS it is barred
    config = GenerationConfig(do_sample=True, max_new_tokens=12, pad_token_id=0, eos_token_id=eos, **fields)
    ids = torch.cat([PROMPTS[:1].repeat(4, 1), PROMPTS[1:2].repeat(4, 1)])
    mask = (ids != 0).long()
    for group in (1, 4):
        torch.manual_seed(3)
        ref = plain.generate(ids, mask, config, group=group)
        torch.manual_seed(3)
        assert torch.equal(fused.generate(ids, mask, config, group=group), ref)
    torch.manual_seed(4)
    assert not torch.equal(fused.generate(ids, mask, config, group=4), ref), "the seed does not matter?"


@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "down_proj", "lm_head"]])
def test_log_probs_equal_a_teacher_forced_forward_and_follow_every_refresh(targets):
    """Also with an adapter on the LM head that is tied to the input embeddings: the copy unties
    it, so the merged head leaves the embeddings as the policy has them."""
    model = tiny_model(targets=targets)
    fused, _ = copies(model)
    config = GenerationConfig(do_sample=True, max_new_tokens=8, temperature=0.7, top_k=0, top_p=1.0,
                              pad_token_id=0, eos_token_id=None)
    mask = (PROMPTS != 0).long()
    for _ in range(2):
        torch.manual_seed(0)
        seqs, logps = fused.generate(PROMPTS, mask, config, logprobs=True)
        full = torch.cat([mask, torch.ones(3, 8, dtype=mask.dtype)], 1)
        positions = (full.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():  # the trained policy itself, not the copy: the refresh must have reached the loop
            logits = model(input_ids=seqs, attention_mask=full, position_ids=positions).logits[:, -9:-1]
        expected = torch.log_softmax(logits / 0.7, -1).gather(-1, seqs[:, -8:, None]).squeeze(-1)
        assert torch.allclose(logps, expected, atol=1e-4), (logps - expected).abs().max()
        with torch.no_grad():  # an optimizer step moves the adapter
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.add_(0.2)
        fused.refresh(model)


def test_settings_the_loop_does_not_cover_go_to_generate():
    assert decodable(greedy()) and decodable(greedy(cache_implementation="static"))
    assert not decodable(GenerationConfig(do_sample=False))  # no max_new_tokens
    assert decodable(greedy(min_new_tokens=4, repetition_penalty=1.0))  # TRL sets a neutral 1.0
    for fields in (dict(min_length=4), dict(repetition_penalty=1.3), dict(num_beams=2),
                   dict(no_repeat_ngram_size=2)):
        assert not decodable(greedy(**fields)), fields
    assert not decodable(GenerationConfig(do_sample=True, max_new_tokens=4, typical_p=0.5))
    fused, plain = copies(tiny_model())
    mask = (PROMPTS != 0).long()
    config = greedy(repetition_penalty=1.3)
    assert torch.equal(fused.generate(PROMPTS, mask, config), plain.generate(PROMPTS, mask, config))
    with pytest.raises(ValueError, match="repetition_penalty"):
        fused.decoder.generate(PROMPTS, mask, config)


def test_models_the_loop_does_not_cover_keep_generate():
    from transformers import GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    assert not supports_fused_decoding(gpt2)
    assert InferenceCopy(gpt2, dtype=torch.float32).decoder is None
    windowed = Qwen2ForCausalLM(Qwen2Config(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                            num_attention_heads=2, num_key_value_heads=1, use_sliding_window=True,
                                            sliding_window=4, max_window_layers=0))
    assert not supports_fused_decoding(windowed)
    with pytest.raises(ValueError, match="GPT2LMHeadModel"):
        FusedDecoder(gpt2, packed=False)
