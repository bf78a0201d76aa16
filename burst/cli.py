"""The ``burst`` command line.  Every verb prints a table for people and ``--output json`` for
scripts; every error is one line on stderr with a non-zero exit, never a traceback."""

from __future__ import annotations

import json
import signal
import sys
import threading

# `burst run` handles SIGTERM from its first moment: importing the CLI, the SDKs and opening the
# store take seconds, and a pod deleted meanwhile must stop cleanly (exit 0), not die by the
# signal's default action.  A process has one set of signal handlers, so this flag is the
# process's; only `burst run` installs the handler, and the daemon takes the flag over.
_STARTING_STOP = threading.Event()
if sys.argv[1:2] == ["run"] and threading.current_thread() is threading.main_thread():
    for _sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(_sig, lambda _n, _f: _STARTING_STOP.set())
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer._click.exceptions import NoArgsIsHelpError

from burst import config as config_mod
from burst.clitext import console, print_error, styled
from burst.errors import BurstError, ProviderError
from burst.logs import quiet_logs
from burst.units import MAX_CORES, format_duration

app = typer.Typer(
    name="burst",
    help=(
        "Cloud-bursting autoscaler for batch clusters with periodic load spikes.\n\n"
        "Examples:\n\n"
        "  burst simulate examples/traces/KTH-SP2-1996-slice-1997w06-w11.swf.gz --config examples/burst.yaml\n\n"
        "  burst plan --config burst.yaml            # what would happen now, and why\n\n"
        "  burst run --config burst.yaml             # the daemon\n\n"
        "  burst status --config burst.yaml          # fleet, states, spend\n\n"
        "  burst report --config burst.yaml --by campaign --output html --out costs.html"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        out.print(f"burst {version('burst')}", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print burst's version and exit")
    ] = False,
) -> None:
    """Cloud-bursting autoscaler for batch clusters with periodic load spikes."""


config_app = typer.Typer(help="Validate the configuration or print its JSON Schema.", no_args_is_help=True)
trace_app = typer.Typer(help="Inspect job traces (SWF or CSV).", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(trace_app, name="trace")

out = console()
err = console(stderr=True)


class Output(StrEnum):
    table = "table"
    json = "json"


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="burst YAML config")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table for people, json for scripts")]

T = TypeVar("T")


def fail(message: str, hint: str = "") -> typer.Exit:
    print_error(err, message, hint)
    return typer.Exit(2)


def guarded(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except BurstError as e:
        raise fail(str(e)) from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def money(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}"


@contextmanager
def progress_bar(label: str, enabled: bool) -> Iterator[Callable[[float, float], None] | None]:
    """A progress bar on a terminal; nothing when piped (scripts and CI)."""
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(
        TextColumn(label, markup=False),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=1.0)

        def update(done: float, total: float) -> None:
            bar.update(task, completed=min(1.0, done / total) if total else 1.0)

        yield update


# --- config ------------------------------------------------------------------------------------


@config_app.command("validate")
def config_validate(
    path: Annotated[Path, typer.Argument(help="burst YAML config")], output: OutputOpt = Output.table
) -> None:
    """Check a config: types, unknown keys, plugin sections, and the checks across sections
    (currency vs the offerings' prices, lease vs tick). Errors name file, line and field."""

    def go() -> Any:
        from burst.clock import RealClock
        from burst.engine import build_providers, collect_offerings

        cfg = config_mod.load(path)  # includes check_lease_vs_tick
        try:
            providers = build_providers(cfg, RealClock())
        except ProviderError as e:  # no credentials on this machine: the file itself may be fine
            err.print(Text.assemble(("warning:", "yellow"), f" prices not checked against currency: {e}"))
        else:
            collect_offerings(cfg, providers)
        return cfg

    cfg = guarded(go)
    if output is Output.json:
        print_json(
            {
                "ok": True,
                "path": str(path),
                "installation": cfg.file.installation,
                "providers": {n: p.kind for n, p in cfg.providers.items()},
                "policies": [p.kind for p in cfg.policies],
                "backlog": cfg.backlog.kind,
                "federation": cfg.federation.kind,
            }
        )
        return
    out.print(
        Text.assemble(
            ("ok", "green"),
            f": {path} — {len(cfg.providers)} provider(s), {len(cfg.policies)} policy(ies), "
            f"backlog {cfg.backlog.kind}, federation {cfg.federation.kind}",
        )
    )


@config_app.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file (with every installed plugin's section)."""
    print_json(config_mod.schema())


# --- trace -------------------------------------------------------------------------------------


@trace_app.command("info")
def trace_info(
    path: Annotated[Path, typer.Argument(help="SWF (.swf, .swf.gz) or CSV trace")],
    onprem_cores: Annotated[
        int | None, typer.Option(min=0, max=MAX_CORES, help="also model the peak pending demand on this many cores")
    ] = None,
    output: OutputOpt = Output.table,
) -> None:
    """Jobs, span, core-hours, peak pending demand and the busiest weeks of a trace."""
    from burst.traceinfo import as_json, info_for_file, render_trace_info

    info = guarded(lambda: info_for_file(path, onprem_cores))
    if output is Output.json:
        print_json(as_json(info))
    else:
        out.print(render_trace_info(info))


# --- simulate ----------------------------------------------------------------------------------


@app.command()
def simulate(
    trace: Annotated[Path, typer.Argument(help="job trace to replay (SWF or CSV)")],
    config: ConfigOpt,
    output: OutputOpt = Output.table,
    onprem_cores: Annotated[int | None, typer.Option(min=0, max=MAX_CORES, help="override onprem.cores")] = None,
    state: Annotated[str, typer.Option(help="store URL for the simulated season (default: in memory)")] = "sqlite://",
    report: Annotated[Path | None, typer.Option(help="also write an HTML report of the season")] = None,
) -> None:
    """Replay a trace through burst on the embedded local cloud: waits, cost, clusters."""
    from burst.backlog.trace import load_trace
    from burst.simulate import simulate as run_sim

    def go() -> Any:
        cfg = config_mod.load(config)
        tr = load_trace(trace)
        with quiet_logs(), progress_bar(f"simulating {tr.name}", output is Output.table) as prog:
            summary, store = run_sim(
                cfg, tr, onprem_cores=onprem_cores, store_url=state, progress=prog, keep_store=report is not None
            )
        if report is not None:
            from burst.report import write_html_report

            write_html_report(store, cfg, report, title=f"burst simulate {tr.name}", budget=None)
            store.close()
        return summary

    s = guarded(go)
    if output is Output.json:
        print_json(s.as_json())
        return
    t = Table(title=f"burst simulate — {s.trace}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    extra = [f"+{s.unrunnable_jobs} that fit nowhere"] if s.unrunnable_jobs else []
    extra += [f"{s.never_started} never started"] if s.never_started else []
    t.add_row("jobs", f"{s.jobs:,}" + (f" ({', '.join(extra)})" if extra else ""))
    t.add_row(
        "wait p50 / p95 / max", " / ".join(format_duration(x) for x in (s.wait_p50_s, s.wait_p95_s, s.wait_max_s))
    )
    t.add_row("spike-time jobs, wait p95", f"{s.spike_jobs:,}, {format_duration(s.spike_wait_p95_s)}")
    t.add_row("cloud spend", money(s.cost_total, s.currency))
    for prov, cost in sorted(s.cost_by_provider.items()):
        t.add_row(f"  {prov}", money(cost, s.currency))
    t.add_row("node-hours", f"{s.node_hours:,.1f}")
    t.add_row("burst core-hours used by jobs", f"{s.burst_core_hours_used:,.1f} ({s.jobs_on_burst:,} jobs)")
    t.add_row(
        "clusters created",
        f"{s.clusters_created}" + (f" ({s.clusters_stuck_deleted} stuck, deleted)" if s.clusters_stuck_deleted else ""),
    )
    t.add_row("peak burst cores", f"{s.peak_burst_cores:,}")
    t.add_row("clusters left running", styled(str(s.leaked_clusters), "green" if s.leaked_clusters == 0 else "red"))
    t.add_row("jobs killed", styled(str(s.killed_jobs), "green" if s.killed_jobs == 0 else "red"))
    if s.budget_killed_jobs:
        t.add_row("jobs killed by the budget's hard stop (opt-in)", styled(str(s.budget_killed_jobs), "yellow"))
    t.add_row("simulated", f"{format_duration(s.sim_seconds)} in {s.wall_seconds:.1f}s wall ({s.ticks:,} ticks)")
    out.print(t)
    if report is not None:
        out.print(f"report written to {report}")


# --- live operation ----------------------------------------------------------------------------


def _engine(config: Path, *, live: bool = True) -> Any:
    from burst.clock import RealClock
    from burst.engine import Engine

    cfg = config_mod.load(config)
    return Engine.build(cfg, RealClock(), extras={"onprem_cores": cfg.file.onprem.cores})


@app.command()
def plan(config: ConfigOpt, output: OutputOpt = Output.table) -> None:
    """What burst would do now, with every reason and the expected cost. Never acts."""

    def go() -> Any:
        eng = _engine(config)
        inp, p = eng.preview()
        weights = eng.steering(inp.fleet)
        eng.store.close()
        return inp, p, eng.cfg.file.currency, weights

    inp, p, cur, weights = guarded(go)
    d = p.decision
    if output is Output.json:
        print_json(
            {
                "at": inp.now.isoformat(),
                "demand": {
                    "pending_cores": inp.demand.pending_cores,
                    "pending_jobs": inp.demand.pending_jobs,
                    "running_cores": inp.demand.running_cores,
                    "onprem_cores": inp.demand.onprem_cores,
                    "stale": inp.demand.stale,
                },
                "wants": [
                    {"policy": w.policy, "cores": w.cores, "campaign": w.campaign, "reason": w.reason} for w in d.wants
                ],
                "actions": [
                    {
                        "op": a.op.value,
                        "cluster": a.cluster_id,
                        "provider": a.provider,
                        "flavor": a.flavor,
                        "nodes": a.nodes,
                        "campaign": a.campaign,
                        "reason": a.reason,
                        "cost_per_hour": round(a.cost_per_hour, 4),
                        "currency": a.currency or cur,
                    }
                    for a in p.actions
                ],
                "notes": list(d.notes),
                "steering": [
                    {"cluster": m.cluster_id, "weight": m.weight, "price_weight": m.price_weight, "reason": m.reason}
                    for m in weights
                ],
                "cost_per_hour": round(p.cost_per_hour(), 4),
                "currency": cur,
            }
        )
        return
    out.print(
        Text.assemble(
            f"demand: {inp.demand.pending_cores:,} cores pending ({inp.demand.pending_jobs:,} jobs), "
            f"{inp.demand.running_cores:,} running, on-prem {inp.demand.onprem_cores:,} cores",
            (" (stale)" if inp.demand.stale else "", "yellow"),
        )
    )
    for w in d.wants:
        out.print(f"  want {w.cores:,} cores — {w.reason}")
    for n in d.notes:
        out.print(f"  note: {n}")
    for m in weights:
        out.print(f"  steer {m.cluster_id}: weight {m.weight} — {m.reason}")
    if p.empty:
        out.print("No changes. The fleet matches what the policies want.")
        return
    t = Table(title="plan", title_justify="left")
    for col in ("action", "cluster", "provider", "flavor", "nodes", "campaign", f"{cur}/h", "reason"):
        t.add_column(col)
    for a in p.actions:
        t.add_row(
            a.op.value,
            a.cluster_id,
            a.provider,
            a.flavor,
            str(a.nodes),
            a.campaign or "-",
            f"{a.cost_per_hour:+.2f}",
            a.reason,
        )
    out.print(t)
    out.print(f"Plan: {len(p.actions)} action(s), {p.cost_per_hour():+.2f} {cur}/h. Nothing was done.")


@app.command()
def apply(config: ConfigOpt, output: OutputOpt = Output.table) -> None:
    """Run one reconcile tick for real (what `burst plan` printed)."""

    def go() -> Any:
        from burst.clock import RealClock
        from burst.fence import LeaseLost
        from burst.leader import build_fence

        eng = _engine(config)
        # One actor at a time: apply takes the installation's lease like a daemon replica, so
        # it never acts beside a running daemon (nor adopts what that daemon just created).
        fence = build_fence(eng.cfg, eng.store, RealClock())
        if not fence.renew():
            eng.store.close()
            raise LeaseLost(
                "another burst process (a running `burst run`) holds this installation's lease; "
                "`burst apply` would act beside it: stop it first, or use `burst plan`"
            )
        eng.reconciler.fence = fence
        try:
            adopt = eng.reconciler.adopt()
            res = eng.tick()
        finally:
            fence.elector.release()
            eng.store.close()
        return adopt, res

    adopt, res = guarded(go)
    data = {
        "actions": [a.describe() for a in res.plan.actions],
        "transitions": [{"cluster": c, "from": str(f), "to": str(t)} for c, f, t in res.step.transitions],
        "errors": [{"cluster": c, "type": k, "message": m} for c, k, m in res.step.errors],
        "orphans_removed": adopt.orphans_removed,
    }
    if output is Output.json:
        print_json(data)
        return
    for a in data["actions"]:
        out.print(f"• {a}")
    for tr in data["transitions"]:
        out.print(f"  {tr['cluster']}: {tr['from']} → {tr['to']}")
    for e in data["errors"]:
        err.print(styled(f"  {e['cluster']}: {e['type']}: {e['message']}", "red"))
    if not any(data.values()):
        out.print("Nothing to do.")


@app.command()
def status(
    config: ConfigOpt,
    output: OutputOpt = Output.table,
    all_clusters: Annotated[bool, typer.Option("--all", help="include removed clusters")] = False,
) -> None:
    """The fleet from the store: clusters, states, ages, nodes, spend."""
    from burst.store import Store

    def go() -> Any:
        cfg = config_mod.load(config)
        store = Store(cfg.state_url(), cfg.file.installation)
        now = datetime.now(UTC)
        fleet = store.all_clusters() if all_clusters else store.fleet()
        costs: dict[str, float] = {}
        for seg in store.ledger():
            costs[seg.cluster_id] = costs.get(seg.cluster_id, 0.0) + seg.cost(now)
        spend = store.spend(now, cfg.file.currency)
        decisions = store.decisions(5)
        store.close()
        return cfg, now, fleet, costs, spend, decisions

    cfg, now, fleet, costs, spend, decisions = guarded(go)
    cur = cfg.file.currency
    rows = [
        {
            "cluster": c.cluster_id,
            "provider": c.provider,
            "flavor": c.flavor,
            "state": c.state.value,
            "nodes": c.nodes,
            "desired_nodes": c.desired_nodes,
            "campaign": c.campaign,
            "age_s": round((now - c.created_at).total_seconds()),
            "in_state_s": round((now - c.state_since).total_seconds()),
            "cost": round(costs.get(c.cluster_id, 0.0), 2),
            "last_error": c.last_error,
        }
        for c in fleet
    ]
    if output is Output.json:
        print_json(
            {
                "clusters": rows,
                "spend": {
                    "month_to_date": round(spend.month_to_date, 2),
                    "burn_per_hour": round(spend.burn_per_hour, 4),
                    "by_campaign": {k: round(v, 2) for k, v in spend.by_campaign.items()},
                    "currency": cur,
                },
                "decisions": [{"at": d["at"], "summary": d["summary"]} for d in decisions],
            }
        )
        return
    t = Table(title=f"fleet of {cfg.file.installation}", title_justify="left")
    for col in ("cluster", "provider", "flavor", "state", "nodes", "campaign", "age", "cost"):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["cluster"],
            r["provider"],
            r["flavor"],
            r["state"],
            f"{r['nodes']}/{r['desired_nodes']}",
            r["campaign"] or "-",
            format_duration(r["age_s"]),
            money(r["cost"], cur),
        )
    out.print(t if rows else "No clusters.")
    out.print(f"spend this month: {money(spend.month_to_date, cur)}; burning {money(spend.burn_per_hour, cur)}/h")
    for d in decisions:
        out.print(f"  {d['at']:%Y-%m-%d %H:%M} {d['summary'][:160]}")


@app.command()
def providers(config: ConfigOpt, output: OutputOpt = Output.table) -> None:
    """Each configured provider's offerings, prices, provisioning latency and quota left."""

    def go() -> Any:
        from burst.clock import RealClock
        from burst.engine import build_providers

        cfg = config_mod.load(config)
        provs = build_providers(cfg, RealClock())
        rows: list[dict[str, Any]] = []
        for name, prov in provs.items():
            try:
                q = prov.quota()
            except ProviderError as e:  # one unreachable cloud must not hide the others' offerings
                err.print(Text.assemble(("warning:", "yellow"), f" quota of {name} unknown: {e}"))
                q = None
            rows.extend(_offering_row(o, q) for o in prov.offerings())
        return rows

    rows = guarded(go)
    _render_offerings(rows, output)


def _offering_row(o: Any, q: Any) -> dict[str, Any]:
    return {
        "provider": o.provider,
        "region": o.region,
        "flavor": o.flavor,
        "cpus": o.cpus,
        "memory_gb": round(o.memory_mb / 1024, 1),
        "gpus": o.gpus,
        "price_per_hour": o.price_per_hour,
        "price_per_core_hour": round(o.price_per_core_hour, 5),
        "control_plane_per_hour": o.control_plane_per_hour,
        "currency": o.currency,
        "spot": o.spot,
        "provisioning_p50_s": round(o.latency.median_s(8)),
        "provisioning_p90_s": round(o.latency.p90_s(8)),
        "quota_cores_left": q.cores_left() if q else None,
    }


def _render_offerings(rows: list[dict[str, Any]], output: Output) -> None:
    if output is Output.json:
        print_json(rows)
        return
    t = Table(title="offerings", title_justify="left")
    for col in (
        "provider",
        "region",
        "flavor",
        "vCPU",
        "GiB",
        "GPU",
        "price/h",
        "per core-h",
        "cluster fee/h",
        "p50 / p90 up (8 nodes)",
        "quota cores left",
    ):
        t.add_column(col)
    for r in rows:
        t.add_row(
            r["provider"],
            r["region"],
            r["flavor"],
            str(r["cpus"]),
            f"{r['memory_gb']:g}",
            str(r["gpus"]),
            f"{r['price_per_hour']:.3f} {r['currency']}" + (" spot" if r["spot"] else ""),
            f"{r['price_per_core_hour']:.4f}",
            f"{r['control_plane_per_hour']:.2f}",
            f"{format_duration(r['provisioning_p50_s'])} / {format_duration(r['provisioning_p90_s'])}",
            "∞" if r["quota_cores_left"] is None else f"{r['quota_cores_left']:,}",
        )
    out.print(t)


# --- the daemon and operator overrides ---------------------------------------------------------


class LogFormat(StrEnum):
    text = "text"
    json = "json"


@app.command()
def run(
    config: ConfigOpt,
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="serve /metrics and the status page on this port (0 = any free port)"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="address for the status page")] = "127.0.0.1",
    log_format: Annotated[LogFormat, typer.Option(help="text for people, json for log collectors")] = LogFormat.text,
    max_ticks: Annotated[int | None, typer.Option(hidden=True, help="stop after N ticks (tests)")] = None,
) -> None:
    """The daemon: reconcile on an interval until SIGTERM; resumes from the store on restart."""
    early = _STARTING_STOP  # set by the handler installed when this module loaded
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):  # also when called in-process (tests)
            signal.signal(sig, lambda _n, _f: early.set())
    from burst.daemon import Daemon, setup_logging

    setup_logging(log_format.value)
    code = guarded(
        lambda: Daemon(
            config_mod.load(config),
            metrics_port=metrics_port,
            metrics_host=metrics_host,
            max_ticks=max_ticks,
            stopping=early,
        ).run()
    )
    raise typer.Exit(code)


