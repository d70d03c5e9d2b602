"""data=geotiff: demo rasters in several CRSs, footprints back to the right lat/lon, clear input errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin
from rasterio.warp import transform as gdal_transform

from clay_exp.data.geotiff import GeoTiffDataModule, GeoTiffFolder
from clay_exp.data.geotiff.demo import DEMO_SITES, write_demo_geotiffs
from clay_exp.data.splits import RegionSplit

SIZE = 64  # demo raster side in pixels (100 m)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo_geotiffs")
    write_demo_geotiffs(folder, size=SIZE)
    return folder


def site_file(folder: Path, stem: str) -> Path:
    return folder / f"{stem}.tif"


def test_demo_geotiffs_are_georeferenced_where_they_say(demo_dir):
    crss = set()
    for stem, lat, lon, crs in DEMO_SITES:
        with rasterio.open(site_file(demo_dir, stem)) as src:
            assert src.crs.to_string() == crs and src.count == 4 and src.dtypes[0] == "uint16"
            assert (src.width, src.height) == (SIZE, SIZE)
            cx, cy = src.xy(SIZE / 2, SIZE / 2, offset="ul")  # the raster's centre
            (clon,), (clat,) = gdal_transform(src.crs, "EPSG:4326", [cx], [cy])
            assert (clat, clon) == pytest.approx((lat, lon), abs=1e-6)
            assert src.read(masked=True).min() > 0  # reflectance everywhere, no nodata
        crss.add(crs)
    assert {"EPSG:4326", "EPSG:32632", "EPSG:32734"} <= crss
    assert min(s[1] for s in DEMO_SITES) < 0 < max(s[1] for s in DEMO_SITES)  # both hemispheres


@pytest.mark.parametrize("site", DEMO_SITES, ids=[s[0] for s in DEMO_SITES])
def test_chip_footprints_round_trip_to_lat_lon(demo_dir, site):
    """In each file's own CRS: the whole raster's chip is centred on the site; a corner chip's lat/lon is
    GDAL's transform of its footprint centre and lies north-west of the site."""
    stem, lat, lon, crs = site
    dataset = GeoTiffFolder(site_file(demo_dir, stem), band_indexes=[1, 2, 3, 4], chip_size=16)
    assert dataset.crs.to_string() == crs
    xmin, ymin, xmax, ymax = dataset.index.geometry.iloc[0].bounds
    whole = dataset[slice(xmin, xmax), slice(ymin, ymax)]
    assert whole["image"].shape == (4, SIZE, SIZE)
    assert (float(whole["lat"]), float(whole["lon"])) == pytest.approx((lat, lon), abs=1e-6)

    xres, yres = dataset.res
    corner = (slice(xmin, xmin + 16 * xres), slice(ymax - 16 * yres, ymax), slice(None))
    sample = dataset[corner]
    assert sample["image"].shape == (4, 16, 16)
    (ref_lon,), (ref_lat,) = gdal_transform(dataset.crs, "EPSG:4326", [xmin + 8 * xres], [ymax - 8 * yres])
    assert (float(sample["lat"]), float(sample["lon"])) == pytest.approx((ref_lat, ref_lon), abs=1e-7)
    assert float(sample["lat"]) > lat and float(sample["lon"]) < lon


def test_mixed_crs_folder_is_warped_to_web_mercator(demo_dir):
    dataset = GeoTiffFolder(demo_dir, band_indexes=[1, 2, 3, 4], chip_size=32)
    assert dataset.crs.to_string() == "EPSG:3857" and len(dataset) == len(DEMO_SITES)
    for path, geometry in zip(dataset.index.filepath, dataset.index.geometry, strict=True):
        _, lat, lon, _ = next(s for s in DEMO_SITES if Path(path).stem == s[0])
        xmin, ymin, xmax, ymax = geometry.bounds
        sample = dataset[slice(xmin, xmax), slice(ymin, ymax)]
        assert (float(sample["lat"]), float(sample["lon"])) == pytest.approx((lat, lon), abs=0.01)


