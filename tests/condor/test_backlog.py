"""The HTCondor backlog source above the bindings: real ClassAds from condor_q -json fixtures,
fake daemons at the bindings boundary that record what burst asked."""

from __future__ import annotations

import logging
import socket
import time
from datetime import UTC, datetime

import classad2
import htcondor2
import pytest
from condor_fakes import FakeCollector, FakeConnector, FakeSchedd, load_ads
from pydantic import ValidationError

from burst import condor
from burst.api import BacklogContext, BacklogSource, BacklogUnavailable, Bucket, Demand, Shape, SimClock
from burst.backlog.htcondor import HTCondorBacklog, HTCondorBacklogConfig, capacity, group_constraint, shape_of
from burst.registry import config_class

NOW = datetime.fromtimestamp(1795970000, UTC)


def source(connector: FakeConnector, **config: object) -> HTCondorBacklog:
    cfg = HTCondorBacklogConfig.model_validate({"kind": "htcondor", **config})
    src = cfg.build(BacklogContext(clock=SimClock(NOW), extras={"htcondor.connector": connector}))
    assert isinstance(src, HTCondorBacklog)
    return src


def schedd_a() -> FakeSchedd:
    return FakeSchedd("schedd-a", load_ads("schedd-a-autoclusters.json"), load_ads("schedd-a-jobs.json"))


def schedd_b() -> FakeSchedd:
    return FakeSchedd("schedd-b", load_ads("schedd-b-autoclusters.json"))


def by_shape(demand: Demand) -> dict[Shape, Bucket]:
    return {b.shape: b for b in demand.pending}


def test_buckets_are_autoclusters_evaluated_and_merged(connector: FakeConnector) -> None:
    connector.schedds["condor-a.cern.ch:9618"] = schedd_a()
    demand = source(connector, schedds=["condor-a.cern.ch:9618"]).poll()

    assert demand.at == NOW and not demand.stale
    assert by_shape(demand) == {
        # autoclusters 1 and 7 have the same shape; the oldest job (QDate scan) waited 20 000 s
        Shape(1, 2000, 0): Bucket(Shape(1, 2000, 0), 1210, 20000.0),
        Shape(8, 16000, 0): Bucket(Shape(8, 16000, 0), 450, 16000.0),
        # RequestMemory = ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 2048), never ran
        Shape(1, 2048, 0): Bucket(Shape(1, 2048, 0), 300, 12000.0),
        Shape(4, 32000, 1): Bucket(Shape(4, 32000, 1), 25, 8000.0),
        # no RequestCpus/RequestMemory/RequestGPUs at all: HTCondor's defaults
        Shape(1, 128, 0): Bucket(Shape(1, 128, 0), 40, 4000.0),
        # RequestCpus and RequestMemory are expressions referring to each other
        Shape(2, 4000, 0): Bucket(Shape(2, 4000, 0), 250000, 15000.0),
    }
    assert demand.pending_jobs == 252025
    assert demand.running_cores == 640 * 1 + 30 * 8
    assert demand.oldest_wait_s == 20000.0


def test_queries_sent_to_the_schedd(connector: FakeConnector) -> None:
    schedd = connector.schedds["condor-a.cern.ch:9618"] = schedd_a()
    source(connector, schedds=["condor-a.cern.ch:9618"], max_job_scan=5000).poll()

    idle, running, scan = schedd.calls
    assert idle.opts == htcondor2.QueryOpt.AutoCluster
    assert idle.constraint == "(JobStatus == 1)"
    assert {"RequestCpus", "RequestMemory", "RequestGPUs", "JobCount", "AutoClusterId"} <= set(idle.projection or [])
    assert running.opts == htcondor2.QueryOpt.AutoCluster and running.constraint == "(JobStatus == 2)"
    # the QDate scan: a plain job query, two attributes, folded by a callback, bounded
    assert scan.opts == htcondor2.QueryOpt.Default
    assert scan.constraint == "(JobStatus == 1)"
    assert scan.projection == ["AutoClusterId", "QDate"]
    assert scan.callback and scan.limit == 5000


def test_memory_expression_uses_memory_usage_once_the_job_ran() -> None:
    ad = classad2.parseOne(
        "[ RequestCpus = 2; MemoryUsage = 3500; "
        "RequestMemory = ifThenElse(MemoryUsage =!= undefined, MemoryUsage, 2048) ]"
    )
    assert shape_of(ad, where="t") == Shape(2, 3500, 0)
    ad = classad2.parseOne("[ RequestCpus = undefined; RequestMemory = 1999.2; RequestGPUs = 0 ]")
    assert shape_of(ad, where="t") == Shape(1, 2000, 0)


