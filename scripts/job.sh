# A resumable job for the scripts that run their sweeps one job at a time (long_runs.sh,
# tuning_runs.sh): source it, then
#   job BIN DIR COLLECTED NAME OVERRIDES...
# skips a job that finished (its summary.json says completed, or the collected jobs table COLLECTED
# in docs/data holds NAME as completed: an earlier session's run) or that another process is running
# (its run lock is held: two invocations can share a grid), resumes one that stopped (anil resume),
# and starts the rest with `anil train OVERRIDES... hydra.run.dir=DIR`.
job() {
    local bin=$1 dir=$2 collected=$3 name=$4
    shift 4
    if grep -qs '"status": "completed"' "$dir/summary.json" || grep -qs "^\"\?${name}\"\?,.*,completed," "$collected"; then
        return 0
    elif [ -f "$dir/.lock" ] && ! flock -n "$dir/.lock" true; then
        echo "job.sh: $dir is being run by another process: skipped" >&2
        return 0
    elif [ -f "$dir/.hydra/config.yaml" ]; then
        "$bin/anil" resume "$dir"
    else
        "$bin/anil" train "$@" hydra.run.dir="'$dir'"  # quoted: a folder name may hold ',' and '='
    fi
}
