"""FC100 and miniImageNet from every supported on-disk format, the decoded cache, and bad input."""

import re

import numpy as np
import pytest

from anil.config import DatasetConfig, GeometryConfig, TrainConfig
from anil.data import DatasetError, load_splits
from anil.data.fc100 import FINE_NAMES
from anil.run.outcome import Status
from anil.run.trainer import run
from helpers import anil, reload_from_cache
from helpers import formats as fixtures


def fc100(root, cache, **changes):
    return DatasetConfig(name="fc100", root=str(root), image_size=32, cache_dir=str(cache), **changes)


def mini(root, cache, **changes):
    return DatasetConfig(name="miniimagenet", root=str(root), image_size=84, cache_dir=str(cache), **changes)


def fine_ids(split):
    return sorted(FINE_NAMES.index(n) for n in split.names)


def assert_label_images(split):
    """Each class holds only its own images (fixtures paint the label into the red channel)."""
    for c, (start, count) in enumerate(zip(split.offsets, split.counts)):
        reds = split.images[start : start + count, 0]
        assert (reds == FINE_NAMES.index(split.names[c])).all()


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_fc100_from_cifar_follows_the_superclass_split(tmp_path, bytes_keys):
    fixtures.write_cifar(tmp_path / "data", bytes_keys=bytes_keys)
    splits = load_splits(fc100(tmp_path / "data", tmp_path / "cache"))  # the parent of cifar-100-python/
    for name, expected in fixtures.FC100_FINE.items():
        split = splits.split(name)
        assert fine_ids(split) == expected
        assert (split.counts == 3).all()  # 2 train + 1 test images pooled
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert_label_images(split)
        assert (split.images[:, 2] == 200).all()  # channels kept apart: blue stays blue
    assert sorted(splits.train.images[:3, 1, 0, 0].tolist()) == [0, 1, 2]  # train and test both present


@pytest.mark.parametrize("bytes_keys", [False, True])
def test_fc100_from_pickles(tmp_path, bytes_keys):
    fixtures.write_fc100_pickles(tmp_path / "FC100", bytes_keys=bytes_keys)
    splits = load_splits(fc100(tmp_path / "FC100", tmp_path / "cache"))
    assert [len(splits.split(s).counts) for s in ("train", "val", "test")] == [60, 20, 20]
    for name, expected in fixtures.FC100_FINE.items():
        assert fine_ids(splits.split(name)) == expected
        assert_label_images(splits.split(name))
        assert (splits.split(name).images[:, 2] == 200).all()  # HWC turned into CHW


def check_mini(splits):
    for name, wnids in fixtures.MINI_SPLITS.items():
        split = splits.split(name)
        assert split.names == wnids and (split.counts == 4).all()
        assert split.images.shape[1:] == (3, 84, 84) and split.images.dtype == np.uint8
        for c, wnid in enumerate(wnids):
            red = split.images[split.offsets[c] : split.offsets[c] + 4, 0].astype(int)
            assert np.abs(red - int(wnid[-2:]) * 10).max() <= 3  # JPEG is lossy


@pytest.mark.parametrize("writer", [fixtures.write_mini_csv, fixtures.write_mini_folders, fixtures.write_mini_pickles])
def test_miniimagenet_formats(tmp_path, writer):
    writer(tmp_path / "mini")
    check_mini(load_splits(mini(tmp_path, tmp_path / "cache")))  # root = the parent folder


@pytest.mark.parametrize("escape", ["../../outside.jpg", "ABSOLUTE", "link.jpg"])
def test_miniimagenet_split_files_cannot_read_outside_the_images_folder(tmp_path, escape):
    root = fixtures.write_mini_csv(tmp_path / "data" / "mini")
    outside = tmp_path / "outside.jpg"
    (root / "images" / "n0000000100000000.jpg").rename(outside)  # a real image, now outside the root
    if escape == "ABSOLUTE":
        escape = str(outside)
    if escape == "link.jpg":
        (root / "images" / "link.jpg").symlink_to(outside)
    listing = root / "train.csv"
    lines = listing.read_text().splitlines()
    lines[1] = f"{escape},{lines[1].split(',')[1]}"
    listing.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=rf"train.csv line 2: image '{re.escape(escape)}' lies outside .*images"):
        load_splits(mini(root, tmp_path / "cache", format="csv"))


