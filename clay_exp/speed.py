"""How a run spends its CPU: the ``speed`` config group (configs/speed/), read and applied here.

``speed=default`` (the default) does less repeated work for bitwise the same numbers; ``speed=eager``
is the plain path every run took before issue 22 (every batch rendered when asked for), kept so
that anyone can compare the two in one command and fall back where a platform misbehaves;
``speed=fast`` adds what changes the numbers at the level of float rounding (the optimizer's fused
kernel: the same update, another order of operations), which training carries forward, so a run's
losses can differ from the other paths in their last digits (within the seeds' paired interval:
`scripts/benchmark_study.py` checks it). What each setting does, and what it was measured to
save, is in docs/benchmarks.md. A config without a ``speed`` node (runs recorded before it
existed) reads as ``eager``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from omegaconf import DictConfig, OmegaConf


@dataclass(frozen=True)
class Speed:
    """The settings of one ``speed`` option (their defaults: the eager path).

    Args:
        name: the option's name, recorded with the run.
        render_once_mb: a generated world's sets (training and validation chips, the same every
            epoch) are rendered once per process and served from memory, each set that fits in this
            many MiB; 0: every batch rendered when asked for.
        fused_optimizer: the optimizer's fused kernel (``fused=True``: AdamW, Adam, SGD, ...) for every
            parameter group that does not ask for a kernel itself: one vectorised pass over each
            tensor instead of ~10 tensor ops, ~3x faster on a CPU, not bitwise the same update.
    """

    name: str = "eager"
    render_once_mb: float = 0.0
    fused_optimizer: bool = False

    @classmethod
    def from_config(cls, node: DictConfig | dict[str, Any] | None) -> Speed:
        """The settings of a run's ``speed`` node (None: eager); an unknown key is a ValueError."""
        if node is None:
            return cls()
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"speed: unknown setting(s) {unknown}; the settings are {sorted(known)}")
        speed = cls(**values)
        if not speed.render_once_mb >= 0:
            raise ValueError(f"speed.render_once_mb={speed.render_once_mb!r} must be >= 0 (0: off)")
        return speed


def apply_to_datamodule(speed: Speed, datamodule: Any) -> None:
    """Render a generated world's sets once (`WorldDataModule.render_once`); other datamodules
    (GeoTIFF files, which have their own chip cache) are left as they are."""
    if speed.render_once_mb > 0 and hasattr(datamodule, "render_once"):
        datamodule.render_once(speed.render_once_mb)
