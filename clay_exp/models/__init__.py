"""The MAE backbone."""
