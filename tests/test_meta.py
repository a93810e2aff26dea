"""The batched engine equals the per-task reference: same meta-loss, same meta-gradient."""

import pytest
import torch
import torch.nn.functional as F

from anil.engine.batched import (
    Anil,
    BodyPass,
    anil_meta_loss,
    anil_reference_meta_loss,
    encode,
    split_features,
    task_minor_images,
)
from anil.engine.losses import support_loss
from anil.engine.model import AnilNet, head_logits
from anil.tasks import InnerLoop, class_labels
from helpers import DTYPE, make


def flat_grads(loss, model):
    grads = torch.autograd.grad(loss, list(model.parameters()))
    return torch.cat([g.flatten() for g in grads])


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 4])
def test_batched_equals_per_task_reference(geometry, first_order, steps):
    model, sampler = make(geometry)
    batch = sampler.sample(5)
    inner = InnerLoop(steps=steps, stepsize=0.4, lam=0.05, first_order=first_order)
    batched = anil_meta_loss(model, batch, inner, DTYPE).loss
    reference = anil_reference_meta_loss(model, batch, inner, DTYPE)
    assert relative_error(batched, reference) < 1e-12
    assert relative_error(flat_grads(batched, model), flat_grads(reference, model)) < 1e-8
    for g_batched, g_reference in zip(
        torch.autograd.grad(anil_meta_loss(model, batch, inner, DTYPE).loss, list(model.parameters())),
        torch.autograd.grad(anil_reference_meta_loss(model, batch, inner, DTYPE), list(model.parameters())),
    ):
        assert torch.allclose(g_batched, g_reference, rtol=1e-8, atol=1e-12)


def test_first_order_drops_a_nonzero_term():
    """An accidental detach in the exact path would make these equal."""
    model, sampler = make("convex")
    batch = sampler.sample(4)
    exact = flat_grads(anil_meta_loss(model, batch, InnerLoop(3, 0.5, 0.05, False), DTYPE).loss, model)
    first = flat_grads(anil_meta_loss(model, batch, InnerLoop(3, 0.5, 0.05, True), DTYPE).loss, model)
    assert relative_error(first, exact) > 1e-3


def test_head_gradient_matches_proposition_1_for_one_step():
    """N=1, convex: dL/dw = (I - alpha * H_S(w_0)) grad_w L_D(w_1), checked on the weight matrix."""
    model, sampler = make("convex")
    batch = sampler.sample(1)
    inner = InnerLoop(1, 0.3, 0.05, False)
    loss = anil_meta_loss(model, batch, inner, DTYPE).loss
    engine = torch.autograd.grad(loss, [model.head[0], model.head[1]])
    # The formula, built from explicit Hessians of the support loss of the single task.
    with torch.no_grad():
        support, query = split_features(model.body(task_minor_images(batch, DTYPE), tasks=1), batch)
    w0 = torch.cat([model.head[0].detach().flatten(), model.head[1].detach()])
    shapes = (model.head[0].shape, model.head[1].shape)

    def unpack(flat):
        weight = flat[: shapes[0].numel()].reshape(shapes[0])
        return [weight.unsqueeze(0), flat[shapes[0].numel() :].unsqueeze(0)]

    labels_s, labels_q = class_labels(3, 2, "cpu"), class_labels(3, 3, "cpu")
    inner = lambda flat: support_loss(unpack(flat), support, labels_s, 0.05).sum()  # noqa: E731
    query_loss = lambda flat: F.cross_entropy(head_logits(unpack(flat), query)[0], labels_q)  # noqa: E731
    w1 = w0 - 0.3 * torch.autograd.functional.jacobian(inner, w0)
    hessian = torch.autograd.functional.hessian(inner, w0)
    formula = (torch.eye(len(w0), dtype=DTYPE) - 0.3 * hessian) @ torch.autograd.functional.jacobian(query_loss, w1)
    assert relative_error(torch.cat([engine[0].flatten(), engine[1]]), formula) < 1e-10


def test_per_task_batchnorm_equals_running_each_task_alone():
    model, sampler = make("convex")
    batch = sampler.sample(4)
    together = model.body(task_minor_images(batch, DTYPE), tasks=4)  # [n*4, d], task-minor
    n = batch.ways * (batch.shots + batch.query)
    for task in range(4):
        alone = model.body(batch.images[task].reshape(n, 1, 28, 28).to(DTYPE) / 255, tasks=1)
        ordered = together.reshape(n, 4, -1)[:, task]
        assert torch.allclose(ordered, alone, rtol=1e-10, atol=1e-12)


def test_cpu_and_gpu_body_layouts_compute_the_same_function():
    """The CPU path (tasks as conv groups, channels-last) and the GPU path (one dense conv, the
    per-task BatchNorm through a view) give the same features and the same gradients in phi."""
    model, sampler = make("convex")
    batch = sampler.sample(3)
    images = task_minor_images(batch, DTYPE)
    probe = torch.randn(images.shape[0], model.body.feature_size(28), dtype=DTYPE)
    results = []
    for forward in (model.body._forward_grouped, model.body._forward_dense):
        features = forward(images, 3)
        gradients = torch.autograd.grad((features * probe).sum(), list(model.body.parameters()))
        results.append((features, torch.cat([g.flatten() for g in gradients])))
    (grouped, grouped_grad), (dense, dense_grad) = results
    assert grouped.is_contiguous() and grouped.shape == dense.shape
    assert relative_error(grouped, dense) < 1e-12
    assert relative_error(grouped_grad, dense_grad) < 1e-12


