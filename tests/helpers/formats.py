"""Datasets written the way the originals are (docs/datasets.md lists each format), made on demand.

Tests write tiny ones; scripts/time_decode.py writes real-sized ones to time decoding. Images are
painted with their label (red channel) and index (green), so a loaded split can be checked;
`noise=True` fills miniImageNet images with noise instead (a worst case for JPEG decoding).
Nothing made here is ever committed.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from anil.data.fc100 import FINE_NAMES

# CIFAR-100 fine label -> coarse label (the CIFAR-100 archive's own fine/coarse pairs, as the widely
# used sparse2coarse table lists them).
COARSE = [
    int(c)
    for c in (
        "4 1 14 8 0 6 7 7 18 3 3 14 9 18 7 11 3 9 7 11 6 11 5 10 7 6 13 15 3 15 0 11 1 10 12 14 16 9 11 5 "
        "5 19 8 8 15 13 14 17 18 10 16 4 17 4 2 0 17 4 18 17 10 3 2 12 12 16 12 1 9 19 "
        "2 10 0 1 16 12 9 13 15 13 16 19 2 4 6 19 5 5 8 19 18 1 2 15 6 0 17 8 14 13"
    ).split()
]

FC100_FINE = {  # the fine classes of each FC100 split (TADAM's superclass split), for assertions
    "train": [
        0,
        1,
        5,
        8,
        9,
        10,
        12,
        13,
        16,
        17,
        20,
        22,
        23,
        25,
        27,
        28,
        29,
        32,
        33,
        37,
        39,
        40,
        41,
        44,
        47,
        48,
        49,
        51,
        52,
        53,
        54,
        56,
        57,
        58,
        59,
        60,
        61,
        62,
        67,
        68,
        69,
        70,
        71,
        73,
        76,
        78,
        81,
        82,
        83,
        84,
        85,
        86,
        87,
        89,
        90,
        91,
        92,
        93,
        94,
        96,
    ],
    "val": [3, 15, 19, 21, 26, 31, 36, 38, 42, 43, 45, 50, 65, 74, 77, 79, 80, 88, 97, 99],
    "test": [2, 4, 6, 7, 11, 14, 18, 24, 30, 34, 35, 46, 55, 63, 64, 66, 72, 75, 95, 98],
}


def label_image(label: int, index: int, size: int = 32) -> np.ndarray:
    """HWC uint8 whose red channel is the label and green the index: decodable after loading."""
    image = np.zeros((size, size, 3), dtype=np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = label, index % 256, 200
    return image


def _dump(path: Path, data: dict, bytes_keys: bool) -> None:
    if bytes_keys:  # what a Python 2 pickle read with encoding='bytes' looks like
        data = {k.encode(): v for k, v in data.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(data, f, protocol=2)


def write_cifar(root: Path, train_per_class: int = 2, test_per_class: int = 1, bytes_keys: bool = False) -> Path:
    folder = root / "cifar-100-python"
    for part, per_class in (("train", train_per_class), ("test", test_per_class)):
        fine = [c for c in range(100) for _ in range(per_class)]
        index = [i + (train_per_class if part == "test" else 0) for c in range(100) for i in range(per_class)]
        images = np.stack([label_image(c, i).transpose(2, 0, 1).reshape(-1) for c, i in zip(fine, index)])
        _dump(
            folder / part,
            {
                "data": images,
                "fine_labels": fine,
                "coarse_labels": [COARSE[c] for c in fine],
                "filenames": [f"{c}_{i}.png" for c, i in zip(fine, index)],
                "batch_label": f"{part} batch 1 of 1",
            },
            bytes_keys,
        )
    _dump(
        folder / "meta",
        {"fine_label_names": FINE_NAMES, "coarse_label_names": [f"super{i}" for i in range(20)]},
        bytes_keys,
    )
    return folder


def write_fc100_pickles(root: Path, per_class: int = 3, bytes_keys: bool = False) -> Path:
    for split, classes in FC100_FINE.items():
        labels = [c for c in classes for _ in range(per_class)]
        images = np.stack([label_image(c, i % per_class) for i, c in enumerate(labels)])
        _dump(root / f"FC100_{split}.pickle", {"data": images, "labels": labels}, bytes_keys)
    return root


MINI_SPLITS = {
    "train": ["n00000001", "n00000002", "n00000003"],
    "val": ["n00000011", "n00000012", "n00000013"],
    "test": ["n00000021", "n00000022", "n00000023"],
}  # 3 classes per split for tests


def mini_wnids(train: int, val: int, test: int) -> dict[str, list[str]]:
    """Fake wnids n000000XX; the last two digits tell the class apart in the red channel."""
    counts, start, out = {"train": train, "val": val, "test": test}, 1, {}
    for split, count in counts.items():
        out[split] = [f"n{start + i:08d}" for i in range(count)]
        start += count
    return out


def _mini_image(wnid: str, index: int, odd: bool, noise: bool = False) -> Image.Image:
    size = (100, 60) if odd else (84, 84)  # some images of another size, as in the circulated zip
    if noise:
        pixels = np.random.default_rng([int(wnid[1:]), index]).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        return Image.fromarray(pixels)
    return Image.fromarray(
        np.full((size[1], size[0], 3), (int(wnid[-2:]) * 10 % 256, index * 20 % 256, 90), dtype=np.uint8)
    )


def write_mini_csv(
    root: Path, per_class: int = 4, splits: dict[str, list[str]] = MINI_SPLITS, noise: bool = False
) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    for split, wnids in splits.items():
        lines = ["filename,label"]
        for wnid in wnids:
            for i in range(per_class):
                name = f"{wnid}{i:08d}.jpg"
                _mini_image(wnid, i, odd=i % 2 == 1, noise=noise).save(root / "images" / name, quality=95)
                lines.append(f"{name},{wnid}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


def write_mini_folders(root: Path, per_class: int = 4) -> Path:
    for split, wnids in MINI_SPLITS.items():
        for wnid in wnids:
            (root / split / wnid).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                _mini_image(wnid, i, odd=False).save(root / split / wnid / f"{wnid}{i:08d}.jpg", quality=95)
    return root


def write_mini_pickles(
    root: Path,
    per_class: int = 4,
    val_name: str = "validation",
    bytes_keys: bool = False,
    splits: dict[str, list[str]] = MINI_SPLITS,
) -> Path:
    for split, wnids in splits.items():
        images = np.stack([np.asarray(_mini_image(w, i, odd=False)) for w in wnids for i in range(per_class)])
        class_dict = {w: list(range(k * per_class, (k + 1) * per_class)) for k, w in enumerate(wnids)}
        name = val_name if split == "val" else split
        _dump(root / f"mini-imagenet-cache-{name}.pkl", {"image_data": images, "class_dict": class_dict}, bytes_keys)
    return root
