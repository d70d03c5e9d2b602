"""Nodata and NaN in GeoTIFFs (issue 14): holes are filled, never reach the loss as NaN; band
statistics skip them; an all-NaN band or non-finite statistics are refused naming file and band."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from clay_exp.data.geotiff import GeoTiffDataModule, GeoTiffFolder

SIZE = 64


def write_float_raster(path: Path, data: np.ndarray, nodata: float | None = None, x0: float = 500000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
        "dtype": str(data.dtype), "crs": "EPSG:32632", "transform": from_origin(x0, 5200000, 10, 10),
    }  # fmt: skip
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def holey(seed: int = 0, dtype=np.float32, hole=np.nan) -> np.ndarray:
    """4 bands of values around 1000 + 100 * band with a NaN (or `hole`) block and scattered holes."""
    rng = np.random.default_rng(seed)
    data = (1000 + 100 * np.arange(4)[:, None, None] + rng.normal(0, 50, (4, SIZE, SIZE))).astype(dtype)
    data[:, 10:30, 10:30] = hole
    data[2, rng.integers(0, SIZE, 50), rng.integers(0, SIZE, 50)] = hole
    return data


@pytest.mark.parametrize("declared", [True, False], ids=["declared-nan", "undeclared-nan"])
def test_nan_pixels_are_filled_and_left_out_of_the_statistics(tmp_path, declared):
    data = holey()
    path = write_float_raster(tmp_path / "nan.tif", data, nodata=np.nan if declared else None)
    dataset = GeoTiffFolder(path, band_indexes=[1, 2, 3, 4], chip_size=32)
    valid = np.where(np.isfinite(data), data, np.nan).reshape(4, -1)
    np.testing.assert_allclose(dataset.mean.flatten().numpy(), np.nanmean(valid, axis=1), rtol=1e-5)
    np.testing.assert_allclose(dataset.std.flatten().numpy(), np.nanstd(valid, axis=1), rtol=1e-3)
    xmin, ymin, xmax, ymax = dataset.index.geometry.iloc[0].bounds
    sample = dataset[slice(xmin, xmax), slice(ymin, ymax), slice(None)]
    image = sample["image"]
    assert torch.isfinite(image).all()
    holes = torch.from_numpy(~np.isfinite(data))
    assert torch.equal(image[holes], torch.zeros(int(holes.sum())))  # filled with the band mean
    assert sample["nodata_fraction"] == pytest.approx(float(holes.float().mean()))


def test_declared_integer_nodata_and_data_nodata_are_honoured(tmp_path):
    data = holey(dtype=np.uint16, hole=0)
    declared = write_float_raster(tmp_path / "a" / "declared.tif", data, nodata=0)
    undeclared = write_float_raster(tmp_path / "b" / "undeclared.tif", data)
    expected = np.ma.masked_equal(data.reshape(4, -1).astype(np.float64), 0).mean(axis=1)
    for path, nodata in ((declared, None), (undeclared, 0)):
        dataset = GeoTiffFolder(path, band_indexes=[1, 2, 3, 4], chip_size=32, nodata=nodata)
        np.testing.assert_allclose(dataset.mean.flatten().numpy(), expected, rtol=1e-5)
        xmin, ymin, xmax, ymax = dataset.index.geometry.iloc[0].bounds
        image = dataset[slice(xmin, xmax), slice(ymin, ymax), slice(None)]["image"]
        assert torch.equal(image[torch.from_numpy(data == 0)], torch.zeros(int((data == 0).sum())))
    # without declaring it, 0 is a value: it pulls the mean down
    plain = GeoTiffFolder(undeclared, band_indexes=[1, 2, 3, 4], chip_size=32)
    assert float(plain.mean[0]) < expected[0] - 50


def test_a_nan_raster_trains_to_a_finite_loss(tmp_path, make_cfg):
    from clay_exp.benchmarking import make_optimizer
    from clay_exp.train import build_module

    write_float_raster(tmp_path / "r" / "one.tif", holey(1))
    write_float_raster(tmp_path / "r" / "two.tif", holey(2), nodata=np.nan, x0=501000)
    cfg = make_cfg(
        ["data=geotiff", f"data.paths={tmp_path / 'r'}", "data.batch_size=8", "data.train_size=16"]
    )
    from hydra.utils import instantiate

    dm = instantiate(cfg.data)
    dm.setup("fit")
    module = build_module(cfg)
    optimizer = make_optimizer(module)
    for batch in dm.train_dataloader():
        batch = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
        loss = module(batch)
        assert torch.isfinite(loss)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_chips_mostly_nodata_are_skipped_when_cached_and_counted_live(tmp_path, caplog):
    data = holey(3)
    data[:, :, : SIZE // 2 + 8] = np.nan  # the western 5/8 of the raster is empty
    write_float_raster(tmp_path / "r" / "half.tif", data)
    settings = dict(
        paths=str(tmp_path / "r"), batch_size=8, train_size=16, val_size=4, max_nodata_fraction=0.3
    )
    caplog.set_level("INFO")
    live = GeoTiffDataModule(**settings)
    live.setup("fit")
    list(live.train_dataloader())
    assert live.dataset.chips.chips_over_nodata > 0 and "nodata (the latest" in caplog.text

    cached = GeoTiffDataModule(**settings, cache=True, cache_dir=str(tmp_path / "cache"))
    cached.setup("fit")
    assert len(cached.cached["train"]) == 16  # drawn until 16 chips pass
    assert "skipped with more than data.max_nodata_fraction=0.3" in caplog.text
    for batch in cached.train_dataloader():
        share = (batch["image"] == 0).float().mean(dim=(1, 2, 3))
        assert bool((share <= 0.3).all())


def test_all_nan_bands_and_bad_statistics_are_refused_naming_file_and_band(tmp_path):
    data = holey()
    data[2] = np.nan
    path = write_float_raster(tmp_path / "a" / "band3_empty.tif", data)
    with pytest.raises(ValueError, match=f"{path}: band B3 \\(band 3 of the file\\) has no valid pixel"):
        GeoTiffFolder(path, band_indexes=[1, 2, 3, 4], chip_size=32)
    ok = write_float_raster(tmp_path / "b" / "ok.tif", holey())
    with pytest.raises(ValueError, match=r"data\.mean: band B2 has nan"):
        GeoTiffFolder(ok, band_indexes=[1, 2], chip_size=32, mean=[1.0, float("nan")])
    with pytest.raises(ValueError, match=r"data\.std: band B1 has 0\.0"):
        GeoTiffFolder(ok, band_indexes=[1, 2], chip_size=32, std=[0.0, 1.0])
    huge = holey().astype(np.float64)
    huge[0, 0, 0] = 1e300
    big = write_float_raster(tmp_path / "c" / "huge.tif", huge)
    with pytest.raises(ValueError, match="band B1: non-finite statistics"):
        GeoTiffFolder(big, band_indexes=[1], chip_size=32)