def test_chunked_body_pass_gives_the_same_features():
    model, sampler = make("nonconvex")
    batch = sampler.sample(6)
    whole = encode(model, batch, DTYPE, BodyPass(chunk_tasks=0))
    chunked = encode(model, batch, DTYPE, BodyPass(chunk_tasks=4))  # 4 + 2: uneven chunks too
    for a, b in zip(whole, chunked):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_evaluation_scores_the_same_adapted_heads_as_training():
    """score() (no meta-graph, chunked) reports the query loss and accuracy the meta-loss sees."""
    model, sampler = make("nonconvex")
    batch = sampler.sample(5)
    inner = InnerLoop(3, 0.5, 0.01, False)
    trained = anil_meta_loss(model, batch, inner, DTYPE)
    losses, accuracies = Anil(inner, DTYPE, BodyPass(chunk_tasks=2)).score(model, [batch])
    assert losses.mean().item() == pytest.approx(trained.loss.item(), rel=1e-10)
    assert accuracies.mean().item() == pytest.approx(trained.accuracy.item(), rel=1e-12)


def test_bf16_body_pass_runs_on_cpu_and_stays_close():
    model, sampler = make("convex")
    model = model.float()
    batch = sampler.sample(4)
    inner = InnerLoop(3, 0.4, 0.05, False)
    full = anil_meta_loss(model, batch, inner, torch.float32)
    half = anil_meta_loss(model, batch, inner, torch.float32, BodyPass(bf16=True))
    assert half.loss.dtype == torch.float32  # the inner loop stays in float32
    assert abs(half.loss.item() - full.loss.item()) / full.loss.item() < 0.05
    half.loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.slow
def test_compiled_body_gives_the_same_meta_gradient():
    model, sampler = make("nonconvex")
    model = model.float()
    batch = sampler.sample(3)
    inner = InnerLoop(2, 0.4, 0.0, False)
    eager = flat_grads(anil_meta_loss(model, batch, inner, torch.float32).loss, model)
    model.body.compile()
    compiled = flat_grads(anil_meta_loss(model, batch, inner, torch.float32).loss, model)
    assert relative_error(compiled, eager) < 1e-4


def test_engine_per_task_trains_exactly_like_the_batched_engine(tmp_path):
    """engine=per_task runs learn2learn's loop through the same trainer: same losses, same counts."""
    import pandas as pd

    from anil.run.trainer import run
    from helpers import MEASURED, small_config

    for engine in ("batched", "per_task"):
        run(small_config(dtype="float64", engine=engine, iterations=4, N=3), tmp_path / engine)
    batched, per_task = (pd.read_csv(tmp_path / e / "metrics.csv") for e in ("batched", "per_task"))
    counters = ["grad_evals_w", "grad_evals_phi", "second_order_w", "second_order_phi"]
    pd.testing.assert_frame_equal(batched[MEASURED], per_task[MEASURED], rtol=1e-9, atol=1e-12)
    pd.testing.assert_frame_equal(batched[counters], per_task[counters])


def test_authors_initialisation_draws_from_the_stated_distributions():
    """init=authors: Xavier-uniform conv and head weights (bound sqrt(6 / (fan_in + fan_out))),
    zero head biases, BatchNorm weights in U(0, 1), BatchNorm biases 0; init=pytorch keeps
    BatchNorm weights at 1. A Kolmogorov-Smirnov distance checks the uniform shapes."""
    from anil.engine.model import INITS
    from anil.validation import CHOICES

    assert CHOICES["init"] == INITS

    def ks_uniform(values, low, high):
        ordered = torch.sort(((values.flatten() - low) / (high - low)).double()).values
        n = ordered.numel()
        grid = torch.arange(1, n + 1, dtype=torch.float64) / n
        return (grid - ordered).abs().max().item()

    torch.manual_seed(0)
    authors = AnilNet("nonconvex", 32, 3, 5, 64, init="authors")
    for conv in authors.body.convs:
        out_ch, in_ch, k, _ = conv.weight.shape
        bound = (6 / (in_ch * k * k + out_ch * k * k)) ** 0.5
        assert conv.weight.abs().max() <= bound and ks_uniform(conv.weight, -bound, bound) < 0.05
    bn = torch.cat(list(authors.body.bn_weight))
    assert bn.min() >= 0 and bn.max() <= 1 and ks_uniform(bn, 0.0, 1.0) < 0.15  # 256 draws
    assert all((b == 0).all() for b in authors.body.bn_bias)
    for i, param in enumerate(authors.head):
        if i % 2:
            assert (param == 0).all()
        else:
            bound = (6 / sum(param.shape)) ** 0.5
            assert param.abs().max() <= bound and ks_uniform(param, -bound, bound) < 0.1
    default = AnilNet("nonconvex", 32, 3, 5, 64)
    assert all((w == 1).all() for w in default.body.bn_weight)
    assert not all((b == 0).all() for b in default.head[1::2])  # PyTorch's biases are not zero
    with pytest.raises(ValueError, match="init='xavier'"):
        AnilNet("convex", 32, 3, 5, 0, init="xavier")