def test_band_statistics_are_computed_from_the_files(demo_dir):
    dataset = GeoTiffFolder(demo_dir, band_indexes=[2, 4], chip_size=32)
    values = []
    for path in sorted(demo_dir.glob("*.tif")):
        with rasterio.open(path) as src:
            values.append(src.read([2, 4]).reshape(2, -1).astype(np.float64))
    values = np.concatenate(values, axis=1)
    np.testing.assert_allclose(dataset.mean.flatten().numpy(), values.mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(dataset.std.flatten().numpy(), values.std(axis=1), rtol=1e-4)
    configured = GeoTiffFolder(demo_dir, band_indexes=[1], chip_size=32, mean=[1000.0], std=[500.0])
    assert configured.mean.flatten().tolist() == [1000.0] and configured.std.flatten().tolist() == [500.0]


def test_datamodule_batches(demo_dir):
    dm = GeoTiffDataModule(paths=str(demo_dir), batch_size=8, train_size=16, val_size=20)
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert len(train) == 2 and dm.val_set_names == ["val"]
    batch = train[0]
    assert batch["image"].shape == (8, 4, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["lat"].shape == (8,) and batch["lat"].dtype == torch.float64
    val = list(dm.val_dataloader())
    assert sum(b["image"].shape[0] for b in val) == 20  # capped at val_size
    # what reaches the model: TorchGeo's crs/bounds lists are dropped, tensors stay
    moved = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert set(moved) == {"image", "lat", "lon"}


def test_region_split_keeps_heldout_tiles_out_of_training(demo_dir):
    dm = GeoTiffDataModule(paths=str(demo_dir), batch_size=8, train_size=64, split="region")
    dm.setup("fit")
    split = RegionSplit()
    assert dm.val_set_names == ["val", "val_heldout"]
    train = [b for b in dm.train_dataloader()]
    lat, lon = torch.cat([b["lat"] for b in train]), torch.cat([b["lon"] for b in train])
    assert len(lat) == 64 and not bool(split.is_heldout(lat, lon).any())
    seen, heldout = dm.val_dataloader()
    for loader, expected in ((seen, False), (heldout, True)):
        batches = list(loader)
        lat, lon = torch.cat([b["lat"] for b in batches]), torch.cat([b["lon"] for b in batches])
        assert len(lat) > 0 and bool((split.is_heldout(lat, lon) == expected).all())


def write_raster(path: Path, bands: int = 4, size: int = 64, crs: str | None = "EPSG:32632") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": bands, "dtype": "uint16"}
    if crs is not None:
        profile |= {"crs": crs, "transform": from_origin(500000, 5200000, 10, 10)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((bands, size, size), 1000, dtype=np.uint16))
    return path


def test_missing_and_empty_folders_are_named(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path / 'nowhere'} does not exist"):
        GeoTiffDataModule(paths=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no file matching '\*.tif' in .*empty"):
        GeoTiffDataModule(paths=str(tmp_path / "empty"))


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_bad_rasters_are_named_with_their_problem(tmp_path):
    no_crs = write_raster(tmp_path / "a" / "no_crs.tif", crs=None)
    with pytest.raises(ValueError, match=f"{no_crs}: has no CRS"):
        GeoTiffDataModule(paths=str(tmp_path / "a"))

    three = write_raster(tmp_path / "b" / "three_bands.tif", bands=3)
    with pytest.raises(ValueError, match=f"{three}: has 3 band\\(s\\), fewer than configured"):
        GeoTiffDataModule(paths=str(tmp_path / "b"), bands=4)

    small = write_raster(tmp_path / "c" / "small.tif", size=20)
    with pytest.raises(ValueError, match=f"{small}: 20 x 20 pixels .* smaller than data.chip_size=32"):
        GeoTiffDataModule(paths=str(tmp_path / "c"), chip_size=32)

    with pytest.raises(ValueError, match=r"band_indexes=\[1, 2\] must name data.bands=4"):
        GeoTiffDataModule(paths=str(tmp_path / "c"), band_indexes=[1, 2])


@pytest.mark.parametrize(
    "target", [None, "clay_exp.data.geotiff.GeoTiffFolder", GeoTiffFolder.__module__ + ".GeoTiffFolder"]
)
def test_the_generic_dataset_by_any_of_its_names_keeps_the_cache_key_it_always_had(demo_dir, target):
    # The chip cache's key records the dataset as the package names it (what configs/data/geotiff.yaml
    # gives), so the caches built before the package was split by concern are still found.
    dataset = None if target is None else {"_target_": target}
    dm = GeoTiffDataModule(paths=str(demo_dir), dataset=dataset, cache=True)
    assert type(dm.dataset) is GeoTiffFolder
    assert dm.source_settings()["dataset"] == {"_target_": "clay_exp.data.geotiff.GeoTiffFolder"}


def test_a_dataset_target_that_cannot_be_imported_is_named(demo_dir):
    with pytest.raises(
        ValueError, match=r"data.dataset._target_='torchgeo.datasets.NoSuchDataset' cannot be"
    ):
        GeoTiffDataModule(paths=str(demo_dir), dataset={"_target_": "torchgeo.datasets.NoSuchDataset"})
    with pytest.raises(ValueError, match="is not a dotted path"):
        GeoTiffDataModule(paths=str(demo_dir), dataset={"_target_": "GeoTiffFolder"})
