"""What a run is: the typed config groups, their ranges, the spec registries and run identity."""
