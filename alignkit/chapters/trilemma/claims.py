"""Chapter 5 (the RLHF trilemma, arXiv 2511.19504): its pre-registered claims.

The notebook supplies only measurements: residuals for the closed forms, intervals for the
seeded simulations and the reward model on the bundled model's features.
:func:`alignkit.ledger.verdict` alone turns them into verdicts.

Sources. Only the paper's abstract and arXiv metadata are verified: the trilemma itself, the
targets eps <= 0.01 and delta <= 0.001, Omega(2^d_context) operations, 10^3-10^4 samples collected
vs 10^7-10^8 needed, and preference collapse as a symptom. The bound's form
kappa 2^d / (eps^2 n delta), the "> 99% on majority opinions" and the alpha ~ 0.05 poisoning
fraction come from one third-party summary of the paper ("secondary source, unverified"). The
paper is a position paper without experiments, so every simulation below is "derived here": it
illustrates a mechanism under assumptions the notebook states (a 70/30 population preferring A
with probability 0.9 / 0.1; a formal/casual style preference on the bundled SmolLM2-135M); it
cannot reproduce a proof. A closed-form consequence is a math claim (verified / failed).

Inequalities checked in closed form are math claims whose residual is how far the inequality
is from holding (``max(0, ...)``, exactly 0 when it holds) with tolerance 0.
"""

from __future__ import annotations

from alignkit.ledger import Claim

_ABSTRACT = "paper, abstract"
_SECONDARY = "secondary source, unverified"
_DIFF = (-1.0, 1.0)
_RATE = (0.0, 1.0)
_DIRECTION = "the trilemma claims a direction, not a size: any difference counts"
_POISON = ("paper, abstract (delta-robustness vs eps-representativeness); the poisoning "
           "simulation (200 annotators x 5 labels, adversaries label everything 0, alpha = 0.1) "
           "derived here")
_RM = ("paper, abstract (preference collapse); the experiment derived here: a Bradley-Terry "
       "head on frozen SmolLM2-135M features, synthetic formal/casual pairs "
       "(alignkit.chapters.trilemma.style_pairs)")

