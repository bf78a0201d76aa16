"""Backlog sources: HTCondor schedds, Kubernetes pending pods, and trace replay."""

from burst.backlog.api import BacklogConfig, BacklogContext, BacklogSource

__all__ = ["BacklogConfig", "BacklogContext", "BacklogSource"]
