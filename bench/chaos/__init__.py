"""Chaos harness: seeded faults under the real `burst run` (see bench/README.md)."""
