"""The embedded datasets and the vectorised task sampler."""

import numpy as np
import pytest
import torch

from anil.config import DatasetConfig
from anil.data import embedded, load_splits
from anil.data.sampler import TaskSampler
from anil.data.split import DatasetError, Split
from anil.data.strokes import StrokeParseError, parse_path, parse_svg_strokes
from helpers import reload_from_cache


def small(name, **changes):
    values = dict(name=name, train_classes=30, val_classes=8, test_classes=8, instances=6)
    values.update(changes)
    return DatasetConfig(**values)


@pytest.mark.parametrize("name", ["embedded", "procedural"])
def test_splits_are_disjoint_and_well_formed(name):
    splits = load_splits(small(name))
    sizes = {s: len(splits.split(s).names) for s in ("train", "val", "test")}
    assert sizes == {"train": 30, "val": 8, "test": 8}
    names = [set(splits.split(s).names) for s in ("train", "val", "test")]
    assert sum(map(len, names)) == len(set().union(*names)) == 46  # no class in two splits
    for split in ("train", "val", "test"):
        images = splits.split(split).images.reshape(-1, 6, 1, 28, 28)
        assert images.dtype == np.uint8 and (splits.split(split).counts == 6).all()
        assert images.max() == 255 and images.mean() > 5  # strokes were drawn
        flat = images.reshape(len(images), 6, -1)
        assert not np.array_equal(flat[:, 0], flat[:, 1])  # instances differ (jitter)


def test_the_hard_configuration_draws_the_same_characters_harder():
    """embedded_hard: the same KanjiVG classes, drawn with wider deformations and distractor strokes
    (more ink, less alike within a class); its own cache entry, and the default's key is unchanged."""
    easy = load_splits(small("embedded")).train
    cluttered = load_splits(small("embedded_hard", clutter=3)).train
    distorted = load_splits(small("embedded_hard", jitter=0.0, distortion=2.0)).train
    rigid = load_splits(small("embedded_hard", jitter=0.0, distortion=0.0)).train  # only scale and pen vary
    assert cluttered.names == distorted.names == easy.names  # the same characters in the same splits
    ink = lambda split: (split.images > 127).mean()  # noqa: E731
    assert ink(cluttered) > 1.05 * ink(easy)  # three clutter strokes per image add ink

    def within_class(split):  # mean distance between two drawings of one class
        images = split.images.reshape(-1, 6, 28 * 28).astype(np.float64)
        return np.abs(images[:, 0] - images[:, 1]).mean()

    assert within_class(distorted) > 1.2 * within_class(rigid)
    assert "clutter" not in embedded._settings(small("embedded"))  # old caches of the default stay valid
    assert "clutter=3" in embedded._settings(small("embedded", clutter=3))


def test_embedded_classes_are_cjk_characters():
    names = load_splits(small("embedded")).train.names
    assert all(len(n) == 1 and 0x4E00 <= ord(n) < 0xA000 for n in names)


def cache_folders(cache, name):
    return sorted((cache / "decoded").glob(f"{name}-*"))


def test_second_load_reads_the_cache(dataset_cache, monkeypatch):
    config = small("procedural", train_classes=12)
    first = load_splits(config)
    folders = cache_folders(dataset_cache, "procedural")
    assert folders and all((f / "source.json").exists() for f in folders)
    second = reload_from_cache(config, monkeypatch, embedded, "_render_splits")
    assert np.array_equal(first.train.images, second.train.images) and first.train.names == second.train.names


def test_corrupt_cache_is_rendered_again(dataset_cache):
    config = small("procedural", train_classes=13)
    before = set(cache_folders(dataset_cache, "procedural"))
    first = load_splits(config)
    (folder,) = set(cache_folders(dataset_cache, "procedural")) - before
    (folder / "train.npy").write_bytes(b"<html>not an array</html>")
    again = load_splits(config)
    assert np.array_equal(first.train.images, again.train.images)


