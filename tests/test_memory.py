"""The GPU memory planner against published figures, hand computations and a CPU measurement."""

import pytest

from alignkit import memory
from alignkit.cli import main

GB = 1e9


@pytest.mark.parametrize("model, published", [
    ("Qwen/Qwen2.5-1.5B-Instruct", 1_543_714_304),  # model card / safetensors index
    ("Qwen/Qwen2.5-7B", 7_615_616_512),
    ("meta-llama/Llama-2-7b-hf", 6_738_415_616),
])
def test_parameter_counts_match_published(model, published):
    assert memory.get_arch(model).n_params == published


def test_zero_paper_figure_1():
    """ZeRO (Rajbhandari et al. 2020), Figure 1: 7.5B parameters, 64 GPUs, K = 12."""
    psi = 7.5e9
    expected = {0: 120, 1: 31.4, 2: 16.6, 3: 1.9}
    for stage, gb in expected.items():
        got = memory.model_state_bytes(psi, zero_stage=stage, n_gpus=64) / GB
        assert got == pytest.approx(gb, abs=0.06), stage


def test_qlora_paper_65b_claims():
    """QLoRA (Dettmers et al. 2023), abstract: finetuning a 65B model needs >780 GB in 16-bit,
    and <48 GB with QLoRA (r=64 on all linear layers, bf16 adapters, gradient checkpointing)."""
    arch = memory.get_arch("huggyllama/llama-65b")
    sixteen_bit = (2 + 2 + 8) * arch.n_params / GB  # 16-bit weights + grads, Adam moments
    assert sixteen_bit > 780
    plan = memory.plan_memory("huggyllama/llama-65b", quant="4bit", lora_r=64, seq_len=512,
                              generations=1, adapter_bytes_per_param=12, cuda_context=False)
    assert 33 < plan.total_gib * memory.GIB / GB < 48


def test_kv_cache_by_hand():
    arch = memory.get_arch("qwen2.5-1.5b")  # 28 layers, 2 KV heads of 128
    assert memory.kv_cache_bytes(arch, 1, 1) == 2 * 28 * 2 * 128 * 2
    assert memory.kv_cache_bytes(arch, 8, 1024) == 8 * 1024 * 28672


def test_lora_params_by_hand():
    arch = memory.Arch("tiny", hidden=8, layers=2, heads=2, kv_heads=1, intermediate=16, vocab=10,
                       tied_embeddings=True)
    # per layer, r=1: q 8+8, k 8+4, v 8+4, o 8+8, gate 8+16, up 8+16, down 16+8
    assert arch.lora_params(1) == 2 * (16 + 12 + 12 + 16 + 24 + 24 + 24)


def test_checkpointing_and_sharding_reduce_memory():
    base = dict(seq_len=2048, generations=8)
    assert (memory.plan_memory("qwen2.5-7b", grad_ckpt=True, **base).total_gib
            < memory.plan_memory("qwen2.5-7b", grad_ckpt=False, **base).total_gib)
    assert (memory.plan_memory("qwen2.5-7b", zero_stage=3, n_gpus=8, **base).total_gib
            < memory.plan_memory("qwen2.5-7b", zero_stage=2, n_gpus=8, **base).total_gib)


