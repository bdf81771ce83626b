"""The one precision policy (alignkit.runtime) on simulated devices, and every consumer follows it.

Devices are simulated with monkeypatch at the level torch reports them (``torch.cuda.is_available``,
``torch.cuda.get_device_capability``, ``torch.cuda.is_bf16_supported``, the MPS backend, and the
CPU flags ``/proc/cpuinfo`` lists), so the real code paths of ``pick_device``/``cuda_capability``/
``cpu_has_fast_bf16`` run. A simulated GPU also stubs the two places where transformers'
``TrainingArguments`` talks to the CUDA driver (device setup and the distributed state), so that
the real GRPO / SFT / reward config classes are built, with their own validation, as on a GPU.
"""

import io

import pytest
import torch
import transformers

from alignkit import recipe as rc
from alignkit import runtime, training
from alignkit.models import bnb_4bit_config
from alignkit.scale import get_scale
from alignkit.training.common import make_config

T4, A100, L4 = (7, 5), (8, 0), (8, 9)


def simulate_cuda(monkeypatch, capability):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    # torch says True on a T4 too: it counts emulated bf16. The policy must not ask it.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(transformers.TrainingArguments, "_setup_devices", property(lambda self: torch.device("cuda:0")))
    monkeypatch.setattr(transformers.TrainingArguments, "distributed_state", None, raising=False)


