#!/usr/bin/env bash
# Table 2's comparison with each algorithm at its own stepsizes: ANIL and MAML, each at what the
# tuning grid chose for it (scripts/tuned.py reads docs/data/reproduction/maml-tuning-*.csv, so run
# scripts/tuning_runs.sh and collect it first), with maml_embedded_hard's settings otherwise
# (N = 1, 5, 10; seeds 0-4). One job at a time and resumable: run it again and it skips finished
# jobs and resumes stopped ones, so the comparison can span sessions.
#   bash scripts/table2_runs.sh BIN OUT [ALGORITHM]    (BIN: the folder with the anil command; OUT: the
#   jobs go to OUT/anil/N<N>_seed<seed> and OUT/maml/N<N>_seed<seed>; ALGORITHM: anil or maml, default
#   both; then anil report reproduction --table2 OUT)
# ANIL's 15 jobs take about 15 min, MAML's about 3.2 h (an N = 10 job about 23 min). Two invocations
# may share the work, one per core: each skips a job the other is running (scripts/job.sh).
set -euo pipefail
bin=$1
out=$2
algorithms=${3:-anil maml}
here=$(dirname "$0")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}  # one thread per job, as the judged sweeps ran
source "$here/job.sh"
for algorithm in $algorithms; do
    chosen=$("$bin/python" "$here/tuned.py" "$algorithm")
    read -r -a tuned <<< "$chosen"
    mkdir -p "$out/$algorithm"
    # Jobs at other stepsizes must not mix with these: the tuned choice is written beside them.
    if [ -f "$out/$algorithm/tuned.txt" ] && [ "$(cat "$out/$algorithm/tuned.txt")" != "$chosen" ]; then
        echo "table2_runs.sh: $out/$algorithm ran at $(cat "$out/$algorithm/tuned.txt"), the tuning now chooses" \
            "$chosen: move that folder away" >&2
        exit 1
    fi
    echo "$chosen" > "$out/$algorithm/tuned.txt"
    collected="$here/../docs/data/reproduction/table2-$algorithm-jobs.csv"
    for n in 1 5 10; do
        for seed in 0 1 2 3 4; do
            job "$bin" "$out/$algorithm/N${n}_seed${seed}" "$collected" "N${n}_seed${seed}" \
                experiment=maml_embedded_hard algorithm="$algorithm" N="$n" seed="$seed" "${tuned[@]}" \
                checkpoint_every=25 </dev/null
        done
    done
done
