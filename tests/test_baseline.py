"""The benchmark's external baseline computes ANIL's meta-gradient (so comparing times is fair),
and its FLOP count is the layer-shape formula."""

import pytest
import torch

from anil.analysis.baseline import ConventionalNet, body_flops, conventional_step, peak_rates
from anil.engine.batched import anil_reference_meta_loss
from anil.engine.model import AnilNet
from anil.tasks import InnerLoop, TaskBatch


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_learn2learn_style_step_gives_the_engines_meta_gradient(geometry):
    torch.manual_seed(0)
    hidden = 7 if geometry == "nonconvex" else 0
    ours = AnilNet(geometry, 16, 3, 5, hidden).double()
    theirs = ConventionalNet(3, 16, 5, hidden).double()
    convs = [m for m in theirs.body if isinstance(m, torch.nn.Conv2d)]
    norms = [m for m in theirs.body if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():  # the same function: conv biases at 0, the same BatchNorm affine parameters
        for conv, norm, ours_conv, weight, bias in zip(
            convs, norms, ours.body.convs, ours.body.bn_weight, ours.body.bn_bias
        ):
            conv.weight.copy_(ours_conv.weight)
            conv.bias.zero_()
            norm.weight.copy_(weight + 0.1 * torch.rand_like(weight))
            norm.bias.copy_(bias + 0.1)
            weight.copy_(norm.weight)
            bias.copy_(norm.bias)
        for i, layer in enumerate(theirs.head):
            layer.weight.copy_(ours.head[2 * i])
            layer.bias.copy_(ours.head[2 * i + 1])
    images = torch.randint(0, 256, (3, 5, 4, 3, 16, 16), dtype=torch.uint8)
    batch = TaskBatch(images, 2)
    inner = InnerLoop(3, 0.3, 0.05, False)
    conventional_step(theirs, batch, inner)()
    anil_reference_meta_loss(ours, batch, inner, torch.float64).backward()
    for i, layer in enumerate(theirs.head):
        assert torch.allclose(layer.weight.grad, ours.head[2 * i].grad, rtol=1e-9, atol=1e-12)
    assert torch.allclose(convs[0].weight.grad, ours.body.convs[0].weight.grad, rtol=1e-9, atol=1e-12)


def test_body_flops_counts_each_conv_forward_and_backward():
    # 3x8x8 images: layer 1 at 8x8 (forward + weight gradient), layers 2-4 at 4, 2, 1 (three passes each).
    forward = [2 * 3 * 64 * 9 * 64, 2 * 64 * 64 * 9 * 16, 2 * 64 * 64 * 9 * 4, 2 * 64 * 64 * 9 * 1]
    assert body_flops(10, 3, 8) == 10 * (2 * forward[0] + 3 * sum(forward[1:]))


def test_peak_is_at_least_every_body_convolution_kernel():
    """The limit is a bound: the peak covers the body's own kernels, so no body pass can beat it."""
    rates = peak_rates(torch.device("cpu"), images=4, channels=3, side=16, repeats=1)
    assert {name for name in rates if name.startswith("gemm")} == {"gemm 1024", "gemm 2048", "gemm 3072"}
    convs = [name for name in rates if name.startswith("conv")]
    assert len(convs) == 12  # 4 layers x forward, input gradient, weight gradient
    assert all(value > 0 for value in rates.values())
