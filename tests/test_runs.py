"""Real tiny GRPO runs on CPU with the bundled model (4 steps, a checkpoint every 2, 4-token
completions, groups of 2): a finished run is not trained again, a resume with another
configuration is refused, the same seed gives the same weights, a resumed run (float and 4-bit)
equals an uninterrupted one in one dtype throughout, and a broken newest checkpoint is skipped.

Each run takes seconds; the uninterrupted float run (through the command line) and the 4-bit run
are made once per module and shared by the tests below.
"""

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from alignkit import cli, training
from alignkit import recipe as rc
from alignkit.models import load_policy

pytestmark = pytest.mark.slow

RECIPE = "00_start_here/gpu.yaml"
TINY = ["--grpo.max_steps", "4", "--grpo.save_strategy", "steps", "--grpo.save_steps", "2",
        "--grpo.max_completion_length", "4", "--grpo.num_generations", "2",
        "--grpo.per_device_train_batch_size", "2", "--grpo.logging_steps", "1",
        "--grpo.disable_tqdm", "true"]


def tiny_overrides(quantization: str | None = None, *extra: str) -> list[str]:
    """``00_start_here/gpu.yaml`` on the CPU with the bundled model, tiny (see the module doc)."""
    return [*rc.cpu_substitutes(rc.load_recipe(RECIPE)), *TINY,
            "--model.quantization", quantization or "null", *extra]


def tiny_trainer(output_dir, quantization=None, *extra, callbacks=None):
    recipe = rc.load_recipe(RECIPE, tiny_overrides(quantization, *extra))
    return rc.build_trainer(recipe, output_dir=output_dir, callbacks=callbacks)


def run_cli(output_dir, *extra: str) -> int:
    return cli.main(["train", RECIPE, *tiny_overrides(None, *extra), "--output-dir", str(output_dir)])


def adapter(checkpoint) -> dict[str, torch.Tensor]:
    return load_file(str(Path(checkpoint) / "adapter_model.safetensors"))


def digests(output_dir) -> tuple[str, str]:
    read = lambda stage: json.loads((Path(output_dir) / f"rank0-{stage}.json").read_text())["digest"]  # noqa: E731
    return read("start"), read("end")


def checkpoints(output_dir) -> list[str]:
    return sorted(p.name for p in Path(output_dir).glob("checkpoint-*"))


def assert_close(a: dict, b: dict, atol: float = 1e-6):
    assert a.keys() == b.keys()
    worst = max((x - b[n]).abs().max().item() for n, x in a.items())
    assert worst <= atol, f"weights differ by up to {worst:.3g}"


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The same command twice (python -m alignkit train ...) into two folders, 4 steps each."""
    first, second = tmp_path_factory.mktemp("straight"), tmp_path_factory.mktemp("again")
    assert run_cli(first) == 0 and run_cli(second) == 0
    return first, second


def test_the_same_command_twice_gives_identical_start_and_end_weights(straight):
    first, second = straight
    assert checkpoints(first) == ["checkpoint-2", "checkpoint-4"]
    start, end = digests(first)
    assert start != end  # it trained
    assert digests(second) == (start, end)  # bit-identical, start and end
    assert (first / training.RUN_CONFIG).is_file()


def test_load_policy_seeds_the_adapter_before_creating_it():
    lora = {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}
    a, b, c = (training.trainable_digest(load_policy("smollm2-135m", lora=lora, seed=s)) for s in (0, 0, 1))
    assert a == b != c


def test_rerunning_a_finished_run_trains_nothing_and_says_so(straight, capsys):
    first, _ = straight
    _, end = digests(first)
    before = {p.name: p.stat().st_mtime_ns for p in first.glob("checkpoint-*/*")}
    for _ in range(2):  # each rerun used to train one more step (global_step 5, then 6)
        assert run_cli(first) == 0
        out = capsys.readouterr().out
        assert "already finished" in out and "step 4 of 4" in out
    assert checkpoints(first) == ["checkpoint-2", "checkpoint-4"]
    assert {p.name: p.stat().st_mtime_ns for p in first.glob("checkpoint-*/*")} == before
    assert digests(first)[1] == end  # the finished weights are loaded, not trained on
    # through the Python API: the existing state comes back
    trainer = tiny_trainer(first)
    result = training.train(trainer)
    assert result.global_step == 4 and trainer.state.global_step == 4 and result.metrics["already_finished"]
    assert training.trainable_digest(trainer.model) == end


def test_resuming_with_another_configuration_is_refused_unless_restarted(straight, tmp_path, capsys):
    first, _ = straight
    assert run_cli(first, "--grpo.learning_rate", "1e-4", "--grpo.beta=0.04") == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err  # one line (the rest: loading bars)
    assert "learning_rate 5e-05 -> 0.0001" in errors[0] and "beta 0.0 -> 0.04" in errors[0]
    assert "--restart" in errors[0]
    assert checkpoints(first) == ["checkpoint-2", "checkpoint-4"]

    copy = tmp_path / "run"
    shutil.copytree(first, copy)
    assert run_cli(copy, "--grpo.learning_rate", "1e-4", "--grpo.max_steps", "2", "--restart") == 0
    assert checkpoints(copy) == ["checkpoint-2"]
    saved = training.read_run_config(copy)
    assert saved["args"]["learning_rate"] == 1e-4
    state = json.loads((copy / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and state["log_history"][0]["learning_rate"] == 1e-4


def test_a_resumed_float_run_equals_an_uninterrupted_one_and_skips_a_truncated_checkpoint(straight, tmp_path):
    first, _ = straight
    resumed = tmp_path / "resumed"
    shutil.copytree(first, resumed)
    (resumed / "checkpoint-4" / "trainer_state.json").write_text('{"global_step": 4, "log_hist')  # truncated
    with pytest.warns(UserWarning, match="checkpoint-4"):
        assert training.last_checkpoint(resumed).endswith("checkpoint-2")
    (resumed / "checkpoint-4" / "trainer_state.json").write_text("")  # empty: the same
    trainer = tiny_trainer(resumed)
    assert {p.dtype for p in trainer.model.parameters() if p.requires_grad} == {torch.float32}
    with pytest.warns(UserWarning, match="checkpoint-4"):
        training.train(trainer)  # resumes from checkpoint-2 (it used to be blocked for ever)
    assert trainer.state.global_step == 4
    assert [h["step"] for h in trainer.state.log_history if "loss" in h] == [1, 2, 3, 4]
    assert_close(adapter(resumed / "checkpoint-4"), adapter(first / "checkpoint-4"))


class StopAt(TrainerCallback):
    """Stop training after ``step`` (a kill-free interruption; the checkpoint there is saved)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


