#!/usr/bin/env bash
# The fixed-alpha half of Figures 1 and 2 on the hard embedded dataset run to 1,000 meta-iterations
# (3 seeds; the figure sweeps stop at 150 while their curves still fall), so that the reproduction
# can say whether each per-iteration verdict holds where the curves flatten. Resumable, in parts:
# run it again and it skips finished jobs and resumes stopped ones.
#   bash scripts/long_runs.sh BIN OUT FIGURE    (BIN: the folder with the anil command; OUT: where
#   the jobs go, OUT/FIGURE/N<N>_seed<seed>; FIGURE: fig1 or fig2; about 2 h of job time per figure)
# The two figures may run side by side (one each per core): these runs are judged per iteration,
# and the reports mark their time axis as shared (anil/analysis/overlap.py).
set -euo pipefail
bin=$1
out=$2
figure=$3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per job, as the figure sweeps ran
source "$(dirname "$0")/job.sh"
collected="$(dirname "$0")/../docs/data/reproduction/long-$figure-jobs.csv"
for n in 1 20 5 10; do  # the ends of the grid first: the per-iteration rules compare them
    for seed in 0 1 2; do
        job "$bin" "$out/$figure/N${n}_seed${seed}" "$collected" "N${n}_seed${seed}" \
            experiment="${figure}_embedded_hard" alpha_design=fixed_alpha N="$n" seed="$seed" \
            iterations=1000 eval_every=100 grad_eval_every=50 grad_eval_tasks=128 checkpoint_every=50
    done
done
