"""Malformed input is refused by name: every public function of rewards, selection, data, verifier,
theory, memory and io raises a TypeError or ValueError whose message names the bad argument.

One table row per (function, argument): a valid call and a hypothesis strategy of malformed
values for that argument (NaN, inf, None, empty, wrong types, out of range). The valid call is
checked to succeed, so the error comes from the corrupted argument alone.
"""

import atexit
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alignkit import data, io, memory, rewards, selection, verifier
from alignkit.theory import bayes, best_of_n, divergence, memoryless, optimum, preferences, trilemma

FIXTURES = Path(__file__).parent / "fixtures"
BLEUBERI = FIXTURES / "bleuberi_tulu3_sample.jsonl"
ARENA = FIXTURES / "chatbot_arena_sample.jsonl"
LIMR = FIXTURES / "limr_sample.jsonl"
TMP = Path(tempfile.mkdtemp(prefix="alignkit-validation-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)
NAN, INF = float("nan"), float("inf")

# ------------------------------------------------------------------------ malformed values

NOT_NUMBER = [NAN, None, "1", "", True, [1.0], {}, 1j, object()]


def real(low=None, high=None, *, low_open=False, high_open=False, inf_ok=False, extra=()):
    """Malformed values for a real argument valid on the given range (finite unless ``inf_ok``)."""
    parts = [st.sampled_from(NOT_NUMBER + ([] if inf_ok else [INF, -INF]) + list(extra))]
    if low is not None:  # below the range (the bound itself when it is open)
        parts.append(st.floats(max_value=low, exclude_max=not low_open, allow_nan=False, allow_infinity=False))
    if high is not None:
        parts.append(st.floats(min_value=high, exclude_min=not high_open, allow_nan=False, allow_infinity=False))
    return st.one_of(parts)


def integer(low=None, high=None, *, extra=()):
    """Malformed values for an int argument valid on ``[low, high]``."""
    parts = [st.sampled_from([NAN, INF, None, "1", True, 1.5, [1], object()] + list(extra))]
    if low is not None:
        parts.append(st.integers(max_value=low - 1))
    if high is not None:
        parts.append(st.integers(min_value=high + 1))
    return st.one_of(parts)


def one_of(*values):
    return st.sampled_from(list(values))


NOT_TEXT = st.one_of(st.sampled_from([None, NAN, True, [], ["a"], {}, b"x", object()]),
                     st.integers(), st.floats(), st.lists(st.text(), max_size=2))
NOT_LIST = st.one_of(st.sampled_from([None, NAN, True, {}, {"a": 1}, b"x", object()]),
                     st.text(max_size=5), st.integers())
NOT_FLAG = one_of(None, 1, 0, "yes", NAN, [True])
DIST3 = st.one_of(
    one_of(None, "abc", [], 1.0, 1j, {}, [0.5, 0.6, 0.1], [NAN, 0.5, 0.5], [INF, 0, 0], [-0.5, 1.0, 0.5],
           [[0.25, 0.25, 0.5]], ["a", "b", "c"], [None, 0.5, 0.5], [True, False, False]),
    st.lists(st.floats(0, 1), min_size=3, max_size=3).filter(lambda v: abs(sum(v) - 1) > 1e-6))
REWARD3 = st.one_of(
    one_of(None, "abc", [], [0.0, 1.0], [[0.0, 1.0, 2.0]], {}, ["a", "b", "c"], [None, 1.0, 2.0], 1j),
    st.tuples(st.sampled_from([NAN, INF, -INF]), st.integers(0, 2)).map(
        lambda t: [t[0] if i == t[1] else float(i) for i in range(3)]))
REWARD2 = st.one_of(one_of(None, "ab", [], [0.0], [[0.0, 1.0]], ["a", "b"], [NAN, 1.0], [INF, 0.0]))
FINITE_ARRAY = one_of(None, "ab", [], [NAN], [INF], [-INF, 1.0], [[1.0, 2.0]], ["a"], {})
REFERENCES = st.one_of(one_of(None, 1, [], [""], [" "], ["a b", ""], ["\n"], [1], [None], [NAN], {}, b"x"),
                       st.lists(st.just(""), min_size=1, max_size=3))
BAD_N = st.one_of(one_of(0, -1, 1.5, NAN, INF, "2", True, [1], object()),
                  st.integers(max_value=0))  # loaders' n: an int >= 1 or None

C = {"kind": "max_words", "text": "", "n": 3}
BAD_CONSTRAINT = one_of(None, "max_words", {}, {"kind": "rhyme"}, {"kind": "max_words", "n": 0},
                        {"kind": "include_word", "text": None}, {"kind": "max_words", "n": NAN}, [C])
BAD_CONSTRAINTS = one_of(C, "abc", None, [], [None], [{"kind": "rhyme"}], [{"kind": "bullets", "n": 0}], 3)

P3, R3 = [0.25, 0.25, 0.5], [0.0, 1.0, 2.0]
P2, R2 = [0.5, 0.5], [0.0, 1.0]
ARCH = memory.get_arch("qwen2.5-0.5b")
PLAN = memory.plan_memory("qwen2.5-0.5b")
ARENA_ROW = {"question_id": "q", "winner": "model_a", "model_a": "a", "model_b": "b", "turn": 1,
             "language": "English",
             "conversation_a": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "A"}],
             "conversation_b": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "B"}]}