def test_miniimagenet_folders_do_not_follow_links_out_of_the_root(tmp_path):
    root = fixtures.write_mini_folders(tmp_path / "mini")
    image = next((root / "train").rglob("*.jpg"))
    outside = tmp_path / "outside.jpg"
    image.rename(outside)
    image.symlink_to(outside)
    with pytest.raises(DatasetError, match="is a link to a file outside"):
        load_splits(mini(root, tmp_path / "cache", format="folders"))


def test_miniimagenet_pickles_named_val_and_bytes_keys(tmp_path):
    fixtures.write_mini_pickles(tmp_path / "mini", val_name="val", bytes_keys=True)
    check_mini(load_splits(mini(tmp_path / "mini", tmp_path / "cache")))


def test_format_can_be_forced(tmp_path):
    fixtures.write_mini_csv(tmp_path / "mini")
    fixtures.write_mini_pickles(tmp_path / "mini")
    forced = load_splits(mini(tmp_path / "mini", tmp_path / "cache", format="pickles"))
    assert forced.train.source.endswith("mini-imagenet-cache-train.pkl")
    with pytest.raises(DatasetError, match="no miniimagenet data in format folders in"):
        load_splits(mini(tmp_path / "mini", tmp_path / "cache", format="folders"))


def test_cache_is_reused_then_invalidated(tmp_path, monkeypatch):
    import anil.data.fc100 as module

    fixtures.write_fc100_pickles(tmp_path / "FC100")
    config = fc100(tmp_path / "FC100", tmp_path / "cache")
    first = load_splits(config)
    assert len([p for p in (tmp_path / "cache" / "decoded").iterdir() if p.is_dir()]) == 1
    second = reload_from_cache(config, monkeypatch, module, "_from_pickles")
    assert np.array_equal(first.train.images, second.train.images) and first.val.names == second.val.names
    fixtures.write_fc100_pickles(tmp_path / "FC100", per_class=4)  # the source changes
    assert (load_splits(config).train.counts == 4).all()


def test_read_only_cache_location_falls_back_to_a_temporary_one(tmp_path, caplog):
    fixtures.write_fc100_pickles(tmp_path / "FC100")
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")  # cannot be written into, even as root
    splits = load_splits(fc100(tmp_path / "FC100", blocker / "cache"))
    assert len(splits.test.counts) == 20
    assert "cannot write the decoded cache" in caplog.text and "instead" in caplog.text


def no_cache_left(cache):
    """No entry and no staging folder (the entry's lock file may stay: it is empty)."""
    decoded = cache / "decoded"
    return not decoded.exists() or not any(p.is_dir() or p.suffix == ".npy" for p in decoded.rglob("*"))


@pytest.mark.parametrize(
    "make,config,message",
    [
        (lambda r: None, lambda r, c: fc100(r / "missing", c), "dataset.root=.*missing does not exist"),
        (
            lambda r: (r / "empty").mkdir(),
            lambda r, c: fc100(r / "empty", c),
            r"no fc100 data in .*empty: looked for "
            r"cifar-100-python/\{train,test,meta\} or FC100_\{train,val,test\}.pickle",
        ),
        (lambda r: (r / "empty").mkdir(), lambda r, c: mini(r / "empty", c), r"looked for \{train,val,test\}.csv"),
        (  # a forced format names only its own files
            lambda r: (r / "empty").mkdir(),
            lambda r, c: fc100(r / "empty", c, format="cifar"),
            r"no fc100 data in format cifar in .*empty: looked for cifar-100-python/\{train,test,meta\} there",
        ),
        (  # a root that links back to itself
            lambda r: ((r / "a").symlink_to(r / "b"), (r / "b").symlink_to(r / "a")),
            lambda r, c: fc100(r / "a", c),
            r"dataset.root=.*a is a symlink loop",
        ),
    ],
)
def test_missing_or_empty_roots(tmp_path, make, config, message):
    make(tmp_path)
    with pytest.raises(DatasetError, match=message):
        load_splits(config(tmp_path, tmp_path / "cache"))


