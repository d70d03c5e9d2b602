"""What a study can show before training: ``python scripts/floors.py <hydra overrides> [--out x.json]``.

Prints the world's information floors (none / per level subset / location, with MC standard errors),
chips per tile at each zoom and the level alignment; writes them as JSON. Logic: clay_exp/design/.
"""

import sys

from clay_exp.design.cli import main

if __name__ == "__main__":
    sys.exit(main())