CLAIMS = (
    Claim("needed-1e7", "1/(eps^2 delta) at the abstract's eps = 0.01, delta = 0.001 is 10^7, "
          "the low end of the samples it says are needed", kind="math",
          source=f"{_ABSTRACT} (targets, 10^7-10^8 needed); the bound's 1/(eps^2 delta) factor: "
                 f"{_SECONDARY}; the arithmetic derived here",
          paper="10^7-10^8 samples needed", statistic="log10(1 / (eps^2 delta)) - 7",
          tolerance=1e-9),
    Claim("practice-too-few", "10^4 samples (the top of the abstract's 10^3-10^4) cannot give "
          "eps = 0.01 at delta = 0.001 even for one group: the sample mean's exact failure "
          "probability at p = 1/2 exceeds delta", kind="math",
          source=f"{_ABSTRACT} (10^3-10^4 collected); the exact binomial check derived here",
          paper="10^3-10^4 collected vs 10^7-10^8 needed",
          statistic="max(0, delta - P(|k/m - 1/2| > 0.01)), k ~ Binomial(10^4, 1/2)",
          tolerance=0.0),
    Claim("context-doubling", "With unstructured per-context preferences, the samples needed "
          "double with each binary context dimension (slope 1 of log2 samples vs d)",
          kind="empirical",
          source=f"{_ABSTRACT} (Omega(2^d_context) operations); the coverage simulation derived "
                 "here (2^d contexts with independent U(0, 1) rates, mean |error| <= 0.1)",
          paper="Omega(2^d_context) operations",
          statistic="slope of log2(samples needed) vs d = 1..8, minus 1",
          hypothesis="equivalent", margin=0.2,
          margin_reason="2^d means slope 1; +-0.2 still separates it from 2^(d/2) or 2^(1.5d) "
                        "and allows the Monte Carlo and bisection noise of each point"),
    Claim("homogeneous-floor", "A homogeneous (majority-only) annotator pool's error does not "
          "shrink with more labels: at m = 10^4 it equals the majority-population gap 0.24",
          kind="empirical",
          source=f"{_ABSTRACT} ('homogeneous annotator pools'); the 70/30 population and the "
                 "simulation derived here",
          paper="no number (10^3-10^4 samples 'from homogeneous annotator pools')",
          statistic="mean |error| of a majority-only pool at m = 10^4 minus |0.9 - 0.66|",
          hypothesis="equivalent", margin=0.01,
          margin_reason="the abstract's eps target: within it of 0.24 the error is the pool's "
                        "bias, not sampling noise (a diverse pool's error at 10^4 is ~0.004)",
          bounds=_DIFF),
    Claim("bt-pooled", "One scalar Bradley-Terry reward sees only the pooled rate: fitted on "
          "labels from both groups, its gap r_A - r_B is logit(0.66) = 0.663", kind="empirical",
          source=f"{_SECONDARY} (the Bradley-Terry loss of the pipeline); the two-group "
                 "population and the closed form derived here",
          paper="no number (mechanism behind 'preference collapse', abstract)",
          statistic="maximum-likelihood r_A - r_B from sampled labels, minus logit(0.66)",
          hypothesis="equivalent", margin=0.05,
          margin_reason="a pooled rate 0.011 away moves the gap by 0.05; the minority's own "
                        "logit(0.1) = -2.2 is 2.9 away"),
    Claim("collapse-beta01", "Preference collapse: at beta = 0.1 the KL-regularised policy puts "
          "more than 99% of its mass on the majority's response", kind="math",
          source=f"{_SECONDARY} ('> 99% probability on majority opinions'); the 70/30 "
                 "population and pi ~ pi0 exp(r / beta) derived here",
          paper="> 99% on majority opinions (unverified)",
          statistic="max(0, 0.99 - pi(A)) at beta = 0.1", tolerance=0.0),
    Claim("collapse-beta1", "At beta = 1 the policy keeps exactly the pooled rate 0.34 on the "
          "minority's response (more than the minority's 30% share; collapse below the share "
          "needs beta < 0.78)", kind="math",
          source="derived here (pi ~ pi0 exp(r / beta) with r_A - r_B = logit(0.66))",
          paper="no number", statistic="|pi(B) - (1 - 0.66)| at beta = 1", tolerance=1e-12),
    Claim("robust-median-clean-cost", "A robust aggregator pays in representativeness: without "
          "attack the median of annotator means is further from the population rate than the "
          "mean", kind="empirical", source=_POISON, paper="no number",
          statistic="|error| of the median minus |error| of the mean, no attack, per repetition",
          hypothesis="greater", margin=0.0, margin_reason=_DIRECTION, bounds=_DIFF),
    Claim("robust-median-damage", "...and buys robustness: at alpha = 0.1 poisoning moves the "
          "median less than the mean", kind="empirical", source=_POISON,
          paper="no number (alpha ~ 0.05 compromises a diverse pool: unverified)",
          statistic="|poisoned - clean| estimate, median minus mean, per repetition",
          hypothesis="less", margin=0.0, margin_reason=_DIRECTION, bounds=_DIFF),
    Claim("robust-trimmed-damage", "A 20%-trimmed mean also resists this attack better than "
          "the mean", kind="empirical", source=_POISON,
          paper="no number (alpha ~ 0.05 compromises a diverse pool: unverified)",
          statistic="|poisoned - clean| estimate, trimmed mean minus mean, per repetition",
          hypothesis="less", margin=0.0, margin_reason=_DIRECTION, bounds=_DIFF),
    Claim("rm-majority", "One scalar reward sides with the majority (real model): at minority "
          "share 0.3, a held-out casual answer beats its formal twin with probability < 1/2",
          kind="empirical", source=_RM, paper="no number (preference collapse)",
          statistic="mean sigmoid(r(casual) - r(formal)) over held-out pairs and heads",
          hypothesis="less", margin=0.5,
          margin_reason="1/2 is indifference: below it the minority's style loses on average",
          bounds=_RATE),
    Claim("rm-shrinks", "The minority's style loses reward as its share shrinks (real model): "
          "P(casual beats formal) is lower at share 0.1 than at 0.5", kind="empirical",
          source=_RM, paper="no number (preference collapse)",
          statistic="P(casual beats formal), share 0.1 minus share 0.5, paired by seed and pair",
          hypothesis="less", margin=0.0, margin_reason=_DIRECTION, bounds=_DIFF),
    Claim("rm-pooled", "The real reward model learns the pooled rate: at share 0.3 its "
          "held-out P(casual beats formal) is within 0.1 of 0.34", kind="empirical",
          source=_RM + "; the pooled-rate optimum derived here", paper="no number",
          statistic="mean sigmoid(r(casual) - r(formal)) at share 0.3, minus 0.34",
          hypothesis="equivalent", margin=0.1,
          margin_reason="the pooled rate is the Bradley-Terry optimum on training questions; 0.1 "
                        "allows for generalising to new questions and is still 0.46 from the "
                        "minority's 0.9",
          bounds=(-0.34, 0.66)),
)
