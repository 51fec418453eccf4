"""nubis.bench."""
