"""data=geotiff data.cache=true: chips extracted once, reused, rebuilt when an input changes, never
read half-written (a crash mid-build is simulated), checked on every reuse (damaged arrays are named
and rebuilt), a full disk an ordinary error, concurrent builds and old keys handled."""

from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from clay_exp.data.geotiff import GeoTiffDataModule, chip_cache
from clay_exp.data.geotiff.chip_cache import CachedChips, ChipCache
from clay_exp.data.geotiff.demo import write_demo_geotiffs
from clay_exp.files import DiskFullError
from tests.helpers import FullDisk


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo_geotiffs")
    write_demo_geotiffs(folder, size=64)
    return folder


def make_dm(demo_dir: Path, cache_dir: Path, **kwargs) -> GeoTiffDataModule:
    settings = dict(paths=str(demo_dir), batch_size=8, train_size=24, val_size=16, cache=True)
    return GeoTiffDataModule(**(settings | {"cache_dir": str(cache_dir)} | kwargs))


def cache_folders(cache_dir: Path) -> list[Path]:
    return sorted(p for p in cache_dir.iterdir() if ".tmp-" not in p.name)


def all_batches(loader) -> dict[str, torch.Tensor]:
    batches = list(loader)
    return {k: torch.cat([b[k] for b in batches]) for k in batches[0]}


def test_cache_is_built_once_then_reused(demo_dir, tmp_path, caplog):
    caplog.set_level("INFO", logger="clay_exp.data.geotiff")
    dm = make_dm(demo_dir, tmp_path)
    dm.setup("fit")
    assert "chip cache: building" in caplog.text
    (folder,) = cache_folders(tmp_path)
    assert folder.name.startswith("geotiff-") and (folder / "meta.json").exists()
    train, val = all_batches(dm.train_dataloader()), all_batches(dm.val_dataloader())
    assert train["image"].shape == (24, 4, 32, 32) and train["image"].dtype == torch.float32
    assert train["lat"].dtype == torch.float64 and set(train) == {"image", "lat", "lon"}
    assert val["image"].shape[0] == 16 and torch.isfinite(train["image"]).all()

    caplog.clear()
    again = make_dm(demo_dir, tmp_path)
    again.setup("fit")
    assert "chip cache: reusing" in caplog.text and "building" not in caplog.text
    assert cache_folders(tmp_path) == [folder]
    val_again = all_batches(again.val_dataloader())
    assert torch.equal(val_again["image"], val["image"]) and torch.equal(val_again["lat"], val["lat"])
    # the same chips every epoch, in a new order
    epoch0 = all_batches(again.train_dataloader())
    loader = again.train_dataloader()
    loader.sampler.set_epoch(1)
    epoch1 = all_batches(loader)
    assert not torch.equal(epoch0["lat"], epoch1["lat"])
    assert torch.equal(epoch0["lat"].sort().values, epoch1["lat"].sort().values)
    assert torch.equal(epoch0["lat"].sort().values, train["lat"].sort().values)
    # what reaches the model: tensors only
    moved = again.transfer_batch_to_device(next(iter(again.train_dataloader())), torch.device("cpu"), 0)
    assert set(moved) == {"image", "lat", "lon"}


def test_cached_chips_are_the_chips_read_live(demo_dir, tmp_path):
    dm = make_dm(demo_dir, tmp_path, val_size=12)
    dm.setup("fit")
    cached = all_batches(dm.val_dataloader())
    live = make_dm(demo_dir, tmp_path, val_size=12, cache=False)
    live.setup("fit")
    batches = list(live.val_dataloader())
    live_image = torch.cat([b["image"] for b in batches])
    assert torch.equal(cached["image"], live_image)
    assert torch.equal(cached["lat"], torch.cat([b["lat"] for b in batches]))


