"""Command line: ``python -m alignkit plan-memory ...`` and ``python -m alignkit train RECIPE.yaml``.

Introduced with the scale-out tools; each subcommand is a thin wrapper over a module.
"""

from __future__ import annotations

import argparse
import sys

from alignkit.memory import plan_memory


def _plan_memory(args: argparse.Namespace) -> int:
    if args.recipe:
        from alignkit.recipe import load_recipe, plan_recipe

        plan = plan_recipe(load_recipe(args.recipe), prompt_tokens=args.prompt_tokens,
                           zero_stage=args.zero, n_gpus=args.gpus)
        print(plan.table())
        return 0
    if not args.model:
        raise ValueError("plan-memory needs --model (or --recipe)")
    plan = plan_memory(args.model, quant=None if args.quant == "none" else args.quant,
                       lora_r=args.lora_r, seq_len=args.seq_len, generations=args.generations,
                       grad_ckpt=args.grad_ckpt, zero_stage=args.zero or 0, n_gpus=args.gpus or 1,
                       beta=args.beta, vllm=None if args.vllm == "none" else args.vllm,
                       vllm_gpu_memory_utilization=args.vllm_gpu_memory_utilization)
    print(plan.table())
    return 0


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    from alignkit.recipe import build_trainer, load_recipe
    from alignkit.training import train, write_rank_summary

    recipe = load_recipe(args.recipe, overrides)
    trainer = build_trainer(recipe, output_dir=args.output_dir)
    before = write_rank_summary(trainer, stage="start")
    train(trainer, resume=args.resume)
    write_rank_summary(trainer, stage="end", initial=before)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m alignkit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan-memory", help="estimate peak GPU memory of a GRPO step and which cards fit")
    p.add_argument("--model", help="model id or short name, e.g. qwen2.5-1.5b")
    p.add_argument("--recipe", help="take model, quantisation, LoRA, lengths and batch from a recipe")
    p.add_argument("--prompt-tokens", type=int, default=256, help="with --recipe: prompt length")
    p.add_argument("--quant", choices=["none", "4bit"], default="none")
    p.add_argument("--lora-r", type=int, default=None, help="LoRA rank; omit for full fine-tuning")
    p.add_argument("--seq-len", type=int, default=1024, help="prompt + completion tokens")
    p.add_argument("--generations", type=int, default=8, help="sequences per device per step")
    p.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--zero", type=int, choices=[0, 1, 2, 3], default=None,
                   help="DeepSpeed ZeRO stage (default 0, or the recipe's launch section)")
    p.add_argument("--gpus", type=int, default=None, help="data-parallel GPUs (default 1, or the recipe's)")
    p.add_argument("--vllm", choices=["none", "colocate", "server"], default="none",
                   help="rollouts in vLLM: colocated on the training GPUs, or on a separate server")
    p.add_argument("--vllm-gpu-memory-utilization", type=float, default=0.3,
                   help="with --vllm colocate: the share of each card vLLM reserves")
    p.add_argument("--beta", type=float, default=0.0, help="GRPO KL coefficient (>0 keeps a reference)")
    p.set_defaults(func=_plan_memory)
    t = sub.add_parser("train", help="train from a recipe: train RECIPE.yaml [--section.key value ...]")
    t.add_argument("recipe", help="path, or name under alignkit/recipes (e.g. 00_start_here/gpu.yaml)")
    t.add_argument("--output-dir", default=None, help="overrides the trainer section's output_dir")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the last complete checkpoint in the output folder")
    t.set_defaults(func=_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "train":
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    try:
        return args.func(args, extra) if args.command == "train" else args.func(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
