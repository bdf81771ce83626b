"""Chapter 1 (BLEUBERI): the recipe task ``bleuberi``, instructions with references and the BLEU reward."""

from __future__ import annotations


def bleuberi_pool(source: str = "offline", n_refs: int = 4, references: tuple[str, ...] = ("gold",)) -> list[dict]:
    """Chapter 1's prompt pool: rows with ``id``, ``prompt`` (messages) and ``references``.

    ``source="offline"`` is the project's instruction set (``train`` split, ``n_refs``
    references each); ``source="hub"`` is ``yapeichang/BLEUBERI-Tulu3-50k`` with the named
    ``references`` (the paper's Table 1 uses ``("gold",)``); ``source="auto"`` is hub unless
    ``HF_HUB_OFFLINE`` is set, then offline (and says so). In the data set's own order.
    """
    from alignkit.data import load_bleuberi, read_instruction_rows

    if source == "auto":
        from alignkit.runtime import hub_offline

        source = "offline" if hub_offline() else "hub"
        if source == "offline":
            print("bleuberi task: HF_HUB_OFFLINE is set, using the offline instruction set")
    if source == "offline":
        return [{"id": r["id"], "prompt": r["prompt"], "references": r["references"][:n_refs]}
                for r in read_instruction_rows("train")]
    if source == "hub":
        return load_bleuberi(list(references)).select_columns(["id", "prompt", "references"]).to_list()
    raise ValueError(f"unknown source {source!r}; accepted: offline, hub, auto")


def bleuberi_task(n_train: int = 600, seed: int = 0, source: str = "offline", n_refs: int = 4,
                  references: tuple[str, ...] = ("gold",), subset: str | None = None):
    """Chapter 1's GRPO task: instructions with a ``references`` column and the BLEU reward.

    Without ``subset``: ``n_train`` prompts of :func:`bleuberi_pool` (``source``, ``n_refs``,
    ``references``), shuffled with ``seed``. With ``subset`` (a file written by ``python -m
    alignkit select RECIPE.yaml``, relative to the workbook root): the hard prompts selected
    there, as the paper trains on (a missing file is an error that names the command).
    The reward is BLEUBERI's (``make_text_reward("bleu")``).
    """
    from datasets import Dataset

    from alignkit.rewards import make_text_reward

    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    if subset:
        from alignkit.chapters.bleuberi.hard_subset import read_subset

        rows = read_subset(subset)
    else:
        rows = bleuberi_pool(source, n_refs, references)
    data = Dataset.from_list([{"prompt": r["prompt"], "references": r["references"]} for r in rows])
    data = data.shuffle(seed=seed).select(range(min(n_train, len(data))))
    return data, [make_text_reward("bleu")]
