"""The engine's meta-gradient equals Proposition 1's formulas, computed independently (anil/analysis/theory.py),
and approaches the implicit (N -> infinity) gradient geometrically under the strongly convex geometry."""

import math

import pytest
import torch

from anil.analysis.theory import explicit_meta_gradient, implicit_meta_gradient
from anil.engine.batched import anil_meta_loss
from anil.tasks import InnerLoop
from helpers import DTYPE, make


def engine_gradient(model, batch, inner):
    model.zero_grad(set_to_none=True)
    anil_meta_loss(model, batch, inner, DTYPE).loss.backward()
    return [p.grad.clone() for p in model.head], [p.grad.clone() for p in model.body.parameters()]


def flat(tensors):
    return torch.cat([t.flatten() for t in tensors])


def relative_error(a, b):
    return ((flat(a) - flat(b)).norm() / flat(b).norm()).item()


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
@pytest.mark.parametrize("steps", [1, 3, 7])
def test_engine_equals_proposition_1(geometry, steps):
    model, sampler = make(geometry, seed=steps, image_size=16)
    batch = sampler.sample(3)
    inner = InnerLoop(steps, 0.3, 0.05 if geometry == "convex" else 0.0, first_order=False)
    head, body = engine_gradient(model, batch, inner)
    formula = explicit_meta_gradient(model, batch, inner, DTYPE)
    assert relative_error(head, formula.head) < 1e-10
    assert relative_error(body, formula.body) < 1e-10
    assert flat(formula.sigma).norm() > 1e-3 * flat(formula.body).norm()  # the second-order term matters here


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_first_order_differs_from_exact_by_the_sigma_term(geometry):
    model, sampler = make(geometry, seed=4, image_size=16)
    batch = sampler.sample(3)
    exact, first = (InnerLoop(4, 0.3, 0.05, first_order=fo) for fo in (False, True))
    _, body_exact = engine_gradient(model, batch, exact)
    head_first, body_first = engine_gradient(model, batch, first)
    formula_first = explicit_meta_gradient(model, batch, first, DTYPE)
    assert (
        relative_error(head_first, formula_first.head) < 1e-10
        and relative_error(body_first, formula_first.body) < 1e-10
    )
    sigma = explicit_meta_gradient(model, batch, exact, DTYPE).sigma
    # exact = first order + Sigma: an accidental detach in the engine makes this fail.
    assert relative_error([f + s for f, s in zip(body_first, sigma)], body_exact) < 1e-10
    assert relative_error(body_first, body_exact) > 1e-4


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_meta_gradient_matches_finite_differences(geometry):
    model, sampler = make(geometry, seed=9, image_size=16)
    batch = sampler.sample(2)
    inner = InnerLoop(5, 0.3, 0.05, first_order=False)
    head, body = engine_gradient(model, batch, inner)
    gradient = flat(head + body)
    params = list(model.head) + list(model.body.parameters())
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        direction = torch.randn(gradient.numel(), generator=generator, dtype=DTYPE)
        direction /= direction.norm()
        eps = 1e-5
        losses = []
        for sign in (1, -1):
            _shift(params, sign * eps * direction)
            losses.append(anil_meta_loss(model, batch, inner, DTYPE).loss.item())
            _shift(params, -sign * eps * direction)
        slope = (losses[0] - losses[1]) / (2 * eps)
        assert slope == pytest.approx(torch.dot(gradient, direction).item(), rel=1e-6, abs=1e-9)


@torch.no_grad()
def _shift(params, step):
    offset = 0
    for p in params:
        p.add_(step[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


def test_convex_meta_gradient_approaches_the_implicit_gradient_geometrically():
    """Strongly convex inner loop: ||g_N - g_inf|| shrinks like (1 - alpha * mu)^N (Theorem 1's
    exponential term), g_inf being the implicit-function gradient at the task optimum w*."""
    model, sampler = make("convex", seed=2, image_size=16)
    batch = sampler.sample(2)
    # alpha below 2 / L (features here have norm ~10, so L ~ lam + 50): plain gradient descent
    # converges to w*. (At alpha = 0.1 it settles into a 2-cycle on these features instead.)
    lam, alpha = 2.0, 0.02
    limit = implicit_meta_gradient(model, batch, InnerLoop(1, alpha, lam, False), DTYPE, optimum_steps=3000)
    sizes = [4, 16, 64, 256]
    gaps = []
    for steps in sizes:
        head, body = engine_gradient(model, batch, InnerLoop(steps, alpha, lam, False))
        gaps.append((flat(head + body) - flat(limit.head + limit.body)).norm().item())
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:])) and gaps[-1] < 1e-4 * gaps[0], gaps
    rate = math.exp(math.log(gaps[-1] / gaps[-2]) / (sizes[-1] - sizes[-2]))  # per-step contraction
    # Geometric, at the speed strong convexity sets: (1 - alpha*mu)^N with mu >= lam, up to the
    # polynomial factor in N of Theorem 1 (hence half the exponent as the bound checked).
    assert rate <= 1 - alpha * lam / 2, (rate, gaps)