def _operator_release(
    config: Path, cluster: str, *, force: bool, yes: bool, wait: bool, verb: str, output: Output = Output.table
) -> None:
    import time

    from burst.clock import RealClock
    from burst.engine import Engine
    from burst.lifecycle import ClusterState
    from burst.plan import OPERATOR

    def go() -> Any:
        cfg = config_mod.load(config)
        eng = Engine.build(cfg, RealClock(), extras={"onprem_cores": cfg.file.onprem.cores})
        rec = eng.store.get(cluster)
        if rec is None or rec.state is ClusterState.REMOVED:
            raise BurstError(f"no cluster {cluster!r} in the store (see `burst status --all`)")
        return eng, rec

    eng, rec = guarded(go)
    now = eng.clock.now()
    if force:
        try:
            running = eng.federation.drain(rec) if rec.state.value in ("ACTIVE", "DRAINING") else 0
            what = f"runs {running} job(s)"
        except BurstError as e:  # an unreachable member is what --force is for
            what = f"cannot be asked what it runs ({e})"
        err.print(f"{cluster} ({rec.state}) {what}; --force removes it now and they will be killed.")
        if not yes and not typer.confirm("Remove it anyway?", default=False, err=True):
            if rec.state is ClusterState.ACTIVE:  # counting drained it (cordon, taint): give it back
                guarded(lambda: eng.federation.undrain(rec))
            eng.store.close()
            raise typer.Exit(1)
    rec = guarded(lambda: eng.reconciler.release(rec, f"{OPERATOR} burst {verb}", now if force else None))
    if output is Output.table:
        out.print(f"{cluster}: {rec.state}" + (" (hard stop)" if force else ""))
    if verb == "drain" or not wait:
        eng.store.close()
        if output is Output.json:
            print_json({"cluster": cluster, "state": rec.state.value, "hard_stop": force})
        return
    # `burst remove` carries the cluster through drain and delete, one step every few seconds.
    with err.status(f"removing {cluster}") as spinner:
        while True:
            guarded(eng.store.refresh)  # the running daemon may have moved it meanwhile
            guarded(lambda: eng.reconciler.step(only=cluster))
            cur = eng.store.get(cluster)
            if cur is None or cur.state is ClusterState.REMOVED:
                break
            spinner.update(f"removing {cluster}: {cur.state}" + (f" — {cur.last_error}" if cur.last_error else ""))
            time.sleep(5)
    eng.store.close()
    if output is Output.json:
        print_json({"cluster": cluster, "state": "REMOVED", "hard_stop": force})
    else:
        out.print(f"{cluster}: REMOVED")


