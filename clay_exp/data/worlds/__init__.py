"""Generated worlds: map-style datasets whose chip ``i`` is a pure function of ``(world seed, i)``.

* `world`: `GeneratedWorld`, what every world shares (indexing, splits, where chips are, noise).
* `synthetic`: `SyntheticWorld`, spherical waves at several scales (``data=synthetic``).
* `hierarchical`: `HierarchicalWorld`, one signal per web-mercator tile per level, its variance
  shares known (``data=hierarchical_world``; the known-answer studies).
* `earth`: `EarthWorld`, land, ocean and Köppen–Geiger zones rendered from per-zone spectra
  (``data=earth``).
* `geography`: the offline land mask and Köppen–Geiger map the worlds read.

The worlds are named here, as TorchGeo names its datasets in ``torchgeo.datasets``: configs target
``clay_exp.data.worlds.<World>``. A world becomes train / val / val_heldout sets in
`clay_exp.data.datamodule.WorldDataModule`.
"""

from clay_exp.data.worlds.earth import EarthWorld
from clay_exp.data.worlds.hierarchical import HierarchicalWorld
from clay_exp.data.worlds.synthetic import SyntheticWorld
from clay_exp.data.worlds.world import GeneratedWorld

__all__ = ["EarthWorld", "GeneratedWorld", "HierarchicalWorld", "SyntheticWorld"]
