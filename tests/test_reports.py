"""The generators of docs/: each runs on small synthetic data and says what that data says (their
verdicts can come out either way), `anil report` reads a real sweep, and every committed
document is exactly what its committed data gives."""

import json
import math
import subprocess

import numpy as np
import pandas as pd
import pytest

from anil.analysis import claims, pricing
from anil.analysis.reports import complexity, divergence, performance, provenance, reproduction, sweeps, theory
from anil.analysis.reports import jobs as job_rows
from anil.analysis.statistics import Verdict
from anil.analysis.thresholds import LEARNED
from helpers import REPO, anil

# --- reproduction ------------------------------------------------------------------------------


# 10-way: chance is ln 10 = 2.30, above where the synthetic curves start (2.0), so that they learn
JOB_SETTINGS = dict(B=8, lam=0.01, optim="adam", beta_w=0.001, beta_phi=0.001, ways=10, shots=5, query=5)
ENVIRONMENT = dict(status="completed", device="cpu", device_name="x86_64", torch="2.13.0", torch_threads=2)


def synthetic_sweep(
    geometry, schedules, grid, loss, cost, diverged=(), dataset="embedded", seeds=3, iterations=120, counters=False,
    gradient=None, accuracy=None, algorithm="anil", optim=None, pace=None, shared=False, gradient_every=10,
    gradient_tasks=256,
):  # fmt: skip
    """Per-seed curves loss(N, iteration) with seconds per iteration cost(N), as collect() writes them,
    the jobs one after another (`shared`: all at once); with `counters`, also ANIL's operation
    counters for B = 8; `pace`: the seconds per iteration measured apart (synthetic_pace); with
    `gradient`, the full objective's ‖∇L_meta‖² gradient(N, iteration) every `gradient_every`
    iterations on `gradient_tasks` tasks; with
    `accuracy`, each job's meta-test accuracy accuracy(N, seed)."""
    seeds_rows, jobs, started = [], [], 0.0  # started: when the next job starts (the jobs run one at a time)
    for schedule in schedules:
        for n in grid:
            for seed in range(seeds):
                key = dict(dataset=dataset, geometry=geometry, alpha_schedule=schedule, N=n, seed=seed)
                key.update(alpha=0.1 / n if schedule == "inverse_n" else 0.1, diverged=(n, schedule) in diverged)
                key["job"] = f"geometry={geometry},N={n},alpha_schedule={schedule},seed={seed}"
                for i in range(1, iterations + 1):
                    validated = 0.9 if i == iterations else np.nan
                    values = dict(iteration=i, time=cost(n) * i, loss=loss(n, i) * (1 + 0.01 * seed))
                    values.update(clock=started + cost(n) * i, host="h")
                    values.update(sq_grad_norm_w=1.0, sq_grad_norm_phi=1.0, val_accuracy=validated)
                    if counters:
                        values.update(grad_evals_w=8 * (n + 1), grad_evals_phi=8, second_order_w=8 * n,
                                      second_order_phi=8 * n)  # fmt: skip
                    if gradient:
                        logged = i % gradient_every == 0
                        w = gradient(n, i) * (1 + 0.01 * seed) if logged else np.nan
                        values.update(meta_sq_grad_norm_w=w, meta_sq_grad_norm_phi=w)
                    seeds_rows.append({**key, **values})
                seconds = cost(n) * iterations
                started += 0.0 if shared else seconds + 1.0
                jobs.append({**key, **JOB_SETTINGS, **ENVIRONMENT, "iterations": iterations, "wall_time_s": seconds,
                             "last_iteration": iterations, "algorithm": algorithm, **(optim or {}),
                             "grad_eval_every": gradient_every, "grad_eval_tasks": gradient_tasks})  # fmt: skip
                jobs[-1]["train_time_s"] = seconds
                if accuracy:
                    jobs[-1].update(test_accuracy=accuracy(n, seed), test_accuracy_ci95=0.01, test_tasks=300,
                                    test_checkpoint="checkpoint.pt")  # fmt: skip
    return sweeps.Sweep(pd.DataFrame(seeds_rows), pd.DataFrame(jobs), pace)


def synthetic_pace(seconds, algorithms=("anil", "maml"), grid=range(1, 31), dimensions=(100, 10_000)):
    """Measured seconds per iteration seconds(algorithm, N) for both geometries, as
    scripts/time_iterations.py writes them."""
    rows = [
        dict(algorithm=a, geometry=g, N=n, seconds=seconds(a, n), repeats=5, n_w=dimensions[0], n_phi=dimensions[1],
             dataset="embedded", B=8)
        for a in algorithms for g in ("convex", "nonconvex") for n in grid
    ]  # fmt: skip
    meta = dict(machine="x86_64", cpus=2, torch="2.13.0", threads=1, load_average=0.1, command="t", date="d")
    return pricing.Pace(rows, meta, REPO / "docs" / "data" / "iteration-timing.json")


def slower_with_n(n, iteration):
    return 2.0 * np.exp(-iteration * 0.01 / n)


def faster_with_n(n, iteration):
    return 2.0 * np.exp(-iteration * 0.01 * n)


CONVEX_GRID, NONCONVEX_GRID = [1, 3, 5, 7, 10, 15], [1, 5, 10, 30]


def saturating(n, iteration):
    """Faster per iteration with N, no gain past N = 7."""
    return 2.0 * np.exp(-iteration * 0.01 * min(n, 7))


def render_verdicts(fig1, fig2):
    text = reproduction.render(fig1, fig2, ["fig1-seeds.csv"])
    found = {}
    for claim in (claims.CONVEX_PER_ITERATION, claims.CONVEX_COMPLEXITY, claims.NONCONVEX_PER_ITERATION,
                  claims.NONCONVEX_COMPLEXITY, claims.DIVERGENCE_AT_30, claims.INVERSE_N):  # fmt: skip
        row = next(line for line in text.splitlines() if line.startswith(f"| {claim.statement} |"))
        found[claim.key] = row.split("**")[1]
    return found, text


def test_reproduction_claims_can_agree_and_disagree():
    # Per iteration: faster with N, saturating at 7; per second: N = 7 costs little more than N = 1.
    fig1 = synthetic_sweep("convex", ["authors"], CONVEX_GRID, saturating, cost=lambda n: 0.1 + 0.01 * n)
    both = ["constant", "inverse_n"]
    fig2 = synthetic_sweep(
        "nonconvex", both, NONCONVEX_GRID, slower_with_n, lambda n: 0.1 + 0.05 * n, {(30, "constant")}, "fc100"
    )
    verdicts, text = render_verdicts(fig1, fig2)
    assert set(verdicts.values()) == {"agrees"}, verdicts
    assert "dataset=embedded" in text and "2.13.0" in text  # settings and environment come from the data

    # Per iteration slower with N (convex); faster with N (nonconvex); alpha/N diverges as often.
    fig1 = synthetic_sweep("convex", ["authors"], CONVEX_GRID, slower_with_n, cost=lambda n: 0.1)
    everything = {(30, "inverse_n"), (30, "constant")}
    fig2 = synthetic_sweep("nonconvex", both, NONCONVEX_GRID, faster_with_n, lambda n: 0.1, everything, "fc100")
    verdicts, _ = render_verdicts(fig1, fig2)
    assert verdicts["convex-per-iteration"] == verdicts["convex-complexity"] == "disagrees"
    assert verdicts["nonconvex-per-iteration"] == verdicts["nonconvex-complexity"] == "disagrees"
    assert verdicts["inverse-n-stepsize"] == "disagrees" and verdicts["divergence-at-30"] == "agrees"
    # Not the paper's dataset, nothing diverged, N makes no difference: inconclusive.
    flat = synthetic_sweep("nonconvex", both, NONCONVEX_GRID, lambda n, i: 1.0 + 0.0 * i, cost=lambda n: 0.1)
    verdicts, _ = render_verdicts(fig1, flat)
    assert verdicts["divergence-at-30"] == verdicts["inverse-n-stepsize"] == "inconclusive"
    assert verdicts["nonconvex-per-iteration"] == "inconclusive"


