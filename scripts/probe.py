"""Location probe: ``python scripts/probe.py [--encodings ...] [--task land|zone|both] [--seeds ...]``.

Fits each encoding alone (no images) with the same small MLP head to predict the earth world's
land/sea flag and Köppen–Geiger zone from location; writes comparison.md (also printed),
comparison.csv, runs.csv, final_loss.png and probe.json into logs/probe/<time>/ (or ``--out``).
The logic lives in clay_exp/probe.py.
"""

import sys

from clay_exp.probe import main

if __name__ == "__main__":
    sys.exit(main())
