"""The Swift v1 proxy: Falcon ASGI app, tempauth, TempURL, SLO/DLO, ACLs."""
