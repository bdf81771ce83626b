"""The chapter index: chapter id -> module, notebook, recipes, recipe tasks and paper GRPO fields.

This is the one table that ties the workbook together. ``alignkit.tasks`` fills its registry
from :func:`task_builders` and ``alignkit.recipe`` finds a chapter's paper-critical GRPO fields
with :func:`paper_grpo`; both import the chapter modules through the small functions below (plain
imports, loaded on first use so that ``import alignkit`` stays light), never by name.

Adding a chapter: a package or module under ``alignkit/chapters/``, a notebook, and one
:class:`Chapter` entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# recipes ship inside the package: alignkit/recipes/<chapter id>/<scale>.yaml (+ accelerate/, slurm/)
RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


def _start_here_tasks() -> dict[str, Callable]:
    from alignkit.chapters.start_here import addition_task, brevity_task

    return {"addition": addition_task, "brevity": brevity_task}


def _bleuberi_tasks() -> dict[str, Callable]:
    from alignkit.chapters.bleuberi.task import bleuberi_task

    return {"bleuberi": bleuberi_task}


def _bleuberi_grpo() -> dict:
    from alignkit.chapters.bleuberi.config import PAPER_GRPO

    return PAPER_GRPO


def _limr_tasks() -> dict[str, Callable]:
    from alignkit.chapters.limr.lm import limr_arithmetic_task, limr_hub_task

    return {"limr_arithmetic": limr_arithmetic_task, "limr_hub": limr_hub_task}


def _limr_grpo() -> dict:
    from alignkit.chapters.limr.config import PAPER_GRPO

    return PAPER_GRPO


def _kl_as_bayes_tasks() -> dict[str, Callable]:
    from alignkit.chapters.kl_as_bayes import keyword_task

    return {"keyword": keyword_task}


def _none() -> dict:
    return {}


@dataclass(frozen=True)
class Chapter:
    """One chapter of the workbook.

    Attributes:
        id: the chapter id, also the name of its notebook, results and recipes folders.
        title: the paper (or "start here").
        module: the chapter's own code under ``alignkit.chapters``.
        commands: the commands that make the chapter's experiment results (``{scale}`` is
            filled in), for the README and for a notebook that finds no results.
        tasks: returns the recipe tasks the chapter defines, ``{name: builder}``.
        paper_grpo: returns the paper's GRPO fields (with the paper's values in comments there).
    """

    id: str
    title: str
    module: str
    commands: tuple[str, ...] = ()
    tasks: Callable[[], dict[str, Callable]] = field(default=_none, repr=False)
    paper_grpo: Callable[[], dict] = field(default=_none, repr=False)

    @property
    def notebook(self) -> str:
        """The notebook's path relative to the repository root."""
        return f"notebooks/{self.id}.ipynb"

    def recipes(self) -> list[str]:
        """The chapter's recipes, relative to ``alignkit/recipes`` (e.g. ``01_bleuberi/gpu.yaml``)."""
        return sorted(f"{self.id}/{p.name}" for p in (RECIPES_DIR / self.id).glob("*.yaml"))


CHAPTERS: dict[str, Chapter] = {c.id: c for c in (
    Chapter("00_start_here", "start here: environment, scales, bundled model, GRPO end to end",
            "alignkit.chapters.start_here", tasks=_start_here_tasks),
    Chapter("01_bleuberi", "BLEUBERI: BLEU is a surprisingly effective reward for instruction following",
            "alignkit.chapters.bleuberi",
            commands=("python -m alignkit.chapters.bleuberi.experiment --scale {scale}",),
            tasks=_bleuberi_tasks, paper_grpo=_bleuberi_grpo),
    Chapter("02_limr", "LIMR: Less is More for RL Scaling", "alignkit.chapters.limr",
            commands=("python -m alignkit.chapters.limr.toy --scale {scale}",
                      "python -m alignkit.chapters.limr.lm --scale {scale}"),
            tasks=_limr_tasks, paper_grpo=_limr_grpo),
    Chapter("03_kl_as_bayes", "RL with KL penalties is better viewed as Bayesian inference",
            "alignkit.chapters.kl_as_bayes", tasks=_kl_as_bayes_tasks),
    Chapter("04_best_of_n", "Asymptotics of language model alignment, and best-of-n guarantees",
            "alignkit.chapters.best_of_n"),
    Chapter("05_rlhf_trilemma", "Position: the RLHF trilemma", "alignkit.chapters.trilemma"),
)}


def get_chapter(chapter_id: str) -> Chapter:
    """The chapter ``chapter_id``; an unknown id raises ``ValueError`` listing the chapters."""
    if chapter_id not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter_id!r}; chapters: {', '.join(CHAPTERS)}")
    return CHAPTERS[chapter_id]


def task_builders() -> dict[str, Callable]:
    """Every recipe task of every chapter, ``{name: builder}``; two chapters may not share a name."""
    out: dict[str, Callable] = {}
    for chapter in CHAPTERS.values():
        for name, builder in chapter.tasks().items():
            if name in out:
                raise ValueError(f"task {name!r} is defined by two chapters")
            out[name] = builder
    return out


def paper_grpo(chapter_id: str) -> dict:
    """The paper-critical GRPO fields of chapter ``chapter_id`` (``{}`` when it has none)."""
    return dict(get_chapter(chapter_id).paper_grpo())