@pytest.fixture(scope="module")
def qlora(tmp_path_factory):
    """A 4-bit (QLoRA) run: 4 steps straight, and 2 steps then resumed to 4 by a new trainer."""
    straight_dir, split_dir = tmp_path_factory.mktemp("qlora"), tmp_path_factory.mktemp("qlora-split")
    whole = tiny_trainer(straight_dir, "4bit")
    dtypes = {"built": {p.dtype for p in whole.model.parameters() if p.requires_grad}}
    whole.start_state = training.trainable_state(whole.model)  # the adapter before training
    training.train(whole)
    dtypes["trained"] = {p.dtype for p in whole.model.parameters() if p.requires_grad}
    first_half = tiny_trainer(split_dir, "4bit", callbacks=[StopAt(2)])
    training.train(first_half)
    assert first_half.state.global_step == 2 and checkpoints(split_dir) == ["checkpoint-2"]
    second_half = tiny_trainer(split_dir, "4bit")
    training.train(second_half)
    dtypes["resumed"] = {p.dtype for p in second_half.model.parameters() if p.requires_grad}
    return whole, second_half, dtypes


def test_a_4bit_run_keeps_one_dtype_and_resumes_to_the_same_weights(qlora):
    whole, resumed, dtypes = qlora
    assert getattr(whole.model.get_base_model(), "is_loaded_in_4bit", False)
    # the precision policy's float32 on this CPU; TRL used to cast the adapter to bfloat16
    assert dtypes == {"built": {torch.float32}, "trained": {torch.float32}, "resumed": {torch.float32}}
    assert resumed.state.global_step == 4
    # the 4-bit run trains: (nearly) every adapter tensor moved, and every step logged a reward
    assert training.changed_fraction(whole.start_state, whole.model) > 0.9
    assert training.log_frame(whole)["reward"].notna().all()
    assert_close(training.trainable_state(resumed.model), training.trainable_state(whole.model))
    assert_close(adapter(Path(resumed.args.output_dir) / "checkpoint-4"),
                 adapter(Path(whole.args.output_dir) / "checkpoint-4"))


def test_last_checkpoint_warns_about_each_broken_one_and_falls_back(tmp_path):
    for step, text in ((2, '{"global_step": 2}'), (4, ""), (6, '{"global_st'), (8, None)):
        (tmp_path / f"checkpoint-{step}").mkdir()
        if text is not None:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(text)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert training.last_checkpoint(tmp_path).endswith("checkpoint-2")
    named = " ".join(str(w.message) for w in caught)
    assert "checkpoint-6" in named and "checkpoint-4" in named and "checkpoint-8" not in named
    assert training.last_checkpoint(tmp_path / "missing") is None