def test_default_memory_is_configurable(connector: FakeConnector) -> None:
    connector.schedds["condor-a:9618"] = schedd_a()
    demand = source(connector, schedds=["condor-a:9618"], default_request_memory_mb=2000).poll()
    assert by_shape(demand)[Shape(1, 2000, 0)].count == 1210 + 40


def test_several_schedds_compose(connector: FakeConnector) -> None:
    connector.schedds["condor-a:9618"] = schedd_a()
    connector.schedds["condor-b:9618"] = schedd_b()
    demand = source(connector, schedds=["condor-a:9618", "condor-b:9618"]).poll()

    buckets = by_shape(demand)
    # schedd-b's autocluster 1 has no jobs in the scan: its ad's QDate (1795940000) is used
    assert buckets[Shape(1, 2000, 0)] == Bucket(Shape(1, 2000, 0), 1210 + 800, 30000.0)
    assert buckets[Shape(2, 4097, 2)] == Bucket(Shape(2, 4097, 2), 5, 3000.0)
    assert demand.running_cores == 880 + 200 * 4
    assert demand.pending_jobs == 252025 + 805


def test_schedd_by_name_is_located_through_the_collector(connector: FakeConnector) -> None:
    connector.schedds["condor-a.cern.ch"] = schedd_a()
    collector = connector.collectors["cm.cern.ch:9618"] = FakeCollector(
        "cm.cern.ch:9618", load_ads("startds.json"), {"condor-a.cern.ch": "<127.1.9.1:9618>"}
    )
    demand = source(connector, schedds=["condor-a.cern.ch"], collector="cm.cern.ch:9618").poll()
    assert demand.pending_jobs == 252025
    assert [c.method for c in collector.calls] == ["locate", "query"]
    assert (
        collector.calls[0].opts == htcondor2.DaemonType.Schedd and collector.calls[0].constraint == "condor-a.cern.ch"
    )


def test_schedd_by_name_without_collector_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match=r"schedd 'condor-a\.cern\.ch' is a name: give a collector"):
        HTCondorBacklogConfig.model_validate({"kind": "htcondor", "schedds": ["condor-a.cern.ch"]})


def test_unreachable_schedd_is_stale_not_zero(connector: FakeConnector, caplog: pytest.LogCaptureFixture) -> None:
    connector.schedds["condor-a:9618"] = schedd_a()
    connector.schedds["condor-b:9618"] = FakeSchedd("condor-b", unreachable=True)
    src = source(connector, schedds=["condor-a:9618", "condor-b:9618"])
    with caplog.at_level(logging.WARNING), pytest.raises(BacklogUnavailable, match=r"condor-b:9618.*CEDAR:6001"):
        src.poll()
    assert "condor-b" in caplog.text and "condor-a:9618 (" not in caplog.text


def test_unknown_schedd_name_is_unavailable(connector: FakeConnector) -> None:
    connector.collectors["cm:9618"] = FakeCollector("cm:9618", schedds={})
    connector.schedds["ghost"] = schedd_a()
    with pytest.raises(BacklogUnavailable, match=r"ghost.*Unable to find daemon"):
        source(connector, schedds=["ghost"], collector="cm:9618").poll()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_schedd_through_the_real_bindings() -> None:
    """The production connector against a loopback port nobody listens on: htcondor2 raises its
    own HTCondorException, the adapter names the schedd, the poll is stale."""
    address = f"127.0.0.1:{_closed_port()}"
    cfg = HTCondorBacklogConfig(kind="htcondor", schedds=[address])
    src = cfg.build(BacklogContext(clock=SimClock(NOW)))
    started = time.monotonic()
    with pytest.raises(BacklogUnavailable, match=rf"schedd {address}.*Failed"):
        src.poll()
    assert time.monotonic() - started < 30


def test_unreachable_collector_through_the_real_bindings(connector: FakeConnector) -> None:
    address = f"127.0.0.1:{_closed_port()}"
    collector = condor.HTCondorConnector().collector(address)
    with pytest.raises(condor.CondorError, match=rf"collector {address}.*Failed communication"):
        condor.startd_ads(collector, "true", where=f"collector {address}")


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("schedd-malformed-autoclusters.json", r"RequestCpus = \"four\" is not a number"),
        ("schedd-errorvalue-autoclusters.json", r"RequestMemory = 1 / 0 is not a number"),
        ("schedd-nojobcount-autoclusters.json", r"autocluster ad has no JobCount"),
    ],
)
def test_malformed_ads_make_a_stale_demand(
    connector: FakeConnector, caplog: pytest.LogCaptureFixture, fixture: str, message: str
) -> None:
    connector.schedds["condor-x:9618"] = FakeSchedd("condor-x", load_ads(fixture))
    with caplog.at_level(logging.ERROR), pytest.raises(BacklogUnavailable, match=message):
        source(connector, schedds=["condor-x:9618"]).poll()
    assert "malformed ClassAd" in caplog.text and "schedd condor-x:9618: autocluster 1" in caplog.text


