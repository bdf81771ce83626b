"""Chapter 4 (Asymptotics of language model alignment, and best-of-n guarantees): its pre-registered claims.

The exact math of the chapter lives in :mod:`alignkit.theory.best_of_n` and
:mod:`alignkit.theory.memoryless`; what only this chapter needs is the question set of its real-model
experiment, :data:`QA`, and its claims ledger, :data:`CLAIMS`, fixed here before the notebook runs (``notebooks/04_best_of_n.ipynb`` supplies only the residuals and
estimates, and :mod:`alignkit.ledger` turns them into verdicts).

Sources. ``YANG`` is Yang, Salamatian, Sun, Suresh, Beirami, "Asymptotics of language model alignment",
arXiv 2404.01730; ``BEIRAMI`` is Beirami, Agarwal, Berant, D'Amour, Eisenstein, Nagpal, Suresh,
"Theoretical guarantees on the best-of-n alignment policy", arXiv 2401.01879. Only the abstracts of both
were checked: theorem numbers quoted for Beirami et al. come from a secondary source and are marked so.
Neither paper reports numbers for the toys or the model used here, so every ``paper`` field says what the
paper states, not a number of ours.
"""

from __future__ import annotations

from alignkit.ledger import Claim

__all__ = ["BEIRAMI", "CLAIMS", "LM_N", "QA", "YANG"]

YANG = "Yang et al. 2024, arXiv 2404.01730"
BEIRAMI = "Beirami et al. 2024, arXiv 2401.01879"
LM_N = (2, 4, 8, 16)  # the best-of-N sizes judged on the real model (every one of them, not the best)

# Chapter 4's real best-of-N: short factual questions and a one-sentence reference answer each, scored
# with BLEU (alignkit.rewards.bleu). Written for this chapter; the notebook uses the first scale.n_eval.
QA: tuple[tuple[str, str], ...] = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("What is the largest planet in our solar system?",
     "The largest planet in our solar system is Jupiter."),
    ("How many days are there in a week?", "There are seven days in a week."),
    ("What do bees make?", "Bees make honey from the nectar of flowers."),
    ("What is the boiling point of water at sea level in Celsius?",
     "Water boils at 100 degrees Celsius at sea level."),
    ("Who wrote Romeo and Juliet?", "Romeo and Juliet was written by William Shakespeare."),
    ("What colour is the sky on a clear day?", "The sky is blue on a clear day."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What is the freezing point of water in Celsius?", "Water freezes at 0 degrees Celsius."),
    ("Which ocean is the largest?", "The Pacific Ocean is the largest ocean on Earth."),
    ("What gas do plants absorb from the air?", "Plants absorb carbon dioxide from the air."),
)

_BINARY = "binary memoryless source p(1) = 0.3, r(1) = 1, Delta = 0.1 nats per token, N = e^(m Delta)"

