"""Pretrained weights: where they come from, how they load, and the parameter counts of a recipe."""
