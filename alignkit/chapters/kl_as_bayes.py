"""Chapter 3 (RL with KL penalties is better viewed as Bayesian inference): its pre-registered claims
and its real-LM task.

:data:`CLAIMS` is the chapter's claims ledger, fixed here before the notebook runs
(``notebooks/03_kl_as_bayes.ipynb`` supplies only residuals and estimates; :mod:`alignkit.ledger` turns
them into verdicts). Source: Korbak, Perez, Buckley, "RL with KL penalties is better viewed as Bayesian
inference", Findings of EMNLP 2022, arXiv 2205.11275; only its abstract and the first author's blog post
of the same title (2022-05-20, which the authors describe as based on the paper) were checked, so no
section or equation number is quoted. The paper is conceptual and has no numerical tables: no ``paper``
field below is a number of the paper, and every toy and threshold is this chapter's own.

The exact math of the chapter lives in :mod:`alignkit.theory.bayes` and the toy policies in
:mod:`alignkit.toy` / :mod:`alignkit.toy_rl`; the diversity metrics in :mod:`alignkit.diversity`.
What only this chapter needs is the GRPO task of its real-LM experiment (beta = 0 against beta > 0
on the bundled model), also the recipe task ``keyword``.
"""

from __future__ import annotations

from collections.abc import Sequence

from alignkit.data import prompt_rows
from alignkit.diversity import keyword_reward
from alignkit.ledger import Claim

PARIS_TOPICS = ("the Eiffel Tower", "the Louvre", "Notre-Dame cathedral", "the river Seine",
                "the Arc de Triomphe", "Montmartre", "the Champs-Elysees", "the Musee d'Orsay")


def keyword_task(n_train: int = 64, seed: int = 0, keyword: str = "Paris",
                 topics: Sequence[str] = PARIS_TOPICS):
    """Chapter 3's GRPO task: one-sentence prompts about Paris landmarks, reward = mentions ``keyword``.

    The prompts never name the keyword; the base model mentions "Paris" in about a quarter of its
    answers, so GRPO has signal from the first step. The recipe task ``keyword`` (see ``alignkit.chapters.index``).
    """
    import random

    from datasets import Dataset

    if n_train < 1:
        raise ValueError(f"n_train must be >= 1, got {n_train}")
    if not topics:
        raise ValueError("topics must list at least one topic")
    rng = random.Random(seed)
    rows = prompt_rows([f"Write one sentence about {rng.choice(topics)}." for _ in range(n_train)])
    return Dataset.from_list(rows), [keyword_reward(keyword)]



KORBAK = "Korbak, Perez, Buckley 2022, arXiv 2205.11275"
BLOG = "the first author's blog post of the same title (2022-05-20)"
TOY_BETAS = (3.0, 1.0, 0.3)  # the beta sweep of the exact KL-RL runs on Toy A: a claim for each
_TOY = "derived here (Toy A: 3 tokens, length 4, seeded bigram prior, r = number of 'Paris' tokens)"
_TOY4 = "derived here (4 tokens, length 4, seeded bigram prior with 'Paris' rare, r = 1 if it mentions Paris)"
_NO_DIFF = ("the paper predicts a direction (beta = 0 less diverse, further from the reference, at equal "
            "reward), not a size: 0 is the no-difference value")
_EQUAL_REWARD = ("beta = 0 minus beta = {b} in {what}, at equal reward: per run a line fitted to (reward, "
                 "{what}) over the logged GRPO steps, evaluated at the middle of the reward range both runs cover")

