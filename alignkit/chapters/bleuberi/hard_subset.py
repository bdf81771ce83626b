"""Chapter 1 (BLEUBERI): the hard-prompt subset a recipe trains on, ``python -m alignkit select``.

The released pipeline (lilakk/BLEUBERI ``training/create_training_data.py grpo --selection_mode
hard``) samples one answer per pool prompt from the *base* model (temperature 0.7, top_p 0.9,
seed 42, 512 new tokens, the user message in the model's chat template), scores it with BLEU
against the references (the whole stripped answer) and keeps the k lowest; GRPO then trains on
those k. Here a recipe's ``select`` section holds those settings and ``task.subset`` names the
file; :func:`select_subset` writes it (atomically, with a manifest beside it), and the
``bleuberi`` task reads it. Sampling runs in vLLM where it is installed and a GPU is present,
else in batched transformers generation; answers are cached chunk by chunk, so an interrupted
run resumes, and a finished subset with the same settings is left as it is.
"""

from __future__ import annotations

import json
from pathlib import Path

from alignkit.io import atomic_write_json, atomic_write_text

# the select section of a recipe: its keys and the released values (create_training_data.py/.sh)
SELECT_DEFAULTS = {
    "k": 5000,               # paper: --num_examples 5000
    "pool": None,            # how many pool prompts to score (None: all; paper: the 50K)
    "max_new_tokens": 512,   # paper: --inference_max_new_tokens 512
    "temperature": 0.7,      # paper: 0.7
    "top_p": 0.9,            # paper: 0.9
    "seed": 42,              # paper: 42
    "metric": "bleu",        # paper: --metric bleu
    "mode": "hard",          # paper: --selection_mode hard (k lowest)
    "backend": "auto",       # auto | vllm | transformers
    "batch_size": 16,        # transformers: sequences per generate call
    "chunk": 256,            # prompts per cached chunk (resume granularity)
}
BACKENDS = ("auto", "vllm", "transformers")
CACHE_SUFFIX, MANIFEST_SUFFIX = ".outputs.jsonl", ".manifest.json"


def subset_path(subset: str | Path) -> Path:
    """``task.subset`` as a path: absolute as given, relative to the workbook root otherwise
    (``alignkit.runtime.repo_root``), so ``select`` and ``train`` agree from any folder."""
    from alignkit.runtime import repo_root

    path = Path(subset).expanduser()
    return path if path.is_absolute() else repo_root() / path


def missing_subset_error(path: Path, recipe_name: str = "RECIPE.yaml") -> FileNotFoundError:
    """The error of a recipe whose hard subset has not been selected yet."""
    return FileNotFoundError(
        f"task.subset {str(path)!r} does not exist: select it first with `python -m alignkit select "
        f"{recipe_name}` (scores the pool with the base model, keeps the k lowest-BLEU prompts), or "
        "train on shuffled pool prompts with --task.subset null")


def read_subset(subset: str | Path) -> list[dict]:
    """The rows (``id``, ``prompt``, ``references``, ``score``) of a selected subset."""
    path = subset_path(subset)
    if not path.is_file():
        raise missing_subset_error(path)
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    if not rows:
        raise ValueError(f"task.subset {str(path)!r} is empty; rerun python -m alignkit select with --force")
    return rows


