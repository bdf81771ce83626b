"""Chapter 3's diversity metrics and the GRPO β = 0 vs β > 0 comparison at smoke scale."""

import math

import pytest
import torch

from alignkit.diversity import DiversityTracker, distinct_n, keyword_reward, sequence_logprobs


def test_distinct_n_counts_unique_ngrams():
    assert distinct_n(["a b c", "a b d"], 1) == pytest.approx(4 / 6)
    assert distinct_n(["a b c", "a b d"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["same words", "same words"], 2) == pytest.approx(0.5)
    assert distinct_n(["x"], 2) == 0.0
    with pytest.raises(ValueError, match="n must be"):
        distinct_n(["a"], 0)


def test_keyword_reward_reads_plain_and_chat_completions():
    reward = keyword_reward("Paris")
    completions = ["I love Paris.", [{"role": "assistant", "content": "Rome, not paris."}]]
    assert reward(completions=completions) == [1.0, 0.0]
    assert reward.__name__ == "contains_paris"
    with pytest.raises(ValueError, match="keyword"):
        keyword_reward("")


def tiny_lm(seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(config)


def test_sequence_logprobs_matches_one_sequence_at_a_time():
    model = tiny_lm()
    prompts, completions = [[1, 2, 3], [4, 5]], [[6, 7], [8, 9, 10, 11]]
    batched = sequence_logprobs(model, prompts, completions)
    for i, (p, c) in enumerate(zip(prompts, completions, strict=True)):
        ids = torch.tensor([p + c])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
        manual = sum(logp[len(p) - 1 + j, tok] for j, tok in enumerate(c))
        assert batched[i].item() == pytest.approx(manual.item(), abs=1e-5)


class WordTokenizer:
    """Enough of a tokenizer for string prompts: one id per character."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(ch) % 32 for ch in text]}


def test_tracker_logs_zero_kl_at_init_and_positive_after_a_change():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_lm(), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    tracker = DiversityTracker(keyword_reward("ab"), WordTokenizer(), model)
    logged = {}
    kwargs = dict(prompts=["hi", "yo"], completions=["ab cd", "ef"], completion_ids=[[1, 2], [3, 4, 5]],
                  log_metric=lambda name, value: logged.__setitem__(name, value))
    assert tracker(**kwargs) == [1.0, 0.0]
    assert logged["kl_ref"] == pytest.approx(0.0, abs=1e-6)  # LoRA starts as the identity
    assert logged["distinct_2"] == 1.0 and math.isfinite(logged["nll_per_token"])
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1.0)
    tracker(**kwargs)
    assert logged["kl_ref"] != pytest.approx(0.0, abs=1e-6)


@pytest.mark.slow
def test_grpo_beta_zero_vs_positive_runs_at_smoke_scale(tmp_path):
    from datasets import Dataset
    from transformers import PrinterCallback

    from alignkit.models import load_tokenizer
    from alignkit.scale import get_scale
    from alignkit.training import build_grpo_trainer, log_frame

    scale = get_scale("smoke").replace(max_steps=1, num_generations=2, max_completion_length=8)
    prompts = Dataset.from_list([{"prompt": [{"role": "user", "content": "One sentence about the Louvre."}]}] * 2)
    tokenizer = load_tokenizer(scale.model)
    for beta in (0.0, 0.2):
        tracker = DiversityTracker(keyword_reward("Paris"), tokenizer)
        trainer = build_grpo_trainer(scale.model, tracker, prompts, scale=scale, seed=0, beta=beta,
                                     output_dir=tmp_path / str(beta), tokenizer=tokenizer, disable_tqdm=True)
        tracker.model = trainer.model
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        frame = log_frame(trainer)
        assert len(frame) == 1
        for column in ("reward", "entropy", "distinct_1", "distinct_2", "kl_ref"):
            assert math.isfinite(frame[column].iloc[0]), column
        assert ("kl" in frame.columns) == (beta > 0)  # TRL computes its KL only when beta > 0
