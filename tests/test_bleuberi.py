"""Chapter 1 (BLEUBERI): the Chatbot Arena loader, the agreement study, the recipe task, and a GRPO
run with the BLEU reward that raises BLEU on a task built for it."""

from pathlib import Path

import numpy as np
import pytest

from alignkit.chapters.bleuberi.agreement import (
    agreement,
    agreement_table,
    bleu_plus_rm,
    combine_zscores,
    metric_scores,
    verifier_pairs,
)
from alignkit.chapters.bleuberi.baselines import sft_rows
from alignkit.chapters.bleuberi.evaluation import evaluate_answers, evaluation_rows
from alignkit.data import load_arena, normalise_arena_row
from alignkit.stats import bootstrap_diff, paired_bootstrap

ARENA = Path(__file__).parent / "fixtures" / "chatbot_arena_sample.jsonl"


def test_arena_loader_drops_bothbad_and_filters_turns_and_language():
    data = load_arena(data_files=ARENA)
    # 10 rows: one two-turn, one German, one "tie (bothbad)" are dropped; plain ties are kept
    assert len(data) == 7
    assert "tie (bothbad)" not in data["winner"]
    assert data["winner"].count("tie") == 2
    first = data[0]
    assert first["prompt"] == [{"role": "user", "content": "What is the capital of France?"}]
    assert first["response_a"] == "The capital of France is Paris." and first["a_wins"] is True
    assert data[1]["a_wins"] is False and data[2]["a_wins"] is None
    assert len(load_arena(data_files=ARENA, drop_ties=True)) == 5
    assert len(load_arena(data_files=ARENA, single_turn=False, language=None)) == 9
    assert len(load_arena(data_files=ARENA, n=3)) == 3


def test_arena_loader_errors_name_the_problem(monkeypatch):
    with pytest.raises(ValueError, match="unknown Arena winner 'draw'"):
        normalise_arena_row({"winner": "draw", "question_id": "q"})
    with pytest.raises(ValueError, match="no Arena row"):
        load_arena(data_files=ARENA, language="Klingon")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE"):
        load_arena()


