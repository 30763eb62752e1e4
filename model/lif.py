"""The integer LIF neuron and the straight-through rounding used by the PyTorch model.

Every tensor here is a float tensor holding integer values, so the forward pass equals the
integer contract (`quant.contract.lif_step`) exactly while autograd still flows:

* `round_ste`, `floor_ste`: round / floor in the forward pass, identity in the backward pass.
* `spike`: Heaviside ``w >= theta`` forward; backward is the derivative of a sigmoid of the
  *normalised* margin ``x = (w - theta) / theta`` with slope ``alpha`` (default 4). Thresholds
  span 1..2^11 integer units between layers; normalising by theta gives every layer the same
  surrogate width relative to its threshold, without a per-layer temperature to tune.
* `lif_step`: ``w = v + x; s = w >= theta; v' = (1 - s) * floor(w / 2)`` (tau = 2, hard reset
  to 0). The reset is detached from the graph (SpikingJelly's ``detach_reset=True``, as the
  Spike-driven Transformer trains), so gradients reach earlier timesteps only through the leak.
"""

from __future__ import annotations

import torch

__all__ = ["ALPHA", "round_ste", "floor_ste", "spike", "lif_step"]

ALPHA = 4.0


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """``round(x)`` (half to even, as torch.round) with an identity gradient."""
    return x + (torch.round(x) - x).detach()


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """``floor(x)`` with an identity gradient."""
    return x + (torch.floor(x) - x).detach()


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, theta: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(w, theta)
        ctx.alpha = alpha
        return (w >= theta).to(w.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        w, theta = ctx.saved_tensors
        a = ctx.alpha
        sig = torch.sigmoid(a * (w - theta) / theta)
        sg = grad * a * sig * (1.0 - sig)  # d spike / d x, x = (w - theta) / theta
        grad_w = sg / theta
        grad_theta = None
        if ctx.needs_input_grad[1]:
            # d x / d theta = -w / theta^2; reduce over the broadcast (batch, token) axes
            grad_theta = (-sg * w / (theta * theta)).sum_to_size(theta.shape)
        return grad_w, grad_theta, None


def spike(w: torch.Tensor, theta: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """Heaviside ``w >= theta`` (as 0./1.) with the normalised sigmoid surrogate gradient.

    ``theta`` must be positive (thresholds are clamped to >= 1 by the model) and broadcast
    against ``w`` over its last axis.
    """
    return _Spike.apply(w, theta, alpha)


def lif_step(v: torch.Tensor, x: torch.Tensor, theta: torch.Tensor, alpha: float = ALPHA):
    """One timestep of the contract's integer LIF; returns ``(s, v')`` as float tensors."""
    w = v + x
    s = spike(w, theta, alpha)
    return s, (1.0 - s.detach()) * floor_ste(w * 0.5)
