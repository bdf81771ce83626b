"""Tidy an executed notebook before it is committed: no machine paths in stored outputs.

Library warnings print the absolute paths of installed files; this replaces everything up to
``site-packages/`` (and the home folder) with a neutral marker, and leaves all else alone.
Usage: python tools/clean_notebook.py notebooks/NN_name.ipynb [...]
"""

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


def main(paths: list[str]) -> None:
    for path in map(Path, paths):
        nb = json.loads(path.read_text())
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                cell["outputs"] = clean(cell.get("outputs", []))
        tmp = path.with_suffix(".ipynb.tmp")
        tmp.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        tmp.replace(path)


if __name__ == "__main__":
    main(sys.argv[1:])