def test_truncated_pickle(tmp_path):
    fixtures.write_fc100_pickles(tmp_path / "FC100")
    path = tmp_path / "FC100" / "FC100_val.pickle"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DatasetError, match=r"cannot read .*FC100_val.pickle: truncated or not a pickle"):
        load_splits(fc100(tmp_path / "FC100", tmp_path / "cache"))
    assert no_cache_left(tmp_path / "cache")


def test_html_saved_as_a_pickle(tmp_path):
    folder = fixtures.write_cifar(tmp_path)
    (folder / "train").write_bytes(b"<!DOCTYPE html><html><body>Rate limit exceeded</body></html>")
    with pytest.raises(DatasetError, match=r"cifar-100-python/train: an HTML page, not the dataset"):
        load_splits(fc100(tmp_path, tmp_path / "cache"))
    assert no_cache_left(tmp_path / "cache")


def test_corrupt_image_leaves_no_partial_cache(tmp_path):
    fixtures.write_mini_csv(tmp_path / "mini")
    bad = tmp_path / "mini" / "images" / "n0000001200000002.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.raises(DatasetError, match=r"cannot decode image .*n0000001200000002.jpg"):
        load_splits(mini(tmp_path / "mini", tmp_path / "cache"))
    assert no_cache_left(tmp_path / "cache")


def test_missing_image_named(tmp_path):
    fixtures.write_mini_csv(tmp_path / "mini")
    (tmp_path / "mini" / "images" / "n0000002100000003.jpg").unlink()
    with pytest.raises(DatasetError, match=r"missing image .*n0000002100000003.jpg"):
        load_splits(mini(tmp_path / "mini", tmp_path / "cache"))


def test_an_image_that_is_a_symlink_loop_is_named(tmp_path):
    fixtures.write_mini_csv(tmp_path / "mini")
    looped = tmp_path / "mini" / "images" / "n0000002100000003.jpg"
    looped.unlink()
    looped.symlink_to(looped)  # a link that leads back to itself
    with pytest.raises(DatasetError, match=r"cannot read .*n0000002100000003.jpg: is a symlink loop"):
        load_splits(mini(tmp_path / "mini", tmp_path / "cache"))
    assert no_cache_left(tmp_path / "cache")


def small_run_config(dataset, **changes):
    values = dict(
        ways=2,
        shots=1,
        query=1,
        B=2,
        iterations=2,
        eval_every=1,
        eval_tasks=2,
        N=2,
        device="cpu",
        dataset=dataset,
        geometry=GeometryConfig("convex"),
    )
    values.update(changes)
    return TrainConfig(**values)


def test_too_few_classes_or_images_for_the_task(tmp_path):
    fixtures.write_mini_folders(tmp_path / "mini")
    data = mini(tmp_path / "mini", tmp_path / "cache")
    with pytest.raises(DatasetError, match=r"split train of .*train has 3 classes, fewer than ways=5"):
        run(small_run_config(data, ways=5), tmp_path / "run")
    with pytest.raises(
        DatasetError, match=r"class n00000001 in split train of .* has 4 images, fewer than shots \+ query = 6"
    ):
        run(small_run_config(data, shots=3, query=3), tmp_path / "run")


@pytest.mark.parametrize(
    "writer,name",
    [
        (fixtures.write_cifar, "fc100"),
        (fixtures.write_fc100_pickles, "fc100"),
        (fixtures.write_mini_csv, "miniimagenet"),
        (fixtures.write_mini_folders, "miniimagenet"),
        (fixtures.write_mini_pickles, "miniimagenet"),
    ],
)
def test_training_runs_on_each_fixture_format(tmp_path, writer, name):
    writer(tmp_path / "data")
    data = (fc100 if name == "fc100" else mini)(tmp_path / "data", tmp_path / "cache")
    (tmp_path / "run").mkdir()
    summary = run(small_run_config(data), tmp_path / "run")
    assert summary.status is Status.COMPLETED
    assert (tmp_path / "run" / "metrics.csv").read_text().count("\n") == 3


def test_command_line_error_is_one_line(tmp_path):
    missing = tmp_path / "nowhere"
    result = anil("train", "dataset=fc100", f"dataset.root={missing}", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"anil train: dataset.root={missing} does not exist; point it at the folder holding "
        "cifar-100-python/{train,test,meta} or FC100_{train,val,test}.pickle"
    ]
    assert not (tmp_path / "run" / "metrics.csv").exists()
