"""alignkit.scale and alignkit.runtime: scale names, size tables, the env var, the one repository
root, seeding, Colab detection and the environment report. (The precision policy on simulated
devices is tests/test_precision.py.)"""

import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alignkit import runtime
from alignkit.scale import SCALES, Scale, check_scale_name, current_scale, get_scale, sizes_for

CHECKOUT = Path(__file__).resolve().parents[1]  # this test file lives in <checkout>/tests


def test_the_four_presets_grow_in_every_size():
    assert list(SCALES) == ["smoke", "cpu", "gpu", "cluster"]
    assert all(SCALES[name].name == name for name in SCALES)
    for field in ("n_train", "n_eval", "max_steps", "max_completion_length", "toy_steps", "toy_samples"):
        sizes = [getattr(SCALES[n], field) for n in SCALES]
        assert sizes == sorted(sizes) and sizes[0] < sizes[-1], field
    assert [SCALES[n].quantization for n in SCALES] == [None, None, "4bit", None]
    assert [SCALES[n].lora for n in SCALES] == [True, True, True, False]  # cluster: full fine-tuning


@pytest.mark.parametrize("raw, name", [("smoke", "smoke"), (" CPU ", "cpu"), ("Gpu\n", "gpu"),
                                       ("CLUSTER", "cluster")])
def test_check_scale_name_normalises(raw, name):
    assert check_scale_name(raw) == name
    assert get_scale(raw) is SCALES[name]


@pytest.mark.parametrize("bad", ["laptop", "", "cpu2", None])
def test_unknown_scale_names_list_the_accepted_ones(bad):
    with pytest.raises(ValueError) as err:
        check_scale_name(bad)
    message = str(err.value)
    assert repr(bad) in message
    assert "accepted scales: smoke, cpu, gpu, cluster" in message
    assert "ALIGNKIT_SCALE" in message


def test_current_scale_reads_the_env_var(monkeypatch):
    monkeypatch.setenv("ALIGNKIT_SCALE", " GPU ")
    assert current_scale() is SCALES["gpu"]
    monkeypatch.setenv("ALIGNKIT_SCALE", "")  # empty = unset
    assert current_scale() is SCALES["cpu"]
    monkeypatch.delenv("ALIGNKIT_SCALE")
    assert current_scale() is SCALES["cpu"] and current_scale(default="smoke") is SCALES["smoke"]
    monkeypatch.setenv("ALIGNKIT_SCALE", "laptop")
    with pytest.raises(ValueError, match="'laptop'"):
        current_scale()


def test_sizes_for_reads_by_name_or_scale_and_names_the_owner_in_errors():
    table = {"smoke": {"steps": 1}, "cpu": {"steps": 10}}
    assert sizes_for(table, "smoke", owner="t") == {"steps": 1}
    assert sizes_for(table, " CPU ", owner="t") is table["cpu"]
    assert sizes_for(table, get_scale("cpu"), owner="t") is table["cpu"]
    with pytest.raises(ValueError) as err:
        sizes_for(table, "gpu", owner="chapter 9's experiment", hint="use the gpu recipe")
    assert str(err.value) == ("chapter 9's experiment has no sizes for scale 'gpu'; it has smoke, cpu "
                              "(use the gpu recipe)")
    with pytest.raises(ValueError) as err:
        sizes_for(table, get_scale("cluster"), owner="table X")
    assert str(err.value) == "table X has no sizes for scale 'cluster'; it has smoke, cpu"
    with pytest.raises(ValueError, match="accepted scales"):  # a bad name is a scale error first
        sizes_for(table, "laptop", owner="table X")


def test_replace_changes_fields_and_rejects_unknown_ones():
    smoke = get_scale("smoke")
    s = smoke.replace(max_steps=7, seeds=(1, 2))
    assert (s.max_steps, s.seeds, s.name, s.model) == (7, (1, 2), "smoke", smoke.model)
    assert smoke.max_steps == 2  # the preset itself is unchanged (frozen)
    with pytest.raises(TypeError) as err:
        s.replace(max_stepz=1)
    assert "max_stepz" in str(err.value) and "max_steps" in str(err.value)
    with pytest.raises(AttributeError):
        smoke.max_steps = 3
    assert isinstance(s, Scale)