@dataclass
class Row:
    func: object
    valid: dict
    arg: str
    bad: st.SearchStrategy
    runs: bool = True  # whether the valid call can run here (False: needs a model or the hub)

    @property
    def id(self) -> str:
        return f"{getattr(self.func, '__qualname__', self.func)}-{self.arg}"


def rows_for(func, valid: dict, runs: bool = True, **bad) -> list[Row]:
    return [Row(func, valid, arg, strategy, runs) for arg, strategy in bad.items()]


def _make_text_reward_inner(completions, references):
    return rewards.make_text_reward("bleu")(completions, references=references)


_make_text_reward_inner.__qualname__ = "make_text_reward()"
DS = data.load_instructions("train", n=2)

TABLE: list[Row] = [
    # ---------------------------------------------------------------- rewards
    *rows_for(rewards.completion_text, {"completion": "a"},
              completion=one_of(None, 1, NAN, [], [1], ["a"], {"role": "x"}, [{"content": None}],
                                {"content": 3}, b"x")),
    *rows_for(rewards.word_count, {"text": "a b"}, text=NOT_TEXT),
    *rows_for(rewards.brevity_reward, {"completions": ["a b"], "target_words": 10},
              completions=NOT_LIST, target_words=real(1)),
    *rows_for(rewards.last_boxed, {"text": r"\boxed{1}"}, text=NOT_TEXT),
    *rows_for(rewards.limr_format_error, {"text": r"\boxed{1}"}, text=NOT_TEXT),
    *rows_for(rewards.limr_response, {"text": r"\boxed{1}"}, text=NOT_TEXT),
    *rows_for(rewards.answers_match, {"gold": "1", "pred": "1"}, gold=NOT_TEXT, pred=NOT_TEXT),
    *rows_for(rewards.limr_math_reward, {"completion": r"\boxed{1}", "answer": "1"},
              completion=one_of(None, 1, NAN, [], {}, [{"content": None}], b"x"),
              answer=one_of(None, NAN, "", " ", [], ["1"], {}, True, 1.5, b"1")),
    *rows_for(rewards.limr_reward, {"completions": [r"\boxed{1}"], "answer": ["1"]},
              completions=NOT_LIST, answer=st.one_of(NOT_LIST, one_of([None], [""], ["1", "2"], [NAN]))),
    *rows_for(rewards.tokenize_13a, {"text": "a b"}, text=NOT_TEXT),
    *rows_for(rewards.bleu, {"hypothesis": "a b", "references": ["a b"]},
              hypothesis=NOT_TEXT, references=st.one_of(REFERENCES, st.just("a"))),
    *rows_for(rewards.rouge_l, {"hypothesis": "a b", "references": ["a b"]},
              hypothesis=NOT_TEXT, references=st.one_of(REFERENCES, st.just("a"))),
    *rows_for(rewards.bleu_rouge_f1, {"hypothesis": "a b", "references": ["a b"]},
              hypothesis=NOT_TEXT, references=REFERENCES),
    *rows_for(rewards.answer_span, {"text": "a"}, text=NOT_TEXT),
    *rows_for(rewards.text_reward, {"completion": "a b", "references": ["a b"], "metric": "bleu"},
              completion=one_of(1, [], {}, [{"content": None}], b"x", True),
              references=st.one_of(REFERENCES, st.just("")), metric=one_of("meteor", None, 1, "", ["bleu"]),
              ),
    *rows_for(rewards.make_text_reward, {"metric": "bleu", "column": "references"},
              metric=one_of("meteor", None, 1, ""), column=one_of(None, 1, "", [], " ")),
    *rows_for(_make_text_reward_inner, {"completions": ["a b"], "references": [["a b"]]},
              completions=NOT_LIST, references=st.one_of(NOT_LIST, one_of([[""]], [None], [[1]]))),
    *rows_for(rewards.bleu_reward, {"completions": ["a b"], "references": [["a b"]]},
              completions=NOT_LIST, references=st.one_of(NOT_LIST, one_of([[""]], [""], [[" "]]))),
    # ---------------------------------------------------------------- selection
    *[r for f in (selection.fill_missing_epochs, selection.lim_scores, selection.linear_scores)
      for r in rows_for(f, {"acc": [[0.2, 0.5], [0.4, 1.0]]},
                        acc=one_of(None, "x", [], [0.5], [[1.5, 0.5]], [[-0.1, 0.5]], [[INF, 0.5]],
                                   [["a", "b"]], {}, 0.5, [[1j, 0.5]]))],
    *rows_for(selection.alignment_scores, {"acc": [[0.2, 0.5], [0.4, 1.0]], "reference": [0.5, 0.5]},
              reference=one_of([NAN, 0.5], [INF, 0.5], [0.5], "ab", None, [[0.5, 0.5]], ["a", "b"])),
    *rows_for(selection.lim_select, {"scores": [0.5, 0.7], "threshold": 0.6},
              threshold=real(0, 1), scores=one_of(None, "ab", [[0.5]], [INF, 0.1], ["a"], {}, 0.5)),
    *rows_for(selection.random_subset, {"n": 10, "k": 3, "seed": 0},
              n=integer(0), k=integer(0, 10), seed=integer(0)),
    *rows_for(selection.score_outputs, {"outputs": ["a b"], "references": [["a b"]], "metric": "bleu"},
              outputs=NOT_LIST, references=st.one_of(NOT_LIST, one_of([[""]], [None])),
              metric=one_of("meteor", None, 1)),
    *rows_for(selection.select_by_score, {"scores": [0.5, 0.1, 0.3], "k": 2},
              scores=st.one_of(one_of([0.5, NAN, 0.1, NAN, 0.3], [INF, 0.1, 0.2], [], None, "abc",
                                      [[0.5, 0.1, 0.3]], ["a", "b", "c"], [None, 0.1, 0.2]),
                               st.lists(st.floats(0, 1), min_size=3, max_size=6).map(lambda v: v + [NAN])),
              k=integer(1, 3, extra=["2", 2.0]), mode=one_of("hardest", None, 1, ""), metric=one_of(None, 1)),
    *rows_for(selection.select_hard, {"outputs": ["a b", "c d"], "references": [["a b"], ["c"]], "k": 1},
              outputs=NOT_LIST, references=st.one_of(NOT_LIST, one_of([[""], ["c"]])),
              k=integer(1, 2), mode=one_of("hardest", None)),
    *rows_for(selection.generate_base_outputs,
              {"model": None, "tokenizer": None, "prompts": ["p"], "max_new_tokens": 8}, runs=False,
              prompts=st.one_of(NOT_LIST, one_of([], [""], [1], [None])), max_new_tokens=integer(1),
              temperature=real(0, low_open=True), top_p=real(0, 1, low_open=True), batch_size=integer(1),
              seed=integer(0)),
    *rows_for(selection.select_hard_with_model,
              {"model": None, "tokenizer": None, "prompts": ["p"], "references": [["r"]], "k": 1,
               "max_new_tokens": 8}, runs=False,
              prompts=st.one_of(NOT_LIST, one_of([], [""], [1])),
              references=st.one_of(NOT_LIST, one_of([["r"], ["s"]], [])), k=integer(1, 1),
              mode=one_of("hardest", None)),
    # ---------------------------------------------------------------- data
    *rows_for(data.load_raw, {"hub_id": "x/y", "data_files": BLEUBERI},
              data_files=one_of(1, ["a"], object(), 1.5, True)),
    *rows_for(data.load_raw, {"hub_id": "x/y", "data_files": None, "split": "train"}, runs=False,
              hub_id=one_of(None, 1, "", ["x/y"]), split=one_of(None, 1, ["train"])),
    *rows_for(data.reference_column, {"name": "gold", "columns": ["ref_output_gold"]},
              name=one_of(None, 1, "", []), columns=one_of("ref_output_gold", [1], None, 3, {"a": 1})),
    *rows_for(data.normalise_bleuberi_row, {"row": {"prompt": "p", "ref_output_gold": "r"},
                                            "ref_columns": ["ref_output_gold"]},
              row=one_of(None, "x", [], 1), ref_columns=one_of("abc", [1], None, 3)),
    *rows_for(data.normalise_bleuberi_row, {"row": {"messages": [{"role": "user", "content": "p"},
                                                                 {"role": "assistant", "content": "r"}]},
                                            "ref_columns": [None]},
              row=one_of({"messages": "hello"}, {"messages": 3}, {"messages": ["hello"]})),
    *rows_for(data.load_bleuberi, {"references": ["gold"], "data_files": BLEUBERI, "n": 2},
              n=BAD_N, references=one_of("gold", [], None, [1], (), 3), data_files=one_of(1, [], object())),
    *rows_for(data.read_instruction_rows, {"split": "train"}, split=one_of(None, 1, "test", "", ["train"])),
    *rows_for(data.load_instructions, {"split": "train", "n": 2}, n=BAD_N, split=one_of(None, 1, "test")),
    *rows_for(data.prompt_texts, {"dataset": DS},
              dataset=one_of(None, {"x": 1}, [{"role": "user"}], 3,
                             {"prompt": [[{"role": "assistant", "content": "x"}]]},
                             {"prompt": [[{"role": "user", "content": None}]]})),
    *rows_for(data.normalise_arena_row, {"row": ARENA_ROW, "drop": ("tie (bothbad)",)},
              row=one_of(None, 1, "x", []), drop=one_of("tie", None, ("nope",), 1)),
    *rows_for(data.load_arena, {"data_files": ARENA, "n": 2}, n=BAD_N,
              language=one_of(1, ["English"], NAN), drop_ties=NOT_FLAG, single_turn=NOT_FLAG,
              data_files=one_of(1, [], object())),
    *rows_for(data.load_limr_rows, {"path": str(LIMR)}, path=one_of(None, 1, "", [], NAN)),
    *rows_for(data.load_limr_rows, {"path": str(LIMR), "split": "train"}, split=one_of(None, 1, ["train"])),
    *rows_for(data.prompt_rows, {"texts": ["a"], "extra": None},
              texts=st.one_of(NOT_LIST, one_of([""], [1], [None], [" "]))),
    *rows_for(data.prompt_rows, {"texts": ["a"], "extra": [{"answer": "1"}]},
              extra=one_of([{}, {}], "x", [1], {}, [None], 3)),
    # ---------------------------------------------------------------- verifier
    *rows_for(verifier.constraint, {"kind": "max_words", "text": "", "n": 3},
              kind=one_of(None, 1, "rhyme", [], ""), n=integer(1, extra=["3"]), text=one_of(None, 1, [])),
    *rows_for(verifier.constraint, {"kind": "include_word", "text": "bees"},
              text=one_of(None, 1, "", " ", [], NAN)),
    *rows_for(verifier.describe, {"c": C}, c=BAD_CONSTRAINT),
    *rows_for(verifier.check, {"text": "a b", "c": C}, text=NOT_TEXT, c=BAD_CONSTRAINT),
    *[r for f in (verifier.check_all, verifier.passes, verifier.verifier_score)
      for r in rows_for(f, {"text": "a b", "constraints": [C]}, text=NOT_TEXT, constraints=BAD_CONSTRAINTS)],
    *rows_for(verifier.verifier_reward, {"completions": ["a b"], "constraints": [[C]]},
              completions=NOT_LIST, constraints=st.one_of(NOT_LIST, one_of([[]], [C], [None], [[C], [C]]))),
    *rows_for(verifier.pass_rate, {"texts": ["a b"], "constraints": [[C]]},
              texts=st.one_of(NOT_LIST, one_of([], [1], [None])), constraints=one_of("abc", None, [[]], [C])),
    # ---------------------------------------------------------------- theory: divergence, optimum
    *rows_for(divergence.kl, {"p": P3, "q": P3}, p=DIST3, q=DIST3),
    *rows_for(divergence.tilt, {"p": P3, "r": R3, "lam": 1.0}, p=DIST3, r=REWARD3,
              lam=real(inf_ok=True, extra=[-INF])),
    *rows_for(optimum.cgf, {"p": P3, "r": R3, "lam": 0.5}, p=DIST3, r=REWARD3,
              lam=one_of(NAN, INF, None, "x", [NAN], ["a"], {}, True)),
    *[r for f in (optimum.tilted_mean, optimum.tilted_variance, optimum.tilt_kl)
      for r in rows_for(f, {"p": P3, "r": R3, "lam": 0.5}, p=DIST3, r=REWARD3,
                        lam=real(inf_ok=True, extra=[-INF]))],
    *rows_for(optimum.max_kl, {"p": P3, "r": R3}, p=DIST3, r=REWARD3),
    *rows_for(optimum.kl_constrained_optimum, {"p": P3, "r": R3, "delta": 0.1}, p=DIST3, r=REWARD3,
              delta=real(0)),
    *rows_for(optimum.kl_to_tilt_identity, {"phi": P3, "p": P3, "r": R3, "lam": 0.5}, phi=DIST3, lam=real()),
    # ---------------------------------------------------------------- theory: bayes
    *[r for f in (bayes.posterior, bayes.log_partition)
      for r in rows_for(f, {"pi0": P3, "r": R3, "beta": 1.0}, pi0=DIST3, r=REWARD3,
                        beta=real(0, low_open=True))],
    *rows_for(bayes.klrl_objective, {"pi": P3, "pi0": P3, "r": R3, "beta": 1.0}, pi=DIST3, pi0=DIST3,
              r=REWARD3, beta=real(0)),
    *rows_for(bayes.variational_form, {"pi": P3, "pi0": P3, "r": R3, "beta": 1.0}, pi=DIST3, pi0=DIST3,
              r=REWARD3, beta=real(0, low_open=True)),
    *rows_for(bayes.klrl_reward, {"r": R3, "log_pi": [-1.0, -1.0, -1.0], "log_pi0": [-1.0, -2.0, -0.5],
                                  "beta": 1.0},
              r=REWARD3, log_pi=one_of(None, "abc", [NAN, -1, -1], [0.5, -1, -1], [INF, -1, -1], [-1.0]),
              log_pi0=one_of(None, "abc", [NAN, -1, -1], [0.5, -1, -1], [-1.0, -1.0]), beta=real(0)),
    *rows_for(bayes.log_evidence, {"prior": P3, "log_lik": [-1.0, -2.0, 0.0]}, prior=DIST3,
              log_lik=one_of(None, "abc", [NAN, -1, -1], [1.0, 0, 0], [0.0, 0.0], [INF, 0, 0])),
    *rows_for(bayes.elbo, {"q": P3, "prior": P3, "log_lik": [-1.0, -2.0, 0.0]}, q=DIST3, prior=DIST3,
              log_lik=one_of(None, "abc", [NAN, -1, -1], [1.0, 0, 0], [0.0, 0.0])),
    *[r for f in (bayes.acceptance_rate, bayes.filtering_posterior)
      for r in rows_for(f, {"pi0": P3, "b": [0, 1, 1]}, pi0=DIST3,
                        b=one_of(None, "abc", [0.5, 1, 0], [0, 1], [NAN, 1, 0], {}, [2, 0, 0]))],
    *rows_for(bayes.rejection_sample, {"pi0": P3, "b": [0, 1, 1], "n_proposals": 10,
                                       "rng": np.random.default_rng(0)},
              n_proposals=integer(1), rng=one_of(None, 0, "x", object())),
    *rows_for(bayes.mirror_descent, {"pi0": P3, "r": R3, "beta": 1.0, "eta": 0.5, "steps": 3},
              pi0=DIST3, r=REWARD3, beta=real(0, low_open=True), eta=real(0, low_open=True),
              steps=integer(0), init=one_of([0.5, 0.5], [1.0, 0.0, 0.0], "abc", [NAN, 0.5, 0.5])),
    *rows_for(bayes.beta_sweep, {"pi0": P3, "r": R3, "betas": [0.5, 1.0]}, pi0=DIST3, r=REWARD3,
              betas=one_of(None, "ab", [], [0.0], [-1.0], [NAN], [INF], 1.0, ["a"])),
    # ---------------------------------------------------------------- theory: best-of-n
    *rows_for(best_of_n.resolve_log_n, {"n": 4}, n=real(1, extra=[[4]])),
    *rows_for(best_of_n.resolve_log_n, {"log_n": 1.0}, log_n=real(0)),
    *rows_for(best_of_n.reward_levels, {"p": P3, "r": R3}, p=DIST3, r=REWARD3),
    *rows_for(best_of_n.best_of_n_level_logpmf, {"log_mass": [-1.0, -1.0, -0.5], "n": 4},
              log_mass=one_of(None, "abc", [], [NAN], [INF, 0.0], [-INF, -INF], [[0.0]], ["a"]), n=real(1)),
    *[r for f in (best_of_n.best_of_n_distribution, best_of_n.best_of_n_kl, best_of_n.best_of_n_win_rate,
                  best_of_n.best_of_n_expected_reward)
      for r in rows_for(f, {"p": P3, "r": R3, "n": 4}, p=DIST3, r=REWARD3, n=real(1))],
    *rows_for(best_of_n.level_kl, {"log_a": [-1.0, -0.5], "log_b": [-0.5, -1.0]},
              log_a=one_of(None, "ab", [NAN, 0.0], [INF, 0.0], [0.0], []),
              log_b=one_of(None, "ab", [NAN, 0.0], [INF, 0.0], [0.0], [])),
    *rows_for(best_of_n.best_of_n_kl_bound, {"n": 4}, n=real(1)),
    *rows_for(best_of_n.best_of_n_kl_estimator, {"eps": 0.1, "n": 4},
              eps=real(0, 1, low_open=True, extra=[[NAN], ["a"]]), n=real(1)),
    *rows_for(best_of_n.sample_best_of_n, {"p": P3, "r": R3, "n": 4, "size": 5, "rng": 0},
              p=DIST3, r=REWARD3, n=integer(1, extra=["4"]), size=integer(0), rng=one_of(-1, 1.5, "x", object())),
    *rows_for(best_of_n.best_of_n_from_pool, {"rewards": [0.1, 0.5, 0.3, 0.9], "n": 2, "rng": 0},
              rewards=one_of(None, "ab", [], [NAN, 1.0], [INF, 1.0], [[1.0, 2.0]], ["a"]),
              n=integer(1, 4), rng=one_of(-1, "x", object())),
    # ---------------------------------------------------------------- theory: memoryless
    *rows_for(memoryless.sequence_reward_logpmf, {"p": P2, "r": R2, "m": 3, "method": "fft"},
              p=one_of(None, "ab", [0.5, 0.6], [NAN, 1.0]), r=REWARD2, m=integer(1, extra=["3"]),
              method=one_of("x", None, 1, "")),
    *rows_for(memoryless.rate_function, {"p": P2, "r": R2, "x": 0.5, "lam": 0.0},
              x=one_of(NAN, None, "0.5", [NAN], ["a"]), lam=real()),
    *rows_for(memoryless.tilt_for_mean, {"p": P2, "r": R2, "x": 0.5}, x=real(0, 1, low_open=True, high_open=True)),
    *rows_for(memoryless.renyi_cross_entropy, {"p": P3, "q": P3, "alpha": 2.0}, p=DIST3, q=DIST3,
              alpha=real(0, low_open=True)),
    *rows_for(memoryless.sequence_scaled_cgf, {"p": P2, "r": R2, "m": 3, "t": 0.5, "lam": 0.0},
              m=integer(1), t=real(), lam=real()),
    *rows_for(memoryless.tail_exponent, {"p": P2, "r": R2, "m": 3, "x": 0.5, "lam": 0.0},
              m=integer(1), x=real(), lam=real()),
    *rows_for(memoryless.best_of_n_vs_tilt, {"p": P2, "r": R2, "m": 5, "delta": 0.1},
              m=integer(1), delta=real(0, float(np.log(2)), low_open=True, high_open=True)),
    # ---------------------------------------------------------------- theory: preferences
    *rows_for(preferences.pooled_rate, {"weights": [0.5, 0.5], "rates": [0.9, 0.1]},
              weights=one_of([NAN, 1.0], [0.5, 0.6], [-0.5, 1.5], None, "ab", [0.5], [INF, 0.0]),
              rates=one_of([NAN, 1.0], [1.5, 0.0], [-0.1, 0.5], None, "ab", [INF, 0.0], [0.5])),
    *rows_for(preferences.bt_reward_gap, {"rate": 0.7}, rate=real(0, 1, low_open=True, high_open=True)),
    *rows_for(preferences.fit_bradley_terry, {"winners": [0, 1], "losers": [1, 0], "n_items": 2},
              winners=one_of([0, 5], [-1, 0], [0.5, 1], [NAN, 1], None, "ab", [0]),
              losers=one_of([1, -1], [1, 5], [1.7, 0], [INF, 0], None, "ab"),
              n_items=integer(2, extra=["2"]), l2=real(0)),
    *rows_for(preferences.kl_policy, {"reward": [1.0, 0.0], "beta": 0.5},
              reward=one_of(None, "ab", [], [NAN, 0.0], [INF, 0.0]), beta=real(0, low_open=True),
              reference=one_of([0.5, 0.6], "ab", [NAN, 1.0], [1.0])),
    *rows_for(preferences.collapse_curve, {"weights": [0.7, 0.3], "rates": [0.9, 0.1], "betas": [1.0]},
              weights=one_of([NAN, 1.0], [0.5, 0.6], None), rates=one_of([NAN, 1.0], [1.5, 0.0], None),
              betas=one_of([], [0.0], [NAN], [INF], None, "ab", [[1.0]], -1.0)),
    *rows_for(preferences.trimmed_mean, {"values": [1.0, 2.0, 3.0], "trim": 0.1},
              values=FINITE_ARRAY, trim=real(0, 0.5, high_open=True)),
    *rows_for(preferences.median_of_means, {"values": [1.0, 2.0, 3.0, 4.0], "blocks": 2},
              values=FINITE_ARRAY, blocks=integer(1, 4, extra=["2"]), rng=one_of(0, "x", object())),
    *rows_for(preferences.group_median, {"values": [1.0, 2.0, 3.0], "groups": [0, 0, 1]},
              values=FINITE_ARRAY, groups=one_of(None, "abc", [0, 1], {}, [[0, 0, 1]])),
    # ---------------------------------------------------------------- theory: trilemma
    *rows_for(trilemma.hoeffding_union_samples, {"epsilon": 0.1, "delta": 0.1, "groups": 1},
              epsilon=real(0, 1, low_open=True, high_open=True), delta=real(0, 1, low_open=True, high_open=True),
              groups=integer(1, extra=[2.5])),
    *rows_for(trilemma.normal_approx_samples, {"epsilon": 0.1, "delta": 0.1, "variance": 0.25},
              epsilon=real(0, 1, low_open=True, high_open=True), variance=real(0, 0.25, low_open=True),
              groups=integer(1)),
    *rows_for(trilemma.binomial_failure, {"n": 10, "epsilon": 0.1, "p": 0.5},
              n=integer(1, extra=["10"]), epsilon=real(0, 1, low_open=True, high_open=True), p=real(0, 1)),
    *rows_for(trilemma.exact_binomial_samples, {"epsilon": 0.1, "delta": 0.1, "p": 0.5},
              p=real(0, 1), delta=real(0, 1, low_open=True, high_open=True), groups=integer(1)),
    *rows_for(trilemma.achievable_epsilon, {"samples": 1000, "delta": 0.1},
              samples=real(0, low_open=True), delta=real(0, 1, low_open=True, high_open=True),
              groups=integer(1)),
    *rows_for(trilemma.groups_supported, {"samples": 1e7, "epsilon": 0.1, "delta": 0.1},
              samples=real(0), epsilon=real(0, 1, low_open=True, high_open=True)),
    *rows_for(trilemma.context_bound_log10, {"d": 10, "epsilon": 0.1, "delta": 0.1},
              d=real(0), n=real(0, low_open=True), kappa=real(0, low_open=True),
              epsilon=real(0, 1, low_open=True, high_open=True)),
    *rows_for(trilemma.coverage_samples, {"d": 3, "epsilon": 0.1, "delta": 0.1},
              d=integer(0, extra=[1.5]), epsilon=real(0, 1, low_open=True, high_open=True)),
    *rows_for(trilemma.headline_numbers, {"epsilon": 0.01, "delta": 0.001},
              epsilon=real(0, 1, low_open=True, high_open=True), delta=real(0, 1, low_open=True, high_open=True)),
    *rows_for(trilemma.sample_table, {"epsilon": 0.1, "delta": 0.1, "groups": [1, 2]},
              groups=one_of(None, 1, "ab", [], [0], [1.5], [NAN], [None]),
              epsilon=real(0, 1, low_open=True, high_open=True)),
    # ---------------------------------------------------------------- memory
    *rows_for(memory.get_arch, {"model": "qwen2.5-0.5b"}, model=one_of(None, 1, "nope", [], "")),
    *rows_for(memory.weight_bytes, {"arch": ARCH, "quant": None, "dtype_bytes": 2},
              arch=one_of(None, "qwen2.5-0.5b", 1), quant=one_of("8bit", 4, ""), dtype_bytes=integer(1)),
    *rows_for(memory.model_state_bytes, {"n_trainable": 1e6, "zero_stage": 0, "n_gpus": 1},
              n_trainable=real(0), zero_stage=integer(0, 3, extra=["0"]), n_gpus=integer(1),
              frozen_weight_bytes=real(0), offload=NOT_FLAG),
    *rows_for(memory.activation_bytes, {"arch": ARCH, "tokens": 1024, "grad_ckpt": True},
              arch=one_of(None, "x"), tokens=integer(1), grad_ckpt=NOT_FLAG),
    *rows_for(memory.logits_bytes, {"arch": ARCH, "tokens": 1024}, arch=one_of(None, "x"), tokens=integer(1)),
    *rows_for(memory.kv_cache_bytes, {"arch": ARCH, "sequences": 8, "seq_len": 1024},
              arch=one_of(None, "x"), sequences=integer(1), seq_len=integer(1)),
    *rows_for(memory.plan_memory, {"model": "qwen2.5-0.5b"},
              model=one_of(None, 1, "nope"), quant=one_of("8bit", 4, ""), lora_r=st.one_of(one_of(0, -1, 1.5, NAN, True, "16"), st.integers(max_value=0)),
              seq_len=integer(1), generations=integer(1), grad_ckpt=NOT_FLAG, zero_stage=integer(0, 3),
              n_gpus=integer(1), beta=real(0), offload=NOT_FLAG, adapter_bytes_per_param=real(0, low_open=True),
              cuda_context=NOT_FLAG, vllm=one_of("sglang", 1, ""), vllm_gpu_memory_utilization=real()),
    *rows_for(memory.plan_memory, {"model": "qwen2.5-0.5b", "vllm": "colocate"},
              vllm_gpu_memory_utilization=real(0, memory.HEADROOM, low_open=True, high_open=True)),
    *rows_for(ARCH.lora_params, {"r": 8}, r=integer(1)),
    *rows_for(PLAN.peak_gib, {"card_gib": 80.0}, card_gib=real(0, low_open=True)),
    # ---------------------------------------------------------------- io
    *rows_for(io.atomic_write_text, {"path": TMP / "t.txt", "text": "x"},
              path=one_of(None, 1, "", [], NAN), text=one_of(None, 1, b"x", {}, ["x"])),
    *rows_for(io.atomic_write_json, {"path": TMP / "t.json", "obj": {"a": 1}, "indent": 2},
              obj=one_of({"a": NAN}, [INF], {"a": object()}, {"a": b"x"}, {1j: 1}),
              indent=one_of(-1, 1.5, "2", True, [2])),
]


