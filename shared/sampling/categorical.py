"""Sampling from categorical distributions given logits: temperature, top-k and top-p (nucleus) filtering.

`filter_logits` sets to -inf every logit outside the top-k set (Fan et al. 2018, "Hierarchical neural story
generation") and/or outside the nucleus, the smallest set of most likely tokens whose probability reaches top_p
(Holtzman et al. 2020, "The curious case of neural text degeneration"). `sample_categorical` divides by the
temperature, filters, and draws exactly from softmax of what is left with an exponential race (the Gumbel-max
trick in another form): argmin_i E_i / p_i with E_i ~ Exp(1) is category i with probability p_i. Temperature 0
is greedy argmax. It runs the fused op of `shared.kernels.categorical` (one Triton launch on CUDA, the PyTorch
reference elsewhere), whose filters keep every token tied at a threshold, where `filter_logits` breaks ties by
position; without ties they keep the same tokens (up to float rounding at the nucleus edge). Autoregressive
families call these with logits (..., V) for the next token.
"""

from __future__ import annotations

import torch

from shared.errors import ConfigError
from shared.kernels.categorical import categorical_sample, check_filters

# Draw one category per row from softmax(filter(logits / temperature)): logits (..., V) -> (...) int64, with
# (temperature, top_k, top_p, generator, backend). The fused op itself: one Triton launch on CUDA, the PyTorch
# reference elsewhere; tokens tied at a top-k / top-p threshold are all kept.
sample_categorical = categorical_sample


def filter_logits(logits: torch.Tensor, top_k: int = 0, top_p: float = 1.0) -> torch.Tensor:
    """Logits (..., V) with -inf outside the top-k and the top-p nucleus (both applied: top-k first).

    top_k=0 and top_p=1.0 disable the filters. top-k keeps exactly min(k, V) entries (ties broken by position).
    The nucleus keeps the most likely tokens up to and including the first at which the cumulative probability
    reaches top_p, so the most likely token is always kept. Returns a new tensor; the input is not changed."""
    check_filters(top_k, top_p)
    if logits.dim() == 0:
        raise ConfigError("logits must have a last dimension of categories, shape (..., V)")
    n_cat = logits.shape[-1]
    out = logits
    if 0 < top_k < n_cat:
        idx = torch.topk(out, top_k, dim=-1).indices  # (..., k)
        kept = torch.full_like(out, float("-inf"))
        out = kept.scatter(-1, idx, out.gather(-1, idx))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(out, dim=-1, descending=True)  # (..., V)
        probs = torch.softmax(sorted_logits.float(), dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs  # probability of the strictly more likely tokens
        drop_sorted = mass_before >= top_p  # keep while the tokens before have not yet reached top_p
        drop_sorted[..., 0] = False  # the top token always stays, whatever rounding does
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        out = out.masked_fill(drop, float("-inf"))
    return out if out is not logits else logits.clone()
