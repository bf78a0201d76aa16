"""Seasons under a persistent fault: create calls per needed cluster, spend, errors (issue 12).

    uv run python -m bench.faults [TRACE] [--config examples/burst.yaml] [--json]

Each fault kind of the local cloud is injected for the whole season into the provider placement
tries first, once with the config's other providers healthy (fallback) and once with that provider
alone.  A row counts create calls that asked a cloud for a new cluster (``create_requests``: refused
ones included, polls of a cluster being built not), clusters that became ready, and the probes the
faulty provider got: at steady state every needed cluster costs at most two creates, and a faulty
provider one probe per back-off window (30 min at most).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from burst import config as config_mod
from burst.backlog.trace import load_trace
from burst.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
TRACE = ROOT / "examples" / "traces" / "KTH-SP2-1996-slice-1997w06-w11.swf.gz"
FAULTS: dict[str, dict[str, Any]] = {
    "none": {},
    "quota_exceeded": {"kind": "quota_exceeded"},
    "capacity_unavailable": {"kind": "capacity_unavailable"},
    "throttled": {"kind": "throttled"},
    "auth_failed": {"kind": "auth_failed"},
    "provisioning_fails": {"kind": "provisioning_fails"},
    "stuck_provisioning": {"kind": "slow_provisioning", "factor": 20},
}


def season(data: dict[str, Any], trace: Path, faulty: str, fault: str, alone: bool) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    providers = data["providers"]
    if alone:
        providers = {faulty: providers[faulty]}
    if FAULTS[fault]:
        providers[faulty]["faults"] = [FAULTS[fault]]
    data["providers"] = providers
    data["state"] = "sqlite://"
    cfg = config_mod.parse(yaml.safe_dump(data), "<bench.faults>")
    summary, store = simulate(cfg, load_trace(trace), keep_store=True)
    ready: dict[str, int] = {}
    for c in store.all_clusters():
        if c.ready_at is not None:
            ready[c.provider] = ready.get(c.provider, 0) + 1
    store.close()
    days = summary.sim_seconds / 86400
    return {
        "fault": fault,
        "providers": "alone" if alone else "with fallback",
        "create_requests": summary.create_requests,
        "create_requests_by_provider": summary.create_requests_by_provider,
        "ready_by_provider": ready,
        "clusters_ready": summary.clusters_ready,
        "creates_per_ready": round(summary.create_requests / summary.clusters_ready, 2)
        if summary.clusters_ready
        else None,
        "failed_creates_per_day": round((summary.create_requests - summary.clusters_ready) / days, 1),
        "errors_by_type": summary.errors_by_type,
        "cost": round(summary.cost_total, 2),
        "wait_p95_s": round(summary.wait_p95_s),
        "never_started": summary.never_started,
        "killed_jobs": summary.killed_jobs,
        "leaked_clusters": summary.leaked_clusters,
        "days": round(days, 1),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench.faults")
    ap.add_argument("trace", nargs="?", default=str(TRACE))
    ap.add_argument("--config", default=str(ROOT / "examples" / "burst.yaml"))
    ap.add_argument("--faulty", default=None, help="the provider to break (default: the one placement picks first)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    logging.getLogger("burst").setLevel(logging.ERROR)
    data = yaml.safe_load(Path(args.config).read_text(encoding="utf-8"))
    faulty = args.faulty
    if faulty is None:  # the provider the healthy season uses most
        cfg = config_mod.parse(yaml.safe_dump({**data, "state": "sqlite://"}), "<bench.faults>")
        _, store = simulate(cfg, load_trace(Path(args.trace)), keep_store=True)
        used: dict[str, int] = {}
        for c in store.all_clusters():
            used[c.provider] = used.get(c.provider, 0) + 1
        store.close()
        faulty = max(used, key=lambda p: used[p])
    rows = [season(data, Path(args.trace), faulty, "none", False)]
    for fault in FAULTS:
        if fault == "none":
            continue
        for alone in (False, True):
            rows.append(season(data, Path(args.trace), faulty, fault, alone))
            if not args.json:
                r = rows[-1]
                print(json.dumps(r), flush=True)
    if args.json:
        print(json.dumps({"faulty": faulty, "rows": rows}, indent=1))
    else:
        print(f"faulty provider: {faulty}; baseline: {rows[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