def test_complexity_claims_on_counts_then_priced_seconds_then_the_runs_clocks():
    """Per iteration, a larger N converges more slowly and counts more evaluations: the paper's
    quantity rises with N (agrees). Timed apart, an iteration costs 0.2/N² s, so priced seconds fall
    with N (disagrees); the runs' own clocks (0.1 s at every N) rise with N (agrees) when the jobs
    ran one at a time, and cannot be judged when they ran side by side."""
    pace = synthetic_pace(lambda a, n: 0.2 / n**2)
    fig1 = synthetic_sweep("convex", ["authors"], CONVEX_GRID, saturating, lambda n: 0.1, counters=True, pace=pace)
    for shared, clocks in ((False, "**agrees**"), (True, "**inconclusive**")):
        fig2 = synthetic_sweep("nonconvex", ["constant", "inverse_n"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1,
                               counters=True, pace=pace, shared=shared)  # fmt: skip
        assert fig2.counted and fig2.priced
        text = reproduction.render(fig1, fig2, ["x"])
        rows = claim_rows(text, claims.NONCONVEX_COMPLEXITY)
        assert len(rows) == 8  # four views under each of the two stepsize designs
        gradients, second_order, priced, own = rows[:4]
        assert "fixed α = 0.1" in gradients and "fixed αN = 0.1" in rows[4]
        assert "gradient evaluations" in gradients and "**agrees**" in gradients
        assert "second-order evaluations" in second_order and "**agrees**" in second_order
        assert "measured time per iteration" in priced and "**disagrees**" in priced
        assert "as the runs measured them" in own and clocks in own
        assert ("jobs trained at the same time" in own) is shared
    assert "timed s/iteration" in text and "evaluations/iteration" in text
    assert "**What the priced verdicts rest on.**" in text and "ratio" in text
    assert "**How many verdicts.**" in text and "| `LEARNED` | 0.01 |" in text
    plain = synthetic_sweep("nonconvex", ["constant", "inverse_n"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1)
    assert not plain.counted and not plain.priced  # no counters, not timed apart: the runs' clocks alone
    text = reproduction.render(fig1, plain, ["x"])
    assert len(claim_rows(text, claims.NONCONVEX_COMPLEXITY)) == 2


def test_anil_against_maml_to_common_losses_can_agree_and_disagree():
    """The same curves per iteration at every N; timed apart, MAML's iteration costs N times ANIL's
    (a factor growing with N: agrees) or a tenth of it at the largest N (MAML cheaper: disagrees).
    Table 2's entry counts give MAML's (n_w + n_φ)-sized gradients against ANIL's n_w-sized ones."""
    fig2 = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1)
    for maml_seconds, verdict in ((lambda n: 0.1 * n, "agrees"), (lambda n: 0.1 / n, "disagrees")):
        pace = synthetic_pace(lambda a, n, m=maml_seconds: m(n) if a == "maml" else 0.1)
        fig1 = synthetic_sweep("convex", ["constant"], [1, 5, 10], saturating, lambda n: 0.1, seeds=5,
                               counters=True, pace=pace)  # fmt: skip
        maml = synthetic_sweep("convex", ["constant"], [1, 5], saturating, lambda n: 0.1, seeds=5, counters=True,
                               pace=pace, algorithm="maml")  # fmt: skip
        text = reproduction.render(fig1, fig2, ["x"], provenance.Others(maml=maml))
        rows = claim_rows(text, claims.ANIL_VS_MAML)
        targets = {row.split("to a training loss of ")[1].split(" |")[0] for row in rows}
        assert len(targets) == 3  # several targets, each below both algorithms' starts
        priced = [row for row in rows if "measured time per iteration" in row]
        assert priced and all(f"**{verdict}**" in row for row in priced)
        own = [row for row in rows if "as the runs measured them" in row]
        assert own and all("**inconclusive**" in row for row in own)  # ANIL's and MAML's jobs overlap in time
        assert any("gradient entry evaluations" in row for row in rows)
        assert "## ANIL against MAML to the same loss (Table 2)" in text and "| 5 | MAML | 5/5 |" in text
        assert "MAML ran with ANIL's stepsizes" in text and "--maml outputs/sweeps/maml_embedded" in text
    # the same seconds per iteration, noisy curves: the priced view never agrees
    pace = synthetic_pace(lambda a, n: 0.1)
    noisy = synthetic_sweep("convex", ["constant"], [1, 5], lambda n, i: saturating(n, i) * (1 + 0.3 * np.sin(i * n)),
                            lambda n: 0.1, seeds=5, counters=True, pace=pace, algorithm="maml")  # fmt: skip
    fig1 = synthetic_sweep("convex", ["constant"], [1, 5, 10], saturating, lambda n: 0.1, seeds=5, pace=pace)
    judged = maml_judgements(fig1, noisy)
    assert judged and all(j.verdict is not Verdict.AGREES for j in judged)


def test_maml_targets_lie_below_where_every_n_started():
    """MAML at N = 5 starts where its first adaptation already took it (1.2 against 2.0 at N = 1):
    every target lies below that start, not only below the median start pooled over N (1.6)."""
    pace = synthetic_pace(lambda a, n: 0.1 * n if a == "maml" else 0.1)
    fig1 = synthetic_sweep("convex", ["constant"], [1, 5], lambda n, i: 2.0 * np.exp(-0.01 * i), lambda n: 0.1,
                           seeds=5, counters=True, pace=pace)  # fmt: skip
    maml = synthetic_sweep("convex", ["constant"], [1, 5], lambda n, i: (2.0 if n == 1 else 1.2) * np.exp(-0.01 * i),
                           lambda n: 0.1, seeds=5, counters=True, pace=pace, algorithm="maml")  # fmt: skip
    from anil.analysis.reports import maml as against

    judged = against.judgements(fig1, maml, "maml_embedded")
    targets = {float(label.split("to a training loss of ")[1]) for _, _, label in judged}
    assert len(targets) == 3 and max(targets) < (1 - LEARNED) * 1.2 * np.exp(-0.01)


def test_table2_at_tuned_stepsizes_reads_finished_runs_only_and_says_how_far_they_got():
    """scripts/table2_runs.sh's runs, collected while they run: before two N have MIN_SEEDS finished
    runs of both algorithms nothing is judged; once N = 1 and 5 have, those are judged (MAML's
    iteration N times ANIL's: agrees) and a stopped run is left out."""
    fig2 = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1)
    pace = synthetic_pace(lambda a, n: 0.1 * n if a == "maml" else 0.1)
    fig1 = synthetic_sweep("convex", ["constant"], [1, 5, 10], saturating, lambda n: 0.1, seeds=5, pace=pace)
    anil_runs = synthetic_sweep("convex", ["constant"], [1, 5, 10], saturating, lambda n: 0.1, seeds=5,
                                counters=True, pace=pace)  # fmt: skip
    maml_runs = synthetic_sweep("convex", ["constant"], [1, 5, 10], saturating, lambda n: 0.1, seeds=5,
                                counters=True, pace=pace, algorithm="maml")  # fmt: skip

    def stopped(sweep, unfinished):  # the jobs in `unfinished` (N, seed) have not finished
        cut = sweep.jobs.apply(lambda job: (job["N"], job["seed"]) in unfinished, axis=1)
        return sweeps.Sweep(sweep.seeds, sweep.jobs.assign(status=np.where(cut, "stopped", "completed")), sweep.pace)

    early = stopped(maml_runs, {(n, s) for n in (1, 5, 10) for s in range(5) if n > 1 or s > 1})
    text = reproduction.render(fig1, fig2, ["x"], provenance.Others(table2=(anil_runs, early)))
    assert "## ANIL against MAML, each at its own tuned stepsizes (Table 2)" in text
    assert "MAML N = 1: 2 of 5, N = 5: 0 of 5, N = 10: 0 of 5" in text and "nothing is judged" in text
    assert not claim_rows(text, claims.ANIL_VS_MAML)
    one_n = stopped(maml_runs, {(n, s) for n in (5, 10) for s in range(5)})  # N = 1 alone: no ratio to move
    text = reproduction.render(fig1, fig2, ["x"], provenance.Others(table2=(anil_runs, one_n)))
    assert "MAML N = 1: 5 of 5" in text and "nothing is judged" in text and not claim_rows(text, claims.ANIL_VS_MAML)
    later = stopped(maml_runs, {(10, s) for s in range(5)} | {(5, 4)})
    text = reproduction.render(fig1, fig2, ["x"], provenance.Others(table2=(anil_runs, later)))
    rows = claim_rows(text, claims.ANIL_VS_MAML)
    priced = [row for row in rows if "measured time per iteration" in row]
    assert priced and all("`table2-maml` beside `table2-anil`" in row and "**agrees**" in row for row in priced)
    assert "| 5 | MAML | 4/4 |" in text and "| 10 | MAML" not in text  # the stopped seed and N = 10 left out
    assert "--table2 outputs/table2" in text


