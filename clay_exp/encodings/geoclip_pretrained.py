"""`geoclip_pretrained`: GeoCLIP's pretrained location encoder (Vivanco Cepeda et al., 2023), 512-d.

Three random-Fourier-feature branches (σ = 2^0, 2^4, 2^8) on equal-earth coordinates, each with a
3-layer MLP, summed; trained contrastively against CLIP image features of geotagged photos. Its
weights ship inside the ``geoclip`` wheel and load from the installed package: nothing is downloaded.
Frozen by default (``freeze: false`` fine-tunes it with the MAE). Needs the optional extra:
``pip install '.[geoclip]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import torch
from torch import Tensor, nn

from clay_exp.encodings.base import Knob, SpatialEncoding

INSTALL_HINT = (
    "encoding=geoclip_pretrained needs the optional `geoclip` package (GeoCLIP's pretrained weights ship "
    "in it): pip install '.[geoclip]'  (or: pip install geoclip 'huggingface-hub<2')"
)


def load_geoclip_location_encoder() -> nn.Module:
    """GeoCLIP's ``LocationEncoder`` with the pretrained weights of the installed package."""
    try:
        from geoclip import LocationEncoder  # imports transformers too: seconds, so only when asked
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return LocationEncoder()  # from_pretrained=True: the weights file inside the package


class GeoCLIPPretrainedEncoding(SpatialEncoding):
    requires_package = "geoclip"

    #: Frozen by default (no parameters to tune); a study that fine-tunes it (freeze=false) declares
    #: ``encoding.lr_scale`` in its own tuning space.
    search_space: ClassVar[Mapping[str, Knob]] = {}

    def __init__(self, freeze: bool = True, lr_scale: float = 1.0) -> None:
        super().__init__(lr_scale)
        self.encoder = load_geoclip_location_encoder()
        self.freeze = bool(freeze)
        self.encoder.requires_grad_(not self.freeze)
        self.out_dim = 512

    def encode(self, lat: Tensor, lon: Tensor) -> Tensor:
        location = torch.stack([lat, lon], dim=-1).float()  # GeoCLIP takes (lat, lon) in degrees
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self.encoder(location).float()

    def extra_repr(self) -> str:
        return f"freeze={self.freeze}, out_dim={self.out_dim}"
