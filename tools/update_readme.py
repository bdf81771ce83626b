"""Regenerate README.md's generated blocks from the repository itself.

* ``<!-- ledger:start -->`` ... ``<!-- ledger:end -->``: every chapter's cpu-scale claims ledger
  from results/<chapter>/cpu.json, so the README shows exactly what the committed runs measured.
* ``<!-- recipes:start -->`` ... ``<!-- recipes:end -->``: the launch command of every recipe and
  the memory planner's estimate for it (alignkit.recipe.launch_command / plan_recipe).

Usage: python tools/update_readme.py
"""

import json
import re

from alignkit.runtime import repo_root

ROOT = repo_root()


def ledger_markdown(scale: str = "cpu") -> str:
    """Every chapter's ledger at ``scale``, in full, from results/<chapter>/<scale>.json."""
    from alignkit.ledger import markdown_table

    lines = []
    for path in sorted(ROOT.glob(f"results/*/{scale}.json")):
        data = json.loads(path.read_text())
        env = data.get("environment") or {}
        where = f", {env['dtype']} on {env['cpu_threads']} thread(s)" if env else ""
        lines += [f"**{data['chapter']}** (scale `{data['scale']}`, commit `{data['commit']}`, "
                  f"seeds {data['seeds']}{where})", "", markdown_table(data["claims"]), ""]
    return "\n".join(lines)


def recipes_markdown(prompt_tokens: int = 256) -> str:
    """A table: recipe, launch command, model and setting, planner estimate, which cards fit."""
    from alignkit.memory import CARDS
    from alignkit.recipe import launch_command, list_recipes, load_recipe, plan_recipe

    short = {"T4 16 GB": "T4 16 GB", "24 GB (RTX 3090/4090, A10G, L4)": "24 GB",
             "A100 40 GB": "40 GB", "80 GB (A100, H100)": "80 GB"}
    lines = ["| recipe | command | model, setting | estimated peak per GPU | "
             + " | ".join(short[c] for c in CARDS) + " |", "|---" * (4 + len(CARDS)) + "|"]
    for name in list_recipes():
        recipe = load_recipe(name)
        plan = plan_recipe(recipe, prompt_tokens=prompt_tokens)
        s = plan.settings
        setting = ("full FT" if s["lora_r"] == "full" else f"{s['quant']} + LoRA r={s['lora_r']}") + \
            f", {s['generations']} x {s['seq_len']} tokens" + \
            (f", ZeRO-{s['zero']} on {s['gpus']} GPUs" if s["gpus"] > 1 else "") + \
            (f", vLLM {s['vllm']}" if "vllm" in s else "")
        peak = f"{plan.total_gib:.1f} GiB" + (f" + {plan.vllm_share:.0%} of the card (vLLM)"
                                               if plan.vllm_share else "")
        fits = ["fits" if ok else "no" for ok in plan.fits().values()]
        lines.append(f"| `{name}` | `{launch_command(name, recipe)}` | {plan.model.split('/')[-1]}, "
                     f"{setting} | {peak} | " + " | ".join(fits) + " |")
    return "\n".join(lines) + "\n"


def replace_block(text: str, name: str, body: str) -> str:
    """``text`` with the block between ``<!-- name:start -->`` and ``<!-- name:end -->`` replaced."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise ValueError(f"README.md lacks the {start} ... {end} markers")
    return re.sub(f"{start}.*?{end}", lambda m: f"{start}\n{body}{end}", text, flags=re.S)


def main() -> None:
    readme = ROOT / "README.md"
    text = replace_block(readme.read_text(), "ledger", ledger_markdown())
    text = replace_block(text, "recipes", recipes_markdown())
    readme.write_text(text)


if __name__ == "__main__":
    main()
