"""Marks providers/aws as a package root for pytest's importlib mode only, so this provider's tests
import as ``aws.tests.*`` and never collide with another provider's ``tests`` package.  Not shipped:
the wheel holds ``src/burst_aws`` alone."""
