"""Steering through Karmada PropagationPolicies and KubeFed ReplicaSchedulingPreferences (served
from their CRDs by the test API server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from burst.api import FederationContext, SimClock, SteersWork
from burst.federation.karmada import KarmadaConfig
from burst.federation.kubefed import KubefedConfig
from burst.steering import MemberWeight
from burst.testing.kube_server import KubeApiServer

PP = ("policy.karmada.io/v1alpha1", "propagationpolicies")
CPP = ("policy.karmada.io/v1alpha1", "clusterpropagationpolicies")
RSP = ("scheduling.kubefed.io/v1alpha1", "replicaschedulingpreferences")

WEIGHTS = (
    MemberWeight("cheap", 80, 16, 12, "", price_weight=100),
    MemberWeight("pricey", 60, 16, 16, "", price_weight=50),
    MemberWeight("leaving", 0, 16, 16, "draining", price_weight=0),
)


def _crd(server: KubeApiServer, group: str, kind: str, plural: str, namespaced: bool) -> None:
    server.create(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {
                "group": group,
                "names": {"kind": kind, "plural": plural},
                "scope": "Namespaced" if namespaced else "Cluster",
                "versions": [{"name": "v1alpha1", "served": True, "storage": True}],
            },
        }
    )


def _static(obj: dict[str, Any]) -> list[tuple[list[str], int]]:
    rs = obj["spec"]["placement"]["replicaScheduling"]
    assert (rs["replicaSchedulingType"], rs["replicaDivisionPreference"]) == ("Divided", "Weighted")
    return [(e["targetCluster"]["clusterNames"], e["weight"]) for e in rs["weightPreference"]["staticWeightList"]]


def test_karmada_sets_static_weights_for_its_members_and_keeps_the_others(
    host: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    _crd(host, "policy.karmada.io", "PropagationPolicy", "propagationpolicies", True)
    _crd(host, "policy.karmada.io", "ClusterPropagationPolicy", "clusterpropagationpolicies", False)
    onprem = {"targetCluster": {"clusterNames": ["onprem"]}, "weight": 300}
    stale = {"targetCluster": {"clusterNames": ["leaving"]}, "weight": 100}
    host.create(
        {
            "apiVersion": PP[0],
            "kind": "PropagationPolicy",
            "metadata": {"name": "reco", "namespace": "default"},
            "spec": {
                "resourceSelectors": [{"apiVersion": "batch/v1", "kind": "Job"}],
                "placement": {
                    "clusterAffinity": {"clusterNames": ["onprem", "cheap", "pricey", "leaving"]},
                    "replicaScheduling": {
                        "replicaSchedulingType": "Divided",
                        "replicaDivisionPreference": "Weighted",
                        "weightPreference": {"staticWeightList": [onprem, stale]},
                    },
                },
            },
        }
    )
    host.create(
        {
            "apiVersion": CPP[0],
            "kind": "ClusterPropagationPolicy",
            "metadata": {"name": "all"},
            "spec": {"placement": {}},
        }
    )
    (tmp_path / "karmada.kubeconfig").write_text(host.kubeconfig())
    cfg = KarmadaConfig(kubeconfig="karmada.kubeconfig", steer_policies=["default/reco", "all", "default/missing"])
    fed = cfg.build(FederationContext(clock=clock, owner="o", config_dir=str(tmp_path)))
    assert isinstance(fed, SteersWork)
    plain = KarmadaConfig(kubeconfig="karmada.kubeconfig").build(FederationContext(clock=clock, owner="o"))
    assert not isinstance(plain, SteersWork)  # the engine then computes no weights at all

    fed.steer(WEIGHTS)
    assert _static(host.get(*PP, "reco", "default")) == [(["onprem"], 300), (["cheap"], 100), (["pricey"], 50)]
    assert host.get(*PP, "reco", "default")["spec"]["placement"]["clusterAffinity"]["clusterNames"][0] == "onprem"
    assert _static(host.get(*CPP, "all")) == [(["cheap"], 100), (["pricey"], 50)]
    puts = len([r for r in host.requests if r.method == "PUT"])
    assert puts == 2
    fed.steer(WEIGHTS)  # same weights: nothing written (Karmada would re-divide on every write)
    assert len([r for r in host.requests if r.method == "PUT"]) == puts

    # the emptiness part of the weight moves every tick, the price part only when members change
    fed.steer((MemberWeight("cheap", 5, 16, 1, "", price_weight=100), WEIGHTS[1], WEIGHTS[2]))
    assert len([r for r in host.requests if r.method == "PUT"]) == puts


def test_kubefed_sets_replica_scheduling_preference_weights(
    host: KubeApiServer, clock: SimClock, tmp_path: Path
) -> None:
    _crd(host, "scheduling.kubefed.io", "ReplicaSchedulingPreference", "replicaschedulingpreferences", True)
    host.create(
        {
            "apiVersion": RSP[0],
            "kind": "ReplicaSchedulingPreference",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "targetKind": "FederatedDeployment",
                "totalReplicas": 30,
                "clusters": {
                    "onprem": {"weight": 3, "minReplicas": 2},
                    "leaving": {"weight": 1},
                    "cheap": {"weight": 1, "maxReplicas": 20},
                },
            },
        }
    )
    (tmp_path / "host.kubeconfig").write_text(host.kubeconfig())
    cfg = KubefedConfig(host_kubeconfig="host.kubeconfig", steer_preferences=["default/web"])
    fed = cfg.build(FederationContext(clock=clock, owner="o", config_dir=str(tmp_path)))
    assert isinstance(fed, SteersWork)
    assert not isinstance(
        KubefedConfig(host_kubeconfig="h").build(FederationContext(clock=clock, owner="o")), SteersWork
    )
    fed.steer(WEIGHTS)
    assert host.get(*RSP, "web", "default")["spec"]["clusters"] == {
        "onprem": {"weight": 3, "minReplicas": 2},
        "cheap": {"weight": 100, "maxReplicas": 20},
        "pricey": {"weight": 50},
    }
    patches = len([r for r in host.requests if r.method == "PATCH"])
    fed.steer(WEIGHTS)
    assert len([r for r in host.requests if r.method == "PATCH"]) == patches
