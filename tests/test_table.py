"""`anil table`: per-configuration means over seeds with intervals, checked against pandas."""

import json

import pandas as pd
import pytest
import yaml

from helpers import SMOKE, anil


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    folder = tmp_path_factory.mktemp("table") / "sweep"
    args = [*SMOKE, "iterations=2", "N=1,2", "seed=0,1,2", f"hydra.sweep.dir={folder}"]
    result = anil("train", "-m", *args)
    assert result.returncode == 0, result.stderr
    return folder


def by_hand(sweep, metric):
    """What the table should say, computed here with pandas from each job's files."""
    rows = []
    for job in sweep.iterdir():
        if (job / "metrics.csv").exists():
            n = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["N"]
            rows.append({"N": n, metric: pd.read_csv(job / "metrics.csv")[metric].dropna().iloc[-1]})
    return pd.DataFrame(rows).groupby("N")[metric].agg(["mean", "count"])


def test_table_means_and_counts_equal_pandas(sweep, tmp_path):
    result = anil("table", str(sweep), "--metric", "val_accuracy", "--by", "geometry,N", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "table.csv")
    expected = by_hand(sweep, "val_accuracy")
    assert table["N"].tolist() == [1, 2] and (table["geometry"] == "convex").all()
    assert table["mean"].tolist() == pytest.approx(expected["mean"].tolist())
    assert table["seeds"].tolist() == expected["count"].tolist() == [3, 3]
    assert ((table["low"] <= table["mean"]) & (table["mean"] <= table["high"])).all()
    assert result.stdout.count("\n") == 4 and "| convex | 1 |" in result.stdout  # header, rule, two rows
    latex = (tmp_path / "table.tex").read_text()
    assert r"\toprule" in latex and r"\midrule" in latex and r"\bottomrule" in latex and "val\\_accuracy" in latex


def test_table_reads_eval_json_and_best_and_at(sweep, tmp_path):
    for i, job in enumerate(sorted(p for p in sweep.iterdir() if p.is_dir())):
        (job / "eval.json").write_text(json.dumps({"accuracy": 0.5 + 0.01 * i, "loss": 1.0}))
    tested = anil("table", str(sweep), "--metric", "test_accuracy", "--by", "N", "--out", str(tmp_path / "t"))
    assert tested.returncode == 0, tested.stderr
    assert pd.read_csv(tmp_path / "t" / "table.csv")["mean"].tolist() == pytest.approx([0.51, 0.54])
    at = anil("table", str(sweep), "--metric", "loss", "--at", "1", "--by", "N", "--out", str(tmp_path / "a"))
    assert at.returncode == 0, at.stderr
    first = [pd.read_csv(j / "metrics.csv")["loss"].iloc[0] for j in sorted(sweep.glob("*N=1*"))]
    assert pd.read_csv(tmp_path / "a" / "table.csv")["mean"].iloc[0] == pytest.approx(sum(first) / len(first))
    bad = anil("table", str(sweep), "--metric", "nope")
    assert bad.returncode == 1 and "has no column nope" in bad.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--by", "geometry,NN"], 1, "--by NN: no job's config has that key"),
        (["--metric", "test_loss"], 1, "--metric test_loss: no job has a value of it; run anil eval on the jobs first"),
        (["--digits", "-5"], 2, "--digits must be between 0 and 10 (got -5)"),
        (["--at", "500"], 1, "--at 500: "),
        (["--at", "later"], 2, "--at must be final, best or an iteration number (got later)"),
    ],
)
def test_table_refusals_are_one_line_and_overwrite_nothing(sweep, tmp_path, args, code, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "table.csv").write_text("a good table\n")
    fresh = sweep.parent / "no_eval"  # the module's sweep may hold eval.json files from another test
    if not fresh.exists():
        fresh.mkdir()
        for job in sweep.iterdir():
            if (job / "metrics.csv").exists():
                (fresh / job.name).mkdir()
                for name in ("metrics.csv", "summary.json"):
                    (fresh / job.name / name).write_bytes((job / name).read_bytes())
                (fresh / job.name / ".hydra").mkdir()
                (fresh / job.name / ".hydra" / "config.yaml").write_bytes((job / ".hydra" / "config.yaml").read_bytes())
    result = anil("table", str(fresh), *args, "--out", str(out))
    assert result.returncode == code and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr
    assert (out / "table.csv").read_text() == "a good table\n" and sorted(p.name for p in out.iterdir()) == [
        "table.csv"
    ]


def test_an_interval_that_cannot_be_computed_is_empty_with_its_reason(sweep, tmp_path):
    job = next(j for j in sorted(sweep.iterdir()) if (j / "metrics.csv").exists())
    result = anil("table", str(job), "--metric", "val_accuracy", "--by", "N", "--out", str(tmp_path))  # one seed
    assert result.returncode == 0, result.stderr
    table = pd.read_csv(tmp_path / "table.csv")
    assert table["low"].isna().all() and table["high"].isna().all()
    assert table["note"].tolist() == ["interval needs 3 seeds"] and "inf" not in (tmp_path / "table.csv").read_text()


def test_a_bad_option_is_one_line_not_a_usage_block(sweep):
    for command in (["table", str(sweep), "--digits", "x"], ["plot", str(sweep), "--band", "nope"], ["eval"]):
        result = anil(*command)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert f"see anil {command[0]} --help" in result.stderr
