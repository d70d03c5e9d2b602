"""Worlds (generated or real) and their datamodules; every batch is a dict with image, lat, lon.

In layers, each importing only those above it (the TorchGeo way: datasets, then datamodules):

* `time` (Clay v1's time features), `splits` (region splits, location filters);
* `worlds/`: the generated worlds, map-style datasets (`clay_exp.data.worlds`);
* `base` (`SplitDataModule`: sizes, splits, named validation sets) and `datamodule`
  (`WorldDataModule`: any generated world as train / val / val_heldout / tune sets);
* `geotiff/`: rasters through TorchGeo, one module per concern (`clay_exp.data.geotiff`);
* `scenes/`: the real Sentinel-2 / Landsat scenes, built on `geotiff` (`clay_exp.data.scenes`).

The data imports neither the model (`clay_exp.models`, `clay_exp.encodings`) nor Hydra:
tests/test_package_shape.py holds it to that.
"""
