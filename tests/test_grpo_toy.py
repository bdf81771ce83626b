"""The from-scratch GRPO (chapter 2): advantages and loss by hand and against TRL, and a short
toy run that raises held-out accuracy."""

import copy

import numpy as np
import pytest
import torch

from alignkit.grpo import GRPOConfig, group_advantages, grpo_loss, train_grpo
from alignkit.toy_arithmetic import (
    accuracy,
    answers_of,
    correct_reward,
    decode,
    encode,
    pretrained_model,
    problem_tokens,
    split_problems,
)


def test_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    std = np.std([1, 0, 0, 0], ddof=1)  # 0.5, Bessel-corrected as in TRL
    expected = np.array([0.75, -0.25, -0.25, -0.25]) / (std + 1e-4)
    adv = group_advantages(r)
    np.testing.assert_allclose(adv[0].numpy(), expected, rtol=1e-6)
    assert adv[1].abs().max() == 0  # an all-equal group teaches nothing
    np.testing.assert_allclose(group_advantages(r, scale=False)[0].numpy(), [0.75, -0.25, -0.25, -0.25])


def test_advantages_agree_with_trl_nanstd():
    from trl.trainer.utils import nanstd

    r = torch.rand(5, 8, generator=torch.Generator().manual_seed(0))
    trl_adv = (r - r.mean(1, keepdim=True)) / (nanstd(r, dim=1).unsqueeze(1) + 1e-4)
    torch.testing.assert_close(group_advantages(r), trl_adv)


def test_loss_by_hand():
    old = torch.log(torch.tensor([[0.5, 0.5], [0.5, 0.5]]))
    new = torch.log(torch.tensor([[0.75, 0.5], [0.25, 0.5]])).requires_grad_()
    adv = torch.tensor([1.0, -1.0])
    loss, stats = grpo_loss(new, old, adv, epsilon=0.2)
    # seq 0: ratios (1.5, 1) with A=1 -> min(1.5, 1.2)=1.2 and 1 -> per-token (-1.2, -1), mean -1.1
    # seq 1: ratios (0.5, 1) with A=-1 -> min(-0.5, -0.8)=-0.8 and -1 -> (0.8, 1), mean 0.9
    assert loss.item() == pytest.approx((-1.1 + 0.9) / 2)
    assert stats["clip_fraction"] == pytest.approx(0.5)
    loss.backward()
    assert new.grad[0, 0] == 0 and new.grad[1, 0] == 0  # clipped tokens carry no gradient


def test_kl_term_is_the_k3_estimator():
    logp = torch.log(torch.tensor([[0.5]]))
    ref = torch.log(torch.tensor([[0.25]]))
    loss, stats = grpo_loss(logp, logp, torch.zeros(1), beta=0.1, ref_logp=ref)
    k3 = 0.5 - np.log(0.5) - 1  # exp(ref - logp) - (ref - logp) - 1 with ratio 1/2
    assert stats["kl"] == pytest.approx(k3) and loss.item() == pytest.approx(0.1 * k3)
    with pytest.raises(ValueError, match="ref_logp"):
        grpo_loss(logp, logp, torch.zeros(1), beta=0.1)


def test_config_and_input_checks():
    with pytest.raises(ValueError, match="num_generations"):
        GRPOConfig(num_generations=1)
    with pytest.raises(ValueError, match="shape"):
        group_advantages(torch.ones(4))
    with pytest.raises(ValueError, match="0..99"):
        problem_tokens(np.array([[100, 1]]))
    with pytest.raises(ValueError, match="vocabulary"):
        encode("1-2")


def test_toy_encoding_round_trips():
    prompts, answers = problem_tokens(np.array([[7, 45], [99, 99]]))
    assert decode(prompts[0]) == "07+45=" and decode(answers[0]) == "052" and decode(answers[1]) == "198"
    assert torch.equal(answers_of(prompts), answers)
    assert correct_reward(prompts, answers).tolist() == [1.0, 1.0]


def test_short_grpo_run_raises_held_out_accuracy():
    torch.set_num_threads(1)
    sp = split_problems(2000, 256, 300, seed=0)
    model = pretrained_model(sp["sft"], steps=200, seed=0)
    before = accuracy(model, sp["eval"])
    pool, _ = problem_tokens(sp["pool"])
    start = copy.deepcopy(model.state_dict())
    log = train_grpo(model, pool, correct_reward, GRPOConfig(learning_rate=3e-4), steps=40, seed=0)
    after = accuracy(model, sp["eval"])
    assert 0.2 < before < 0.8, before  # a modest start that RL can improve
    assert after > before + 0.05, (before, after)
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())
    assert [row["epoch"] for row in log][15:17] == [0, 1]  # 256 / 16 = 16 steps per epoch
