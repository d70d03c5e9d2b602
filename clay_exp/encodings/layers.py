"""Small building blocks shared by several encodings."""

from __future__ import annotations

from torch import nn


def mlp(
    in_dim: int, hidden_dim: int, num_layers: int = 2, activation: type[nn.Module] = nn.GELU
) -> nn.Sequential:
    """`num_layers` linear layers of width `hidden_dim`, each followed by `activation`.

    The activation after the last layer is deliberate: the model's own linear projection to its
    width follows every encoding, so a trailing linear layer here would be redundant.
    """
    if num_layers < 1:
        raise ValueError(f"num_layers={num_layers!r} must be >= 1")
    layers: list[nn.Module] = []
    dim = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(dim, hidden_dim), activation()]
        dim = hidden_dim
    return nn.Sequential(*layers)
