"""Benchmarks of maestro.deploy against the manual procedure (docs: bench/README.md)."""
