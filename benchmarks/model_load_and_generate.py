"""Benchmark the bundled model: GGUF conversion, cached load, and batch generation tokens/s
in float32 vs 4-bit NF4 (bitsandbytes on CPU). Run: python benchmarks/model_load_and_generate.py
"""

import os
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from alignkit.benchmarking import generation_throughput, next_token_kl  # noqa: E402
from alignkit.models import load_policy, load_tokenizer, model_memory_mb  # noqa: E402
from alignkit.runtime import environment_report  # noqa: E402

BATCH, NEW_TOKENS = 16, 48


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    environment_report()
    with tempfile.TemporaryDirectory() as fresh:
        os.environ["ALIGNKIT_CACHE"] = fresh  # a cold cache: measures the one-off conversion
        _, convert_s = timed(lambda: load_policy("smollm2-135m"))
        model, load_s = timed(lambda: load_policy("smollm2-135m"))
        tok = load_tokenizer("smollm2-135m")
        q4, load4_s = timed(lambda: load_policy("smollm2-135m", quantization="4bit"))
    prompts = [f"Write two sentences about the number {i}." for i in range(BATCH)]
    full = generation_throughput(model, tok, prompts, max_new_tokens=NEW_TOKENS)
    quant = generation_throughput(q4, tok, prompts, max_new_tokens=NEW_TOKENS)
    kl = next_token_kl(model, q4, tok, full["texts"])
    print()
    print(f"{'conversion (GGUF -> safetensors, first load)':48s} {convert_s:8.1f} s")
    print(f"{'load from cache, float32':48s} {load_s:8.2f} s")
    print(f"{'load from cache, 4-bit NF4':48s} {load4_s:8.2f} s")
    print(f"{'memory float32 / 4-bit':48s} {model_memory_mb(model):6.0f} / {model_memory_mb(q4):.0f} MiB")
    print(f"{f'generate float32, batch {BATCH} x {NEW_TOKENS} tokens':48s} {full['tokens_per_s']:8.1f} tokens/s")
    print(f"{f'generate 4-bit,   batch {BATCH} x {NEW_TOKENS} tokens':48s} {quant['tokens_per_s']:8.1f} tokens/s")
    print(f"{'ratio 4-bit / float32 throughput':48s} {quant['tokens_per_s'] / full['tokens_per_s']:8.2f}")
    print(f"{'KL(float32 || 4-bit) per next token':48s} {kl:8.4f} nats")


if __name__ == "__main__":
    main()
