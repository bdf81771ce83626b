"""BLEUBERI's BLEU (chapter 1): hand-computed cases, its quirks, and sacrebleu as a cross-check.

Where the exact variant and ``sacrebleu.sentence_bleu(smooth_method="add-k",
use_effective_order=False)`` coincide: with one reference (sacrebleu's brevity penalty uses the
reference *closest* in length, ours the *shortest*) and a unigram precision of 1 (sacrebleu's
add-k smooths orders n >= 2 only, ours every order, so ``(m+1)/(c+1)`` differs from ``m/c``
unless ``m = c``). Otherwise they differ but rank long texts the same way.
"""

import math

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from alignkit.data import read_instruction_rows
from alignkit.rewards import (
    answer_span,
    bleu,
    bleu_reward,
    bleu_rouge_f1,
    make_text_reward,
    rouge_l,
    text_reward,
)

# hypothesis, references, value: derived here from the BLEU definition of the released reward
# (lilakk/BLEUBERI training/dataset.py, via evaluate's TF-NMT BLEU with smooth=True) and checked
# numerically with an independent implementation
DERIVED_CASES = [
    ("the cat sat on the mat", ["the cat is on the mat"], 0.48892),
    ("the cat sat on the mat", ["the cat is on the mat", "a cat sat on the mat today"], 0.88011),
    ("the cat", ["the cat is on the mat"], 0.13534),
    ("a b c d e f g h", ["a b c d e f", "a b c d e f g h i"], 1.0),
    ("x y z", ["the cat is on the mat"], 0.16621),
]


def sacre_add_k(hyp: str, ref: str) -> float:
    """sacrebleu's sentence BLEU with add-one smoothing on orders >= 2, on a 0-1 scale."""
    return sacrebleu.sentence_bleu(hyp, [ref], smooth_method="add-k", smooth_value=1,
                                   use_effective_order=False).score / 100


@pytest.mark.parametrize("hyp, refs, expected", DERIVED_CASES)
def test_derived_reward_cases(hyp, refs, expected):
    assert bleu(hyp, refs) == pytest.approx(expected, abs=1e-4)


def test_first_case_by_hand():
    # p_n = 6/7, 4/6, 2/5, 1/4; hypothesis and reference both 6 tokens, so BP = 1
    by_hand = math.exp(sum(math.log(p) for p in (6 / 7, 4 / 6, 2 / 5, 1 / 4)) / 4)
    assert bleu("the cat sat on the mat", ["the cat is on the mat"]) == pytest.approx(by_hand, rel=1e-12)


def test_multi_reference_clipping_takes_the_maximum_count():
    # "the" x3 against max count 2 -> m1 = 2 (a sum over references would allow 3);
    # "the the" x2 against max 1 -> m2 = 1; p = 3/4, 2/3, 1/2, 1/1; shortest ref 2 < 3 -> BP = 1
    expected = (0.75 * (2 / 3) * 0.5 * 1.0) ** 0.25
    assert bleu("the the the", ["the cat", "the the dog"]) == pytest.approx(expected, rel=1e-12)


def test_identical_hypothesis_scores_one():
    text = "Coffee is brewed from the roasted seeds of the coffee plant."
    assert bleu(text, [text]) == pytest.approx(1.0)
    assert bleu(text, [text, "something else entirely"]) == pytest.approx(1.0)


def test_short_hypotheses_get_free_precisions():
    # one wrong token: p1 = 1/2 and p2..p4 = 1/1 (nothing to match): 0.5 ** 0.25 ~ 0.84
    assert bleu("b", ["a"]) == pytest.approx(0.5 ** 0.25)
    # ... which the brevity penalty cancels against a long reference
    assert bleu("b", ["a " * 20]) < 1e-8


def test_empty_and_whitespace_score_zero():
    assert bleu("", ["the cat"]) == 0.0
    assert bleu("   \n", ["the cat"]) == 0.0


