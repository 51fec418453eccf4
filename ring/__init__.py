"""nubis.ring."""
