"""How fast is a GRPO step on this CPU, against the limit of the hardware it runs on?

One run measures, with torch on the threads it uses:
  (1) the machine's limits: float32 and bfloat16 matmul GFLOP/s, memory read bandwidth GB/s, and
      the CPU flags that decide the precision policy (avx512_bf16, amx_bf16, avx512f, avx2);
  (2) the roofline of the workload (G completions of exactly T tokens from the bundled model,
      LoRA): the rollout reads the weights once per new token at the measured bandwidth (or
      does its matmuls at the matmul rate, whichever is slower) after one prefill of the prompt,
      and the LoRA forward + backward does its matmul FLOPs at the rate of the dtype it trains in;
  (3) a GRPO step per variant, with the phase breakdown, against that roofline:
      ``alignkit`` (``build_grpo_trainer``), ``alignkit-no-is`` (the same without the importance-
      sampling correction of a bf16 sampler: what the correction costs), ``trl-lora`` (plain TRL
      1.16 defaults with a LoRA adapter, as a user would first run it) and ``trl-lora-fp32`` (the
      same with bf16=False).
Each step is the median over the timed steps after one warm-up step. Each limit is the best of
ten repeats, measured before and after the variants, the better of the two: on a shared machine
the limits drift (a 2-core AMD EPYC measured 153 and 123 GFLOP/s half an hour apart), and the
roofline is what the hardware can do, not what it did once.

Run (the one command; on a quiet machine): python benchmarks/grpo_cpu.py --steps 2 --json benchmarks/grpo_cpu.json
then: python tools/update_readme.py (the README's performance table is generated from the JSON).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402

from alignkit.benchmarking import GRPOPhaseTimer  # noqa: E402
from alignkit.models import load_policy, load_tokenizer, lora_config, resolve  # noqa: E402
from alignkit.rewards import brevity_reward  # noqa: E402
from alignkit.runtime import cpu_has_fast_bf16, environment_report, pick_dtype, seed_everything  # noqa: E402
from alignkit.scale import get_scale  # noqa: E402
from alignkit.training import build_grpo_trainer  # noqa: E402

PROMPT = "Tell me about the history of bridges."
# LoRA as the chapters train it (alignkit.models.lora_config's dropout 0.05), the same for every variant
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.05}
FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")
VARIANTS = ("alignkit", "alignkit-no-is", "trl-lora", "trl-lora-fp32")
SAMPLING_METRICS = ("sampling/sampling_logp_difference/mean", "sampling/importance_sampling_ratio/min",
                    "sampling/importance_sampling_ratio/mean", "sampling/importance_sampling_ratio/max")


def dataset(n: int) -> Dataset:
    return Dataset.from_list([{"prompt": [{"role": "user", "content": PROMPT}]}] * n)


def fastest_seconds(fn, repeats: int) -> float:
    """The shortest of ``repeats`` timed calls of ``fn`` after a warm-up call (a limit: the best
    the machine does)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_flags() -> dict[str, bool]:
    """Which of :data:`FLAGS` this CPU reports in /proc/cpuinfo (all False elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            line = next((x for x in f if x.startswith("flags")), "")
    except OSError:
        line = ""
    flags = set(line.split(":", 1)[-1].split())
    return {name: name in flags for name in FLAGS}


def matmul_gflops(dtype: torch.dtype, n: int = 1024, repeats: int = 10) -> float:
    """GFLOP/s of an n x n matmul in ``dtype`` with torch on its current threads."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return 2 * n**3 / fastest_seconds(lambda: a @ b, repeats) / 1e9


