"""Tidy an executed notebook before it is committed: no machine paths in stored outputs.

Library warnings print the absolute paths of installed files; this replaces everything up to
``site-packages/`` (and the home folder) with a neutral marker. A cell added by hand without an
``id`` (nbformat 4.5 requires one; nbformat warns, and so does the book) gets a stable one.
All else is left alone.
Usage: python tools/clean_notebook.py notebooks/NN_name.ipynb [...]
"""

import hashlib
import json
import re
import sys
from pathlib import Path

PATTERNS = [
    (re.compile(r"(?:/[\w.+-]+)+/site-packages/"), "<site-packages>/"),
    (re.compile(r"(?:/[\w.+-]+)+/\.cache/alignkit\b"), "<alignkit-cache>"),
    (re.compile(r"/(?:root|home/[\w.-]+|tmp|work)(?:/[\w.+-]+)+"), "<path>"),
]


def clean_text(text: str) -> str:
    for pattern, marker in PATTERNS:
        text = pattern.sub(marker, text)
    return text


def clean(obj):
    if isinstance(obj, str):
        return clean_text(obj)
    if isinstance(obj, list):
        return [clean(x) for x in obj]
    if isinstance(obj, dict):
        return {k: (v if k == "image/png" else clean(v)) for k, v in obj.items()}
    return obj


def new_id(index: int, source: str, taken: set[str]) -> str:
    """A cell id from the cell's place and text, unique in the notebook (8 hex characters)."""
    salt = 0
    while True:
        cell_id = hashlib.sha1(f"{index}:{salt}:{source}".encode()).hexdigest()[:8]
        if cell_id not in taken:
            taken.add(cell_id)
            return cell_id
        salt += 1


def main(paths: list[str]) -> None:
    for path in map(Path, paths):
        nb = json.loads(path.read_text())
        taken = {cell["id"] for cell in nb.get("cells", []) if "id" in cell}
        for i, cell in enumerate(nb.get("cells", [])):
            if "id" not in cell:
                cell["id"] = new_id(i, "".join(cell.get("source", [])), taken)
            if cell.get("cell_type") == "code":
                cell["outputs"] = clean(cell.get("outputs", []))
        tmp = path.with_suffix(".ipynb.tmp")
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)


if __name__ == "__main__":
    main(sys.argv[1:])