def simulate_cpu(monkeypatch, flags):
    """A CPU (no CUDA, no MPS) whose /proc/cpuinfo lists ``flags``."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cpuinfo = f"processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: {' '.join(flags)}\n"
    monkeypatch.setattr(runtime, "open", lambda path, *a, **k: io.StringIO(cpuinfo), raising=False)
    runtime.cpu_has_fast_bf16.cache_clear()


def simulate_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)


@pytest.fixture(autouse=True)
def _fresh_cpu_flags():
    runtime.cpu_has_fast_bf16.cache_clear()
    yield
    runtime.cpu_has_fast_bf16.cache_clear()


def configs(tmp_path):
    """Every trainer config of alignkit.training, built through its real builder."""
    return {"grpo": training.grpo_config(tmp_path, scale=get_scale("smoke")),
            "sft": training.sft_config(str(tmp_path)),
            "reward": training.reward_config(str(tmp_path), max_steps=1)}


# --- the policy on each device ---------------------------------------------------------------


def test_t4_trains_in_fp16_never_in_bf16(monkeypatch, tmp_path):
    simulate_cuda(monkeypatch, T4)
    assert torch.cuda.is_bf16_supported()  # the trap: torch says yes on a T4
    assert runtime.pick_device().type == "cuda" and runtime.cuda_capability() == T4
    assert runtime.pick_dtype() == runtime.pick_dtype("cuda") == torch.float16
    assert runtime.resolve_dtype("auto") == torch.float16
    assert runtime.load_dtype(torch.float16, "cuda") == torch.float16  # a frozen base stays in 16 bits
    assert runtime.trainer_precision() == {"bf16": False, "fp16": True}
    assert runtime.vllm_dtype() == "half"
    assert bnb_4bit_config().bnb_4bit_compute_dtype == torch.float16
    for name, cfg in configs(tmp_path).items():
        assert (cfg.fp16, cfg.bf16, cfg.use_cpu) == (True, False, False), name
    with pytest.raises(ValueError, match="bfloat16") as err:
        runtime.resolve_dtype("bfloat16", "cuda")
    assert "float16" in str(err.value).replace("bfloat16", "")  # names what the policy picks instead
    assert runtime.resolve_dtype("float16", "cuda") == torch.float16
    assert runtime.resolve_dtype("float32", "cuda") == torch.float32


@pytest.mark.parametrize("capability", [A100, L4], ids=["A100", "L4"])
def test_ampere_and_newer_train_in_bf16(monkeypatch, tmp_path, capability):
    simulate_cuda(monkeypatch, capability)
    assert runtime.pick_dtype("cuda") == torch.bfloat16
    assert runtime.trainer_precision() == {"bf16": True, "fp16": False}
    assert runtime.vllm_dtype() == "bfloat16"
    assert bnb_4bit_config().bnb_4bit_compute_dtype == torch.bfloat16
    for name, cfg in configs(tmp_path).items():
        assert (cfg.bf16, cfg.fp16, cfg.use_cpu) == (True, False, False), name
    assert runtime.resolve_dtype("bfloat16", "cuda") == torch.bfloat16
    assert runtime.resolve_dtype("float16", "cuda") == torch.float16  # allowed, never picked


@pytest.mark.parametrize("flag", ["avx512_bf16", "amx_bf16"])
def test_cpu_with_native_bf16_units_autocasts_to_bf16(monkeypatch, tmp_path, flag):
    simulate_cpu(monkeypatch, ["fpu", "sse2", "avx2", "avx512f", flag])
    assert runtime.cpu_has_fast_bf16() is True
    assert runtime.pick_device().type == "cpu"
    assert runtime.pick_dtype() == runtime.pick_dtype("cpu") == torch.bfloat16
    assert runtime.load_dtype(torch.bfloat16, "cpu") == torch.float32  # fp32 master weights
    assert runtime.trainer_precision() == {"bf16": True, "fp16": False}
    assert bnb_4bit_config().bnb_4bit_compute_dtype == torch.bfloat16
    for name, cfg in configs(tmp_path).items():
        assert (cfg.bf16, cfg.fp16, cfg.use_cpu) == (True, False, True), name
        assert cfg.gradient_checkpointing is False, name  # only costs time on a CPU
    assert runtime.resolve_dtype("bfloat16", "cpu") == torch.bfloat16


def test_cpu_without_bf16_units_stays_in_float32(monkeypatch, tmp_path):
    simulate_cpu(monkeypatch, ["fpu", "sse2", "avx2", "avx512f", "avx512_vnni"])  # no bf16 units
    assert runtime.cpu_has_fast_bf16() is False
    assert runtime.pick_dtype("cpu") == torch.float32
    assert runtime.trainer_precision() == {"bf16": False, "fp16": False}
    assert runtime.vllm_dtype() == "float32"
    assert bnb_4bit_config().bnb_4bit_compute_dtype == torch.float32
    for name, cfg in configs(tmp_path).items():
        assert (cfg.bf16, cfg.fp16, cfg.use_cpu) == (False, False, True), name
    with pytest.raises(ValueError, match="bfloat16 is not native on this cpu"):
        runtime.resolve_dtype("bfloat16", "cpu")


def test_a_system_without_proc_cpuinfo_has_no_bf16_units(monkeypatch):
    def missing(path, *a, **k):
        raise FileNotFoundError(path)

    monkeypatch.setattr(runtime, "open", missing, raising=False)
    runtime.cpu_has_fast_bf16.cache_clear()
    assert runtime.cpu_has_fast_bf16() is False


def test_mps_uses_fp16(monkeypatch, tmp_path):
    simulate_mps(monkeypatch)
    assert runtime.pick_device().type == "mps"
    assert runtime.pick_dtype() == runtime.pick_dtype("mps") == torch.float16
    assert runtime.trainer_precision() == {"bf16": False, "fp16": True}
    assert runtime.vllm_dtype() == "half"
    assert bnb_4bit_config().bnb_4bit_compute_dtype == torch.float16
    assert training.grpo_config(tmp_path, scale=get_scale("smoke")).fp16 is True
    with pytest.raises(ValueError, match="bfloat16"):
        runtime.resolve_dtype("bfloat16", "mps")


def test_an_explicit_compute_dtype_overrides_the_machine(monkeypatch, tmp_path):
    simulate_cuda(monkeypatch, A100)
    cfg = training.grpo_config(tmp_path, scale=get_scale("smoke"), compute=torch.float16)
    assert (cfg.fp16, cfg.bf16) == (True, False)
    cfg = training.sft_config(str(tmp_path), compute=torch.float32)
    assert (cfg.fp16, cfg.bf16) == (False, False)
    assert runtime.vllm_dtype(torch.float16) == "half" and runtime.vllm_dtype(torch.float32) == "float32"
    assert bnb_4bit_config(torch.float16).bnb_4bit_compute_dtype == torch.float16


# --- refusals ---------------------------------------------------------------------------------


def test_float16_is_refused_for_training_on_a_cpu(monkeypatch):
    simulate_cpu(monkeypatch, ["avx512_bf16"])
    with pytest.raises(ValueError, match="float16 is not supported for training on a CPU"):
        runtime.resolve_dtype("float16", "cpu")
    with pytest.raises(ValueError, match="float16"):
        runtime.resolve_dtype(torch.float16, "cpu")
    assert runtime.resolve_dtype("float32", "cpu") == torch.float32


@pytest.mark.parametrize("bad", ["bf16", "fp16", "bfloat16x", "half"])
def test_bad_dtype_names_are_refused_listing_the_accepted_ones(bad):
    with pytest.raises(ValueError) as err:
        runtime.resolve_dtype(bad, "cpu")
    message = str(err.value)
    assert repr(bad) in message
    for accepted in ("'auto'", "'float32'", "'bfloat16'", "'float16'"):
        assert accepted in message


def test_a_dtype_outside_the_policy_is_refused():
    with pytest.raises(ValueError, match="float64"):
        runtime.resolve_dtype(torch.float64, "cpu")


@pytest.mark.parametrize("field", ["bf16", "fp16"])
def test_make_config_refuses_precision_fields(tmp_path, field):
    from trl import GRPOConfig

    with pytest.raises(ValueError, match=field) as err:
        make_config(GRPOConfig, {"output_dir": str(tmp_path), field: True})
    assert "precision policy" in str(err.value)
    with pytest.raises(ValueError, match=field):
        training.grpo_config(tmp_path, scale=get_scale("smoke"), **{field: True})
    with pytest.raises(ValueError, match=field):
        training.sft_config(str(tmp_path), **{field: True})
    with pytest.raises(ValueError, match=field):
        training.reward_config(str(tmp_path), max_steps=1, **{field: True})


@pytest.mark.parametrize("field", ["bf16", "fp16"])
def test_recipes_refuse_precision_fields(field):
    recipe = rc.load_recipe("00_start_here/gpu.yaml")
    with pytest.raises(ValueError, match=f"grpo.{field}") as err:
        rc.validate({**recipe, "grpo": {**recipe["grpo"], field: True}})
    assert "model.dtype" in str(err.value)
    with pytest.raises(ValueError, match=f"grpo.{field}"):
        rc.load_recipe("00_start_here/gpu.yaml", [f"--grpo.{field}", "true"])


def test_a_colocated_vllm_engine_is_refused_where_the_policy_says_fp16(monkeypatch, tmp_path):
    from alignkit.training.grpo import check_vllm_dtype

    simulate_cuda(monkeypatch, T4)
    with pytest.raises(ValueError, match="trl vllm-serve --model MODEL --dtype half"):
        training.grpo_config(tmp_path, scale=get_scale("smoke"), use_vllm=True, vllm_mode="colocate")
    check_vllm_dtype({"use_vllm": True, "vllm_mode": "server"})  # a server takes --dtype half
    check_vllm_dtype({"use_vllm": False})
    simulate_cuda(monkeypatch, A100)
    check_vllm_dtype({"use_vllm": True, "vllm_mode": "colocate"})  # bf16 is native there


# --- every recipe, on each kind of device --------------------------------------------------------

F32, F16, B16 = torch.float32, torch.float16, torch.bfloat16
DEVICES = {"T4": (T4, F16), "L4": (L4, B16), "A100": (A100, B16), "cpu": (None, F32)}


@pytest.mark.parametrize("device", list(DEVICES))
@pytest.mark.parametrize("name", rc.list_recipes())
def test_every_recipe_follows_the_policy_on_a_t4_an_l4_an_a100_and_a_cpu(monkeypatch, tmp_path, device, name):
    capability, expected = DEVICES[device]
    if capability:
        simulate_cuda(monkeypatch, capability)
    else:
        simulate_cpu(monkeypatch, ["fpu", "sse2", "avx2"])
    # an accelerate config's `mixed_precision: bf16` reaches TrainingArguments through this variable
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "bf16")
    recipe = rc.load_recipe(name)
    spec, args = recipe["model"], dict(recipe[recipe["trainer"]])
    args.pop("output_dir", None)
    compute = runtime.resolve_dtype(spec.get("dtype", "auto"))
    assert compute == expected
    colocated = args.get("use_vllm") and args.get("vllm_mode", "colocate") == "colocate"
    if colocated and expected == F16:  # TRL 1.16 would start the engine in bf16 there
        with pytest.raises(ValueError, match="--dtype half"):
            training.grpo_config(tmp_path, compute=compute, **args)
        return
    cfg = training.grpo_config(tmp_path, compute=compute, **args)
    assert (cfg.bf16, cfg.fp16) == (expected == B16, expected == F16), name
    assert cfg.mixed_precision == {B16: "bf16", F16: "fp16", F32: "no"}[expected], name
    if spec.get("quantization") == "4bit":
        assert bnb_4bit_config(compute).bnb_4bit_compute_dtype == expected
    full = spec.get("lora") is None and spec.get("quantization") is None
    weights = runtime.load_dtype(compute, "cuda" if capability else "cpu", trains_weights=full)
    assert weights == (F32 if expected != B16 and (full or not capability) else expected), name
    if args.get("use_vllm"):
        assert runtime.vllm_dtype(compute) == {B16: "bfloat16", F16: "half", F32: "float32"}[expected]


def test_the_t4_recipe_fits_a_t4_in_about_an_hour_with_no_4bit_and_no_colocated_vllm(monkeypatch, tmp_path):
    from alignkit.memory import CARDS, HEADROOM
    from alignkit.step_time import recipe_hours

    recipe = rc.load_recipe("00_start_here/gpu.yaml")
    assert recipe["model"]["quantization"] is None and recipe["model"]["lora"]  # 16-bit LoRA
    assert not recipe["grpo"].get("use_vllm")
    assert rc.plan_recipe(recipe).total_gib <= HEADROOM * CARDS["T4 16 GB"]
    assert recipe_hours(recipe, gpu="T4")["hours"] <= 1.0
    simulate_cuda(monkeypatch, T4)
    args = {k: v for k, v in recipe["grpo"].items() if k != "output_dir"}
    cfg = training.grpo_config(tmp_path, compute=runtime.resolve_dtype("auto"), **args)
    assert (cfg.fp16, cfg.bf16) == (True, False)
    assert runtime.load_dtype(torch.float16, "cuda") == torch.float16  # frozen base in fp16, 3.1 GB


def test_fp16_full_fine_tuning_keeps_float32_master_weights(monkeypatch):
    simulate_cuda(monkeypatch, T4)
    assert runtime.load_dtype(torch.float16, "cuda", trains_weights=True) == torch.float32
    assert runtime.load_dtype(torch.bfloat16, "cuda", trains_weights=True) == torch.bfloat16
    assert runtime.load_dtype(torch.float16, "cuda", trains_weights=False) == torch.float16
