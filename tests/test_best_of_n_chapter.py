"""Chapter 4's own package: the question set of its real best-of-N and its pre-registered claims."""

from __future__ import annotations

from alignkit.chapters.best_of_n import CLAIMS, LM_N, QA
from alignkit.rewards import bleu


def test_qa_pairs_are_questions_with_one_sentence_answers():
    assert len(QA) >= 8  # smoke scale evaluates the first n_eval = 8
    questions = [q for q, _ in QA]
    assert len(set(questions)) == len(questions), "a question appears twice"
    for question, answer in QA:
        assert question.endswith("?"), question
        assert answer.endswith(".") and answer.count(".") == 1, answer


def test_each_reference_answer_scores_bleu_one_against_itself_and_less_for_a_paraphrase():
    """The reward the chapter uses (BLEUBERI's BLEU) separates the reference from a reordering."""
    for _, answer in QA:
        assert bleu(answer, [answer]) == 1.0
        words = answer.rstrip(".").split()
        reordered = " ".join(words[1:] + words[:1]) + "."
        assert bleu(reordered, [answer]) < 1.0, reordered


def test_every_real_model_size_has_its_own_claim():
    ids = [c.id for c in CLAIMS]
    assert len(set(ids)) == len(ids), "duplicate claim ids"
    assert [f"L1-N{n}" for n in LM_N] == [i for i in ids if i.startswith("L1-")]
    assert list(LM_N) == sorted(LM_N)
