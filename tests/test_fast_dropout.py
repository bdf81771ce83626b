"""LoRA dropout with a cheaper mask (``alignkit.training.fast_dropout``): same distribution as
``nn.Dropout``, swapped in only for peft's LoRA dropouts."""

import pytest
import torch

from alignkit.training.fast_dropout import BitsDropout, keep_mask, use_bits_dropout


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_the_keep_mask_is_bernoulli_with_independent_elements(p):
    """2 million draws: the kept share within 4.5 binomial standard errors of 1 - p, and the two
    32-bit halves of a word (neighbouring elements) uncorrelated; a wrong p is caught."""
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([2000, 1000]), p).double()
    n, share = mask.numel(), mask.mean().item()
    se = ((1 - p) * p / n) ** 0.5
    assert abs(share - (1 - p)) < 4.5 * se, (share, 1 - p)
    assert abs(share - (1 - p - 0.002)) > 4.5 * se  # the check can tell a 0.2% shift
    pairs = mask.view(-1, 2)
    corr = torch.corrcoef(pairs.T)[0, 1].item()
    assert abs(corr) < 4.5 / n**0.5 * 2**0.5, corr
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        keep_mask(torch.Size([3]), 1.5)


def test_bits_dropout_scales_the_kept_elements_and_passes_the_gradient_through_them():
    x = torch.randn(400, 300, requires_grad=True)
    dropout = BitsDropout(0.2)
    torch.manual_seed(1)
    y = dropout(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    assert 0.78 < kept.double().mean().item() < 0.82
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.8)
    dropout.eval()
    assert dropout(x) is x  # eval: identity, as nn.Dropout
    torch.manual_seed(1)
    again = BitsDropout(0.2)(x)
    assert torch.equal(again, y)  # a seed fixes the mask


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
    assert use_bits_dropout(model) == len(lora) * 1 > 0
    assert all(type(d) is BitsDropout and d.p == 0.1 and not d.training
               for m in lora for d in m.lora_dropout.values())
    assert not any(type(m) is BitsDropout for m in model.get_base_model().model.layers[0].self_attn.children())
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, before)
    assert use_bits_dropout(model) == 0  # nothing left to swap
