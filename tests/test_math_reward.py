"""The LIMR math reward (chapter 2): the released code's rules and the $...$ parsing fix."""

import pytest

from alignkit.rewards import last_boxed, limr_format_error, limr_math_reward, limr_reward


@pytest.mark.parametrize("gold, pred, bare, wrapped", [
    (r"2\sqrt{3}", r"2\sqrt{5}", 1.0, -0.5),  # bare parsing reads both as 2: a false positive
    ("(5,7)", "(5,7)", -0.5, 1.0),  # bare parsing finds nothing
    (r"\dfrac{11}{16}", r"\frac{11}{16}", -0.5, 1.0),
    (r"\sqrt{46}", r"\sqrt{46}", -0.5, 1.0),
    (r"\text{Tuesday}", r"\text{Tuesday}", -0.5, 1.0),
    ("[2,5)", "[2,5)", -0.5, 1.0),
    ("118", "118", 1.0, 1.0),
    (r"\frac{3}{4}", "0.75", 1.0, 1.0),
    ("12", "13", -0.5, -0.5),
])
def test_tricky_answers_in_both_parsing_modes(gold, pred, bare, wrapped):
    completion = f"We compute carefully. The answer is $\\boxed{{{pred}}}$."
    assert limr_math_reward(completion, gold, wrap_dollars=False) == bare
    assert limr_math_reward(completion, gold) == wrapped


@pytest.mark.parametrize("completion, reason", [
    ("The answer is 7.", "no \\boxed"),
    (r"\boxed{7" , "no \\boxed"),
    (r"\boxed{7} " * 5, "5 times"),
    ("I think " + "so so " * 10 + r"\boxed{7}", "repeated"),
    ("答案是七。" * 3 + r"\boxed{7}", "garbled"),
])
def test_format_errors_score_minus_one(completion, reason):
    assert reason in limr_format_error(completion)
    assert limr_math_reward(completion, "7") == -1.0


def test_last_boxed_follows_the_released_pattern():
    assert last_boxed(r"first \boxed{1}, then \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{3} and a broken \boxed{4") == "3"
    assert last_boxed("none") is None
    assert limr_math_reward(r"\boxed{1} no wait \boxed{2}", "2") == 1.0  # four boxes are fine
    # findall does not overlap: a box inside a matched box belongs to it
    assert last_boxed(r"\boxed{\boxed{1}}") == r"\boxed{1}"
    # three brace levels inside the box match, a fourth does not (nothing else to find: None)
    assert last_boxed(r"\boxed{\frac{1}{2^{2^{1}}}}") == r"\frac{1}{2^{2^{1}}}"
    assert last_boxed(r"\boxed{2^{2^{2^{2^{1}}}}}") is None
    # escaped braces may stand alone; a balanced pair reads the same either way
    assert last_boxed(r"\boxed{\{1}") == r"\{1"
    assert last_boxed(r"\boxed{\{1,2\}}") == r"\{1,2\}"
    assert last_boxed(r"\boxed{a\}b}") == "a\\"


# the released rule (GAIR-NLP/LIMR serve_rm.py, RuleBasedRMProxy.split_and_score) on raw
# responses as its server sees them; expected values derived here by reading that code
PAPER = {"wrap_dollars": False, "require_stop": True}


@pytest.mark.parametrize("response, gold, expected", [
    (r"so \boxed{2}<|im_end|>", "2", 1.0),
    (r"so \boxed{2}<|endoftext|>", "2", 1.0),
    (r"so \boxed{2}", "2", -1.0),  # no stop token: truncated
    ("<|im_end|>\n<|im_start|>assistant\n" + r"\boxed{2}", "2", -1.0),  # the stop is before the turn
    (r"so \boxed{3}<|im_end|>", "2", -0.5),
    (r"so \boxed{2}<|im_end|> later \boxed{3}", "2", 1.0),  # text after the stop is cut off
    (r"\boxed{2^{2^{2^{2^{1}}}}}<|im_end|>", "65536", -1.0),  # nested 4 deep: no match
    (r"\boxed{\{1}<|im_end|>", "1", -0.5),  # matches, "\{1" is not 1
    # 5 invalid characters in 14 (35.7%) once stripped; the 10 spaces would dilute it to 20.8%
    ("答案是七。" + r"\boxed{7}" + " " * 10 + "<|im_end|>", "7", -1.0),
    ("答案是七。" + " " * 10 + r"\boxed{7}<|im_end|>", "7", 1.0),  # 5 in 24 inside: 20.8%
])
def test_paper_mode_equals_the_released_rule(response, gold, expected):
    assert limr_math_reward(response, gold, **PAPER) == expected


def test_verifier_errors_score_wrong_not_format_error(monkeypatch):
    import math_verify

    def broken(*args, **kwargs):
        raise RuntimeError("verifier crashed")

    monkeypatch.setattr(math_verify, "verify", broken)
    assert limr_math_reward(r"\boxed{2}<|im_end|>", "2", **PAPER) == -0.5
    assert limr_math_reward(r"\boxed{2}", "2") == -0.5


