"""The embedded datasets and the vectorised task sampler."""

import numpy as np
import pytest
import torch

from anil.config import DatasetConfig
from anil.data import load_splits
from anil.data.sampler import TaskSampler
from anil.data.strokes import StrokeParseError, parse_path, parse_svg_strokes


def small(name, **changes):
    values = dict(name=name, train_classes=30, val_classes=8, test_classes=8, instances=6)
    values.update(changes)
    return DatasetConfig(**values)


@pytest.mark.parametrize("name", ["embedded", "procedural"])
def test_splits_are_disjoint_and_well_formed(name):
    splits = load_splits(small(name))
    sizes = {s: len(splits.names[s]) for s in ("train", "val", "test")}
    assert sizes == {"train": 30, "val": 8, "test": 8}
    names = [set(splits.names[s]) for s in ("train", "val", "test")]
    assert sum(map(len, names)) == len(set().union(*names)) == 46  # no class in two splits
    for split in ("train", "val", "test"):
        images = splits.split(split)
        assert images.dtype == np.uint8 and images.shape[1:] == (6, 1, 28, 28)
        assert images.max() == 255 and images.mean() > 5  # strokes were drawn
        flat = images.reshape(len(images), 6, -1)
        assert not np.array_equal(flat[:, 0], flat[:, 1])  # instances differ (jitter)


def test_embedded_classes_are_cjk_characters():
    names = load_splits(small("embedded")).names["train"]
    assert all(len(n) == 1 and 0x4E00 <= ord(n) < 0xA000 for n in names)


def test_second_load_reads_the_cache(dataset_cache):
    config = small("procedural", train_classes=12)
    first = load_splits(config)
    cached = list(dataset_cache.glob("procedural-28px-12-*.npz"))
    assert len(cached) == 1 and not list(dataset_cache.glob("*.tmp"))
    second = load_splits(config)
    assert np.array_equal(first.train, second.train) and first.names == second.names


def test_corrupt_cache_is_rendered_again(dataset_cache):
    config = small("procedural", train_classes=13)
    first = load_splits(config)
    path = next(dataset_cache.glob("procedural-28px-13-*.npz"))
    path.write_bytes(b"<html>not an npz</html>")
    again = load_splits(config)
    assert np.array_equal(first.train, again.train)


def test_parse_path_absolute_and_relative():
    line = parse_path("M10,20L30,40")
    assert np.allclose(line, [[10, 20], [30, 40]])
    curve = parse_path("M10,20c0,0,10,0,10,10s5,5,5,5")
    assert np.allclose(curve[0], [10, 20]) and np.allclose(curve[-1], [25, 35])
    assert len(curve) == 1 + 2 * 8


def test_parse_svg_reads_every_stroke():
    svg = '<g><path id="a" d="M1,2L3,4"/><path id="b" kvg:type="x" d="M5,6l1,1"/></g>'
    strokes = parse_svg_strokes(svg)
    assert len(strokes) == 2 and np.allclose(strokes[1][-1], [6, 7])


def test_parse_path_rejects_garbage():
    with pytest.raises(StrokeParseError):
        parse_path("12,13")
    with pytest.raises(StrokeParseError):
        parse_path("M1,2C3")


def images_with_ids(classes=10, instances=8):
    """Each pixel holds (class, instance) so a sampled task can be decoded."""
    ids = torch.arange(classes * instances, dtype=torch.uint8).reshape(classes, instances, 1, 1, 1)
    return ids.expand(classes, instances, 1, 2, 2).clone()


def test_sampler_draws_distinct_classes_and_images():
    sampler = TaskSampler(images_with_ids(), ways=4, shots=2, query=3, generator=torch.Generator().manual_seed(0))
    batch = sampler.sample(16)
    assert batch.images.shape == (16, 4, 5, 1, 2, 2)
    ids = batch.images[..., 0, 0, 0].long()  # [B, ways, k+q]
    classes, instances = ids // 8, ids % 8
    assert (classes == classes[..., :1]).all()  # one class per row
    for task in range(16):
        assert len(set(classes[task, :, 0].tolist())) == 4
        for way in range(4):
            assert len(set(instances[task, way].tolist())) == 5
    assert len(set(map(tuple, classes[:, :, 0].tolist()))) > 1  # tasks differ


def test_sampler_is_repeatable_for_a_seed():
    a = TaskSampler(images_with_ids(), 3, 1, 1, torch.Generator().manual_seed(7)).sample(4).images
    b = TaskSampler(images_with_ids(), 3, 1, 1, torch.Generator().manual_seed(7)).sample(4).images
    assert torch.equal(a, b)


def test_sampler_rejects_impossible_tasks():
    with pytest.raises(ValueError, match="fewer than ways"):
        TaskSampler(images_with_ids(classes=3), ways=5, shots=1, query=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="shots \\+ query"):
        TaskSampler(images_with_ids(instances=4), ways=2, shots=3, query=2, generator=torch.Generator())
