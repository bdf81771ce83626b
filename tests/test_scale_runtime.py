"""alignkit.scale and alignkit.runtime: presets, env var, errors, seeding, the report."""

import random

import numpy as np
import pytest
import torch

from alignkit import runtime
from alignkit.scale import SCALES, current_scale, get_scale


def test_presets_exist_and_are_ordered_by_size():
    assert list(SCALES) == ["smoke", "cpu", "gpu", "cluster"]
    sizes = [SCALES[n].max_steps for n in SCALES]
    assert sizes == sorted(sizes)
    assert SCALES["gpu"].quantization == "4bit" and SCALES["cpu"].quantization is None


def test_current_scale_reads_env(monkeypatch):
    monkeypatch.setenv("ALIGNKIT_SCALE", "GPU")
    assert current_scale().name == "gpu"
    monkeypatch.delenv("ALIGNKIT_SCALE")
    assert current_scale().name == "cpu"


def test_unknown_scale_lists_accepted_names(monkeypatch):
    monkeypatch.setenv("ALIGNKIT_SCALE", "laptop")
    with pytest.raises(ValueError) as err:
        current_scale()
    for name in ("'laptop'", "smoke", "cpu", "gpu", "cluster"):
        assert name in str(err.value)


def test_replace_rejects_unknown_fields():
    s = get_scale("smoke").replace(max_steps=7)
    assert s.max_steps == 7 and s.name == "smoke"
    with pytest.raises(TypeError, match="max_stepz"):
        s.replace(max_stepz=1)


def test_cpu_device_and_dtype():
    if torch.cuda.is_available():
        pytest.skip("checks the CPU choice")
    assert runtime.pick_dtype("cpu") == torch.float32
    assert runtime.pick_device().type in ("cpu", "mps")


def test_seed_everything_repeats_all_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    with pytest.raises(ValueError, match="-1"):
        runtime.seed_everything(-1)


def test_environment_report_offline(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ALIGNKIT_SCALE", "smoke")
    report = runtime.environment_report()
    assert report["scale"].startswith("smoke")
    assert "offline" in report["hub"]
    assert report["torch"] == torch.__version__
    assert "transformers" in capsys.readouterr().out
    assert runtime.hub_reachable() is False  # never probes in offline mode


def test_in_colab_false_here():
    assert runtime.in_colab() is False
