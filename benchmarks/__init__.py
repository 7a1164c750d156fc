"""Benchmarks of mirror-sweep (not part of the installed package): `python -m benchmarks.run`."""