def _names(message: str, arg: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(arg)}(?![\w])", message) is not None


@pytest.mark.parametrize("row", [r for r in TABLE if r.runs], ids=lambda r: r.id)
def test_the_valid_call_of_each_row_runs(row):
    row.func(**row.valid)


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.id)
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_malformed_argument_is_refused_by_name(row, data):
    bad = data.draw(row.bad, label=row.arg)
    with pytest.raises((TypeError, ValueError)) as info:
        row.func(**{**row.valid, row.arg: bad})
    assert _names(str(info.value), row.arg), f"{row.id}: {type(info.value).__name__}: {info.value}"


def test_every_public_function_has_a_row():
    modules = [rewards, selection, data, verifier, divergence, optimum, bayes, best_of_n, memoryless,
               preferences, trilemma, memory, io]
    covered = {r.func for r in TABLE}
    no_arguments = {data.instructions_dir, io.read_json}  # nothing to corrupt / any bad path is an OSError
    missing = []
    for module in modules:
        for name, obj in vars(module).items():
            if (callable(obj) and not name.startswith("_") and not isinstance(obj, type)
                    and getattr(obj, "__module__", None) == module.__name__
                    and obj not in covered and obj not in no_arguments):
                missing.append(f"{module.__name__}.{name}")
    assert not missing