def read_bandwidth_gbs(mib: int = 256, repeats: int = 10) -> float:
    """GB/s of reading a buffer far larger than the caches (a sum over ``mib`` MiB of float32)."""
    x = torch.ones(mib * 2**20 // 4)  # ones, not empty: untouched pages all map to one zero page
    return x.numel() * 4 / fastest_seconds(x.sum, repeats) / 1e9


def measure_limits() -> dict:
    """The machine's limits now: float32 and bfloat16 matmul GFLOP/s and read bandwidth GB/s."""
    emulated = not cpu_has_fast_bf16()  # emulated bf16 runs ~100x slower: a small matmul says as much
    return {"fp32_gflops": matmul_gflops(torch.float32),
            "bf16_gflops": matmul_gflops(torch.bfloat16, n=384 if emulated else 1024),
            "read_gbs": read_bandwidth_gbs()}


def workload(g: int, t: int) -> dict:
    """The benchmark's work in the numbers a roofline needs: prompt length, matmul parameters of
    the body and of the LM head, and the bytes of weights the rollout reads per token."""
    model, tok = load_policy("smollm2-135m"), load_tokenizer("smollm2-135m")
    prompt = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                     return_dict=True)["input_ids"]
    head = model.get_output_embeddings().weight.numel()
    body = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)) - head
    rollout_dtype = pick_dtype(torch.device("cpu"))
    bytes_per_weight = torch.tensor([], dtype=rollout_dtype).element_size()
    return {"generations": g, "tokens": t, "prompt_tokens": len(prompt), "body_params": body, "head_params": head,
            "rollout_dtype": str(rollout_dtype).replace("torch.", ""),
            "weight_bytes": (body + head) * bytes_per_weight}


def roofline(work: dict, limits: dict) -> dict:
    """Seconds the workload needs at the measured limits (the dtype the precision policy picks).

    Rollout: one prefill of the shared prompt, then per new token the larger of reading every
    weight once and the batch's matmuls. Training: the LoRA forward over all G x (P + T) tokens
    (the LM head on the T completion tokens only) and the backward's input gradients (the base
    weights are frozen: no weight gradients but the adapter's, a rounding error), 2x the forward.
    """
    rate = limits["bf16_gflops" if work["rollout_dtype"] == "bfloat16" else "fp32_gflops"] * 1e9
    g, t, p, n = work["generations"], work["tokens"], work["prompt_tokens"], work["body_params"] + work["head_params"]
    prefill = 2 * n * p / rate
    per_token = max(work["weight_bytes"] / (limits["read_gbs"] * 1e9), 2 * n * g / rate)
    forward = 2 * work["body_params"] * g * (p + t) + 2 * work["head_params"] * g * t
    generation, training = prefill + t * per_token, 2 * forward / rate
    return {"generation_s": generation, "training_s": training, "roofline_s": generation + training}


def grpo_step(kind: str, g: int, t: int, steps: int) -> dict:
    out = tempfile.mkdtemp(prefix=f"grpo-bench-{kind}-")
    seed_everything(0)
    forced = {"min_new_tokens": t}  # every variant generates exactly g x t tokens
    if kind in ("alignkit", "alignkit-no-is"):  # -no-is: without the mismatch correction (its cost)
        scale = get_scale("cpu").replace(num_generations=g, max_completion_length=t, max_steps=steps + 1)
        trainer = build_grpo_trainer(load_policy("smollm2-135m", lora=LORA), brevity_reward,
                                     dataset(steps + 1), scale=scale, output_dir=out,
                                     generation_kwargs=forced, disable_tqdm=True,
                                     vllm_importance_sampling_correction=kind == "alignkit")
    elif kind in ("trl-lora", "trl-lora-fp32", "trl-full"):  # plain TRL: every other field at its default
        from trl import GRPOConfig, GRPOTrainer

        fp32 = {"bf16": False} if kind.endswith("-fp32") else {}
        args = GRPOConfig(output_dir=out, num_generations=g, per_device_train_batch_size=g,
                          max_completion_length=t, max_steps=steps + 1, report_to="none",
                          generation_kwargs=forced, disable_tqdm=True, use_cpu=True, **fp32)
        peft = lora_config(LORA) if kind.startswith("trl-lora") else None
        trainer = GRPOTrainer(model=resolve("smollm2-135m"), reward_funcs=brevity_reward, args=args,
                              train_dataset=dataset(steps + 1), peft_config=peft,
                              processing_class=load_tokenizer("smollm2-135m"))
    else:
        raise ValueError(f"unknown variant {kind!r}; accepted: {', '.join(VARIANTS)}, trl-full")
    timer = GRPOPhaseTimer(trainer)
    trainer.train()
    result = timer.median(skip=1)
    result["settings"] = (f"bf16={trainer.args.bf16} ckpt={trainer.args.gradient_checkpointing} "
                          f"loss={trainer.args.loss_type} lr={trainer.args.learning_rate}")
    if kind == "alignkit":
        result["sampling_kl"] = rollout_mismatch(trainer)
        logged = [row for row in trainer.state.log_history if SAMPLING_METRICS[0] in row]  # TRL's names, per step
        result["importance_sampling"] = {k.removeprefix("sampling/"): statistics.mean(row[k] for row in logged)
                                         for k in SAMPLING_METRICS if logged}
    return result


