"""Chapters 1 and 5: reward-model helpers (Bradley-Terry head, frozen features, TRL RewardTrainer)."""

import numpy as np
import pytest
import torch
from scipy.special import logit

from alignkit.chapters.trilemma.style_pairs import two_group_preferences
from alignkit.reward_model import (
    last_token_features,
    load_reward_model,
    score_texts,
    train_bt_head,
)
from alignkit.training import build_reward_trainer


def test_bt_head_recovers_the_pooled_logit():
    """One informative feature, labels at rate 0.66: the head's margin is logit(0.66)."""
    rng = np.random.default_rng(0)
    n = 4000
    a_wins = rng.random(n) < 0.66
    feat_a, feat_b = torch.tensor([[1.0, 0.0]]).repeat(n, 1), torch.tensor([[0.0, 0.0]]).repeat(n, 1)
    feat_a[:, 1] = torch.tensor(rng.normal(size=n), dtype=torch.float32)  # a noise feature
    aw = torch.tensor(a_wins)[:, None]
    chosen, rejected = torch.where(aw, feat_a, feat_b), torch.where(aw, feat_b, feat_a)
    head = train_bt_head(chosen, rejected, steps=400, lr=0.05, l2=0.0, seed=0)
    with torch.no_grad():
        gap = (head(torch.tensor([[1.0, 0.0]])) - head(torch.tensor([[0.0, 0.0]]))).item()
    assert gap == pytest.approx(logit(a_wins.mean()), abs=0.03)


def test_bt_head_is_deterministic_and_validates():
    x, y = torch.randn(10, 3, generator=torch.Generator().manual_seed(0)), torch.zeros(10, 3)
    a, b = train_bt_head(x, y, steps=5, seed=1), train_bt_head(x, y, steps=5, seed=1)
    assert torch.equal(a.weight, b.weight)
    with pytest.raises(ValueError, match="chosen and rejected must be equal"):
        train_bt_head(x, y[:5])


@pytest.mark.slow
def test_reward_model_features_scores_and_trl_step(tmp_path):
    model, tok = load_reward_model("smollm2-135m", seed=0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["score.weight"]
    texts = ["Question: hi?\nAnswer: Hey! hello :)", "Question: hi?\nAnswer: Certainly. Hello."]
    feats = last_token_features(model, tok, texts)
    assert feats.shape == (2, model.config.hidden_size)
    with torch.no_grad():  # scores are the score head on exactly these features, padding or not
        np.testing.assert_allclose(score_texts(model, tok, texts), model.score(feats).squeeze(-1).numpy(),
                                   rtol=1e-4, atol=1e-4)
        single = model(**tok(texts[:1], return_tensors="pt")).logits.squeeze().item()
    assert score_texts(model, tok, texts)[0] == pytest.approx(single, abs=1e-3)
    before = model.score.weight.detach().clone()
    backbone_before = model.model.norm.weight.detach().clone()
    rows = two_group_preferences(4, 0.3, n_topics=1, seed=0)
    trainer = build_reward_trainer(model, tok, rows, output_dir=str(tmp_path), max_steps=1,
                                   batch_size=2, learning_rate=1e-2)
    trainer.train()
    assert not torch.equal(before, model.score.weight)
    assert torch.equal(backbone_before, model.model.norm.weight)
