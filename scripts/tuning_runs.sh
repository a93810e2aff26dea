#!/usr/bin/env bash
# The stepsize grid of conf/experiment/maml_tuning_embedded_hard.yaml (ANIL and MAML, alpha x beta,
# N = 5, seed 100), one job at a time and resumable: run it again and it skips finished jobs and
# resumes stopped ones, so the grid (about 2.6 h of job time) can be run in parts.
#   bash scripts/tuning_runs.sh BIN OUT    (BIN: the folder with the anil command; OUT: the jobs'
#   folder, OUT/algorithm=A,alpha=a,optim.beta_w=b; then anil report reproduction --maml-tuning OUT)
set -euo pipefail
bin=$1
out=$2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per job, as the judged sweeps ran
source "$(dirname "$0")/job.sh"
collected="$(dirname "$0")/../docs/data/reproduction/maml-tuning-jobs.csv"
for algorithm in anil maml; do  # ANIL's twelve take minutes, MAML's about 12 min each
    for alpha in 0.03 0.1 0.3; do
        for beta in 0.0003 0.001 0.003 0.01; do
            name="algorithm=$algorithm,alpha=$alpha,optim.beta_w=$beta"
            job "$bin" "$out/$name" "$collected" "$name" experiment=maml_tuning_embedded_hard \
                algorithm="$algorithm" alpha="$alpha" optim.beta_w="$beta" seed=100 checkpoint_every=50
        done
    done
done