CLAIMS: tuple[Claim, ...] = (
    Claim("collapse-entropy", "Plain RL's optimum is a point mass on the argmax: exact gradient ascent on "
                              "Toy A's sequence logits ends with entropy < 0.01 nats",
          "math", f"{KORBAK}, abstract (distribution collapse); check {_TOY}", "collapse (no number)",
          statistic="entropy of the policy after the exact ascent (nats)", tolerance=0.01),
    Claim("collapse-mass", "Plain RL's optimum is a point mass on the argmax: the exact ascent ends with more "
                           "than 0.999 of the mass on the all-Paris sequence",
          "math", f"{KORBAK}, abstract (distribution collapse); check {_TOY}", "collapse (no number)",
          statistic="1 - probability of the argmax after the exact ascent", tolerance=1e-3),
    Claim("collapse-sampled", "Sampled REINFORCE with beta = 0 on the binary 'mentions Paris' reward collapses "
                              "onto one sequence: final entropy < 0.1 nats",
          "empirical", f"{BLOG}, Figure 1 (adapted from Khalifa et al. 2021; whether the paper prints it is "
                       f"unverified); {_TOY4}",
          "qualitative: the RL-tuned LM keeps a few sentences (no number)",
          statistic="final policy entropy (nats), mean over seeds", hypothesis="less", margin=0.1,
          margin_reason="exp(0.1) = 1.1: fewer than 1.1 effectively distinct sequences out of 256",
          bounds=(0.0, 5.5452)),
    Claim("flow-reward", "Counter-case, part 1: the exact gradient flow of plain RL (tabular autoregressive "
                         "policy) reaches E[r] > 0.99 on the binary reward",
          "math", f"{_TOY4}: collapse is a property of the optimum, not of every training run",
          "no number", statistic="1 - E_pi[r] at the end of the flow", tolerance=0.01),
    Claim("flow-entropy", "Counter-case, part 2: that exact flow keeps more than half of H(pi0 | mentions Paris)",
          "math", f"{_TOY4}: with no sampling noise the gradient pi(x)(r(x) - E r) vanishes once E r = 1",
          "no number", statistic="shortfall 0.5 - H(pi) / H(pi0 | mentions Paris), floored at 0",
          tolerance=0.0),
    Claim("klrl-diverse", "With a KL penalty (beta = 0.1) sampled REINFORCE keeps more than 0.8 of "
                          "H(pi0 | mentions Paris)",
          "empirical", f"{KORBAK}, abstract (the KL penalty prevents collapse); {_TOY4}",
          "KL penalty fixes collapse (no number)",
          statistic="final entropy / H(pi0 | mentions Paris), mean over seeds", hypothesis="greater",
          margin=0.8, margin_reason="the exact target pi*_0.1 keeps 1.00 of H(pi0 | mentions Paris); 0.8 "
                                    "allows the sampled run to lose a fifth of it and still count as diverse"),
    *(Claim(f"klrl-posterior-b{b:g}", f"Exact gradient ascent on J_KLRL (tabular policy, beta = {b:g}) reaches "
                                      "the posterior pi* = pi0 exp(r/beta)/Z within the scale's step budget: "
                                      "KL(pi || pi*) < 1e-3 nats (total variation <= 0.022 by Pinsker)",
            "math", f"{KORBAK}, abstract (the KL-regularised optimum is the posterior); convergence {_TOY}",
            "argmax J_KLRL = pi* (no number)", statistic=f"KL(pi || pi*) after the exact ascent, beta = {b:g}",
            tolerance=1e-3) for b in TOY_BETAS),
    Claim("mirror-posterior", "Mirror ascent (eta = 1, beta = 0.3) reaches pi* geometrically: KL(pi_40 || pi*) "
                              "< 1e-6 after 40 steps",
          "math", f"derived here (the log-space error shrinks by |1 - eta beta| a step); {_TOY}",
          "no number", statistic="KL(pi_40 || pi*)", tolerance=1e-6),
    Claim("identity", "J_KLRL(pi) = -beta KL(pi || pi*) + beta log Z for every pi (KL-regularised RL is "
                      "variational inference), at every recorded step of 5 runs",
          "math", f"{KORBAK}, abstract (J is a negative KL to the posterior, up to a constant); the constant "
                  "beta log Z derived here", "J proportional to -KL(pi || pi*) (no number)",
          statistic="max |J - (-beta KL(pi||pi*) + beta log Z)| over runs and steps", tolerance=1e-10),
    Claim("reinforce-kl", "Sampled REINFORCE with the KL-regularised reward (beta = 1) approaches pi*: "
                          "final KL(pi || pi*) < 0.01 nats",
          "empirical", f"follows from the identity ({KORBAK}, abstract); {_TOY}", "no number",
          statistic="final KL(pi || pi*), mean over seeds", hypothesis="less", margin=0.01,
          margin_reason="0.01 nats bounds the total variation to pi* by 0.07 (Pinsker); a fixed learning rate "
                        "keeps a sampled run fluctuating near, not at, pi*", bounds=(0.0, 10.0)),
    Claim("sweep-monotone", "Along the beta sweep, E[r] and KL(pi*_beta || pi0) never increase with beta "
                            "(60 values from 0.05 to 20)",
          "math", f"derived here (the reward-KL frontier); {KORBAK}, abstract, for beta as the trade-off knob",
          "no number", statistic="largest increase of E[r] or of KL from one beta to the next (0 if none)",
          tolerance=1e-12),
    Claim("sweep-kl", "KL(pi*_beta || pi0) = E_pi*[r] / beta - log Z_beta on the same sweep",
          "math", "derived here", "no number", statistic="max |KL - (E[r]/beta - log Z)| over the sweep",
          tolerance=1e-10),
    Claim("elbo-gap", "With beta = 1 and r <= 0, log p(O=1) - ELBO(q) = KL(q || posterior) for q = pi0, uniform, "
                      "pi*",
          "math", f"{BLOG}, appendix (the Bayesian reading); the exact gap derived here", "no number",
          statistic="max |gap - KL(q || pi*)| over the three q", tolerance=1e-12),
    Claim("rejection-rate", "Rejection sampling from pi0 is exact inference for a filtering target: the "
                            "acceptance rate equals Z within 0.01",
          "empirical", f"{BLOG} (inference by sampling, e.g. filtering); the acceptance rate = Z derived here",
          "no number", statistic="acceptance rate - Z (Z exact)", hypothesis="equivalent", margin=0.01,
          margin_reason="0.01 is about 5% of Z = 0.19 on this toy: a sampler off by less would change no "
                        "conclusion", bounds=(-1.0, 1.0)),
    Claim("rejection-kl", "KL(pi0 b / Z || pi0) = -log Z: conditioning on the event costs its surprise",
          "math", "derived here", "no number", statistic="|KL(target || pi0) + log Z|", tolerance=1e-12),
    Claim("fwd-rev-entropy", "On a product-of-categoricals family, the exact forward-KL fit (as in GDC/DPG) has "
                             "higher entropy than the exact reverse-KL fit (as in KL-RL)",
          "math", f"{KORBAK}, abstract (GDC's forward KL is a different objective from RL); toy derived here",
          "no number", statistic="H(q_rev) - H(q_fwd), floored at 0", tolerance=0.0),
    Claim("fwd-rev-own", "Each exact fit wins on its own divergence: KL(pi*||q_fwd) <= KL(pi*||q_rev) and "
                         "KL(q_rev||pi*) <= KL(q_fwd||pi*)",
          "math", "derived here (the forward fit is the exact forward-KL optimum; the reverse fit a descent)",
          "no number", statistic="largest violation of the two inequalities, floored at 0", tolerance=0.0),
    Claim("fwd-rev-sampled", "Trained by sampling, DPG (forward KL) ends with more entropy than KL-RL "
                             "REINFORCE (reverse KL), by more than 0.5 nats",
          "empirical", f"{KORBAK}, abstract (distribution matching is not RL); toy derived here", "no number",
          statistic="H(DPG) - H(KL-RL REINFORCE), paired by seed, mean over seeds", hypothesis="greater",
          margin=0.5, margin_reason="half a nat (a factor 1.6 in effectively distinct sequences), well below "
                                    "the 2.7-nat gap of the exact fits", bounds=(-4.4, 4.4)),
    Claim("grpo-distinct2", "On SmolLM2-135M (GRPO, reward = mentions 'Paris'), beta = 0 has lower distinct-2 "
                            "than beta = 0.2 at equal reward",
          "empirical", f"{BLOG}, Figure 1 (qualitative; in the paper: unverified); GRPO set-up derived here",
          "qualitative (no number)", statistic=_EQUAL_REWARD.format(b=0.2, what="distinct-2"),
          hypothesis="less", margin=0.0, margin_reason=_NO_DIFF, bounds=(-1.0, 1.0)),
    Claim("grpo-entropy", "On SmolLM2-135M, beta = 0 has lower per-token entropy than beta = 0.2 at equal reward",
          "empirical", f"{BLOG}, Figure 1 (qualitative; in the paper: unverified); GRPO set-up derived here",
          "qualitative (no number)", statistic=_EQUAL_REWARD.format(b=0.2, what="per-token entropy"),
          hypothesis="less", margin=0.0, margin_reason=_NO_DIFF),
    Claim("grpo-kl", "On SmolLM2-135M, beta = 0 moves further from the reference (sequence KL) than beta = 0.2 "
                     "at equal reward",
          "empirical", f"{KORBAK}, abstract (the KL penalty keeps the policy near the prior); GRPO set-up "
                       "derived here", "qualitative (no number)",
          statistic=_EQUAL_REWARD.format(b=0.2, what="KL(pi || pi_ref)"), hypothesis="greater", margin=0.0,
          margin_reason=_NO_DIFF),
)


