"""FC100 (Oreshkin et al., 2018): CIFAR-100 split by superclass, 60 / 20 / 20 classes of 600 images.

Formats (docs/datasets.md):
  cifar    the CIFAR-100 python archive folder `cifar-100-python/{train,test,meta}`; train and
           test are pooled and split by coarse (superclass) label
  pickles  `FC100_{train,val,test}.pickle` (MetaOptNet / learn2learn): {'data': [N,32,32,3],
           'labels': CIFAR fine labels}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anil.config import DatasetConfig
from anil.data.cache import cached, fingerprint, tag
from anil.data.locate import Marker, find_format
from anil.data.readers import group_by_label, image_array, label_array, read_pickle, require, resize_hwc
from anil.data.split import SPLITS, DatasetError, Splits

# Superclass ids per split: the split of Oreshkin et al. (TADAM, NeurIPS 2018), docs/datasets.md.
SUPERCLASSES = {
    "train": {1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19},
    "val": {8, 11, 13, 16},
    "test": {0, 7, 12, 14},
}

FINE_NAMES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()

PICKLES = tuple(f"FC100_{s}.pickle" for s in SPLITS)  # train, val, test
FORMATS: dict[str, tuple[Marker, ...]] = {"cifar": ("train", "test"), "pickles": PICKLES}
LOOKED_FOR = {"cifar": "cifar-100-python/{train,test,meta}", "pickles": "FC100_{train,val,test}.pickle"}


def load(config: DatasetConfig) -> Splits:
    fmt, folder = find_format("fc100", config, FORMATS, LOOKED_FOR, prefer=("cifar-100-python", "FC100"))
    if fmt == "cifar":
        files = [folder / "train", folder / "test"] + ([folder / "meta"] if (folder / "meta").exists() else [])
        decode = lambda: _from_cifar(folder, config.image_size)  # noqa: E731
    else:
        files = [folder / name for name in PICKLES]
        decode = lambda: _from_pickles(folder, config.image_size)  # noqa: E731
    key = fingerprint(files, f"size={config.image_size}")
    images = sum(f.stat().st_size for f in files if f.name != "meta") // (3 * 32 * 32)  # 32x32 RGB each, at most
    size = images * 3 * config.image_size**2
    return cached(f"fc100-{fmt}-{tag(str(folder.resolve()))}", str(folder), key, config.cache_dir, decode, size)


def _from_cifar(folder: Path, size: int) -> Splits:
    images, fine, coarse = [], [], []
    for part in ("train", "test"):
        path = folder / part
        data = read_pickle(path)
        require(data, ("data", "fine_labels", "coarse_labels"), path)
        pixels = image_array(data, "data", path, "(N, 3072)")
        if pixels.ndim != 2 or pixels.shape[1] != 3 * 32 * 32:
            raise DatasetError(f"{path}: 'data' is {pixels.dtype} {pixels.shape}, expected uint8 (N, 3072)")
        # Each row: 1024 R, 1024 G, 1024 B, row-major 32x32: already [3, 32, 32] once reshaped.
        images.append(pixels.reshape(-1, 3, 32, 32))
        fine.append(label_array(data, "fine_labels", len(pixels), path))
        coarse.append(label_array(data, "coarse_labels", len(pixels), path))
    images_all, fine_all, coarse_all = np.concatenate(images), np.concatenate(fine), np.concatenate(coarse)
    if size != 32:
        images_all = resize_hwc(images_all.transpose(0, 2, 3, 1), size)
    names = _fine_names(folder)
    source = str(folder)
    splits = []
    for split in SPLITS:
        keep = np.isin(coarse_all, list(SUPERCLASSES[split]))
        splits.append(group_by_label(images_all[keep], fine_all[keep], names, source))
    return Splits(*splits)


def _fine_names(folder: Path) -> dict[int, str]:
    """The 100 class names from the archive's `meta` (CIFAR-100's own list when it is absent)."""
    meta_path = folder / "meta"
    if not meta_path.exists():
        return dict(enumerate(FINE_NAMES))
    meta = read_pickle(meta_path)
    names = meta.get("fine_label_names")
    if not isinstance(names, (list, tuple)) or len(names) != 100 or not all(isinstance(n, (str, bytes)) for n in names):
        raise DatasetError(
            f"{meta_path}: 'fine_label_names' is not a list of the 100 class names; "
            "restore meta from the CIFAR-100 archive (or delete it: anil knows the names)"
        )
    return {i: n.decode() if isinstance(n, bytes) else n for i, n in enumerate(names)}


def _from_pickles(folder: Path, size: int) -> Splits:
    splits = []
    for name in PICKLES:
        path = folder / name
        data = read_pickle(path)
        require(data, ("data", "labels"), path)
        pixels = image_array(data, "data", path, "(N, 32, 32, 3)")
        if pixels.ndim != 4 or pixels.shape[3] != 3:
            raise DatasetError(f"{path}: 'data' is {pixels.dtype} {pixels.shape}, expected uint8 (N, 32, 32, 3)")
        labels = label_array(data, "labels", len(pixels), path)
        splits.append(group_by_label(resize_hwc(pixels, size), labels, dict(enumerate(FINE_NAMES)), str(path)))
    return Splits(*splits)
