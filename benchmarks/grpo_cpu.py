"""How fast is a GRPO step on this CPU, and where does the time go?

Measures, on the same prompt, seed and completion count (G completions of exactly T tokens):
  (a) raw batched ``generate`` of the bundled model: the floor for the rollout phase;
  (b) one forward + backward + optimiser step over the same tokens (LoRA, as alignkit trains);
  (c) a GRPO step with plain TRL defaults, as a user would first run it (LoRA, and full FT; TRL
      1.x defaults to bf16 autocast and gradient checkpointing, so also LoRA with bf16=False);
  (d) a GRPO step the way alignkit runs it (``alignkit.training.build_grpo_trainer``).
Prints a per-phase breakdown (median over steps after one warm-up) and the ratios
(d)/(c) and (d)/((a)+(b)).   Run: python benchmarks/grpo_cpu.py [--generations 8 --tokens 32]
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
from alignkit.runtime import environment_report, seed_everything  # noqa: E402
from alignkit.scale import get_scale  # noqa: E402
from alignkit.training import build_grpo_trainer  # noqa: E402

PROMPT = "Tell me about the history of bridges."
LORA = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0}


def dataset(n: int) -> Dataset:
    return Dataset.from_list([{"prompt": [{"role": "user", "content": PROMPT}]}] * n)


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def raw_generate(g: int, t: int, repeats: int) -> float:
    model, tok = load_policy("smollm2-135m"), load_tokenizer("smollm2-135m")
    batch = tok.apply_chat_template([[{"role": "user", "content": PROMPT}]] * g, add_generation_prompt=True,
                                    return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        return median_seconds(lambda: model.generate(**batch, do_sample=True, max_new_tokens=t,
                                                     min_new_tokens=t, pad_token_id=tok.pad_token_id), repeats)


def forward_backward(g: int, t: int, repeats: int) -> float:
    model, tok = load_policy("smollm2-135m", lora=LORA), load_tokenizer("smollm2-135m")
    prompt = tok.apply_chat_template([{"role": "user", "content": PROMPT}], add_generation_prompt=True,
                                     return_dict=True)["input_ids"]
    ids = torch.tensor([prompt + list(range(1000, 1000 + t))] * g)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step():
        logits = model(ids).logits[:, len(prompt) - 1:-1]
        loss = -torch.log_softmax(logits.float(), -1).gather(-1, ids[:, len(prompt):, None]).mean()
        loss.backward()
        opt.step()
        opt.zero_grad()

    return median_seconds(step, repeats)


def grpo_step(kind: str, g: int, t: int, steps: int) -> dict[str, float]:
    out = tempfile.mkdtemp(prefix=f"grpo-bench-{kind}-")
    seed_everything(0)
    forced = {"min_new_tokens": t}  # every variant generates exactly g x t tokens
    if kind == "alignkit":
        scale = get_scale("cpu").replace(num_generations=g, max_completion_length=t, max_steps=steps + 1)
        trainer = build_grpo_trainer(load_policy("smollm2-135m", lora=LORA), brevity_reward,
                                     dataset(steps + 1), scale=scale, output_dir=out,
                                     generation_kwargs=forced, disable_tqdm=True)
    else:  # plain TRL: only what is needed to run, every other field at TRL's default
        from trl import GRPOConfig, GRPOTrainer

        fp32 = {"bf16": False} if kind.endswith("-fp32") else {}
        args = GRPOConfig(output_dir=out, num_generations=g, per_device_train_batch_size=g,
                          max_completion_length=t, max_steps=steps + 1, report_to="none",
                          generation_kwargs=forced, disable_tqdm=True, use_cpu=True, **fp32)
        peft = lora_config({**LORA, "lora_dropout": 0.05}) if kind.startswith("trl-lora") else None
        trainer = GRPOTrainer(model=resolve("smollm2-135m"), reward_funcs=brevity_reward, args=args,
                              train_dataset=dataset(steps + 1), peft_config=peft,
                              processing_class=load_tokenizer("smollm2-135m"))
    timer = GRPOPhaseTimer(trainer)
    trainer.train()
    result = timer.median(skip=1)
    result["settings"] = (f"bf16={trainer.args.bf16} ckpt={trainer.args.gradient_checkpointing} "
                          f"loss={trainer.args.loss_type} lr={trainer.args.learning_rate}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--variants", default="alignkit,trl-lora-fp32,trl-lora,trl-full")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args()
    environment_report()
    g, t = args.generations, args.tokens
    a = raw_generate(g, t, args.steps)
    b = forward_backward(g, t, args.steps)
    print(f"\n(a) raw generate {g} x {t} tokens: {a:.2f} s   (b) LoRA forward+backward+step: {b:.2f} s")
    rows = {v: grpo_step(v, g, t, args.steps) for v in args.variants.split(",")}
    phases = list(GRPOPhaseTimer.PHASES) + ["step"]
    print(f"\n{'seconds per step':<18s}" + "".join(f"{p:>14s}" for p in phases))
    for name, r in rows.items():
        print(f"{name:<18s}" + "".join(f"{r[p]:14.2f}" for p in phases) + f"   {r['settings']}")
    d = rows.get("alignkit", {}).get("step")
    ratios = {}
    if d:
        for base in ("trl-lora-fp32", "trl-lora", "trl-full"):
            if base in rows:
                ratios[f"{base} / alignkit (speed-up)"] = rows[base]["step"] / d
        ratios["alignkit / (a + b)"] = d / (a + b)
    for k, v in ratios.items():
        print(f"{k:<34s} {v:6.2f}")
    if args.json:
        from alignkit.io import atomic_write_json
        from alignkit.ledger import git_commit

        atomic_write_json(args.json, {"commit": git_commit(), "threads": torch.get_num_threads(),
                                      "generations": g, "tokens": t, "raw_generate_s": a,
                                      "forward_backward_s": b, "grpo": rows, "ratios": ratios})


if __name__ == "__main__":
    main()
