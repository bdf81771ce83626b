"""The claims ledger: each claim of the paper, the paper's number, this run's number, a verdict.

A chapter pre-registers its claims in its own package, before anything runs (:class:`Claim`:
statement, kind, source, the paper's number, the statistic, the hypothesis and its margin). The
run then supplies only measurements: an estimate with its interval for an empirical claim
(:meth:`Ledger.estimate`), a residual for a math identity (:meth:`Ledger.residual`), or that a
claim was not run at this scale (:meth:`Ledger.skip`). :func:`verdict` is the one rule that turns
them into verdicts; nothing else in the workbook writes one.

The rule, for an interval ``[lo, hi]`` of the statistic and the claim's margin:

=============  ===================  =========================  ==========================
hypothesis     the claim            reproduced                 not reproduced
=============  ===================  =========================  ==========================
greater        statistic > margin   lo > margin                hi < margin
less           statistic < margin   hi < margin                lo > margin
equivalent     |statistic| <= m     -m <= lo and hi <= m       lo > m or hi < -m
=============  ===================  =========================  ==========================

Anything else is ``inconclusive``. A math claim is ``verified`` when ``|residual| <= tolerance``,
else ``failed``; a claim not run is ``not at this scale``. There is no "partly": a claim with
several parts is several claims.

Use (the claims live in the chapter package, the measurements in the notebook)::

    from alignkit.ledger import Claim, Ledger
    CLAIMS = [  # alignkit/chapters/<chapter>/claims.py (or the chapter module), before any run
        Claim("grpo-vs-sft", "GRPO-BLEU beats SFT on the same references", "empirical",
              source="paper Table 1 (Qwen2.5-7B)", paper="avg 44.6 vs 40.0",
              statistic="held-out verifier pass rate, GRPO-BLEU minus SFT", hypothesis="greater",
              margin=0.0, margin_reason="the paper claims a direction, not a size", bounds=(-1, 1)),
        Claim("elbo-gap", "ELBO gap = KL(q || posterior)", "math", source="derived here",
              paper="exact identity", statistic="max |gap - KL| over 3 q", tolerance=1e-10),
        Claim("table2", "Table 2 itself", "not_run", source="paper Table 2", paper="32.5 / 78.0"),
    ]
    ledger = Ledger("01_bleuberi", scale.name, CLAIMS, seeds=[0, 1, 2])   # in the notebook
    ledger.estimate("grpo-vs-sft", est, (lo, hi), method="bootstrap over seeds and prompts, paired",
                    n=96, ours="human-readable number with its interval")  # ``ours`` is optional
    ledger.residual("elbo-gap", max_err)
    ledger.skip("table2", "needs 16 GPUs; see the cluster recipe")
    ledger.save()   # results/<chapter>/<scale>.json; every registered claim must have a result
    ledger.show()   # the whole table as Markdown (no cell cut)

Intervals come from :mod:`alignkit.stats`: ``wilson_ci`` for one proportion,
``seeds_units_bootstrap`` for a (seeds, prompts) array (paired with a second method's array),
``paired_bootstrap`` / ``bootstrap_diff`` for prompt-clustered paired comparisons. Sources cite the
paper (section / table / figure / equation), the released code or data, ``derived here`` or
``secondary source, unverified``.

Saved to ``results/<chapter>/<scale>.json`` as ``{"chapter", "scale", "commit", "seeds",
"environment", "claims": [...]}``, each claim ``{id, claim, kind, source, paper, ours, verdict,
note, test}``. Introduced in chapter 0; every chapter ends with one.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alignkit.io import atomic_write_json
from alignkit.runtime import results_root

__all__ = ["HYPOTHESES", "KINDS", "VERDICTS", "Claim", "Ledger", "check_record", "git_commit", "markdown_table",
           "results_root", "verdict"]

KINDS = ("empirical", "math", "not_run")
HYPOTHESES = ("greater", "less", "equivalent")
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "verified", "failed", "not at this scale")


def verdict(kind: str, *, hypothesis: str | None = None, margin: float | None = None,
            ci: Sequence[float] | None = None, residual: float | None = None,
            tolerance: float | None = None) -> str:
    """The one verdict rule (module docstring). Raises ``ValueError`` on a malformed test."""
    if kind == "not_run":
        return "not at this scale"
    if kind == "math":
        if residual is None or tolerance is None or not tolerance >= 0:
            raise ValueError(f"a math claim needs a residual and a tolerance >= 0, got {residual!r}, {tolerance!r}")
        return "verified" if math.isfinite(residual) and abs(residual) <= tolerance else "failed"
    if kind != "empirical":
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    if ci is None or len(ci) != 2:
        raise ValueError(f"an empirical claim needs an interval [lo, hi], got {ci!r}")
    lo, hi = (float(x) for x in ci)
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"interval [{lo}, {hi}] must be finite with lo <= hi")
    m = float(margin)
    if hypothesis == "greater":
        return "reproduced" if lo > m else "not reproduced" if hi < m else "inconclusive"
    if hypothesis == "less":
        return "reproduced" if hi < m else "not reproduced" if lo > m else "inconclusive"
    if hypothesis == "equivalent":
        if not m > 0:
            raise ValueError(f"an equivalence margin must be > 0, got {m}")
        if -m <= lo and hi <= m:
            return "reproduced"
        return "not reproduced" if lo > m or hi < -m else "inconclusive"
    raise ValueError(f"hypothesis {hypothesis!r} is not one of {HYPOTHESES}")


@dataclass(frozen=True)
class Claim:
    """One pre-registered claim: everything about it that is decided before the run.

    Attributes:
        id: short and unique within the chapter.
        claim: the statement, as a reader would check it.
        kind: ``empirical`` (an estimate with an interval), ``math`` (an identity or bound checked
            to a tolerance) or ``not_run`` (needs more than this workbook can run).
        source: where the claim comes from: the paper's section / table / figure / equation, the
            released code or data (repository and file), ``derived here``, or
            ``secondary source, unverified``.
        paper: the paper's number (or "no number"); numbers we derived are not the paper's.
        statistic: what the run measures (empirical and math claims).
        hypothesis, margin, margin_reason: empirical claims: the claim is "statistic > margin"
            (greater), "< margin" (less) or "|statistic| <= margin" (equivalent, margin > 0),
            and why that margin.
        bounds: the statistic's range, e.g. ``(0, 1)`` for a rate, ``(-1, 1)`` for a difference of
            rates; None when unbounded. Intervals must stay inside it.
        tolerance: math claims: the largest residual that still counts as verified.
    """

    id: str
    claim: str
    kind: str
    source: str
    paper: str
    statistic: str = ""
    hypothesis: str | None = None
    margin: float | None = None
    margin_reason: str = ""
    bounds: tuple[float, float] | None = None
    tolerance: float | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id!r}: kind {self.kind!r} is not one of {KINDS}")
        if not self.source.strip():
            raise ValueError(f"claim {self.id!r}: source is empty; cite the paper, the released code, "
                             "'derived here' or 'secondary source, unverified'")
        if "brief" in self.source.lower() or "brief" in self.paper.lower():
            raise ValueError(f"claim {self.id!r}: cite the paper or the released code, not a brief")
        if self.kind == "empirical":
            if self.hypothesis not in HYPOTHESES:
                raise ValueError(f"claim {self.id!r}: hypothesis {self.hypothesis!r} is not one of {HYPOTHESES}")
            if self.margin is None or not math.isfinite(self.margin):
                raise ValueError(f"claim {self.id!r}: an empirical claim needs a finite margin")
            if self.hypothesis == "equivalent" and not self.margin > 0:
                raise ValueError(f"claim {self.id!r}: an equivalence margin must be > 0, got {self.margin}")
            if not self.margin_reason.strip():
                raise ValueError(f"claim {self.id!r}: say why the margin is {self.margin}")
            if not self.statistic.strip():
                raise ValueError(f"claim {self.id!r}: name the statistic")
        if self.kind == "math" and (self.tolerance is None or not self.tolerance >= 0):
            raise ValueError(f"claim {self.id!r}: a math claim needs a tolerance >= 0")


def git_commit(short: bool = True) -> str:
    """The commit the code ran at, or ``'unknown'``; ``+dirty`` when tracked files other than
    notebooks and results differ from it (executing notebooks rewrites those, and that is not a
    change to the code that produced the numbers)."""
    try:
        here = Path(__file__).resolve().parent
        args = ["git", "rev-parse", "--short" if short else "--verify", "HEAD"]
        commit = subprocess.run(args, cwd=here, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(exclude,top)notebooks", ":(exclude,top)results"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_environment() -> dict:
    """What the numbers may depend on: device, precision, CPU bf16 units, threads, versions."""
    from alignkit.runtime import environment_report

    report = environment_report(show=False)
    keep = ("device", "dtype", "cpu bf16 units", "cpu threads", "torch", "transformers", "trl", "peft", "python")
    return {k.replace(" ", "_"): report[k] for k in keep}


def _fmt(x: float) -> str:
    return f"{x:.3g}"


@dataclass
class Ledger:
    """One chapter's ledger at one scale: its pre-registered claims and what this run measured.

    ``Ledger(chapter, scale, claims, seeds=...)``; then for every claim exactly one of
    :meth:`estimate`, :meth:`residual` or :meth:`skip`; then :meth:`save`. ``show()`` displays
    the whole table in a notebook (nothing truncated).
    """

    chapter: str
    scale: str
    claims: Sequence[Claim]
    seeds: list[int] = field(default_factory=list)
    records: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self):
        ids = [c.id for c in self.claims]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"claim ids {dupes} are registered twice")
        self._by_id = {c.id: c for c in self.claims}

    def _claim(self, id: str) -> Claim:
        if id not in self._by_id:
            raise ValueError(f"claim {id!r} is not pre-registered for {self.chapter}; registered: {list(self._by_id)}")
        if id in self.records:
            raise ValueError(f"claim {id!r} already has a result")
        return self._by_id[id]

    def estimate(self, id: str, estimate: float, ci: Sequence[float], *, method: str, n: int,
                 level: float = 0.95, ours: str | None = None, note: str = "") -> dict:
        """Record an empirical claim's estimate and its ``level`` interval (``method``: how the
        interval was made, e.g. "bootstrap over prompts, paired"; ``n``: what it resampled).
        ``ours`` is the number as a reader sees it (default: estimate [lo, hi])."""
        c = self._claim(id)
        if c.kind != "empirical":
            raise ValueError(f"claim {id!r} is {c.kind}; estimate() is for empirical claims")
        lo, hi = (float(x) for x in ci)
        est = float(estimate)
        if not all(math.isfinite(x) for x in (est, lo, hi)) or not lo <= est <= hi:
            raise ValueError(f"claim {id!r}: need finite lo <= estimate <= hi, got {est} [{lo}, {hi}]")
        if c.bounds is not None and (lo < c.bounds[0] - 1e-12 or hi > c.bounds[1] + 1e-12):
            raise ValueError(f"claim {id!r}: interval [{lo}, {hi}] leaves the statistic's range {list(c.bounds)}; "
                             "use an interval that respects it (alignkit.stats)")
        test = {"statistic": c.statistic, "estimate": est, "ci": [lo, hi], "level": level,
                "hypothesis": c.hypothesis, "margin": c.margin, "margin_reason": c.margin_reason,
                "bounds": list(c.bounds) if c.bounds is not None else None, "method": method, "n": int(n)}
        rec = {"id": c.id, "claim": c.claim, "kind": "empirical", "source": c.source, "paper": c.paper,
               "ours": ours or f"{_fmt(est)} [{_fmt(lo)}, {_fmt(hi)}]",
               "verdict": verdict("empirical", hypothesis=c.hypothesis, margin=c.margin, ci=(lo, hi)),
               "note": note, "test": test}
        self.records[id] = rec
        return rec

    def residual(self, id: str, residual: float, *, ours: str | None = None, note: str = "") -> dict:
        """Record a math claim's residual (checked against its pre-registered tolerance)."""
        c = self._claim(id)
        if c.kind != "math":
            raise ValueError(f"claim {id!r} is {c.kind}; residual() is for math claims")
        res = float(residual)
        test = {"statistic": c.statistic, "residual": res, "tolerance": c.tolerance}
        rec = {"id": c.id, "claim": c.claim, "kind": "math", "source": c.source, "paper": c.paper,
               "ours": ours or f"residual {res:.2g} (tolerance {c.tolerance:.2g})",
               "verdict": verdict("math", residual=res, tolerance=c.tolerance), "note": note, "test": test}
        self.records[id] = rec
        return rec

    def skip(self, id: str, why: str) -> dict:
        """Record that claim ``id`` is not run at this scale, and why."""
        c = self._claim(id)
        if not why.strip():
            raise ValueError(f"claim {id!r}: say why it is not run at this scale")
        rec = {"id": c.id, "claim": c.claim, "kind": "not_run", "source": c.source, "paper": c.paper,
               "ours": "not run", "verdict": verdict("not_run"), "note": why, "test": None}
        self.records[id] = rec
        return rec

    def rows(self) -> list[dict]:
        """The recorded claims in registration order."""
        return [self.records[c.id] for c in self.claims if c.id in self.records]

    def to_dict(self) -> dict:
        missing = [c.id for c in self.claims if c.id not in self.records]
        if missing:
            raise ValueError(f"claims {missing} of {self.chapter} have no result; record each with "
                             "estimate(), residual() or skip()")
        return {"chapter": self.chapter, "scale": self.scale, "commit": git_commit(), "seeds": list(self.seeds),
                "environment": run_environment(), "claims": self.rows()}

    def to_markdown(self) -> str:
        """The whole ledger as a Markdown table (README, terminals, notebooks)."""
        return markdown_table(self.rows())

    def show(self):
        """Display the full ledger in Jupyter (a Markdown table: no cell is cut)."""
        from IPython.display import Markdown

        return Markdown(self.to_markdown())

    def save(self, root: str | Path | None = None) -> Path:
        """Write ``<root>/<chapter>/<scale>.json`` atomically (``root``: ``results_root()``)."""
        root = results_root() if root is None else Path(root)
        return atomic_write_json(root / self.chapter / f"{self.scale}.json", self.to_dict())