def test_unparsable_fixtures_are_rejected_not_read_as_empty() -> None:
    with pytest.raises(condor.MalformedAdError, match=r"broken-expression.json\[0\].*rejected"):
        load_ads("broken-expression.json")
    with pytest.raises(condor.MalformedAdError, match="JSON array"):
        load_ads("not-an-array.json")
    with pytest.raises(condor.MalformedAdError, match="not JSON"):
        condor.parse_json_ads('[{"a": 1}', source="cut")


def test_expression_marker_survives_json_round_trip() -> None:
    (ad,) = load_ads("schedd-errorvalue-autoclusters.json")
    assert str(ad.lookup("RequestMemory")) == "1 / 0"
    assert ad.eval("RequestMemory") is classad2.Value.Error


def test_accounting_group_view(connector: FakeConnector) -> None:
    schedd = connector.schedds["condor-a:9618"] = schedd_a()
    demand = source(connector, schedds=["condor-a:9618"], accounting_groups=["group_cms"]).poll()
    # autocluster 3 (group_cms.prod), 4 (group_cms.ml) and 7 (AcctGroup = group_cms)
    assert {(b.shape, b.count) for b in demand.pending} == {
        (Shape(1, 2048, 0), 300),
        (Shape(4, 32000, 1), 25),
        (Shape(1, 2000, 0), 10),
    }
    assert demand.running_cores == 30 * 8
    assert schedd.calls[0].constraint == f"(JobStatus == 1) && ({group_constraint(['group_cms'])})"


def test_constraint_is_anded_and_checked(connector: FakeConnector) -> None:
    schedd = connector.schedds["condor-a:9618"] = schedd_a()
    demand = source(connector, schedds=["condor-a:9618"], constraint="RequestCpus >= 4").poll()
    assert {b.shape for b in demand.pending} == {Shape(8, 16000, 0), Shape(4, 32000, 1)}
    assert schedd.calls[0].constraint == "(JobStatus == 1) && (RequestCpus >= 4)"
    with pytest.raises(ValidationError, match="not a ClassAd expression"):
        HTCondorBacklogConfig.model_validate({"kind": "htcondor", "schedds": ["a:1"], "constraint": "RequestCpus >="})
    with pytest.raises(ValidationError, match="accounting group"):
        HTCondorBacklogConfig.model_validate({"kind": "htcondor", "schedds": ["a:1"], "accounting_groups": ['x")']})


def test_onprem_capacity_from_startd_ads(connector: FakeConnector) -> None:
    connector.schedds["condor-a:9618"] = schedd_a()
    collector = connector.collectors["cm:9618"] = FakeCollector("cm:9618", load_ads("startds.json"))
    demand = source(connector, schedds=["condor-a:9618"], collector="cm:9618").poll()
    # wn-001 pslot 64 (8 unclaimed; its dynamic slots not counted again), wn-002 pslot 32 (old
    # style: TotalCpus), wn-003 two static slots (one free), wn-004 draining pslot 16 (none free);
    # burst's own startds (BurstCluster) are not on-prem.
    assert (demand.onprem_cores, demand.onprem_free_cores) == (64 + 32 + 2 + 16, 8 + 32 + 1)
    (query,) = collector.calls
    assert query.opts == htcondor2.AdType.Startd
    assert query.constraint == "(BurstCluster =?= undefined)"
    assert {"TotalSlotCpus", "Cpus", "SlotType", "State"} <= set(query.projection or [])


def test_onprem_startd_constraint(connector: FakeConnector) -> None:
    connector.schedds["condor-a:9618"] = schedd_a()
    connector.collectors["cm:9618"] = FakeCollector("cm:9618", load_ads("startds.json"))
    demand = source(
        connector, schedds=["condor-a:9618"], collector="cm:9618", startd_constraint='Machine == "wn-001.cern.ch"'
    ).poll()
    assert (demand.onprem_cores, demand.onprem_free_cores) == (64, 8)


def test_capacity_counts_burst_startds_when_asked_directly() -> None:
    ads = [ad for ad in load_ads("startds.json") if ad.get("BurstCluster") == "burst-c1"]
    assert capacity(ads).cores == 32 and capacity(ads).free_cores == 8


