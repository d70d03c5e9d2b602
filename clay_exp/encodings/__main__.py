"""``python -m clay_exp.encodings``: every encoding config with its output dim and parameter count."""

from __future__ import annotations

import argparse
import logging

from clay_exp.encodings.catalog import encoding_names, summarize


def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="encodings to list (default: all in configs/encoding/)")
    args = parser.parse_args(argv)
    names = args.names or encoding_names()
    unknown = sorted(set(names) - set(encoding_names()))
    if unknown:
        parser.error(f"unknown encoding(s) {unknown}; choices: {encoding_names()}")
    logging.disable(logging.WARNING)  # an encoding's one-off warnings are not part of the listing
    rows = [["encoding", "out_dim", "parameters", "trainable", "class / note"]]
    notes = []
    for name in names:
        s = summarize(name)
        fmt = lambda v: "-" if v is None else f"{v:,}"  # noqa: E731
        rows.append([name, fmt(s.out_dim), fmt(s.parameters), fmt(s.trainable), s.target.rsplit(".", 1)[-1]])
        if s.note:
            notes.append(f"{name}: {s.note}")
    print(format_table(rows))
    if notes:
        print()
        print("\n".join(notes))
    print(
        "\nParameters of the encoding itself; the MAE adds a linear map out_dim -> its width on top "
        "(results.json counts it with the encoding)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
