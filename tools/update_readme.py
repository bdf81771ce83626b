"""Regenerate README.md's generated blocks from the repository itself.

* ``<!-- ledger:start -->`` ... ``<!-- ledger:end -->``: every chapter's cpu-scale claims ledger
  from results/<chapter>/cpu.json, so the README shows exactly what the committed runs measured.
* ``<!-- recipes:start -->`` ... ``<!-- recipes:end -->``: the launch command of every recipe and
  the memory planner's estimate for it (alignkit.recipe.launch_command / plan_recipe).
* ``<!-- performance:start -->`` ... ``<!-- performance:end -->``: the GRPO step benchmark against
  the machine's roofline, from benchmarks/grpo_cpu.json (written by benchmarks/grpo_cpu.py --json).

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


VARIANT_NAMES = {"alignkit": "alignkit (`build_grpo_trainer`)",
                 "alignkit-no-is": "alignkit without the mismatch correction", "trl-lora": "plain TRL 1.16 defaults, LoRA",
                 "trl-lora-fp32": "plain TRL defaults, LoRA, `bf16=False`", "trl-full": "plain TRL defaults, full FT"}


BENCHMARK = "benchmarks/grpo_cpu.json"  # one torch thread (OMP_NUM_THREADS=1)
BENCHMARK_2T = "benchmarks/grpo_cpu_2threads.json"  # both cores; optional
BENCHMARK_BF16 = "benchmarks/grpo_cpu_avx512bf16.json"  # both cores of a CPU with AVX512-BF16; optional
BENCHMARK_AMX = "benchmarks/grpo_cpu_amx.json"  # both cores of an Intel CPU with AMX-BF16; optional
MORE_BENCHMARKS = ((BENCHMARK_2T, "The same benchmark on both cores (2 torch threads)"),
                   (BENCHMARK_BF16, "On the other kind of CPU, one with AVX512-BF16 (native bfloat16), "
                                    "both cores"),
                   (BENCHMARK_AMX, "On a third kind, an Intel CPU with AVX512-BF16 and AMX-BF16 (matrix "
                                   "units), both cores"))


def benchmark_has_roofline(path: str = BENCHMARK) -> bool:
    """True when the committed benchmark JSON is the roofline benchmark's (it has ``roofline_s``);
    a JSON from before it keeps the README's hand-written table until the benchmark is rerun."""
    return "roofline_s" in json.loads((ROOT / path).read_text())


def performance_markdown(path: str = BENCHMARK) -> str:
    """The GRPO benchmark's numbers: the machine, its measured limits, the roofline, and each
    variant's phases and step against the roofline, from the committed JSON."""
    data = json.loads((ROOT / path).read_text())
    work, lim, roof = data["workload"], data["limits"], data["roofline"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in data["cpu_flags"].items())
    load = data.get("loadavg", {}).get("start") or []
    lines = [f"{work['generations']} completions x {work['tokens']} tokens of the bundled SmolLM2-135M with LoRA "
             f"r=16, {data['threads']} torch thread(s), commit `{data['commit']}`, CPU {data.get('cpu', '?')} "
             f"({flags}), load average {' '.join(map(str, load)) or '?'} at the start.",
             f"Limits measured in the same run{' (best of ten, before and after the variants)' if 'limits_before_after' in data else ''}: float32 matmul {lim['fp32_gflops']:.0f} GFLOP/s, bfloat16 "
             f"matmul {lim['bf16_gflops']:.1f} GFLOP/s, memory read {lim['read_gbs']:.1f} GB/s; roofline of the "
             f"step in {work['rollout_dtype']}: **{roof['roofline_s']:.2f} s** (rollout {roof['generation_s']:.2f} s "
             f"+ LoRA forward and backward {roof['training_s']:.2f} s).", "",
             "| variant | settings | generation | loss forward | backward | step (s) | step / roofline | "
             "alignkit's speed-up |", "|---|---|---|---|---|---|---|---|"]
    base = data["grpo"].get("alignkit", {}).get("step")
    for name, r in data["grpo"].items():
        speed = f"{r['step'] / base:.1f}x" if base and name.startswith("trl") else ""
        lines.append(f"| {VARIANT_NAMES.get(name, name)} | `{r['settings']}` | {r['generation']:.2f} | "
                     f"{r['loss_forward']:.2f} | {r['backward']:.2f} | {r['step']:.2f} | "
                     f"{r['step'] / roof['roofline_s']:.2f} | {speed} |")
    if "sampling_kl" in data["grpo"].get("alignkit", {}):
        lines += ["", f"Training-inference mismatch of alignkit's rollouts (KL(sampler || trained policy) per "
                      f"token, after training): {data['grpo']['alignkit']['sampling_kl']:.1e} nats."]
    tis = data["grpo"].get("alignkit", {}).get("importance_sampling")
    if tis:
        lines[-1] += (f" Corrected as TRL corrects vLLM's rollouts (`vllm_importance_sampling_*`): mean |log pi - "
                      f"log mu| of a sampled token {tis['sampling_logp_difference/mean']:.3f}, importance "
                      f"weight {tis['importance_sampling_ratio/min']:.2f} to {tis['importance_sampling_ratio/max']:.2f}"
                      f" (mean {tis['importance_sampling_ratio/mean']:.3f}).")
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
    if benchmark_has_roofline():
        body = performance_markdown()
        for path, heading in MORE_BENCHMARKS:
            if (ROOT / path).exists():
                body += f"\n{heading}:\n\n" + performance_markdown(path)
        text = replace_block(text, "performance", body)
    else:
        print(f"{BENCHMARK} predates the roofline benchmark: the performance table is left as it is; "
              f"run python {BENCHMARK.replace('.json', '.py')} --steps 2 --json {BENCHMARK} first")
    readme.write_text(text)


if __name__ == "__main__":
    main()
