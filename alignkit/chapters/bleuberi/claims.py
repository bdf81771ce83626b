"""Chapter 1's claims, pre-registered before the run (:class:`alignkit.ledger.Claim`).

The notebook supplies only measurements: a residual for the BLEU definition, paired bootstrap
intervals for the agreement study (prompt-clustered, in percentage points) and for the training
comparison (over seeds and held-out prompts, pass rate and BLEU as fractions), and a reason for
what is not run. :func:`alignkit.ledger.verdict` turns them into verdicts.

Sources: "paper" is arXiv 2505.11080 (Figure 1: human agreement on Chatbot Arena; Table 1:
MT-Bench / ArenaHard v1, v2 / WildBench; the VeriScore results); "released code" is
github.com/lilakk/BLEUBERI at commit e0d1563. Our judge is a verifier of machine-checkable
constraints, not human votes or GPT-4.1-mini, and our reward model is a linear head on a frozen
135M model: the statistics below are stand-ins for the paper's, so the margins are stated
conventions, not the paper's.
"""

from __future__ import annotations

from alignkit.ledger import Claim

_AGREE = "paper, Figure 1 (agreement with human preference, ~900 Chatbot Arena pairs)"
_AGREE_STAT = "agreement with the verifier's preferred answer (%), paired difference"
_PCT = (-100.0, 100.0)
_RATE = (-1.0, 1.0)
_DIRECTION = "the paper reports the direction only; any gain counts"

CLAIMS = (
    Claim("bleu-exact",
          "Our BLEU is the paper's reward: 13a tokens, add-one smoothing on every order, "
          "max-merge over references, shortest-reference brevity penalty",
          kind="math",
          source="released code, training/dataset.py (evaluate.load('bleu'), smooth=True); "
                 "the 5 unit cases derived here from that definition",
          paper="no number (the reward's definition)",
          statistic="max |our BLEU - hand-derived value| over 5 unit cases", tolerance=1e-4),
    Claim("agree-bleu-vs-longer", "BLEU (1 reference) agrees with the judge more often than "
          "'longer wins'", kind="empirical", source=_AGREE,
          paper="BLEU 1 ref 72.3% vs longer wins 65.1%",
          statistic=_AGREE_STAT + ": BLEU 1 ref - longer wins",
          hypothesis="greater", margin=0.0, margin_reason=_DIRECTION, bounds=_PCT),
    Claim("agree-more-refs", "Agreement rises with more references (BLEU 4 refs above 1 ref)",
          kind="empirical", source=_AGREE,
          paper="72.3% (1 ref) -> 73.5% (4 refs) -> 74.2% (5 refs)",
          statistic=_AGREE_STAT + ": BLEU 4 ref - BLEU 1 ref",
          hypothesis="greater", margin=0.0, margin_reason=_DIRECTION, bounds=_PCT),
    Claim("agree-bleu-equiv-rm", "BLEU (4 refs) agrees with the judge as often as a trained reward "
          "model, within 5 points", kind="empirical", source=_AGREE,
          paper="BLEU 4 ref 73.5% vs RM-8B 74.5% (BLEU 1-5 refs: 0.3-2.2 points below RM-8B)",
          statistic=_AGREE_STAT + ": BLEU 4 ref - RM", hypothesis="equivalent", margin=5.0,
          margin_reason="'comparable' read as within 5 points, about twice the paper's largest "
                        "BLEU vs RM-8B gap (2.2 points)", bounds=_PCT),
    Claim("agree-bleu-plus-rm-vs-rm", "BLEU+RM agrees with the judge more often than the RM alone",
          kind="empirical", source=_AGREE, paper="BLEU+RM-8B 76.7% vs RM-8B 74.5%",
          statistic=_AGREE_STAT + ": BLEU+RM - RM",
          hypothesis="greater", margin=0.0, margin_reason=_DIRECTION, bounds=_PCT),
    Claim("agree-bleu-plus-rm-vs-bleu", "BLEU+RM agrees with the judge more often than BLEU alone",
          kind="empirical", source=_AGREE, paper="BLEU+RM-8B 76.7% vs BLEU 5 ref 74.2%",
          statistic=_AGREE_STAT + ": BLEU+RM - BLEU 4 ref",
          hypothesis="greater", margin=0.0, margin_reason=_DIRECTION, bounds=_PCT),
    Claim("train-bleu-equiv-rm", "GRPO-BLEU is competitive with GRPO-RM: held-out verifier pass "
          "rates within 5 points", kind="empirical",
          source="paper, Table 1 (judge GPT-4.1-mini; average of 4 benchmarks)",
          paper="avg 44.6 vs 45.9 (Qwen2.5-7B), 33.8 vs 36.2 (3B), 32.2 vs 31.6 (Llama)",
          statistic="pass rate GRPO-BLEU - GRPO-RM (fraction), paired by seed and prompt",
          hypothesis="equivalent", margin=0.05,
          margin_reason="'competitive' read as within 5 points of pass rate, about twice the "
                        "paper's largest GRPO-RM lead (2.4 points of Table 1's 0-100 average)",
          bounds=_RATE),
    Claim("train-bleu-above-base",
          "GRPO-BLEU raises the held-out verifier pass rate above the base model",
          kind="empirical", source="paper, Table 1",
          paper="avg 44.6 vs base 34.3 (Qwen2.5-7B); 33.8 vs 30.1 (3B); 32.2 vs 29.1 (Llama)",
          statistic="pass rate GRPO-BLEU - base model (fraction), paired by prompt",
          hypothesis="greater", margin=0.0, margin_reason=_DIRECTION, bounds=_RATE),
    Claim("train-bleu-vs-sft", "GRPO-BLEU beats SFT on the same references (held-out pass rate)",
          kind="empirical", source="paper, Table 1",
          paper="avg 44.6 vs 40.0 (Qwen2.5-7B), 33.8 vs 32.2 (3B); but 32.2 vs 33.2 (Llama)",
          statistic="pass rate GRPO-BLEU - SFT (fraction), paired by seed and prompt",
          hypothesis="greater", margin=0.0, margin_reason=_DIRECTION, bounds=_RATE),
    Claim("train-bleu-rises", "GRPO with the BLEU reward raises held-out BLEU over the base model",
          kind="empirical",
          source="derived here (the reward's own objective on held-out prompts)",
          paper="no number (the paper reports no held-out BLEU)",
          statistic="BLEU vs 4 references, GRPO-BLEU - base model, paired by prompt",
          hypothesis="greater", margin=0.0, margin_reason=_DIRECTION, bounds=_RATE),
    Claim("grounding",
          "BLEUBERI outputs are at least as factually grounded as GRPO-RM's (VeriScore)",
          kind="not_run", source="paper, VeriScore results (Qwen2.5-7B)",
          paper="F1@K FreshQA 60.5 vs 60.7 (GRPO-RM) vs 45.0 (SFT); LongFact 89.0 vs 87.0 vs 81.6"),
)
