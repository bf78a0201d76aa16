"""The HTCondor pool federation: the official kubernetes client against the in-memory API server
(one per member cluster), the collector and startds replaced at the htcondor2 bindings boundary."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import classad2
import htcondor2
import pytest
from condor_fakes import FakeCollector, FakeConnector, load_ads
from pydantic import ValidationError

from burst.api import ClusterRecord, ClusterState, Federation, FederationContext, FederationError, SimClock
from burst.federation.htcondor import (
    DAEMONSET,
    SECRET,
    HTCondorPool,
    HTCondorPoolConfig,
    startd_constraint,
)
from burst.registry import config_class
from burst.testing.kube_server import KubeApiServer

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
TOKEN = "eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wifQ.eyJzdWIiOiJidXJzdEBjZXJuLmNoIn0.c2VjcmV0LXNpZ25hdHVyZQ"
COLLECTOR = "condor-cm.cern.ch:9618"
NS = "burst-htcondor"


def record(cluster_id: str = "burst-c1", *, gpus: int = 0) -> ClusterRecord:
    return ClusterRecord(
        cluster_id=cluster_id,
        provider="tsystems",
        region="eu-de",
        flavor="s3.4xlarge.4",
        cpus_per_node=16,
        memory_mb_per_node=65536,
        gpus_per_node=gpus,
        nodes=3,
        desired_nodes=3,
        state=ClusterState.JOINING,
        state_since=NOW,
        created_at=NOW,
        price_per_hour=1.2,
        control_plane_per_hour=0.0,
        currency="EUR",
        campaign="moriond-2027",
    )


@pytest.fixture
def member() -> Iterator[KubeApiServer]:
    server = KubeApiServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "idtoken"
    path.write_text(TOKEN + "\n")
    return path


def build(connector: FakeConnector, token_file: Path, credentials: object = None, **config: object) -> HTCondorPool:
    cfg = HTCondorPoolConfig.model_validate(
        {"kind": "htcondor", "collector": COLLECTOR, "token_file": token_file.name, **config}
    )
    extras: dict[str, object] = {"htcondor.connector": connector}
    if credentials is not None:
        extras["credentials"] = credentials
    ctx = FederationContext(clock=SimClock(NOW), owner="burst", config_dir=str(token_file.parent), extras=extras)
    pool = cfg.build(ctx)
    assert isinstance(pool, HTCondorPool)
    return pool


def with_startds(connector: FakeConnector, ads: list[classad2.ClassAd] | None = None) -> FakeCollector:
    collector = FakeCollector(COLLECTOR, load_ads("startds.json") if ads is None else ads)
    connector.collectors[COLLECTOR] = collector
    return collector


def env_of(ds: dict) -> dict[str, str]:
    """Plain values; a Downward API variable as ``fieldRef:<path>``."""
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    return {
        e["name"]: e["value"] if "value" in e else f"fieldRef:{e['valueFrom']['fieldRef']['fieldPath']}"
        for e in container["env"]
    }


# --- join -------------------------------------------------------------------------------------


def test_join_creates_namespace_token_secret_and_startd_daemonset(
    member: KubeApiServer, connector: FakeConnector, token_file: Path
) -> None:
    with_startds(connector, [])
    status = build(connector, token_file).join(record(), member.kubeconfig())

    assert not status.ready and "no startd of burst-c1 in the pool" in status.message
    ns = member.get("v1", "namespaces", NS)
    assert (
        ns["metadata"]["labels"]["burst.owner"] == "burst" and ns["metadata"]["labels"]["burst.cluster"] == "burst-c1"
    )

    secret = member.get("v1", "secrets", SECRET, NS)
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN  # stripped of the file's newline

    ds = member.get("apps/v1", "daemonsets", DAEMONSET, NS)
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "htcondor/execute:25.0-el9"
    env = env_of(ds)
    assert env["CONDOR_HOST"] == COLLECTOR
    assert env["_CONDOR_BurstCluster"] == '"burst-c1"'
    assert env["_CONDOR_BurstCampaign"] == '"moriond-2027"'
    assert env["_CONDOR_BurstOwner"] == '"burst"'
    # what the startd will publish: ClassAd string literals that evaluate to the ids
    assert classad2.ExprTree(env["_CONDOR_BurstCluster"]).eval() == "burst-c1"
    assert classad2.ExprTree(env["_CONDOR_BurstCampaign"]).eval() == "moriond-2027"
    assert set(env["_CONDOR_STARTD_ATTRS"].split()) >= {"$(STARTD_ATTRS)", "BurstCluster", "BurstCampaign", "BurstNode"}
    # the node the pod runs on, from the Downward API, advertised as the string BurstNode
    assert env["K8S_NODE_NAME"] == "fieldRef:spec.nodeName"
    assert env["_CONDOR_BurstNode"] == '"$ENV(K8S_NODE_NAME)"'
    # one partitionable slot sized to the node, less what the kubelet keeps
    assert (env["NUM_CPUS"], env["MEMORY"]) == ("15", str(65536 - 2048))
    assert container["resources"]["requests"] == {"cpu": "15", "memory": "63488Mi"}
    assert container["resources"]["limits"] == container["resources"]["requests"]
    assert pod["tolerations"] == [{"operator": "Exists"}]
    # the token reaches the startd as a file from the secret, never as an env value
    assert TOKEN not in str(container["env"])
    (mount,) = container["volumeMounts"]
    (volume,) = pod["volumes"]
    assert mount == {"name": "idtoken", "mountPath": "/etc/condor/tokens-orig.d", "readOnly": True}
    assert volume["secret"]["secretName"] == SECRET
    assert ds["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "htcondor-startd",
        "burst.cluster": "burst-c1",
    }
    assert pod.get("nodeSelector") is None


def test_odd_campaign_names_stay_one_classad_string() -> None:
    from burst.federation.htcondor import _quoted

    for name in ['He said "go"', "back\\slash", ""]:
        assert classad2.ExprTree(_quoted(name)).eval() == name


def test_gpu_nodes_get_the_gpu_resource(member: KubeApiServer, connector: FakeConnector, token_file: Path) -> None:
    with_startds(connector, [])
    build(connector, token_file).join(record(gpus=2), member.kubeconfig())
    ds = member.get("apps/v1", "daemonsets", DAEMONSET, NS)
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "2"


def test_ready_when_the_collector_lists_the_clusters_startds(
    member: KubeApiServer, connector: FakeConnector, token_file: Path
) -> None:
    collector = with_startds(connector)
    status = build(connector, token_file).join(record(), member.kubeconfig())
    assert status.ready and status.message == "2 startds of burst-c1 in the pool (32 cores)"
    (query,) = collector.calls
    assert query.opts == htcondor2.AdType.Startd
    assert query.constraint == 'BurstCluster =?= "burst-c1" && BurstOwner =?= "burst"'


def test_readiness_falls_back_to_the_daemonset_when_the_collector_is_unreachable(
    member: KubeApiServer, connector: FakeConnector, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    connector.collectors[COLLECTOR] = FakeCollector(COLLECTOR, unreachable=True)
    pool = build(connector, token_file)
    status = pool.join(record(), member.kubeconfig())
    assert not status.ready and "0/0 pods ready" in status.message

    member.set_status("apps/v1", "daemonsets", DAEMONSET, {"desiredNumberScheduled": 3, "numberReady": 2}, NS)
    assert not pool.join(record(), member.kubeconfig()).ready

    member.set_status("apps/v1", "daemonsets", DAEMONSET, {"numberReady": 3}, NS)
    with caplog.at_level(logging.WARNING):
        status = pool.join(record(), member.kubeconfig())
    assert status.ready
    assert "collector cannot be queried" in status.message and "3/3 pods ready" in status.message
    assert "readiness of burst-c1 from its DaemonSet" in caplog.text

    strict = build(connector, token_file, fallback_to_daemonset=False)
    assert not strict.join(record(), member.kubeconfig()).ready


def test_join_is_idempotent_and_picks_up_a_rotated_token(
    member: KubeApiServer, connector: FakeConnector, token_file: Path
) -> None:
    with_startds(connector, [])
    pool = build(connector, token_file)
    pool.join(record(), member.kubeconfig())
    after_first = member.object_keys()
    token_file.write_text("rotated-token")
    member.clear_requests()
    pool.join(record(), member.kubeconfig())

    assert member.object_keys() == after_first
    secret = member.get("v1", "secrets", SECRET, NS)
    assert base64.b64decode(secret["data"]["token"]).decode() == "rotated-token"
    writes = [(r.method, r.path) for r in member.requests if r.method != "GET"]
    assert writes == [
        ("POST", "/api/v1/namespaces"),
        ("POST", f"/api/v1/namespaces/{NS}/secrets"),
        ("PATCH", f"/api/v1/namespaces/{NS}/secrets/{SECRET}"),
        ("POST", f"/apis/apps/v1/namespaces/{NS}/daemonsets"),
    ]


def test_the_token_is_never_logged(
    member: KubeApiServer, connector: FakeConnector, token_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    connector.collectors[COLLECTOR] = FakeCollector(COLLECTOR, unreachable=True)
    pool = build(connector, token_file)
    errors = []
    with caplog.at_level(logging.DEBUG):
        pool.join(record(), member.kubeconfig())
        with pytest.raises(FederationError) as failed:
            pool.drain(record())
        errors.append(str(failed.value))
        member.expire_token()
        with pytest.raises(FederationError) as failed:
            pool.join(record(), member.kubeconfig())
        errors.append(str(failed.value))
    encoded = base64.b64encode(TOKEN.encode()).decode()
    assert caplog.records, "the failures above must have been logged"
    for text in [caplog.text, *errors]:
        assert TOKEN not in text and encoded not in text and TOKEN[:20] not in text
        assert member.token not in text  # nor the member's kubeconfig credentials


def test_a_missing_token_file_fails_the_join_naming_the_file(
    member: KubeApiServer, connector: FakeConnector, tmp_path: Path
) -> None:
    with_startds(connector, [])
    pool = build(connector, tmp_path / "absent-token")
    with pytest.raises(FederationError, match=r"cannot read the IDTOKEN file .*absent-token"):
        pool.join(record(), member.kubeconfig())
    assert member.find("apps/v1", "daemonsets", DAEMONSET, NS) is None


def test_rejected_credentials_and_unreachable_member(
    member: KubeApiServer, connector: FakeConnector, token_file: Path
) -> None:
    with_startds(connector, [])
    pool = build(connector, token_file)
    with pytest.raises(FederationError, match=r"joining burst-c1: namespace .*HTTP 401.*credentials rejected"):
        pool.join(record(), member.kubeconfig(token="expired"))
    kubeconfig = member.kubeconfig()
    member.stop()
    with pytest.raises(FederationError, match="API server unreachable"):
        pool.join(record(), kubeconfig)
    with pytest.raises(FederationError, match="kubeconfig is not usable"):
        pool.join(record(), "clusters: [unterminated")


# --- drain / undrain --------------------------------------------------------------------------


def test_drain_is_graceful_on_this_clusters_startds_and_counts_running_jobs(
    connector: FakeConnector, token_file: Path
) -> None:
    collector = with_startds(connector)
    running = build(connector, token_file).drain(record())

    # node-a: one Busy and one Retiring dynamic slot; node-b: one Busy.  burst-c2 and the other
    # installation's burst-c1 are not ours.
    assert running == 3
    assert set(connector.startds) == {"<127.9.0.5:9618?addrs=127.9.0.5-9618>", "<127.9.0.6:9618?addrs=127.9.0.6-9618>"}
    for startd in connector.startds.values():
        (call,) = startd.drains
        assert call["drain_type"] == htcondor2.DrainType.Graceful
        assert call["reason"] == "burst: removing cluster burst-c1"
    assert collector.calls[0].constraint == startd_constraint("burst-c1", "burst")


def test_drain_does_not_drain_twice_and_reaches_zero(connector: FakeConnector, token_file: Path) -> None:
    ads = [ad for ad in load_ads("startds.json") if ad.get("BurstCluster") == "burst-c1"]
    for ad in ads:
        ad["Draining"] = True
    with_startds(connector, ads)
    pool = build(connector, token_file)
    assert pool.drain(record()) == 3  # the other installation's slot is filtered by the collector
    assert connector.startds == {}

    for ad in ads:
        if ad.get("State") == "Claimed":
            ad["State"], ad["Activity"] = "Drained", "Idle"
    assert pool.drain(record()) == 0


def test_drain_never_reports_zero_on_a_blind_read(connector: FakeConnector, token_file: Path) -> None:
    connector.collectors[COLLECTOR] = FakeCollector(COLLECTOR, unreachable=True)
    with pytest.raises(FederationError, match=r"draining burst-c1: .*collector condor-cm.cern.ch:9618"):
        build(connector, token_file).drain(record())


def test_drain_refused_by_a_startd_is_an_error(connector: FakeConnector, token_file: Path) -> None:
    with_startds(connector)
    connector.startd(classad2.ClassAd({"MyAddress": "<127.9.0.6:9618?addrs=127.9.0.6-9618>"})).unreachable = True
    connector.opened.clear()
    with pytest.raises(FederationError, match=r"slot1@burst-c1-node-b .*failed to start draining"):
        build(connector, token_file).drain(record())
    # the other startd was still drained
    assert len(connector.startds["<127.9.0.5:9618?addrs=127.9.0.5-9618>"].drains) == 1


def test_undrain_cancels_the_drains(connector: FakeConnector, token_file: Path) -> None:
    with_startds(connector)
    build(connector, token_file).undrain(record())
    assert {a: s.cancels for a, s in connector.startds.items()} == {
        "<127.9.0.5:9618?addrs=127.9.0.5-9618>": [None],
        "<127.9.0.6:9618?addrs=127.9.0.6-9618>": [None],
    }
    assert all(not s.drains for s in connector.startds.values())


def test_undrain_failure_matters_only_for_a_draining_startd(connector: FakeConnector, token_file: Path) -> None:
    ads = load_ads("startds.json")
    with_startds(connector, ads)
    connector.startd(classad2.ClassAd({"MyAddress": "<127.9.0.6:9618?addrs=127.9.0.6-9618>"})).unreachable = True
    pool = build(connector, token_file)
    pool.undrain(record())  # node-b was not draining: its refusal is harmless
    for ad in ads:
        if ad.get("Machine") == "burst-c1-node-b":
            ad["Draining"] = True
    with pytest.raises(FederationError, match="undraining burst-c1"):
        pool.undrain(record())


# --- unjoin -----------------------------------------------------------------------------------


def test_unjoin_deletes_exactly_what_join_created(
    member: KubeApiServer, connector: FakeConnector, token_file: Path
) -> None:
    with_startds(connector, [])
    before = member.object_keys()
    pool = build(connector, token_file)
    pool.join(record(), member.kubeconfig())
    # (the server's service-account controller adds the namespace's "default" account, as in
    # a real cluster; it goes with the namespace)
    assert member.object_keys() - before - {("v1", "serviceaccounts", NS, "default")} == {
        ("v1", "namespaces", "", NS),
        ("v1", "secrets", NS, SECRET),
        ("apps/v1", "daemonsets", NS, DAEMONSET),
    }
    pool.unjoin(record())
    assert member.object_keys() == before
    pool.unjoin(record())  # idempotent: already gone is fine
    assert member.object_keys() == before


def test_unjoin_after_a_restart_uses_the_credentials_callback(
    member: KubeApiServer, connector: FakeConnector, token_file: Path
) -> None:
    with_startds(connector, [])
    before = member.object_keys()
    build(connector, token_file).join(record(), member.kubeconfig())
    asked = []

    def credentials(cluster_id: str) -> str:
        asked.append(cluster_id)
        return member.kubeconfig()

    build(connector, token_file, credentials=credentials).unjoin(record())
    assert asked == ["burst-c1"] and member.object_keys() == before
    with pytest.raises(FederationError, match="no kubeconfig"):
        build(connector, token_file).unjoin(record())


def test_unjoin_leaves_a_namespace_burst_did_not_create(
    member: KubeApiServer, connector: FakeConnector, token_file: Path
) -> None:
    with_startds(connector, [])
    member.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "ops"}}})
    before = member.object_keys()
    pool = build(connector, token_file)
    pool.join(record(), member.kubeconfig())
    pool.unjoin(record())
    assert member.object_keys() == before
    assert member.get("v1", "namespaces", NS)["metadata"]["labels"] == {"team": "ops"}


# --- config and contract ----------------------------------------------------------------------


def test_config_is_registered_and_checked(token_file: Path, connector: FakeConnector) -> None:
    assert config_class("burst.federations", "htcondor") is HTCondorPoolConfig
    for image in ("htcondor/execute", "htcondor/execute:latest", "localhost:5000/execute"):
        with pytest.raises(ValidationError, match="pinned"):
            HTCondorPoolConfig(kind="htcondor", collector=COLLECTOR, token_file="t", image=image)
    HTCondorPoolConfig(
        kind="htcondor", collector=COLLECTOR, token_file="t", image="reg.cern.ch/exec@sha256:" + "a" * 64
    )
    with pytest.raises(ValidationError, match="DNS label"):
        HTCondorPoolConfig(kind="htcondor", collector=COLLECTOR, token_file="t", namespace="Burst_NS")
    fed: Federation = build(connector, token_file)
    assert isinstance(fed, Federation) and fed.name == "htcondor"


# --- node release -----------------------------------------------------------------------------


def node_ads(
    node: str, i: int, *, jobs: int = 0, activity: str = "Busy", cluster: str = "burst-c1"
) -> list[classad2.ClassAd]:
    """One startd on Kubernetes node ``node``: a partitionable slot and ``jobs`` claimed dynamic
    slots.  ``Machine`` is the pod's host name, not the node's: only ``BurstNode`` says the node."""
    common = {
        "Machine": f"burst-startd-{i:05d}",
        "MyAddress": f"<127.9.2.{i}:9618>",
        "BurstCluster": cluster,
        "BurstOwner": "burst",
        "BurstNode": node,
    }
    ads = [{**common, "Name": f"slot1@burst-startd-{i:05d}", "SlotType": "Partitionable", "State": "Unclaimed"}]
    ads += [
        {**common, "Name": f"slot1_{j}@burst-startd-{i:05d}", "SlotType": "Dynamic", "State": "Claimed"}
        | {"Activity": activity}
        for j in range(1, jobs + 1)
    ]
    return [classad2.ClassAd(ad) for ad in ads]


@pytest.fixture
def four_nodes(connector: FakeConnector) -> FakeCollector:
    """Four nodes of burst-c1, jobs on node-1 and node-2; a node of another cluster, idle."""
    ads = node_ads("node-1", 1, jobs=2) + node_ads("node-2", 2, jobs=1, activity="Retiring")
    ads += node_ads("node-3", 3) + node_ads("node-4", 4) + node_ads("other-node", 9, cluster="burst-c2")
    return with_startds(connector, ads)


def test_release_idle_drains_idle_startds_and_returns_their_node_names(
    connector: FakeConnector, token_file: Path, four_nodes: FakeCollector
) -> None:
    from burst.federation.api import CountsRunning, ReleasesNodes
    from burst.federation.htcondor import IDLE_CHECK

    pool = build(connector, token_file)
    assert isinstance(pool, ReleasesNodes) and isinstance(pool, CountsRunning)
    assert pool.running(record()) == 3 and connector.startds == {}  # counting drains nothing

    assert pool.release_idle(record(), 4) == ["node-3", "node-4"]
    assert set(connector.startds) == {"<127.9.2.3:9618>", "<127.9.2.4:9618>"}
    (call,) = connector.startds["<127.9.2.3:9618>"].drains
    assert call["drain_type"] == htcondor2.DrainType.Graceful
    assert call["reason"] == "burst: releasing node node-3 of burst-c1"
    assert call["check_expr"] == IDLE_CHECK
    assert classad2.ExprTree(IDLE_CHECK).eval(classad2.ClassAd({"State": "Unclaimed"})) is True
    assert classad2.ExprTree(IDLE_CHECK).eval(classad2.ClassAd({"State": "Claimed"})) is False
    assert pool.running(record()) == 3


def test_release_idle_caps_and_a_retry_returns_the_same_nodes_first(
    connector: FakeConnector, token_file: Path, four_nodes: FakeCollector
) -> None:
    pool = build(connector, token_file)
    assert pool.release_idle(record(), 0) == []
    assert pool.release_idle(record(), 1) == ["node-3"]
    four_nodes.startds += node_ads("node-0", 5)  # idle and first by name: the drained node still comes first
    assert pool.release_idle(record(), 1) == ["node-3"]
    assert len(connector.startds["<127.9.2.3:9618>"].drains) == 1  # draining already: not asked again
    assert "<127.9.2.5:9618>" not in connector.startds
    assert pool.release_idle(record(), 3) == ["node-3", "node-0", "node-4"]


def test_a_startd_that_took_a_job_meanwhile_refuses_and_its_node_is_not_returned(
    connector: FakeConnector, token_file: Path, four_nodes: FakeCollector
) -> None:
    # the negotiator claims a slot of node-4 after the collector's ad was written
    claimed = node_ads("node-4", 4, jobs=1)[1]
    raced = connector.startd(classad2.ClassAd({"MyAddress": "<127.9.2.4:9618>"}))
    raced.before_drain = lambda: four_nodes.startds.append(claimed)
    pool = build(connector, token_file)
    assert pool.release_idle(record(), 4) == ["node-3"]
    assert raced.refused and not raced.drains
    assert not any(ad.get("Draining") for ad in connector.slots_of("<127.9.2.4:9618>"))


def test_a_half_drained_node_is_given_back(connector: FakeConnector, token_file: Path) -> None:
    # node-5 has two startds (a restarted pod's old ad lingers); the second took a job
    ads = node_ads("node-5", 5) + node_ads("node-5", 6)
    collector = with_startds(connector, ads)
    second = connector.startd(classad2.ClassAd({"MyAddress": "<127.9.2.6:9618>"}))
    second.before_drain = lambda: collector.startds.append(node_ads("node-5", 6, jobs=1)[1])
    assert build(connector, token_file).release_idle(record(), 1) == []
    first = connector.startds["<127.9.2.5:9618>"]
    assert len(first.drains) == 1 and first.cancels == [None]


def test_release_on_a_draining_cluster_and_undrain_keeps_released_nodes_drained(
    connector: FakeConnector, token_file: Path, four_nodes: FakeCollector
) -> None:
    pool = build(connector, token_file)
    assert pool.drain(record()) == 3
    drains = {a: len(s.drains) for a, s in connector.startds.items()}
    assert pool.release_idle(record(), 4) == ["node-3", "node-4"]  # idle and drained already
    assert {a: len(s.drains) for a, s in connector.startds.items()} == drains

    pool.undrain(record())
    # the released nodes' VMs may be going away: a job matched there would die, so they stay drained
    still = {ad.get("BurstNode") for ad in four_nodes.startds if ad.get("Draining")}
    assert still == {"node-3", "node-4"}
    assert pool.release_idle(record(), 1) == ["node-3"]  # a retry returns them first, not drained again
    assert len(connector.startds["<127.9.2.3:9618>"].drains) == 1


def test_startds_that_do_not_name_their_node_are_never_released(connector: FakeConnector, token_file: Path) -> None:
    ads = node_ads("node-1", 1)
    for ad in ads:
        del ad["BurstNode"]  # started from a DaemonSet made before BurstNode existed
    with_startds(connector, ads)
    assert build(connector, token_file).release_idle(record(), 2) == []
    assert connector.startds == {}


def test_release_never_guesses_on_a_blind_read(connector: FakeConnector, token_file: Path) -> None:
    connector.collectors[COLLECTOR] = FakeCollector(COLLECTOR, unreachable=True)
    pool = build(connector, token_file)
    with pytest.raises(FederationError, match=r"releasing idle nodes of burst-c1: .*collector"):
        pool.release_idle(record(), 2)
    with pytest.raises(FederationError, match=r"counting the jobs of burst-c1"):
        pool.running(record())
