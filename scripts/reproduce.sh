#!/usr/bin/env bash
# `make reproduce`: every sweep docs/reproduction.md reads, then the document.
#   bash scripts/reproduce.sh BIN OUT    (BIN: the folder with the anil command; OUT: where the sweeps go)
# Figures 1-2 on the hard embedded dataset under both stepsize designs, each figure's fixed-alpha*N
# half again under init=pytorch, test accuracy of every figure job, the N = 30 divergence search
# with the curvature at initialisation, the theorems' regime, each algorithm's stepsizes tuned and
# ANIL against MAML each at its own, the fixed-alpha half of both figures to 1,000 iterations, and the
# seconds per iteration of every configuration timed alone (docs/reproduction.md states the job time
# of each part).
# Two streams of jobs, one per core, each one job at a time with one thread (STREAMS=1: one stream):
# the Conv-4 ANIL sweeps with the long runs, and the stepsize tuning followed by Table 2's runs
# (anil/analysis/reports/provenance.py's SECOND_STREAM: the document states each stream's job time). These are judged per iteration and on counted evaluations; their own
# clocks, shared, are marked so in the document. The seconds per iteration the priced verdicts use
# are timed afterwards, alone: run nothing else then.
set -euo pipefail
bin=$1
out=$2
here=$(dirname "$0")
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
anil() { "$bin/anil" "$@"; }

conv4() {  # Figures 1-2, their init=pytorch halves, test accuracy, the N = 30 search, the theorems' regime, long runs
    anil train -m experiment=fig1_embedded_hard hydra.sweep.dir="$out/fig1_embedded_hard"
    anil train -m experiment=fig2_embedded_hard hydra.sweep.dir="$out/fig2_embedded_hard"
    for figure in fig1 fig2; do
        anil train -m experiment="${figure}_embedded_hard" alpha_design=fixed_alpha_n init=pytorch \
            hydra.sweep.dir="$out/${figure}_embedded_hard_init_pytorch"
    done
    for job in "$out"/fig*_embedded_hard/geometry=*; do
        anil eval "$job" --tasks 300 --checkpoint last
    done
    anil train -m experiment=divergence_embedded_hard hydra.sweep.dir="$out/divergence_embedded_hard"
    anil smoothness --dataset embedded_hard --curvature-only --init authors --points 1 --train-iterations 0 \
        --B 16 --N 1 --out "$out/embedded_hard_init_authors"
    for geometry in convex nonconvex; do
        anil train -m experiment="theory_${geometry}_embedded_hard" hydra.sweep.dir="$out/theory_embedded_hard/$geometry"
    done
    for figure in fig1 fig2; do
        bash "$here/long_runs.sh" "$bin" "$out/long" "$figure"
    done
}

table2() {  # each algorithm's stepsizes tuned on their own (seed 100), then ANIL and MAML each at its choice
    bash "$here/tuning_runs.sh" "$bin" "$out/maml_tuning_embedded_hard"
    anil report reproduction --maml-tuning "$out/maml_tuning_embedded_hard" >/dev/null  # scripts/tuned.py reads it
    bash "$here/table2_runs.sh" "$bin" "$out/table2"
}

if [ "${STREAMS:-2}" = 1 ]; then
    conv4
    table2
else
    conv4 &
    first=$!
    table2 &
    second=$!
    failed=0
    wait "$first" || failed=$?  # both waited for: a failed stream leaves the other to finish its job
    wait "$second" || failed=$?
    if [ "$failed" != 0 ]; then
        echo "reproduce.sh: a stream of jobs failed (its error is above); run it again to go on" >&2
        exit "$failed"
    fi
fi
"$bin/python" "$here/time_iterations.py"
anil report reproduction --fig1 "$out/fig1_embedded_hard" --fig2 "$out/fig2_embedded_hard" \
    --divergence "$out/divergence_embedded_hard" --curvature "$out/embedded_hard_init_authors" \
    --fig1-init "$out/fig1_embedded_hard_init_pytorch" --fig2-init "$out/fig2_embedded_hard_init_pytorch" \
    --theory "$out/theory_embedded_hard" --table2 "$out/table2" --long "$out/long" \
    --maml-tuning "$out/maml_tuning_embedded_hard"
