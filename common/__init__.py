"""Shared plumbing: config loading, errors, logging, DB engine, HTTP runner.

Nothing here imports a service package (api, daemons, ring); they import this.
"""
