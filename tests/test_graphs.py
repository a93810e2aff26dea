"""cuda_graphs=true: the meta-iteration replayed from a CUDA graph trains like the eager one.

On a CPU the option falls back to eager execution through the same code path (tested here); on a
CUDA device the captured graph's losses are compared with the eager run's (marked gpu)."""

import pandas as pd
import pytest
import torch

from anil.engine.opcount import OpCounts
from anil.run.graphs import WARMUP_CALLS
from anil.run.setup import build
from anil.run.trainer import run
from helpers import MEASURED, small_config

COUNTERS = ["grad_evals_w", "grad_evals_phi", "second_order_w", "second_order_phi"]


def train_both(tmp_path, device, **overrides):
    """metrics.csv of an eager run and a cuda_graphs run, same config otherwise."""
    frames = {}
    for graphs in (False, True):
        folder = tmp_path / f"graphs_{graphs}"
        config = small_config(device=device, cuda_graphs=graphs, **overrides)
        run(config, folder)
        frames[graphs] = pd.read_csv(folder / "metrics.csv")
    return frames[False], frames[True]


def test_cpu_fallback_trains_exactly_like_the_eager_loop(tmp_path, caplog):
    # grad_eval_every sets the gradients to None between iterations: the loop must still step.
    eager, graphed = train_both(
        tmp_path, "cpu", dtype="float64", iterations=WARMUP_CALLS + 3, grad_eval_every=2, grad_eval_tasks=4
    )
    pd.testing.assert_frame_equal(eager[MEASURED], graphed[MEASURED], rtol=1e-12, atol=1e-14)
    pd.testing.assert_frame_equal(eager[COUNTERS], graphed[COUNTERS])
    assert eager["loss"].iloc[-1] != eager["loss"].iloc[0]  # the parameters moved: a real comparison
    assert "needs a CUDA device" in caplog.text


def test_graphed_gradients_on_a_cpu_compute_every_call():
    setup = build(small_config(cuda_graphs=True), torch.device("cpu"))
    assert setup.graphed is not None
    for _ in range(WARMUP_CALLS + 2):
        counts = OpCounts()
        metrics = setup.graphed(setup.sampler.sample(4), counts)
        assert metrics.shape == (6,) and counts.grad_evals_w > 0
        assert all(p.grad is not None for p in setup.model.parameters())
    assert not setup.graphed.captured


def geometry_config(geometry):
    from anil.config import GeometryConfig

    return GeometryConfig(name=geometry, hidden=16 if geometry == "nonconvex" else 0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_captured_graph_computes_the_eager_meta_gradients_on_cuda(geometry):
    """One meta-iteration replayed from the graph against the same one computed eagerly, on the
    same parameters and tasks: metrics and gradients agree to float32 tolerance (kernels chosen
    under capture may sum in another order; nothing else may differ)."""
    from anil.run.step import meta_gradients

    setup = build(
        small_config(device="cuda", cuda_graphs=True, geometry=geometry_config(geometry)), torch.device("cuda")
    )
    assert setup.graphed is not None
    for _ in range(WARMUP_CALLS + 1):  # the warm-up calls, then the capture and a first replay
        setup.graphed(setup.sampler.sample(2), OpCounts())
    assert setup.graphed.captured
    batch = setup.sampler.sample(2)
    replayed = setup.graphed(batch, OpCounts())
    from_graph = [p.grad.detach().clone() for p in setup.model.parameters()]
    eager = meta_gradients(setup, batch, OpCounts())
    torch.testing.assert_close(replayed, eager, rtol=1e-4, atol=1e-6)
    for graphed, computed in zip(from_graph, (p.grad for p in setup.model.parameters())):
        torch.testing.assert_close(graphed, computed, rtol=1e-4, atol=1e-5 * computed.abs().max().item())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("geometry", ["convex", "nonconvex"])
def test_captured_graph_trains_like_the_eager_loop_on_cuda(tmp_path, geometry):
    """Whole runs, with SGD in the outer loop: under Adam (the first device run) the two agreed
    exactly through the warm-up and to 1e-6 at the first replay, then drifted to 1e-2 by the sixth
    step, Adam's near-sign(gradient) early updates amplifying last-bit differences."""
    from anil.config import OptimConfig

    eager, graphed = train_both(
        tmp_path, "cuda", geometry=geometry_config(geometry), optim=OptimConfig(name="sgd", beta_w=0.01, beta_phi=0.01),
        iterations=WARMUP_CALLS + 5, grad_eval_every=3, grad_eval_tasks=4,
    )  # fmt: skip
    pd.testing.assert_frame_equal(eager[MEASURED], graphed[MEASURED], rtol=1e-4, atol=1e-6)
    pd.testing.assert_frame_equal(eager[COUNTERS], graphed[COUNTERS])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_graph_is_captured_after_the_warmup_on_cuda():
    setup = build(small_config(device="cuda", cuda_graphs=True), torch.device("cuda"))
    assert setup.graphed is not None
    for call in range(WARMUP_CALLS + 2):
        setup.graphed(setup.sampler.sample(4), OpCounts())
        assert setup.graphed.captured == (call >= WARMUP_CALLS)