# ------------------------------------------------------------------- the known cases, one by one

def test_limr_rows_with_null_or_empty_fields_are_dropped_and_counted(tmp_path):
    path = tmp_path / "limr.jsonl"
    path.write_text('{"prompt": "What is 1+1?", "answer": "2"}\n{"prompt": "Q?", "answer": null}\n'
                    '{"prompt": null, "answer": "3"}\n{"prompt": "Q2?", "answer": " "}\n', encoding="utf-8")
    with pytest.warns(UserWarning, match="dropped 3 of 4 rows"):
        rows = data.load_limr_rows(str(path))
    assert rows == [{"question": "What is 1+1?", "answer": "2"}]
    assert all("None" not in r["question"] + r["answer"] for r in rows)
    with pytest.raises(TypeError, match="answer"):
        rewards.limr_math_reward(r"\boxed{None}", None)  # would have scored +1 against "None"


@pytest.mark.parametrize("loader", [lambda p: data.load_limr_rows(str(p)),
                                    lambda p: data.load_bleuberi(data_files=p),
                                    lambda p: data.load_arena(data_files=p)])
def test_empty_non_utf8_and_broken_files_are_named(tmp_path, loader):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match=r"empty\.jsonl is empty"):
        loader(empty)
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"prompt": "café", "answer": "1"}\n'.encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.jsonl is not UTF-8"):
        loader(latin)
    broken = tmp_path / "broken.jsonl"
    broken.write_text("not json\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl is not valid JSON"):
        loader(broken)