def test_a_pattern_that_runs_past_the_time_limit_scores_minus_one(monkeypatch):
    import random

    from alignkit import rewards

    rng = random.Random(0)  # no repeated chunk, so only the boxed pattern can reject it
    text = r"\boxed{" + "".join("\\{" + rng.choice("abcdefghij") for _ in range(1000)) + "<|im_end|>"
    assert "its pattern matches" in limr_format_error(text)  # about 1 s of backtracking, then no match
    monkeypatch.setattr(rewards, "BOXED_TIMEOUT_S", 0.01)  # the released server allows 2 s
    assert "time limit" in limr_format_error(text)
    assert limr_math_reward(text, "1", **PAPER) == -1.0


def test_stop_token_check_is_optional():
    assert limr_math_reward(r"\boxed{2}", "2", require_stop=True) == -1.0
    assert limr_math_reward(r"\boxed{2}<|im_end|>", "2", require_stop=True) == 1.0


def test_trl_wrapper_reads_the_answer_column_and_chat_completions():
    completions = [[{"role": "assistant", "content": r"\boxed{4}"}], r"\boxed{5}", "no box"]
    assert limr_reward(prompts=["p"] * 3, completions=completions, answer=["4", "4", "4"]) == [1.0, -0.5, -1.0]
    with pytest.raises(ValueError, match="answers"):
        limr_reward(completions=["a"], answer=["1", "2"])


def test_trl_wrapper_scores_truncated_completions_minus_one():
    texts, gold = [r"\boxed{4}", r"\boxed{4}"], ["4", "4"]
    assert limr_reward(completions=texts, answer=gold, is_truncated=[False, True]) == [1.0, -1.0]
    assert limr_reward(completions=texts, answer=gold, is_truncated=[False, True],
                       penalise_truncated=False) == [1.0, 1.0]
    # from TRL's completion ids: the second one does not end in a stop id (2 = EOS, 0 = pad)
    ids = [[5, 6, 2], [5, 6, 7]]
    assert limr_reward(completions=texts, answer=gold, completion_ids=ids, stop_token_ids=[0, 2]) == [1.0, -1.0]
    with pytest.raises(ValueError, match="cannot tell which completions were truncated"):
        limr_reward(completions=texts, answer=gold, completion_ids=ids)
    assert limr_reward(completions=texts, answer=gold, completion_ids=ids, penalise_truncated=False) == [1.0, 1.0]


def test_checked_reward_passes_is_truncated_once_the_trainer_sets_stop_ids():
    from alignkit.training import checked_reward

    seen = {}

    def spy(completions, **kwargs):
        seen.update(kwargs)
        return [0.0] * len(completions)

    wrapped = checked_reward(spy)
    wrapped(prompts=["p", "p"], completions=["a", "b"], completion_ids=[[1, 2], [1, 3]])
    assert "is_truncated" not in seen  # no stop ids known yet
    wrapped.stop_token_ids = {2}
    wrapped(prompts=["p", "p"], completions=["a", "b"], completion_ids=[[1, 2], [1, 3]])
    assert seen["is_truncated"] == [False, True]


@pytest.mark.slow
def test_trainer_gives_limr_reward_the_truncation_flags(tmp_path):
    """Built with build_grpo_trainer, a completion cut at max_completion_length scores -1."""
    from datasets import Dataset

    from alignkit.training import build_grpo_trainer

    rows = [{"prompt": [{"role": "user", "content": "Write a long story about the sea."}], "answer": "1"}]
    trainer = build_grpo_trainer("smollm2-135m", [limr_reward], Dataset.from_list(rows), output_dir=str(tmp_path),
                                 max_completion_length=4, num_generations=2, per_device_train_batch_size=2,
                                 max_steps=1, use_cpu=True, report_to="none", save_strategy="no")
    wrapper = trainer.reward_funcs[0]
    assert wrapper.stop_token_ids == {*trainer.eos_token_ids, trainer.processing_class.pad_token_id}
    cut = [[7] * 4, [7] * 4]  # four tokens, no EOS: what a 4-token limit leaves of a story
    assert wrapper(prompts=["p", "p"], completions=[r"\boxed{1}"] * 2, completion_ids=cut,
                   answer=["1", "1"]) == [-1.0, -1.0]
    eos = next(iter(trainer.eos_token_ids))
    assert wrapper(prompts=["p"], completions=[r"\boxed{1}"], completion_ids=[[7, eos]], answer=["1"]) == [1.0]


@pytest.mark.parametrize("bad", [None, 3, [r"\boxed{1}"], b"\\boxed{1}"])
def test_last_boxed_and_format_check_want_a_string(bad):
    with pytest.raises(TypeError, match="text must be a string"):
        last_boxed(bad)
    with pytest.raises(TypeError, match="text must be a string"):
        limr_format_error(bad)