def test_repo_root_is_the_checkout_whatever_the_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv("ALIGNKIT_HOME", raising=False)
    assert runtime.repo_root() == CHECKOUT
    monkeypatch.chdir(tmp_path)
    assert runtime.repo_root() == CHECKOUT
    monkeypatch.chdir(CHECKOUT / "notebooks")  # where Jupyter runs a chapter from
    assert runtime.repo_root() == CHECKOUT
    assert runtime.results_root() == CHECKOUT / "results"
    assert runtime.runs_root() == CHECKOUT / "runs"
    assert runtime.data_root() == CHECKOUT / "data"


def test_alignkit_home_overrides_the_root(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNKIT_HOME", str(tmp_path / "work" / ".." / "home"))
    assert runtime.repo_root() == (tmp_path / "home").resolve()
    assert runtime.results_root() == (tmp_path / "home").resolve() / "results"
    assert runtime.runs_root().parent == runtime.data_root().parent == (tmp_path / "home").resolve()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("ALIGNKIT_HOME", "~/wb")
    assert runtime.repo_root() == (tmp_path / "wb").resolve()
    monkeypatch.setenv("ALIGNKIT_HOME", "")  # empty = unset
    assert runtime.repo_root() == CHECKOUT


def test_an_installed_package_roots_at_the_cwd(monkeypatch, tmp_path):
    """Outside a checkout (a wheel in site-packages) there is no pyproject.toml beside the package."""
    monkeypatch.delenv("ALIGNKIT_HOME", raising=False)
    fake = tmp_path / "site-packages" / "alignkit" / "runtime.py"
    fake.parent.mkdir(parents=True)
    monkeypatch.setattr(runtime, "__file__", str(fake))
    monkeypatch.chdir(tmp_path)
    assert runtime.repo_root() == tmp_path
    (tmp_path / "site-packages" / "pyproject.toml").write_text("")  # now it looks like a checkout
    assert runtime.repo_root() == tmp_path / "site-packages"


def test_the_real_cpu_follows_its_flags():
    """On this machine's CPU: bf16 exactly when /proc/cpuinfo lists native bf16 units."""
    try:
        flags = {w for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")
                 for w in line.split(":", 1)[1].split()}
    except OSError:
        flags = set()
    fast = bool(flags & {"avx512_bf16", "amx_bf16"})
    runtime.cpu_has_fast_bf16.cache_clear()
    assert runtime.cpu_has_fast_bf16() is fast
    assert runtime.pick_dtype("cpu") == (torch.bfloat16 if fast else torch.float32)


def test_seed_everything_repeats_all_generators(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)  # restored after the test

    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    runtime.seed_everything(123)
    first = draw()
    runtime.seed_everything(123)
    assert draw() == first
    runtime.seed_everything(124)
    assert draw() != first
    assert os.environ["PYTHONHASHSEED"] == "124"
    for bad in (-1, 1.5, "3"):
        with pytest.raises(ValueError, match=repr(bad).replace(".", r"\.")):
            runtime.seed_everything(bad)


def test_in_colab_reads_the_module_or_the_env_var(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert runtime.in_colab() is False
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20250101")
    assert runtime.in_colab() is True
    monkeypatch.delenv("COLAB_RELEASE_TAG")
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert runtime.in_colab() is True


@pytest.mark.parametrize("value, offline", [("1", True), ("TRUE", True), (" yes ", True), ("on", True),
                                            ("0", False), ("", False), ("no", False)])
def test_hub_offline_values(monkeypatch, value, offline):
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert runtime.hub_offline() is offline


def test_environment_report_offline(monkeypatch, capsys):
    import socket

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ALIGNKIT_SCALE", "smoke")

    def no_network(*a, **k):
        raise AssertionError("the report probed the network in offline mode")

    monkeypatch.setattr(socket, "create_connection", no_network)
    report = runtime.environment_report(probe_hub=True)
    assert report["scale"] == f"smoke: {SCALES['smoke'].description}"
    assert report["hub"].startswith("offline mode")
    assert report["torch"] == torch.__version__
    assert report["dtype"] == str(runtime.pick_dtype()).removeprefix("torch.")
    assert report["device"].startswith(runtime.pick_device().type)
    out = capsys.readouterr().out
    # one line per entry, "warnings" as one line per version drift (none here)
    assert report["warnings"] == []
    assert len(out.splitlines()) == len(report) - 1
    assert all(line.split()[0] in " ".join(report) for line in out.splitlines())
    assert runtime.hub_reachable() is False  # never probes in offline mode
    assert runtime.environment_report(show=False) == report and capsys.readouterr().out == ""
