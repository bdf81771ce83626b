"""Chapter 1 (BLEUBERI): the paper's GRPO fields and the experiment's sizes per scale.

Two tables, each the one place for what it holds:

* :data:`PAPER_GRPO`: the GRPO fields of the released training script (``training/grpo.sh`` in
  lilakk/BLEUBERI, TRL 0.17), each with the paper's value; the experiment and the recipes
  ``01_bleuberi/{gpu,cluster}.yaml`` all take them from here.
* :data:`SIZES`: model, prompts, steps and lengths at ``smoke``, ``cpu`` and ``gpu`` scale, read
  with :func:`sizes` (cluster scale trains with the recipe instead).
* :data:`LIVE`: the short GRPO-BLEU run the notebook trains in front of the reader, read with
  :func:`live_sizes` (its group size, lengths and learning rate are the experiment's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alignkit.runtime import results_root, runs_root
from alignkit.scale import sizes_for

CHAPTER = "01_bleuberi"
METHODS = ("grpo_bleu", "grpo_rm", "sft")
METHOD_LABELS = {"base": "base model", "grpo_bleu": "GRPO-BLEU (BLEUBERI)", "grpo_rm": "GRPO-RM", "sft": "SFT"}

# lilakk/BLEUBERI training/grpo.sh (TRL 0.17): the fields that define the algorithm. Sizes, lengths,
# learning rate and schedule depend on the scale: see SIZES and the recipes.
PAPER_GRPO: dict = dict(
    num_generations=8,  # paper: G = 8
    temperature=0.9,  # paper: 0.9
    top_p=1.0,  # paper: 1.0 (TRL 0.17 default)
    top_k=50,  # paper: 50 (TRL 0.17 default; TRL 1.x defaults to 0 = off)
    beta=0.04,  # paper: not set -> 0.04 (TRL 0.17 default; TRL >= 0.19 defaults to 0)
    loss_type="bnpo",  # paper: bnpo (TRL 0.17 default; TRL 1.x defaults to dapo)
    scale_rewards="group",  # paper: scale_rewards=True, i.e. divide by the group std
    epsilon=0.2,  # paper: 0.2
    num_iterations=1,  # paper: 1 (on-policy)
    max_grad_norm=0.2,  # paper: 0.2
)


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
        n_agree, agree_samples: prompts (the last ``n_agree`` of the train split, never in the pool)
            and sampled answers each for the agreement pairs.
        rm_pairs: preference pairs (of 150) the reward model is fitted on.
        n_eval: held-out prompts for the evaluation (the first ``n_eval`` of the held-out split).
        n_unseen: training-split prompts added to the evaluation: rows ``pool .. pool + n_unseen``,
            outside the selection pool and the agreement tail, so no run ever sees them (the
            offline held-out split has only 150; see :func:`evaluation.evaluation_rows`).
        lr: learning rate of the LoRA adapter, the same for GRPO and SFT (paper: 1e-6 GRPO and
            5e-6 SFT, full fine-tuning).
        seeds: one GRPO-BLEU and one GRPO-RM run per seed.
        sft_seeds: SFT runs on the first ``sft_seeds`` of ``seeds`` only (default all): its
            comparison with GRPO-BLEU is decided by a gap far wider than the seed spread.
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
    n_unseen: int
    lr: float
    seeds: tuple[int, ...]
    sft_seeds: int | None = None

    def __post_init__(self):
        if self.sft_seeds is not None and not 1 <= self.sft_seeds <= len(self.seeds):
            raise ValueError(f"sft_seeds must be between 1 and the {len(self.seeds)} seeds, got {self.sft_seeds}")

    @property
    def steps(self) -> int:
        """Optimizer steps of every training run: one epoch over the hard subset."""
        return max(1, self.k_hard // self.prompts_per_step)

    def runs(self) -> list[tuple[str, int]]:
        """The ``(method, seed)`` training runs, seed by seed (SFT on the first ``sft_seeds`` only)."""
        n_sft = len(self.seeds) if self.sft_seeds is None else self.sft_seeds
        return [(method, seed) for i, seed in enumerate(self.seeds) for method in METHODS
                if method != "sft" or i < n_sft]


SIZES = {  # the experiment's sizes per scale, read with sizes()
    "smoke": ExperimentConfig(model="smollm2-135m", pool=4, k_hard=1, prompts_per_step=1, num_generations=4,
                              max_completion_length=16, n_refs=4, n_agree=6, agree_samples=3, rm_pairs=8,
                              n_eval=4, n_unseen=2, lr=5e-4, seeds=(0,)),
    # the powered design (see the notebook's "Design" section): 450 evaluation prompts paired across
    # methods and seeds, all 150 held-out plus 300 unseen training prompts (the first powered run, on
    # the 150 alone, left GRPO-BLEU vs GRPO-RM at +-0.064; as a pilot it projected +-0.037 for 450,
    # and the run measured +-0.063: a seed-level part the pilot's two agreeing seeds could not show;
    # taken as the third pilot, it projects +-0.047 for 5 seeds); 24 hard prompts (the lowest-BLEU 24
    # of 64), so every run takes 24 steps of 1 prompt x 8 completions (4 prompts a step, the paper's,
    # costs 4x a step on 2 cores); 5 seeds of the two GRPO arms, SFT on the first 2 (GRPO-BLEU vs SFT
    # was decided by -0.34 [-0.41, -0.28] with two); 70 min on 2 cores (AVX512-BF16), +-0.036 measured
    "cpu": ExperimentConfig(model="smollm2-135m", pool=64, k_hard=24, prompts_per_step=1, num_generations=8,
                            max_completion_length=48, n_refs=4, n_agree=64, agree_samples=4, rm_pairs=96,
                            n_eval=150, n_unseen=300, lr=5e-4, seeds=(0, 1, 2, 3, 4), sft_seeds=2),
    # untested here (no GPU): the same pipeline on one card with Qwen2.5-1.5B in 4-bit QLoRA
    "gpu": ExperimentConfig(model="Qwen/Qwen2.5-1.5B-Instruct", pool=450, k_hard=256, prompts_per_step=4,
                            num_generations=8, max_completion_length=256, n_refs=4, n_agree=75, agree_samples=8,
                            rm_pairs=150, n_eval=150, n_unseen=75, lr=5e-5, seeds=(0, 1, 2)),
}


def sizes(scale: str) -> ExperimentConfig:
    """The experiment's sizes at ``scale`` (``smoke``, ``cpu`` or ``gpu``)."""
    return sizes_for(SIZES, scale, owner="chapter 1's experiment",
                     hint="at cluster scale train with `python -m alignkit train 01_bleuberi/cluster.yaml`")


