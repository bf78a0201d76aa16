"""The alarms: one definition (burst.alarms) behind the Prometheus rules file, which promtool
checks and unit-tests, the alarm gauges, and the status page's list of firing alarms."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from burst import alarms
from burst.alarms import AlarmInputs, AlarmSignals, ClusterAge, cluster_ages, evaluate, render_rules
from burst.clock import SimClock
from burst.config import ReconcilerConfig
from burst.lifecycle import ClusterRecord, ClusterState
from burst.metrics import AlarmMetrics
from burst.status import StatusPage, ledger_spend
from burst.store import Store
from burst.testing.builders import make_config

S = ClusterState
ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "burst-alerts.yaml"
NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is needed: scripts/test installs it (apt-get install prometheus)")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=RULES.parent, timeout=60, check=False)


def test_the_committed_rules_file_is_generated_from_the_definitions() -> None:
    assert RULES.read_text(encoding="utf-8") == render_rules(), (
        "deploy/prometheus/burst-alerts.yaml is stale: python -m burst.alarms > deploy/prometheus/burst-alerts.yaml"
    )
    names = {a.name for a in alarms.ALARMS}
    assert {
        "BurstBudgetWarning",
        "BurstBudgetExhausted",
        "BurstClusterStuckProvisioning",
        "BurstDrainStalled",
        "BurstDeletionStuck",
        "BurstProviderFailing",
        "BurstBacklogStale",
        "BurstNoLeader",
        "BurstOrphanFound",
    } == names


def test_promtool_checks_the_rules() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alarms.ALARMS)} rules found" in done.stdout


def test_promtool_unit_tests_pass() -> None:
    done = promtool("test", "rules", "burst-alerts.test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_catch_a_changed_threshold(tmp_path: Path) -> None:
    """The unit tests pin the thresholds: the same tests against a rules file with another grace fail."""
    text = RULES.read_text(encoding="utf-8").replace(f"+ {alarms.STATE_GRACE_S:g}", "+ 0")
    (tmp_path / RULES.name).write_text(text)
    shutil.copy(RULES.parent / "burst-alerts.test.yaml", tmp_path)
    exe = shutil.which("promtool")
    assert exe is not None
    done = subprocess.run(
        [exe, "test", "rules", "burst-alerts.test.yaml"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode != 0 and "BurstClusterStuckProvisioning" in done.stdout + done.stderr


# --- the Python side of the same conditions ----------------------------------------------------------


def names(inp: AlarmInputs) -> list[tuple[str, str]]:
    return [(f.alarm, f.subject) for f in evaluate(inp)]


def test_budget_alarms_at_80_and_100_percent() -> None:
    inp = AlarmInputs(NOW, budgets=[("a", 0.79), ("b", 0.8), ("c", 1.0)])
    assert names(inp) == [("BurstBudgetWarning", "b"), ("BurstBudgetWarning", "c"), ("BurstBudgetExhausted", "c")]


def test_a_state_past_its_deadline_and_the_grace_fires_once_grace_is_over() -> None:
    limit = 2700.0
    at_edge = ClusterAge("aws-1", "aws", S.PROVISIONING, limit + alarms.STATE_GRACE_S, limit)
    past = ClusterAge("aws-1", "aws", S.PROVISIONING, limit + alarms.STATE_GRACE_S + 1, limit)
    no_deadline = ClusterAge("aws-2", "aws", S.DRAINING, 10 * 86400, None)
    assert names(AlarmInputs(NOW, clusters=[at_edge, no_deadline])) == []
    assert names(AlarmInputs(NOW, clusters=[past])) == [("BurstClusterStuckProvisioning", "aws-1")]
    drain = ClusterAge("gce-3", "gce", S.DRAINING, 1800 + alarms.STATE_GRACE_S + 60, 1800)
    removing = ClusterAge("gce-4", "gce", S.REMOVING, alarms.REMOVING_LIMIT_S + alarms.STATE_GRACE_S + 60, 1800)
    assert names(AlarmInputs(NOW, clusters=[drain, removing])) == [
        ("BurstDrainStalled", "gce-3"),
        ("BurstDeletionStuck", "gce-4"),
    ]


def _rec(cid: str, state: ClusterState, since: datetime, deadline: datetime | None = None) -> ClusterRecord:
    return ClusterRecord(
        cid, "aws", "r", "f", 4, 16384, 0, 1, 2, state, since, since, 100.0, 0.1, "EUR", drain_deadline=deadline
    )


def test_state_limits_are_the_reconcilers_own_deadlines() -> None:
    settings = ReconcilerConfig(provisioning_timeout=timedelta(minutes=45), joining_timeout=timedelta(minutes=20))
    t = NOW - timedelta(minutes=30)
    fleet = [
        _rec("p", S.PROVISIONING, t),
        _rec("j", S.JOINING, t),
        _rec("d", S.DRAINING, t, deadline=t + timedelta(minutes=15)),
        _rec("g", S.DRAINING, t),
        _rec("r", S.REMOVING, t),
        _rec("a", S.ACTIVE, t),
    ]
    got = {c.cluster_id: (c.state, c.age_s, c.limit_s) for c in cluster_ages(fleet, NOW, settings)}
    assert got == {
        "p": (S.PROVISIONING, 1800.0, 2700.0),
        "j": (S.JOINING, 1800.0, 1200.0),
        "d": (S.DRAINING, 1800.0, 900.0),
        "g": (S.DRAINING, 1800.0, None),
        "r": (S.REMOVING, 1800.0, alarms.REMOVING_LIMIT_S),
    }


def test_signals_error_streaks_backlog_leader_and_orphans() -> None:
    sig = AlarmSignals(providers=("aws", "gce"))
    t = NOW
    owner = {"aws-1": "aws", "gce-1": "gce"}
    for i in range(alarms.PROVIDER_ERROR_STREAK):
        sig.observe_tick(
            t + timedelta(minutes=i), demand_stale=False, errors=[("aws-1", "ProviderError", "x")], provider_of=owner
        )
    assert sig.error_streaks == {"aws": alarms.PROVIDER_ERROR_STREAK, "gce": 0}
    now = t + timedelta(minutes=alarms.PROVIDER_ERROR_STREAK)
    assert names(AlarmInputs(now, signals=sig)) == [("BurstProviderFailing", "aws")]
    sig.observe_tick(now, demand_stale=True, errors=[], provider_of=owner, failed=["gce-1"])
    assert sig.error_streaks["aws"] == 0 and sig.interruptions == {"gce": 1}
    # an error of no known cluster (a provider listing failed) makes no provider up
    sig.observe_tick(now, demand_stale=True, errors=[("*", "ProviderError", "listing")], provider_of=owner)
    assert set(sig.error_streaks) == {"aws", "gce"} and not any(sig.error_streaks.values())
    # the backlog stays unreadable: stale once BACKLOG_STALE_S has passed since the last good read
    last_good = now - timedelta(minutes=1)
    later = last_good + timedelta(seconds=alarms.BACKLOG_STALE_S + 1)
    sig.observe_tick(later, demand_stale=True, errors=[], provider_of=owner)
    assert names(AlarmInputs(later, signals=sig)) == [("BurstBacklogStale", "backlog")]
    # standing by with a live leader elsewhere: no backlog alarm, no leader alarm
    sig.observe_standby(later + timedelta(minutes=5), leader_alive=True)
    assert names(AlarmInputs(later + timedelta(minutes=5), signals=sig)) == []
    # the Lease unreadable (or expired everywhere) for longer than NO_LEADER_S
    gone = later + timedelta(minutes=5, seconds=alarms.NO_LEADER_S + 1)
    sig.observe_standby(gone, leader_alive=False)
    assert names(AlarmInputs(gone, signals=sig)) == [("BurstNoLeader", "lease")]
    sig.orphans_found = 2
    assert ("BurstOrphanFound", "clouds") in names(AlarmInputs(gone, signals=sig))


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float | None:
    return reg.get_sample_value(name, labels)


def test_alarm_gauges_carry_what_the_rules_read() -> None:
    reg = CollectorRegistry()
    m = AlarmMetrics(reg)
    sig = AlarmSignals(providers=("aws",))
    sig.observe_tick(NOW, demand_stale=False, errors=[("c1", "ProviderError", "x")], provider_of={"c1": "aws"})
    sig.orphans_found = 1
    ages = [ClusterAge("c1", "aws", S.PROVISIONING, 4000.0, 2700.0), ClusterAge("c2", "aws", S.DRAINING, 50.0, None)]
    m.observe(ages, sig, NOW + timedelta(minutes=3))
    lab = {"cluster": "c1", "provider": "aws", "state": "PROVISIONING"}
    assert _value(reg, "burst_cluster_state_age_seconds", **lab) == 4000.0
    assert _value(reg, "burst_cluster_state_limit_seconds", **lab) == 2700.0
    assert _value(reg, "burst_cluster_state_limit_seconds", cluster="c2", provider="aws", state="DRAINING") is None
    assert _value(reg, "burst_provider_error_streak", provider="aws") == 1
    assert _value(reg, "burst_backlog_age_seconds") == 180.0
    assert _value(reg, "burst_leader") == 1
    assert _value(reg, "burst_orphans_found_total") == 1
    m.observe(ages, sig, NOW + timedelta(minutes=4))  # the same signals again: counted once
    assert _value(reg, "burst_orphans_found_total") == 1
    sig.observe_standby(NOW + timedelta(minutes=5), leader_alive=True)
    m.observe([], sig, NOW + timedelta(minutes=5))
    assert _value(reg, "burst_leader") == 0 and _value(reg, "burst_backlog_age_seconds") == 0
    assert _value(reg, "burst_cluster_state_age_seconds", **lab) is None


def test_the_status_page_lists_the_alarms_firing() -> None:
    cfg = make_config({"policies": [{"kind": "budget", "name": "cern", "monthly": "100 EUR"}]})
    store = Store("sqlite://", cfg.file.installation)
    clock = SimClock(NOW)
    page = StatusPage(store, cfg, clock, days=1)
    assert "No alarm firing." in page.render()

    since = NOW - timedelta(minutes=70)  # past the 45 min provisioning timeout and the grace
    rec = store.add(_rec("burst-aws-00001", S.PLANNED, since), "test")
    rec = store.transition(rec, S.PROVISIONING, since, "test")
    store.start_billing(rec, since)  # the cloud accepted the create: billing starts
    spend = ledger_spend(store.ledger(), NOW, "EUR")
    assert spend.month_to_date >= 100  # 2 nodes at 100 EUR/h for 70 min: the cap is reached
    html = page.render()
    assert "No alarm firing." not in html
    for name in ("BurstBudgetWarning", "BurstBudgetExhausted", "BurstClusterStuckProvisioning", "burst-aws-00001"):
        assert name in html
    store.close()
