"""Chapter 2's reading of its results (alignkit.chapters.limr.analysis) on small runs built by
hand, and the real-LM track's GRPOConfig as the notebook prints it (lm.lm_grpo_config)."""

import numpy as np
import pytest

from alignkit.chapters.limr import analysis
from alignkit.chapters.limr import lm as limr_lm
from alignkit.chapters.limr.config import LM_SIZES, PAPER_GRPO, PAPER_RUN


def _run(seed, correct, curves=None):
    """One seed's toy result with the fields the analysis reads."""
    return {"seed": seed, "correct": correct, "acc": {m: float(np.mean(v)) for m, v in correct.items()},
            "curves": curves or {}}


RUNS = [_run(0, {"LIM": [1, 1, 0, 0], "FULL": [1, 0, 0, 0]}),
        _run(1, {"LIM": [1, 0, 0, 0], "FULL": [1, 1, 1, 0]}),
        _run(2, {"FULL": [0, 0, 0, 0]})]  # LIM's subset too small in this seed: not trained


def test_both_outcomes_and_ahead_pair_by_seed():
    assert [r["seed"] for r in analysis.both(RUNS, "LIM", "FULL")] == [0, 1]
    np.testing.assert_array_equal(analysis.outcomes(RUNS[:2], "LIM"), [[1, 1, 0, 0], [1, 0, 0, 0]])
    assert analysis.ahead(RUNS, "LIM", "FULL") == 1  # seed 0 only (0.5 > 0.25; 0.25 < 0.75)
    with pytest.raises(ValueError, match=r"'LIM' did not train in seeds \[2\]"):
        analysis.outcomes(RUNS, "LIM")


def test_paired_ci_is_the_mean_paired_difference():
    m, lo, hi = analysis.paired_ci(RUNS, "LIM", "FULL", n_boot=500)
    # seed 0: +1 on one problem of 4; seed 1: -2 of 4 -> mean (1 - 2) / 8
    assert m == pytest.approx(-1 / 8)
    assert lo <= m <= hi and -1 <= lo and hi <= 1


def test_seed_ci_skips_missing_values_and_clips():
    m, lo, hi = analysis.seed_ci([0.9, 1.0, None, 0.95])
    assert m == pytest.approx(0.95) and hi == 1.0 and lo < m  # the t-interval is clipped at 1
    assert all(np.isnan(analysis.seed_ci([None])))


def test_mean_curve_and_scores_of():
    runs = [_run(0, {}, {"LIM": [[0, 0.2], [16, 0.4]]}), _run(1, {}, {"LIM": [[0, 0.4], [16, 0.8]]})]
    steps, curve = analysis.mean_curve(runs, "LIM")
    np.testing.assert_array_equal(steps, [0, 16])
    np.testing.assert_allclose(curve, [0.3, 0.6])
    with pytest.raises(ValueError, match="no seed has a learning curve for 'RAND'"):
        analysis.mean_curve(runs, "RAND")
    s = analysis.scores_of({"lim_scores": [0.7, analysis.DROPPED, -0.2]})
    assert np.isnan(s[1]) and s[0] == 0.7 and s[2] == -0.2


def test_example_problems_pick_by_rule():
    acc = np.array([[1, 1, 1], [0, 0.5, 1], [0, 0, 0], [0.5, 0.5, 0.75]])
    scores = np.array([0.0, 0.9, -0.5, 0.95])
    ex = analysis.example_problems(acc, scores)
    assert ex == {"highest LIM score": 3, "learned during RL": 1, "always solved": 0, "never solved": 2}
    # nothing learned from <= 0.25 to >= 0.75, no flat rows: the largest rise, and no flat examples
    ex = analysis.example_problems(np.array([[0.5, 0.6], [0.4, 0.7]]), np.array([0.1, 0.2]))
    assert ex == {"highest LIM score": 1, "learned during RL": 1}


def test_lm_grpo_config_is_what_run_trains_with(tmp_path):
    p = LM_SIZES["cpu"]
    args = limr_lm.lm_grpo_config("cpu", str(tmp_path))
    g, k = p["num_generations"], p["prompts_per_step"]
    assert (args.num_generations, args.per_device_train_batch_size) == (g, g * k)
    assert args.max_steps == p["epochs"] * (p["n_pool"] // k) == 32
    assert (args.learning_rate, args.temperature) == (p["learning_rate"], p["temperature"])
    assert args.max_completion_length == p["max_completion_length"]
    assert args.beta == 0.0 and args.loss_type == "grpo"  # GRPO_DEFAULTS, not the paper's KL
    assert "tensorboard" in args.report_to and args.output_dir == str(tmp_path)
    assert limr_lm.lm_grpo_config("cpu").output_dir == limr_lm.lm_output_dir("cpu") == "runs/02_limr/lm_cpu"
    assert limr_lm.lm_grpo_config("smoke", str(tmp_path)).report_to in ([], ["none"], "none")


def test_paper_vs_ours_lists_every_paper_field(tmp_path):
    rows = limr_lm.paper_vs_ours(limr_lm.lm_grpo_config("cpu", str(tmp_path)))
    assert [f for f, _, _ in rows] == [*PAPER_GRPO, *PAPER_RUN]
    table = {f: (paper, ours) for f, paper, ours in rows}
    assert table["temperature"] == (1.2, 1.0) and table["learning_rate"] == (5e-7, LM_SIZES["cpu"]["learning_rate"])
    with pytest.raises(ValueError, match="pass a trl.GRPOConfig"):
        limr_lm.paper_vs_ours(object())
