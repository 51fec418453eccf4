"""nubis.api."""
