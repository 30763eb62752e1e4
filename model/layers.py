"""Brevitas-quantized weight layers and the parametrisation of folded-norm integers.

`IntLinear` holds one weight matrix as a ``brevitas.nn.QuantLinear`` and hands out the integer
weights the golden model uses: ``W_int = quant_weight().value / scale``, rounded (the division
is exact up to float error; the rounding makes the tensor exactly integer-valued and is an
identity for the gradient), transposed to the artifact's ``[in, out]`` layout.

The scale is *detached* where integers are computed: the integer network is a function of
``W_int`` (whose gradient reaches the float weight through Brevitas' straight-through round),
the multipliers, biases and thresholds. Brevitas' scale is the per-channel (or per-tensor)
absolute maximum over the bit range, not a learned parameter, so nothing is lost.

`to_int` converts a float parameter to a clamped, rounded integer-valued tensor: every
threshold, bias, multiplier, position entry and feedback gain of the network goes through it,
with the config's range from `quant.artifact.param_spec`.
"""

from __future__ import annotations

import brevitas.nn as qnn
import torch
from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat
from torch import nn

from model.lif import round_ste

__all__ = ["IntLinear", "to_int"]


class IntLinear(nn.Module):
    """A Brevitas weight matrix ``in_features -> out_features`` of ``bits``-bit signed integers.

    ``per_channel``: one float scale per output channel (default) or one for the whole tensor
    (the readout head, so that integer logits are float logits times one positive number and
    their argmax is the same). Brevitas' narrow range is used: integers in
    [-(2^(bits-1) - 1), 2^(bits-1) - 1], inside the artifact's signed range.
    """

    def __init__(self, in_features: int, out_features: int, bits: int, per_channel: bool = True):
        super().__init__()
        quant = Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat
        self.per_channel = per_channel
        self.linear = qnn.QuantLinear(
            in_features, out_features, bias=False, weight_quant=quant, weight_bit_width=bits
        )

    def quant_weight(self):
        return self.linear.quant_weight()

    def int_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(W_int [in, out], scale [out])``: integer-valued weights and their (detached) scales."""
        qw = self.linear.quant_weight()
        scale = qw.scale.detach()
        w = round_ste(qw.value / scale)
        out = self.linear.out_features
        return w.t(), scale.reshape(-1).expand(out) if scale.numel() == 1 else scale.reshape(out)


def to_int(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Round (straight-through) and clamp to the closed integer range [lo, hi]."""
    return torch.clamp(round_ste(x), lo, hi)
