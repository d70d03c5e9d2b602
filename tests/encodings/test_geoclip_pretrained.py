"""GeoCLIP's pretrained location encoder: offline weights, frozen or fine-tuned, a clear error without it."""

from __future__ import annotations

import sys

import pytest
import torch

from clay_exp.catalog import build_encoding
from clay_exp.encodings.geoclip_pretrained import GeoCLIPPretrainedEncoding


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "geoclip", None)  # `import geoclip` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install '\.\[geoclip\]'"):
        GeoCLIPPretrainedEncoding()
    with pytest.raises(ImportError, match="geoclip_pretrained needs the optional `geoclip` package"):
        build_encoding("geoclip_pretrained")  # what `python train.py encoding=geoclip_pretrained` hits


@pytest.fixture(scope="module")
def geoclip():
    return pytest.importorskip("geoclip", reason="the optional extra: pip install '.[geoclip]'")


LAT = torch.tensor([48.8566, -33.8688, 0.0, 90.0, -90.0, 35.0], dtype=torch.float64)
LON = torch.tensor([2.3522, 151.2093, 180.0, 0.0, 0.0, -120.0], dtype=torch.float64)


def test_frozen_pretrained_weights_reproduce_geoclip(geoclip):
    enc = build_encoding("geoclip_pretrained")
    reference = geoclip.LocationEncoder()  # loads the same weights file from the installed package
    out = enc({"lat": LAT, "lon": LON})
    assert out.shape == (6, 512) and enc.out_dim == 512 and out.dtype == torch.float32
    with torch.no_grad():
        expected = reference(torch.stack([LAT, LON], dim=-1).float())
    torch.testing.assert_close(out, expected)
    # pretrained, not a fresh init: a freshly initialised encoder gives other vectors
    with torch.no_grad():
        fresh = geoclip.LocationEncoder(from_pretrained=False)(torch.stack([LAT, LON], dim=-1).float())
    assert not torch.allclose(out, fresh, atol=1e-3)
    assert sum(p.numel() for p in enc.parameters()) > 9_000_000
    assert not any(p.requires_grad for p in enc.parameters()) and enc.param_groups() == []
    assert not out.requires_grad


def test_freeze_false_fine_tunes(geoclip):
    enc = build_encoding("geoclip_pretrained", ["encoding.freeze=false"])
    out = enc({"lat": LAT, "lon": LON})
    out.pow(2).sum().backward()
    grads = [p.grad for p in enc.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert enc.param_groups()[0]["params"]
