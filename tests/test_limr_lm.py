"""Chapter 2's real-LM track: the problem generator, the recipe tasks, the hub loader on a
local fixture, per-epoch rates, and a smoke TRL GRPO run that yields a complete acc matrix."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from alignkit.chapters.limr import lm as limr_lm
from alignkit.chapters.limr.config import LM_SIZES
from alignkit.data import load_limr_rows
from alignkit.rewards import LIMR_CORRECT, LIMR_FORMAT_ERROR, limr_math_reward
from alignkit.tasks import build_task

FIXTURE = Path(__file__).parent / "fixtures" / "limr_sample.jsonl"


def _solve(question: str) -> int:
    """An independent solver: reads 'What is a + b?' / 'What is a - b?'."""
    a, op, b = re.fullmatch(r"What is (\d+) ([+-]) (\d+)\?", question).groups()
    return int(a) + int(b) if op == "+" else int(a) - int(b)


def test_arithmetic_problems_are_deterministic_distinct_balanced_and_correct():
    probs = limr_lm.arithmetic_problems(200, seed=3)
    assert probs == limr_lm.arithmetic_problems(200, seed=3)
    assert probs != limr_lm.arithmetic_problems(200, seed=4)
    assert len({p["question"] for p in probs}) == 200
    assert [p["kind"] for p in probs[:4]] == sorted(limr_lm.KINDS)  # the kinds in turn
    assert {p["kind"]: sum(q["kind"] == p["kind"] for q in probs) for p in probs} == dict.fromkeys(limr_lm.KINDS, 50)
    shots = {m["content"] for m in limr_lm.SHOTS if m["role"] == "user"}
    for p in probs:
        assert int(p["answer"]) == _solve(p["question"]) >= 0
        assert p["question"] not in shots
    with pytest.raises(ValueError, match="n must be >= 1"):
        limr_lm.arithmetic_problems(0)
    with pytest.raises(ValueError, match="unknown kind 'mul'"):
        limr_lm.arithmetic_problem(__import__("random").Random(0), "mul")


def test_arithmetic_task_uses_the_paper_prompt_and_reward():
    data, (reward,) = build_task("limr_arithmetic", n_train=6, seed=1)
    row = data[0]
    assert row["prompt"][0] == {"role": "system", "content": limr_lm.SYSTEM_PROMPT}
    assert row["prompt"][1:5] == limr_lm.SHOTS  # two worked examples, then the question
    assert row["prompt"][5]["content"] == limr_lm.arithmetic_problems(6, seed=1)[0]["question"]
    assert data["sample_id"] == list(range(6))
    gold = row["answer"]
    got = reward(completions=[f"So \\boxed{{{gold}}}.", f"\\boxed{{{int(gold) + 1}}}", gold],
                 answer=[gold] * 3)
    assert got == [1.0, -0.5, -1.0]


def test_hub_loader_on_a_local_fixture_and_its_errors(tmp_path):
    rows = load_limr_rows(str(FIXTURE))
    assert [r["answer"] for r in rows] == ["5", "(5,7)", "2\\sqrt{3}"]  # the empty answer is skipped
    data, (reward,) = build_task("limr_hub", path=str(FIXTURE), n_train=2, seed=0)
    assert len(data) == 2 and data[0]["prompt"][0]["content"] == limr_lm.SYSTEM_PROMPT
    assert reward(completions=["\\boxed{(5,7)}"], answer=["(5,7)"]) == [1.0]
    _, (bare,) = build_task("limr_hub", path=str(FIXTURE), wrap_dollars=False)
    assert bare(completions=["\\boxed{(5,7)}"], answer=["(5,7)"]) == [-0.5]  # the paper's parsing bug
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "x", "answer": "1"}\n')
    with pytest.raises(ValueError, match="prompt/problem/question"):
        load_limr_rows(str(bad))
    with pytest.raises(FileNotFoundError):
        load_limr_rows(str(tmp_path / "missing.jsonl"))
    with pytest.warns(UserWarning, match="offline_fallback"):
        data, _ = build_task("limr_hub", path=str(tmp_path / "missing.json"), n_train=3, offline_fallback=True)
    assert len(data) == 3


def test_per_epoch_rates_by_hand():
    recs = [{"epoch": 0, "reward": r} for r in (-1, -1, -0.5, 1)] + [{"epoch": 1, "reward": r} for r in (1, 1, -0.5, -1)]
    rates = limr_lm.per_epoch_rates(recs)
    assert rates["epoch"] == [1, 2] and rates["rollouts"] == [4, 4]
    assert rates["format"] == [0.5, 0.75] and rates["accuracy"] == [0.25, 0.5]
    np.testing.assert_allclose(rates["reward"], [-0.375, 0.125])


@pytest.mark.slow
def test_smoke_trl_run_records_every_sample_every_epoch(tmp_path):
    """A smoke GRPO run of SmolLM2 over 2 epochs: the recorder's acc matrix is complete (no NaN),
    holds one entry per rollout, and LIM scores every sample."""
    out = tmp_path / "lm.json"
    r = limr_lm.run("smoke", out=str(out))
    p = LM_SIZES["smoke"]
    assert json.loads(out.read_text())["acc_matrix"] == r["acc_matrix"]
    acc = np.array(r["acc_matrix"], dtype=float)
    assert acc.shape == (p["n_pool"], p["epochs"]) and not np.isnan(acc).any()
    assert r["per_epoch"]["rollouts"] == [p["n_pool"] * p["num_generations"]] * p["epochs"]
    # each sample has the same number of rollouts an epoch, so the epoch's accuracy is the column mean
    np.testing.assert_allclose(r["per_epoch"]["accuracy"], acc.mean(axis=0), atol=1e-4)
    # one optimiser step per epoch at smoke (2 prompts x 4 completions): TRL's logged mean reward
    # of each step is the recorder's mean reward of that epoch
    assert r["steps"] == p["epochs"] == len(r["train_log"])
    np.testing.assert_allclose([row["reward"] for row in r["train_log"]], r["per_epoch"]["reward"], atol=1e-5)
    # LIM scores and the selection, recomputed from the matrix with the paper's formula
    avg = acc.mean(axis=0)
    denom = ((1 - avg) ** 2).sum()
    expected = [0.0 if denom == 0 else 1 - ((row - avg) ** 2).sum() / denom for row in acc]
    np.testing.assert_allclose(r["lim_scores"], expected, atol=1e-3)
    assert r["lim_kept"] == [i for i, s in enumerate(r["lim_scores"]) if s >= r["lim_threshold"]]
    # the held-out greedy numbers, recomputed from the completions with the LIMR reward
    held = r["held_out"]
    assert r["base_accuracy"] == r["eval_before"]["accuracy"]
    assert not {h["question"] for h in held} & {q["question"] for q in r["pool"]}
    for stage in ("eval_before", "eval_after"):
        ev = r[stage]
        assert len(ev["examples"]) == p["n_eval"]  # n_eval <= 4: every completion is kept
        rewards = [limr_math_reward(c, h["answer"]) for c, h in zip(ev["examples"], held, strict=True)]
        assert ev["format"] == pytest.approx(np.mean([x != LIMR_FORMAT_ERROR for x in rewards])), stage
        assert ev["accuracy"] == pytest.approx(np.mean([x == LIMR_CORRECT for x in rewards])), stage
        assert ev["reward"] == pytest.approx(np.mean(rewards)), stage
        assert ev["correct"] == [int(x == LIMR_CORRECT) for x in rewards], stage


def test_one_shot_prompt_puts_a_worked_example_before_the_question():
    (row,) = limr_lm.chat_rows(["What is 2 + 2?"], ["4"], shots=1)
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "user"]
    assert "\\boxed{7}" in row["prompt"][2]["content"] and row["prompt"][3]["content"] == "What is 2 + 2?"
    with pytest.raises(ValueError, match="shots"):
        limr_lm.chat_rows(["q"], ["1"], shots=3)
