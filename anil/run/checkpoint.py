"""Checkpoints: everything needed to continue a run bit for bit.

A checkpoint holds the model, the optimiser, every RNG state (Python, NumPy, torch, CUDA), the
task sampler's generator, the iteration, the training time so far and the config it was trained
under. It is written to a temporary file and renamed, so a kill at any moment leaves either the
old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import errno
import pickle
import random
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anil.atomic import atomic_file
from anil.config import TrainConfig
from anil.run.errors import CheckpointError
from anil.validation import from_dict

CHECKPOINT = "checkpoint.pt"  # the latest state; what resume continues from
BEST = "best.pt"  # the state with the best validation accuracy so far; what eval uses by default
FORMAT = 1


def rng_state() -> dict[str, Any]:
    kind, keys, position, has_gauss, gauss = np.random.get_state(legacy=True)
    assert not isinstance(keys, str), "legacy=True gives the (kind, keys, ...) tuple"
    return {
        "python": random.getstate(),
        "numpy": [kind, keys.tolist(), position, has_gauss, gauss],  # lists: loadable with weights_only
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuples(state["python"]))
    kind, keys, position, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """random.setstate wants the nested tuples back that serialisation may have turned into lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a failed write (a full disk) leaves the previous checkpoint as it was."""
    try:
        with atomic_file(path) as f:
            torch.save({"format": FORMAT, **state}, f)
    except RuntimeError as error:  # torch reports a failed write as RuntimeError ("file write failed")
        raise OSError(
            errno.EIO, f"writing the checkpoint failed ({_first_line(error)}); is the disk full?", str(path)
        ) from None


def load(path: Path) -> dict[str, Any]:
    if not path.parent.is_dir():
        raise CheckpointError(f"no run folder at {path.parent}; give the folder of a run (outputs/runs/<stamp>)")
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the run has not reached its first checkpoint")
    try:
        with warnings.catch_warnings():  # a corrupt file's odd protocol number is part of the one-line error
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's message would suggest weights_only=False: never do that here
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not anil's (it holds objects a checkpoint never contains); "
            "delete it to start over"
        ) from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise CheckpointError(f"checkpoint {path} is corrupt ({_first_line(error)}); delete it to start over") from None
    except Exception as error:  # noqa: BLE001 - bytes that are no checkpoint break the unpickler in any way
        raise CheckpointError(
            f"checkpoint {path} is corrupt ({type(error).__name__}: {_first_line(error)}); delete it to start over"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an anil checkpoint (format {FORMAT}); delete it to start over")
    return state


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def saved_config(state: dict[str, Any]) -> TrainConfig:
    """The config a checkpoint was trained under (keys added since then take their defaults)."""
    return from_dict(state["config"])


def differing_keys(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys of the current config whose value differs from the saved one (keys the config no
    longer has are ignored)."""
    return sorted(k for k in current if saved.get(k) != current[k])