def test_messages_given_as_a_string_is_a_type_error(tmp_path):
    path = tmp_path / "b.jsonl"
    path.write_text('{"id": "x", "messages": "hello", "ref_output_gold": "r"}\n')
    with pytest.raises(TypeError, match="messages must be a list"):
        data.load_bleuberi(data_files=path)


@pytest.mark.parametrize("call", [lambda: data.load_bleuberi(data_files=BLEUBERI, n=0),
                                  lambda: data.load_bleuberi(data_files=BLEUBERI, n=-1),
                                  lambda: data.load_arena(data_files=ARENA, n=0),
                                  lambda: data.load_instructions(n=0)])
def test_n_below_one_is_refused(call):
    with pytest.raises(ValueError, match=r"n must be >= 1 or None"):
        call()


def test_bleuberi_drops_are_counted():
    with pytest.warns(UserWarning, match="dropped 1 of 6 rows"):
        assert len(data.load_bleuberi(data_files=BLEUBERI)) == 5


def test_empty_references_are_errors():
    with pytest.raises(ValueError, match="references"):
        rewards.bleu("a", [""])
    with pytest.raises(ValueError, match="reference 1 of 2"):
        rewards.bleu("a b c", ["a b c d e", ""])  # would have switched off the brevity penalty


def test_select_by_score_refuses_nan():
    with pytest.raises(ValueError, match="scores"):
        selection.select_by_score([.5, NAN, .1, NAN, .3], 2)


