"""Files and processes: atomic writes, provenance, crash points for crash-safety tests, worker
pools that keep to their share of the cores, memory readings, and paths (shipped files, paths as
pages show them).

A base package: it imports only :mod:`zoa_lib.errors` and the package version.
"""