def markdown_table(rows: Sequence[dict]) -> str:
    """Claim records (as saved) as a Markdown table: claim, paper, ours, verdict; nothing cut.
    The one writer of ledger tables (the notebooks and README.md use it)."""
    cell = lambda s: str(s).replace("|", "/").replace("\n", " ")  # noqa: E731
    out = ["| claim | paper | ours | verdict |", "|---|---|---|---|"]
    out += [f"| {cell(r['claim'])} | {cell(r['paper'])} | {cell(r['ours'])} | {r['verdict']} |" for r in rows]
    return "\n".join(out)


def check_record(rec: dict) -> list[str]:
    """Problems of one saved claim record: its verdict must be what :func:`verdict` gives for its
    test, its interval inside its bounds and around its estimate, its source not a brief."""
    out = []
    for key in ("id", "claim", "kind", "source", "paper", "ours", "verdict", "test"):
        if key not in rec:
            return [f"{rec.get('id', '?')}: no {key!r}"]
    t = rec["test"] or {}
    try:
        want = verdict(rec["kind"], **({"hypothesis": t.get("hypothesis"), "margin": t.get("margin"),
                                        "ci": t.get("ci")} if rec["kind"] == "empirical" else
                                       {"residual": t.get("residual"), "tolerance": t.get("tolerance")}
                                       if rec["kind"] == "math" else {}))
    except (TypeError, ValueError) as err:
        return [f"{rec['id']}: malformed test ({err})"]
    if rec["verdict"] != want:
        out.append(f"{rec['id']}: verdict {rec['verdict']!r} but the rule gives {want!r}")
    if "brief" in f"{rec['source']} {rec['paper']}".lower():
        out.append(f"{rec['id']}: cites a brief")
    if rec["kind"] == "empirical":
        lo, hi = t["ci"]
        if not lo <= t["estimate"] <= hi:
            out.append(f"{rec['id']}: estimate outside its interval")
        if t.get("bounds") is not None and (lo < t["bounds"][0] - 1e-12 or hi > t["bounds"][1] + 1e-12):
            out.append(f"{rec['id']}: interval leaves the range {t['bounds']}")
    return out
