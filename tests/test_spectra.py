"""The smoothness instruments measure what the propositions bound: operator norms of the
meta-Hessian's blocks equal the dense matrix's largest singular values, the two mixed blocks agree,
and the inner loss's μ and L are its extreme eigenvalues."""

from functools import partial

import pytest
import torch
from torch.func import functional_call

from anil.analysis.spectra import MetaHessian, block_norms, inner_curvature, power_norm
from anil.engine.batched import Anil, encode
from anil.engine.losses import support_loss
from anil.engine.model import AnilNet
from anil.tasks import InnerLoop
from helpers import DTYPE, make

TIGHT = dict(tolerance=1e-13, max_iterations=20000)


def test_power_norm_finds_the_largest_magnitude_eigenvalue():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(30, 30, dtype=DTYPE))
    eigenvalues = torch.linspace(-5.0, 2.0, 30, dtype=DTYPE)  # the largest magnitude is negative
    a = q @ torch.diag(eigenvalues) @ q.T
    norm = power_norm(lambda v: [a @ v[0]], [torch.zeros(30, dtype=DTYPE)], **TIGHT)
    assert norm.converged and norm.value == pytest.approx(5.0, rel=1e-8)


class MetaLoss(torch.nn.Module):
    """The meta-loss as a module of the model's parameters, for a dense Hessian by torch.func."""

    def __init__(self, model, batch, learner):
        super().__init__()
        self.model, self.batch, self.learner = model, batch, learner

    def forward(self):
        return self.learner.loss(self.model, self.batch).loss


def dense_hessian(model, batch, learner):
    wrapper = MetaLoss(model, batch, learner)
    names = [f"model.head.{i}" for i in range(len(model.head))] + [
        f"model.body.{n}" for n, _ in model.body.named_parameters()
    ]
    params = [*model.head, *model.body.parameters()]
    sizes = [p.numel() for p in params]

    def loss(flat):
        pieces = torch.split(flat, sizes)
        return functional_call(wrapper, {n: t.view_as(p) for n, t, p in zip(names, pieces, params)}, ())

    flat = torch.cat([p.detach().flatten() for p in params])
    return torch.autograd.functional.hessian(loss, flat), sum(sizes[: len(model.head)])


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_block_norms_equal_the_dense_hessians_singular_values(geometry):
    torch.manual_seed(3)
    model = AnilNet(geometry, 16, 1, ways=3, hidden=4, filters=2).to(DTYPE)
    _, sampler = make(geometry, image_size=16)
    batch = sampler.sample(2)
    learner = Anil(InnerLoop(2, 0.3, 0.05 if geometry == "convex" else 0.0, False), DTYPE)
    hessian, n_w = dense_hessian(model, batch, learner)
    expected = {
        "ww": torch.linalg.matrix_norm(hessian[:n_w, :n_w], 2),
        "wphi": torch.linalg.matrix_norm(hessian[n_w:, :n_w], 2),
        "phiphi": torch.linalg.matrix_norm(hessian[n_w:, n_w:], 2),
    }
    norms = block_norms(MetaHessian(model, batch, learner), **TIGHT)
    assert norms.ww.value == pytest.approx(expected["ww"].item(), rel=1e-6)
    assert norms.phiphi.value == pytest.approx(expected["phiphi"].item(), rel=1e-6)
    assert norms.wphi.value == pytest.approx(expected["wphi"].item(), rel=1e-6)
    assert norms.phiw.value == pytest.approx(norms.wphi.value, rel=1e-6)  # the same block, transposed
    assert expected["ww"] != pytest.approx(expected["phiphi"].item(), rel=1e-2)  # the blocks are told apart


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_float32_block_norms_meet_the_tolerance_against_float64(geometry):
    """`anil smoothness --dtype float32`: the residual bound (1e-3 of the value) is what float32
    Lanczos promises, and it holds against float64 Lanczos run to convergence (tested equal to the
    dense Hessian above) at every thread count."""
    torch.manual_seed(3)
    reference = AnilNet(geometry, 16, 1, ways=3, hidden=4, filters=2).to(DTYPE)
    _, sampler = make(geometry, image_size=16)
    batch = sampler.sample(2)
    inner = InnerLoop(2, 0.3, 0.05 if geometry == "convex" else 0.0, False)
    exact = block_norms(MetaHessian(reference, batch, Anil(inner, DTYPE)), **TIGHT)
    expected = {block: getattr(exact, block).value for block in ("ww", "wphi", "phiphi")}
    single = AnilNet(geometry, 16, 1, ways=3, hidden=4, filters=2)
    single.load_state_dict({k: v.float() for k, v in reference.state_dict().items()})
    before = torch.get_num_threads()
    for threads in (1, 2):
        torch.set_num_threads(threads)
        try:
            norms = block_norms(MetaHessian(single, batch, Anil(inner, torch.float32)), starts=2)
        finally:
            torch.set_num_threads(before)
        for block, value in expected.items():
            found = getattr(norms, block)
            assert found.converged and found.value == pytest.approx(value, rel=2e-3), (block, threads)
        assert norms.phiw.value == pytest.approx(expected["wphi"], rel=2e-3)


def test_inner_curvature_with_zero_features_is_known_in_closed_form():
    """Features 0: the weights see only (lam/2)||W||^2 (eigenvalue lam); the bias sees softmax's
    Hessian at uniform probabilities, (I - 11^T/ways)/ways, plus lam: eigenvalues lam and lam + 1/ways."""
    model, sampler = make("convex")
    with torch.no_grad():
        for weight in model.body.bn_weight:
            weight.zero_()
        for bias in model.body.bn_bias:
            bias.zero_()
        model.head[1].zero_()  # uniform probabilities
    lam, ways = 0.05, 3
    curvature = inner_curvature(model, sampler.sample(4), lam, DTYPE)
    assert torch.allclose(curvature.mu, torch.full((4,), lam, dtype=DTYPE), rtol=1e-7)
    assert torch.allclose(curvature.L, torch.full((4,), lam + 1 / ways, dtype=DTYPE), rtol=1e-7)


def task_loss(flat, features, labels, lam, sizes, shapes):
    head = [t.view(s) for t, s in zip(torch.split(flat, sizes), shapes)]
    return support_loss(head, features, labels, lam)


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_inner_curvature_equals_the_dense_eigenvalues(geometry):
    model, sampler = make(geometry, seed=2, image_size=16)
    batch, lam = sampler.sample(3), 0.02
    curvature = inner_curvature(model, batch, lam, DTYPE, steps=10_000)
    support, _ = encode(model, batch, DTYPE)
    labels = batch.support_labels()
    shapes = [p.shape for p in model.head]
    sizes = [p.numel() for p in model.head]
    for task in range(batch.tasks):
        features = support[task].detach()
        loss = partial(task_loss, features=features, labels=labels, lam=lam, sizes=sizes, shapes=shapes)
        flat = torch.cat([p.detach().flatten() for p in model.head])
        eigenvalues = torch.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat))
        assert curvature.mu[task].item() == pytest.approx(eigenvalues[0].item(), rel=1e-5, abs=1e-9)
        assert curvature.L[task].item() == pytest.approx(eigenvalues[-1].item(), rel=1e-5)
    if geometry == "nonconvex":
        assert (curvature.mu < 0).any()  # the two-layer head's inner loss is not convex