def test_case_sensitive_13a_tokens():
    assert bleu("The cat.", ["The cat."]) == pytest.approx(1.0)  # "cat." -> "cat" "."
    assert bleu("THE CAT", ["the cat"]) < 0.8


def test_bad_references_raise():
    with pytest.raises(ValueError, match="list of strings"):
        bleu("a", "a")
    with pytest.raises(ValueError, match="non-empty"):
        bleu("a", [])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("a b c d e the cat".split()), min_size=0, max_size=12),
       st.lists(st.lists(st.sampled_from("a b c d x y the".split()), min_size=1, max_size=12),
                min_size=1, max_size=3))
def test_bleu_is_in_unit_interval(hyp, refs):
    value = bleu(" ".join(hyp), [" ".join(r) for r in refs])
    assert 0.0 <= value <= 1.0 + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("the cat is on a mat and dog sat near it".split()), min_size=6,
                max_size=20), st.data())
def test_matches_sacrebleu_add_k_when_unigrams_all_match(ref_tokens, data):
    # a shuffled sub-multiset of the reference: unigram precision 1, one reference
    k = data.draw(st.integers(min_value=4, max_value=len(ref_tokens)))
    hyp_tokens = data.draw(st.permutations(ref_tokens))[:k]
    hyp, ref = " ".join(hyp_tokens), " ".join(ref_tokens)
    assert bleu(hyp, [ref]) == pytest.approx(sacre_add_k(hyp, ref), abs=1e-9)


def test_differs_from_sacrebleu_where_expected():
    # unsmoothed unigrams in sacrebleu: 0.4855 vs 0.48892 (derived here, sacrebleu 2.6.0)
    assert sacre_add_k("the cat sat on the mat", "the cat is on the mat") == pytest.approx(0.4855, abs=1e-4)
    # closest vs shortest reference for the brevity penalty: sacrebleu 0.8825 vs our 1.0
    sacre = sacrebleu.sentence_bleu("a b c d e f g h", ["a b c d e f", "a b c d e f g h i"],
                                    smooth_method="add-k", use_effective_order=False).score / 100
    assert sacre == pytest.approx(0.8825, abs=1e-4)


def test_same_ranking_as_sacrebleu_on_long_texts():
    rows = read_instruction_rows("heldout")
    pairs = [(r["references"][0], r["references"][1]) for r in rows]
    ours = [bleu(h, [ref]) for h, ref in pairs]
    theirs = [sacre_add_k(h, ref) for h, ref in pairs]
    assert spearmanr(ours, theirs).statistic >= 0.99


# ---------------------------------------------------------------------------------- ROUGE-L


def test_rouge_l_by_hand_and_best_reference():
    # LCS("the cat sat", "the cat") = 2: P = 2/3, R = 1, F = 0.8
    assert rouge_l("the cat sat", ["the cat"]) == pytest.approx(0.8)
    assert rouge_l("the cat sat", ["a dog", "the cat"]) == pytest.approx(0.8)
    assert rouge_l("The Cat", ["the cat"]) == pytest.approx(1.0)  # rouge-score lower-cases
    assert rouge_l("", ["the cat"]) == 0.0


def test_bleu_rouge_f1_is_the_harmonic_mean():
    hyp, refs = "the cat sat on the mat", ["the cat is on the mat"]
    b, r = bleu(hyp, refs), rouge_l(hyp, refs)
    assert bleu_rouge_f1(hyp, refs) == pytest.approx(2 * b * r / (b + r))
    assert bleu_rouge_f1("zzz", ["the cat is on the mat and more words here"]) >= 0.0
    assert bleu_rouge_f1("", ["the cat"]) == 0.0


# ---------------------------------------------------------------------------- TRL rewards

REFS = [["the cat is on the mat"], ["a dog barks"]]


