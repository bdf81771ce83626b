"""alignkit's coupling to TRL's private GRPOTrainer methods, checked on one real GRPO step.

``FastGRPOTrainer`` overrides ``GRPOTrainer._generate_single_turn`` (rollouts from the inference copy,
or with the LoRA adapter merged) and ``_get_per_token_logps_and_entropies`` (completion-only scoring), and ``alignkit.benchmarking.GRPOPhaseTimer`` wraps ``_generate``, ``_calculate_rewards``
and ``_get_per_token_logps_and_entropies``. None of them is public API: a TRL release that renames
one would silently turn the fast path off or leave a phase untimed. These tests fail instead.
"""

import pytest
import trl
from datasets import Dataset

from alignkit import training
from alignkit.benchmarking import GRPOPhaseTimer
from alignkit.scale import get_scale

OVERRIDDEN = ("_generate_single_turn", "_get_per_token_logps_and_entropies")  # by training.FastGRPOTrainer
TIMED = ("_generate", "_calculate_rewards", "_get_per_token_logps_and_entropies")  # by GRPOPhaseTimer


def rank_reward(completions, **kwargs):
    """Distinct rewards within a group, so the step has non-zero advantages and a real gradient."""
    return [float(i) for i in range(len(completions))]


def lora_layers(model):
    return [m for m in model.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]


@pytest.mark.parametrize("name", OVERRIDDEN + TIMED)
def test_the_private_trl_methods_alignkit_relies_on_exist(name):
    assert callable(vars(trl.GRPOTrainer).get(name)), f"trl {trl.__version__} GRPOTrainer has no {name}"


def test_the_overrides_and_wrappers_name_those_methods():
    assert set(OVERRIDDEN) <= set(vars(training.FastGRPOTrainer))
    assert tuple(GRPOPhaseTimer.TRL_METHODS) == TIMED


def test_the_timer_names_a_missing_trl_method():
    class Renamed:  # what a trainer looks like after TRL renames _calculate_rewards
        def _generate(self): ...
        def _get_per_token_logps_and_entropies(self): ...

    with pytest.raises(TypeError, match="_calculate_rewards"):
        GRPOPhaseTimer(Renamed())


@pytest.fixture(scope="module")
def one_step(tmp_path_factory):
    """One real GRPO step (bundled model, LoRA, G=2, 4 tokens, beta > 0 so the reference log-probs
    are computed) with spies on the overridden method, TRL's own generation and the merge."""
    from alignkit.training.rollout import InferenceCopy

    calls = {"fast": 0, "trl": [], "merged_adapters": 0, "copy": 0, "scored": 0}
    original_fast = training.FastGRPOTrainer._generate_single_turn
    original_trl = trl.GRPOTrainer._generate_single_turn
    original_merge = training.grpo.merged_adapters
    original_copy = InferenceCopy.generate
    original_scoring = training.FastGRPOTrainer._get_per_token_logps_and_entropies

    def fast_spy(self, *args, **kwargs):
        calls["fast"] += 1
        return original_fast(self, *args, **kwargs)

    def trl_spy(self, *args, **kwargs):  # reached through super() in the override
        layers = lora_layers(self.accelerator.unwrap_model(self.model))
        calls["trl"].append((len(layers), all(m.merged for m in layers)))
        return original_trl(self, *args, **kwargs)

    def merge_spy(model):
        calls["merged_adapters"] += 1
        return original_merge(model)

    def copy_spy(self, *args, **kwargs):
        calls["copy"] += 1
        return original_copy(self, *args, **kwargs)

    def scoring_spy(self, *args, **kwargs):
        calls["scored"] += 1
        return original_scoring(self, *args, **kwargs)

    data = Dataset.from_list([{"prompt": [{"role": "user", "content": "Say hi."}]}] * 2)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training.FastGRPOTrainer, "_generate_single_turn", fast_spy)
        mp.setattr(trl.GRPOTrainer, "_generate_single_turn", trl_spy)
        mp.setattr(training.grpo, "merged_adapters", merge_spy)
        mp.setattr(InferenceCopy, "generate", copy_spy)
        mp.setattr(training.FastGRPOTrainer, "_get_per_token_logps_and_entropies", scoring_spy)
        trainer = training.build_grpo_trainer(
            "smollm2-135m", rank_reward, data, output_dir=tmp_path_factory.mktemp("grpo"),
            scale=get_scale("smoke"), max_steps=1, num_generations=2, per_device_train_batch_size=2,
            max_completion_length=4, beta=0.04, disable_tqdm=True)
        timer = GRPOPhaseTimer(trainer)
        before = training.trainable_state(trainer.model)
        trainer.train()
    return trainer, timer, calls, before


@pytest.mark.slow
def test_fast_grpo_overrides_sample_from_the_inference_copy_and_score(one_step):
    trainer, _, calls, before = one_step
    assert isinstance(trainer, training.FastGRPOTrainer) and trainer.state.global_step == 1
    assert calls["fast"] >= 1, "FastGRPOTrainer._generate_single_turn was never called: TRL renamed it?"
    # on a CPU with a LoRA model every rollout comes from the inference copy, none from TRL's path
    assert calls["copy"] == calls["fast"] and not calls["trl"] and calls["merged_adapters"] == 0
    # the loss forward and the reference log-probs (beta > 0) both go through the override
    assert calls["scored"] >= 2, "FastGRPOTrainer._get_per_token_logps_and_entropies was not called"
    # the trained model was never merged, and the step trained it
    assert not any(m.merged for m in lora_layers(trainer.model))
    assert training.changed_fraction(before, trainer.model) > 0


@pytest.mark.slow
def test_a_model_without_an_inference_copy_samples_through_trl_with_the_adapter_merged(tmp_path, monkeypatch):
    """Where no copy can be made (a 4-bit base, DoRA), TRL's own generation runs, adapter merged."""
    seen = []
    original_trl = trl.GRPOTrainer._generate_single_turn

    def trl_spy(self, *args, **kwargs):
        layers = lora_layers(self.accelerator.unwrap_model(self.model))
        seen.append(bool(layers) and all(m.merged for m in layers))
        return original_trl(self, *args, **kwargs)

    monkeypatch.setattr(trl.GRPOTrainer, "_generate_single_turn", trl_spy)
    monkeypatch.setattr(training.grpo, "supports_inference_copy", lambda model: False)
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": "Say hi."}]}] * 2)
    trainer = training.build_grpo_trainer("smollm2-135m", rank_reward, data, output_dir=tmp_path,
                                          scale=get_scale("smoke"), max_steps=1, num_generations=2,
                                          per_device_train_batch_size=2, max_completion_length=4, disable_tqdm=True)
    trainer.train()
    assert seen == [True] and trainer.inference_copy is None


@pytest.mark.slow
def test_phase_timer_times_every_phase_of_a_real_step(one_step):
    trainer, timer, _, _ = one_step
    assert len(timer.steps) == trainer.state.global_step == 1
    (step,) = timer.steps
    assert set(step) == {*GRPOPhaseTimer.PHASES, "step"}
    for phase in (*GRPOPhaseTimer.PHASES, "step"):
        assert step[phase] > 0, f"phase {phase!r} recorded no time: its TRL hook was not called"
    # the phases are disjoint parts of the step
    assert sum(step[p] for p in GRPOPhaseTimer.PHASES) <= step["step"] * 1.01
    assert timer.median(skip=1) == step  # one step only: the median falls back to it