def test_unreachable_collector_is_stale(connector: FakeConnector) -> None:
    connector.schedds["condor-a:9618"] = schedd_a()
    connector.collectors["cm:9618"] = FakeCollector("cm:9618", unreachable=True)
    with pytest.raises(BacklogUnavailable, match=r"collector cm:9618.*Failed communication"):
        source(connector, schedds=["condor-a:9618"], collector="cm:9618").poll()


def _synthetic(total: int) -> tuple[list[classad2.ClassAd], int]:
    """A million idle jobs as the schedd would group them: 480 autoclusters (shapes × other
    significant attributes such as Requirements), counts skewed like a real queue."""
    ads = []
    acid = 0
    weights = []
    for cpus in (1, 2, 4, 8):
        for memory in (1000, 2000, 2500, 4000, 8000, 16000):
            for gpus in (0, 1):
                for variant in range(10):  # e.g. different Requirements / Owner: same shape
                    acid += 1
                    weights.append(1.0 / acid)
                    ads.append(
                        {
                            "AutoClusterId": acid,
                            "JobStatus": 1,
                            "RequestCpus": cpus,
                            "RequestMemory": memory,
                            "RequestGPUs": gpus,
                            "Requirements": f"Site == {variant}",
                        }
                    )
    scale = total / sum(weights)
    counts = [max(1, int(w * scale)) for w in weights]
    counts[0] += total - sum(counts)
    out = []
    for ad, count in zip(ads, counts, strict=True):
        ad["JobCount"] = count
        ad["QDate"] = 1795900000 + ad["AutoClusterId"]
        out.append(classad2.ClassAd(ad))
    return out, acid


def test_a_million_idle_jobs_become_a_few_hundred_buckets(connector: FakeConnector) -> None:
    ads, autoclusters = _synthetic(1_000_000)

    def jobs():  # lazily, like the schedd streaming; the scan limit stops it early
        for i in range(1_000_000):
            yield classad2.ClassAd({"JobStatus": 1, "AutoClusterId": 1 + i % autoclusters, "QDate": 1795910000 + i})

    connector.schedds["big:9618"] = FakeSchedd("big", ads, jobs)
    started = time.monotonic()
    demand = source(connector, schedds=["big:9618"], max_job_scan=20_000).poll()
    elapsed = time.monotonic() - started

    assert demand.pending_jobs == 1_000_000
    assert autoclusters == 480 and len(demand.pending) == 48  # equal shapes merged
    assert demand.pending_cores == sum(a.eval("RequestCpus") * a.eval("JobCount") for a in ads)
    assert elapsed < 10, f"a million jobs took {elapsed:.1f}s"


def test_config_accepts_one_schedd_and_is_registered() -> None:
    cls = config_class("burst.backlogs", "htcondor")
    assert cls is HTCondorBacklogConfig
    cfg = HTCondorBacklogConfig.model_validate({"kind": "htcondor", "schedd": "condor-host.cern.ch:9618"})
    assert cfg.schedds == ["condor-host.cern.ch:9618"]
    with pytest.raises(ValidationError, match="either schedd or schedds"):
        HTCondorBacklogConfig.model_validate({"kind": "htcondor", "schedd": "a", "schedds": ["b"]})
    with pytest.raises(ValidationError, match="Extra inputs"):
        HTCondorBacklogConfig.model_validate({"kind": "htcondor", "schedds": ["a"], "pool": "x"})


def test_source_satisfies_the_protocol(connector: FakeConnector) -> None:
    src: BacklogSource = source(connector, schedds=["a:1"])
    assert isinstance(src, BacklogSource) and src.name == "htcondor"


def test_real_bindings_locate_drain_and_cancel_fail_cleanly() -> None:
    """The production connector's other calls, against loopback ports nobody listens on: each
    HTCondorException comes out as a CondorError naming the daemon."""
    real = condor.HTCondorConnector()
    collector = real.collector(f"127.0.0.1:{_closed_port()}")
    with pytest.raises(condor.CondorError, match=r"locating schedd condor-a\.cern\.ch: Failed communication"):
        real.schedd("condor-a.cern.ch", collector)
    startd = real.startd(classad2.ClassAd({"MyAddress": f"<127.0.0.1:{_closed_port()}>", "Name": "slot1@x"}))
    with pytest.raises(condor.CondorError, match=r"draining startd slot1@x: Startd failed to start draining"):
        condor.drain(startd, reason="test", where="startd slot1@x")
    with pytest.raises(condor.CondorError, match=r"cancelling the drain of startd slot1@x"):
        condor.cancel_drain(startd, where="startd slot1@x")
    with pytest.raises(condor.CondorError, match="opening startd"):
        real.startd(classad2.ClassAd({"Name": "no-address"}))
