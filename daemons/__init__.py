"""nubis.daemons."""
