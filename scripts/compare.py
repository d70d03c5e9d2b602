"""Compare the encodings of one or more sweeps: ``python scripts/compare.py <multirun dir> [more dirs]``.

Writes comparison.md (also printed), comparison.csv, runs.csv, loss_curves.png and final_loss.png
into the first folder (or ``--out``). The logic lives in clay_exp/report.py, shared with the notebook.
"""

import sys

from clay_exp.report import main

if __name__ == "__main__":
    sys.exit(main())
