"""Copy every chapter's cpu-scale claims ledger from results/<chapter>/cpu.json into README.md.

Rewrites the block between ``<!-- ledger:start -->`` and ``<!-- ledger:end -->``, so the README
shows exactly what the committed runs measured. Usage: python tools/update_readme.py
"""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ledger_markdown(scale: str = "cpu") -> str:
    lines = []
    for path in sorted(ROOT.glob(f"results/*/{scale}.json")):
        data = json.loads(path.read_text())
        lines += [f"**{data['chapter']}** (scale `{data['scale']}`, commit `{data['commit']}`, "
                  f"seeds {data['seeds']})", "",
                  "| claim | paper | ours | verdict |", "|---|---|---|---|"]
        for c in data["claims"]:
            cells = [c["claim"], c["paper"], c["ours"], c["verdict"]]
            lines.append("| " + " | ".join(str(x).replace("|", "/").replace("\n", " ") for x in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    readme = ROOT / "README.md"
    text = readme.read_text()
    block = "<!-- ledger:start -->\n" + ledger_markdown() + "<!-- ledger:end -->"
    new = re.sub(r"<!-- ledger:start -->.*?<!-- ledger:end -->", lambda m: block, text, flags=re.S)
    readme.write_text(new)


if __name__ == "__main__":
    main()
