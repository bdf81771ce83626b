"""Chapter 1's experiment: the agreement study and GRPO-BLEU vs GRPO-RM vs SFT, end to end.

    python -m alignkit.experiments.bleuberi --scale cpu      # ~40 min on one CPU thread
    python -m alignkit.experiments.bleuberi --scale smoke    # ~1-2 min, every code path

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
The task ``bleuberi`` (for recipes) is registered at the bottom of this module.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alignkit.io import atomic_write_json
from alignkit.tasks import register_task

CHAPTER = "01_bleuberi"
METHODS = ("grpo_bleu", "grpo_rm", "sft")
REPO = Path(__file__).resolve().parents[2]
METHOD_LABELS = {"base": "base model", "grpo_bleu": "GRPO-BLEU (BLEUBERI)", "grpo_rm": "GRPO-RM", "sft": "SFT"}


@dataclass(frozen=True)
class ExperimentConfig:
    """Sizes of the experiment at one scale (the paper's values in the field comments).

    Attributes:
        model: policy (and reward-model backbone) short name or hub id.
        pool: training prompts scored for hard selection (paper: 50,000).
        k_hard: hard prompts kept (paper: 5,000); GRPO and SFT run one epoch over them.
        prompts_per_step: prompts per optimizer step (paper: 4).
        num_generations: GRPO group size G (paper: 8).
        max_completion_length: new tokens per completion, also in evaluation (paper: 512).
        n_refs: references per prompt in the BLEU reward and SFT (paper Table 1: 1, gold).
        n_agree, agree_samples: held-out prompts and sampled answers each for the agreement pairs.
        rm_pairs: preference pairs (of 150) the reward model is fitted on.
        n_eval: held-out prompts for the evaluation (disjoint from the agreement prompts).
        lr: learning rate of the LoRA adapter, the same for GRPO and SFT (paper: 1e-6 GRPO and
            5e-6 SFT, full fine-tuning).
        seeds: one GRPO-BLEU, GRPO-RM and SFT run per seed.
    """

    model: str
    pool: int
    k_hard: int
    prompts_per_step: int
    num_generations: int
    max_completion_length: int
    n_refs: int
    n_agree: int
    agree_samples: int
    rm_pairs: int
    n_eval: int
    lr: float
    seeds: tuple[int, ...]

    @property
    def steps(self) -> int:
        """Optimizer steps of every training run: one epoch over the hard subset."""
        return max(1, self.k_hard // self.prompts_per_step)


CONFIGS = {
    "smoke": ExperimentConfig(model="smollm2-135m", pool=4, k_hard=1, prompts_per_step=1, num_generations=4,
                              max_completion_length=16, n_refs=4, n_agree=6, agree_samples=3, rm_pairs=8,
                              n_eval=4, lr=5e-4, seeds=(0,)),
    # sized for ~30 min on 2 quiet CPU cores: 16 hard prompts (the lowest-BLEU quarter of 64), so
    # every run takes 16 steps of 8 completions
    "cpu": ExperimentConfig(model="smollm2-135m", pool=64, k_hard=16, prompts_per_step=1, num_generations=8,
                            max_completion_length=48, n_refs=4, n_agree=64, agree_samples=4, rm_pairs=96,
                            n_eval=32, lr=5e-4, seeds=(0, 1, 2)),
    # untested here (no GPU): the same pipeline on one card with Qwen2.5-1.5B in 4-bit QLoRA
    "gpu": ExperimentConfig(model="Qwen/Qwen2.5-1.5B-Instruct", pool=600, k_hard=256, prompts_per_step=4,
                            num_generations=8, max_completion_length=256, n_refs=4, n_agree=75, agree_samples=8,
                            rm_pairs=150, n_eval=75, lr=5e-5, seeds=(0, 1, 2)),
}


def get_config(scale: str) -> ExperimentConfig:
    """The experiment sizes for ``scale``; cluster scale uses the recipes instead."""
    if scale not in CONFIGS:
        raise ValueError(f"no experiment config for scale {scale!r}; accepted: {', '.join(CONFIGS)} "
                         "(cluster scale: train with `python -m alignkit train 01_bleuberi/cluster.yaml`)")
    return CONFIGS[scale]


def experiment_path(scale: str) -> Path:
    """Where the summary of ``scale`` lives: ``results/01_bleuberi/experiment_<scale>.json``, except
    smoke, which goes to ``runs/01_bleuberi/smoke/`` (git-ignored: smoke numbers mean little)."""
    if scale == "smoke":
        return REPO / "runs" / CHAPTER / "smoke" / "experiment_smoke.json"
    return REPO / "results" / CHAPTER / f"experiment_{scale}.json"


def grpo_overrides(cfg: ExperimentConfig) -> dict:
    """Every paper-critical GRPOConfig field, set explicitly (TRL's defaults drift between versions)."""
    return dict(
        num_generations=cfg.num_generations,  # paper: G = 8
        per_device_train_batch_size=cfg.num_generations * cfg.prompts_per_step,  # paper: 8 x GA 4 = 4 prompts
        gradient_accumulation_steps=1,  # paper: 4 (cpu: one step = prompts_per_step groups)
        temperature=0.9,  # paper: 0.9
        top_p=1.0,  # paper: 1.0 (TRL 0.17 default)
        top_k=50,  # paper: 50 (TRL 0.17 default; TRL 1.x defaults to 0 = off)
        beta=0.04,  # paper: not set -> 0.04 (TRL 0.17 default; TRL >= 0.19 defaults to 0)
        loss_type="bnpo",  # paper: bnpo (TRL 0.17 default; TRL 1.x defaults to dapo)
        scale_rewards="group",  # paper: scale_rewards=True, i.e. divide by the group std
        epsilon=0.2,  # paper: 0.2
        num_iterations=1,  # paper: 1 (on-policy)
        max_completion_length=cfg.max_completion_length,  # paper: 512 (cpu: 48)
        learning_rate=cfg.lr,  # paper: 1e-6 full fine-tuning (here a LoRA adapter)
        lr_scheduler_type="constant",  # paper: constant_with_warmup, warmup 5% (0 steps at cpu)
        warmup_steps=0,
        max_grad_norm=0.2,  # paper: 0.2
        max_steps=cfg.steps,  # paper: 1 epoch over 5K prompts = 1,250 steps
    )


# ---------------------------------------------------------------------------------------------
# stages
# ---------------------------------------------------------------------------------------------


def _parts(out_dir: Path) -> Path:
    path = out_dir / "parts"
    path.mkdir(parents=True, exist_ok=True)
    return path


AGREEMENT_ONLY = ("n_agree", "agree_samples", "rm_pairs")  # fields a training run does not depend on
TRAINING_ONLY = ("k_hard", "prompts_per_step", "lr", "seeds")  # fields the base model's stages ignore


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

    rows = read_instruction_rows("train")[:cfg.pool]
    model, tok = _policy(cfg.model, lora=False)
    prompts = [r["prompt"][0]["content"] for r in rows]
    refs = [r["references"][:cfg.n_refs] for r in rows]
    sel, outputs = select_hard_with_model(model, tok, prompts, refs, cfg.k_hard,
                                          max_new_tokens=cfg.max_completion_length, progress=False)
    return {"indices": sel.indices, "scores": sel.scores, "threshold": sel.threshold, "outputs": outputs,
            "ids": [r["id"] for r in rows]}


def _agree_rows(cfg):
    from alignkit.data import read_instruction_rows

    return read_instruction_rows("heldout")[cfg.n_eval:cfg.n_eval + cfg.n_agree]


def _eval_rows(cfg):
    from alignkit.data import read_instruction_rows

    return read_instruction_rows("heldout")[:cfg.n_eval]


def stage_base(cfg: ExperimentConfig) -> dict:
    """Base model: greedy held-out evaluation and sampled answers for the agreement pairs."""
    from alignkit.bleuberi import evaluate_answers, greedy_answers
    from alignkit.generation import sample_completions

    model, tok = _policy(cfg.model, lora=False)
    ev = _eval_rows(cfg)
    answers = greedy_answers(model, tok, [r["prompt"][0]["content"] for r in ev],
                             max_new_tokens=cfg.max_completion_length)
    ag = _agree_rows(cfg)
    samples = sample_completions(model, tok, [r["prompt"][0]["content"] for r in ag], n=cfg.agree_samples,
                                 max_new_tokens=cfg.max_completion_length, temperature=0.9, top_p=1.0,
                                 seed=1234, progress=False)
    return {"eval": evaluate_answers(answers, ev), "answers": answers, "agree_samples": samples.texts}


def _rm_path(out_dir: Path) -> Path:
    return _parts(out_dir) / "rm_head.pt"


def load_or_train_rm(cfg: ExperimentConfig, out_dir: Path, log=print):
    """The reward model (frozen backbone + linear head); the head is saved, so it trains once."""
    import torch

    from alignkit.bleuberi import train_instruction_rm
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
    from alignkit.bleuberi import agreement_table, metric_scores, rm_scorer, verifier_pairs

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
    keep = {"reward": "reward", "completions/mean_length": "length_tokens", "kl": "kl", "loss": "loss"}
    return {"step": [int(s) for s in frame.index]} | {
        new: [float(v) for v in frame[old]] for old, new in keep.items() if old in frame}


def train_one(cfg: ExperimentConfig, method: str, seed: int, hard: list[dict], out_dir: Path, log=print) -> dict:
    """Train one model (``grpo_bleu``, ``grpo_rm`` or ``sft``) with ``seed`` and evaluate it."""
    from datasets import Dataset

    from alignkit.bleuberi import (
        build_sft_trainer,
        evaluate_answers,
        greedy_answers,
        rm_reward,
        sft_rows,
    )
    from alignkit.rewards import make_text_reward
    from alignkit.runtime import seed_everything
    from alignkit.scale import current_scale
    from alignkit.training import build_grpo_trainer

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHODS)}")
    seed_everything(seed)
    model, tok = _policy(cfg.model, lora=True)
    run_dir = out_dir / f"{method}_seed{seed}"
    if method == "sft":
        trainer = build_sft_trainer(model, tok, sft_rows(hard, n_refs=cfg.n_refs), output_dir=str(run_dir),
                                    max_steps=cfg.steps, batch_size=cfg.prompts_per_step * cfg.n_refs,
                                    learning_rate=cfg.lr, seed=seed)
    else:
        reward = make_text_reward("bleu") if method == "grpo_bleu" else rm_reward(*load_or_train_rm(cfg, out_dir, log)[:2])
        scale = current_scale().replace(model=cfg.model)
        trainer = build_grpo_trainer(model, [reward], Dataset.from_list(hard), scale=scale, output_dir=str(run_dir),
                                     seed=seed, tokenizer=tok, disable_tqdm=True,
                                     **{k: v for k, v in grpo_overrides(cfg).items() if k != "beta"},
                                     beta=grpo_overrides(cfg)["beta"])
    trainer.train()
    curves = _curves(trainer)
    policy = trainer.model.merge_and_unload() if hasattr(trainer.model, "merge_and_unload") else trainer.model
    ev = _eval_rows(cfg)
    answers = greedy_answers(policy, tok, [r["prompt"][0]["content"] for r in ev],
                             max_new_tokens=cfg.max_completion_length)
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

    cfg = get_config(scale)
    out_dir = Path(out_dir) if out_dir else REPO / "runs" / CHAPTER / scale
    path = Path(results_dir) / f"experiment_{scale}.json" if results_dir else experiment_path(scale)
    parts = _parts(out_dir)
    t0 = time.time()
    conf = json.loads(json.dumps(asdict(cfg)))  # as JSON stores it (tuples become lists)
    selection = _cached(parts / "selection.json", lambda: stage_selection(cfg), log, conf, AGREEMENT_ONLY)
    base = _cached(parts / "base.json", lambda: stage_base(cfg), log, conf, TRAINING_ONLY)
    agree = _cached(parts / "agreement.json", lambda: stage_agreement(cfg, base, out_dir, log), log, conf,
                    TRAINING_ONLY)
    hard = _hard_rows(cfg, selection)
    runs = []
    for seed in cfg.seeds:
        for method in METHODS:
            runs.append(_cached(parts / f"{method}_seed{seed}.json",
                                lambda m=method, s=seed: train_one(cfg, m, s, hard, out_dir, log), log, conf,
                                AGREEMENT_ONLY))
    result = {"chapter": CHAPTER, "scale": scale, "commit": git_commit(), "config": asdict(cfg),
              "steps": cfg.steps, "grpo_config": grpo_overrides(cfg), "torch_threads": torch.get_num_threads(),
              "command": f"python -m alignkit.experiments.bleuberi --scale {scale}",
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


# ---------------------------------------------------------------------------------------------
# the recipe task
# ---------------------------------------------------------------------------------------------


@register_task("bleuberi")
def bleuberi_task(n_train: int = 600, seed: int = 0, source: str = "offline", n_refs: int = 4,
                  references: tuple[str, ...] = ("gold",)):
    """Chapter 1's GRPO task: instructions with a ``references`` column and the BLEU reward.

    ``source="offline"`` uses the project's instruction set (``train`` split, ``n_refs``
    references each); ``source="hub"`` loads ``yapeichang/BLEUBERI-Tulu3-50k`` with the named
    ``references`` (the paper's Table 1 uses ``("gold",)``); ``source="auto"`` is hub unless
    ``HF_HUB_OFFLINE`` is set, then offline (and says so). Rows are shuffled with ``seed``.
    """
    from datasets import Dataset

    from alignkit.data import load_bleuberi, read_instruction_rows
    from alignkit.rewards import make_text_reward

    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    if source == "auto":
        from alignkit.runtime import hub_offline

        source = "offline" if hub_offline() else "hub"
        if source == "offline":
            print("bleuberi task: HF_HUB_OFFLINE is set, using the offline instruction set")
    if source == "offline":
        rows = [{"prompt": r["prompt"], "references": r["references"][:n_refs]} for r in read_instruction_rows("train")]
        data = Dataset.from_list(rows)
    elif source == "hub":
        data = load_bleuberi(list(references)).select_columns(["prompt", "references"])
    else:
        raise ValueError(f"unknown source {source!r}; accepted: offline, hub, auto")
    data = data.shuffle(seed=seed).select(range(min(n_train, len(data))))
    return data, [make_text_reward("bleu")]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="BLEUBERI chapter experiment (agreement + training comparison)")
    parser.add_argument("--scale", default=None, help="smoke, cpu or gpu (default: ALIGNKIT_SCALE or cpu)")
    parser.add_argument("--out-dir", default=None, help="checkpoints and per-stage files (default runs/01_bleuberi/SCALE)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    import os

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    scale = args.scale or os.environ.get("ALIGNKIT_SCALE") or "cpu"
    os.environ["ALIGNKIT_SCALE"] = scale if scale in ("smoke", "cpu", "gpu", "cluster") else "cpu"
    run_experiment(scale, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