def test_vllm_colocate_reserves_its_share_of_each_card():
    base = dict(seq_len=1024, generations=8, zero_stage=3, n_gpus=8)
    hf = memory.plan_memory("qwen2.5-7b", **base)
    co = memory.plan_memory("qwen2.5-7b", vllm="colocate", vllm_gpu_memory_utilization=0.3, **base)
    server = memory.plan_memory("qwen2.5-7b", vllm="server", **base)
    # rollouts leave the training process: no KV cache term, the training phase alone remains
    arch = memory.get_arch("qwen2.5-7b")
    train = memory.activation_bytes(arch, 8 * 1024, grad_ckpt=True) + memory.logits_bytes(arch, 8 * 1024)
    assert co.parts["activations+logits (rollouts in vLLM)"] == pytest.approx(train / memory.GIB)
    assert co.total_gib == server.total_gib <= hf.total_gib
    # on an 80 GB card the colocated engine adds 30% of the card: peak = training + 0.3 * 79.1 GiB
    assert co.peak_gib(79.1) == pytest.approx(co.total_gib + 0.3 * 79.1)
    # its share must also hold vLLM's own 16-bit weights (7.6e9 params x 2 bytes = 14.2 GiB):
    # 0.3 x 39.4 GiB = 11.8 GiB on an A100 40 GB is too small, whatever the training part
    assert co.vllm_weights_gib == pytest.approx(2 * arch.n_params / memory.GIB)
    assert co.fits()["80 GB (A100, H100)"] and not co.fits()["A100 40 GB"]
    assert "vLLM colocate" in co.table() and "vLLM" not in hf.table()
    with pytest.raises(ValueError, match="vllm_gpu_memory_utilization"):
        memory.plan_memory("qwen2.5-7b", vllm="colocate", vllm_gpu_memory_utilization=0.95)
    with pytest.raises(ValueError, match="'sglang'"):
        memory.plan_memory("qwen2.5-7b", vllm="sglang")


def test_zero_offload_moves_optimizer_and_weights_to_cpu():
    n = 7e9
    # ZeRO-Offload (stage 2): gradients and optimiser states in CPU memory, 2-byte weights stay
    assert memory.model_state_bytes(n, zero_stage=2, n_gpus=8, offload=True) == 2 * n
    # ZeRO-3 with parameter offload too: nothing persistent on the GPU
    assert memory.model_state_bytes(n, zero_stage=3, n_gpus=8, offload=True) == 0
    plan = memory.plan_memory("qwen2.5-7b", zero_stage=3, n_gpus=1, offload=True, beta=0.04, grad_ckpt=False)
    assert "reference model (16-bit)" not in plan.parts and plan.settings["offload"] == "cpu"
    # ... but generate() gathers the whole 16-bit model (TRL's ds3_gather_for_generation)
    arch = memory.get_arch("qwen2.5-7b")
    rollout = memory.kv_cache_bytes(arch, 8, 1024) + 2 * arch.n_params
    key = "max(rollout KV cache + gathered weights, activations+logits)"
    train = memory.activation_bytes(arch, 8 * 1024, grad_ckpt=False) + memory.logits_bytes(arch, 8 * 1024)
    assert plan.parts[key] == pytest.approx(max(rollout, train) / memory.GIB)
    with pytest.raises(ValueError, match="offload needs ZeRO stage 2 or 3"):
        memory.model_state_bytes(n, zero_stage=0, offload=True)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="lora_r"):
        memory.plan_memory("qwen2.5-1.5b", quant="4bit")
    with pytest.raises(ValueError, match="nope"):
        memory.get_arch("nope")
    with pytest.raises(ValueError, match="zero_stage"):
        memory.model_state_bytes(1, zero_stage=4)


def test_cli_prints_a_table(capsys):
    assert main(["plan-memory", "--model", "qwen2.5-1.5b", "--quant", "4bit", "--lora-r", "16"]) == 0
    out = capsys.readouterr().out
    assert "estimated peak per GPU" in out and "T4 16 GB" in out
    assert main(["plan-memory", "--model", "qwen2.5-1.5b", "--quant", "4bit"]) == 2


@pytest.mark.slow
def test_weights_estimate_matches_the_bundled_model_measured_on_cpu():
    from alignkit.models import load_policy, model_memory_mb

    arch = memory.get_arch("smollm2-135m")
    full = load_policy("smollm2-135m")
    assert sum(p.numel() for p in full.parameters()) == arch.n_params
    q4 = load_policy("smollm2-135m", quantization="4bit")  # CPU: unquantised parts in float32
    estimate = memory.weight_bytes(arch, "4bit", dtype_bytes=4) / 2**20
    assert estimate == pytest.approx(model_memory_mb(q4), rel=0.05)
