"""The GRPO path: TRL + LoRA on the 4-bit bundled model trains, rewards are checked, resume works."""

import math

import pytest
from datasets import Dataset

from alignkit import training
from alignkit.rewards import brevity_reward, completion_text
from alignkit.scale import get_scale


def prompts(n=8):
    return Dataset.from_list(
        [{"prompt": [{"role": "user", "content": f"Describe the number {i} in one short sentence."}]}
         for i in range(n)])


def test_completion_text_reads_both_formats():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "assistant", "content": "xyz"}]) == "xyz"
    with pytest.raises(TypeError):
        completion_text(3)


def test_checked_reward_rejects_nan_and_wrong_length():
    def nan_reward(completions, **kw):
        return [math.nan for _ in completions]

    with pytest.raises(ValueError, match="nan_reward"):
        training.checked_reward(nan_reward)(prompts=None, completions=["a", "b"])
    with pytest.raises(ValueError, match="1 values for 2"):
        training.checked_reward(lambda completions, **kw: [1.0])(prompts=None, completions=["a", "b"])


def test_grpo_config_sets_paper_critical_fields_and_rejects_unknown(tmp_path):
    cfg = training.grpo_config(tmp_path, scale=get_scale("smoke"), beta=0.04)
    assert (cfg.beta, cfg.loss_type, cfg.temperature, cfg.num_generations) == (0.04, "grpo", 1.0, 4)
    assert cfg.max_completion_length == 16 and cfg.gradient_checkpointing is False
    with pytest.raises(TypeError, match="num_generationz"):
        training.grpo_config(tmp_path, scale=get_scale("smoke"), num_generationz=3)


def test_empty_dataset_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        training.build_grpo_trainer("smollm2-135m", brevity_reward, Dataset.from_list([]),
                                    scale=get_scale("smoke"), output_dir=tmp_path)


@pytest.mark.slow
def test_brevity_reward_values():
    ten = " ".join(["word"] * 10)
    assert brevity_reward([ten, ten + " " + ten, "one two three four five", ""]) == [1.0, 0.5, 0.5, 0.0]
    assert brevity_reward([[{"role": "assistant", "content": "a b"}]], target_words=2) == [1.0]
    with pytest.raises(ValueError, match="0"):
        brevity_reward(["x"], target_words=0)
