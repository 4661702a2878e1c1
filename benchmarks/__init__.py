"""Benchmarks of fireworks_deploy against the official client and the machine's limits.

Run ``python -m benchmarks --quick`` (CI, < 3 minutes) or ``--full``; see benchmarks/README.md.
"""
