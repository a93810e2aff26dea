#!/usr/bin/env bash
# The stepsize grid of conf/experiment/maml_tuning_embedded_hard.yaml (ANIL and MAML, alpha x beta,
# N = 5, seed 100), one job at a time and resumable: run it again and it skips finished jobs and
# resumes stopped ones, so the grid (up to 3.3 h of job time, nearly all MAML's) can be run in parts.
#   bash scripts/tuning_runs.sh BIN OUT [ALGORITHM]    (BIN: the folder with the anil command; OUT:
#   the jobs' folder, OUT/algorithm=A,alpha=a,optim.beta_w=b; ALGORITHM: anil or maml, default both;
#   then anil report reproduction --maml-tuning OUT). Two invocations may share the grid, one per
#   core: a job the other is running is skipped; start the second with REVERSE=1 so they meet.
set -euo pipefail
bin=$1
out=$2
algorithms=${3:-anil maml}  # ANIL's part takes minutes, MAML's about 12 min a job
here=$(dirname "$0")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per job, as the judged sweeps ran
source "$here/job.sh"
collected="$here/../docs/data/reproduction/maml-tuning-jobs.csv"
grid=$("$bin/python" "$here/tuned.py" --grid)  # "alpha beta" per line, from the experiment's sweep
if [ "${REVERSE:-0}" = 1 ]; then  # a second invocation on the other core walks the grid from its end
    grid=$(tac <<< "$grid")
fi
for algorithm in $algorithms; do
    while read -r alpha beta; do
        name="algorithm=$algorithm,alpha=$alpha,optim.beta_w=$beta"
        job "$bin" "$out/$name" "$collected" "$name" experiment=maml_tuning_embedded_hard \
            algorithm="$algorithm" alpha="$alpha" optim.beta_w="$beta" seed=100 checkpoint_every=50 </dev/null
    done <<< "$grid"
done
