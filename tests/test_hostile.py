"""Hostile and careless input: no code runs from a data file, no existing run is rewritten, no race
between processes, one line for every failure."""

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from anil.atomic import current_umask
from anil.config import DatasetConfig
from anil.data import DatasetError, load_splits
from anil.run import checkpoint
from anil.run.stops import StopRequests
from helpers import anil, anil_command
from helpers import formats as fixtures


class RunsCode:
    """A pickled object whose loading calls os.system: what a tampered dataset mirror could serve."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def poison(path: Path, key: str, marker: Path) -> None:
    """Rewrite a dataset pickle with one value replaced by a code-running object."""
    with open(path, "rb") as f:
        data = pickle.load(f, encoding="latin1")
    data[key] = RunsCode(marker)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)


@pytest.mark.parametrize("dataset", ["fc100", "miniimagenet"])
def test_a_code_carrying_pickle_never_runs(tmp_path, dataset):
    marker = tmp_path / "pwned"
    if dataset == "fc100":
        root = fixtures.write_fc100_pickles(tmp_path / "data")
        poison(root / "FC100_val.pickle", "labels", marker)
    else:
        root = fixtures.write_mini_pickles(tmp_path / "data")
        poison(root / "mini-imagenet-cache-validation.pkl", "class_dict", marker)
    config = DatasetConfig(name=dataset, root=str(root), image_size=32 if dataset == "fc100" else 84,
                           cache_dir=str(tmp_path / "cache"))  # fmt: skip
    with pytest.raises(DatasetError, match=r"refused to load .*: it asks for posix\.system") as error:
        load_splits(config)
    assert "\n" not in str(error.value)
    assert not marker.exists()
    result = anil("train", f"dataset={dataset}", f"dataset.root={root}", f"dataset.cache_dir={tmp_path}/cache",
                  "iterations=1", "B=2", f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    assert result.returncode == 1 and "refused to load" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not marker.exists()


def test_python2_style_pickles_still_load(tmp_path):
    """latin1 strings and bytes keys, numpy arrays of a Python 2 pickle (protocol 2) load as before."""
    root = fixtures.write_cifar(tmp_path / "data", bytes_keys=True)
    splits = load_splits(DatasetConfig(name="fc100", root=str(root), image_size=32, cache_dir=str(tmp_path / "c")))
    assert len(splits.train.counts) == 60 and splits.train.images.dtype == np.uint8


# --- run folders: never rewritten, never shared, never followed out -------------------------------

RUN = ["experiment=smoke", "iterations=2", "eval_every=1", "eval_tasks=4", "B=2", "device=cpu"]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file of a run (the lock file, which names its last holder, aside)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != ".lock")
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


def test_a_refused_run_changes_nothing_of_the_run_it_refuses(tmp_path):
    run_dir = tmp_path / "run"
    assert anil("train", *RUN, f"hydra.run.dir={run_dir}").returncode == 0
    before = snapshot(run_dir)
    again = anil("train", *RUN, "N=7", f"hydra.run.dir={run_dir}")
    assert again.returncode == 1 and "already holds a run" in again.stderr
    resumed = anil("resume", str(run_dir), "N=7")
    assert resumed.returncode == 1 and "other values of N" in resumed.stderr
    assert snapshot(run_dir) == before  # config.yaml, overrides.yaml, train.log: byte for byte
    assert anil("resume", str(run_dir), "iterations=3").returncode == 0  # the run's own settings still resume


def test_any_run_file_marks_the_folder_as_taken(tmp_path):
    run_dir = tmp_path / "run"
    assert anil("train", *RUN, f"hydra.run.dir={run_dir}").returncode == 0
    (run_dir / "metrics.csv").unlink()
    checkpoint = (run_dir / "checkpoint.pt").read_bytes()
    again = anil("train", *RUN, f"hydra.run.dir={run_dir}")
    assert again.returncode == 1 and "already holds a run" in again.stderr
    assert (run_dir / "checkpoint.pt").read_bytes() == checkpoint


def test_the_run_lock_never_follows_a_link(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").symlink_to(target)
    result = anil("train", *RUN, f"hydra.run.dir={run_dir}")
    assert result.returncode == 1 and "is a symbolic link" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and target.read_text() == "keep me"


@pytest.mark.slow  # processes
def test_runs_started_together_get_folders_of_their_own(tmp_path):
    runs = [subprocess.Popen([*anil_command(), "train", *RUN, f"N={n}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True) for n in (1, 5, 9)]  # fmt: skip
    for process in runs:
        assert process.wait(timeout=300) == 0, process.stderr.read()
    folders = sorted((tmp_path / "outputs" / "runs").iterdir())
    assert len(folders) == 3
    steps = sorted(yaml.safe_load((f / ".hydra" / "config.yaml").read_text())["N"] for f in folders)
    assert steps == [1, 5, 9]  # three intact runs, each with its own config
    assert all(len(pd.read_csv(f / "metrics.csv")) == 2 for f in folders)


def test_a_problem_found_at_run_time_leaves_nothing(tmp_path):
    run_dir = tmp_path / "run"
    result = anil("train", *RUN[:-1], "device=cuda:7", f"hydra.run.dir={run_dir}")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert not run_dir.exists()
    default = anil("train", *RUN[:-1], "device=cuda:7", cwd=tmp_path)  # the default outputs/runs/<stamp>
    assert default.returncode == 1 and not (tmp_path / "outputs").exists()  # no empty outputs/runs/ left
    (tmp_path / "outputs" / "runs" / "mine").mkdir(parents=True)  # the user's own folders stay
    assert anil("train", *RUN[:-1], "device=cuda:7", cwd=tmp_path).returncode == 1
    assert (tmp_path / "outputs" / "runs" / "mine").is_dir()


def test_outputs_follow_the_umask(tmp_path):
    run_dir = tmp_path / "run"
    assert anil("train", *RUN, f"hydra.run.dir={run_dir}").returncode == 0
    expected = 0o666 & ~current_umask()
    for name in ("summary.json", "checkpoint.pt", "best.pt", "metrics.csv", ".hydra/config.yaml"):
        assert (run_dir / name).stat().st_mode & 0o777 == expected, name


def test_decoded_cache_folders_follow_the_umask(tmp_path):
    """A shared dataset.cache_dir stays readable by whoever the umask lets read it (mkdtemp alone
    would make the entry 0700)."""
    root = fixtures.write_fc100_pickles(tmp_path / "FC100")
    cache = tmp_path / "cache"
    load_splits(DatasetConfig(name="fc100", root=str(root), cache_dir=str(cache)))
    entries = [p for p in (cache / "decoded").iterdir() if p.is_dir()]
    assert len(entries) == 1 and entries[0].stat().st_mode & 0o777 == 0o777 & ~current_umask()


def test_seconds_per_iteration_counts_the_whole_run(tmp_path):
    run_dir = tmp_path / "run"
    assert anil("train", *RUN, "iterations=2", f"hydra.run.dir={run_dir}").returncode == 0
    assert anil("resume", str(run_dir), "iterations=4").returncode == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["seconds_per_iteration"] == pytest.approx(summary["train_time_s"] / 4)


# --- sweeps: one job's failure is that job's -------------------------------------------------------


def test_a_failing_job_does_not_stop_the_sweep(tmp_path):
    root = fixtures.write_fc100_pickles(tmp_path / "data", per_class=10)
    sweep = tmp_path / "sweep"
    data = ["dataset=fc100", f"dataset.root={root}", f"dataset.cache_dir={tmp_path}/c"]
    run = ["iterations=2", "B=2", "eval_tasks=2", "device=cpu", f"hydra.sweep.dir={sweep}"]
    result = anil("train", "-m", "ways=25,5", *data, *run)
    assert result.returncode == 1 and "1 job(s) failed" in result.stderr
    failed = next(sweep.glob("*ways=25*"))
    summary = json.loads((failed / "summary.json").read_text())
    assert summary["status"] == "failed" and "fewer than ways=25" in summary["reason"]
    assert len(pd.read_csv(next(sweep.glob("*ways=5*")) / "metrics.csv")) == 2  # the next job ran
    plotted = anil("plot", str(sweep))
    assert plotted.returncode == 0 and f"skipped {failed}: failed: split val" in plotted.stderr


# --- the decoded cache: shared safely, checked, cleaned --------------------------------------------

RACE = """
import logging, sys
from anil.config import DatasetConfig
from anil.data import load_splits
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
splits = load_splits(DatasetConfig(name="fc100", root=sys.argv[1], image_size=32, cache_dir=sys.argv[2]))
print("classes", len(splits.train.counts), len(splits.val.counts), len(splits.test.counts))
"""


@pytest.mark.slow  # processes
def test_processes_racing_on_a_fresh_cache_all_succeed_and_decode_once(tmp_path):
    root = fixtures.write_cifar(tmp_path / "data")
    for attempt in range(3):
        cache = tmp_path / f"cache{attempt}"
        racers = [subprocess.Popen([sys.executable, "-c", RACE, str(root), str(cache)], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for _ in range(4)]  # fmt: skip
        outputs = [process.communicate(timeout=120) for process in racers]
        assert all(process.returncode == 0 for process in racers), [err for _, err in outputs]
        assert all("classes 60 20 20" in out for out, _ in outputs)
        decodes = [line for out, _ in outputs for line in out.splitlines() if line.startswith("decoded ")]
        assert len(decodes) == 1  # one process decoded, the three others waited and read its cache
        entries = [p.name for p in (cache / "decoded").iterdir() if p.is_dir()]
        assert len(entries) == 1 and entries[0].startswith("fc100-cifar-")  # no staging folder left


def test_a_stale_staging_folder_is_removed_and_an_overwritten_array_is_noticed(tmp_path, caplog):
    root = fixtures.write_fc100_pickles(tmp_path / "data")
    config = DatasetConfig(name="fc100", root=str(root), image_size=32, cache_dir=str(tmp_path / "cache"))
    first = load_splits(config)
    (entry,) = [p for p in (tmp_path / "cache" / "decoded").iterdir() if p.is_dir()]
    stale = entry.with_name(f".{entry.name}-killed")  # what a SIGKILL during a decode leaves behind
    stale.mkdir()
    (stale / "train.npy").write_bytes(b"\0" * 1000)
    array = entry / "train.npy"
    array.write_bytes(b"\0" * array.stat().st_size)  # same size, all zeros
    with caplog.at_level("INFO"):
        again = load_splits(config)
    assert "does not match its digest" in caplog.text and "removing" in caplog.text
    assert not stale.exists() and np.array_equal(again.train.images, first.train.images)


# --- sizes that cannot fit, and runs too long to wait for ------------------------------------------


def test_a_rendered_dataset_too_large_to_fit_is_refused_before_rendering(tmp_path):
    result = anil("train", "experiment=smoke", "dataset.image_size=20000", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "decoding dataset=procedural needs about" in result.stderr and "lower dataset.image_size" in result.stderr


def test_a_dataset_too_large_to_decode_is_refused_before_decoding(tmp_path):
    root = fixtures.write_fc100_pickles(tmp_path / "data")
    cache = tmp_path / "cache"
    result = anil("train", "dataset=fc100", f"dataset.root={root}", f"dataset.cache_dir={cache}",
                  "dataset.image_size=60000", f"hydra.run.dir={tmp_path}/run")  # fmt: skip
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "needs about" in result.stderr and "GiB" in result.stderr and "dataset.image_size" in result.stderr
    assert not any(p.is_file() and p.stat().st_size > 10**6 for p in cache.rglob("*"))  # nothing big written


@pytest.mark.parametrize(
    "overrides,culprit",
    [(["N=10000000"], "inner loop"), (["B=1000000"], "body pass")],
)
def test_a_meta_iteration_that_cannot_fit_is_refused_with_its_estimate(tmp_path, overrides, culprit):
    result = anil("train", "experiment=smoke", "device=cpu", *overrides, f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "a meta-iteration needs about" in result.stderr and culprit in result.stderr
    assert not (tmp_path / "run").exists()


def start_and_stop(tmp_path, *overrides, wait_for="training convex"):
    """Start a run, wait until it is busy, send SIGTERM; return (exit code, seconds it took to stop)."""
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        process = subprocess.Popen([*anil_command(), "train", "experiment=smoke", "device=cpu", *overrides,
                                    f"hydra.run.dir={tmp_path}/run"], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.time() + 120
        while wait_for not in log.read_text():
            assert process.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(1.0)
        sent = time.time()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=60)
        return code, time.time() - sent, log.read_text()
    finally:  # a failing test must not leave a run behind on the machine
        if process.poll() is None:
            process.kill()


@pytest.mark.slow  # processes
def test_sigterm_is_honoured_inside_a_very_long_inner_loop(tmp_path):
    code, _, output = start_and_stop(tmp_path, "N=200000", "B=2", "iterations=3")
    assert code == 130, output  # stopped, not after the minutes the section would take (wait's timeout)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["iteration"] == 0
    assert "anil resume" in output


@pytest.mark.slow  # processes
def test_sigterm_is_honoured_inside_a_very_long_validation(tmp_path):
    # max_eval_hours: past the up-front refusal of an evaluation this long, to stop it while it runs
    code, _, output = start_and_stop(tmp_path, "eval_every=1", "eval_tasks=10000000", "B=2", "iterations=5",
                                     "max_eval_hours=1e9", wait_for="iteration 1: validating")  # fmt: skip
    assert code == 130, output  # stopped, not after the minutes the validation would take (wait's timeout)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert metrics.empty  # iteration 1's row waits in the checkpoint until its validation is redone
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["iteration"] == 1 and summary["status"] == "interrupted"
    assert checkpoint.load(tmp_path / "run" / checkpoint.CHECKPOINT)["pending_row"]["iteration"] == 1


def test_a_request_before_a_section_still_preempts_it(monkeypatch):
    """SIGTERM arriving between sections (after a step, before its validation; or while the run is
    being built) must not let the next section run unbounded: it keeps what is left of its grace."""
    from anil.run.stops import StopNow

    monkeypatch.setattr(StopRequests, "GRACE", 0.3)
    with StopRequests() as stop:
        os.kill(os.getpid(), signal.SIGTERM)  # outside any section
        time.sleep(0.05)
        assert stop.signal == "SIGTERM"
        started = time.monotonic()
        with pytest.raises(StopNow):
            with stop.preemptible():
                while time.monotonic() - started < 10:  # a validation that would run for 10 s
                    time.sleep(0.01)
        assert time.monotonic() - started < 2


# --- one line, never a traceback --------------------------------------------------------------------


@pytest.mark.parametrize(
    "override,expected",
    [
        ("N=${oops}", "N: Interpolation key 'oops' not found"),
        ("dataset.root=${oc.env:ANIL_SURELY_UNSET}", "Environment variable 'ANIL_SURELY_UNSET' not found"),
        ("dataset=null", "dataset=null: a run needs a dataset; choose one of: embedded"),
        ("seed=4294967296", "seed=4294967296: random seed (NumPy's seeds are 32-bit) must be <= 4294967295"),
        ("dataset.image_size=12", "dataset.image_size=12: image side in pixels"),
        ("hydra/launcher=nope", "hydra/launcher=nope is not an option; choose one of: basic, cluster, joblib"),
    ],
)
def test_bad_values_are_one_line_and_write_nothing(tmp_path, override, expected):
    result = anil("train", "experiment=smoke", override, f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert expected in result.stderr and not (tmp_path / "run").exists()


def rewrite(path: Path, **changes) -> None:
    with open(path, "rb") as f:
        data = pickle.load(f, encoding="latin1")
    data.update(changes)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)


def fc100_config(root: Path, tmp_path: Path) -> DatasetConfig:
    return DatasetConfig(name="fc100", root=str(root), image_size=32, cache_dir=str(tmp_path / "cache"))


def mini_config(root: Path, tmp_path: Path) -> DatasetConfig:
    return DatasetConfig(name="miniimagenet", root=str(root), image_size=84, cache_dir=str(tmp_path / "cache"))


def labels_as_strings(root):
    rewrite(root / "FC100_val.pickle", labels=["rose"] * 60)


def ragged_data(root):
    rewrite(root / "FC100_val.pickle", data=[np.zeros((32, 32, 3), np.uint8), np.zeros((16, 32, 3), np.uint8)])


def bad_cifar_meta(root):
    rewrite(root / "meta", fine_label_names={"not": "a list"})


def bad_class_dict(root):
    rewrite(root / "mini-imagenet-cache-validation.pkl", class_dict=[1, 2, 3])


def class_dict_of_strings(root):
    rewrite(root / "mini-imagenet-cache-validation.pkl", class_dict={"n1": "abc"})


def latin1_csv(root):
    (root / "val.csv").write_bytes("filename,label\nn000000110000000\xe9.jpg,n00000011\n".encode("latin1"))


def huge_header(root):
    from PIL import Image

    name = next((root / "images").iterdir())
    Image.new("1", (30000, 30000)).save(name.with_suffix(".png"))  # 1 bit per pixel: a small file
    name.unlink()
    name.with_suffix(".png").rename(name)


@pytest.mark.parametrize(
    "writer,breaker,expected",
    [
        (fixtures.write_fc100_pickles, labels_as_strings, "'labels' holds <U4 values"),
        (fixtures.write_fc100_pickles, ragged_data, "'data' is not one array of images"),
        (fixtures.write_cifar, bad_cifar_meta, "'fine_label_names' is not a list of the 100 class names"),
        (fixtures.write_mini_pickles, bad_class_dict, "'class_dict' is a list, expected a dict"),
        (fixtures.write_mini_pickles, class_dict_of_strings, "'class_dict'['n1'] is not a list of row indices"),
        (fixtures.write_mini_csv, latin1_csv, "is not UTF-8 text (byte 0xe9"),
        (fixtures.write_mini_csv, huge_header, "its header claims an implausibly large image"),
    ],
)
def test_broken_dataset_files_are_one_line(tmp_path, writer, breaker, expected):
    root = writer(tmp_path / "data")
    breaker(root)
    config = (fc100_config if "fc100" in writer.__name__ or "cifar" in writer.__name__ else mini_config)(root, tmp_path)
    with pytest.raises(DatasetError) as error:
        load_splits(config)
    assert expected in str(error.value) and "\n" not in str(error.value)


def test_labels_stored_as_a_column_still_load(tmp_path):
    root = fixtures.write_fc100_pickles(tmp_path / "data")
    with open(root / "FC100_val.pickle", "rb") as f:
        labels = pickle.load(f, encoding="latin1")["labels"]
    rewrite(root / "FC100_val.pickle", labels=np.asarray(labels).reshape(-1, 1))
    assert len(load_splits(fc100_config(root, tmp_path)).val.counts) == 20


def test_an_unreadable_source_is_reported_as_unreadable(tmp_path, monkeypatch):
    root = fixtures.write_mini_csv(tmp_path / "data")

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("anil.data.miniimagenet.open", refuse, raising=False)
    with pytest.raises(DatasetError, match=r"cannot read .*train.csv: permission denied; make it readable"):
        load_splits(mini_config(root, tmp_path))


def test_rendering_errors_are_one_line(monkeypatch, tmp_path):
    from anil.data import embedded

    monkeypatch.setattr(embedded.importlib.metadata, "distribution", lambda name: (_ for _ in ()).throw(
        embedded.importlib.metadata.PackageNotFoundError(name)))  # fmt: skip
    config = DatasetConfig(name="embedded", train_classes=5, val_classes=5, test_classes=5, instances=4,
                           cache_dir=str(tmp_path))  # fmt: skip
    with pytest.raises(DatasetError, match="needs the kanjivg package: pip install kanjivg"):
        load_splits(config)
    monkeypatch.undo()
    bad = tmp_path / "bad.svg"
    bad.write_text('<path d="12,13"/>')
    with pytest.raises(DatasetError, match=r"cannot render .*bad.svg: path data starts with a number"):
        embedded._strokes(bad)


def test_a_full_disk_while_checkpointing_is_a_write_error_that_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    from anil.run import checkpoint

    path = tmp_path / "checkpoint.pt"
    checkpoint.save(path, {"iteration": 1})

    def disk_full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing file")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(OSError) as error:
        checkpoint.save(path, {"iteration": 2})
    assert error.value.filename == str(path) and "is the disk full?" in error.value.strerror
    monkeypatch.undo()
    assert checkpoint.load(path)["iteration"] == 1 and [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_a_disk_that_fills_mid_run_leaves_the_run_resumable(tmp_path, monkeypatch):
    """ENOSPC from the metrics file at iteration 3, after checkpoints were written: one line naming
    the disk and the resume command, nothing of the run removed, and `anil resume` finishes it."""
    import errno

    from anil.run.metrics import MetricsWriter

    real, rows = MetricsWriter.write, {"n": 0}

    def fills(self, row):
        rows["n"] += 1
        if rows["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return real(self, row)

    run_dir = tmp_path / "run"
    monkeypatch.setattr(MetricsWriter, "write", fills)
    run = [
        "experiment=smoke",
        "iterations=4",
        "eval_every=1",
        "eval_tasks=4",
        "B=2",
        "device=cpu",
        "checkpoint_every=1",
    ]
    full = anil("train", *run, f"hydra.run.dir={run_dir}")
    assert full.returncode == 1 and len(full.stderr.strip().splitlines()) == 1, full.stderr
    assert "No space left on device" in full.stderr and f"anil resume {run_dir}" in full.stderr
    assert {".hydra", "checkpoint.pt", "metrics.csv", "train.log"} <= {p.name for p in run_dir.iterdir()}
    monkeypatch.undo()
    resumed = anil("resume", str(run_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert pd.read_csv(run_dir / "metrics.csv")["iteration"].tolist() == [1, 2, 3, 4]


def trained_run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    assert anil("train", *RUN, f"hydra.run.dir={run_dir}").returncode == 0
    return run_dir


def test_eval_refusals_and_messages_are_one_line_and_right(tmp_path):
    run_dir = trained_run(tmp_path)
    device = anil("eval", str(run_dir), "--device", "tpu", "--tasks", "4")
    assert (
        device.returncode == 1
        and device.stderr.strip() == "anil eval: --device='tpu' is not one of: auto, cpu, cuda, cuda:K"
    )
    missing = anil("eval", str(tmp_path / "nonexistent"))
    assert missing.returncode == 1 and "no run folder at" in missing.stderr and "first checkpoint" not in missing.stderr
    (run_dir / "best.pt").write_bytes(random.Random(2).randbytes(4096))  # seed 2 breaks the unpickler with IndexError
    garbage = anil("eval", str(run_dir), "--tasks", "4")
    assert garbage.returncode == 1 and len(garbage.stderr.strip().splitlines()) == 1
    assert "weights_only" not in garbage.stderr and "is corrupt" in garbage.stderr


def test_outsized_evaluations_are_refused_up_front_in_one_line(tmp_path):
    """An evaluation too long for its time limit, or a test-time N too large for memory, stops with
    one line naming the fix, and writes nothing; so does a training run whose validations would."""
    run_dir = trained_run(tmp_path)
    slow = anil("eval", str(run_dir), "--tasks", "100000000", "--checkpoint", "last", "--max-hours", "1")
    assert slow.returncode == 1 and len(slow.stderr.strip().splitlines()) == 1, slow.stderr
    assert "anil eval: the evaluation: 100,000,000 tasks would take about" in slow.stderr
    assert "lower --tasks (or --N), or raise --max-hours" in slow.stderr and not (run_dir / "eval.json").exists()
    deep = anil("eval", str(run_dir), "--tasks", "4", "--checkpoint", "last", "--N", "1000000000")
    assert (
        deep.returncode == 1 and "a meta-iteration needs about" in deep.stderr and "unrolled inner loop" in deep.stderr
    )
    assert not (run_dir / "eval.json").exists()
    validating = tmp_path / "validating"
    refused = anil("train", *RUN, "eval_tasks=100000000", "max_eval_hours=1", f"hydra.run.dir={validating}")
    assert refused.returncode == 1 and "the run's evaluations: " in refused.stderr, refused.stderr
    assert "or raise max_eval_hours" in refused.stderr and not validating.exists()


def test_eval_prints_its_result_even_when_it_cannot_write_it(tmp_path):
    run_dir = trained_run(tmp_path)
    (run_dir / "eval.json").mkdir()  # eval.json cannot be written (even by root): a folder is in the way
    result = anil("eval", str(run_dir), "--tasks", "4", "--checkpoint", "last")
    assert result.returncode == 1 and "test accuracy" in result.stdout
    assert result.stderr.strip().startswith("anil eval: cannot write") and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # processes
def test_a_second_ctrl_c_is_one_line(tmp_path):
    log = tmp_path / "out.txt"
    with open(log, "w") as out:
        process = subprocess.Popen([*anil_command(), "train", "experiment=smoke", "device=cpu", "N=200000", "B=2",
                                    f"hydra.run.dir={tmp_path}/run"], stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.time() + 120
    while "training convex" not in log.read_text():
        assert process.poll() is None and time.time() < deadline
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    text = log.read_text()
    assert "Traceback" not in text and "stopped at once by a second Ctrl-C" in text


def test_anil_plot_on_broken_sweeps_is_one_line(tmp_path):
    run_dir = trained_run(tmp_path)
    metrics = run_dir / "metrics.csv"
    text = metrics.read_text()
    metrics.write_text(text + "garbage,,x\n")
    garbage = anil("plot", str(run_dir))
    assert garbage.returncode == 1 and "has a row that is not numbers (column iteration, line 4)" in garbage.stderr
    header, *rows = text.splitlines()
    keep = [i for i, name in enumerate(header.split(",")) if name != "loss"]
    metrics.write_text("\n".join(",".join(r.split(",")[i] for i in keep) for r in [header, *rows]) + "\n")
    no_loss = anil("plot", str(run_dir))
    assert no_loss.returncode == 1 and "has no loss column" in no_loss.stderr
    metrics.write_text(text)
    (tmp_path / "afile").write_text("")
    blocked = anil("plot", str(run_dir), "--out", str(tmp_path / "afile" / "figures"))
    assert blocked.returncode == 1 and blocked.stderr.strip().endswith("give --out a writable folder")
    assert "Traceback" not in garbage.stderr + no_loss.stderr + blocked.stderr


def test_damaged_pickles_and_checkpoints_always_give_their_one_error(tmp_path):
    """Random bytes, pickle-looking bytes and real pickles with flipped bytes (seeded): the dataset
    reader and the checkpoint loader raise only their own error, however the unpickler breaks
    (IndexError, KeyError, MemoryError, OverflowError, LookupError, ... were seen)."""
    import random

    from anil.data.readers import read_pickle
    from anil.data.split import DatasetError
    from anil.run.checkpoint import CheckpointError, load

    good = pickle.dumps({"data": np.zeros((2, 3), dtype=np.uint8), "labels": [1, 2]}, protocol=2)
    path = tmp_path / "damaged.pkl"
    for seed in range(600):
        rng = random.Random(seed)
        if seed % 3 == 0:
            data = rng.randbytes(rng.randint(1, 2048))
        elif seed % 3 == 1:
            data = b"\x80\x02" + rng.randbytes(rng.randint(1, 300))
        else:
            flipped = bytearray(good)
            for _ in range(3):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            data = bytes(flipped)
        path.write_bytes(data)
        for reader, error in ((read_pickle, DatasetError), (load, CheckpointError)):
            try:
                reader(path)
            except error as raised:
                assert "\n" not in str(raised) and str(path) in str(raised)
