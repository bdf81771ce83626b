"""A non-editable install works: the wheel's package list, data and results read through
importlib.resources, a missing result naming its command, and the tested-versions report."""

import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

from alignkit import install, runtime

ROOT = Path(__file__).resolve().parents[1]
with open(ROOT / "pyproject.toml", "rb") as f:
    SETUPTOOLS = tomllib.load(f)["tool"]["setuptools"]


def test_the_wheel_lists_every_package_and_maps_data_results_and_constraints():
    found = set(find_packages(ROOT, include=["alignkit*"]))
    listed = set(SETUPTOOLS["packages"])
    assert found <= listed, f"add {sorted(found - listed)} to [tool.setuptools] packages"
    assert SETUPTOOLS["package-dir"] == {"alignkit._data": "data", "alignkit._results": "results",
                                         "alignkit._project": "."}
    assert set(runtime.BUNDLED.values()) <= listed


def test_a_wheel_install_reads_bundled_data_and_results_and_writes_under_the_current_folder(
        monkeypatch, tmp_path):
    wheel = tmp_path / "site" / "alignkit"
    (wheel / "_results" / "02_limr").mkdir(parents=True)
    (wheel / "_results" / "02_limr" / "toy_cpu.json").write_text('{"runs": []}')
    (wheel / "_data" / "instructions").mkdir(parents=True)
    monkeypatch.setenv(runtime.HOME_VAR, str(tmp_path / "cwd"))  # where a wheel user's runs go
    monkeypatch.setattr(runtime, "bundled", lambda kind, rel="": (p if (p := wheel / f"_{kind}" / rel).exists()
                                                                   else None))
    assert runtime.data_root() == wheel / "_data"
    assert runtime.find_result("02_limr/toy_cpu.json") == wheel / "_results" / "02_limr" / "toy_cpu.json"
    assert runtime.find_result("02_limr/lm_cpu.json") is None
    assert runtime.results_root() == (tmp_path / "cwd").resolve() / "results"
    local = runtime.results_root() / "02_limr" / "toy_cpu.json"
    local.parent.mkdir(parents=True)
    local.write_text("{}")
    assert runtime.find_result("02_limr/toy_cpu.json") == local  # a new run wins over the package's


def test_a_missing_result_is_an_error_naming_the_command_not_a_long_run(monkeypatch, tmp_path):
    from alignkit.chapters.bleuberi import experiment
    from alignkit.chapters.limr import results

    monkeypatch.setenv(runtime.HOME_VAR, str(tmp_path))
    monkeypatch.setattr(runtime, "bundled", lambda kind, rel="": None)
    monkeypatch.setattr(results, "find_result", lambda rel: None)
    with pytest.raises(FileNotFoundError, match=r"python -m alignkit\.chapters\.limr\.lm --scale cpu"):
        results.load_or_run("lm", "cpu")
    monkeypatch.setattr(experiment, "find_result", lambda rel: None)
    monkeypatch.setattr(experiment, "run_experiment", lambda *a, **k: pytest.fail("started a run unasked"))
    with pytest.raises(FileNotFoundError, match=r"bleuberi\.experiment --scale cpu"):
        experiment.load_or_run("cpu")


def test_the_committed_cpu_results_are_found_in_the_checkout():
    assert runtime.find_result("01_bleuberi/experiment_cpu.json") == ROOT / "results/01_bleuberi/experiment_cpu.json"


def test_tested_versions_come_from_constraints_and_drift_is_major_or_minor_only():
    tested = install.tested_versions()
    pins = install.parse_pins((ROOT / "constraints.txt").read_text())
    assert tested["torch"] == pins["torch"] and tested["trl"] == pins["trl"]
    drift = install.version_drift({"torch": "2.8.0+cu126", "trl": "1.16.9", "peft": "not installed"},
                                  {"torch": "2.13.0", "trl": "1.16.0", "peft": "0.21.2"})
    assert len(drift) == 1 and drift[0].startswith("torch 2.8.0+cu126") and "kept on purpose" in drift[0]
    assert install.version_drift({"trl": "2.0.0"}, {"trl": "1.16.0"})[0].endswith("`pip install trl==1.16.0`)")


def test_colab_keeps_its_torch_stack_and_pins_the_rest():
    text = "torch==2.13.0\ntorchvision==0.28\ntriton==3.1\nnvidia-cublas-cu12==12.4\ntrl==1.16.0\nnumpy==2.3.1\n"
    kept = install.parse_pins(install.colab_constraints(text))
    assert kept == {"trl": "1.16.0", "numpy": "2.3.1"}


def test_the_environment_report_prints_the_tested_versions(capsys):
    report = runtime.environment_report()
    assert report["tested with"].startswith("torch ") and "trl " in report["tested with"]
    assert "tested with" in capsys.readouterr().out
    assert isinstance(report["warnings"], list)