def test_make_reproduce_streams_count_each_job_as_if_alone_where_it_recorded_its_cpu_time():
    """The tuning (second stream) got half a core (CPU time half its training time): half its wall
    time counts; fig2's long runs (first stream) recorded no CPU time: their wall time counts. Once
    Table 2's runs exist they take the untuned MAML sweep's place in the second stream."""
    fig1 = synthetic_sweep("convex", ["constant"], [1, 5], saturating, lambda n: 0.1, seeds=3)  # 6 jobs x 12 s
    fig2 = synthetic_sweep("nonconvex", ["constant"], [1, 5], slower_with_n, lambda n: 0.1, seeds=3)
    slow = synthetic_sweep("nonconvex", ["constant"], [1, 5], slower_with_n, lambda n: 600.0, seeds=3)  # 6 x 20 h
    shared = sweeps.Sweep(slow.seeds, slow.jobs.assign(cpu_time_s=slow.jobs["train_time_s"] / 2))
    others = provenance.Others(long={"fig2": slow}, tuning=shared)
    assert provenance.job_minutes(fig1, fig2, others)["stepsize tuning"] == pytest.approx(6 * 72000 / 60)
    said = provenance.streams(fig1, fig2, others)
    assert "one per core: stepsize tuning in one (60.0 h), the rest in the other (120.0 h)" in said
    assert "about 120.0 h on 2 cores" in said
    others = provenance.Others(long={"fig2": slow}, tuning=shared, maml=slow, table2=(fig1, shared))
    said = provenance.streams(fig1, fig2, others)
    assert "one per core: stepsize tuning; Table 2, ANIL; Table 2, MAML in one (120.0 h)" in said  # 60 + 0 + 60


def test_jobs_without_cpu_time_count_at_their_configurations_pace_timed_alone():
    """Jobs that recorded no CPU time but ran at 0.1 s/iteration where their configuration takes
    0.02 + 0.01 N s alone count at that share of their wall time; N = 20, outside the timed grid,
    at the fitted line; a dataset the timing did not cover keeps its wall time."""
    pace = synthetic_pace(lambda a, n: 0.02 + 0.01 * n, grid=[1, 2, 3])
    fig1 = synthetic_sweep("convex", ["constant"], [1, 3], saturating, lambda n: 0.1, seeds=2, pace=pace)
    fig2 = synthetic_sweep("nonconvex", ["constant"], [20], slower_with_n, lambda n: 0.1, seeds=2, pace=pace)
    other = synthetic_sweep("convex", ["constant"], [1], saturating, lambda n: 0.1, dataset="fc100", pace=pace)
    alone = provenance.job_minutes(fig1, fig2, provenance.Others(theory=other), alone=True)
    assert alone["Figure 1"] == pytest.approx(2 * 12 * (0.3 + 0.5) / 60)  # 120 iterations x 0.1 s, N = 1 and 3
    assert alone["Figure 2"] == pytest.approx(2 * 12 * 1.0 / 60)  # 0.22 s alone: not faster than it ran
    assert alone["theorems' regime"] == pytest.approx(3 * 12 / 60)
    said = provenance.streams(fig1, fig2, provenance.Others(theory=other))
    assert "for the 6 jobs that ran before runs recorded it, an estimate" in said


def maml_judgements(fig1, maml_sweep):
    from anil.analysis.reports import maml

    return [
        judged
        for judged, _, quantity in maml.judgements(fig1, maml_sweep, "maml_embedded")
        if "measured time" in quantity
    ]


def test_theory_regime_section_states_stepsizes_against_the_curvature_and_sets_verdicts_beside():
    """Practical Figure 1 saturates at N = 7 (agrees); the theory-regime runs slow down with N
    (disagrees): the section must count the changed verdicts, state alpha*L from the curvature
    measured on the same dataset and initialisation, and leave it out for another dataset."""
    fig1 = synthetic_sweep("convex", ["constant"], CONVEX_GRID, saturating, lambda n: 0.1)
    fig2 = synthetic_sweep("nonconvex", ["inverse_n"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1)
    sgd = dict(optim="sgd", beta_w=1.0, beta_phi=1.0, beta_schedule="constant")
    slower = synthetic_sweep("convex", ["constant"], CONVEX_GRID, slower_with_n, lambda n: 0.1, optim=sgd)
    slow = synthetic_sweep("nonconvex", ["inverse_n"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1,
                           optim={**sgd, "beta_schedule": "inverse_n"})  # fmt: skip
    theory = sweeps.Sweep(pd.concat([slower.seeds, slow.seeds]), pd.concat([slower.jobs, slow.jobs]))
    curvature = pd.DataFrame(
        [dict(geometry=g, iteration=0, task=t, mu=mu, L=big) for g, mu, big in
         (("convex", 0.01, 7.0), ("nonconvex", -2.0, 12.0)) for t in range(4)]
    )  # fmt: skip
    search = divergence.Search(fig2.jobs, curvature, {"dataset": "embedded", "init": "pytorch"})
    from anil.analysis.reports import regimes

    text = "\n".join(regimes.section(fig1, fig2, theory, search))
    assert "### Convex inner loop (`theory_convex_embedded`, beside `fig1_embedded`)" in text
    assert "| 1 | 0.1 | 1 | 1 | 0.7 | 0.001 | 0.999 |" in text  # alpha*L = 0.7, (1 - 0.001)^1
    assert "| 30 | 0.00333 | 0.0333 | 0.0333 | 0.04 | -0.00667 | 3.2434 |" in text  # beta/N; (1 + 0.04)^30
    convex_rows = [
        line for line in text.splitlines() if line.startswith(f"| {claims.CONVEX_PER_ITERATION.statement} |")
    ]
    assert any(
        row.endswith("| **disagrees** | agrees | **changes** | not faster from N=1 to 7 |") for row in convex_rows
    )
    assert "verdicts differ from the practical regime's" in text
    assert "Chance, a uniform guess over 10 classes: ln 10 = 2.303." in text and "N=30: " in text
    # alpha*mu = 0.001 in the synthetic runs: 0.999^15 / 0.999 = 0.986, too small a change to order the N
    assert "N moves it by less than 10%, so Theorem 1's dependence on N cannot show" in text
    can_test = "\n".join(regimes.conditioning(fig1, fig2, search))  # what the practical sweeps can test
    assert (
        "| convex | fixed α = 0.1 | 0.01 | 7 | 700 | 0.001 |" in can_test and "Section 4's discussion only" in can_test
    )
    assert "| nonconvex | fixed αN = 0.1 | -2 | 12 | — (μ ≤ 0) |" in can_test
    tiny = slower.jobs.assign(alpha=2e-4)
    assert "cannot show here" in regimes.reading(tiny, "convex", (0.01, 7.0))
    other = divergence.Search(fig2.jobs, curvature, {"dataset": "fc100", "init": "pytorch"})
    assert "No curvature measurement on this dataset" in "\n".join(regimes.section(fig1, fig2, theory, other))


def claim_rows(text, claim):
    return [line for line in text.splitlines() if line.startswith(f"| {claim.statement} |")]


def test_per_iteration_claims_on_the_meta_gradient_and_on_the_loss_separately():
    """The theorems' quantity and the training loss are judged apart: here ‖∇L_meta‖² ends larger at
    larger N (slower, as the nonconvex claim says) while the loss ends lower (faster): the two rows
    of each design must disagree with each other."""
    fig1 = synthetic_sweep("convex", ["constant"], CONVEX_GRID, saturating, cost=lambda n: 0.1)
    fig2 = synthetic_sweep(
        "nonconvex", ["constant", "inverse_n"], NONCONVEX_GRID, faster_with_n, lambda n: 0.1,
        gradient=lambda n, i: float(n) / i,
    )  # fmt: skip
    text = reproduction.render(fig1, fig2, ["x"])
    rows = claim_rows(text, claims.NONCONVEX_PER_ITERATION)
    assert len(rows) == 4
    for gradient_row, loss_row in (rows[:2], rows[2:]):
        assert "min ‖∇L_meta‖² over 12 evaluations, iterations 10–120" in gradient_row and "**agrees**" in gradient_row
        assert "training loss at iteration 120" in loss_row and "**disagrees**" in loss_row
    assert "min ‖∇L_meta‖²" in text  # the table column
    flat = synthetic_sweep(
        "nonconvex", ["constant"], NONCONVEX_GRID, faster_with_n, lambda n: 0.1, gradient=lambda n, i: 1.0 / i
    )
    gradient_row = claim_rows(reproduction.render(fig1, flat, ["x"]), claims.NONCONVEX_PER_ITERATION)[0]
    assert "**inconclusive**" in gradient_row  # the same norm at every N: the seeds' noise decides nothing
    # the minimum over evaluations, not the last: here every N ends at the same norm, but larger N dipped lower
    dipped = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, faster_with_n, lambda n: 0.1,
                             gradient=lambda n, i: 1.0 / n if i == 60 else 1.0)  # fmt: skip
    gradient_row = claim_rows(reproduction.render(fig1, dipped, ["x"]), claims.NONCONVEX_PER_ITERATION)[0]
    assert "**disagrees**" in gradient_row


@pytest.mark.parametrize("every, tasks", [(60, 256), (10, 64)])
def test_the_least_gradient_norm_is_judged_only_where_sampled_densely(every, tasks):
    """The theorems bound min over the iterations: sampled every 60 iterations, or on 64 tasks, a
    clear difference between N is shown but not judged; every 10 on 256 tasks, it is."""
    fig1 = synthetic_sweep("convex", ["constant"], CONVEX_GRID, saturating, cost=lambda n: 0.1)
    grad = lambda n, i: n / i  # noqa: E731  (larger N: larger gradient, so slower)
    dense = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1, gradient=grad)
    sparse = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1, gradient=grad,
                             gradient_every=every, gradient_tasks=tasks)  # fmt: skip
    judged = claim_rows(reproduction.render(fig1, dense, ["x"]), claims.NONCONVEX_PER_ITERATION)[0]
    assert "min ‖∇L_meta‖²" in judged and "**agrees**" in judged
    shown = claim_rows(reproduction.render(fig1, sparse, ["x"]), claims.NONCONVEX_PER_ITERATION)[0]
    assert "**inconclusive**" in shown and f"evaluated every {every} iterations on {tasks} tasks" in shown


