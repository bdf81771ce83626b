"""Chapter 1 (BLEUBERI): the recipe task ``bleuberi``, instructions with references and the BLEU reward."""

from __future__ import annotations


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
