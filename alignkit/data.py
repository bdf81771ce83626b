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

import codecs
import json
import warnings
from pathlib import Path

from alignkit.runtime import data_root, hub_offline

# ---------------------------------------------------------------------------------------------
# Shared argument checks (every loader names the bad argument and what it accepts)
# ---------------------------------------------------------------------------------------------


def _check_n(n) -> int | None:
    """``n`` (how many rows to keep): None or an int >= 1."""
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int >= 1 or None, got {type(n).__name__}: {n!r:.80}")
    if n < 1:
        raise ValueError(f"n must be >= 1 or None (keep all rows), got {n}")
    return n


def _check_choice(name: str, value, accepted, *, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f"unknown {name} {value!r}; accepted: {', '.join(accepted)}"
                         + (" or None" if allow_none else ""))
    return value


def _check_local_json(path) -> Path:
    """A local JSON/JSONL file that exists, is not empty and is UTF-8, or an error naming it.

    ``datasets`` would raise a bare ``StopIteration`` on an empty file and a
    ``UnicodeDecodeError`` without the file's name on a non-UTF-8 one.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"data_files must be a path (str or Path) to a JSON/JSONL file, got "
                        f"{type(path).__name__}: {path!r:.80}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no data file at {path}")
    decoder, blank, offset = codecs.getincrementaldecoder("utf-8")(), True, 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            try:
                text = decoder.decode(chunk)
            except UnicodeDecodeError as err:
                raise ValueError(f"{path} is not UTF-8 text (byte {offset + err.start}: {err.reason}); "
                                 "re-encode it as UTF-8 JSON/JSONL") from None
            blank = blank and not text.strip()
            offset += len(chunk)
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text (it ends inside a character)") from None
    if blank:
        raise ValueError(f"{path} is empty: expected JSON/JSONL rows")
    return path


def _load_local_json(path):
    """``datasets.load_dataset("json")`` on a checked local file; parse errors name the file."""
    import datasets

    path = _check_local_json(path)
    try:
        return datasets.load_dataset("json", data_files=str(path), split="train")
    except datasets.exceptions.DatasetGenerationError as err:
        cause = err.__cause__ or err
        raise ValueError(f"{path} is not valid JSON/JSONL ({type(cause).__name__}: {str(cause)[:200]})") from err


def _warn_dropped(where: str, dropped: int, seen: int, why: str) -> None:
    if dropped:
        warnings.warn(f"{where}: dropped {dropped} of {seen} rows {why}", UserWarning, stacklevel=3)

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
    """The content of the first message with ``role`` in ``messages``, or None.

    ``messages`` must be None or a list of ``{"role", "content"}`` dicts (TypeError otherwise).
    """
    if messages is None:
        return None
    if isinstance(messages, (str, bytes, dict)) or not isinstance(messages, (list, tuple)):
        raise TypeError(f"messages must be a list of {{'role', 'content'}} dicts, got "
                        f"{type(messages).__name__}: {messages!r:.80}")
    for m in messages:
        if not isinstance(m, dict):
            raise TypeError(f"messages must be a list of {{'role', 'content'}} dicts, got an item of type "
                            f"{type(m).__name__}: {m!r:.80}")
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
        return _load_local_json(data_files)
    if not isinstance(hub_id, str) or not hub_id:
        raise TypeError(f"hub_id must be a non-empty string such as 'owner/name', got {hub_id!r:.80}")
    if not isinstance(split, str):
        raise TypeError(f"split must be a string such as 'train', got {type(split).__name__}: {split!r:.80}")
    if hub_offline():
        raise RuntimeError(f"{hub_id} needs the Hugging Face hub, but HF_HUB_OFFLINE is set. {offline_hint}")
    return datasets.load_dataset(hub_id, split=split)


def reference_column(name: str, columns: list[str]) -> str | None:
    """The column holding reference ``name`` (``gold``, ``claude``, ``deepseek``, ...).

    ``ref_output_<name>`` if it exists, else the one ``ref_output_*`` column whose name contains
    ``name`` (so short names work whatever date suffix the hub columns carry). ``gold`` may have
    no column (None: the first assistant turn is used); other unknown names raise ValueError.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"reference name must be a non-empty string such as 'gold', got {name!r:.80}")
    if not isinstance(columns, (list, tuple)) or not all(isinstance(c, str) for c in columns):
        raise TypeError(f"columns must be a list of column names, got {columns!r:.80}")
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
    if not isinstance(row, dict):
        raise TypeError(f"row must be a dict (one row of the hub data set), got {type(row).__name__}")
    if not isinstance(ref_columns, (list, tuple)) or not all(c is None or isinstance(c, str) for c in ref_columns):
        raise TypeError(f"ref_columns must be a list of column names (or None for gold), got {ref_columns!r:.80}")
    try:
        prompt = row.get("prompt") or _first_turn(row.get("messages"), "user")
        refs = [row.get(c) if c else _first_turn(row.get("messages"), "assistant") for c in ref_columns]
    except TypeError as err:
        raise TypeError(f"row {row.get('id')!r}: {err}") from None
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

    n = _check_n(n)
    if isinstance(references, str) or not isinstance(references, (list, tuple)) or not references \
            or not all(isinstance(r, str) for r in references):
        raise ValueError(f"references must be a non-empty list of names such as ['gold'], got {references!r}")
    refs = list(references)
    raw = load_raw(BLEUBERI_HUB_ID, data_files, split=split,
                   offline_hint="Unset it (and go online), pass data_files= a local copy, or use the "
                                "offline instruction set: alignkit.data.load_instructions('train')")
    ref_columns = [reference_column(r, raw.column_names) for r in refs]
    rows, seen = [], 0
    for row in raw:
        seen += 1
        out = normalise_bleuberi_row(row, ref_columns)
        if out is not None:
            rows.append(out)
        if n is not None and len(rows) >= n:
            break
    _warn_dropped(f"load_bleuberi({data_files or BLEUBERI_HUB_ID})", seen - len(rows), seen,
                  f"with an empty or missing prompt or reference {refs}")
    if not rows:
        raise ValueError(f"no row of {data_files or BLEUBERI_HUB_ID} has all of the references {refs}")
    return datasets.Dataset.from_list(rows)


