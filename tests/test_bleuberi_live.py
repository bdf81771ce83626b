"""Chapter 1 (BLEUBERI): the live GRPO-BLEU run of section 3 (its sizes, its helpers) and the
experiment driver's logging (TensorBoard at cpu/gpu scale, nothing at smoke)."""

from types import SimpleNamespace

import pytest

from alignkit.chapters.bleuberi import experiment
from alignkit.chapters.bleuberi.config import LIVE, PAPER_GRPO, live_sizes, run_fields, sizes
from alignkit.chapters.bleuberi.live import differing_fields, show_samples


def test_live_sizes_are_small_and_refuse_unsized_scales():
    assert live_sizes("smoke").steps == 1 and live_sizes(" CPU ").steps <= 3
    for name, live in LIVE.items():
        assert 1 <= live.k_hard <= live.pool <= sizes(name).pool, name
    with pytest.raises(ValueError, match="cluster.*01_bleuberi/cluster.yaml"):
        live_sizes("cluster")
    with pytest.raises(ValueError, match="unknown scale 'tpu'"):
        live_sizes("tpu")


def test_differing_fields_names_each_difference():
    a = SimpleNamespace(beta=0.04, top_k=50, temperature=0.9)
    assert differing_fields(a, SimpleNamespace(**vars(a)), ["beta", "top_k"]) == {}
    b = SimpleNamespace(beta=0.0, top_k=50, temperature=1.0)
    assert differing_fields(a, b, ["beta", "top_k", "temperature"]) == {
        "beta": (0.04, 0.0), "temperature": (0.9, 1.0)}


def test_the_helper_config_matches_paper_grpo():
    """What the notebook asserts, without a model: build_grpo_trainer's config layers give every
    PAPER_GRPO field and every run field exactly (TRL's own defaults differ on several)."""
    from trl import GRPOConfig

    from alignkit.training import grpo_config

    fields = run_fields(sizes("cpu"))
    args = grpo_config("/tmp/alignkit-test-live", paper=PAPER_GRPO, **fields)
    want = SimpleNamespace(**{**PAPER_GRPO, **fields})
    assert differing_fields(args, want, [*PAPER_GRPO, *fields]) == {}
    default = GRPOConfig(output_dir="/tmp/alignkit-test-live", use_cpu=True)
    assert differing_fields(default, want, PAPER_GRPO)  # TRL 1.x's defaults are not the paper's


def test_show_samples_refuses_nothing_to_show():
    with pytest.raises(ValueError, match="at least one row"):
        show_samples(None, None, [], max_new_tokens=4)


@pytest.mark.parametrize("scale,expected", [("smoke", "none"), ("cpu", "tensorboard")])
def test_experiment_runs_report_to_the_scales_tracker(monkeypatch, tmp_path, scale, expected):
    """run_experiment hands Scale.report_to to every training run (stages stubbed out)."""
    seen = []
    monkeypatch.setattr(experiment, "_cached", lambda path, compute, *a, **k: (
        compute() if path.name.startswith(experiment.METHODS) else
        {"indices": [0], "scores": [0.0], "threshold": 0.0, "ids": ["x"], "outputs": ["o"],
         "seconds": 0, "eval": {}, "answers": []}))
    monkeypatch.setattr(experiment, "_hard_rows", lambda cfg, sel: [])
    monkeypatch.setattr(experiment, "train_one", lambda *a, **k: seen.append(a[-1]) or {
        "method": a[1], "seed": a[2], "eval": {}, "seconds": 0})
    monkeypatch.setattr(experiment, "summarise", lambda runs, base: {})
    monkeypatch.setattr(experiment, "atomic_write_json", lambda path, value: None)
    experiment.run_experiment(scale, out_dir=tmp_path, results_dir=tmp_path, log=lambda m: None)
    assert seen and set(seen) == {expected}


@pytest.mark.slow
def test_live_hard_rows_keep_the_lowest_bleu_prompts():
    from alignkit.chapters.bleuberi.live import live_hard_rows
    from alignkit.models import load_policy, load_tokenizer

    cfg, live = sizes("smoke"), LIVE["smoke"].__class__(pool=3, k_hard=2, n_show=1)
    tok = load_tokenizer(cfg.model)
    rows, scores = live_hard_rows(load_policy(cfg.model, seed=0), tok, cfg, live)
    assert len(rows) == 2 and scores == sorted(scores)
    assert all(len(r["references"]) == cfg.n_refs and r["prompt"][0]["role"] == "user" for r in rows)
