"""MAML (algorithm=maml) against its formula, and the operation counters of both algorithms."""

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from anil.engine.batched import anil_meta_loss
from anil.engine.maml import maml_meta_loss, task_images
from anil.engine.model import head_logits
from anil.engine.opcount import OpCounts
from anil.tasks import InnerLoop, class_labels
from helpers import DTYPE, SMOKE, anil, make


def support_and_query_loss(model, batch, task, params, lam):
    """One task's support loss (with (lam/2)||w||^2) and query loss as functions of all parameters."""
    names = [n for n, _ in model.body.named_parameters()]
    support, query = task_images(batch, task, DTYPE)
    body, head = dict(zip(names, params[: len(names)])), params[len(names) :]

    def loss(images, labels, regularise):
        logits = head_logits(head, functional_call(model.body, body, (images,), {"tasks": 1}))
        value = F.cross_entropy(logits, labels)
        return value + 0.5 * lam * sum(p.pow(2).sum() for p in head) if regularise else value

    device = batch.images.device
    return (
        loss(support, class_labels(batch.ways, batch.shots, device), True),
        loss(query, class_labels(batch.ways, batch.query, device), False),
    )


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_one_step_maml_gradient_is_the_hessian_formula(geometry):
    """N = 1: dL/dtheta = (I - alpha * H_S(theta)) grad L_D(theta_1), for every parameter at once."""
    model, sampler = make(geometry, seed=1, image_size=16)
    batch = sampler.sample(2)
    alpha, lam = 0.2, 0.05
    model.zero_grad(set_to_none=True)
    maml_meta_loss(model, batch, InnerLoop(1, alpha, lam, False), DTYPE).loss.backward()
    engine = torch.cat([p.grad.flatten() for p in [*model.body.parameters(), *model.head]])
    theta = [p.detach() for p in [*model.body.parameters(), *model.head]]
    expected = torch.zeros_like(engine)
    for task in range(batch.tasks):
        start = [p.clone().requires_grad_(True) for p in theta]
        support_loss, _ = support_and_query_loss(model, batch, task, start, lam)
        grads = torch.autograd.grad(support_loss, start, create_graph=True)
        adapted = [(p - alpha * g).detach().requires_grad_(True) for p, g in zip(start, grads)]
        _, query_loss = support_and_query_loss(model, batch, task, adapted, lam)
        v = torch.autograd.grad(query_loss, adapted)
        hessian_v = torch.autograd.grad(sum((g * u).sum() for g, u in zip(grads, v)), start)
        expected += torch.cat([(u - alpha * h).flatten() for u, h in zip(v, hessian_v)]) / batch.tasks
    assert ((engine - expected).norm() / expected.norm()).item() < 1e-10


def counted(forward, model, batch, inner):
    counts = OpCounts()
    model.zero_grad(set_to_none=True)
    forward(model, batch, inner, DTYPE, counts=counts).loss.backward()
    return counts.as_dict()


@pytest.mark.parametrize("first_order", [False, True])
def test_counters_see_what_backward_computes(first_order):
    model, sampler = make("nonconvex", seed=5, image_size=16)
    batch = sampler.sample(3)
    B, N = 3, 4
    inner = InnerLoop(N, 0.1, 0.0, first_order)
    second = 0 if first_order else B * N  # a detached inner loop performs no second-order product
    assert counted(anil_meta_loss, model, batch, inner) == {
        "grad_evals_w": B * (N + 1),
        "grad_evals_phi": B,
        "second_order_w": second,
        "second_order_phi": second,
    }
    assert counted(maml_meta_loss, model, batch, inner) == {
        "grad_evals_w": B * (N + 1),
        "grad_evals_phi": B * (N + 1),
        "second_order_w": second,
        "second_order_phi": second,
    }


def test_counters_do_not_count_a_forward_without_backward():
    model, sampler = make("convex", seed=5, image_size=16)
    counts = OpCounts()
    anil_meta_loss(model, sampler.sample(2), InnerLoop(3, 0.1, 0.01, False), DTYPE, counts=counts)
    assert counts.as_dict() == {"grad_evals_w": 6, "grad_evals_phi": 0, "second_order_w": 0, "second_order_phi": 0}


def test_maml_trains_through_the_cli_and_logs_its_counts(tmp_path):
    run = tmp_path / "run"
    result = anil("train", *SMOKE, "algorithm=maml", "N=2", f"hydra.run.dir={run}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "MAML at iteration 0" in result.stdout + result.stderr
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["val_accuracy"].notna().all()
    assert (metrics["grad_evals_phi"] == 3 * 3).all() and (metrics["second_order_phi"] == 3 * 2).all()  # B=3, N=2


def test_maml_refuses_anil_only_options(tmp_path):
    result = anil("train", *SMOKE, "algorithm=maml", "bf16=true", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert result.returncode == 2 and "apply to algorithm=anil only" in result.stderr
    assert not (tmp_path / "run").exists()