def test_per_iteration_claims_are_not_judged_where_some_n_did_not_learn():
    """Larger N stuck at chance (ln 10 = 2.30) converge 'more slowly' only in the sense that they never
    learned: the per-iteration verdicts must say so, not agree."""
    fig1 = synthetic_sweep("convex", ["constant"], CONVEX_GRID, saturating, cost=lambda n: 0.1)
    stuck = lambda n, i: 2.4 if n >= 10 else slower_with_n(n, i)  # noqa: E731
    fig2 = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, stuck, lambda n: 0.1, gradient=lambda n, i: n / i)
    rows = claim_rows(reproduction.render(fig1, fig2, ["x"]), claims.NONCONVEX_PER_ITERATION)
    assert len(rows) == 2 and all("**inconclusive**" in row and "N=[10, 30]" in row for row in rows)


def test_meta_test_accuracy_table_per_geometry_design_and_n():
    fig1 = synthetic_sweep(
        "convex",
        ["constant"],
        CONVEX_GRID,
        saturating,
        lambda n: 0.1,
        accuracy=lambda n, s: 0.40 + 0.01 * n + 0.002 * s,
    )
    fig2 = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1)
    text = reproduction.render(fig1, fig2, ["x"])
    row = next(line for line in text.splitlines() if line.startswith("| convex | fixed α = 0.1 | 7 |"))
    assert row.split("|")[4].strip().startswith("47.2 [")  # mean of 47.0, 47.2, 47.4 with its interval
    assert "3 × 300" in row and "nonconvex | fixed" not in text.split("## Meta-test accuracy")[1].split("##")[0]
    assert "--checkpoint last" in text  # the command that measured it


def search(constant_diverged, inverse_diverged, dataset="embedded_hard", constant_stalled=None):
    """A divergence search at N = 30: base alphas -> which seeds diverged, per schedule; with
    `constant_stalled`, base alphas -> seeds of constant alpha that end above chance (1.8 > ln 5)
    without blowing up."""
    rows = []
    for schedule, diverged in (("constant", constant_diverged), ("inverse_n", inverse_diverged)):
        for base in (0.1, 0.2, 0.4, 0.8):
            for seed in range(3):
                stop = seed < diverged.get(base, 0)
                stalled = schedule == "constant" and not stop and seed < (constant_stalled or {}).get(base, 0)
                rows.append(dict(dataset=dataset, geometry="nonconvex", N=30, alpha_schedule=schedule, alpha_base=base,
                                 seed=seed, diverged=stop, last_iteration=5 if stop else 60, iterations=60, ways=5,
                                 final_loss=2.5 if stop else (1.8 if stalled else 1.0),
                                 wall_time_s=30.0))  # fmt: skip
    curvature = pd.DataFrame({"geometry": ["nonconvex"] * 4, "L": [4.0, 5.0, 5.0, 6.0], "mu": [0.0] * 4})
    config = dict(dataset=dataset, init="authors", points=1, train_iterations=0, B=16, N=[1])
    return divergence.Search(pd.DataFrame(rows), curvature, config)


def test_divergence_search_judges_stability_either_way():
    stable = search({0.4: 3, 0.8: 3}, {})
    verdicts = {j.claim.key: j.verdict for j, _ in stable.judgements()}
    assert verdicts == {"divergence-at-30": Verdict.INCONCLUSIVE, "inverse-n-stepsize": Verdict.AGREES}
    section = "\n".join(stable.section())
    assert "smallest base α at which most constant-α runs diverged is 0.4, α·L = 2" in section  # 0.4 × median L 5
    assert (
        "| 0.4 | 0.4 | 2 [1.9, 2.1] | 3/3 (first stop: it. 5) | 2.5 [2.5–2.5] |" in section and "ln 5 = 1.61" in section
    )
    assert "anil smoothness --dataset embedded_hard --curvature-only" in "\n".join(stable.commands())
    unstable = search({0.4: 3, 0.8: 3}, {0.4: 3, 0.8: 3})
    assert {j.claim.key: j.verdict for j, _ in unstable.judgements()}["inverse-n-stepsize"] is Verdict.DISAGREES
    on_fc100 = search({0.1: 3, 0.4: 3}, {}, dataset="fc100")
    assert {j.claim.key: j.verdict for j, _ in on_fc100.judgements()}["divergence-at-30"] is Verdict.AGREES
    calm = search({}, {}, dataset="fc100")
    verdicts = {j.claim.key: j.verdict for j, _ in calm.judgements()}
    assert verdicts == {"divergence-at-30": Verdict.DISAGREES, "inverse-n-stepsize": Verdict.INCONCLUSIVE}
    assert "No base α of the grid" in "\n".join(calm.section()) and "the grid should go higher" in "\n".join(
        calm.section()
    )
    assert "stopped learning): constant α: none; α/N: none." in section  # blown-up runs are not "stalled"
    stalled = "\n".join(search({}, {}, constant_stalled={0.4: 3, 0.8: 2}).section())
    assert "stopped learning): constant α: base α=0.4: 3/3, base α=0.8: 2/3; α/N: none." in stalled
    assert "the grid should go higher" in stalled  # the largest alpha stalled only 2 of 3 runs
    collapsing = search({}, {}, constant_stalled={0.4: 3, 0.8: 3})
    by_quantity = {quantity.split(" at ")[0]: j.verdict for j, quantity in collapsing.judgements()[1:]}
    # nothing blew up, so on divergence alone there is nothing to restore; counting a collapse to
    # chance as a failure, alpha/N (which never collapsed) restores what constant alpha lost
    assert by_quantity == {"diverged runs": Verdict.INCONCLUSIVE, "failed runs": Verdict.AGREES}
    collapsed = "\n".join(collapsing.section())
    assert "At the largest, 0.8" in collapsed and "makes training collapse, not diverge" in collapsed


def test_the_report_judges_stability_on_the_search_when_there_is_one():
    fig1 = synthetic_sweep("convex", ["constant"], CONVEX_GRID, saturating, cost=lambda n: 0.1)
    fig2 = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1)
    text = reproduction.render(fig1, fig2, ["x"], provenance.Others(search({0.4: 3, 0.8: 3}, {})))
    rows = claim_rows(text, claims.INVERSE_N)  # on blow-ups, and on failed runs (blown up or collapsed)
    assert len(rows) == 2 and all("**agrees**" in row and "base α=0.4: 3/3" in row for row in rows)
    assert "## Divergence at N = 30" in text


