"""The claims ledger: each claim of the paper, the paper's number, this run's number, a verdict.

Every chapter ends with one, shown as a table and written to ``results/<chapter>/<scale>.json``
as ``{"chapter", "scale", "commit", "seeds", "claims": [{"id", "claim", "paper", "ours",
"verdict", "note"}]}``. ``ours`` must be computed by the run (format it with
``alignkit.stats.fmt_ci``), never typed in. Introduced in chapter 0.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

from alignkit.io import atomic_write_json
from alignkit.runtime import results_root

__all__ = ["VERDICTS", "Claim", "Ledger", "git_commit", "results_root"]

VERDICTS = ("reproduced", "partly", "not reproduced", "not at this scale")


@dataclass
class Claim:
    id: str
    claim: str
    paper: str
    ours: str
    verdict: str
    note: str = ""


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


@dataclass
class Ledger:
    """Collects claims for one chapter at one scale; ``save()`` writes the JSON atomically."""

    chapter: str
    scale: str
    seeds: list[int] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)

    def add(self, id: str, claim: str, paper: str, ours: str, verdict: str, note: str = "") -> Claim:
        """Record one claim; ``verdict`` must be one of ``VERDICTS``."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict {verdict!r} is not one of {VERDICTS}")
        if any(c.id == id for c in self.claims):
            raise ValueError(f"claim id {id!r} is already in the ledger")
        entry = Claim(str(id), claim, str(paper), str(ours), verdict, note)
        self.claims.append(entry)
        return entry

    def to_dict(self) -> dict:
        return {"chapter": self.chapter, "scale": self.scale, "commit": git_commit(),
                "seeds": list(self.seeds), "claims": [asdict(c) for c in self.claims]}

    def table(self):
        """The ledger as a pandas DataFrame (displays as a table in Jupyter)."""
        import pandas as pd

        return pd.DataFrame([asdict(c) for c in self.claims]).set_index("id")

    def to_markdown(self) -> str:
        """A Markdown table (for README.md and terminals)."""
        rows = ["| claim | paper | ours | verdict |", "|---|---|---|---|"]
        rows += [f"| {c.claim} | {c.paper} | {c.ours} | {c.verdict} |" for c in self.claims]
        return "\n".join(rows)

    def save(self, root: str | Path | None = None) -> Path:
        """Write ``<root>/<chapter>/<scale>.json`` atomically (``root``: ``results_root()``)."""
        if not self.claims:
            raise ValueError(f"ledger for {self.chapter!r} has no claims; add some before saving")
        root = results_root() if root is None else Path(root)
        return atomic_write_json(root / self.chapter / f"{self.scale}.json", self.to_dict())
