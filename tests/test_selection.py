"""BLEUBERI's hard-instruction selection (chapter 1): the k lowest-BLEU prompts, and the ablations."""

import pytest

import alignkit.generation
from alignkit.rewards import bleu
from alignkit.selection import (
    generate_base_outputs,
    score_outputs,
    select_by_score,
    select_hard,
    select_hard_with_model,
)

REFS = [["the cat sat on the mat"]] * 5
OUTPUTS = [
    "the cat sat on the mat",  # 1.0
    "",  # 0.0 (empty)
    "the cat sat",  # brevity-penalised
    "completely unrelated words here",  # near 0
    "the cat sat on a mat",  # high
]


def test_scores_every_output_with_bleu():
    scores = score_outputs(OUTPUTS, REFS)
    assert scores == pytest.approx([bleu(o, r) if o else 0.0 for o, r in zip(OUTPUTS, REFS, strict=True)])
    assert scores[0] == pytest.approx(1.0) and scores[1] == 0.0


def test_hard_keeps_the_k_lowest_lowest_first():
    sel = select_hard(OUTPUTS, REFS, k=2)
    scores = score_outputs(OUTPUTS, REFS)
    assert sel.indices == [1, 3]
    assert sel.scores == pytest.approx(scores)  # the whole pool, for the histogram
    assert sel.selected_scores == sorted(sel.selected_scores)
    assert sel.threshold == pytest.approx(scores[3])
    assert max(sel.selected_scores) <= min(s for i, s in enumerate(scores) if i not in sel.indices)


def test_ties_break_by_index_and_modes():
    scores = [0.5, 0.1, 0.1, 0.9, 0.3]
    assert select_by_score(scores, 2).indices == [1, 2]
    assert select_by_score(scores, 2, "easy").indices == [3, 0]
    assert select_by_score(scores, 3, "medium").indices == [2, 4, 0]
    rand = select_by_score(scores, 3, "random", seed=7)
    assert rand.indices == select_by_score(scores, 3, "random", seed=7).indices
    assert len(set(rand.indices)) == 3 and rand.mode == "random"
    assert select_by_score(scores, 5).indices == [1, 2, 4, 0, 3]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="k must be between 1 and the pool size 5"):
        select_by_score([0.1] * 5, 6)
    with pytest.raises(ValueError, match="unknown mode 'hardest'"):
        select_by_score([0.1] * 5, 1, "hardest")
    with pytest.raises(ValueError, match="5 outputs but 1 reference lists"):
        select_hard(OUTPUTS, REFS[:1], 1)


def test_model_wrapper_uses_the_papers_sampler(monkeypatch):
    calls = {}

    def fake_sample(model, tokenizer, prompts, n, max_new_tokens, **kw):
        calls.update(kw, n=n, max_new_tokens=max_new_tokens)
        return alignkit.generation.Completions([[o] for o in OUTPUTS], [[0.0]] * 5, [[1]] * 5)

    monkeypatch.setattr(alignkit.generation, "sample_completions", fake_sample)
    outs = generate_base_outputs(None, None, ["p"] * 5, max_new_tokens=8, progress=False)
    assert outs == OUTPUTS
    assert calls["n"] == 1 and calls["temperature"] == 0.7 and calls["top_p"] == 0.9 and calls["seed"] == 42
    sel, outs = select_hard_with_model(None, None, ["p"] * 5, REFS, 2, max_new_tokens=8, progress=False)
    assert sel.indices == [1, 3] and outs == OUTPUTS
