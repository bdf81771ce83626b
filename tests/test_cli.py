"""The command line: mistakes are one line on stderr with exit status 2, caught before any model
loads; ``--debug`` shows the traceback; plan-memory refuses what it would ignore."""

import pytest

from alignkit import cli
from alignkit import recipe as rc

RECIPE = "00_start_here/gpu.yaml"


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if anything tries to load a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the command line was checked")

    monkeypatch.setattr("alignkit.models.load_policy", refuse)
    monkeypatch.setattr("alignkit.reward_model.load_reward_model", refuse)


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize(("override", "named"), [
    (["--grpo.learning_rate", "abc"], "grpo.learning_rate: 'abc' is not a float"),
    (["--grpo.max_steps", "-3"], "grpo.max_steps: -3 is out of range"),
    (["--grpo.max_steps", "0"], "grpo.max_steps: 0 is out of range"),
    (["--grpo.max_steps", "2.5"], "grpo.max_steps: 2.5 is not an int"),
    (["--grpo.max_steps=-3"], "grpo.max_steps: -3 is out of range"),
    (["--grpo.temperature", "-1"], "grpo.temperature: -1 is out of range"),
    (["--grpo.beta", "-1"], "grpo.beta: -1 is out of range"),
    (["--grpo.top_p", "1.5"], "grpo.top_p: 1.5 is out of range"),
    (["--grpo.num_generations", "1"], "grpo.num_generations: 1 is out of range"),
    (["--grpo.loss_type", "foo"], "grpo.loss_type: 'foo' is not one of 'grpo'"),
    (["--grpo.lr_scheduler_type", "foo"], "grpo.lr_scheduler_type: 'foo' is not one of 'linear'"),
    (["--grpo.save_strategy", "no"], "quote the word"),
    (["--grpo.max_stepz", "3"], "grpo.max_stepz"),
    (["--grpo.max_steps"], "has no value"),
    (["--model.name", "smollm2-135m", "--grpo.num_generations", "3"], "num_generations"),  # TRL's own check
])
def test_bad_train_overrides_are_one_line_before_the_model_loads(override, named, no_model, capsys):
    assert cli.main(["train", RECIPE, *override]) == 2
    assert named in one_error_line(capsys)


def test_debug_shows_the_traceback(no_model):
    with pytest.raises(ValueError, match="learning_rate"):
        cli.main(["train", RECIPE, "--grpo.learning_rate", "abc", "--debug"])
    with pytest.raises(ValueError, match="learning_rate"):
        cli.main(["--debug", "train", RECIPE, "--grpo.learning_rate", "abc"])


def test_an_unknown_recipe_is_one_line(capsys):
    assert cli.main(["train", "nope/none.yaml"]) == 2
    assert "no recipe at 'nope/none.yaml'" in one_error_line(capsys)


def test_override_values_are_typed_and_both_spellings_work():
    recipe = rc.load_recipe(RECIPE, ["--grpo.learning_rate", "1e-4", "--grpo.beta=0.04",
                                     "--grpo.max_steps=7", "--grpo.num_train_epochs", "2"])
    grpo = recipe["grpo"]
    assert grpo["learning_rate"] == 1e-4 and isinstance(grpo["learning_rate"], float)  # YAML: a string
    assert (grpo["beta"], grpo["max_steps"], grpo["num_train_epochs"]) == (0.04, 7, 2.0)
    for name in rc.list_recipes():  # every shipped recipe passes the checks
        rc.load_recipe(name)


@pytest.mark.parametrize("argv", [
    ["plan-memory", "--recipe", RECIPE, "--gpus", "0"],
    ["plan-memory", "--recipe", RECIPE, "--gpus", "0", "--zero", "3"],  # was ZeroDivisionError
    ["plan-memory", "--model", "qwen2.5-1.5b", "--gpus", "-4"],  # was "-0.27 GiB, fits"
    ["plan-memory", "--model", "qwen2.5-1.5b", "--gpus", "0"],  # was silently 1
    ["plan-memory", "--model", "qwen2.5-1.5b", "--seq-len", "0"],
    ["plan-memory", "--model", "qwen2.5-1.5b", "--vllm-gpu-memory-utilization", "1.5"],
])
def test_plan_memory_refuses_impossible_sizes(argv, capsys):
    assert cli.main(argv) == 2
    assert "is not a" in one_error_line(capsys)


def test_plan_memory_with_a_recipe_refuses_what_it_would_ignore(capsys):
    argv = ["plan-memory", "--recipe", RECIPE, "--model", "qwen2.5-7b", "--quant", "none", "--seq-len", "512",
            "--no-grad-ckpt"]
    assert cli.main(argv) == 2
    line = one_error_line(capsys)
    assert all(flag in line for flag in ("--model", "--quant", "--seq-len", "--grad-ckpt"))
    assert "--generations" not in line


def test_plan_memory_still_plans(capsys):
    assert cli.main(["plan-memory", "--recipe", RECIPE, "--gpus", "2", "--prompt-tokens", "128"]) == 0
    assert "fits" in capsys.readouterr().out
    assert cli.main(["plan-memory", "--model", "qwen2.5-1.5b", "--quant", "4bit", "--lora-r", "16",
                     "--seq-len", "192"]) == 0
    assert "fits" in capsys.readouterr().out
    assert cli.main(["plan-memory"]) == 2
    assert "--model" in one_error_line(capsys)
    assert cli.main(["plan-memory", "--model", "qwen2.5-1.5b", "--bogus", "1"]) == 2
    assert "--bogus" in one_error_line(capsys)


def test_plan_recipe_refuses_zero_gpus():
    with pytest.raises(ValueError, match="n_gpus"):
        rc.plan_recipe(rc.load_recipe(RECIPE), n_gpus=0)