def test_reward_arguments_from_the_brief():
    with pytest.raises(TypeError, match="completions"):
        rewards.brevity_reward("a reply")
    with pytest.raises(ValueError, match="target_words"):
        rewards.brevity_reward(["a"], target_words=NAN)
    with pytest.raises(TypeError, match="content"):
        rewards.brevity_reward([[{"role": "assistant", "content": None}]])
    with pytest.raises(TypeError, match="answer"):
        rewards.limr_reward([r"\boxed{54}", "x"], answer="54")


@pytest.mark.parametrize("call, name", [
    (lambda: divergence.tilt(P3, R3, NAN), "lam"),
    (lambda: preferences.pooled_rate([NAN, 1.0], [0.5, 0.5]), "weights"),
    (lambda: preferences.pooled_rate([0.5, 0.5], [NAN, 1.0]), "rates"),
    (lambda: trilemma.groups_supported(NAN, 0.1, 0.1), "samples"),
    (lambda: trilemma.binomial_failure(10, 0.1, p=2), "p"),
    (lambda: bayes.mirror_descent(P3, R3, 1.0, 0.5, steps=-3), "steps"),
])
def test_theory_cases_from_the_brief(call, name):
    with pytest.raises(ValueError) as info:
        call()
    assert _names(str(info.value), name)