def test_bleu_reward_plain_and_conversational_agree():
    plain = ["the cat sat on the mat", "a dog barks"]
    chat = [[{"role": "assistant", "content": t}] for t in plain]
    kwargs = {"prompts": ["p1", "p2"], "completion_ids": [[1], [2]], "trainer_state": None}
    a = bleu_reward(plain, references=REFS, **kwargs)
    b = bleu_reward(chat, references=REFS, **kwargs)
    assert a == pytest.approx(b)
    assert a == pytest.approx([0.48892, 1.0], abs=1e-4)


def test_answer_span_is_scored_by_default_as_released():
    # the example: whole text 0.166, the released reward scores the <answer> span: 1.0
    assert make_text_reward("bleu")(["x <answer>the cat</answer>"], references=[["the cat"]]) == [1.0]
    comps = ["I think... <answer>a dog barks</answer> done", "<answer> a dog barks", "a dog barks"]
    refs = [["a dog barks"]] * 3
    assert bleu_reward(comps, references=refs) == pytest.approx([1.0, 1.0, 1.0])
    assert bleu_reward(comps, references=refs, answer_only=False)[0] < 1.0  # the opt-out scores it all
    assert bleu_reward(["<answer></answer>", "<answer>   "], references=[["a"], ["a"]]) == [0.0, 0.0]


@pytest.mark.parametrize("text, span", [
    ("a <answer> b </answer> c", "b"),
    ("a <answer> b", "b"),  # only the opening tag: everything after it
    ("a </answer> b", "a </answer> b"),  # only the closing tag: the whole text
    ("  plain  ", "plain"),
    ("<answer>x<answer>y</answer>", "x"),  # released split("<answer>")[1]: up to a second <answer>
    ("<answer>x<answer>y", "x"),
    ("</answer> a <answer> b", "b"),  # both tags, closing one first
])
def test_answer_span_follows_the_released_extract_answer(text, span):
    assert answer_span(text) == span


def test_text_rewards_by_their_released_names():
    reward = make_text_reward("rouge")
    assert reward.__name__ == "rouge_reward"
    assert reward(["<answer>the cat sat</answer>"], references=[["the cat"]]) == pytest.approx([0.8])
    f1 = make_text_reward("bleu_rouge_f1")(["so <answer>the cat</answer>"], references=[["the cat"]])
    assert f1 == pytest.approx([1.0])
    assert make_text_reward("bleu", answer_only=False).__name__ == "bleu_reward_full_text"


def test_conversations_score_their_first_assistant_message():
    chat = [{"role": "assistant", "content": "a dog barks"}, {"role": "assistant", "content": "zzz"}]
    assert text_reward(chat, ["a dog barks"]) == pytest.approx(1.0)


def test_reference_tokens_are_not_stripped_first():
    # 13a joins "-\n" line breaks; stripping first would leave "word-" (one token, no match)
    assert bleu("word", ["word-\n"]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no 13a tokens"):
        bleu("word", ["<skipped>"])


def test_empty_none_and_nan_completions_score_zero():
    assert text_reward("", ["a"]) == 0.0
    assert text_reward("  ", ["a"]) == 0.0
    assert text_reward(None, ["a"]) == 0.0
    assert text_reward(float("nan"), ["a"]) == 0.0
    assert text_reward(1.5, ["a"]) == 0.0  # any float, as the released isinstance(completion, float)


def test_reward_factory_checks_columns_and_metric():
    reward = make_text_reward("rouge_l")
    assert reward.__name__ == "rouge_l_reward"
    assert reward(["the cat sat"], references=[["the cat"]]) == pytest.approx([0.8])
    with pytest.raises(ValueError, match="no 'references' column"):
        reward(["x"], answer=["x"])
    with pytest.raises(ValueError, match="2 completions but 1 rows"):
        reward(["x", "y"], references=[["x"]])
    with pytest.raises(ValueError, match="unknown metric 'meteor'"):
        make_text_reward("meteor")
