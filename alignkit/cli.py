"""Command line: ``python -m alignkit plan-memory ...``, ``select RECIPE.yaml`` and ``train RECIPE.yaml``.

Introduced with the scale-out tools; each subcommand is a thin wrapper over a module. A mistake
on the command line (an unknown key, a value of the wrong type or out of range, a recipe that
does not exist, a run folder holding another configuration) is one line on stderr and exit
status 2, before any model loads where it can be; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys

# plan-memory's hand-set sizes, and their defaults when no --recipe gives them
MANUAL_DEFAULTS = {"quant": "none", "lora_r": None, "seq_len": 1024, "generations": 8, "grad_ckpt": True,
                   "vllm": "none", "vllm_gpu_memory_utilization": 0.3, "beta": 0.0}
_FLAGS = {"model": "--model", "quant": "--quant", "lora_r": "--lora-r", "seq_len": "--seq-len",
          "generations": "--generations", "grad_ckpt": "--grad-ckpt/--no-grad-ckpt", "vllm": "--vllm",
          "vllm_gpu_memory_utilization": "--vllm-gpu-memory-utilization", "beta": "--beta"}


class CommandLineError(ValueError):
    """A command line that cannot run; its message is the one line the user sees."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block), raised to :func:`main`."""

    def error(self, message):
        raise CommandLineError(f"{message} (see {self.prog} --help)")


def _number(kind, test, what):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not test(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive int")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
share = _number(float, lambda v: 0 < v < 1, "a share in (0, 1)")


def _plan_memory(args: argparse.Namespace) -> int:
    from alignkit.memory import plan_memory

    if args.recipe:
        from alignkit.recipe import load_recipe, plan_recipe

        given = [_FLAGS[k] for k in _FLAGS if getattr(args, k) is not None]
        if given:
            raise CommandLineError(
                f"plan-memory --recipe takes the model, quantisation, LoRA, lengths, batch, beta and vLLM "
                f"settings from the recipe, so {', '.join(given)} would be ignored: drop them, or plan "
                "without --recipe (--model ...) to set them by hand")
        recipe = load_recipe(args.recipe)
        plan = plan_recipe(recipe, prompt_tokens=args.prompt_tokens, zero_stage=args.zero, n_gpus=args.gpus)
        print(plan.table())
        if args.gpu:
            from alignkit.step_time import recipe_hours

            t = recipe_hours(recipe, prompt_tokens=args.prompt_tokens, gpu=args.gpu)
            print(f"  time on one {args.gpu} (alignkit.step_time, an estimate): {t['total']:.1f} s a step "
                  f"(rollout {t['rollout']:.1f} + train {t['train']:.1f}), {t['steps']} steps in {t['hours']:.2f} h")
        return 0
    if not args.model:
        raise CommandLineError("plan-memory needs --model (or --recipe)")
    manual = {k: (MANUAL_DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)) for k in MANUAL_DEFAULTS}
    plan = plan_memory(args.model, quant=None if manual["quant"] == "none" else manual["quant"],
                       lora_r=manual["lora_r"], seq_len=manual["seq_len"], generations=manual["generations"],
                       grad_ckpt=manual["grad_ckpt"], zero_stage=args.zero or 0, n_gpus=args.gpus or 1,
                       beta=manual["beta"], vllm=None if manual["vllm"] == "none" else manual["vllm"],
                       vllm_gpu_memory_utilization=manual["vllm_gpu_memory_utilization"])
    print(plan.table())
    return 0


def _train(args: argparse.Namespace, overrides: list[str]) -> int:
    from alignkit.recipe import build_trainer, load_recipe
    from alignkit.training import train, write_rank_summary

    recipe = load_recipe(args.recipe, overrides)  # keys, types and ranges: before the model loads
    trainer = build_trainer(recipe, output_dir=args.output_dir)
    before = write_rank_summary(trainer, stage="start")
    train(trainer, resume=args.resume, restart=args.restart)
    write_rank_summary(trainer, stage="end", initial=before)
    return 0


