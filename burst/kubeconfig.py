"""Kubeconfig documents for the federation, written the same way by every provider.

A kubeconfig is a secret: it is returned as text, handed to the federation, and never logged or
written to disk by burst.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import yaml


def b64(data: str | bytes) -> str:
    """Base64 as kubeconfig's ``*-data`` fields want it."""
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def render_kubeconfig(
    name: str,
    server: str,
    ca_data: str,
    user: Mapping[str, str],
    *,
    user_name: str | None = None,
    context: str | None = None,
) -> str:
    """A self-contained kubeconfig with one cluster, one user and one current context.

    ``ca_data`` is the base64 CA bundle (``certificate-authority-data``); ``user`` the user entry
    (``{"token": …}`` or ``{"client-certificate-data": …, "client-key-data": …}``; empty for none).
    """
    user_name = user_name or name
    context = context or name
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": ca_data}}],
        "users": [{"name": user_name, "user": dict(user)}],
        "contexts": [{"name": context, "context": {"cluster": name, "user": user_name}}],
        "current-context": context,
    }
    return yaml.safe_dump(doc, sort_keys=False)
