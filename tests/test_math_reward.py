"""The LIMR math reward (chapter 2): the released code's rules and the $...$ parsing fix."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_last_boxed_takes_the_last_balanced_answer():
    assert last_boxed(r"first \boxed{1}, then \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert last_boxed(r"\boxed{3} and a broken \boxed{4") == "3"
    assert last_boxed("none") is None
    assert limr_math_reward(r"\boxed{1} no wait \boxed{2}", "2") == 1.0  # four boxes are fine


def test_stop_token_check_is_optional():
    assert limr_math_reward(r"\boxed{2}", "2", require_stop=True) == -1.0
    assert limr_math_reward(r"\boxed{2}<|im_end|>", "2", require_stop=True) == 1.0


def test_trl_wrapper_reads_the_answer_column_and_chat_completions():
    completions = [[{"role": "assistant", "content": r"\boxed{4}"}], r"\boxed{5}", "no box"]
    assert limr_reward(prompts=["p"] * 3, completions=completions, answer=["4", "4", "4"]) == [1.0, -0.5, -1.0]
    with pytest.raises(ValueError, match="answers"):
        limr_reward(completions=["a"], answer=["1", "2"])


def _last_boxed_quadratic(text: str) -> str | None:
    """The previous implementation (rfind from the end, rescanning for each unbalanced box):
    the reference the linear one must agree with."""
    start = text.rfind("\\boxed{")
    while start != -1:
        depth, i = 0, start + len("\\boxed")
        for j in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                return text[i + 1:j]
        start = text.rfind("\\boxed{", 0, start)  # unbalanced: try the one before
    return None


_PIECES = st.sampled_from(["\\boxed{", "\\boxed", "{", "}", "}}", "{{", "1", "x", " ", "\\", "boxed", "\\frac{1}{2}"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join) | st.text(alphabet="\\boxed{}1 ", max_size=60))
def test_last_boxed_agrees_with_the_quadratic_reference(text):
    assert last_boxed(text) == _last_boxed_quadratic(text)


def test_last_boxed_is_linear_on_nested_openings():
    import time

    for text in ("\\boxed{" * 20000, "\\boxed{" * 20000 + "}", "\\boxed{1}" + "\\boxed{" * 20000):
        start = time.perf_counter()
        last_boxed(text)
        assert time.perf_counter() - start < 0.5
    assert last_boxed("\\boxed{" * 20000 + "}") == ""
    assert last_boxed("\\boxed{1}" + "\\boxed{" * 20000) == "1"


@pytest.mark.parametrize("bad", [None, 3, [r"\boxed{1}"], b"\\boxed{1}"])
def test_last_boxed_and_format_check_want_a_string(bad):
    with pytest.raises(TypeError, match="text must be a string"):
        last_boxed(bad)
    with pytest.raises(TypeError, match="text must be a string"):
        limr_format_error(bad)