def _select(args: argparse.Namespace, overrides: list[str]) -> int:
    from alignkit.chapters.bleuberi.hard_subset import select_settings, select_subset
    from alignkit.recipe import load_recipe

    recipe = load_recipe(args.recipe, overrides)
    select_settings(recipe)  # the select section's keys and values: before the model loads
    select_subset(recipe, recipe_name=args.recipe, force=args.force)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m alignkit", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("plan-memory", help="estimate peak GPU memory of a GRPO step and which cards fit")
    p.add_argument("--model", help="model id or short name, e.g. qwen2.5-1.5b")
    p.add_argument("--recipe", help="take model, quantisation, LoRA, lengths, batch, beta and vLLM from a "
                                    "recipe (then only --prompt-tokens, --zero and --gpus may be given)")
    p.add_argument("--prompt-tokens", type=positive_int, default=256, help="with --recipe: prompt length")
    p.add_argument("--quant", choices=["none", "4bit"], default=None, help="default none")
    p.add_argument("--lora-r", type=positive_int, default=None, help="LoRA rank; omit for full fine-tuning")
    p.add_argument("--seq-len", type=positive_int, default=None, help="prompt + completion tokens (default 1024)")
    p.add_argument("--generations", type=positive_int, default=None,
                   help="sequences per device per step (default 8)")
    p.add_argument("--grad-ckpt", action=argparse.BooleanOptionalAction, default=None,
                   help="gradient checkpointing (default on)")
    p.add_argument("--zero", type=int, choices=[0, 1, 2, 3], default=None,
                   help="DeepSpeed ZeRO stage (default 0, or the recipe's launch section)")
    p.add_argument("--gpus", type=positive_int, default=None,
                   help="data-parallel GPUs, >= 1 (default 1, or the recipe's)")
    p.add_argument("--vllm", choices=["none", "colocate", "server"], default=None,
                   help="rollouts in vLLM: colocated on the training GPUs, or on a separate server (default none)")
    p.add_argument("--vllm-gpu-memory-utilization", type=share, default=None,
                   help="with --vllm colocate: the share of each card vLLM reserves (default 0.3)")
    p.add_argument("--beta", type=non_negative_float, default=None,
                   help="GRPO KL coefficient (>0 keeps a reference; default 0)")
    p.add_argument("--gpu", choices=["T4", "L4", "A100", "H100"], default=None,
                   help="with --recipe: also estimate the time a step and the run take on one such GPU")
    p.set_defaults(func=_plan_memory)
    t = sub.add_parser("train", help="train from a recipe: train RECIPE.yaml [--section.key value ...]")
    t.add_argument("recipe", help="path, or name under alignkit/recipes (e.g. 00_start_here/gpu.yaml)")
    t.add_argument("--output-dir", default=None, help="overrides the trainer section's output_dir")
    t.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue from the last complete checkpoint in the output folder (a finished run "
                        "is left as it is); --no-resume trains from scratch without reading them")
    t.add_argument("--restart", action="store_true",
                   help="clear the output folder's checkpoints and saved configuration, then start over")
    t.set_defaults(func=_train)
    s = sub.add_parser("select", help="chapter 1: select the hard subset a recipe trains on (task.subset): "
                                      "select RECIPE.yaml [--select.k 5000 ...]")
    s.add_argument("recipe", help="path, or name under alignkit/recipes (e.g. 01_bleuberi/cluster.yaml)")
    s.add_argument("--force", action="store_true", help="select again even if the subset exists with other settings")
    s.set_defaults(func=_select)
    return parser


def _one_line(err: BaseException) -> str:
    text = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
    if isinstance(err, (ValueError, TypeError, OSError)):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # anywhere on the line, also after the subcommand
    argv = [a for a in argv if a != "--debug"]
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        takes_overrides = args.command in ("train", "select")
        if extra and not takes_overrides:
            raise CommandLineError(f"unrecognised arguments: {' '.join(extra)} (see python -m alignkit "
                                   f"{args.command} --help)")
        return args.func(args, extra) if takes_overrides else args.func(args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:
        if debug:
            raise
        usage = isinstance(err, (ValueError, TypeError, FileNotFoundError, LookupError)) or \
            type(err).__name__ == "ModelNotFoundError"
        hint = "" if usage else " (rerun with --debug for the traceback)"
        print(f"error: {_one_line(err)}{hint}", file=sys.stderr)
        return 2 if usage else 1


if __name__ == "__main__":
    raise SystemExit(main())
