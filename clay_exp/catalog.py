"""Every encoding config, built as a training run would build it: listings, tests, probe, benchmarks.

    python -m clay_exp.catalog                 # every encoding: out_dim, parameters, what it needs
    python -m clay_exp.catalog sincos wrap

An encoding's YAML may interpolate run-level values (``seed: ${seed}``, the world's levels), so it
is composed with the rest of ``configs/train.yaml`` rather than loaded on its own. What an encoding
needs beyond a location is read from its class's declarations (`SpatialEncoding.inputs`,
``requires_package``, ``required_overrides``): `unavailable_reason` is the one answer to "can it run
here?" for training, sweeps, the probe, the benchmarks and the tests. This module sits above
`clay_exp.encodings` (which imports no Hydra): the encodings know nothing of configs.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from clay_exp.config import compose_config, config_dirs, config_options
from clay_exp.encodings.base import SpatialEncoding

#: The batch keys of a location alone (what the probe and the encodings-alone benchmark provide).
LOCATION = ("lat", "lon")


def encoding_names() -> list[str]:
    """Every option of the ``encoding`` config group (configs/encoding/ and any extra config folder)."""
    return config_options("encoding")


@functools.cache
def _composed(name: str, overrides: tuple[str, ...], dirs: tuple[Any, ...]) -> dict[str, Any]:
    cfg = compose_config([f"encoding={name}", *overrides])
    return OmegaConf.to_container(cfg.encoding, resolve=True)  # type: ignore[return-value]


@functools.cache
def _target(name: str, dirs: tuple[Any, ...]) -> str:
    return str(compose_config([f"encoding={name}"]).encoding._target_)


def encoding_class(name: str) -> type[SpatialEncoding]:
    """The class encoding `name`'s YAML targets (imported, not built): where its declarations live."""
    target = _target(name, config_dirs())
    cls = get_class(target)
    if not (isinstance(cls, type) and issubclass(cls, SpatialEncoding)):
        raise TypeError(f"encoding={name}: _target_ {target} is not a SpatialEncoding")
    return cls


def required_overrides(name: str) -> tuple[str, ...]:
    """The overrides encoding `name` cannot run without (its class's ``required_overrides``)."""
    return tuple(encoding_class(name).required_overrides)


def class_unavailable_reason(
    cls: type[SpatialEncoding], batch_keys: Sequence[str] | None = LOCATION
) -> str | None:
    """Why an encoding of class `cls` cannot run on batches with `batch_keys`, or None if it can.

    `batch_keys` None: a training run with the class's ``required_overrides``, whose world gives it
    every key it reads. Unavailable: it reads keys the batches lack, or its optional package is not
    installed.
    """
    if batch_keys is not None:
        needs = [k for k in cls.inputs if k not in batch_keys]
        if needs:
            where = f" (only with {' '.join(cls.required_overrides)})" if cls.required_overrides else ""
            return f"needs batch keys {needs} besides {list(batch_keys)}{where}"
    package = cls.requires_package
    if package and importlib.util.find_spec(package) is None:
        return f"needs the optional package `{package}`, not installed: pip install '.[{package}]'"
    return None


def unavailable_reason(name: str, batch_keys: Sequence[str] | None = LOCATION) -> str | None:
    """Why encoding `name` cannot run on batches with `batch_keys` here (None: it can); see
    `class_unavailable_reason`. ``batch_keys=None``: in a training run given its `required_overrides`."""
    return class_unavailable_reason(encoding_class(name), batch_keys)


def encoding_config(name: str, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """The resolved ``encoding`` node of ``python train.py encoding=<name> <required> <overrides>``
    (with the overrides its class requires, e.g. the oracle's world)."""
    key = (*required_overrides(name), *overrides)
    return copy.deepcopy(_composed(name, key, config_dirs()))


def missing_dependency(error: BaseException) -> ImportError | None:
    """The ImportError behind a failed instantiation (an optional extra not installed), if that was it."""
    while error is not None:
        if isinstance(error, ImportError):
            return error
        error = error.__cause__  # type: ignore[assignment]
    return None


def build_encoding(name: str, overrides: Sequence[str] = ()) -> SpatialEncoding:
    """Instantiate encoding `name` (ImportError, with the install hint, when an optional extra is missing)."""
    try:
        return instantiate(encoding_config(name, overrides))
    except Exception as error:
        missing = missing_dependency(error)
        if missing is not None and missing is not error:
            raise missing from error
        raise


@dataclass
class EncodingSummary:
    name: str
    target: str
    out_dim: int | None = None
    parameters: int | None = None
    trainable: int | None = None
    note: str = ""


def summarize(name: str) -> EncodingSummary:
    """Output dim and parameter counts of one encoding, or a note saying why it cannot be built here."""
    target = str(encoding_config(name).get("_target_", ""))
    why = unavailable_reason(name, batch_keys=None)
    if why:
        return EncodingSummary(name, target, note=f"skipped: {why}")
    enc = build_encoding(name)
    summary = EncodingSummary(
        name,
        target,
        out_dim=enc.out_dim,
        parameters=sum(p.numel() for p in enc.parameters()),
        trainable=sum(p.numel() for p in enc.parameters() if p.requires_grad),
    )
    needs = unavailable_reason(name)
    if needs:
        summary.note = needs
    return summary


# -- python -m clay_exp.catalog ---------------------------------------------------------------------
def format_table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print every encoding config (or `argv`'s) with its output dim and parameter counts."""
    parser = argparse.ArgumentParser(
        prog="python -m clay_exp.catalog",
        description="Every encoding config with its output dim and parameter count.",
    )
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
