"""Marks providers/gce as a package root for pytest's importlib mode only, so this provider's tests
import as ``gce.tests.*`` and never collide with another provider's ``tests`` package.  Not shipped:
the wheel holds ``src/burst_gce`` alone."""