def rollout_mismatch(trainer) -> float:
    """Per-token KL(sampler || trained policy) on one fresh rollout of the trained alignkit run."""
    from alignkit.training.rollout import sampling_mismatch

    tok = trainer.processing_class
    prompt = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                     return_dict=True)["input_ids"]
    completions, _ = trainer._generate_single_turn([prompt] * trainer.num_generations, None, {},
                                                   trainer.num_generations)
    k = max(len(c) for c in completions)
    ids = torch.tensor([prompt + c + [tok.pad_token_id] * (k - len(c)) for c in completions])
    mask = torch.tensor([[1] * (len(prompt) + len(c)) + [0] * (k - len(c)) for c in completions])
    return sampling_mismatch(trainer.model, trainer.inference_copy.model, ids, mask, k,
                             temperature=trainer.temperature, autocast=trainer.accelerator.autocast())["kl"]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((x.split(":", 1)[1].strip() for x in f if x.startswith("model name")), "unknown")
    except OSError:
        return "unknown"


def loadavg() -> list[float]:
    try:
        return [float(x) for x in open("/proc/loadavg").read().split()[:3]]
    except OSError:
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated; also: trl-full")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    environment_report()
    load_start = loadavg()
    before = measure_limits()
    work = workload(args.generations, args.tokens)
    rows = {v: grpo_step(v, args.generations, args.tokens, args.steps) for v in args.variants.split(",")}
    after = measure_limits()
    limits = {k: max(before[k], after[k]) for k in before}
    roof = roofline(work, limits)
    print(f"\nlimits ({torch.get_num_threads()} threads): fp32 {limits['fp32_gflops']:.0f} GFLOP/s, "
          f"bf16 {limits['bf16_gflops']:.1f} GFLOP/s, read {limits['read_gbs']:.1f} GB/s; flags {cpu_flags()}")
    print(f"roofline of {args.generations} x {args.tokens} tokens: {roof['roofline_s']:.2f} s "
          f"(rollout {roof['generation_s']:.2f} + training {roof['training_s']:.2f})")
    phases = list(GRPOPhaseTimer.PHASES) + ["step"]
    print(f"\n{'seconds per step':<18s}" + "".join(f"{p:>14s}" for p in phases) + f"{'/ roofline':>12s}")
    for name, r in rows.items():
        r["vs_roofline"] = r["step"] / roof["roofline_s"]
        print(f"{name:<18s}" + "".join(f"{r[p]:14.2f}" for p in phases) + f"{r['vs_roofline']:12.2f}"
              f"   {r['settings']}")
    ratios = {f"{base} / alignkit (speed-up)": rows[base]["step"] / rows["alignkit"]["step"]
              for base in rows if base.startswith("trl") and "alignkit" in rows}
    for k, v in ratios.items():
        print(f"{k:<34s} {v:6.2f}")
    if "alignkit" in rows:
        print(f"training-inference mismatch (KL per token, nats): {rows['alignkit']['sampling_kl']:.2e}; "
              f"importance sampling {rows['alignkit'].get('importance_sampling')}")
    if args.json:
        from alignkit.io import atomic_write_json
        from alignkit.ledger import git_commit

        atomic_write_json(args.json, {"commit": git_commit(), "threads": torch.get_num_threads(),
                                      "cpu": cpu_name(), "cpu_flags": cpu_flags(), "loadavg": {"start": load_start, "end": loadavg()},
                                      "limits": limits, "limits_before_after": [before, after], "workload": work, "roofline": roof,
                                      "roofline_s": roof["roofline_s"], "grpo": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