def test_a_new_kanjivg_version_renders_again(dataset_cache, monkeypatch):
    config = small("embedded", train_classes=9)
    load_splits(config)
    before = set(cache_folders(dataset_cache, "embedded"))
    monkeypatch.setattr(embedded, "_kanjivg_version", lambda: "9999.0")
    load_splits(config)
    assert len(set(cache_folders(dataset_cache, "embedded")) - before) == 1  # a cache of its own


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


def split_with_ids(counts):
    """Each image's pixels hold its global index, so a sampled task can be decoded."""
    total = sum(counts)
    images = np.arange(total, dtype=np.int64).reshape(total, 1, 1, 1).repeat(2, axis=2).repeat(2, axis=3)
    return Split(images.astype(np.uint8), np.array(counts), [f"c{i}" for i in range(len(counts))], "ids")


def test_sampler_draws_distinct_classes_and_images():
    counts = [8, 5, 9, 6, 7, 8, 5, 10, 6, 8]  # unequal class sizes, as real folders can have
    split = split_with_ids(counts)
    sampler = TaskSampler(split, ways=4, shots=2, query=3, generator=torch.Generator().manual_seed(0))
    batch = sampler.sample(64)
    assert batch.images.shape == (64, 4, 5, 1, 2, 2)
    index = batch.images[..., 0, 0, 0].long()  # [B, ways, k+q]
    owner = torch.from_numpy(np.repeat(np.arange(len(counts)), counts))[index]  # class of each image
    assert (owner == owner[..., :1]).all()  # one class per row
    for task in range(64):
        assert len(set(owner[task, :, 0].tolist())) == 4
        for way in range(4):
            assert len(set(index[task, way].tolist())) == 5  # no image twice
    assert len(set(map(tuple, owner[:, :, 0].tolist()))) > 1  # tasks differ
    drawn = set(index[owner == 1].tolist())
    assert drawn == set(range(8, 13))  # every image of the 5-image class is reachable, none beyond


def test_sampler_is_repeatable_for_a_seed():
    split = split_with_ids([4] * 6)
    a = TaskSampler(split, 3, 1, 1, torch.Generator().manual_seed(7)).sample(4).images
    b = TaskSampler(split, 3, 1, 1, torch.Generator().manual_seed(7)).sample(4).images
    assert torch.equal(a, b)


def test_sampler_rejects_impossible_tasks():
    with pytest.raises(DatasetError, match="split train of ids has 3 classes, fewer than ways=5"):
        TaskSampler(split_with_ids([4, 4, 4]), ways=5, shots=1, query=1, generator=torch.Generator())
    with pytest.raises(DatasetError, match="class c1 in split val of ids has 3 images, fewer than shots \\+ query = 5"):
        TaskSampler(split_with_ids([6, 3, 6]), ways=2, shots=3, query=2, generator=torch.Generator(), name="val")


def test_rendering_shows_progress_on_a_terminal_only(monkeypatch, capsys):
    from anil.data import progress

    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    load_splits(small("procedural", train_classes=7))
    assert "rendering dataset=procedural train" in capsys.readouterr().err
    monkeypatch.setattr(progress, "enabled", False)  # what a multirun sweep sets
    load_splits(small("procedural", train_classes=8))
    assert "rendering" not in capsys.readouterr().err


def test_work_off_a_terminal_says_what_it_does_and_how_long_it_will_take(monkeypatch, caplog):
    """Rendering or decoding in a log (no terminal): a line at the start, an estimate once the
    rate is known, and the time it took."""
    from anil.data import progress

    clock = iter(range(0, 1000))  # one second per item
    monkeypatch.setattr(progress.time, "perf_counter", lambda: float(next(clock)))
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    with caplog.at_level("INFO", logger="anil.data.progress"):
        assert list(progress.bar(range(10), 10, "rendering embedded train", "class")) == list(range(10))
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "rendering embedded train: 10 classes (done once, then read from the cache)"
    assert lines[1] == "rendering embedded train: 2 of 10 classes in 2 s, about 8 s left"
    assert lines[-1].startswith("rendering embedded train: done in")