def test_cache_is_rebuilt_when_a_setting_or_a_file_changes(demo_dir, tmp_path, tmp_path_factory):
    make_dm(demo_dir, tmp_path).setup("fit")
    make_dm(demo_dir, tmp_path, seed=1).setup("fit")
    make_dm(demo_dir, tmp_path, chip_size=16).setup("fit")
    make_dm(demo_dir, tmp_path, mean=[1000.0] * 4, std=[500.0] * 4).setup("fit")
    assert len(cache_folders(tmp_path)) == 4
    make_dm(demo_dir, tmp_path, seed=1).setup("fit")  # seen before: no new folder
    assert len(cache_folders(tmp_path)) == 4

    copy = tmp_path_factory.mktemp("copy")
    write_demo_geotiffs(copy, size=64)
    first = make_dm(copy, tmp_path)
    first.setup("fit")
    touched = next(copy.glob("*.tif"))
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes, newer file
    second = make_dm(copy, tmp_path)
    second.setup("fit")
    assert len(cache_folders(tmp_path)) == 6


def test_seeds_fix_the_training_chips(demo_dir, tmp_path):
    a, b, c = (make_dm(demo_dir, tmp_path / name, seed=seed) for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    lats = []
    for dm in (a, b, c):
        dm.setup("fit")
        lats.append(torch.from_numpy(np.array(dm.cached["train"].arrays["lat"])))
    assert torch.equal(lats[0], lats[1]) and not torch.equal(lats[0], lats[2])


def test_a_crash_mid_build_leaves_nothing_that_is_read(demo_dir, tmp_path, monkeypatch, caplog):
    real_write = ChipCache._write_set

    def crash_on_val(folder, name, capacity, batches):
        if name == "val":  # the train arrays are written, the val ones are not
            real_write(folder, name, capacity, batches)  # half-written: arrays but no meta.json
            raise KeyboardInterrupt
        return real_write(folder, name, capacity, batches)

    monkeypatch.setattr(ChipCache, "_write_set", staticmethod(crash_on_val))
    with pytest.raises(KeyboardInterrupt):
        make_dm(demo_dir, tmp_path).setup("fit")
    assert cache_folders(tmp_path) == []  # nothing under a final name

    # a hard kill leaves the temporary folder behind: it is never read and is cleaned up
    monkeypatch.setattr(chip_cache.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        make_dm(demo_dir, tmp_path).setup("fit")
    monkeypatch.undo()
    (left,) = [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    dead = left.with_name(left.name.replace(f".tmp-{os.getpid()}-", ".tmp-999999999-"))
    left.rename(dead)

    caplog.set_level("INFO")
    dm = make_dm(demo_dir, tmp_path)
    dm.setup("fit")
    assert "chip cache: building" in caplog.text
    assert not dead.exists() and len(cache_folders(tmp_path)) == 1
    assert len(dm.cached["train"]) == 24 and len(dm.cached["val"]) == 16


def test_a_folder_without_complete_meta_is_rebuilt(demo_dir, tmp_path, caplog):
    dm = make_dm(demo_dir, tmp_path)
    dm.setup("fit")
    (folder,) = cache_folders(tmp_path)
    (folder / "meta.json").write_text('{"key": "trunc')  # a torn write
    caplog.set_level("INFO")
    again = make_dm(demo_dir, tmp_path)
    again.setup("fit")
    assert "chip cache: building" in caplog.text and len(again.cached["train"]) == 24


def test_region_split_caches_both_validation_sets(demo_dir, tmp_path):
    dm = make_dm(demo_dir, tmp_path, split="region", train_size=32)
    dm.setup("fit")
    assert set(dm.cached) == {"train", "val", "val_heldout"}
    seen, heldout = dm.val_dataloader()
    assert len(list(seen)) > 0 and len(list(heldout)) > 0


# -- damaged caches, full disks, concurrent builds, old keys (issue 23) -----------------------------
def damage_array(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "first bytes overwritten":
        path.write_bytes(b"\x00" * 64 + data[64:])
    else:  # most of the chips zeroed, size and header intact
        start, end = 128, 128 + (len(data) - 128) * 3 // 4
        path.write_bytes(data[:start] + b"\x00" * (end - start) + data[end:])


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("truncated", r"is \d+ bytes, meta\.json says \d+"),
        ("first bytes overwritten", "is not a readable .npy file"),
        ("zeroed", "does not match its SHA-256 in meta.json"),
    ],
)
def test_a_damaged_array_is_named_and_the_cache_rebuilt(demo_dir, tmp_path, caplog, how, reason):
    dm = make_dm(demo_dir, tmp_path)
    dm.setup("fit")
    good = {f: np.array(a) for f, a in dm.cached["train"].arrays.items()}
    del dm
    (folder,) = cache_folders(tmp_path)
    damage_array(folder / "train.image.npy", how)

    caplog.set_level("INFO")
    again = make_dm(demo_dir, tmp_path)
    again.setup("fit")
    assert re.search(rf"chip cache: {re.escape(str(folder / 'train.image.npy'))} {reason}", caplog.text)
    assert (
        f"the cache is damaged, rebuilding {folder}" in caplog.text and "chip cache: building" in caplog.text
    )
    assert cache_folders(tmp_path) == [folder] and not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    for field, values in again.cached["train"].arrays.items():
        assert np.array_equal(values, good[field])  # the same chips as before the damage


def test_an_array_damaged_after_the_check_names_its_file(tmp_path):
    (tmp_path / "train.image.npy").write_bytes(b"not an array")
    chips = CachedChips(tmp_path, "train", 4, ["image"])
    with pytest.raises(
        ValueError, match=rf"cannot read {re.escape(str(tmp_path / 'train.image.npy'))}.*delete"
    ):
        chips[0]


def test_a_full_disk_while_building_is_an_ordinary_error_that_leaves_nothing(demo_dir, tmp_path, monkeypatch):
    FullDisk(monkeypatch).fill_now()
    with pytest.raises(DiskFullError, match=r"to write .*train\.image\.npy .*data\.cache_dir") as info:
        make_dm(demo_dir, tmp_path).setup("fit")
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []  # the temporary build folder went with the error


def test_a_build_that_finds_another_finished_uses_it(demo_dir, tmp_path, monkeypatch, caplog):
    make_dm(demo_dir, tmp_path).setup("fit")
    (folder,) = cache_folders(tmp_path)
    meta = (folder / "meta.json").read_bytes()
    # A second process looked for the cache before the first had renamed it into place: it builds
    # too and finds the first's folder when it renames its own (no "Directory not empty" error).
    monkeypatch.setattr(ChipCache, "load", lambda self: None)
    caplog.set_level("INFO")
    second = make_dm(demo_dir, tmp_path)
    second.setup("fit")
    assert "was built by another process meanwhile; using it" in caplog.text
    assert cache_folders(tmp_path) == [folder] and (folder / "meta.json").read_bytes() == meta
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name] and len(second.cached["train"]) == 24


def test_stale_builds_are_removed_only_when_their_owner_is_known_to_be_gone(demo_dir, tmp_path):
    cache = ChipCache(tmp_path, make_dm(demo_dir, tmp_path).cache_settings(), prefix="geotiff")
    host, name = socket.gethostname(), cache.folder.name
    dead_here = tmp_path / f"{name}.tmp-999999999-aaaa-{host}"
    alive_here = tmp_path / f"{name}.tmp-{os.getpid()}-bbbb-{host}"
    other_node = tmp_path / f"{name}.tmp-999999999-cccc-node-b.cluster"  # its pid means nothing here
    other_node_old = tmp_path / f"{name}.tmp-999999999-dddd-node-c"
    for folder in (dead_here, alive_here, other_node, other_node_old):
        folder.mkdir()
    old = time.time() - chip_cache.FOREIGN_BUILD_STALE_S - 60
    os.utime(other_node_old, (old, old))
    cache.remove_stale_builds()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive_here.name, other_node.name])


def test_caches_unused_for_long_are_removed(demo_dir, tmp_path):
    old, recent, notes = (
        tmp_path / "geotiff-0123456789abcdef",
        tmp_path / "geotiff-fedcba9876543210",
        tmp_path / "notes",
    )
    for folder in (old, recent, notes):
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text("{}")
    long_ago = time.time() - 40 * 86400
    os.utime(old / "meta.json", (long_ago, long_ago))
    os.utime(notes / "meta.json", (long_ago, long_ago))
    make_dm(demo_dir, tmp_path, cache_max_age_days=None).setup("fit")
    assert old.exists()  # null keeps every cache
    make_dm(demo_dir, tmp_path, cache_max_age_days=30).setup("fit")
    assert not old.exists() and recent.exists() and notes.exists()
    with pytest.raises(ValueError, match="max_age_days=0 must be a positive number of days or null"):
        make_dm(demo_dir, tmp_path, cache_max_age_days=0).setup("fit")
