"""LoRA dropout with cheaper random numbers (``alignkit.training.fast_dropout``): the same mask
distribution as ``nn.Dropout``, swapped in only for peft's LoRA dropouts."""

import pytest
import torch

from alignkit.training import fast_dropout
from alignkit.training.fast_dropout import GapDropout, dropped_positions, use_fast_dropout


def assert_bernoulli(dropped: torch.Tensor, n: int, p: float) -> None:
    """The 0/1 sequence with ones at ``dropped``: its share of ones within 4.5 binomial standard
    errors of ``p`` (a 0.2% shift is caught), neighbours and elements 7 apart uncorrelated, and
    the count in each block of 1000 with the binomial's variance."""
    assert torch.all(dropped[1:] > dropped[:-1]) and 0 <= dropped[0] and dropped[-1] < n  # sorted, distinct
    mask = torch.zeros(n, dtype=torch.float64)
    mask[dropped] = 1
    share = mask.mean().item()
    se = ((1 - p) * p / n) ** 0.5
    assert abs(share - p) < 4.5 * se, (share, p)
    assert abs(share - (p + 0.002)) > 4.5 * se  # the check can tell a 0.2% shift
    for lag in (1, 7):
        corr = torch.corrcoef(torch.stack([mask[:-lag], mask[lag:]]))[0, 1].item()
        assert abs(corr) < 4.5 / n**0.5, (lag, corr)
    blocks = mask.view(-1, 1000).sum(1)
    ratio = blocks.var().item() / (1000 * p * (1 - p))
    assert abs(ratio - 1) < 4.5 * (2 / blocks.numel()) ** 0.5, ratio


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_the_dropped_positions_are_an_iid_bernoulli_sequence(p):
    """2 million elements, as ``nn.Dropout``'s mask would drop them."""
    torch.manual_seed(0)
    assert_bernoulli(dropped_positions(2_000_000, p), 2_000_000, p)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        dropped_positions(3, 1.5)


def test_gaps_that_run_out_are_continued_with_the_same_distribution(monkeypatch):
    """Two gaps drawn at a time: the loop that draws more after the last one keeps the law."""
    monkeypatch.setattr(fast_dropout, "_gaps_to_draw", lambda n, p: 2)
    torch.manual_seed(1)
    assert_bernoulli(dropped_positions(200_000, 0.05), 200_000, 0.05)


def test_gap_dropout_scales_the_kept_elements_and_passes_the_gradient_through_them():
    x = torch.randn(400, 300, requires_grad=True)
    dropout = GapDropout(0.2)
    torch.manual_seed(1)
    y = dropout(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    assert 0.78 < kept.double().mean().item() < 0.82
    (y * 3).sum().backward()
    torch.testing.assert_close(x.grad, kept.float() * 3 / 0.8)
    dropout.eval()
    assert dropout(x) is x  # eval: identity, as nn.Dropout
    torch.manual_seed(1)
    again = GapDropout(0.2)(x)
    assert torch.equal(again, y)  # a seed fixes the mask
    wide = torch.randn(300, 400).T  # a transposed (non-contiguous) input and gradient
    torch.manual_seed(1)
    torch.testing.assert_close(GapDropout(0.2)(wide), torch.where(y != 0, wide / 0.8, 0.0))


def test_only_lora_dropouts_are_swapped_and_the_eval_outputs_stay():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, attention_dropout=0.1)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, lora_dropout=0.1, target_modules="all-linear"))
    model.eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        before = model(input_ids=ids).logits
    lora = [m for m in model.modules() if hasattr(m, "lora_dropout")]
    assert use_fast_dropout(model) == len(lora) * 1 > 0
    assert all(type(d) is GapDropout and d.p == 0.1 and not d.training
               for m in lora for d in m.lora_dropout.values())
    assert not any(type(m) is GapDropout for m in model.get_base_model().model.layers[0].self_attn.children())
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, before)
    assert use_fast_dropout(model) == 0  # nothing left to swap
