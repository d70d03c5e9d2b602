"""Spatial encodings: one file each, all `SpatialEncoding` subclasses (see base.py)."""
