"""What `anil train` writes into a run folder besides the run itself: Hydra's record of the job
(.hydra/config.yaml, hydra.yaml, overrides.yaml) and the log file train.log.

Hydra would write these when a job starts, before anil could look at the folder; conf/train.yaml
turns that off (`hydra.output_subdir: null`, a console-only job_logging), and `JobRecord.claim`
writes them once the run layer has locked the folder and checked that it may be used. A refused
start therefore changes nothing, and a fresh run that fails is removed again (`discard`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from anil.atomic import atomic_file
from anil.run.folder import LOCK, holds_run

RECORD = ".hydra"
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's default job format


class JobRecord:
    """The job's config and log, written into its run folder once the folder is claimed."""

    def __init__(self, cfg: DictConfig):
        self.cfg = cfg
        self.folder: Path | None = None
        self.created: list[Path] = []  # what this job added to the folder (a fresh run removes it on failure)
        self._log: logging.Handler | None = None

    def claim(self, run_dir: Path) -> None:
        """Write .hydra/ and open train.log in `run_dir` (the run layer holds its lock)."""
        self.folder = run_dir
        record = run_dir / RECORD
        if not record.exists():
            record.mkdir()
            self.created.append(record)
        hydra = HydraConfig.get()
        files = {
            "config.yaml": OmegaConf.to_yaml(self.cfg, resolve=True),  # the values the run used
            "hydra.yaml": OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra})),
            "overrides.yaml": OmegaConf.to_yaml(OmegaConf.create(list(hydra.overrides.task))),
        }
        for name, text in files.items():
            with atomic_file(record / name, "w", encoding="utf-8") as f:
                f.write(text)
        log_path = run_dir / f"{hydra.job.name}.log"
        if not log_path.exists():
            self.created.append(log_path)
        self._log = logging.FileHandler(log_path, encoding="utf-8")
        self._log.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.getLogger().addHandler(self._log)

    def close(self) -> None:
        """Stop logging to train.log (the next job of a sweep logs to its own)."""
        if self._log is not None:
            logging.getLogger().removeHandler(self._log)
            self._log.close()
            self._log = None

    def discard(self, run_dir: Path) -> None:
        """Remove what this job added to `run_dir`, and the folder itself when that leaves it empty
        (a fresh run that failed leaves nothing behind)."""
        self.close()
        for path in reversed(self.created):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        if run_dir.is_dir() and not holds_run(run_dir):  # ours (or empty): its lock file goes too
            (run_dir / LOCK).unlink(missing_ok=True)
            if not any(run_dir.iterdir()):
                run_dir.rmdir()
                _remove_empty_layout(run_dir.parent)


LAYOUT = ("runs", "outputs")  # the default run layout, outputs/runs/<stamp>: folders Hydra makes on the way


def _remove_empty_layout(folder: Path) -> None:
    """Remove `folder` and its parents while they are the default layout's folders and empty: a
    refused first run leaves no empty outputs/runs/ behind. Anything else is left as it is."""
    while folder.name in LAYOUT and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
