"""Chapter 1's experiment: the agreement study and GRPO-BLEU vs GRPO-RM vs SFT, end to end.

    python -m alignkit.chapters.bleuberi.experiment --scale cpu      # 70 min on 2 cores (5 seeds x 24 steps, SFT on 2; 450 evaluation prompts)
    python -m alignkit.chapters.bleuberi.experiment --scale smoke    # ~1-2 min, every code path

Stages, each saved atomically under ``runs/01_bleuberi/<scale>/`` so that an interrupted run
resumes where it stopped (finished seeds are skipped):

1. **Hard selection** (paper §2.1): one sampled answer of the base model per training prompt
   (temperature 0.7, top_p 0.9, seed 42, as the released code), BLEU against the references,
   keep the k lowest.
2. **Agreement study** (claim 1): sampled answers to held-out prompts, paired and labelled by the
   verifier; agreement of BLEU with 1..4 references, ROUGE-L, BLEU-ROUGE-L, a reward model
   (TRL RewardTrainer on the disjoint ``preference`` split), BLEU+RM and "longer wins".
3. **Training comparison** (claim 2): GRPO with the BLEU reward, GRPO with the reward model, and
   SFT on the references, on the same hard prompts with the same number of optimizer steps, for
   every seed; each model is evaluated greedily on held-out prompts (verifier pass rate, BLEU,
   length).

The summary goes to ``results/01_bleuberi/experiment_<scale>.json``; the notebook reads it.
Sizes per scale and the paper's GRPO fields: :mod:`alignkit.chapters.bleuberi.config`.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from alignkit.chapters.bleuberi.config import (
    CHAPTER,
    METHODS,
    PAPER_GRPO,
    ExperimentConfig,
    experiment_path,
    run_fields,
    sizes,
)
from alignkit.io import atomic_write_json, read_json
from alignkit.runtime import find_result, missing_result, runs_root
from alignkit.training import grpo_settings

# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------


def grpo_run_config(cfg: ExperimentConfig) -> dict:
    """The paper-critical GRPO fields one run trains with (recorded in the summary): the paper's
    algorithm (:data:`PAPER_GRPO`) and the sizes of ``cfg``, without bookkeeping."""
    merged = grpo_settings(paper=PAPER_GRPO, **run_fields(cfg))
    return {k: merged[k] for k in (*PAPER_GRPO, *run_fields(cfg))}


def _parts(out_dir: Path) -> Path:
    path = out_dir / "parts"
    path.mkdir(parents=True, exist_ok=True)
    return path


EVAL_BATCH = 50  # greedy/sampled sequences decoded together: 50 runs 1.8x faster than 16 on one CPU thread
AGREEMENT_ONLY = ("n_agree", "agree_samples", "rm_pairs")  # fields a training run does not depend on
TRAINING_ONLY = ("k_hard", "prompts_per_step", "lr", "seeds", "sft_seeds")  # fields the base model's stages ignore
# what selection ignores: all but model, pool, k_hard, lengths and references; a run ignores the seed list
SELECTION_IGNORES = (*AGREEMENT_ONLY, "prompts_per_step", "lr", "seeds", "sft_seeds", "n_eval", "n_unseen")
RUN_IGNORES = (*AGREEMENT_ONLY, "seeds", "sft_seeds")


def _cached(path: Path, compute, log, config: dict | None = None, ignore: tuple[str, ...] = ()):
    """Load ``path`` if it exists (and was made with ``config``, up to the ``ignore`` fields), else
    compute, save atomically and return it."""
    if path.exists():
        value = json.loads(path.read_text())
        strip = lambda c: {k: v for k, v in c.items() if k not in ignore}  # noqa: E731
        if config is not None and strip(value.get("config", config)) != strip(config):
            raise ValueError(f"{path} was made with another configuration ({value['config']}); "
                             "delete its folder or pass another --out-dir")
        log(f"[skip] {path.name} exists")
        return value
    t0 = time.time()
    value = compute()
    value["seconds"] = round(time.time() - t0, 1)
    if config is not None:
        value["config"] = config
    atomic_write_json(path, value)
    log(f"[done] {path.name} in {value['seconds']:.0f} s")
    return value


def _policy(name: str, lora: bool):
    from alignkit.models import load_policy, load_tokenizer

    return load_policy(name, lora=True if lora else None), load_tokenizer(name)


def stage_selection(cfg: ExperimentConfig) -> dict:
    """Hard selection over the first ``pool`` training prompts (the paper's sampler and rule)."""
    from alignkit.data import read_instruction_rows
    from alignkit.selection import select_hard_with_model
    from alignkit.training.rollout import pack_for_decoding

    rows = read_instruction_rows("train")[:cfg.pool]
    model, tok = _policy(cfg.model, lora=False)
    model = pack_for_decoding(model, EVAL_BATCH)
    prompts = [r["prompt"][0]["content"] for r in rows]
    refs = [r["references"][:cfg.n_refs] for r in rows]
    sel, outputs = select_hard_with_model(model, tok, prompts, refs, cfg.k_hard,
                                          max_new_tokens=cfg.max_completion_length, batch_size=EVAL_BATCH,
                                          progress=False)
    return {"indices": sel.indices, "scores": sel.scores, "threshold": sel.threshold, "outputs": outputs,
            "ids": [r["id"] for r in rows]}


def _agree_rows(cfg):
    """The agreement study's prompts: the last ``n_agree`` training prompts, outside the selection
    pool, so the evaluation can use every held-out prompt."""
    from alignkit.data import read_instruction_rows

    rows = read_instruction_rows("train")
    if cfg.pool + cfg.n_agree > len(rows):
        raise ValueError(f"pool {cfg.pool} + n_agree {cfg.n_agree} exceeds the {len(rows)} training prompts")
    return rows[len(rows) - cfg.n_agree:]


def _eval_rows(cfg):
    from alignkit.chapters.bleuberi.evaluation import evaluation_rows

    return evaluation_rows(cfg.n_eval, cfg.n_unseen, pool=cfg.pool, n_agree=cfg.n_agree)


def stage_base(cfg: ExperimentConfig) -> dict:
    """Base model: greedy held-out evaluation and sampled answers for the agreement pairs."""
    from alignkit.chapters.bleuberi.evaluation import evaluate_answers
    from alignkit.generation import greedy_completions, sample_completions
    from alignkit.training.rollout import pack_for_decoding

    model, tok = _policy(cfg.model, lora=False)
    model = pack_for_decoding(model, EVAL_BATCH)
    ev = _eval_rows(cfg)
    answers = greedy_completions(model, tok, [r["prompt"][0]["content"] for r in ev],
                                 max_new_tokens=cfg.max_completion_length, batch_size=EVAL_BATCH)
    ag = _agree_rows(cfg)
    samples = sample_completions(model, tok, [r["prompt"][0]["content"] for r in ag], n=cfg.agree_samples,
                                 max_new_tokens=cfg.max_completion_length, temperature=0.9, top_p=1.0,
                                 seed=1234, batch_size=EVAL_BATCH, progress=False)
    return {"eval": evaluate_answers(answers, ev), "answers": answers, "agree_samples": samples.texts}


def _rm_path(out_dir: Path) -> Path:
    return _parts(out_dir) / "rm_head.pt"


def load_or_train_rm(cfg: ExperimentConfig, out_dir: Path, log=print):
    """The reward model (frozen backbone + linear head); the head is saved, so it trains once."""
    import torch

    from alignkit.chapters.bleuberi.baselines import train_instruction_rm
    from alignkit.data import read_instruction_rows
    from alignkit.reward_model import load_reward_model

    path = _rm_path(out_dir)
    if path.exists():
        model, tok = load_reward_model(cfg.model, freeze_backbone=True, seed=0)
        state = torch.load(path, weights_only=True)
        with torch.no_grad():
            model.score.weight.copy_(state["weight"])
        model.eval()
        return model, tok, float(state["train_accuracy"])
    t0 = time.time()
    model, tok, acc = train_instruction_rm(read_instruction_rows("preference")[:cfg.rm_pairs],
                                           model_name=cfg.model, seed=0)
    tmp = path.with_suffix(".tmp")
    torch.save({"weight": model.score.weight.detach().cpu(), "train_accuracy": acc}, tmp)
    tmp.replace(path)
    log(f"[done] reward model in {time.time() - t0:.0f} s, training-pair accuracy {acc:.2f}")
    return model, tok, acc


def stage_agreement(cfg: ExperimentConfig, base: dict, out_dir: Path, log=print) -> dict:
    """The agreement table (claim 1) on verifier-labelled pairs of base-model answers."""
    from alignkit.chapters.bleuberi.agreement import agreement_table, metric_scores, verifier_pairs
    from alignkit.chapters.bleuberi.baselines import rm_scorer

    rows = _agree_rows(cfg)
    pairs = verifier_pairs(rows, base["agree_samples"], max_pairs_per_prompt=cfg.agree_samples * (cfg.agree_samples - 1) // 2)
    if not pairs:
        raise RuntimeError("no verifier-labelled pairs: every prompt's answers got equal verifier scores")
    model, tok, acc = load_or_train_rm(cfg, out_dir, log)
    scores = metric_scores(pairs, max_refs=4, rm_scorer=rm_scorer(model, tok))
    table, diffs = agreement_table(pairs, scores, n_boot=2000, seed=0)
    return {"table": table, "diffs": diffs, "n_pairs": len(pairs), "n_prompts": len({p["prompt_index"] for p in pairs}),
            "rm_train_accuracy": acc,
            "pairs": [{k: p[k] for k in ("prompt_index", "response_a", "response_b", "a_wins")} for p in pairs]}


def _hard_rows(cfg: ExperimentConfig, selection: dict) -> list[dict]:
    from alignkit.data import read_instruction_rows

    rows = read_instruction_rows("train")[:cfg.pool]
    return [{"prompt": rows[i]["prompt"], "references": rows[i]["references"][:cfg.n_refs]}
            for i in selection["indices"][:cfg.k_hard]]


def _curves(trainer) -> dict:
    from alignkit.training import log_frame

    frame = log_frame(trainer)
    keep = {"reward": "reward", "completions/mean_length": "length_tokens", "kl": "kl", "loss": "loss",
            # the bf16 sampler's mismatch and its importance weights (FastGRPOTrainer, where it corrects)
            "sampling/sampling_logp_difference/mean": "sampler_logp_gap",
            "sampling/importance_sampling_ratio/min": "is_weight_min",
            "sampling/importance_sampling_ratio/mean": "is_weight_mean"}
    return {"step": [int(s) for s in frame.index]} | {
        new: [float(v) for v in frame[old]] for old, new in keep.items() if old in frame}


def train_one(cfg: ExperimentConfig, method: str, seed: int, hard: list[dict], out_dir: Path, log=print,
              report_to: str = "none") -> dict:
    """Train one model (``grpo_bleu``, ``grpo_rm`` or ``sft``) with ``seed`` and evaluate it.

    ``report_to`` is where the trainer logs (``Scale.report_to``: TensorBoard event files under
    ``<out_dir>/<method>_seed<seed>/runs/`` at cpu and gpu scale, nothing at smoke)."""
    from datasets import Dataset

    from alignkit.chapters.bleuberi.baselines import rm_reward, sft_rows
    from alignkit.chapters.bleuberi.evaluation import evaluate_answers
    from alignkit.generation import greedy_completions
    from alignkit.rewards import make_text_reward
    from alignkit.runtime import seed_everything
    from alignkit.training import build_grpo_trainer, build_sft_trainer
    from alignkit.training.rollout import pack_for_decoding

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    seed_everything(seed)
    model, tok = _policy(cfg.model, lora=True)
    run_dir = out_dir / f"{method}_seed{seed}"
    if method == "sft":
        # the paper's SFT: completion-only loss, max_grad_norm 0.2 (lr 5e-6 full fine-tuning; here LoRA)
        trainer = build_sft_trainer(model, tok, sft_rows(hard, n_refs=cfg.n_refs), output_dir=str(run_dir),
                                    max_steps=cfg.steps, per_device_train_batch_size=cfg.prompts_per_step * cfg.n_refs,
                                    learning_rate=cfg.lr, max_grad_norm=0.2, seed=seed, report_to=report_to)
    else:
        reward = make_text_reward("bleu") if method == "grpo_bleu" else rm_reward(*load_or_train_rm(cfg, out_dir, log)[:2])
        trainer = build_grpo_trainer(model, [reward], Dataset.from_list(hard), output_dir=str(run_dir),
                                     paper=PAPER_GRPO, seed=seed, tokenizer=tok, disable_tqdm=True,
                                     report_to=report_to, **run_fields(cfg))
    trainer.train()
    curves = _curves(trainer)
    policy = trainer.model.merge_and_unload() if hasattr(trainer.model, "merge_and_unload") else trainer.model
    policy = pack_for_decoding(policy, EVAL_BATCH)
    ev = _eval_rows(cfg)
    answers = greedy_completions(policy, tok, [r["prompt"][0]["content"] for r in ev],
                                 max_new_tokens=cfg.max_completion_length, batch_size=EVAL_BATCH)
    return {"method": method, "seed": seed, "curves": curves, "eval": evaluate_answers(answers, ev),
            "answers": answers}


def summarise(runs: list[dict], base: dict) -> dict:
    """Per method: mean and 95% t-interval over seeds of pass rate, BLEU, constraint rate, length."""
    from alignkit.stats import mean_ci

    out = {"base": {k: [base["eval"][k], None, None]
                    for k in ("pass_rate", "bleu", "constraint_rate", "length_words")}}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        if mine:
            out[method] = {k: [None if np.isnan(v) else v for v in mean_ci([r["eval"][k] for r in mine])]
                           for k in ("pass_rate", "bleu", "constraint_rate", "length_words")}
            out[method]["seeds"] = [r["seed"] for r in mine]
    return out


def run_experiment(scale: str = "cpu", *, out_dir: str | Path | None = None, results_dir: str | Path | None = None,
                   log=print) -> dict:
    """Run (or resume) every stage at ``scale`` and write ``results/01_bleuberi/experiment_<scale>.json``."""
    import torch

    from alignkit.ledger import git_commit
    from alignkit.scale import get_scale

    cfg = sizes(scale)
    report_to = get_scale(scale).report_to  # TensorBoard at cpu/gpu, none at smoke
    out_dir = Path(out_dir) if out_dir else runs_root() / CHAPTER / scale
    path = Path(results_dir) / f"experiment_{scale}.json" if results_dir else experiment_path(scale)
    parts = _parts(out_dir)
    t0 = time.time()
    conf = json.loads(json.dumps(asdict(cfg)))  # as JSON stores it (tuples become lists)
    selection = _cached(parts / "selection.json", lambda: stage_selection(cfg), log, conf, SELECTION_IGNORES)
    base = _cached(parts / "base.json", lambda: stage_base(cfg), log, conf, TRAINING_ONLY)
    agree = _cached(parts / "agreement.json", lambda: stage_agreement(cfg, base, out_dir, log), log, conf,
                    TRAINING_ONLY)
    hard = _hard_rows(cfg, selection)
    runs = []
    for method, seed in cfg.runs():
        runs.append(_cached(parts / f"{method}_seed{seed}.json",
                            lambda m=method, s=seed: train_one(cfg, m, s, hard, out_dir, log, report_to),
                            log, conf, RUN_IGNORES))
    result = {"chapter": CHAPTER, "scale": scale, "commit": git_commit(), "config": asdict(cfg),
              "steps": cfg.steps, "grpo_config": grpo_run_config(cfg), "torch_threads": torch.get_num_threads(),
              "command": f"python -m alignkit.chapters.bleuberi.experiment --scale {scale}",
              "selection": {k: selection[k] for k in ("indices", "scores", "threshold", "ids")},
              "hard_examples": [{"prompt": h["prompt"][0]["content"], "reference": h["references"][0],
                                 "base_output": selection["outputs"][i]}
                                for h, i in zip(hard[:3], selection["indices"][:3], strict=False)],
              "agreement": {k: v for k, v in agree.items() if k != "pairs"},
              "base": {"eval": base["eval"], "answers": base["answers"]},
              "runs": runs, "summary": summarise(runs, base),
              "seconds": {"selection": selection["seconds"], "base": base["seconds"], "agreement": agree["seconds"],
                          "runs": sum(r["seconds"] for r in runs), "this_call": round(time.time() - t0, 1)}}
    result["seconds"]["total"] = round(sum(v for k, v in result["seconds"].items() if k != "this_call"), 1)
    atomic_write_json(path, result)
    log(f"[done] {path}")
    return result


def load_or_run(scale: str, *, rerun: bool = False, log=print) -> dict:
    """The experiment's summary at ``scale``, as the notebook reads it. ``rerun`` (and smoke,
    whose summary is git-ignored and takes a minute) runs the experiment; otherwise the summary
    comes from ``results/`` or the installed package's committed copy, and a missing one raises an
    error naming the command, rather than starting an 80-minute run unasked."""
    relative = f"{CHAPTER}/experiment_{scale}.json"
    found = experiment_path(scale) if scale == "smoke" else find_result(relative)
    if not rerun and found is not None and found.is_file():
        return read_json(found)
    if not rerun and scale != "smoke":
        raise missing_result(relative, f"python -m alignkit.chapters.bleuberi.experiment --scale {scale}")
    run_experiment(scale, log=log)
    return read_json(experiment_path(scale))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="BLEUBERI chapter experiment (agreement + training comparison)")
    parser.add_argument("--scale", default=None, help="smoke, cpu or gpu (default: ALIGNKIT_SCALE or cpu)")
    parser.add_argument("--out-dir", default=None, help="checkpoints and per-stage files (default runs/01_bleuberi/SCALE)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    import torch

    from alignkit.scale import current_scale, get_scale

    scale = get_scale(args.scale) if args.scale else current_scale()  # an unknown name: a clear error
    sizes(scale.name)  # and a scale this experiment does not size, before anything loads
    if args.threads:
        torch.set_num_threads(args.threads)
    run_experiment(scale.name, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
