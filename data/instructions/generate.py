"""Generate chapter 1's offline instruction set: instructions with several valid references each.

Every instruction is a short task about one topic ("Describe coffee briefly.") plus one to three
IFEval-style constraints ("Start your answer with 'Sure!'. Use exactly 3 bullet points ...").
References are composed from the topic's facts (``topics.py``) and kept only if
``alignkit.verifier`` accepts them, so every reference is a valid answer and many other outputs
are valid too. The preference split also carries a ``chosen`` answer that passes the verifier
and a ``rejected`` one that breaks exactly one constraint on purpose.

Run from the repository root (deterministic: the same files every time)::

    python data/instructions/generate.py           # writes data/instructions/*.jsonl
    python data/instructions/generate.py --check   # exit 1 if the files differ from a fresh run
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from topics import END_PHRASES, EXCLUDE_WORDS, START_PHRASES, TASKS, TOPICS  # noqa: E402

from alignkit.verifier import check, constraint, describe, passes  # noqa: E402

SEED = 1
SPLITS = {"train": 600, "preference": 150, "heldout": 150}
N_REFERENCES = 4
SOURCE = "alignkit-instructions-v1"
CONFLICTS = [{"lowercase", "uppercase"}, {"max_words", "min_words"}]
KIND_WEIGHTS = {"max_words": 2, "min_words": 1, "include_word": 2, "exclude_word": 1,
                "start_with": 3, "end_with": 3, "lowercase": 2, "uppercase": 1, "bullets": 2,
                "no_commas": 1}


def _content_words(fact: str) -> list[str]:
    """Lowercase words of at least five letters in ``fact`` (candidates for include_word)."""
    return [w.lower() for w in re.findall(r"[A-Za-z]+", fact) if len(w) >= 5]


def sample_constraints(rng: random.Random, topic: str) -> list[dict]:
    """One to three compatible constraints with their arguments."""
    n = rng.choices([1, 2, 3], weights=[3, 5, 2])[0]
    kinds: list[str] = []
    while len(kinds) < n:
        kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
        if kind in kinds or any({kind, k} in CONFLICTS for k in kinds):
            continue
        kinds.append(kind)
    out = []
    for kind in kinds:
        if kind == "max_words":
            out.append(constraint(kind, n=rng.choice([20, 25, 30, 40])))
        elif kind == "min_words":
            out.append(constraint(kind, n=rng.choice([15, 20, 25, 30])))
        elif kind == "include_word":
            out.append(constraint(kind, text=rng.choice(_content_words(rng.choice(TOPICS[topic])))))
        elif kind == "exclude_word":
            out.append(constraint(kind, text=rng.choice(EXCLUDE_WORDS)))
        elif kind == "start_with":
            out.append(constraint(kind, text=rng.choice(START_PHRASES)))
        elif kind == "end_with":
            out.append(constraint(kind, text=rng.choice(END_PHRASES)))
        elif kind == "bullets":
            out.append(constraint(kind, n=rng.choice([2, 3, 4])))
        else:
            out.append(constraint(kind))
    return out


def compose(rng: random.Random, topic: str, constraints: list[dict], violate: str | None = None) -> str:
    """One answer built from the topic's facts that follows ``constraints``.

    With ``violate`` (a constraint kind), the answer breaks that constraint on purpose.
    """
    by_kind = {c["kind"]: c for c in constraints}
    facts = list(TOPICS[topic])
    rng.shuffle(facts)
    n_facts = rng.randint(2, 4) if "min_words" in by_kind else rng.randint(1, 3)
    if "bullets" in by_kind:
        n_facts = by_kind["bullets"]["n"] + (1 if violate == "bullets" else 0)
    if violate == "max_words":
        n_facts = len(facts)
    if "include_word" in by_kind:
        word = by_kind["include_word"]["text"]
        has = [f for f in facts if re.search(rf"\b{word}\b", f, re.IGNORECASE)]
        rest = [f for f in facts if f not in has]
        facts = rest if violate == "include_word" else has[:1] + rest
    chosen = facts[:n_facts]
    rng.shuffle(chosen)
    bullets = "bullets" in by_kind
    body = "\n".join("- " + f for f in chosen) if bullets else " ".join(chosen)
    if violate == "min_words":
        body = " ".join(body.split()[: max(1, by_kind["min_words"]["n"] // 3)])
    if violate == "exclude_word":
        body += f" This is {by_kind['exclude_word']['text']} worth knowing."
    if violate == "no_commas":
        body = "Well, " + body
    sep = "\n" if bullets else " "
    if "start_with" in by_kind and violate != "start_with":
        body = by_kind["start_with"]["text"] + sep + body
    if "end_with" in by_kind and violate != "end_with":
        body = body + sep + by_kind["end_with"]["text"]
    if "no_commas" in by_kind and violate != "no_commas":
        body = body.replace(",", "")
    if "lowercase" in by_kind and violate != "lowercase":
        body = body.lower()
    if "uppercase" in by_kind and violate != "uppercase":
        body = body.upper()
    return body


def valid_answers(rng: random.Random, topic: str, constraints: list[dict], k: int,
                  exclude: tuple[str, ...] = ()) -> list[str] | None:
    """``k`` distinct answers that pass the verifier (None if 300 tries do not find them)."""
    found: list[str] = []
    for _ in range(300):
        text = compose(rng, topic, constraints)
        if text not in found and text not in exclude and passes(text, constraints):
            found.append(text)
            if len(found) == k:
                return found
    return None


def broken_answer(rng: random.Random, topic: str, constraints: list[dict]) -> str | None:
    """An answer that breaks one constraint (and so fails the verifier), or None."""
    for _ in range(50):
        kind = rng.choice(constraints)["kind"]
        text = compose(rng, topic, constraints, violate=kind)
        if not check(text, next(c for c in constraints if c["kind"] == kind)):
            return text
    return None


def make_row(rng: random.Random, split: str, index: int) -> dict | None:
    """One instruction of ``split`` (None when its constraints admit too few references)."""
    topic = rng.choice(sorted(TOPICS))
    constraints = sample_constraints(rng, topic)
    task = rng.choice(TASKS).format(topic=topic)
    prompt = " ".join([task] + [describe(c) for c in constraints])
    n_answers = N_REFERENCES + (1 if split == "preference" else 0)
    answers = valid_answers(rng, topic, constraints, n_answers)
    if answers is None:
        return None
    row = {"id": f"{split}-{index:04d}", "source": SOURCE, "split": split, "topic": topic,
           "prompt": [{"role": "user", "content": prompt}], "references": answers[:N_REFERENCES],
           "constraints": constraints}
    if split == "preference":
        rejected = broken_answer(rng, topic, constraints)
        if rejected is None:
            return None
        row["chosen"], row["rejected"] = answers[-1], rejected
    return row


def generate(seed: int = SEED, sizes: dict[str, int] | None = None) -> dict[str, list[dict]]:
    """All splits as lists of rows; prompts are unique across splits (no train/held-out leak)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split, size in (sizes or SPLITS).items():
        rows: list[dict] = []
        while len(rows) < size:
            row = make_row(rng, split, len(rows))
            if row is None or row["prompt"][0]["content"] in seen:
                continue
            seen.add(row["prompt"][0]["content"])
            rows.append(row)
        out[split] = rows
    return out


def to_jsonl(rows: list[dict]) -> str:
    """Rows as JSON lines with a stable key order."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder for the JSONL files")
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = parser.parse_args(argv)
    for split, rows in generate().items():
        path = args.out / f"{split}.jsonl"
        text = to_jsonl(rows)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path} differs from a fresh run of the generator")
                return 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {len(rows)} rows to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
