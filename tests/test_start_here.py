"""Chapter 0 (start here): the sums task's reward, the held-out scoring, and the advantage
convention the notebook computes by hand (TRL's, checked here against TRL's own code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alignkit.chapters.start_here import addition_task, held_out_scores, sum_pairs, sum_reward


def chat(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_sum_reward_pays_only_the_right_last_number():
    replies = [chat("17 + 6 = 23"), chat("17 + 6 = 24"), chat("23, no: 22"), "23", chat("none")]
    assert sum_reward(replies, answer=["23"] * 5) == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_sum_reward_refuses_a_wrong_number_of_answers():
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        sum_reward([chat("1"), chat("2")], answer=["1"])


def test_addition_task_holds_out_the_rest():
    train, rewards = addition_task(n_train=32, seed=0)
    trained = {row["prompt"][-1]["content"] for row in train}
    held = {f"What is {a} + {b}?" for a, b in sum_pairs(0)[32:]}
    assert len(train) == 32 and len(held) == 40 and not trained & held
    assert rewards == [sum_reward]


def test_group_advantages_follow_trls_std_convention():
    """The notebook's by-hand advantage: (r - mean) / (sample std + 1e-4), the sample std with
    Bessel's n - 1, as ``trl.trainer.utils.nanstd``; a TRL change of convention fails here."""
    from trl.trainer.utils import nanstd

    rewards = np.array([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    assert float(nanstd(torch.tensor(rewards))) == pytest.approx(rewards.std(ddof=1), rel=1e-6)
    assert float(nanstd(torch.tensor(rewards))) != pytest.approx(rewards.std(ddof=0), rel=1e-3)
    advantages = (rewards - rewards.mean()) / (rewards.std(ddof=1) + 1e-4)
    assert advantages.sum() == pytest.approx(0.0, abs=1e-9)
    assert advantages[0] == pytest.approx((1 - 3 / 8) / (rewards.std(ddof=1) + 1e-4))


def test_held_out_scores_refuses_empty_input():
    with pytest.raises(ValueError, match="at least one sum"):
        held_out_scores(None, None, [])


@pytest.mark.slow
def test_held_out_scores_on_the_bundled_model():
    from alignkit.models import load_policy, load_tokenizer

    model, tokenizer = load_policy("smollm2-135m"), load_tokenizer("smollm2-135m")
    pairs = [(4, 3), (17, 6)]
    scores = held_out_scores(model, tokenizer, pairs, n=2, seed=0, max_new_tokens=8)
    assert list(scores["sum"]) == ["4 + 3", "17 + 6"]
    assert list(scores["prompt"]) == ["What is 4 + 3?", "What is 17 + 6?"]
    assert set(scores["correct"]) <= {0.0, 1.0} and scores["reward"].between(0, 1).all()
    assert scores["correct"][0] == 1.0  # the worked example itself: the model copies "4 + 3 = 7"
    again = held_out_scores(model, tokenizer, pairs, n=2, seed=0, max_new_tokens=8)
    assert again.equals(scores)  # seeded: the same table twice


def test_seed_study_keeps_each_finished_seed(tmp_path, monkeypatch):
    """A seed already in the results file (at the same learning rate) is not trained again, and the
    file is rewritten after every seed, so an interrupted study resumes."""
    import json

    from alignkit.chapters import start_here

    calls = []

    def fake_run(scale_name, seed, learning_rate):
        calls.append(seed)
        return {"seed": seed, "learning_rate": learning_rate, "accuracy": [0.25, 0.5]}

    monkeypatch.setattr(start_here, "demo_run", fake_run)
    out = tmp_path / "seeds.json"
    first = start_here.seed_study((0, 1), "smoke", 2e-4, out)
    again = start_here.seed_study((0, 1, 2), "smoke", 2e-4, out)
    other_lr = start_here.seed_study((0,), "smoke", 5e-4, out)
    assert calls == [0, 1, 2, 0]
    assert [r["seed"] for r in first] == [0, 1] and [r["seed"] for r in again] == [0, 1, 2]
    assert other_lr[0]["learning_rate"] == 5e-4
    assert len(json.loads(out.read_text())["runs"]) == 4


def test_seed_table_reads_the_committed_study_and_an_absent_one(tmp_path):
    """The chapter's seed table is the committed study, row for row; a scale never studied gives an
    empty table with the same columns, not an error."""
    import json

    from alignkit.chapters.start_here import seed_table
    from alignkit.runtime import results_root

    runs = json.loads((results_root() / "00_start_here" / "seeds_cpu.json").read_text())["runs"]
    table = seed_table("cpu")
    assert table["seed"].tolist() == [r["seed"] for r in runs]
    assert table["accuracy after"].tolist() == [r["accuracy"][1] for r in runs]
    empty = seed_table("cpu", tmp_path / "absent.json")
    assert empty.empty and list(empty.columns) == list(table.columns)