_THEORY = [
    Claim("B1", "The KL-constrained optimum max{E_phi r : KL(phi||p) <= Delta} is the tilt phi_lambda with "
                "KL(phi_lambda||p) = Delta: a generic optimiser (SLSQP) reaches the closed form's reward on 20 "
                "random problems",
          "math", f"{YANG}, abstract (closed form of the optimal KL-constrained policy); proof derived here "
                  "(Gibbs variational inequality)",
          "closed form (no number)", statistic="max over 20 problems of |E_SLSQP r - E_closed form r|",
          tolerance=1e-6),
    Claim("B2", "KL(phi||phi_lambda) = KL(phi||p) - KL(phi_lambda||p) - lambda (E_phi r - E_phi_lambda r) for "
                "every phi: the identity from which 'comparable reward and KL => close to phi_Delta in KL' follows",
          "math", f"derived here; it gives {YANG}, abstract, claim 2 (the paper's constants are unverified)",
          "no number", statistic="max |identity residual| over 200 random (phi, p, r, lambda)", tolerance=1e-12),
    Claim("B3", f"Best-of-N reward per token approaches the optimal tilt's x*: x* - E_BoN r / m < 1e-3 at "
                f"m = 10^4 ({_BINARY})",
          "math", f"{YANG}, abstract (best-of-N asymptotically equivalent to the KL-optimal policy: equal reward)",
          "equal in the limit m -> inf (no finite-m number)", statistic="x* - E_BoN r / m at m = 10^4",
          tolerance=1e-3),
    Claim("B4a", f"Per-token KL(best-of-N || tilt) decreases with m over m = 10, 100, 1000, 10^4 ({_BINARY})",
          "math", f"{YANG}, abstract (vanishing KL between best-of-N and the optimal policy)",
          "vanishing as m -> inf (no finite-m number)",
          statistic="largest increase of KL(BoN||tilt)/m from one m to the next (0 if none)", tolerance=0.0),
    Claim("B4b", f"Per-token KL(best-of-N || tilt) < 5e-4 at m = 10^4 ({_BINARY})",
          "math", f"{YANG}, abstract (vanishing KL between best-of-N and the optimal policy)",
          "vanishing as m -> inf (no finite-m number)", statistic="KL(BoN||tilt)/m at m = 10^4",
          tolerance=5e-4),
    Claim("B4c", "Only the per-token KL vanishes: the total KL(best-of-N || tilt) grows by about 1/2 nat per "
                 "unit of log m (between m = 1000 and 10^4)",
          "math", "derived here (heuristic: best-of-N sits on O(1) reward levels, the tilt spreads over sqrt(m));"
                  f" {YANG} claims only the per-token limit",
          "no number", statistic="growth of the total KL per unit of log m, minus 0.5", tolerance=0.05),
    Claim("B5a", "Under the tilt, the per-token reward obeys an LDP with rate I_lambda: the exact finite-m tail "
                 "exponent -1/m log P(R_m/m >= x) is within 0.02 of I_lambda(x) at m = 3200 (3 cases)",
          "math", f"{YANG}, abstract (LDP with a fully characterised rate function); rate derived here",
          "rate function characterised (no number)",
          statistic="max over 3 (x, lambda) of |tail exponent at m = 3200 - I_lambda(x)|", tolerance=0.02),
    Claim("B5b", "The finite-m tail exponents decrease monotonically towards the rate (m = 50 ... 3200, 3 cases)",
          "math", f"derived here (convergence at O(log m / m)); {YANG}, abstract, for the limit",
          "no number", statistic="largest increase of the tail exponent from one m to the next (0 if none)",
          tolerance=0.0),
    Claim("B6a", "The scaled CGF of the tilt is exact at every m: 1/m log E_phi e^(t r) = Lambda(lambda + t) - "
                 "Lambda(lambda)",
          "math", f"derived here (the tilt factorises per token); {YANG}, abstract, on scaled cumulants",
          "no number", statistic="max |difference| over m in (1, 10, 500), t in (-1, 0.5, 2)", tolerance=1e-9),
    Claim("B6b", "One reading of 'the scaled cumulants are characterised by a proper Renyi cross entropy': "
                 "Lambda(s) = -s H_{1+s}(p; q_r) + s log sum_y e^r(y), q_r the reward's Boltzmann distribution",
          "math", f"derived here; one reading of {YANG}, abstract (the paper's exact statement is unverified)",
          "no number", statistic="max |difference| over s in (0.25, 0.5, 1, 2, 4), 3-letter source",
          tolerance=1e-9),
    Claim("N1", "KL(best-of-n || ref) <= log n - (n-1)/n (2000 random discrete p, r with ties, n up to e^9)",
          "math", f"{BEIRAMI}, abstract (the formula is an upper bound)", "KL <= log n - (n-1)/n",
          statistic="max over cases of KL - (log n - (n-1)/n), floored at 0", tolerance=1e-12),
    Claim("N2", "The formula is false as an equality: for uniform K = 10 and n = 10^4 the KL is log K = 2.3026 "
                "(saturated) while the formula gives 8.21",
          "math", f"{BEIRAMI}, abstract (false as an equality); saturation at log K derived here",
          "not an equality (no number for this case)", statistic="KL - log 10 at K = 10, n = 10^4",
          tolerance=1e-4),
    Claim("N3a", "The bound is tight for many equally rare outcomes: uniform K = 10^4, n = 16 gives "
                 "KL = log n - (n-1)/n to 1e-4",
          "math", f"{BEIRAMI}, abstract (tightness characterised); example derived here",
          "tightness characterised (no number)", statistic="bound - KL at K = 10^4, n = 16", tolerance=1e-4),
    Claim("N3b", "The bound's gap is at most 2 n (n-1) sum_y p(y)^2 (2000 random cases)",
          "math", f"{BEIRAMI} (Thm 3.4 by a secondary source's numbering, unverified)",
          "gap <= 2n(n-1) sum p^2", statistic="max over cases of gap - 2n(n-1) sum p^2, floored at 0",
          tolerance=1e-12),
    Claim("N4a", "The estimator D_hat(eps) is exactly the KL of best-of-n when the top outcome has mass eps and "
                 "the rest is continuous (2e5 tiny atoms; eps in 1e-4 ... 0.5, n in 2, 16, 256)",
          "math", f"estimator of {BEIRAMI} (formula from a secondary source, unverified); exactness derived here",
          "no number", statistic="max |D_hat(eps) - exact KL| over 12 cases", tolerance=1e-6),
    Claim("N4b", "On uniform K outcomes D_hat(1/K) is within 0.03 nats of the exact KL (4 cases of the table)",
          "math", f"estimator of {BEIRAMI} (formula from a secondary source, unverified); cases derived here",
          "no number", statistic="max |D_hat(1/K) - exact KL| over 4 (K, n)", tolerance=0.03),
    Claim("N4c", "D_hat(1/K) upper-bounds the exact KL on the same 4 uniform cases (E D_hat >= KL)",
          "math", f"{BEIRAMI} (a conjecture, Conj. 4.4 by a secondary source's numbering, unverified)",
          "E D_hat >= KL (conjectured)", statistic="max over 4 cases of KL - D_hat(1/K), floored at 0",
          tolerance=0.0),
    Claim("N5", "The win rate of best-of-n against a reference sample is <= n/(n+1), ties counting 1/2 "
                "(2000 random cases)",
          "math", f"{BEIRAMI}, abstract (win rate at most n/(n+1)); the paper's tie convention is unverified",
          "W <= n/(n+1)", statistic="max over cases of W - n/(n+1), floored at 0", tolerance=1e-12),
]

