"""Dataset loaders: the hub data sets when online, the project's own data offline, one schema.

Every loader returns a ``datasets.Dataset`` whose rows have at least

- ``prompt``: the conversation to answer, ``[{"role": "user", "content": ...}]`` (TRL's
  conversational format, so ``GRPOTrainer`` applies the chat template);
- ``references``: a list of reference answers (what the BLEU reward compares against).

Chapter 1 (BLEUBERI) introduces them: :func:`load_bleuberi` reads
``yapeichang/BLEUBERI-Tulu3-50k`` (online, or a local file of the same schema), and
:func:`load_instructions` reads the offline instruction set under ``data/instructions/``.
"""

from __future__ import annotations

import json
from pathlib import Path

from alignkit.runtime import data_root, hub_offline

# ---------------------------------------------------------------------------------------------
# BLEUBERI-Tulu3-50k (chapter 1)
#
# Schema of the hub data set, as the released code reads it (training/create_training_data.py):
# ``id``, ``source``, ``messages`` (the Tulu 3 conversation), optionally ``prompt``, and one
# ``ref_output_<model>`` column per reference: ``ref_output_gold`` (Tulu 3's first assistant
# turn) and the synthetic ones (claude-3-7-sonnet, deepseek-chat-v3, gemini-2.5-pro, o4-mini,
# Llama-3.1-8B-Instruct). Prompt = the first user turn; a row lacking a requested reference is
# dropped, as in the released code.
# ---------------------------------------------------------------------------------------------

BLEUBERI_HUB_ID = "yapeichang/BLEUBERI-Tulu3-50k"
REF_PREFIX = "ref_output_"


def _first_turn(messages, role: str) -> str | None:
    """The content of the first message with ``role`` in ``messages``, or None."""
    for m in messages or []:
        if m.get("role") == role:
            return m.get("content")
    return None


def load_raw(hub_id: str, data_files: str | Path | None = None, *, split: str = "train", offline_hint: str = ""):
    """A hub data set as it is, or a local JSON/JSONL file of the same schema when ``data_files``
    is given (tests use fixtures). Offline (``HF_HUB_OFFLINE``) without ``data_files`` it raises a
    ``RuntimeError`` naming the data set, followed by ``offline_hint``.
    """
    import datasets

    if data_files is not None:
        return datasets.load_dataset("json", data_files=str(data_files), split="train")
    if hub_offline():
        raise RuntimeError(f"{hub_id} needs the Hugging Face hub, but HF_HUB_OFFLINE is set. {offline_hint}")
    return datasets.load_dataset(hub_id, split=split)


def reference_column(name: str, columns: list[str]) -> str | None:
    """The column holding reference ``name`` (``gold``, ``claude``, ``deepseek``, ...).

    ``ref_output_<name>`` if it exists, else the one ``ref_output_*`` column whose name contains
    ``name`` (so short names work whatever date suffix the hub columns carry). ``gold`` may have
    no column (None: the first assistant turn is used); other unknown names raise ValueError.
    """
    if REF_PREFIX + name in columns:
        return REF_PREFIX + name
    matches = [c for c in columns if c.startswith(REF_PREFIX) and name.lower() in c.lower()]
    if len(matches) == 1:
        return matches[0]
    if name == "gold" and not matches:
        return None
    available = [c[len(REF_PREFIX):] for c in columns if c.startswith(REF_PREFIX)]
    if "gold" not in available:
        available.insert(0, "gold")
    what = "matches several columns" if matches else "has no column"
    raise ValueError(f"reference {name!r} {what}; available references: {available}")


def normalise_bleuberi_row(row: dict, ref_columns: list[str | None]) -> dict | None:
    """One hub row in our schema, or None when its prompt or a requested reference is empty.

    ``ref_columns`` comes from :func:`reference_column` (None = gold from ``messages``).
    """
    prompt = row.get("prompt") or _first_turn(row.get("messages"), "user")
    refs = [row.get(c) if c else _first_turn(row.get("messages"), "assistant") for c in ref_columns]
    if not isinstance(prompt, str) or not prompt.strip():
        return None
    if not all(isinstance(r, str) and r.strip() for r in refs):
        return None
    return {"id": str(row.get("id", "")), "source": str(row.get("source", "")),
            "prompt": [{"role": "user", "content": prompt}], "references": refs}


