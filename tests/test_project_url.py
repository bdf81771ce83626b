"""One repository URL: pyproject.toml's [project.urls] Repository is the one every notebook's
setup cell and Open-in-Colab badge and the README's badges and install lines use."""

import json
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import set_repository  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
with open(ROOT / "pyproject.toml", "rb") as f:
    URL = tomllib.load(f)["project"]["urls"]["Repository"]
REPO = URL.removeprefix("https://github.com/")


def test_the_url_is_a_github_repository():
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", URL)
    assert set_repository.repository_url() == URL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_each_notebook_opens_in_colab_from_the_url_and_installs_from_it(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    first = "".join(cells[0]["source"])
    assert cells[0]["cell_type"] == "markdown"
    assert f"https://colab.research.google.com/github/{REPO}/blob/main/notebooks/{path.name}" in first
    setup = "".join(cells[set_repository.setup_cell_index(cells)]["source"])
    assert f'REPO = "{URL}"' in setup and 'f"git+{REPO}"' in setup
    assert "alignkit.install" in setup  # the rest at the tested versions, Colab's torch kept
    lines = setup.splitlines()
    assert len(lines) <= 15 and max(map(len, lines)) <= 100
    text = path.read_text(encoding="utf-8")
    for other in re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)", text):
        assert other == REPO
    for other in re.findall(r'REPO = "([^"]+)"', text):
        assert other == URL


def test_the_readme_badges_and_install_lines_use_the_url():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"https://colab.research.google.com/github/{REPO}/blob/main/notebooks/{path.name}" in text
    installs = re.findall(r"git\+(https://\S+?)[\s`]", text)
    assert installs and set(installs) == {URL}
    assert set(re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)", text)) == {REPO}


def test_set_repository_would_change_nothing():
    stale = [str(p.relative_to(ROOT)) for p, text in set_repository.planned().items()
             if p.read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} disagree with pyproject.toml's URL: run python tools/set_repository.py"


def test_a_new_url_reaches_every_badge_setup_cell_and_install_line():
    url = "https://github.com/someone/workbook"
    nb = json.loads(NOTEBOOKS[0].read_text(encoding="utf-8"))
    outputs = [c.get("outputs") for c in nb["cells"]]
    moved = set_repository.with_url(json.loads(json.dumps(nb)), NOTEBOOKS[0].name, url)
    text = set_repository.dumps(moved)
    assert "alignkit/alignkit" not in text and "someone/workbook" in text
    assert [c.get("outputs") for c in moved["cells"]] == outputs  # outputs untouched
    assert len(moved["cells"]) == len(nb["cells"])  # the badge cell replaced, not added twice
    readme = set_repository.readme_with_url((ROOT / "README.md").read_text(encoding="utf-8"), url)
    assert "github.com/alignkit/alignkit" not in readme and f"git+{url}" in readme