_MARGIN_L1 = ("0.05 is the gap between the tie-free win rates of N = 8 and N = 16 (0.889 vs 0.941): a "
              "prediction within it still tells neighbouring N apart")

_LM = [
    Claim(f"L1-N{n}", f"SmolLM2 + BLEU: the real best-of-{n} win rate (picked in half B, scored against half A) "
                      f"equals the exact tie-aware prediction from half A within 0.05",
          "empirical", f"derived here (the exact win rate of best-of-n, {BEIRAMI}, applied to the "
                       "empirical reference half)",
          f"<= {n}/{n + 1} (no number for this model)",
          statistic=f"mean over prompts of (real - exact) win rate at N = {n}", hypothesis="equivalent",
          margin=0.05, margin_reason=_MARGIN_L1, bounds=(-1.0, 1.0))
    for n in LM_N
] + [
    Claim("L2", "SmolLM2 + BLEU: ties pull the exact best-of-16 win rate below 16/17 by more than 0.01",
          "empirical", f"{BEIRAMI}, abstract (n/(n+1) is a bound; ties lower it); this case derived here",
          "W <= n/(n+1) (no number for this model)",
          statistic="mean over prompts of 16/17 - exact win rate at N = 16", hypothesis="greater",
          margin=0.01, margin_reason="below 0.01 the tie effect would be small next to L1's 0.05 margin",
          bounds=(0.0, 1.0)),
    Claim("L3a", "On low-entropy prompts the formula log N - (N-1)/N overstates best-of-N's true KL",
          "not_run", f"{BEIRAMI} (Alpaca prompts on Gemma, per a secondary source, unverified)",
          "formula breaks on low-entropy prompts (no number checked)"),
    Claim("L3b", "SmolLM2 + BLEU: at N = 16, D_hat(eps) of the real picks (eps = base-model probability of the "
                 "picked completion) is below the formula by more than 0.05 nats",
          "empirical", f"estimator of {BEIRAMI} (formula from a secondary source, unverified); this case "
                       "derived here",
          "D_hat <= log N - (N-1)/N (no number for this model)",
          statistic="mean over prompts of (log 16 - 15/16) - mean D_hat(eps) of the picks", hypothesis="greater",
          margin=0.05, margin_reason="0.05 nats is 3% of the formula at N = 16; a smaller difference would not "
                                     "change how the KL is reported", bounds=(0.0, 1.8351)),
]

CLAIMS: tuple[Claim, ...] = tuple(_THEORY + _LM)