def load_bleuberi(references: tuple[str, ...] | list[str] = ("gold",), *, split: str = "train",
                  n: int | None = None, data_files: str | Path | None = None):
    """BLEUBERI-Tulu3-50k in our schema: ``id``, ``source``, ``prompt`` (messages), ``references``.

    Args:
        references: which references to keep, in order: ``gold`` (the paper's Table 1 uses
            only this one) and any of ``claude``, ``deepseek``, ``gemini``, ``o4-mini``, ``llama``.
        split: the hub split (the data set has only ``train``).
        n: keep the first ``n`` rows after normalising (None keeps all).
        data_files: a local JSON/JSONL file of the hub's schema instead of the hub (tests use
            ``tests/fixtures/bleuberi_tulu3_sample.jsonl``); then no network is needed.

    Offline (``HF_HUB_OFFLINE`` set) without ``data_files`` it raises a ``RuntimeError`` that
    points to the offline instruction set (:func:`load_instructions`).
    """
    import datasets

    refs = list(references)
    if not refs or isinstance(references, str):
        raise ValueError(f"references must be a non-empty list of names such as ['gold'], got {references!r}")
    raw = load_raw(BLEUBERI_HUB_ID, data_files, split=split,
                   offline_hint="Unset it (and go online), pass data_files= a local copy, or use the "
                                "offline instruction set: alignkit.data.load_instructions('train')")
    ref_columns = [reference_column(r, raw.column_names) for r in refs]
    rows = []
    for row in raw:
        out = normalise_bleuberi_row(row, ref_columns)
        if out is not None:
            rows.append(out)
        if n is not None and len(rows) >= n:
            break
    if not rows:
        raise ValueError(f"no row of {data_files or BLEUBERI_HUB_ID} has all of the references {refs}")
    return datasets.Dataset.from_list(rows)


# ---------------------------------------------------------------------------------------------
# The offline instruction set (chapter 1): data/instructions/, see its DATASHEET.md
# ---------------------------------------------------------------------------------------------

INSTRUCTION_SPLITS = ("train", "preference", "heldout")


def instructions_dir() -> Path:
    """``data/instructions`` under the workbook's root (``alignkit.runtime.data_root``)."""
    path = data_root() / "instructions"
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} not found: the instruction set lives in the repository, so install alignkit "
            "from a clone with `pip install -e .`"
        )
    return path