# ---------------------------------------------------------------------------------------------
# The offline instruction set (chapter 1): data/instructions/, see its DATASHEET.md
# ---------------------------------------------------------------------------------------------

INSTRUCTION_SPLITS = ("train", "preference", "heldout")


def instructions_dir() -> Path:
    """``data/instructions`` under the workbook's root, or the copy an installed wheel carries
    (``alignkit.runtime.data_root``)."""
    path = data_root() / "instructions"
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} not found: neither the workbook's root nor the installed alignkit package "
            "holds the instruction set; reinstall alignkit, or set ALIGNKIT_HOME to a clone"
        )
    return path


def read_instruction_rows(split: str = "train") -> list[dict]:
    """The rows of one split of the instruction set as plain dicts."""
    if not isinstance(split, str) or split not in INSTRUCTION_SPLITS:
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

    n = _check_n(n)
    rows = read_instruction_rows(split)
    if n is not None:
        rows = rows[:n]
    return datasets.Dataset.from_list(rows)


def prompt_texts(dataset) -> list[str]:
    """The user message of every row (what ``alignkit.generation.sample_completions`` takes)."""
    try:
        prompts = dataset["prompt"]
    except (KeyError, TypeError, IndexError, ValueError):
        raise ValueError(f"dataset must have a 'prompt' column of messages, got {type(dataset).__name__}") from None
    texts = [_first_turn(p, "user") for p in prompts]
    missing = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if missing:
        raise ValueError(f"dataset: {len(missing)} rows have no user message with string content in "
                         f"their prompt (first: row {missing[0]})")
    return texts


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
    if not isinstance(row, dict):
        raise TypeError(f"row must be a dict (one Arena vote), got {type(row).__name__}")
    if isinstance(drop, str) or not isinstance(drop, (tuple, list)) or not set(drop) <= set(ARENA_WINNERS):
        raise ValueError(f"drop must be a tuple of winners to drop out of {ARENA_WINNERS}, got {drop!r}")
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

    n = _check_n(n)
    if language is not None and not isinstance(language, str):
        raise TypeError(f"language must be a string such as 'English' or None, got {type(language).__name__}")
    for name, flag in (("drop_ties", drop_ties), ("single_turn", single_turn)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be True or False, got {flag!r}")
    raw = load_raw(ARENA_HUB_ID, data_files,
                   offline_hint="It is gated: accept its terms on the hub and log in. Or pass data_files= a "
                                "local copy, or use the offline verifier-labelled pairs: "
                                "alignkit.bleuberi.verifier_pairs")
    drop = ("tie (bothbad)", "tie") if drop_ties else ("tie (bothbad)",)
    rows, seen, empty = [], 0, 0
    for row in raw:
        if single_turn and row.get("turn", 1) != 1:
            continue
        if language is not None and row.get("language") != language:
            continue
        seen += 1
        out = normalise_arena_row(row, drop=drop)
        if out is not None:
            rows.append(out)
        elif row.get("winner") not in drop:
            empty += 1
        if n is not None and len(rows) >= n:
            break
    _warn_dropped(f"load_arena({data_files or ARENA_HUB_ID})", empty, seen,
                  "with an empty first user turn or first answer")
    if not rows:
        raise ValueError(f"no Arena row of {data_files or ARENA_HUB_ID} is left after filtering "
                         f"(single_turn={single_turn}, language={language!r}, drop={drop})")
    return datasets.Dataset.from_list(rows)


# ---------------------------------------------------------------------------------------------
# LIMR's problems (chapter 2): GAIR/LIMR on the hub, or a local file in its schema
# (the released MATH-FULL ``math.8k.json`` has the same columns)
# ---------------------------------------------------------------------------------------------

LIMR_HUB_ID = "GAIR/LIMR"


def _limr_text(value) -> str | None:
    """A LIMR cell as text: strings as they are, numbers as their digits, None/NaN/blank as None."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"expected a string or a number, got {type(value).__name__}: {value!r:.80}")
    text = str(value)
    return text if text.strip() else None


def load_limr_rows(path: str = LIMR_HUB_ID, split: str = "train") -> list[dict]:
    """Rows ``{"question", "answer"}`` of the released LIMR set (hub id) or a local .json/.jsonl file
    in the same schema (a ``prompt`` / ``problem`` / ``question`` column and an ``answer`` column).

    Rows whose question or answer is missing, null or blank cannot be scored and are dropped
    with a warning saying how many (math.8k has 2 empty answers). A question or answer that is
    neither text nor a number (e.g. a list) raises a TypeError naming the row.
    """
    from datasets import load_dataset

    if not isinstance(path, (str, Path)) or not str(path):
        raise TypeError(f"path must be a hub id or a .json/.jsonl file path, got {type(path).__name__}: {path!r:.80}")
    if not isinstance(split, str):
        raise TypeError(f"split must be a string such as 'train', got {type(split).__name__}: {split!r:.80}")
    if Path(path).suffix in (".json", ".jsonl"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"no LIMR data file at {path}")
        data = _load_local_json(path)
    else:
        data = load_dataset(str(path), split=split)
    cols = data.column_names
    qcol = next((c for c in ("prompt", "problem", "question") if c in cols), None)
    if qcol is None or "answer" not in cols:
        raise ValueError(f"{path}: need a prompt/problem/question column and an answer column, got {cols}")
    rows, seen = [], 0
    for i, r in enumerate(data):
        seen += 1
        try:
            question, answer = _limr_text(r[qcol]), _limr_text(r["answer"])
        except TypeError as err:
            raise TypeError(f"{path}: row {i}: {qcol!r} and 'answer' must be text, {err}") from None
        if question is not None and answer is not None:
            rows.append({"question": question, "answer": answer})
    if not rows:
        raise ValueError(f"{path} has no rows with a non-empty {qcol} and answer")
    _warn_dropped(f"load_limr_rows({path})", seen - len(rows), seen,
                  f"with a missing, null or blank {qcol} or answer (unscorable)")
    return rows


# ---------------------------------------------------------------------------------------------
# Rows for TRL from prompt texts (chapters 0 and 3 build their toy tasks with it)
# ---------------------------------------------------------------------------------------------


def prompt_rows(texts, extra: list[dict] | None = None) -> list[dict]:
    """Conversational GRPO rows ``{"prompt": [{"role": "user", ...}], **extra}`` from prompt texts."""
    if isinstance(texts, (str, bytes, dict)) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"texts must be a list of prompt strings, got {type(texts).__name__}: {texts!r:.80}")
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str) or not t.strip()]
    if bad:
        raise ValueError(f"texts must be non-empty strings; {len(bad)} are not (first: index {bad[0]}: "
                         f"{texts[bad[0]]!r:.80})")
    if extra is not None:
        if not isinstance(extra, (list, tuple)) or not all(isinstance(e, dict) for e in extra):
            raise TypeError(f"extra must be a list of dicts (extra columns per row) or None, got {extra!r:.80}")
        if len(extra) != len(texts):
            raise ValueError(f"extra must have one dict per text: {len(texts)} texts but {len(extra)} extras")
    extra = extra or [{} for _ in texts]
    return [{"prompt": [{"role": "user", "content": t}], **e} for t, e in zip(texts, extra, strict=True)]
