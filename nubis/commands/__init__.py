"""Sub-commands of the ``nubis`` CLI, one module each."""
