"""Worlds (generated or real) and their datamodules; every batch is a dict with image, lat, lon."""
