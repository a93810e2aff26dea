"""Reading dataset source files safely: pickles (Python 2 or 3), image files, label grouping.

Every failure is a DatasetError with one line naming the file and the fix.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from anil.data.progress import bar
from anil.data.split import DatasetError, Split

# What the dataset pickles (CIFAR-100, FC100, miniImageNet caches) are made of: numpy arrays, their
# dtypes and scalars, and the bytes codec Python 3 pickles use for Python 2 strings. Dicts, lists,
# str, bytes and numbers need no global at all. A pickle naming anything else is not a dataset:
# unpickling it could run code (its __reduce__ may call os.system), so it is refused unloaded.
SAFE_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # numpy 1 names (and Python 2 pickles)
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.multiarray", "_reconstruct"),  # numpy 2 names
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }
)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside SAFE_GLOBALS."""


class DatasetUnpickler(pickle.Unpickler):
    """An unpickler that builds only what dataset pickles contain (SAFE_GLOBALS)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in SAFE_GLOBALS:
            raise RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def read_pickle(path: Path) -> dict[str, Any]:
    """A dict pickle written by Python 2 or 3, with str keys (bytes keys are decoded). Only the
    globals of SAFE_GLOBALS are loaded: a pickle that names another one stops with a DatasetError."""
    head = b""
    try:
        with open(path, "rb") as f:
            head = f.read(1)
            f.seek(0)
            data = DatasetUnpickler(f, encoding="latin1").load()  # Python 2 pickles (CIFAR, FC100) need latin1
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}") from None
    except IsADirectoryError:
        raise DatasetError(f"cannot read {path}: it is a folder, not a pickle file") from None
    except PermissionError:
        raise DatasetError(f"cannot read {path}: permission denied; make it readable (chmod +r)") from None
    except RefusedGlobal as error:
        raise DatasetError(
            f"refused to load {path}: it asks for {error}, which no dataset pickle contains (loading it could "
            "run code); use the dataset file from its original source"
        ) from None
    except Exception as error:  # noqa: BLE001 - a damaged pickle breaks the unpickler in any way (MemoryError too)
        hint = "an HTML page, not the dataset" if head == b"<" else "truncated or not a pickle"
        said = " ".join(str(error).split())  # some unpickler messages span lines
        raise DatasetError(f"cannot read {path}: {hint} ({type(error).__name__}: {said}); download it again") from None
    if not isinstance(data, dict):
        raise DatasetError(f"cannot read {path}: expected a dict, found {type(data).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in data.items()}


def require(data: dict[str, Any], keys: tuple[str, ...], path: Path) -> None:
    missing = [k for k in keys if k not in data]
    if missing:
        raise DatasetError(
            f"{path} lacks the key(s) {', '.join(missing)}; it holds {', '.join(map(str, data)) or 'nothing'}"
        )


def image_array(data: dict[str, Any], key: str, path: Path, shape: str) -> np.ndarray:
    """data[key] as one uint8 array of images, or a DatasetError naming the key and what it holds."""
    try:
        pixels = np.asarray(data[key])
    except ValueError:  # a list of arrays of different shapes
        raise DatasetError(
            f"{path}: '{key}' is not one array of images (its items differ in shape); expected {shape}"
        ) from None
    if pixels.dtype != np.uint8:
        raise DatasetError(f"{path}: '{key}' is {pixels.dtype} {pixels.shape}, expected uint8 {shape}")
    return pixels


def label_array(data: dict[str, Any], key: str, count: int, path: Path) -> np.ndarray:
    """data[key] as int64 [count] class labels: a list, a vector or a column of whole numbers."""
    try:
        labels = np.asarray(data[key])
    except ValueError:
        raise DatasetError(f"{path}: '{key}' is not a flat list of class labels") from None
    if labels.ndim == 2 and 1 in labels.shape:  # a column (or row) vector: the same labels
        labels = labels.reshape(-1)
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetError(
            f"{path}: '{key}' holds {labels.dtype} values of shape {labels.shape}, expected {count} whole-number "
            "class labels; use the original dataset file"
        )
    if len(labels) != count:
        raise DatasetError(f"{path}: {count} images but {len(labels)} labels in '{key}'")
    return labels.astype(np.int64)


def decode_image(path: Path, size: int) -> np.ndarray:
    """An image file -> uint8 [3, size, size] RGB, resized (bilinear, no crop) when it is not square `size`."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)
    except FileNotFoundError:
        raise DatasetError(f"missing image {path}") from None
    except Image.DecompressionBombError:  # a header claiming far more pixels than any dataset image has
        raise DatasetError(
            f"cannot decode image {path}: its header claims an implausibly large image; replace the file"
        ) from None
    except PermissionError:
        raise DatasetError(f"cannot read image {path}: permission denied; make it readable (chmod +r)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot decode image {path}: {error}; the file is truncated or not an image") from None


def resize_hwc(images: np.ndarray, size: int) -> np.ndarray:
    """uint8 [M, H, W, 3] -> uint8 [M, 3, size, size]; a copy-free transpose when no resize is needed."""
    if images.shape[1:3] != (size, size):
        bilinear = Image.Resampling.BILINEAR
        resized = (np.asarray(Image.fromarray(i).resize((size, size), bilinear)) for i in images)
        images = np.stack(list(bar(resized, len(images), f"resizing to {size}x{size}", "image")))
    return images.transpose(0, 3, 1, 2)


def group_by_label(images: np.ndarray, labels: np.ndarray, names: dict[int, str], source: str) -> Split:
    """[M, ch, S, S] with a label per image -> a Split grouped by class, classes in label order."""
    order = np.argsort(labels, kind="stable")
    classes, counts = np.unique(labels, return_counts=True)
    return Split(
        np.ascontiguousarray(images[order]),
        counts.astype(np.int64),
        [names.get(int(c), str(c)) for c in classes],
        source,
    )
