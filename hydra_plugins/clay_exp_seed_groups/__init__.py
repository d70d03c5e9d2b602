"""Hydra sweeper plugin: a sweep's seeds grouped ``seeds_per_process`` to a job (clay_exp.seed_group)."""
