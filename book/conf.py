"""Sphinx configuration of the alignkit book: the committed, executed notebooks, not re-executed.

Build it with ``make book`` (tools/build_book.py writes the landing page first). ``notebooks`` in
this folder is a link to the repository's notebooks/, so the book always shows what is committed.
Warnings fail the build (``-W`` in the Makefile).
"""

import tomllib
from pathlib import Path

with open(Path(__file__).resolve().parents[1] / "pyproject.toml", "rb") as f:
    REPOSITORY = tomllib.load(f)["project"]["urls"]["Repository"]  # the one URL

project = "alignkit"
author = "the alignkit authors"
copyright = "2026, the alignkit authors (Apache-2.0)"

# MathJax from a PyPI package, not a CDN: the book renders its formulas with no network
extensions = ["myst_nb", "sphinx.ext.mathjax", "sphinx-mathjax-offline"]
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints"]

# the notebooks are executed at cpu scale before they are committed; the book only renders them
nb_execution_mode = "off"
nb_merge_streams = True  # one block per cell for stdout/stderr, as Jupyter shows it
myst_enable_extensions = ["dollarmath", "amsmath"]
# chapter headings are numbered in the notebooks themselves ("## 1. The idea"); MyST's anchors
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "alignkit"
html_static_path = ["_static"]
html_theme_options = {
    "repository_url": REPOSITORY,
    "repository_branch": "main",
    "use_repository_button": True,
    "show_toc_level": 2,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "path_to_docs": "",  # pages are notebooks/<id>: the Colab button opens notebooks/<id>.ipynb
}