def test_kl_accepts_float32_distributions():
    rng = np.random.default_rng(0)
    for size in (3, 50, 1000):
        p = rng.dirichlet(np.ones(size)).astype(np.float32)
        q = rng.dirichlet(np.ones(size)).astype(np.float32)
        assert divergence.kl(p, p) == pytest.approx(0.0, abs=1e-6)
        assert np.isfinite(divergence.kl(p, q))
    with pytest.raises(ValueError, match="sum to 1"):
        divergence.kl(np.array([0.5, 0.6], dtype=np.float32), [0.5, 0.5])
    with pytest.raises(ValueError, match="sum to 1"):
        divergence.kl([0.5, 0.5 + 1e-6], [0.5, 0.5])  # float64 keeps the tight tolerance


@pytest.mark.parametrize("kwargs, name", [({"n_gpus": 0}, "n_gpus"), ({"n_gpus": -2}, "n_gpus"),
                                          ({"seq_len": 0}, "seq_len"), ({"generations": -1}, "generations"),
                                          ({"beta": NAN}, "beta"), ({"n_gpus": NAN}, "n_gpus")])
def test_plan_memory_refuses_bad_sizes(kwargs, name):
    with pytest.raises((TypeError, ValueError), match=name):
        memory.plan_memory("qwen2.5-1.5b", **kwargs)


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    import os

    old = os.umask(umask)
    try:
        text = io.atomic_write_text(tmp_path / "a.txt", "x")
        js = io.atomic_write_json(tmp_path / "b.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(text.stat().st_mode) == mode and stat.S_IMODE(js.stat().st_mode) == mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json"]