def select_settings(recipe: dict) -> dict:
    """The selection's settings from a loaded recipe: the ``select`` section over
    :data:`SELECT_DEFAULTS`, the base model (``model.name``) and the pool (the task's source)."""
    task = recipe.get("task") or {}
    if task.get("name") != "bleuberi":
        raise ValueError(f"python -m alignkit select needs a recipe with task.name bleuberi, got "
                         f"{task.get('name')!r}")
    if not task.get("subset"):
        raise ValueError("the recipe has no task.subset: name the file the selection writes, e.g. "
                         "--task.subset runs/01_bleuberi/selected/hard.jsonl")
    settings = {**SELECT_DEFAULTS, **(recipe.get("select") or {})}
    unknown = sorted(set(settings) - set(SELECT_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown key(s) {[f'select.{k}' for k in unknown]}; valid: {list(SELECT_DEFAULTS)}")
    for key in ("k", "max_new_tokens", "seed", "batch_size", "chunk") + (("pool",) if settings["pool"] is not None else ()):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "seed" else 1):
            raise ValueError(f"select.{key} must be a positive int, got {value!r}")
    if settings["backend"] not in BACKENDS:
        raise ValueError(f"select.backend must be one of {', '.join(BACKENDS)}, got {settings['backend']!r}")
    settings["model"] = recipe["model"]["name"]
    settings["pool_source"] = {k: task.get(k) for k in ("source", "n_refs", "references") if k in task}
    return settings


def _compared(settings: dict) -> dict:
    """The settings that decide the subset (how it was computed, backend and batching aside)."""
    return {k: v for k, v in settings.items() if k not in ("backend", "batch_size", "chunk", "pool_size")}


def _pick_backend(backend: str) -> str:
    import importlib.util

    import torch

    if backend != "auto":
        return backend
    return "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "transformers"


class _Sampler:
    """One sampled answer per prompt from the base model, chunk by chunk (vLLM or transformers).

    Every prompt's sample depends only on the seed and its pool position (vLLM: a per-request
    seed; transformers: one seed per chunk), so a resumed run equals an uninterrupted one.
    """

    def __init__(self, settings: dict):
        self.settings, self.backend = settings, _pick_backend(settings["backend"])
        if self.backend == "vllm":
            from vllm import LLM

            from alignkit.runtime import vllm_dtype

            self.llm = LLM(model=settings["model"], dtype=vllm_dtype(), seed=settings["seed"])
        else:
            from alignkit.models import load_policy, load_tokenizer

            self.model = load_policy(settings["model"], seed=settings["seed"])
            self.tokenizer = load_tokenizer(settings["model"])

    def __call__(self, prompts: list[str], start: int) -> list[str]:
        s = self.settings
        if self.backend == "vllm":
            from vllm import SamplingParams

            params = [SamplingParams(temperature=s["temperature"], top_p=s["top_p"], max_tokens=s["max_new_tokens"],
                                     seed=s["seed"] + start + i) for i in range(len(prompts))]
            outputs = self.llm.chat([[{"role": "user", "content": p}] for p in prompts], params,
                                    add_generation_prompt=True, use_tqdm=False)
            return [o.outputs[0].text.strip() for o in outputs]
        from alignkit.selection import generate_base_outputs

        return generate_base_outputs(self.model, self.tokenizer, prompts, max_new_tokens=s["max_new_tokens"],
                                     temperature=s["temperature"], top_p=s["top_p"], seed=s["seed"] + start,
                                     batch_size=s["batch_size"], progress=False)


def _read_cache(path: Path, settings: dict) -> dict[int, str]:
    """Answers already sampled with these settings (pool index -> answer); {} when none match."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        lines = [json.loads(line) for line in f if line.strip()]
    if not lines or lines[0].get("settings") != _compared(settings):
        return {}
    return {row["i"]: row["output"] for row in lines[1:]}


def select_subset(recipe: dict, *, recipe_name: str = "RECIPE.yaml", force: bool = False, log=print) -> Path:
    """Score the recipe's pool with its base model and write the hard subset to ``task.subset``.

    Returns the subset's path. A subset already written with the same settings is kept (and
    said so); one written with other settings is refused, naming the fields, unless ``force``.
    Writes ``<subset>.manifest.json`` (model, pool size, k, sampler, commit) beside it.
    """
    from tqdm.auto import tqdm

    from alignkit.chapters.bleuberi.task import bleuberi_pool
    from alignkit.ledger import git_commit
    from alignkit.selection import score_outputs, select_by_score

    settings = select_settings(recipe)
    path = subset_path(recipe["task"]["subset"])
    manifest_path = path.with_name(path.name + MANIFEST_SUFFIX)
    if path.is_file() and manifest_path.is_file() and not force:
        done = json.loads(manifest_path.read_text()).get("settings", {})
        if done == _compared(settings):
            log(f"select: {path} already holds this selection (k = {settings['k']}); nothing to do")
            return path
        differ = sorted(k for k in set(done) | set(_compared(settings)) if done.get(k) != settings.get(k))
        raise ValueError(f"{path} was selected with other settings ({', '.join(differ)}); pass --force to "
                         "select again, or point task.subset at another file")
    pool = bleuberi_pool(**settings["pool_source"])
    if settings["pool"] is not None:
        pool = pool[:settings["pool"]]
    if settings["k"] > len(pool):
        raise ValueError(f"select.k = {settings['k']} but the pool has {len(pool)} prompts")
    settings["pool_size"] = len(pool)
    cache = path.with_name(path.name + CACHE_SUFFIX)
    outputs = {} if force else _read_cache(cache, settings)
    if not outputs:
        atomic_write_text(cache, json.dumps({"settings": _compared(settings)}) + "\n")
    todo = [i for i in range(len(pool)) if i not in outputs]
    if todo:
        log(f"select: sampling {len(todo)} of {len(pool)} pool prompts with {settings['model']}"
            + (f" ({len(outputs)} cached)" if outputs else ""))
        sampler = _Sampler(settings)
        chunk = settings["chunk"]
        starts = sorted({i - i % chunk for i in todo})
        with open(cache, "a", encoding="utf-8") as f:
            for start in tqdm(starts, desc="select: sampling chunks"):
                idx = [i for i in range(start, min(start + chunk, len(pool))) if i not in outputs]
                texts = sampler([pool[i]["prompt"][0]["content"] for i in idx], start)
                for i, text in zip(idx, texts, strict=True):
                    outputs[i] = text
                    f.write(json.dumps({"i": i, "output": text}) + "\n")
                f.flush()
        backend = sampler.backend
    else:
        backend = "cached"
    answers = [outputs[i] for i in range(len(pool))]
    scores = score_outputs(answers, [row["references"] for row in pool], settings["metric"])
    chosen = select_by_score(scores, settings["k"], settings["mode"], seed=settings["seed"], metric=settings["metric"])
    # written as released: the kept prompts re-sorted by score, highest first (stable)
    kept = sorted(chosen.indices, key=lambda i: -scores[i])
    lines = [json.dumps({"id": pool[i].get("id", str(i)), "prompt": pool[i]["prompt"],
                         "references": pool[i]["references"], "score": scores[i], "base_output": answers[i]})
             for i in kept]
    atomic_write_text(path, "\n".join(lines) + "\n")
    atomic_write_json(manifest_path, {
        "settings": _compared(settings), "model": settings["model"], "pool_size": len(pool), "k": settings["k"],
        "sampler": {"backend": backend, "temperature": settings["temperature"], "top_p": settings["top_p"],
                    "seed": settings["seed"], "max_new_tokens": settings["max_new_tokens"]},
        "threshold": chosen.threshold, "mean_score_kept": sum(chosen.selected_scores) / settings["k"],
        "mean_score_pool": sum(scores) / len(scores), "commit": git_commit(), "recipe": recipe_name})
    log(f"select: kept {settings['k']} of {len(pool)} prompts (BLEU <= {chosen.threshold:.4f}) -> {path}")
    return path
