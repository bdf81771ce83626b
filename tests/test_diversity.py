"""Chapter 3's diversity metrics, the tracker's logged values, and GRPO at β = 0 vs β > 0: the KL
penalty keeps the policy measurably closer to the reference after the same steps."""

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


def manual_logprob(model, prompt, completion, adapter=True):
    """log p(completion | prompt), one sequence, straight from the logits (no batching, no padding)."""
    ids = torch.tensor([prompt + completion])
    model.eval()
    with torch.no_grad():
        if adapter:
            logits = model(input_ids=ids).logits[0]
        else:
            with model.disable_adapter():
                logits = model(input_ids=ids).logits[0]
    logp = torch.log_softmax(logits.float(), -1)
    return sum(logp[len(prompt) - 1 + j, tok].item() for j, tok in enumerate(completion))


def test_tracker_logs_the_kl_and_nll_it_measures():
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(tiny_lm(), LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    tracker = DiversityTracker(keyword_reward("ab"), WordTokenizer(), model)
    logged = {}
    prompts, completions, completion_ids = ["hi", "yo"], ["ab cd", "ab ab"], [[1, 2], [3, 4, 5]]
    kwargs = dict(prompts=prompts, completions=completions, completion_ids=completion_ids,
                  log_metric=lambda name, value: logged.__setitem__(name, value))
    assert tracker(**kwargs) == [1.0, 1.0]
    assert logged["kl_ref"] == pytest.approx(0.0, abs=1e-6)  # LoRA starts as the identity
    assert logged["distinct_1"] == pytest.approx(2 / 4)  # ab, cd, ab, ab: 2 distinct of 4
    assert logged["distinct_2"] == pytest.approx(2 / 2)  # (ab, cd) and (ab, ab)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 1.0)
    tracker(**kwargs)
    prompt_ids = [WordTokenizer()(p)["input_ids"] for p in prompts]
    policy = [manual_logprob(model, p, c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
    ref = [manual_logprob(model, p, c, adapter=False) for p, c in zip(prompt_ids, completion_ids, strict=True)]
    assert abs(logged["kl_ref"]) > 1e-3  # the change is visible...
    assert logged["kl_ref"] == pytest.approx(sum(a - b for a, b in zip(policy, ref, strict=True)) / 2, abs=1e-4)
    assert logged["nll_per_token"] == pytest.approx(-sum(policy) / 5, abs=1e-4)  # 5 completion tokens
    model.train()
    tracker(**kwargs)
    assert model.training  # measured in eval mode (no dropout), then the mode it found is restored


def test_tracker_without_log_metric_only_rewards():
    tracker = DiversityTracker(keyword_reward("ab"), WordTokenizer())
    assert tracker(prompts=["x"], completions=["ab"]) == [1.0]
    assert tracker.__name__ == "contains_ab"


def rank_reward(completions, **kwargs):
    """Distinct rewards in every group: non-zero advantages, so every GRPO step moves the policy."""
    return [float(i) for i in range(len(completions))]


@torch.no_grad()
def kl_to_reference(model, tokenizer, texts):
    """Mean next-token KL(policy || reference) over fixed texts, the reference being the model
    with its LoRA adapter disabled: a deterministic measure of how far training moved the policy."""
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    model.eval()
    logp = torch.log_softmax(model(**batch).logits.float(), -1)
    with model.disable_adapter():
        logq = torch.log_softmax(model(**batch).logits.float(), -1)
    kl = (logp.exp() * (logp - logq)).sum(-1)
    return float(kl[batch["attention_mask"].bool()].mean())


@pytest.mark.slow
def test_grpo_with_a_kl_penalty_stays_closer_to_the_reference(tmp_path):
    """Four GRPO steps (G=4, 6 tokens) at beta = 0 and beta = 100, same seed and data. At step 1
    the policy is the reference (LoRA B = 0), so both logged KLs are 0 and the KL term has no
    gradient; at steps 2-4 it pulls the beta > 0 policy back. Two choices make four steps enough:
    no momentum (``adam_beta1=0``; with Adam's 0.9 the penalty-free first update carries on for
    about ten steps), and a penalty that outweighs the policy gradient as soon as the policy has
    moved (beta = 100). The KL is measured where the penalty acts: the training prompt, answered
    with fixed texts. Measured in float32 (2-core AMD EPYC without AVX512), KL at beta 100 over KL
    at beta 0, seeds 0-5: 0.19, 0.56, 0.15, 0.21, 0.24, 0.39; the earlier setting (G=2, beta 10,
    Adam's momentum, KL on the bare texts) gave 1.22, 0.36, 1.66, 0.26 for seeds 0-3, a coin flip.
    About 30 s a run."""
    from datasets import Dataset
    from transformers import PrinterCallback

    from alignkit.models import load_tokenizer
    from alignkit.scale import get_scale
    from alignkit.training import build_grpo_trainer, log_frame

    scale = get_scale("smoke").replace(max_steps=4, num_generations=4, max_completion_length=6)
    question = [{"role": "user", "content": "One sentence about the Louvre."}]
    prompts = Dataset.from_list([{"prompt": question}] * 4)
    tokenizer = load_tokenizer(scale.model)
    answers = ["The Louvre is a museum in Paris.", "It holds the Mona Lisa and many other paintings."]
    texts = [tokenizer.apply_chat_template(question + [{"role": "assistant", "content": a}], tokenize=False)
             for a in answers]
    kl, frames = {}, {}
    for beta in (0.0, 100.0):
        tracker = DiversityTracker(rank_reward, tokenizer)
        trainer = build_grpo_trainer(scale.model, tracker, prompts, scale=scale, seed=0, beta=beta,
                                     learning_rate=1e-3, adam_beta1=0.0, output_dir=tmp_path / str(beta),
                                     tokenizer=tokenizer, disable_tqdm=True,
                                     # the KL term alone: on a bf16 CPU the sampler-mismatch weights
                                     # would also reweight these small groups
                                     vllm_importance_sampling_correction=False)
        tracker.model = trainer.model
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        frames[beta] = frame = log_frame(trainer)
        assert list(frame.index) == [1, 2, 3, 4]
        for column in ("reward", "entropy", "distinct_1", "distinct_2", "kl_ref", "nll_per_token"):
            assert frame[column].map(math.isfinite).all(), (beta, column)
        assert frame["kl_ref"].iloc[0] == pytest.approx(0.0, abs=1e-5)  # step 1 samples from the reference
        # step 2 samples from the moved policy: its estimate (log pi - log ref over 2 x 6 sampled
        # tokens, either sign) is no longer 0; the KL itself is compared on fixed texts below
        assert abs(frame["kl_ref"].iloc[1]) > 1e-4
        kl[beta] = kl_to_reference(trainer.model, tokenizer, texts)
    assert "kl" not in frames[0.0].columns  # TRL computes its KL only when beta > 0
    assert frames[100.0]["kl"].iloc[0] == pytest.approx(0.0, abs=1e-6) and frames[100.0]["kl"].iloc[1] > 0
    assert kl[0.0] > 0 and kl[100.0] < 0.7 * kl[0.0], kl
