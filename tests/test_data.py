"""Chapter 1 data: the offline instruction set (generator, verifier, splits) and the BLEUBERI loader."""

import importlib.util
import json
from pathlib import Path

import datasets
import pytest

import alignkit.data
from alignkit.data import (
    BLEUBERI_HUB_ID,
    INSTRUCTION_SPLITS,
    instructions_dir,
    load_bleuberi,
    load_instructions,
    prompt_texts,
    read_instruction_rows,
)
from alignkit.verifier import KINDS, check, constraint, describe, pass_rate, passes, verifier_reward

FIXTURE = Path(__file__).parent / "fixtures" / "bleuberi_tulu3_sample.jsonl"


def _generator():
    spec = importlib.util.spec_from_file_location("generate", instructions_dir() / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows():
    return {s: read_instruction_rows(s) for s in INSTRUCTION_SPLITS}


# ------------------------------------------------------------------------------- verifier

@pytest.mark.parametrize("c, good, bad", [
    (constraint("max_words", n=3), "one two three", "one two three four"),
    (constraint("min_words", n=3), "one two three", "one two"),
    (constraint("include_word", text="bees"), "Honey Bees dance.", "A beehive."),
    (constraint("exclude_word", text="very"), "Everyone is here.", "It is Very good."),
    (constraint("start_with", text="Sure!"), "  sure! here it is", "Here it is. Sure!"),
    (constraint("end_with", text="That is all."), "Facts. THAT IS ALL.", "That is all. More."),
    (constraint("lowercase"), "all lower case 123.", "Not lower."),
    (constraint("uppercase"), "ALL UPPER 123.", "ALL UPPEr."),
    (constraint("bullets", n=2), "Intro\n- one\n* two\nend", "- one\n- two\n- three"),
    (constraint("no_commas"), "no commas here", "a, b"),
])
def test_each_constraint_accepts_and_rejects(c, good, bad):
    assert check(good, c) and not check(bad, c)
    assert describe(c).endswith(".")


def test_constraint_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown constraint kind 'rhyme'"):
        constraint("rhyme")
    with pytest.raises(ValueError, match="needs n >= 1"):
        constraint("bullets", n=0)
    with pytest.raises(ValueError, match="needs a non-empty text"):
        constraint("start_with", text=" ")
    with pytest.raises(ValueError, match="constraints is empty"):
        passes("x", [])


def test_verifier_reward_both_formats_and_partial():
    cons = [[constraint("lowercase"), constraint("max_words", n=3)]] * 2
    plain = ["all good", "Not good at all"]
    chat = [[{"role": "assistant", "content": t}] for t in plain]
    assert verifier_reward(plain, constraints=cons) == [1.0, 0.0]
    assert verifier_reward(chat, constraints=cons) == [1.0, 0.0]
    assert verifier_reward(plain, constraints=cons, partial=True) == [1.0, 0.0]
    assert verifier_reward(["not good at all"], constraints=cons[:1], partial=True) == [0.5]
    assert pass_rate(plain, cons) == 0.5


# --------------------------------------------------------------------- instruction set

def test_generator_is_deterministic_and_matches_the_files():
    gen = _generator()
    first, second = gen.generate(), gen.generate()
    assert first == second
    for split, generated in first.items():
        on_disk = (instructions_dir() / f"{split}.jsonl").read_text(encoding="utf-8")
        assert gen.to_jsonl(generated) == on_disk, f"rerun data/instructions/generate.py ({split})"


def test_every_reference_passes_the_verifier(rows):
    for split_rows in rows.values():
        for r in split_rows:
            assert len(r["references"]) == 4 and len(set(r["references"])) == 4, r["id"]
            for ref in r["references"]:
                assert passes(ref, r["constraints"]), (r["id"], ref)


def test_preference_pairs_are_labelled_by_the_verifier(rows):
    for r in rows["preference"]:
        assert passes(r["chosen"], r["constraints"]), r["id"]
        assert not passes(r["rejected"], r["constraints"]), r["id"]
        assert r["chosen"] not in r["references"]


def test_splits_sizes_schema_and_no_leak(rows):
    assert {s: len(v) for s, v in rows.items()} == {"train": 600, "preference": 150, "heldout": 150}
    prompts = [r["prompt"][0]["content"] for v in rows.values() for r in v]
    assert len(prompts) == len(set(prompts))
    ids = [r["id"] for v in rows.values() for r in v]
    assert len(ids) == len(set(ids))
    kinds = {c["kind"] for v in rows.values() for r in v for c in r["constraints"]}
    assert kinds == set(KINDS)
    for r in rows["heldout"]:
        assert r["prompt"][0]["role"] == "user"
        assert all(describe(c) in r["prompt"][0]["content"] for c in r["constraints"])
    total = sum((instructions_dir() / f"{s}.jsonl").stat().st_size for s in INSTRUCTION_SPLITS)
    assert total < 2_000_000


def test_load_instructions_gives_a_dataset():
    ds = load_instructions("preference", n=5)
    assert isinstance(ds, datasets.Dataset) and len(ds) == 5
    assert {"prompt", "references", "constraints", "chosen", "rejected"} <= set(ds.column_names)
    assert prompt_texts(ds)[0] == ds[0]["prompt"][0]["content"]
    # the constraints column round-trips through Arrow and still verifies
    assert verifier_reward(ds["references"][0][:1], constraints=ds["constraints"][:1]) == [1.0]
    with pytest.raises(ValueError, match="unknown split 'test'"):
        load_instructions("test")


# ------------------------------------------------------------------ BLEUBERI-Tulu3-50k

def test_bleuberi_fixture_has_the_hub_schema():
    first = json.loads(FIXTURE.read_text().splitlines()[0])
    assert {"id", "source", "messages", "prompt", "ref_output_gold"} <= set(first)


def test_load_bleuberi_from_a_local_file():
    ds = load_bleuberi(data_files=FIXTURE)
    assert ds.column_names == ["id", "source", "prompt", "references"]
    assert len(ds) == 5  # fixture_5 has an empty gold reference and is dropped
    row = ds[1]
    assert row["prompt"] == [{"role": "user", "content": "Name three primary colours."}]
    assert row["references"] == ["Red, yellow and blue."]
    # fixture_4 has no "prompt" field: the first user turn is used
    assert ds[4]["prompt"][0]["content"] == "What is 2 + 2?"


def test_load_bleuberi_several_references():
    ds = load_bleuberi(["gold", "claude", "deepseek", "gemini", "o4-mini"], data_files=FIXTURE)
    assert ds["id"] == ["fixture_0", "fixture_1", "fixture_2", "fixture_4"]  # 3 lacks claude
    assert ds[1]["references"][1] == "The three primary colours are red, yellow and blue."
    assert len(load_bleuberi(["gold"], data_files=FIXTURE, n=2)) == 2
    with pytest.raises(ValueError, match="reference 'gpt5' has no column"):
        load_bleuberi(["gpt5"], data_files=FIXTURE)


def test_load_bleuberi_offline_error_and_online_path(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="HF_HUB_OFFLINE is set"):
        load_bleuberi()
    fixture = datasets.load_dataset("json", data_files=str(FIXTURE), split="train")
    seen = {}

    def fake_load(name, split=None, **kw):
        seen.update(name=name, split=split)
        return fixture

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    ds = load_bleuberi(["gold", "llama"])
    assert seen == {"name": BLEUBERI_HUB_ID, "split": "train"} and len(ds) == 5
    assert alignkit.data.hub_offline() is False
