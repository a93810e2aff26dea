"""The smoothness probe's record: rows reach disk as they are measured, a rerun reads them back, a
folder measured under other options or a trajectory that does not reproduce is refused, and a last
line cut short by a kill is dropped."""

import json
import os

import pandas as pd
import pytest

from anil.analysis.probe_log import SETTINGS, ProbeLog, ProbeRefused

SETTINGS_A = {"N": [1, 5], "batches": 3, "dtype": "float32"}


def test_rows_reach_disk_at_once_and_come_back_typed(tmp_path):
    record = ProbeLog(tmp_path, SETTINGS_A)
    record.add("norms", [{"geometry": "convex", "iteration": 0, "batch": 0, "N": 1, "L_ww": 0.1 + 0.2}])
    assert (tmp_path / "norms.csv").read_text().count("\n") == 2  # header and the row, before any close
    record.close()
    again = ProbeLog(tmp_path, SETTINGS_A)
    assert again.has("norms", geometry="convex", iteration=0, batch=0)
    assert not again.has("norms", geometry="convex", iteration=0, batch=1)
    assert again.rows["norms"][0]["L_ww"] == 0.1 + 0.2  # exact: written as its repr
    again.add("norms", [{"geometry": "convex", "iteration": 0, "batch": 1, "N": 1, "L_ww": 2.0}])
    again.close()
    assert len(ProbeLog(tmp_path, SETTINGS_A).frame("norms")) == 2


def test_a_folder_measured_under_other_options_is_refused(tmp_path):
    first = ProbeLog(tmp_path, SETTINGS_A)
    first.add("curvature", [{"geometry": "convex", "iteration": 0, "mu": 0.01}])
    first.close()
    with pytest.raises(ProbeRefused, match=r"other options \(batches: 3 -> 4\).*choose another --out"):
        ProbeLog(tmp_path, {**SETTINGS_A, "batches": 4})
    assert json.loads((tmp_path / SETTINGS).read_text())["batches"] == 3  # nothing overwritten
    assert len(ProbeLog(tmp_path, SETTINGS_A).rows["curvature"]) == 1


def test_an_older_probe_folder_is_not_mixed_with(tmp_path):
    (tmp_path / "norms.csv").write_text("geometry,N\nconvex,1\n")
    with pytest.raises(ProbeRefused, match="without probe.json"):
        ProbeLog(tmp_path, SETTINGS_A)


def test_a_line_cut_short_by_a_kill_is_dropped(tmp_path):
    record = ProbeLog(tmp_path, SETTINGS_A)
    record.add("norms", [{"geometry": "convex", "iteration": 0, "batch": 0, "L_ww": 1.5}])
    record.close()
    with open(tmp_path / "norms.csv", "a") as f:
        f.write("convex,0,1,2.")  # killed mid-row
    again = ProbeLog(tmp_path, SETTINGS_A)
    assert len(again.rows["norms"]) == 1 and not again.has("norms", batch=1)
    again.add("norms", [{"geometry": "convex", "iteration": 0, "batch": 1, "L_ww": 2.5}])
    again.close()
    assert list(ProbeLog(tmp_path, SETTINGS_A).frame("norms")["L_ww"]) == [1.5, 2.5]


def test_a_trajectory_point_must_reproduce(tmp_path):
    record = ProbeLog(tmp_path, SETTINGS_A)
    record.check_point("convex", 100, 12.345678901234)
    record.close()
    again = ProbeLog(tmp_path, SETTINGS_A)
    again.check_point("convex", 100, 12.345678901234)  # the same point: accepted
    with pytest.raises(ProbeRefused, match="does not reproduce at iteration 100"):
        again.check_point("convex", 100, 12.3457)
    again.check_point("convex", 100, 12.3457, "float32")  # float32's rounding, another thread count: the same point
    with pytest.raises(ProbeRefused, match="does not reproduce"):
        again.check_point("convex", 100, 12.4, "float32")


def test_a_folder_in_use_by_another_probe_is_refused(tmp_path):
    writing = ProbeLog(tmp_path, SETTINGS_A)
    with pytest.raises(ProbeRefused, match=rf"in use by another anil smoothness \(pid {os.getpid()}\)"):
        ProbeLog(tmp_path, SETTINGS_A)
    writing.add("norms", [{"geometry": "convex", "iteration": 0, "batch": 0, "L_ww": 1.0}])
    assert len(pd.read_csv(tmp_path / "norms.csv")) == 1