def test_collect_reads_a_real_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["experiment=fig1_embedded", "dataset=procedural", "N=1,2", "seed=0", "iterations=3", "eval_every=0",
            "eval_tasks=4", "B=2", "device=cpu", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    result = anil("train", "-m", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = job_rows.collect(sweep, "fig1", tmp_path / "data", tmp_path / "figures")
    seeds, jobs = sweeps.read(tmp_path / "data", "fig1").seeds, sweeps.read(tmp_path / "data", "fig1").jobs
    assert sorted(jobs["N"]) == [1, 2] and (jobs["status"] == "completed").all() and (jobs["device"] == "cpu").all()
    assert len(seeds) == 2 * 3 and set(seeds["iteration"]) == {1, 2, 3}
    assert (seeds.loc[seeds["N"] == 2, "second_order_w"] == 2 * 2).all()  # the counters travel (B = 2, N = 2)
    for n in (1, 2):
        metrics = pd.read_csv(next(sweep.glob(f"*N={n},*")) / "metrics.csv")
        assert seeds.loc[seeds["N"] == n, "loss"].tolist() == pytest.approx(metrics["loss"].tolist(), rel=1e-6)
        assert seeds.loc[seeds["N"] == n, "clock"].tolist() == pytest.approx(metrics["clock"].tolist(), abs=1e-3)
    assert sweeps.read(tmp_path / "data", "fig1").timing.trusted  # the jobs ran one after another
    assert (tmp_path / "figures" / "procedural_convex.png").stat().st_size > 10_000 and len(written) == 4
    assert jobs["test_accuracy"].isna().all()  # nobody ran anil eval yet
    variant = job_rows.collect(sweep, reproduction.INIT_VARIANTS["fig1"], tmp_path / "data", None)  # no figures drawn
    assert [p.name for p in variant] == ["fig1-init-seeds.csv", "fig1-init-jobs.csv"]


def test_collect_reads_meta_test_accuracy_and_a_divergence_search(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["experiment=divergence_embedded_hard", "dataset=procedural", "N=3", "alpha=0.1,50", "seed=0",
            "alpha_schedule=constant", "iterations=3", "eval_tasks=4", "B=2", "device=cpu", "blowup_loss=3",
            f"hydra.sweep.dir={sweep}"]  # fmt: skip
    result = anil("train", "-m", *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    first = next(sweep.glob("*alpha=0.1,*"))
    result = anil("eval", str(first), "--tasks", "8", "--checkpoint", "last", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    curvature = tmp_path / "curvature"
    curvature.mkdir()
    measured = {"geometry": ["nonconvex"] * 2, "iteration": 0, "task": [0, 1], "mu": 0.0, "L": [2.0, 4.0],
                "alpha_mu": 0.0, "alpha_L": [0.2, 0.4], "lanczos_steps": 10}  # fmt: skip
    pd.DataFrame(measured).to_csv(curvature / "curvature.csv")
    (curvature / "config.json").write_text(json.dumps(dict(dataset="procedural", init="authors", points=1,
                                                           train_iterations=0, B=2, N=[1])))  # fmt: skip
    data = tmp_path / "data"
    divergence.collect(sweep, curvature, data)
    found = divergence.read(data)
    assert found is not None and found.n == 3 and found.curvature_l()[0] == 3.0
    assert found.counts("constant") == {0.1: (0, 1), 50.0: (1, 1)}  # alpha = 50 blows the loss past 3
    evaluated = found.jobs.set_index("alpha_base")
    saved = json.loads((first / "eval.json").read_text())
    assert (
        evaluated.loc[0.1, "test_accuracy"] == pytest.approx(saved["accuracy"])
        and evaluated.loc[0.1, "test_tasks"] == 8
    )
    assert math.isnan(evaluated.loc[50.0, "test_accuracy"])


# --- theory ------------------------------------------------------------------------------------


def norms_table(block, shape_by_point, grid=(1, 2, 5, 10)):
    """One row per (point, N) with `block` = shape(N) at that point."""
    return pd.DataFrame(
        [{"iteration": it, "N": n, block: shape(n)} for it, shape in shape_by_point.items() for n in grid]
    )


LINEAR, QUADRATIC, SHRINKING, FLAT = (
    (lambda n: float(n)),
    (lambda n: float(n) ** 2),
    (lambda n: 1.0 / n),
    (lambda n: 1.0),
)


@pytest.mark.parametrize(
    "geometry,block,shapes,expected",
    [
        ("nonconvex", "L_ww", (LINEAR, LINEAR), Verdict.AGREES),  # within Prop. 3's c·N
        ("nonconvex", "L_ww", (QUADRATIC, QUADRATIC), Verdict.DISAGREES),  # faster than c·N
        ("nonconvex", "L_phiphi", (SHRINKING, SHRINKING), Verdict.AGREES),  # an upper bound that is not tight
        ("nonconvex", "L_ww", (QUADRATIC, SHRINKING), Verdict.INCONCLUSIVE),  # the points disagree
        ("convex", "L_ww", (SHRINKING, SHRINKING), Verdict.AGREES),
        ("convex", "L_phiphi", (FLAT, FLAT), Verdict.AGREES),
        ("convex", "L_phiphi", (QUADRATIC, QUADRATIC), Verdict.DISAGREES),  # ×100 beyond any term's growth
    ],
)
def test_smoothness_verdicts_are_read_in_the_bounds_direction(geometry, block, shapes, expected):
    verdict, said = theory.block_verdict(geometry, block, norms_table(block, dict(zip((0, 100), shapes))), 0.1)
    assert verdict is expected and "it. 0" in said and "it. 100" in said


def theory_data(gaps):
    grid = [1, 4, 16, 64]
    norms = [
        {"geometry": "nonconvex", "iteration": it, "N": n, "L_ww": n, "L_wphi": 2.0 * n, "L_phiw": 2.0 * n,
         "L_phiphi": 3.0 * n, "converged_ww": True, "iterations_ww": 5}
        for it in (0, 10) for n in (1, 10)
    ]  # fmt: skip
    curvature = [
        {"geometry": "convex", "iteration": it, "task": t, "mu": 0.01, "L": 20.0 + t, "alpha_mu": 0.001,
         "alpha_L": 1.9 + 0.1 * t, "lanczos_steps": 200}
        for it in (0, 10) for t in range(4)
    ]  # fmt: skip
    return {
        "checks": {
            "proposition_1": {"alpha": 0.3, "lam": 0.05, "rows": [
                {"geometry": "convex", "N": 1, "first_order": False, "relative_error": 3e-15, "sigma_share": 0.5}]},
            "convex_limit": {"alpha": 0.02, "lam": 2.0, "rows": [
                {"N": n, "gap": g, "bound_shape": 0.96**n} for n, g in zip(grid, gaps)]},
            "date": "2026-01-01", "torch": "2.13.0", "wall_s": 1.0,
        },
        "smoothness": {
            "config": {"dataset": "procedural", "N": [1, 10], "points": 2, "train_iterations": 10, "tolerance": 0.001,
                       "max_iterations": 100, "B": 4, "alpha": 0.1, "lam": 0.01, "out": "x", "trajectory_N": 2,
                       "wall_s": 60.0, "torch": "2.13.0", "threads": 2, "date": "2026-01-01"},
            "norms": norms,
            "curvature": curvature,
        },
    }  # fmt: skip


def test_theory_report_reads_its_numbers_and_judges_the_limit():
    text = theory.render(theory_data([0.9**n for n in (1, 4, 16, 64)]), "theory.json")
    assert "3.0e-15" in text and "below the 1e-10" in text and "geometric" in text
    assert "0.01 [0.01, 0.01]" in text  # mu, as measured
    assert "| convex | 0 | 0.01 [0.01, 0.01] | 21.5 [20, 23] |" in text and "some tasks" in text  # alpha*L straddles 2
    assert "differ by at most 0.00%" in text and "**agrees**" in text
    slow = theory.render(theory_data([0.99**n for n in (1, 4, 16, 64)]), "theory.json")
    assert "slower than the rate strong convexity guarantees: **disagrees**" in slow
    assert "init=pytorch and α = 0.1" in text  # a run recorded before init existed: PyTorch's defaults
    assert "at initialisation under each" not in text


def test_theory_report_compares_alpha_L_at_initialisation_across_inits():
    data = theory_data([0.9**n for n in (1, 4, 16, 64)])
    config = {**data["smoothness"]["config"], "curvature_only": True, "seed": 0}
    data["init_curvature"] = [
        {"config": {**config, "init": init},
         "curvature": [{"geometry": "convex", "iteration": 0, "task": t, "mu": 0.01, "L": big + t,
                        "alpha_L": 0.1 * (big + t)} for t in range(4)]}
        for init, big in (("pytorch", 19.0), ("authors", 6.0))
    ]  # fmt: skip
    text = theory.render(data, "theory.json")
    assert "| pytorch | convex | 4 | 0.01 | 20.5 | 2.050 [1.975, 2.125] | 25% |" in text
    assert "| authors | convex | 4 | 0.01 | 7.5 | 0.750 [0.675, 0.825] | 100% |" in text


# --- complexity and performance ----------------------------------------------------------------


def complexity_row(geometry, n, anil_s, maml_s):
    n_w, n_phi = 1285, 111_680
    entries = ((n + 1) * n_w + n_phi) / ((n + 1) * (n_w + n_phi))
    counts = {"grad_evals_w": 8 * (n + 1), "grad_evals_phi": 8, "second_order_w": 8 * n, "second_order_phi": 8 * n}
    return {
        "geometry": geometry, "N": n, "B": 8, "n_w": n_w, "n_phi": n_phi, "anil_s": anil_s, "anil_per_task_s": anil_s,
        "maml_s": maml_s, "anil_bytes": 2**20, "maml_bytes": 2**21, "anil_per_task_bytes": 2**20,
        "time_ratio": anil_s / maml_s, "time_ratio_per_task": anil_s / maml_s, "memory_ratio": 0.5,
        "grad_entries_ratio": entries, "table2_grad_factor": (n * n_w + n_phi) / (n * (n_w + n_phi)),
        "table2_second_order_factor": n_w / (n_w + n_phi), **{f"anil_{k}": v for k, v in counts.items()},
        **{f"maml_{k}": v for k, v in counts.items()},
    }  # fmt: skip


COMPLEXITY_META = {"machine": "x86_64", "device_name": "x86_64", "device": "cpu", "threads": 2, "torch": "2.13.0",
                   "date": "2026-01-01", "wall_s": 10.0, "side": 32, "channels": 3, "dataset": "fc100", "ways": 5,
                   "shots": 5, "query": 5,
                   "alpha": 0.1, "lam": 0.01, "repeats": 3, "command": "scripts/complexity.py"}  # fmt: skip


def test_complexity_report_says_which_way_the_ratio_moves():
    falling = [complexity_row("convex", 1, 0.4, 0.9), complexity_row("convex", 10, 0.4, 7.5)]
    text = complexity.render({"meta": COMPLEXITY_META, "rows": falling}, "complexity.json")
    assert "same direction" in text and "follow ((N+1) n_w + n_phi)" in text and "0.053" in text
    rising = [complexity_row("convex", 1, 0.4, 0.9), complexity_row("convex", 10, 8.0, 7.5)]
    assert "**opposite direction**" in complexity.render({"meta": COMPLEXITY_META, "rows": rising}, "c.json")


def bench_row(n, engine, reference, floor, memory):
    return {"dataset": "fc100", "B": 32, "geometry": "convex", "N": n, "order": "second", "engine_s": engine,
            "reference_s": reference, "floor_s": floor, "engine_over_floor": engine / floor,
            "reference_over_engine": reference / engine, "memory_bytes": memory}  # fmt: skip


def test_performance_report_tables_and_targets(tmp_path):
    rows = [bench_row(1, 1.0, 1.1, 1.0, 100), bench_row(7, 1.5, 1.6, 1.0, 100), bench_row(30, 1.2, 2.0, 1.0, 300)]
    data = {"machine": "x86_64 CPU, 2 threads", "torch": "2.13.0", "device": "cpu", "repeats": 10, "date": "2026-01-01",
            "command": "scripts/bench.py", "operator_calls": {"4": 100, "32": 100}, "rows": rows,
            "breakdown_s": {"body forward": 0.5, "backward": 0.5}, "engine_s_by_B": {"4": 0.2, "32": 1.5}}  # fmt: skip
    (tmp_path / "docs" / "data").mkdir(parents=True)
    (tmp_path / "docs" / "data" / "performance-cpu.json").write_text(json.dumps(data))
    text = performance.write(tmp_path / "docs" / "data", tmp_path / "docs" / "performance.md").read_text()
    assert "| fc100 | 32 | convex | 7 | second | 1.500 | 1.600 | 1.000 | 1.500 | 1.07 | 0.0 |" in text
    assert "engine/floor at N=7 (convex, FC100) <= 1.1 | 1.500 | **no**" in text  # a target can fail
    assert "memory at N=30 within 10% of N=1 (convex) | 3.000 | **no**" in text
    assert "## GPU (CUDA)\n\nNot measured: there is no `docs/data/gpu-check.json`" in text
    assert "FLOP-limit" not in text  # an old benchmark without the limit and the baseline


def test_performance_report_against_the_compute_limit_and_the_external_baseline(tmp_path):
    rows = [bench_row(1, 1.0, 1.1, 1.0, 100), bench_row(7, 1.5, 1.6, 1.0, 100)]
    for row, l2l in zip(rows, (1.4, 1.6)):
        row.update(flop_limit_s=0.5, engine_over_flop_limit=row["engine_s"] / 0.5, l2l_style_s=l2l,
                   l2l_style_over_engine=l2l / row["engine_s"])  # fmt: skip
    data = {"machine": "x86_64 CPU, 2 threads", "torch": "2.13.0", "device": "cpu", "repeats": 10, "date": "2026-01-01",
            "command": "scripts/bench.py", "operator_calls": {"4": 100, "32": 100}, "rows": rows,
            "peak_flops": 2.5e11, "peak_kernel": "conv 2 forward", "peak_method": "the fastest of the kernels",
            "breakdown_s": {"body forward": 0.5, "backward": 0.5},
            "operator_time_s": {"convolution": 1.0, "max-pool": 0.5, "other": 0.5}, "conv_flops": 1e11,
            "batch_norm_cost_s": {"accurate": 1.1, "pytorch": 1.0},
            "engine_s_by_B": {"4": 0.2, "32": 1.5}}  # fmt: skip
    (tmp_path / "docs" / "data").mkdir(parents=True)
    (tmp_path / "docs" / "data" / "performance-cpu.json").write_text(json.dumps(data))
    text = performance.write(tmp_path / "docs" / "data", tmp_path / "docs" / "performance.md").read_text()
    assert "the peak is 250 GFLOP/s, reached by conv 2 forward in this run: the fastest of the kernels" in text
    assert "1.100 s per iteration with the accurate statistics the engine uses, 1.000 s with PyTorch's" in text
    assert "| max-pool | 0.500 | 25% |" in text and "convolutions ran at 100 GFLOP/s, 40% of the peak" in text
    assert "| fc100 | convex | 7 | 1.500 | 0.500 | 3.00 | 1.600 | 1.07 |" in text
    assert "learn2learn-style / engine at N=1 (convex, FC100) >= 2.0 | 1.400 | **no**" in text
    assert "learn2learn-style / engine at N=7 (convex, FC100) >= 2.0 | 1.067 | **no**" in text
    assert "engine / FLOP limit at N=7 (convex, FC100) <= 2.0 | 3.000 | **no**" in text
    assert "## CPU, body in bfloat16" not in text  # no bf16 benchmark: no section
    # the bf16 rerun: its own section, with its own ratios and targets
    for row in rows:
        row.update(engine_s=row["engine_s"] / 2, engine_over_flop_limit=row["engine_s"] / 2 / 0.5,
                   l2l_style_over_engine=2 * row["l2l_style_over_engine"])  # fmt: skip
    bf16 = {**data, "rows": rows, "command": "scripts/bench.py --bf16", "variant": {"bf16": True}}
    (tmp_path / "docs" / "data" / "performance-cpu-bf16.json").write_text(json.dumps(bf16))
    text = performance.write(tmp_path / "docs" / "data", tmp_path / "docs" / "performance.md").read_text()
    section = text.split("## CPU, body in bfloat16 (`bf16=true`)")[1].split("## GPU")[0]
    assert (
        "`scripts/bench.py --bf16`" in section
        and "| fc100 | convex | 7 | 0.750 | 0.500 | 1.50 | 1.600 | 2.13 |" in section
    )
    assert "engine / FLOP limit at N=7 (convex, FC100) <= 2.0 | 1.500 | yes" in section
    assert "learn2learn-style / engine at N=1 (convex, FC100) >= 2.0 | 2.800 | yes" in section  # a target is met
    assert "performance-cpu-bf16.json" in text.split("\n")[2]  # named as a source


def test_performance_report_renders_the_device_check(tmp_path):
    """The GPU section comes from gpu_check.json: parts, benchmark, variants, launches, sweep costs."""
    rows = [bench_row(1, 1.0, 1.1, 1.0, 100), bench_row(7, 1.5, 1.6, 1.0, 100)]
    bench = {"machine": "NVIDIA H200", "torch": "2.11.0", "device": "cuda", "repeats": 10, "date": "2026-01-01",
             "command": "scripts/bench.py --device cuda", "operator_calls": {"4": 100, "32": 100}, "rows": rows,
             "breakdown_s": {"body forward": 0.5, "backward": 0.5}, "engine_s_by_B": {"4": 0.2, "32": 1.5},
             "launches": [{"N": 7, "B": 32, "aten_calls": 900, "kernel_launches": 700}]}  # fmt: skip
    graphs = {
        **bench,
        "rows": [bench_row(7, 0.5, 1.6, 1.0, 100)],
        "launches": [{"N": 7, "B": 32, "aten_calls": 900, "kernel_launches": 700, "graphed_kernel_launches": 1}],
    }
    jobs = [{"geometry": "nonconvex", "engine": engine, "N": 5, "status": "completed", "seconds_per_iteration": s}
            for engine, s in (("batched", 0.01), ("per_task", 0.04))]  # fmt: skip
    part = {"status": "ok", "returncode": 0, "wall_s": 10.0, "box_s": 60}
    check = {
        "environment": {"device": "NVIDIA H200", "torch": "2.11.0", "cuda": "13.0", "date": "2026-12-01",
                        "python": "3.12.3", "machine": "x86_64, 16 CPUs", "dry_run": False},
        "parts": {"gpu_tests": {**part, "result": {"tests": 9, "failures": 1, "errors": 0, "skipped": 0,
                                                   "failed": ["tests.test_gpu::test_x"]}},
                  "bench": {**part, "result": bench}, "bench_graphs": {**part, "result": graphs},
                  "bench_bf16": {**part, "status": "timed out", "result": None},
                  "sweeps": {**part, "result": jobs},
                  "unit_prices": {**part, "result": {"unit_costs": {"fc100": {"convex": {"grad_w": 2e-5}}}}}},
    }  # fmt: skip
    data = tmp_path / "docs" / "data"
    data.mkdir(parents=True)
    (data / "gpu-check.json").write_text(json.dumps(check))
    text = performance.write(data, tmp_path / "docs" / "performance.md").read_text()
    assert "## GPU (CUDA)\n" in text and "rehearsal" not in text
    assert "| bench_bf16 | timed out | 10 | 60 |" in text
    assert "gpu_tests: 9 tests, 1 failed (`tests.test_gpu::test_x`)" in text
    assert "| CUDA graphs | fc100 | convex | 7 | second | 1.5000 | 0.5000 | 3.00 | 0.0 |" in text
    assert "| 7 | 32 | 900 | 700 | 1 |" in text
    assert "| nonconvex | 5 | 0.0100 | 0.0400 | 4.00 |" in text
    assert "| fc100 | convex | grad_w | 20.0 |" in text  # the unit prices on the device
    check["environment"]["dry_run"] = True
    (data / "gpu-check.json").write_text(json.dumps(check))
    assert "rehearsal only" in performance.write(data, tmp_path / "docs" / "performance.md").read_text()


# --- the committed documents -------------------------------------------------------------------


@pytest.mark.parametrize("doc", ["reproduction", "theory", "complexity", "performance"])
def test_committed_documents_are_what_their_data_gives(doc, tmp_path):
    """`anil report DOC` on a copy of docs/ rewrites the document byte for byte."""
    docs = tmp_path / "docs"
    subprocess.run(["cp", "-r", str(REPO / "docs"), str(docs)], check=True)
    result = anil("report", doc, "--docs", str(docs))
    assert result.returncode == 0, result.stderr
    assert (docs / f"{doc}.md").read_text() == (REPO / "docs" / f"{doc}.md").read_text()


@pytest.mark.parametrize("half", [["--fig1", "a"], ["--divergence", "a"], ["--curvature", "a"]])
def test_report_refuses_half_a_pair_of_inputs(half, capsys, tmp_path):
    from anil.cli import report

    with pytest.raises(SystemExit) as stopped:
        report.main(["reproduction", "--docs", str(tmp_path), *half])
    assert stopped.value.code == 2 and "go together" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


def test_the_other_initialisation_is_judged_beside_the_main_one():
    fig1 = synthetic_sweep("convex", ["inverse_n"], CONVEX_GRID, saturating, cost=lambda n: 0.1)
    fig1.jobs["init"] = "authors"
    fig2 = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, slower_with_n, lambda n: 0.1)
    fig2.jobs["init"] = "authors"
    variant = synthetic_sweep("convex", ["inverse_n"], CONVEX_GRID, slower_with_n, cost=lambda n: 0.1)
    variant.jobs["init"] = "pytorch"
    variant2 = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, faster_with_n, lambda n: 0.1)
    variant2.jobs["init"] = "pytorch"
    text = reproduction.render(fig1, fig2, ["x"], provenance.Others(inits={"fig1": variant, "fig2": variant2}))
    for figure, claim in (("Figure 1", claims.CONVEX_PER_ITERATION), ("Figure 2", claims.NONCONVEX_PER_ITERATION)):
        section = text.split(f"## {figure} under the other initialisation (init=pytorch)")[1].split("\n## ")[0]
        row = next(line for line in claim_rows(section, claim) if "training loss at iteration 120" in line)
        assert "**disagrees** | agrees | **changes** |" in row  # the paper's shape under authors, not under pytorch
    assert "alpha_design=fixed_alpha_n init=pytorch hydra.sweep.dir=outputs/sweeps/fig1_embedded_init_pytorch" in text
    assert "alpha_design=fixed_alpha init=pytorch hydra.sweep.dir=outputs/sweeps/fig2_embedded_init_pytorch" in text
    assert "--fig1-init outputs/sweeps/fig1_embedded_init_pytorch --fig2-init" in text
    same = reproduction.render(fig1, fig2, ["x"], provenance.Others(inits={"fig1": fig1}))
    assert "0 of" in same.split("## Figure 1 under the other initialisation")[1].split("|")[0]  # nothing changes
    assert "## Figure 2 under" not in same


def test_cost_claims_are_inconclusive_when_the_runs_did_not_learn():
    """Runs that stay at their starting loss all 'reach' the common target at once: whatever the
    seconds per iteration, the cost claims must not be decided on them."""
    flat = lambda n, i: 1.6  # noqa: E731
    fig1 = synthetic_sweep("convex", ["constant"], CONVEX_GRID, flat, lambda n: 0.1 * n)
    fig2 = synthetic_sweep("nonconvex", ["constant"], NONCONVEX_GRID, flat, lambda n: 0.1 * n)
    text = reproduction.render(fig1, fig2, ["x"])
    for claim in (claims.CONVEX_COMPLEXITY, claims.NONCONVEX_COMPLEXITY):
        rows = claim_rows(text, claim)
        assert rows and all("**inconclusive**" in row and "says nothing about meta-training" in row for row in rows)
    # starting above chance and falling only to it (ln 10 = 2.303) is not learning either
    to_chance = lambda n, i: max(2.303, 2.6 - 0.01 * i / n)  # noqa: E731
    fig1 = synthetic_sweep("convex", ["constant"], CONVEX_GRID, to_chance, lambda n: 0.1 * n)
    rows = claim_rows(reproduction.render(fig1, fig2, ["x"]), claims.CONVEX_COMPLEXITY)
    assert rows and all("**inconclusive**" in row and "chance (2.3)" in row for row in rows)


def test_long_runs_say_whether_a_per_iteration_verdict_holds_where_the_curves_flatten():
    """At iteration 150 a larger N is ahead (the nonconvex claim disagrees); by 1,000 it has fallen
    behind and flattened (it agrees): the section must say the verdict changes. Runs not finished
    are not judged."""
    from anil.analysis.reports import long

    def loss(n, i):
        return 1.0 + 0.5 * np.exp(-i / 100) if n == 1 else 1.0 + 0.5 * np.exp(-i / 30) + 0.3 * i / 1000

    runs = synthetic_sweep("nonconvex", ["constant"], [1, 20], loss, lambda n: 0.1, iterations=1000,
                           gradient=lambda n, i: 1.0)  # fmt: skip
    text = "\n".join(long.section({"fig2": runs}, 150))
    assert "| log10 training loss at iteration 150 | **disagrees** | log10 training loss at iteration 1000 |" in text
    assert "**agrees** | **changes** |" in text
    assert "| 20 | 3 | 1.31 |" in text  # N, finished runs, the median final smoothed loss (seed 1 of 0-2: x1.01)
    unfinished = sweeps.Sweep(runs.seeds, runs.jobs.assign(status=np.where(runs.jobs["N"] == 20, None, "completed")))
    assert "Pending: finished runs per N {1: 3}, of N = [1, 20] so far." in "\n".join(
        long.section({"fig2": unfinished}, 150)
    )


def test_the_dress_rehearsal_section_states_what_it_measured_and_at_what_size():
    from anil.analysis.reports import rehearsal

    data = {
        "meta": {"per_class": 60, "command": "python -m scripts.dress_rehearsal --scale 0.1", "date": "d", "cpus": 2},
        "decode": [dict(dataset="fc100", format="cifar", images=6000, source_bytes=18e6, first_decode_s=1.5,
                        later_start_s=0.02, cache_bytes=17e6)],
        "curvature": [dict(dataset="fc100", geometry="convex", mu=0.01, L=30.0, alpha_L=3.0, tasks=16)],
        "experiments": [
            {"experiment": "fig1_fc100", "B": 32, "iterations": 1000, "jobs": 35, "projected_training_s": 7200.0,
             "rows": [{"N": 1, "exit": 0, "peak_bytes": 2 * 2**30, "seconds_per_iteration": 1.4, "loss": 1.5}]},
            {"experiment": "fig2_miniimagenet", "B": 32, "iterations": 2000, "jobs": 50, "projected_training_s": None,
             "rows": [{"N": 1, "exit": 0, "peak_bytes": 9 * 2**30, "seconds_per_iteration": 9.0, "loss": 18.8,
                       "task_chunk": 12, "refused": "a meta-iteration needs about 22 GiB"}]},
        ],
    }  # fmt: skip
    text = "\n".join(rehearsal.section(data, "dress-rehearsal.json"))
    assert (
        "at 60 images per class of the real 600" in text and "| fc100 | cifar | 6,000 | 18 | 1.5 | 0.02 | 17 |" in text
    )
    assert "(35 jobs × 1000 iterations) would train for about 2.0 h" in text
    assert "| 1 | 9.00 | 9.0 | 18.8 | refused at B = 32; ran with task_chunk=12 |" in text
    assert "no projection: not every N ran" in text
    assert "fc100 convex: μ = 0.01, L = 30, α·L = 3" in text


def test_collecting_a_running_sweep_keeps_jobs_of_earlier_sessions(tmp_path):
    """Long runs span sessions on fresh checkouts: a job collected before and absent now is kept,
    one present in both is replaced by its newer rows."""
    args = ["experiment=smoke", "iterations=2", "eval_every=1", "eval_tasks=4", "B=2", "device=cpu"]
    for folder, seed in (("first", 0), ("second", 1)):
        run_dir = tmp_path / folder / f"N1_seed{seed}"
        assert anil("train", *args, f"seed={seed}", f"hydra.run.dir={run_dir}").returncode == 0
    data = tmp_path / "data"
    job_rows.collect(tmp_path / "first", "long-fig1", data, None, running=True)
    job_rows.collect(tmp_path / "second", "long-fig1", data, None, running=True)
    job_rows.collect(tmp_path / "second", "long-fig1", data, None, running=True)  # again: no duplicates
    collected = sweeps.read(data, "long-fig1")
    assert sorted(collected.jobs["job"]) == ["N1_seed0", "N1_seed1"]
    assert collected.seeds.groupby("job").size().to_dict() == {"N1_seed0": 2, "N1_seed1": 2}


def tuning_sweep(score, alphas=(0.03, 0.1, 0.3), betas=(0.0003, 0.001, 0.003)):
    """A tuning grid whose runs end at loss score(algorithm, alpha, beta) (None: diverged)."""
    seeds, jobs = [], []
    for algorithm in ("anil", "maml"):
        for alpha in alphas:
            for beta in betas:
                job = f"algorithm={algorithm},alpha={alpha},optim.beta_w={beta}"
                final = score(algorithm, alpha, beta)
                for i in range(1, 31):
                    loss = math.inf if final is None and i > 20 else (final or 1.0) + 1.0 / i
                    seeds.append(dict(job=job, iteration=i, loss=loss))
                jobs.append(dict(job=job, algorithm=algorithm, alpha=alpha, beta_w=beta, beta_phi=beta,
                                 diverged=final is None, N=5, seed=100, iterations=30, dataset="d",
                                 wall_time_s=60.0, status="diverged" if final is None else "completed"))  # fmt: skip
    return sweeps.Sweep(pd.DataFrame(seeds), pd.DataFrame(jobs))


def test_each_algorithm_gets_its_own_tuned_stepsizes_and_the_document_says_if_the_judged_runs_used_them():
    from anil.analysis.reports import tuning

    def score(algorithm, alpha, beta):
        if algorithm == "maml" and alpha == 0.3:
            return None  # diverges: never chosen, however low its loss went first
        best = (0.1, 0.001) if algorithm == "anil" else (0.03, 0.003)
        return 0.5 if (alpha, beta) == best else 1.0 + alpha + beta

    grid = tuning_sweep(score)
    rows = tuning.ranked(grid)
    assert tuning.choice(rows, "anil") == {"alpha": 0.1, "beta_w": 0.001, "beta_phi": 0.001}
    assert tuning.choice(rows, "maml") == {"alpha": 0.03, "beta_w": 0.003, "beta_phi": 0.003}

    def judged(alpha, beta):
        jobs = [dict(alpha_schedule="constant", N=n, alpha=alpha, beta_w=beta, beta_phi=beta) for n in (1, 5)]
        return sweeps.Sweep(pd.DataFrame(), pd.DataFrame(jobs))

    text = "\n".join(tuning.section(grid, judged(0.1, 0.001), judged(0.1, 0.001), ("fig1_d", "maml_d")))
    assert "ANIL's judged runs (`fig1_d`) ran at its chosen stepsizes" in text
    assert "**not** at its chosen stepsizes" in text and "alpha=0.03 optim.beta_w=0.003 optim.beta_phi=0.003" in text
    assert text.count("diverged") == 3 and text.count("**chosen**") == 2
    assert tuning.edges(rows, "anil") == []  # the middle of the grid
    assert "MAML's choice lies at the grid's edge (α = 0.03, the smallest tried; β = 0.003, the largest tried)" in text
    # A grid still running: an unfinished job is listed, never scored or chosen, however low its loss so far.
    grid.jobs.loc[grid.jobs["job"] == "algorithm=maml,alpha=0.1,optim.beta_w=0.001", "status"] = None
    grid.seeds.loc[grid.seeds["job"] == "algorithm=maml,alpha=0.1,optim.beta_w=0.001", "loss"] = 0.01
    rows = tuning.ranked(grid)
    assert tuning.choice(rows, "maml") == {"alpha": 0.03, "beta_w": 0.003, "beta_phi": 0.003}
    text = "\n".join(tuning.section(grid, judged(0.1, 0.001), judged(0.1, 0.001), ("fig1_d", "maml_d")))
    assert "not finished" in text and "so far: 17 of the jobs listed finished" in text


def test_the_grid_grows_past_an_edge_the_choice_lies_on_until_the_choice_lies_inside():
    """MAML's best is at the smallest α and the largest β: one step past each, along that stepsize
    with the other held; a worse setting past the edge closes it, a better one moves the edge on."""
    from anil.analysis.reports import tuning

    def score(algorithm, alpha, beta, best=(0.03, 0.003)):
        return 0.5 if (algorithm, alpha, beta) == ("maml", *best) else 1.0 + alpha + beta

    grid = tuning_sweep(score)
    rows = tuning.ranked(grid)
    assert tuning.beyond(rows, "anil") == [(0.01, 0.0003), (0.03, 0.0001)]  # its best (1 + α + β): the smallest
    assert tuning.beyond(rows, "maml") == [(0.01, 0.003), (0.03, 0.01)]
    inside = tuning.ranked(tuning_sweep(lambda a, alpha, beta: 0.5 if (alpha, beta) == (0.1, 0.001) else 1.0))
    assert tuning.beyond(inside, "maml") == []

    def grown(extra, loss):  # the grid with MAML's (α, β) in `extra` run to `loss`
        seeds = pd.DataFrame([dict(job=f"x{k}", iteration=i, loss=loss) for k in range(len(extra)) for i in (1, 2)])
        jobs = pd.DataFrame([dict(grid.jobs.iloc[-1], job=f"x{k}", alpha=a, beta_w=b, beta_phi=b)
                             for k, (a, b) in enumerate(extra)])  # fmt: skip
        return tuning.ranked(sweeps.Sweep(pd.concat([grid.seeds, seeds]), pd.concat([grid.jobs, jobs])))

    worse = grown([(0.01, 0.003), (0.03, 0.01)], 2.0)
    assert tuning.beyond(worse, "maml") == [] and tuning.edges(worse, "maml") == []
    better = grown([(0.01, 0.003)], 0.1)
    assert tuning.choice(better, "maml")["alpha"] == 0.01 and tuning.beyond(better, "maml") == [
        (0.003, 0.003),
        (0.01, 0.01),
    ]


def test_tuned_gives_an_algorithm_its_choice_only_once_its_part_of_the_grid_has_finished(tmp_path, monkeypatch, capsys):
    """scripts/tuned.py: the grid is the tuning experiment's own sweep; ANIL, all finished, gets its
    overrides while MAML, one job still running, is refused with one line."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tuned", REPO / "scripts" / "tuned.py")
    tuned = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tuned)
    monkeypatch.setattr("sys.argv", ["tuned.py", "--grid"])
    assert tuned.main() == 0
    pairs = [tuple(float(v) for v in line.split()) for line in capsys.readouterr().out.split("\n") if line]
    alphas, betas = sorted({a for a, _ in pairs}), sorted({b for _, b in pairs})
    assert len(pairs) == len(alphas) * len(betas) >= 9
    best = (alphas[1], betas[-1])
    grid = tuning_sweep(lambda algorithm, a, b: 0.5 if (a, b) == best else 1.0 + a, alphas, betas)
    grid.jobs.loc[grid.jobs["job"] == f"algorithm=maml,alpha={alphas[0]},optim.beta_w={betas[0]}", "status"] = None
    grid.seeds.to_csv(tmp_path / "maml-tuning-seeds.csv", index=False)
    grid.jobs.to_csv(tmp_path / "maml-tuning-jobs.csv", index=False)
    monkeypatch.setattr("sys.argv", ["tuned.py", "anil", "--data", str(tmp_path)])
    assert tuned.main() == 0
    assert capsys.readouterr().out.strip() == f"alpha={best[0]:g} optim.beta_w={best[1]:g} optim.beta_phi={best[1]:g}"
    monkeypatch.setattr("sys.argv", ["tuned.py", "maml", "--data", str(tmp_path)])
    assert tuned.main() == 1
    said = capsys.readouterr().err.strip()
    assert (
        said == f"tuned.py: {len(pairs) - 1} of the {len(pairs)} maml tuning jobs have finished: run "
        "scripts/tuning_runs.sh to the end and collect it again"
    )
