"""Hydra search-path plugin: config folders named in ``$CLAY_EXP_CONFIG_DIRS`` join configs/."""