def test_agreement_counts_wins_losses_and_ties():
    a, b = [0.9, 0.1, 0.5, 0.2], [0.1, 0.9, 0.5, 0.8]
    wins = [True, True, False, False]
    # the released analysis: a tied metric's "tie" never equals a (tie-free) human winner
    np.testing.assert_array_equal(agreement(a, b, wins), [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(agreement(a, b, wins, tie_credit=0.5), [1.0, 0.0, 0.5, 1.0])
    with pytest.raises(ValueError, match="equal length"):
        agreement([1.0], [1.0, 2.0], [True])
    with pytest.raises(ValueError, match="tie_credit"):
        agreement(a, b, wins, tie_credit=2)


def test_bleu_plus_rm_zscores_each_column_on_its_own():
    # ddof 1 as pandas: z([1, 2, 3]) = [-1, 0, 1]; a constant metric contributes zeros
    np.testing.assert_allclose(combine_zscores([1.0, 2.0, 3.0], [10.0, 10.0, 10.0]), [-0.5, 0.0, 0.5])
    za, zb = bleu_plus_rm(([0.0, 1.0], [10.0, 20.0]), ([1.0, 1.0], [5.0, 3.0]))
    np.testing.assert_allclose(za, [-0.5 ** 0.5 / 2, 0.5 ** 0.5 / 2])  # (z(bleu_a) + 0) / 2
    np.testing.assert_allclose(zb, [0.0, 0.0], atol=1e-12)  # z(bleu_b) and z(rm_b) cancel
    # pooled over both sides, side b's large BLEU would dominate: not what the paper computes
    assert not np.allclose(za, combine_zscores([0.0, 1.0, 10.0, 20.0], [1.0, 1.0, 5.0, 3.0])[:2])


def test_zscore_average_and_paired_bootstrap():
    right = np.array([1.0] * 40 + [0.0] * 10)
    boot = paired_bootstrap({"good": right, "same": right.copy(), "bad": 1 - right}, n_boot=500, seed=0)
    assert boot["good"][0] == pytest.approx(0.8) and boot["good"][1] < 0.8 < boot["good"][2]
    assert bootstrap_diff(boot, "good", "same") == (0.0, 0.0, 0.0)  # paired: identical metrics never differ
    diff, lo, hi = bootstrap_diff(boot, "good", "bad")
    assert diff == pytest.approx(0.6) and lo > 0
    with pytest.raises(ValueError, match="unknown metric"):
        bootstrap_diff(boot, "good", "nope")


ROW = {"prompt": [{"role": "user", "content": "Describe tea. Start your answer with 'Sure!'. "
                                              "Do not use any commas."}],
       "references": ["Sure! Tea is made from the leaves of the tea plant.",
                      "Sure! Green tea and black tea come from the same plant."],
       "constraints": [{"kind": "start_with", "text": "Sure!", "n": 0}, {"kind": "no_commas", "text": "", "n": 0}]}


def test_verifier_pairs_label_by_constraints_and_bleu_agrees():
    answers = ["Sure! Tea is made from the leaves of the tea plant.",  # passes both
               "Tea, coffee, and cocoa are drinks.",                    # fails both
               "Sure, tea is nice.",                                    # fails both (comma, no 'Sure!')
               "Sure! Tea, coffee and cocoa."]                           # one of two
    pairs = verifier_pairs([ROW], [answers], max_pairs_per_prompt=10)
    assert len(pairs) == 5  # 6 combinations, the two 0-score answers tie and are dropped
    assert pairs[0]["verifier_a"] == 1.0 and pairs[0]["a_wins"]  # largest gap first
    scores = metric_scores(pairs, max_refs=2, rm_scorer=lambda p, r: np.array([len(x) for x in r], float))
    assert {"BLEU 1 ref", "BLEU 2 ref", "ROUGE-L", "BLEU-ROUGE-L", "Longer wins", "RM", "BLEU+RM"} <= set(scores)
    table, diffs = agreement_table(pairs, scores, n_boot=200)
    by_name = {r["metric"]: r for r in table}
    assert by_name["BLEU 2 ref"]["agreement"] > by_name["Longer wins"]["agreement"]
    assert all(r["lo"] <= r["agreement"] <= r["hi"] for r in table)
    # a tie counts 0 (released rule); the coin-flip reading adds half of the tied share
    assert all(r["agreement_ties_half"] == pytest.approx(r["agreement"] + r["ties"] / 2) for r in table)
    assert "BLEU+RM - RM" in diffs


def test_evaluate_answers_and_sft_rows():
    ev = evaluate_answers(["Sure! Tea is made from the leaves of the tea plant.", "tea, yes"], [ROW, ROW])
    assert ev["pass_rate"] == 0.5 and ev["constraint_rate"] == 0.5
    assert ev["bleu"] == pytest.approx(0.5, abs=0.01)  # 1.0 for the copy of a reference, ~0 for the other
    rows = sft_rows([ROW], n_refs=2)
    assert len(rows) == 2 and rows[1]["completion"][0]["content"] == ROW["references"][1]
    with pytest.raises(ValueError, match="n_refs"):
        sft_rows([ROW], n_refs=0)


@pytest.mark.parametrize("scale", ["smoke", "cpu", "gpu"])
def test_evaluation_prompts_are_never_trained_on(scale):
    """Every scale's evaluation set: the held-out rows first, then training rows outside both the
    selection pool and the agreement tail, no prompt twice."""
    from alignkit.chapters.bleuberi.config import sizes
    from alignkit.data import read_instruction_rows

    cfg = sizes(scale)
    rows = evaluation_rows(cfg.n_eval, cfg.n_unseen, pool=cfg.pool, n_agree=cfg.n_agree)
    assert len(rows) == cfg.n_eval + cfg.n_unseen
    assert [r["id"].split("-")[0] for r in rows] == ["heldout"] * cfg.n_eval + ["train"] * cfg.n_unseen
    train = read_instruction_rows("train")
    used = {r["id"] for r in train[:cfg.pool] + train[len(train) - cfg.n_agree:]}
    prompts = [r["prompt"][0]["content"] for r in rows]
    assert not used & {r["id"] for r in rows} and len(set(prompts)) == len(prompts)


def test_runs_train_sft_on_the_first_sft_seeds_only():
    """cfg.runs(): every seed trains both GRPO arms, SFT only the first ``sft_seeds``; a count
    outside 1..len(seeds) is refused by name."""
    from dataclasses import replace

    from alignkit.chapters.bleuberi.config import sizes

    cfg = replace(sizes("smoke"), seeds=(0, 1, 2), sft_seeds=1)
    assert cfg.runs() == [("grpo_bleu", 0), ("grpo_rm", 0), ("sft", 0), ("grpo_bleu", 1), ("grpo_rm", 1),
                          ("grpo_bleu", 2), ("grpo_rm", 2)]
    assert len(replace(cfg, sft_seeds=None).runs()) == 9
    for bad in (0, 4):
        with pytest.raises(ValueError, match=f"sft_seeds must be between 1 and the 3 seeds, got {bad}"):
            replace(cfg, sft_seeds=bad)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n_eval=151), "n_eval 151 exceeds the 150 held-out"),
    (dict(n_eval=10, n_unseen=500, pool=64, n_agree=64), "exceeds the 600 training prompts"),
    (dict(n_eval=-1), "n_eval must be an integer"),
    (dict(n_eval=10, n_unseen=2.5), "n_unseen must be an integer"),
])
def test_evaluation_rows_refuse_overlaps_and_bad_sizes(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluation_rows(**kwargs)


def test_bleuberi_task_is_registered_with_a_references_column():
    from alignkit.tasks import build_task

    data, rewards = build_task("bleuberi", n_train=5, n_refs=2)
    assert len(data) == 5 and all(len(r) == 2 for r in data["references"])
    ref = data[0]["references"][0]
    assert rewards[0]([ref, ""], references=[data[0]["references"]] * 2) == [1.0, 0.0]
    with pytest.raises(ValueError, match="unknown source"):
        build_task("bleuberi", source="web")


@pytest.mark.slow
def test_grpo_with_the_bleu_reward_raises_bleu(tmp_path):
    """One prompt whose reference is an easy phrase the model says some of the time: 'Hello there!'.

    The mean BLEU of the sampled completions (GRPO's reward) must rise over a few steps with the
    BLEU reward (LoRA, high learning rate), and the adapter must change. The adapter is seeded:
    unseeded, its random A matrices made the test pass or fail by the draw. Measured in float32
    (2-core AMD EPYC without AVX512), last two steps' mean minus the first two's: seeds 0-5 give
    +0.17, +0.26, +0.07, +0.28, +0.18, +0.17 in 8 steps; in 5 steps seed 2 gave +0.03."""
    import torch
    from datasets import Dataset

    from alignkit.models import load_policy, load_tokenizer
    from alignkit.rewards import make_text_reward
    from alignkit.scale import get_scale
    from alignkit.training import build_grpo_trainer, changed_fraction, trainable_state

    torch.set_num_threads(1)
    prompt = "Greet me in two words."
    refs = ["Hello there!"]
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": prompt}], "references": refs}] * 8)
    tok = load_tokenizer("smollm2-135m")
    model = load_policy("smollm2-135m", lora=True, seed=0)
    before = trainable_state(model)
    trainer = build_grpo_trainer(model, [make_text_reward("bleu")], data, scale=get_scale("smoke"),
                                 output_dir=tmp_path, seed=0, tokenizer=tok, num_generations=8,
                                 per_device_train_batch_size=8, max_completion_length=8, temperature=0.9,
                                 top_k=50, beta=0.0, loss_type="bnpo", learning_rate=1e-3, max_steps=8,
                                 disable_tqdm=True)
    trainer.train()
    rewards = [h["reward"] for h in trainer.state.log_history if "reward" in h]
    print("mean BLEU per step", [round(r, 3) for r in rewards])
    assert np.mean(rewards[-2:]) > np.mean(rewards[:2]) + 0.05, rewards
    assert changed_fraction(before, trainer.model) > 0.9