def posterior_bars(space, pi0, r, beta: float, top: int = 20):
    """Bar chart of the ``top`` likeliest sequences under ``pi*_beta`` next to ``pi0``; returns the figure.

    The title carries the exact E[r], KL(pi* || pi0), entropy and beta log Z of that posterior.
    Chapter 3's explorer (section 7) draws it for the beta a reader picks with a slider.
    """
    import numpy as np

    from alignkit.theory.bayes import log_partition, posterior
    from alignkit.theory.divergence import kl
    from alignkit.toy import entropy
    from alignkit.viz import subplots

    if not beta > 0:
        raise ValueError(f"beta must be > 0 (the posterior pi0 exp(r/beta) needs it), got {beta!r}")
    if not 1 <= top <= space.n:
        raise ValueError(f"top must be in [1, {space.n}] for {space!r}, got {top!r}")
    post = posterior(pi0, r, beta)
    order = np.argsort(-post)[:top]
    fig, ax = subplots(width=9, height=3.4)
    ax.bar(np.arange(top) - 0.2, pi0[order], 0.4, label="prior π0", color="grey")
    ax.bar(np.arange(top) + 0.2, post[order], 0.4, label=f"posterior π*, β = {beta:.2g}")
    names = ["".join("PABCDEFGH"[t] for t in space.sequences[i]) for i in order]
    ax.set_xticks(np.arange(top), names, rotation=60)
    ax.set(xlabel="sequence (P = token 0, 'Paris')", ylabel="probability",
           title=f"E[r] = {post @ r:.2f}, KL(π*‖π0) = {kl(post, pi0):.2f} nats, "
                 f"H = {entropy(post):.2f} nats, β log Z = {beta * log_partition(pi0, r, beta):.2f}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


def at_equal_reward(frame_a, frame_b, col: str, n_boot: int = 2000, seed: int = 0):
    """Run a minus run b in ``col`` at equal reward, with a percentile-bootstrap interval.

    Per run, a least-squares line of ``col`` on ``reward`` over its logged GRPO steps (the rows of
    a :func:`alignkit.training.log_frame`), read at the middle of the reward range both runs cover;
    the interval resamples each run's steps and refits. ``distinct_2`` is clipped to [0, 1], other
    columns to [0, inf). Comparing at equal reward keeps "less diverse" apart from "further along".
    Chapter 3's ledger uses it for beta = 0 against beta > 0. Returns ``(estimate, (lo, hi),
    reward)``, or ``None`` when the runs share no reward range or a run's reward never varies.
    """
    import numpy as np

    for name, frame in (("frame_a", frame_a), ("frame_b", frame_b)):
        missing = {"reward", col} - set(frame.columns)
        if missing:
            raise ValueError(f"{name} lacks column(s) {sorted(missing)}; has {list(frame.columns)}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    low = max(frame_a["reward"].min(), frame_b["reward"].min())
    high = min(frame_a["reward"].max(), frame_b["reward"].max())
    mid, top = (low + high) / 2, 1.0 if col == "distinct_2" else np.inf

    def fit(frame):
        if frame["reward"].nunique() < 2:
            return np.nan
        return np.clip(np.polyval(np.polyfit(frame["reward"], frame[col], 1), mid), 0, top)

    est = fit(frame_a) - fit(frame_b)
    if low > high or not np.isfinite(est):
        return None
    rng = np.random.default_rng(seed)
    boots = [fit(frame_a.sample(frac=1, replace=True, random_state=rng))
             - fit(frame_b.sample(frac=1, replace=True, random_state=rng)) for _ in range(n_boot)]
    lo, hi = np.nanquantile(boots, [0.025, 0.975])
    return float(est), (float(min(lo, est)), float(max(hi, est))), float(mid)
