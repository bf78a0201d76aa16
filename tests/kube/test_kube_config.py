"""The Kubernetes kinds in a burst config file: parsed, built and checked like every plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

from burst.api import BacklogContext, ConfigError, FederationContext, SimClock
from burst.backlog.kubernetes import KubernetesBacklog, KubernetesBacklogConfig
from burst.config import parse
from burst.federation.karmada import KarmadaConfig, KarmadaFederation
from burst.federation.kubefed import KubefedConfig, KubefedFederation

CONFIG = """\
installation: cern
onprem: {cores: 100}
backlog: {kind: kubernetes, kubeconfig: host.kubeconfig, namespaces: [reana], label_selector: app=reana}
federation: {kind: %s}
providers:
  aws: {kind: local, cloud: aws, max_nodes: 8, nodes_per_cluster: 4}
"""


def test_kubernetes_backlog_and_kubefed_in_a_config_file(tmp_path: Path, clock: SimClock) -> None:
    path = tmp_path / "burst.yaml"
    cfg = parse(CONFIG % "kubefed, host_kubeconfig: host.kubeconfig, host_context: condor-host", str(path))
    assert isinstance(cfg.backlog, KubernetesBacklogConfig) and cfg.backlog.namespaces == ["reana"]
    assert isinstance(cfg.federation, KubefedConfig) and cfg.federation.namespace == "kube-federation-system"
    source = cfg.backlog.build(BacklogContext(clock, cfg.config_dir))
    assert isinstance(source, KubernetesBacklog) and source.kubeconfig_path == str(tmp_path / "host.kubeconfig")
    fed = cfg.federation.build(FederationContext(clock, "cern", cfg.config_dir))
    assert isinstance(fed, KubefedFederation) and fed.host_kubeconfig_path == str(tmp_path / "host.kubeconfig")


def test_karmada_in_a_config_file(tmp_path: Path, clock: SimClock) -> None:
    cfg = parse(CONFIG % "karmada, kubeconfig: /etc/burst/karmada.kubeconfig", str(tmp_path / "burst.yaml"))
    assert isinstance(cfg.federation, KarmadaConfig)
    fed = cfg.federation.build(FederationContext(clock, "cern", cfg.config_dir))
    assert isinstance(fed, KarmadaFederation) and fed.kubeconfig_path == "/etc/burst/karmada.kubeconfig"


def test_unknown_or_missing_keys_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="host_kubeconfig"):
        parse(CONFIG % "kubefed", str(tmp_path / "burst.yaml"))
    with pytest.raises(ConfigError, match="hostcontext"):
        parse(CONFIG % "kubefed, host_kubeconfig: h, hostcontext: x", str(tmp_path / "burst.yaml"))