def test_gitignore_covers_atomic_write_leftovers():
    lines = (Path(__file__).parents[1] / ".gitignore").read_text().splitlines()
    assert "*.tmp" in lines


def test_sbatch_passes_arguments_intact(tmp_path):
    """Run the Slurm script with stub srun/scontrol/accelerate/python: every argument, spaces and
    quotes included, reaches ``alignkit train`` as one argv entry; hf_transfer is only enabled when
    importable (the stub python cannot import it)."""
    script = Path(__file__).parents[1] / "alignkit" / "recipes" / "slurm" / "train.sbatch"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stubs = {"srun": 'shift; exec "$@"', "scontrol": "echo node1; for i in $(seq 2 5000); do echo node$i; done",  # a long list: a
             # reader that closes the pipe early (head) would SIGPIPE it and abort under pipefail "python": "exit 1",
             "accelerate": 'printf "%s\\n" "HF=${HF_HUB_ENABLE_HF_TRANSFER:-unset}" "$@"'}
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NNODES": "2",
           "SLURM_PROCID": "1"}
    args = ["recipe with space.yaml", "--grpo.run_name", "it's a \"run\"", "$(touch pwned)", "*"]
    out = subprocess.run(["bash", str(script), *args], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=30, check=True).stdout.splitlines()
    assert out[0] == "HF=unset"
    assert out[-len(args):] == args and out[-len(args) - 1] == "train"
    assert out[out.index("--machine_rank") + 1] == "1" and out[out.index("--num_processes") + 1] == "16"
    assert not (tmp_path / "pwned").exists()
