"""Band statistics: the per-band mean and standard deviation that normalise every chip, computed from
the files (nodata left out) or configured (``data.mean`` / ``data.std``, checked here)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import rasterio

from clay_exp.data.geotiff.files import BandSource


def compute_band_stats(
    sources: Sequence[Sequence[BandSource]],
    labels: Sequence[str],
    nodata: Sequence[float] = (),
    max_side: int = 512,
) -> tuple[list[float], list[float]]:
    """Per-band mean and standard deviation over the valid pixels of every file (each read at most
    max_side² pixels): values that are NaN/inf, a declared nodata or in `nodata` are left out.

    ValueError naming the file and band when a band of a file has no valid pixel, and naming the band
    when its statistics come out non-finite.
    """
    mean, std = [], []
    for label, band in zip(labels, sources, strict=True):
        total = total_sq = 0.0
        count = 0
        for path, index in band:
            with rasterio.open(path) as src:
                scale = max(1, int(np.ceil(max(src.width, src.height) / max_side)))
                shape = (max(1, src.height // scale), max(1, src.width // scale))
                data = src.read(index, out_shape=shape, masked=True)
            values = np.ma.getdata(data).astype(np.float64)
            valid = ~np.ma.getmaskarray(data) & np.isfinite(values)
            for value in nodata:
                valid &= values != value
            if not valid.any():
                raise ValueError(
                    f"{path}: band {label} (band {index} of the file) has no valid pixel (all NaN, inf "
                    "or nodata), so no band statistics can be computed from it: drop the file or give "
                    "data.mean / data.std"
                )
            values = values[valid]
            with np.errstate(over="ignore"):  # an overflow gives inf: refused below, naming the band
                total += float(values.sum())
                total_sq += float((values**2).sum())
            count += values.size
        m = total / count
        sd = math.sqrt(max(total_sq / count - m * m, 0.0))
        if not (math.isfinite(m) and math.isfinite(sd)):
            raise ValueError(
                f"band {label}: non-finite statistics (mean={m}, std={sd}) from {[p for p, _ in band]}"
            )
        mean.append(m)
        std.append(max(sd, 1e-6))
    return mean, std


def check_stats(name: str, values: Sequence[float], labels: Sequence[str]) -> list[float]:
    """The configured per-band `values` as floats; ValueError for a wrong count or a non-finite value."""
    values = [float(v) for v in values]
    if len(values) != len(labels):
        raise ValueError(f"data.{name}={values} needs one value per band ({len(labels)}: {list(labels)})")
    for label, value in zip(labels, values, strict=True):
        if not math.isfinite(value) or (name == "std" and value <= 0):
            raise ValueError(
                f"data.{name}: band {label} has {value}, not a finite{' positive' * (name == 'std')} number"
            )
    return values
