"""Per-task BatchNorm on channels-last CPU tensors, with the statistics summed accurately.

Why not F.batch_norm there: PyTorch's CPU kernel for a channels-last input (aten/src/ATen/native/
cpu/batch_norm_kernel.cpp, the `_channels_last_impl` functions) keeps one float32 buffer of C sums
per thread and adds the rows of [n*h*w, C] into it one after another: the mean, the variance and,
in backward, the sum of dy and of (x - mean) * dy are naive float32 sums of up to n*h*w/threads
terms, and how the rows split between threads changes the result. The contiguous (NCHW) kernel
accumulates each channel in float64. At the FC100 shape the channels-last statistics are off by
about 1e-5 and the meta-gradient of the body by up to 1e-3 relative (tests/test_numerics.py).

The statistics are what costs accuracy: with accurate statistics and PyTorch's own backward kernel
the meta-gradient is as accurate as the NCHW path's, while accurate backward sums with the
kernel's forward statistics leave it 10-1000x off (measured at the FC100 shape, 1 and 2 threads).
So the forward takes the statistics from `channel_statistics` (float64 sums, read from the
channels-last memory as it is: no copy to NCHW and back) and normalises in one fused pass; the
backward is PyTorch's.

`batch_norm` is training-mode BatchNorm without running statistics, as the body uses it. Asked for
a graph of its backward (create_graph=True: MAML's second order, the Hessian probes), it
differentiates a plain-operator recomputation instead, so double backward is exact too.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

DIMS = (0, 2, 3)  # every axis but the channel: BatchNorm's statistics are per channel


def _per_channel(values: torch.Tensor) -> torch.Tensor:
    """[C] -> [1, C, 1, 1], to broadcast over [n, C, h, w]."""
    return values.view(1, -1, 1, 1)


def reference_batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Training-mode BatchNorm from plain operators, two passes over x (differentiable to any order).
    x: [n, C, h, w]; weight, bias: [C]."""
    mean = x.mean(DIMS, keepdim=True)  # [1, C, 1, 1]
    centred = x - mean
    variance = (centred * centred).mean(DIMS, keepdim=True)  # biased, as BatchNorm normalises
    return centred * (_per_channel(weight) * torch.rsqrt(variance + eps)) + _per_channel(bias)


def channel_statistics(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and biased variance per channel of a channels-last x [n, C, h, w], in float64, [C] each.

    Viewed without a copy as [n, h*w*C], the images are rows and each (pixel, channel) a column:
    PyTorch's statistics kernel for such a contiguous 2-D input sums each column's n values in
    float64, column by column, so it is accurate and the same at any thread count, and it reads x
    twice like the fused kernel. The h*w partial statistics of a channel then combine exactly in
    float64: the mean of the means, and the mean of the variances plus the variance of the means."""
    n, channels, height, width = x.shape
    columns = x.permute(0, 2, 3, 1).reshape(n, height * width * channels)  # a view of channels-last memory
    means, variances = torch.ops.aten.batch_norm_update_stats(columns, None, None, 0.0)  # [h*w*C] each
    means, variances = means.double().view(-1, channels), variances.double().view(-1, channels)  # [h*w, C]
    mean = means.mean(0)
    return mean, variances.mean(0) + (means - mean).square().mean(0)


class _AccurateBatchNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
        mean, variance = channel_statistics(x)  # float64, [C]
        invstd = torch.rsqrt(variance + eps)
        scale = invstd * weight.double()
        shift = bias.double() - mean * scale
        ctx.save_for_backward(x, weight, bias, mean.to(x.dtype), invstd.to(x.dtype))
        ctx.eps = eps
        # one fused pass, as PyTorch's kernel normalises: x * scale + shift per channel
        return torch.addcmul(_per_channel(shift.to(x.dtype)), x, _per_channel(scale.to(x.dtype)))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, bias, mean, invstd = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: a graph of the backward is wanted
            with torch.enable_grad():
                inputs = [t if t.requires_grad else t.detach().requires_grad_() for t in (x, weight, bias)]
                out = reference_batch_norm(inputs[0], inputs[1], inputs[2], ctx.eps)
                grads = torch.autograd.grad(out, inputs, grad, create_graph=True)
            return (*grads, None)
        # PyTorch's own backward kernel, given the accurate statistics: its sums of dy and of
        # (x - mean) * dy are float32 too, but they move the meta-gradient by less than a float32
        # rounding of the whole (tests/test_numerics.py); the statistics were what cost accuracy.
        grad_x, grad_weight, grad_bias = torch.ops.aten.native_batch_norm_backward(
            grad, x, weight, None, None, mean, invstd, True, ctx.eps, [True, True, True]
        )
        return grad_x, grad_weight, grad_bias, None


def pytorch_batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """PyTorch's own training-mode BatchNorm kernel (batch statistics, no running averages)."""
    return F.batch_norm(x, None, None, weight, bias, training=True, eps=eps)


def batch_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """Training-mode BatchNorm (batch statistics, no running averages) of x [n, C, h, w].

    Channels-last float32/float64 tensors on a CPU take the accurate path above; everything else
    (NCHW, GPUs, bfloat16 under autocast, whose own rounding is far coarser) takes F.batch_norm."""
    accurate = (
        x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and not x.is_contiguous()
        and x.is_contiguous(memory_format=torch.channels_last)
    )
    if not accurate:
        return pytorch_batch_norm(x, weight, bias, eps)
    return _AccurateBatchNorm.apply(x, weight, bias, eps)