@dataclass(frozen=True)
class LiveRun:
    """Sizes of the notebook's live GRPO-BLEU run (section 3), small enough to watch.

    Attributes:
        pool: training prompts (the first ``pool`` of the experiment's pool) scored for hard selection.
        k_hard: hard prompts kept; the run takes one optimizer step per prompt.
        n_show: prompts whose greedy answers are printed before and after training.
    """

    pool: int
    k_hard: int
    n_show: int

    @property
    def steps(self) -> int:
        """Optimizer steps: one per hard prompt (one prompt x G completions a step)."""
        return self.k_hard


LIVE = {  # cpu: 12 prompts sampled once (~15 s) + 3 steps of 8 x 48 tokens (~20-40 s each on 2 cores)
    "smoke": LiveRun(pool=4, k_hard=1, n_show=2),
    "cpu": LiveRun(pool=12, k_hard=3, n_show=3),
    "gpu": LiveRun(pool=32, k_hard=8, n_show=3),
}


def live_sizes(scale: str) -> LiveRun:
    """The live run's sizes at ``scale`` (``smoke``, ``cpu`` or ``gpu``)."""
    return sizes_for(LIVE, scale, owner="chapter 1's live GRPO run",
                     hint="at cluster scale train with `python -m alignkit train 01_bleuberi/cluster.yaml`")


def run_fields(cfg: ExperimentConfig) -> dict:
    """The GRPO fields of one experiment run that depend on its sizes (the rest: :data:`PAPER_GRPO`)."""
    return dict(
        num_generations=cfg.num_generations,  # paper: G = 8
        per_device_train_batch_size=cfg.num_generations * cfg.prompts_per_step,  # paper: 8 x GA 4 = 4 prompts
        gradient_accumulation_steps=1,  # paper: 4 (cpu: one step = prompts_per_step groups)
        max_completion_length=cfg.max_completion_length,  # paper: 512 (cpu: 48)
        learning_rate=cfg.lr,  # paper: 1e-6 full fine-tuning (here a LoRA adapter)
        lr_scheduler_type="constant",  # paper: constant_with_warmup, warmup 5% (0 steps at cpu)
        warmup_steps=0,
        max_steps=cfg.steps,  # paper: 1 epoch over 5K prompts = 1,250 steps
    )


def experiment_path(scale: str) -> Path:
    """Where the summary of ``scale`` lives: ``results/01_bleuberi/experiment_<scale>.json``, except
    smoke, which goes to ``runs/01_bleuberi/smoke/`` (git-ignored: smoke numbers mean little)."""
    if scale == "smoke":
        return runs_root() / CHAPTER / "smoke" / "experiment_smoke.json"
    return results_root() / CHAPTER / f"experiment_{scale}.json"