def read_instruction_rows(split: str = "train") -> list[dict]:
    """The rows of one split of the instruction set as plain dicts."""
    if split not in INSTRUCTION_SPLITS:
        raise ValueError(f"unknown split {split!r}; accepted: {', '.join(INSTRUCTION_SPLITS)}")
    with open(instructions_dir() / f"{split}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_instructions(split: str = "train", *, n: int | None = None):
    """One split of the offline instruction set as a ``datasets.Dataset``.

    Columns: ``id``, ``source``, ``split``, ``topic``, ``prompt`` (messages), ``references``
    (4 valid answers), ``constraints`` (what :mod:`alignkit.verifier` checks); the
    ``preference`` split adds ``chosen`` (passes the verifier) and ``rejected`` (breaks one
    constraint). ``n`` keeps the first ``n`` rows.
    """
    import datasets

    rows = read_instruction_rows(split)
    if n is not None:
        if n < 1:
            raise ValueError(f"n must be >= 1 or None, got {n}")
        rows = rows[:n]
    return datasets.Dataset.from_list(rows)


def prompt_texts(dataset) -> list[str]:
    """The user message of every row (what ``alignkit.generation.sample_completions`` takes)."""
    return [_first_turn(p, "user") for p in dataset["prompt"]]


# ---------------------------------------------------------------------------------------------
# Chatbot Arena conversations (chapter 1's agreement study, online)
#
# lmsys/chatbot_arena_conversations (gated on the hub: accept its terms, then log in): one row
# per human vote with ``question_id``, ``model_a``, ``model_b``, ``winner`` (``model_a``,
# ``model_b``, ``tie``, ``tie (bothbad)``), ``judge``, ``conversation_a``/``conversation_b``
# (lists of {"role", "content"}), ``turn``, ``anony``, ``language``, ``tstamp`` and moderation
# tags. BLEUBERI drops ``tie (bothbad)`` and compares the first turn; its ~900 pairs carry
# references written by five LLMs, which this loader does not have (add a ``references``
# column of your own before scoring BLEU).
# ---------------------------------------------------------------------------------------------

ARENA_HUB_ID = "lmsys/chatbot_arena_conversations"
ARENA_WINNERS = ("model_a", "model_b", "tie", "tie (bothbad)")


def normalise_arena_row(row: dict, *, drop: tuple[str, ...] = ("tie (bothbad)",)) -> dict | None:
    """One Arena vote as ``prompt``, ``response_a``, ``response_b``, ``winner``, ``a_wins``, or None.

    None when the winner is in ``drop``, or the first user turn or either first answer is empty.
    ``a_wins`` is True/False for a decided vote and None for a kept ``tie``. An unknown winner
    raises ValueError naming it.
    """
    winner = row.get("winner")
    if winner not in ARENA_WINNERS:
        raise ValueError(f"unknown Arena winner {winner!r} in question {row.get('question_id')!r}; "
                         f"accepted: {ARENA_WINNERS}")
    if winner in drop:
        return None
    conv_a, conv_b = row.get("conversation_a"), row.get("conversation_b")
    prompt = _first_turn(conv_a, "user")
    resp_a, resp_b = _first_turn(conv_a, "assistant"), _first_turn(conv_b, "assistant")
    if not all(isinstance(t, str) and t.strip() for t in (prompt, resp_a, resp_b)):
        return None
    return {"question_id": str(row.get("question_id", "")), "model_a": row.get("model_a"),
            "model_b": row.get("model_b"), "language": row.get("language"), "turn": row.get("turn"),
            "prompt": [{"role": "user", "content": prompt}], "response_a": resp_a, "response_b": resp_b,
            "winner": winner, "a_wins": {"model_a": True, "model_b": False}.get(winner)}


def load_arena(*, n: int | None = None, data_files: str | Path | None = None, drop_ties: bool = False,
               single_turn: bool = True, language: str | None = "English"):
    """Chatbot Arena votes in our pair schema (see :func:`normalise_arena_row`).

    Args:
        n: keep the first ``n`` rows after filtering (None keeps all, 33k on the hub).
        data_files: a local JSON/JSONL file of the hub's schema instead of the hub (tests use
            ``tests/fixtures/chatbot_arena_sample.jsonl``).
        drop_ties: also drop plain ``tie`` votes (``tie (bothbad)`` is always dropped, as in the
            paper; the paper keeps ``tie``, which then counts as disagreement).
        single_turn: keep only one-turn conversations (the paper compares the first turn).
        language: keep only this language (None keeps all).

    Offline without ``data_files`` it raises a ``RuntimeError`` pointing to the verifier-labelled
    pairs of :mod:`alignkit.bleuberi`.
    """
    import datasets

    raw = load_raw(ARENA_HUB_ID, data_files,
                   offline_hint="It is gated: accept its terms on the hub and log in. Or pass data_files= a "
                                "local copy, or use the offline verifier-labelled pairs: "
                                "alignkit.bleuberi.verifier_pairs")
    drop = ("tie (bothbad)", "tie") if drop_ties else ("tie (bothbad)",)
    rows = []
    for row in raw:
        if single_turn and row.get("turn", 1) != 1:
            continue
        if language is not None and row.get("language") != language:
            continue
        out = normalise_arena_row(row, drop=drop)
        if out is not None:
            rows.append(out)
        if n is not None and len(rows) >= n:
            break
    if not rows:
        raise ValueError(f"no Arena row of {data_files or ARENA_HUB_ID} is left after filtering "
                         f"(single_turn={single_turn}, language={language!r}, drop={drop})")
    return datasets.Dataset.from_list(rows)


# ---------------------------------------------------------------------------------------------
# LIMR's problems (chapter 2): GAIR/LIMR on the hub, or a local file in its schema
# (the released MATH-FULL ``math.8k.json`` has the same columns)
# ---------------------------------------------------------------------------------------------

LIMR_HUB_ID = "GAIR/LIMR"


def load_limr_rows(path: str = LIMR_HUB_ID, split: str = "train") -> list[dict]:
    """Rows ``{"question", "answer"}`` of the released LIMR set (hub id) or a local .json/.jsonl file
    in the same schema (a ``prompt`` / ``problem`` / ``question`` column and an ``answer`` column)."""
    from datasets import load_dataset

    if Path(path).suffix in (".json", ".jsonl"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"no LIMR data file at {path}")
        data = load_dataset("json", data_files=str(path), split="train")
    else:
        data = load_dataset(path, split=split)
    cols = data.column_names
    qcol = next((c for c in ("prompt", "problem", "question") if c in cols), None)
    if qcol is None or "answer" not in cols:
        raise ValueError(f"{path}: need a prompt/problem/question column and an answer column, got {cols}")
    rows = [{"question": str(r[qcol]), "answer": str(r["answer"])} for r in data
            if str(r["answer"]).strip()]  # math.8k has 2 empty answers: unscorable, skipped
    if not rows:
        raise ValueError(f"{path} has no rows with a non-empty answer")
    return rows


# ---------------------------------------------------------------------------------------------
# Rows for TRL from prompt texts (chapters 0 and 3 build their toy tasks with it)
# ---------------------------------------------------------------------------------------------


def prompt_rows(texts, extra: list[dict] | None = None) -> list[dict]:
    """Conversational GRPO rows ``{"prompt": [{"role": "user", ...}], **extra}`` from prompt texts."""
    extra = extra or [{} for _ in texts]
    return [{"prompt": [{"role": "user", "content": t}], **e} for t, e in zip(texts, extra, strict=True)]
