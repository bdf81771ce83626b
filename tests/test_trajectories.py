"""The trajectory recorder (chapter 2): records from a fake trainer loop and from TRL's GRPO."""

import numpy as np
import pytest

from alignkit.selection import lim_scores
from alignkit.trajectories import TrajectoryRecorder


def fake_reward(prompts=None, completions=None, answer=None, **kwargs):
    return [1.0 if c == a else -0.5 for c, a in zip(completions, answer, strict=True)]


class FakeState:
    epoch = 0.0


def test_fake_trainer_loop_gives_the_acc_matrix(tmp_path):
    """Two epochs of 2 steps, 2 prompts x 2 generations each; sample 3 is dropped in epoch 1."""
    rec = TrajectoryRecorder()
    reward = rec.wrap(fake_reward)
    cb, state = rec.callback(), FakeState()
    batches = [[0, 1], [2, 3], [0, 1], [2, 2]]  # epoch 1 sees sample 2 twice and 3 never
    outcomes = {0: [1, 1, 1, 1], 1: [0, 0, 1, 0], 2: [1, 0, 1, 1, 0, 1], 3: [0, 0]}
    for step, batch in enumerate(batches):
        state.epoch = step / 2  # what the HF Trainer reports at each step's start
        cb.on_step_begin(None, state, None)
        ids = [s for s in batch for _ in range(2)]
        comps = ["ok" if outcomes[s].pop(0) else "no" for s in ids]
        assert reward(prompts=["p"] * 4, completions=comps, answer=["ok"] * 4, sample_id=ids) == \
            [1.0 if c == "ok" else -0.5 for c in comps]
    acc, ids = rec.acc_matrix(sample_ids=range(5))
    np.testing.assert_allclose(acc[:4], [[1, 1], [0, .5], [.5, .75], [0, np.nan]])
    assert np.isnan(acc[4]).all() and ids == [0, 1, 2, 3, 4]
    assert np.isnan(lim_scores(acc)[3:]).all()  # missing in the last epoch, never seen: no score
    path = rec.save(tmp_path / "traj.jsonl")
    again = TrajectoryRecorder.load(path)
    np.testing.assert_array_equal(again.acc_matrix(range(5))[0], acc)
    assert again.records[0] == {"sample_id": 0, "epoch": 0, "reward": 1.0, "correct": True}


def test_grpo_hook_and_errors():
    rec = TrajectoryRecorder(correct_at=0.5)
    rec.grpo_hook(0, 0, np.array([7, 7]), np.array([1.0, 0.0]))
    assert rec.acc_matrix()[0].tolist() == [[0.5]]
    with pytest.raises(ValueError, match="sample_id"):
        rec.wrap(fake_reward)(prompts=["p"], completions=["ok"], answer=["ok"])
    with pytest.raises(ValueError, match="2 sample ids for 1"):
        rec.add([1, 2], 0, [1.0])
    with pytest.raises(ValueError, match="no rollouts"):
        TrajectoryRecorder().acc_matrix()


@pytest.mark.slow
def test_recorder_on_a_smoke_trl_grpo_run(tmp_path):
    from datasets import Dataset

    from alignkit.rewards import limr_reward
    from alignkit.scale import get_scale
    from alignkit.training import build_grpo_trainer, train

    rows = [{"prompt": [{"role": "user", "content": f"What is {a}+{b}? Put the answer in \\boxed{{}}."}],
             "answer": str(a + b), "sample_id": i} for i, (a, b) in enumerate([(2, 3), (4, 4), (1, 6), (5, 2)])]
    rec = TrajectoryRecorder()
    scale = get_scale("smoke").replace(max_steps=2)
    trainer = build_grpo_trainer("smollm2-135m", rec.wrap(limr_reward), Dataset.from_list(rows),
                                 scale=scale, output_dir=tmp_path, callbacks=[rec.callback()])
    train(trainer, resume=False)
    g = scale.num_generations
    assert len(rec.records) == 2 * g  # 2 steps x one prompt x G completions
    assert {r["reward"] for r in rec.records} <= {1.0, -0.5, -1.0}
    acc, ids = rec.acc_matrix(sample_ids=range(4), n_epochs=1)
    seen = ~np.isnan(acc[:, 0])
    assert 1 <= seen.sum() <= 2 and set(np.flatnonzero(seen)) == {r["sample_id"] for r in rec.records}
