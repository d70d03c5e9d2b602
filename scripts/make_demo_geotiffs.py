"""Write the demo GeoTIFFs (clay_exp/data/geotiff/demo.py) for ``data=geotiff``; no download.

python scripts/make_demo_geotiffs.py                 # -> data/demo_geotiffs/
python train.py data=geotiff logger=csv trainer.max_epochs=1 data.train_size=256
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clay_exp.data.geotiff.demo import write_demo_geotiffs

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "demo_geotiffs"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder to write (%(default)s)")
    parser.add_argument("--size", type=int, default=128, help="raster width = height in pixels")
    parser.add_argument("--pixel-m", type=float, default=100.0, help="pixel size in metres")
    parser.add_argument("--bands", type=int, default=4, help="bands per raster")
    parser.add_argument("--world-seed", type=int, default=0)
    args = parser.parse_args()
    for path in write_demo_geotiffs(args.out, args.size, args.pixel_m, args.bands, args.world_seed):
        print(path)


if __name__ == "__main__":
    main()
