#!/usr/bin/env bash
# The stepsize grid of conf/experiment/maml_tuning_embedded_hard.yaml (ANIL and MAML, alpha x beta,
# N = 5, seed 100), one job at a time and resumable: run it again and it skips finished jobs and
# resumes stopped ones, so the grid (up to 3.3 h of job time, nearly all MAML's) can be run in parts.
#   bash scripts/tuning_runs.sh BIN OUT [ALGORITHM]    (BIN: the folder with the anil command; OUT:
#   the jobs' folder, OUT/algorithm=A,alpha=a,optim.beta_w=b; ALGORITHM: anil or maml, default both;
#   then anil report reproduction --maml-tuning OUT). Two invocations may share the grid, one per
#   core: a job the other is running is skipped; start the second with REVERSE=1 so they meet.
# Where an algorithm's choice lies on the grid's edge, the grid grows past it for that algorithm
# alone, one step at a time along that stepsize, until the choice lies inside.
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
run() {  # ALGORITHM, then "alpha beta" lines on stdin
    while read -r alpha beta; do
        name="algorithm=$1,alpha=$alpha,optim.beta_w=$beta"
        job "$bin" "$out/$name" "$collected" "$name" experiment=maml_tuning_embedded_hard \
            algorithm="$1" alpha="$alpha" optim.beta_w="$beta" seed=100 checkpoint_every=50 </dev/null
    done
}
for algorithm in $algorithms; do
    run "$algorithm" <<< "$grid"
    # Where the algorithm's choice lies on the grid's edge, step past it (scripts/tuned.py --beyond)
    # until the choice lies inside; stops when the grid is not all finished (another invocation's).
    for _ in 1 2 3 4 5 6; do
        "$bin/anil" report reproduction --maml-tuning "$out" >/dev/null
        past=$("$bin/python" "$here/tuned.py" "$algorithm" --beyond) || break
        [ -n "$past" ] || break
        run "$algorithm" <<< "$past"
    done
done
