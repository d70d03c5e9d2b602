"""data.dataset._target_=torchgeo.datasets.Sentinel2: Sentinel-2 L2A band files through TorchGeo's own
class, acquisition times from the file names as Clay v1's time features, cached or read live."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from clay_exp.data.geotiff import GeoTiffDataModule, acquisition_time
from clay_exp.data.time import clay_v1_time

BANDS = ["B02", "B03", "B04", "B08"]
# (tile, acquisition, UTM zone origin): two dates of one tile and one of another
SCENES = [
    ("31UFQ", "20210617T103031", 600000, 5800000),
    ("31UFQ", "20211230T104441", 600000, 5800000),
    ("31UGQ", "20210701T103629", 700000, 5800000),
]
SIZE = 48


def write_sentinel2(folder: Path) -> Path:
    """One 10 m GeoTIFF per band and scene, named and placed as in an L2A product:
    ``IMG_DATA/R10m/T31UFQ_20210617T103031_B02_10m.tif`` (TorchGeo's Sentinel2 finds a scene's other
    bands in the ``R<resolution>`` folder next to the first band's)."""
    rng = np.random.default_rng(0)
    bands_dir = folder / "IMG_DATA" / "R10m"
    bands_dir.mkdir(parents=True, exist_ok=True)
    for tile, when, x0, y0 in SCENES:
        for band in BANDS:
            profile = {
                "driver": "GTiff", "width": SIZE, "height": SIZE, "count": 1, "dtype": "uint16",
                "crs": "EPSG:32631", "transform": from_origin(x0, y0, 10, 10), "nodata": 0,
            }  # fmt: skip
            data = rng.integers(100, 5000, size=(1, SIZE, SIZE), dtype=np.uint16)
            with rasterio.open(bands_dir / f"T{tile}_{when}_{band}_10m.tif", "w", **profile) as dst:
                dst.write(data)
    return folder


@pytest.fixture(scope="module")
def s2_dir(tmp_path_factory) -> Path:
    return write_sentinel2(tmp_path_factory.mktemp("s2"))


def s2_dm(folder: Path, **kwargs) -> GeoTiffDataModule:
    dataset = {"_target_": "torchgeo.datasets.Sentinel2", "bands": BANDS}
    return GeoTiffDataModule(
        paths=str(folder), dataset=dataset, batch_size=4, train_size=8, val_size=8, **kwargs
    )


def expected_time(when: str) -> torch.Tensor:
    moment = datetime.strptime(when, "%Y%m%dT%H%M%S")
    return clay_v1_time(torch.tensor([moment.isocalendar()[1]]), torch.tensor([moment.hour]))[0]


def test_acquisition_time_follows_the_clay_v1_contract():
    import pandas as pd

    exact = slice(pd.Timestamp("2021-06-17 10:30:31"), pd.Timestamp("2021-06-17 10:30:31.999999"))
    week = 24  # 17 June 2021 is in ISO week 24
    w, h = 2 * math.pi * week / 52, 2 * math.pi * 10 / 24
    assert acquisition_time(exact).tolist() == pytest.approx(
        [math.sin(w), math.cos(w), math.sin(h), math.cos(h)], abs=1e-6
    )
    day = slice(pd.Timestamp("2021-06-17"), pd.Timestamp("2021-06-17 23:59:59.999999"))
    noon = 2 * math.pi * 12 / 24
    assert acquisition_time(day)[2:].tolist() == pytest.approx([math.sin(noon), math.cos(noon)], abs=1e-6)
    assert acquisition_time(slice(pd.Timestamp.min, pd.Timestamp.max)) is None


@pytest.mark.parametrize("cache", [False, True], ids=["live", "cached"])
def test_sentinel2_band_files_give_chips_with_time(s2_dir, tmp_path, cache):
    dm = s2_dm(s2_dir, cache=cache, cache_dir=str(tmp_path))
    assert type(dm.raster).__name__ == "Sentinel2" and len(dm.raster) == len(SCENES)
    assert dm.times
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 4, 32, 32) and torch.isfinite(batch["image"]).all()
    assert batch["time"].shape == (4, 4) and batch["time"].dtype == torch.float32
    allowed = torch.stack([expected_time(when) for _, when, _, _ in SCENES])
    for t in batch["time"]:
        assert torch.isclose(allowed, t, atol=1e-6).all(dim=1).any(), t
    moved = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    assert set(moved) == {"image", "lat", "lon", "time"}
    # the tiles lie in northern France / Belgium (UTM 31N, y = 5800 km)
    assert bool(((batch["lat"] > 51) & (batch["lat"] < 53)).all())


def write_raster(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {"driver": "GTiff", "width": SIZE, "height": SIZE, "count": 4, "dtype": "uint16"}
    profile |= {"crs": "EPSG:32632", "transform": from_origin(500000, 5200000, 10, 10)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.arange(1, 4 * SIZE * SIZE + 1, dtype=np.uint16).reshape(4, SIZE, SIZE))
    return path


def test_undated_files_give_no_time(tmp_path):
    write_raster(tmp_path / "plain" / "a.tif")
    dm = GeoTiffDataModule(paths=str(tmp_path / "plain"), batch_size=2, train_size=2, val_size=2)
    dm.setup("fit")
    assert not dm.times and "time" not in next(iter(dm.train_dataloader()))


def test_a_dated_generic_geotiff_gets_time_from_its_name(tmp_path):
    write_raster(tmp_path / "dated" / "site_20210301.tif")
    dataset = {"filename_regex": r"^site_(?P<date>\d{8})\.tif$", "date_format": "%Y%m%d"}
    dm = GeoTiffDataModule(paths=str(tmp_path / "dated"), dataset=dataset, batch_size=2, train_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    week = datetime(2021, 3, 1).isocalendar()[1]
    torch.testing.assert_close(batch["time"][0], clay_v1_time(torch.tensor([week]), torch.tensor([12]))[0])


def test_bad_dataset_choices_are_named(s2_dir, tmp_path):
    with pytest.raises(ValueError, match="not a TorchGeo RasterDataset subclass"):
        GeoTiffDataModule(paths=str(s2_dir), dataset={"_target_": "torch.nn.Linear"})
    with pytest.raises(ValueError, match=r"data.dataset.bands=\['B02', 'B03'\] must name data.bands=4"):
        GeoTiffDataModule(
            paths=str(s2_dir), dataset={"_target_": "torchgeo.datasets.Sentinel2", "bands": BANDS[:2]}
        )
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match=r"Sentinel2\(.*failed"):
        s2_dm(tmp_path / "none")