@app.command()
def drain(
    config: ConfigOpt,
    cluster: Annotated[str, typer.Argument(help="cluster id (see burst status)")],
    output: OutputOpt = Output.table,
) -> None:
    """Stop a cluster taking new jobs; the daemon removes it once nothing runs there."""
    _operator_release(config, cluster, force=False, yes=False, wait=False, verb="drain", output=output)


@app.command()
def remove(
    config: ConfigOpt,
    cluster: Annotated[str, typer.Argument(help="cluster id (see burst status)")],
    force: Annotated[bool, typer.Option(help="remove now even if jobs run there (says how many, then asks)")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    wait: Annotated[bool, typer.Option(help="stay until the cluster is gone")] = True,
    output: OutputOpt = Output.table,
) -> None:
    """Drain a cluster, then delete it from its cloud."""
    _operator_release(config, cluster, force=force, yes=yes, wait=wait, verb="remove", output=output)


def _register_optional() -> None:
    """Commands whose modules live beside the CLI (reports, benchmarks)."""
    from burst.report_cli import report
    from burst.store_cli import store_app

    app.add_typer(store_app, name="store")

    app.command("report", help="Cost reports from the ledger: by provider, campaign, policy, cluster or day.")(report)
    try:
        from burst.bench_cli import bench  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # pragma: no cover - the benchmark module is optional in a slim install
        return
    app.command("bench", help="Benchmark burst against baselines on traces.")(bench)


_register_optional()


def main() -> None:
    """The ``burst`` entry point."""
    raise SystemExit(run_command(typer.main.get_command(app), sys.argv[1:]))


def run_command(command: Any, argv: list[str]) -> int:
    """Run the CLI's click ``command`` on ``argv``; returns the exit code.

    A wrong option or an unknown command is one ``error:`` line too, not typer's usage panel.
    (Separate from :func:`main` so the fuzz tests build the command once and call this 1 000 times.)
    """
    try:
        code = command.main(args=argv, prog_name="burst", standalone_mode=False)
    except NoArgsIsHelpError as e:  # `burst` or `burst config` alone: the help, as typer prints it
        e.show()
        return 2
    except typer.TyperException as e:  # a bad option or argument value, an unknown command
        print_error(err, e.format_message(), "see --help")
        return e.exit_code
    except typer.Abort:  # ^C or ^D at a confirmation prompt
        return 1
    except BurstError as e:  # pragma: no cover - commands already guard; last line of defence
        print_error(err, str(e))
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    main()
