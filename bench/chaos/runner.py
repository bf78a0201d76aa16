"""One chaos run: real ``burst run`` subprocesses against the host and the cloud, the scenario's
events at their times, then every check from the servers' and the store's side.

A run owns a fresh directory, its own servers on free ports of 127.0.0.1 and its own database, so
two runs go side by side; whatever happens, its processes are killed and its servers stopped.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import yaml

from bench.chaos import scenarios as sc
from bench.chaos.aws import AwsCloud, akid
from bench.chaos.gke import GkeCloud
from bench.chaos.magnum import MagnumCloud
from bench.chaos.world import (
    ChaosHost,
    CloudCall,
    CloudView,
    Members,
    Window,
    make_host,
    poll_local,
    read_audit,
)
from burst.testing.postgres import PostgresServer

OWNER = "chaos"
Remote = AwsCloud | GkeCloud | MagnumCloud
STORE_LOCK = threading.Lock()
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunResult:
    spec: sc.RunSpec
    wall_s: float = 0.0
    leaked: int = 0
    duplicates: int = 0
    killed_jobs: int = 0
    restart_regret: int = 0
    non_leader: int = 0
    creates: int = 0
    creates_per_needed: float = 0.0
    budget_overrun: float = 0.0
    phantom_spend: float = 0.0
    secrets_leaked: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: (op, cluster) of every drain, shrink or cancel decided while the queue still held work
    drains: set[tuple[str, str]] = field(default_factory=set)
    drop_at: float = 0.0  # wall time the queue emptied
    stopped_at: float = 0.0  # wall time every replica had stopped: spend is counted up to here

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.spec.scenario,
            "backend": self.spec.backend,
            "store": self.spec.store,
            "seed": self.spec.seed,
            "wall_s": round(self.wall_s, 2),
            "leaked": self.leaked,
            "duplicates": self.duplicates,
            "killed_jobs": self.killed_jobs,
            "restart_regret": self.restart_regret,
            "non_leader_side_effects": self.non_leader,
            "creates": self.creates,
            "creates_per_needed": round(self.creates_per_needed, 2),
            "budget_overrun": round(self.budget_overrun, 6),
            "phantom_spend": round(self.phantom_spend, 6),
            "secrets_leaked": self.secrets_leaked,
            "failures": self.failures,
            "notes": self.notes,
        }


class Replica:
    """One ``burst run`` process of replica ``name`` (restarts keep the name, get a new pid)."""

    #: every process a run started and has not reaped: killed if the bench itself is stopped
    live: ClassVar[set[subprocess.Popen[str]]] = set()
    _live_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def kill_all(cls) -> None:
        with cls._live_lock:
            procs, cls.live = set(cls.live), set()
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def __init__(self, name: str, config: Path, env: dict[str, str], metrics: bool) -> None:
        self.name = name
        self.config = config
        self.env = env
        self.metrics = metrics
        self.pids: list[tuple[float, int]] = []  # (started at, pid)
        self.outputs: list[list[str]] = []
        self.codes: list[int] = []
        self.proc: subprocess.Popen[str] | None = None
        self.stopped = False
        self.start()

    def start(self) -> None:
        args = [sys.executable, "-m", "burst.cli", "run", "--config", str(self.config), "--log-format", "json"]
        if self.metrics:
            args += ["--metrics-port", "0"]
        self.proc = subprocess.Popen(
            args,
            cwd=self.config.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            start_new_session=True,
        )
        self.pids.append((time.time(), self.proc.pid))
        with Replica._live_lock:
            Replica.live.add(self.proc)
        out: list[str] = []
        self.outputs.append(out)
        threading.Thread(target=self._read, args=(self.proc, out), daemon=True).start()

    @staticmethod
    def _read(proc: subprocess.Popen[str], out: list[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)

    def wait_up(self, timeout: float = 60) -> None:
        """Until the daemon says it runs (imports, plugins and the store's migrations take a few
        seconds on a loaded machine; the scenario's timeline starts after)."""
        deadline = time.monotonic() + timeout
        while not any("running: tick every" in line for line in list(self.outputs[-1])):
            if not self.alive:
                raise RuntimeError(f"replica {self.name} exited before running:\n{self.text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica {self.name} not running after {timeout:.0f}s")
            time.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)
            if sig == signal.SIGSTOP:
                self.stopped = True
            elif sig == signal.SIGCONT:
                self.stopped = False

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.codes.append(self.proc.wait(timeout=10))
        self._reaped()
        self.stopped = False

    def terminate(self) -> None:
        """SIGCONT (if stopped) and SIGTERM, without waiting."""
        if self.proc is None:
            return
        if self.stopped:
            self.signal(signal.SIGCONT)
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGCONT (if stopped), SIGTERM, then SIGKILL after 10 s: always gone afterwards."""
        if self.proc is None:
            return
        if self.stopped:
            self.signal(signal.SIGCONT)
        if self.alive:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.codes.append(self.proc.wait(timeout=10))
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.codes.append(-999)  # did not stop on SIGTERM
            self.proc.wait(timeout=10)
        self._reaped()

    def _reaped(self) -> None:
        if self.proc is not None:
            with Replica._live_lock:
                Replica.live.discard(self.proc)
        self.proc = None

    def pid_at(self, t: float) -> int | None:
        pid = None
        for start, p in self.pids:
            if start <= t:
                pid = p
        return pid

    def text(self) -> str:
        return "".join("".join(o) for o in self.outputs)

    def status_url(self) -> str | None:
        for line in list(self.outputs[-1]):
            if "status page and /metrics on " in line:
                try:
                    return str(json.loads(line)["msg"]).rsplit(" ", 1)[1]
                except (ValueError, KeyError):
                    return None
        return None


def _owner(spec: sc.RunSpec) -> str:
    """The installation name: per run, so runs sharing one moto account never see each other."""
    if spec.backend == "local":
        return OWNER
    return f"c{spec.seed % 10**8}{'t' if spec.twin else ''}"


def _config(
    run_dir: Path, spec: sc.RunSpec, replica: str, host: ChaosHost, token: str, state: str, remote: Remote | None
) -> Path:
    kubeconfig = run_dir / f"host-{replica}.kubeconfig"
    kubeconfig.write_text(host.kubeconfig(token=token, name="condor-host"), encoding="utf-8")
    policies: list[dict[str, Any]] = [
        {"kind": "backlog", "for": "2s", "idle_after": "3s", "cooldown": "2s"},
    ]
    if spec.budget is not None:
        policies.append({"kind": "budget", "monthly": f"{spec.budget} EUR", "horizon": "2s", "tick": "1s"})
    policies.append({"kind": "placement"})
    federation: dict[str, Any] = {
        "kind": "kubefed",
        "host_kubeconfig": kubeconfig.name,
        "host_context": "condor-host",
        "timeout": "2s",
    }
    if remote is not None:  # an EKS member's API is not served here: its join and drain are simulated
        federation = {"kind": "local", "join_latency": "0s"}
    doc: dict[str, Any] = {
        "installation": _owner(spec),
        "state": state,
        **({"currency": getattr(remote, "currency", "USD")} if remote is not None else {}),
        "onprem": {"cores": 4},
        "backlog": {"kind": "kubernetes", "kubeconfig": kubeconfig.name, "timeout": "2s"},
        "federation": federation,
        "providers": {"aws": remote.provider_section(replica) if remote is not None else _local_section(spec)},
        "policies": policies,
        # calls bounded well inside the lease: renewal 1 s + a call (≤ 2 s) + margin 0.5 s < 4 s
        "reconciler": {
            "tick": f"{sc.TICK_S:g}s",
            "retry_backoff": "1s",
            "joining_timeout": "20s",
            "call_timeout": "1s",
        },
        "leader_election": {
            "kubeconfig": kubeconfig.name,
            "context": "condor-host",
            "namespace": "default",
            "name": "burst-leader",
            "lease_duration": f"{sc.LEASE_S:g}s",
            "safety_margin": "0.5s",
        },
    }
    path = run_dir / f"burst-{replica}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _local_section(spec: sc.RunSpec) -> dict[str, Any]:
    return {
        "kind": "local",
        "cloud": "aws",
        "flavors": ["m5.2xlarge"],
        "max_nodes": 4,
        "nodes_per_cluster": 2,
        "latency_scale": 0.003,
        "delete_latency": 1,
        **_budget_cloud(spec),
        "kube_api": True,
        "state_file": "cloud.json",
        "members_dir": "members",
        "audit_file": "audit.jsonl",
        "faults": [dict(f) for f in spec.faults],
    }


def _budget_cloud(spec: sc.RunSpec) -> dict[str, Any]:
    """Under a budget: a cloud billed by the second (OpenStack's catalog: no minimum billed time)
    at a price that spends the cap within the run; else the minimum commitment alone (60 s on AWS)
    would outlast it."""
    if spec.budget is None:
        return {}
    return {
        "cloud": "openstack",
        "flavors": ["m2.2xlarge"],
        "prices": {"m2.2xlarge": {"price_per_hour": 900}},
        "delete_latency": 0,  # the budget's promise (one tick past the cap) holds when removal is prompt
    }


class Postgres:
    """One PostgreSQL server per bench process (a database per run); a run that restarts its
    server gets a server of its own, so it never hurts a run beside it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shared: PostgresServer | None = None
        self._n = 0

    def database(self, own: bool) -> tuple[str, PostgresServer | None]:
        with self._lock:
            self._n += 1
            name = f"chaos_{self._n}"
            if own:
                server = PostgresServer()
                server.start()
                return server.create_database(name), server
            if self._shared is None:
                self._shared = PostgresServer()
                self._shared.start()
            return self._shared.create_database(name), None

    def close(self) -> None:
        if self._shared is not None:
            self._shared.stop()
            self._shared = None


def run_one(spec: sc.RunSpec, pg: Postgres, keep: Path | None = None) -> RunResult:
    """Run ``spec`` (and its untouched twin alongside, when it has one) and check everything."""
    if spec.scenario in sc.TWINNED and not spec.twin:
        box: dict[str, RunResult] = {}
        twin = threading.Thread(target=lambda: box.setdefault("twin", _run(spec.untouched(), pg, keep)))
        twin.start()
        result = _run(spec, pg, keep)
        twin.join()
        twin_result = box.get("twin")
        if twin_result is None:
            result.failures.append("the twin run did not finish")
        else:
            regret = sorted(result.drains - twin_result.drains)
            result.restart_regret = len(regret)
            if regret:
                result.notes.append(f"drained but the twin did not: {regret}")
            result.failures += [f"twin: {f}" for f in twin_result.failures]
        return result
    return _run(spec, pg, keep)


def _run(spec: sc.RunSpec, pg: Postgres, keep: Path | None) -> RunResult:
    result = RunResult(spec)
    started = time.monotonic()
    run_dir = Path(tempfile.mkdtemp(prefix=f"chaos-{spec.scenario}-{spec.seed}-", dir=keep))
    host = make_host(sc.PENDING_JOBS, str(sc.JOB_CPUS))
    pg_own: PostgresServer | None = None
    replicas: dict[str, Replica] = {}
    view = CloudView()
    members = Members(run_dir / "members")
    remote: Remote | None = None
    state = ""
    tokens: dict[str, str] = {}
    fake_secrets = {
        "aws": f"chaos-secret-aws-{secrets.token_hex(8)}",
        "openstack": f"chaos-secret-os-{secrets.token_hex(8)}",
        "token": f"chaos-secret-token-{secrets.token_hex(8)}",
    }
    try:
        if spec.store == "postgres":
            state, pg_own = pg.database(own=any(e.kind == "pg_restart" for e in spec.events))
        else:
            state = "sqlite:///burst.db"
        if spec.backend == "aws":
            remote = AwsCloud(_owner(spec), spec.faults, spec.seed)
        elif spec.backend == "gke":
            remote = GkeCloud(_owner(spec), spec.faults, spec.seed, spec.replicas)
        elif spec.backend == "magnum":
            remote = MagnumCloud(_owner(spec), spec.faults, spec.seed, spec.replicas, fake_secrets["openstack"])
        env = {
            **os.environ,
            "NO_COLOR": "1",
            "AWS_ACCESS_KEY_ID": "AKIDCHAOS",
            "AWS_SECRET_ACCESS_KEY": fake_secrets["aws"],
            "OS_PASSWORD": fake_secrets["openstack"],
            "BURST_TOKEN": fake_secrets["token"],
        }
        tokens = {r: f"chaos-secret-host-{r}-{secrets.token_hex(8)}" for r in spec.replicas}
        configs = {}
        for r in spec.replicas:
            host.token_for(r, tokens[r])
            configs[r] = _config(run_dir, spec, r, host, tokens[r], state, remote)
        launched = time.time()
        for i, r in enumerate(spec.replicas):
            # one after the other, as a rollout starts them: two replicas migrating a fresh store at
            # once is a different fault (see the README)
            # each replica signs with its own access key: the cloud's log names the sender
            own = {"AWS_ACCESS_KEY_ID": akid(r)}
            if isinstance(remote, MagnumCloud):
                own.update(remote.replica_env(r, run_dir))
            replicas[r] = Replica(r, configs[r], {**env, **own}, metrics=(i == 0))
            replicas[r].wait_up()
        t0 = time.time()  # the scenario's clock starts when every replica runs
        result.notes.append(f"replicas up after {t0 - launched:.1f}s")
        for w in spec.windows:
            host.windows.append(Window(w[0], 503, "ServiceUnavailable", t0 + w[2], t0 + w[3], frozenset(w[1])))
        _drive(spec, host, replicas, run_dir, t0, result, pg_own, view, members, remote)
        result.notes.append(f"scenario over after {time.time() - t0:.1f}s")
    except Exception as err:  # a harness failure is a failed run, reported, never a crash of the bench
        result.failures.append(f"harness: {type(err).__name__}: {err}")
    finally:
        # all at once: a replica stopped first would hand the lease to one still running
        for rep in replicas.values():
            rep.terminate()
        for rep in replicas.values():
            try:
                rep.stop()
            except Exception as err:
                result.failures.append(f"stopping {rep.name}: {err}")
        result.stopped_at = time.time()
        checked = time.time()
        try:
            _check(spec, host, replicas, run_dir, state, result, fake_secrets, tokens, view, members, remote)
            result.notes.append(f"checks took {time.time() - checked:.1f}s")
        except Exception as err:
            result.failures.append(f"checks: {type(err).__name__}: {err}")
        members.stop()
        if remote is not None:
            remote.stop()
        host.stop()
        if pg_own is not None:
            pg_own.stop()
        if keep is None:
            import shutil

            shutil.rmtree(run_dir, ignore_errors=True)
    result.wall_s = time.monotonic() - started
    return result


class _StopTrap:
    """SIGSTOP a replica at its next side effect (inside the request's handler, before it is
    served: the process is then stopped in the middle of its tick), or when ``fire`` is called."""

    def __init__(self, rep: Replica, down: float) -> None:
        self.rep = rep
        self.down = down
        self.fired_at: float | None = None
        self.how = ""
        self.cont_planned = False
        self._lock = threading.Lock()

    def fire(self, how: str) -> bool:
        with self._lock:
            if self.fired_at is not None:
                return False
            self.fired_at = time.time()
            self.how = how
        self.rep.signal(signal.SIGSTOP)
        return True


def _arm_stop(rep: Replica, host: ChaosHost, remote: Remote | None, down: float) -> _StopTrap:
    trap = _StopTrap(rep, down)

    def on_host(replica: str) -> None:
        if replica == rep.name:
            trap.fire("mid-tick (at a host write)")

    def on_cloud(key: str) -> None:
        if key in (akid(rep.name), rep.name):
            trap.fire("mid-tick (at a cloud call)")

    host.on_write = on_host
    if remote is not None:
        remote.on_call = on_cloud
    return trap


def _leader(host: ChaosHost, replicas: dict[str, Replica]) -> Replica | None:
    holder = host.holder_at(time.time())
    for rep in replicas.values():
        if rep.proc is not None and holder is not None and holder.endswith(f"-{rep.proc.pid}"):
            return rep
    return None


def _drive(
    spec: sc.RunSpec,
    host: ChaosHost,
    replicas: dict[str, Replica],
    run_dir: Path,
    t0: float,
    result: RunResult,
    pg_own: PostgresServer | None,
    view: CloudView,
    members: Members,
    remote: Remote | None,
) -> None:
    pending = sorted(spec.events, key=lambda e: e.at)
    chosen: dict[str, Replica] = {}
    armed: _StopTrap | None = None
    dropped = False
    scrape: threading.Thread | None = None
    while True:
        t = time.time() - t0
        while pending and pending[0].at <= t:
            ev = pending.pop(0)
            rep = replicas.get(ev.replica)
            if ev.replica == "leader":
                rep = chosen.get("leader") or _leader(host, replicas)
                if rep is None:
                    result.notes.append(f"{ev.kind} at {ev.at:.1f}s: no leader to hit")
                    continue
                chosen["leader"] = rep
            if ev.kind == "kill" and rep is not None:
                rep.kill()
            elif ev.kind == "restart" and rep is not None:
                # the scenario's clock pauses while the process starts (seconds on a loaded machine),
                # so what follows still happens to a running daemon
                paused = time.time()
                rep.start()
                rep.wait_up()
                t0 += time.time() - paused
            elif ev.kind == "stop" and rep is not None:
                armed = _arm_stop(rep, host, remote, ev.arg)
                pending.append(sc.Event(ev.at + 3.0, "stop_now", rep.name, ev.arg))
                pending.sort(key=lambda e: e.at)
            elif ev.kind == "stop_now" and armed is not None:
                armed.fire("between ticks (no side effect within 3 s)")
            elif ev.kind == "cont" and rep is not None:
                rep.signal(signal.SIGCONT)
            elif ev.kind == "pg_restart" and pg_own is not None:
                pg_own.restart(ev.arg)
            result.notes.append(f"{ev.kind} {rep.name if rep else ''} at {t:.1f}s")
        if armed is not None and armed.fired_at is not None and not armed.cont_planned:
            armed.cont_planned = True
            result.notes.append(f"stopped {armed.rep.name} {armed.how} at {armed.fired_at - t0:.1f}s")
            pending.append(sc.Event(armed.fired_at - t0 + armed.down, "cont", armed.rep.name))
            pending.sort(key=lambda e: e.at)
        if remote is not None:
            remote.poll(view)
        else:
            poll_local(view, run_dir / "cloud.json")
            members.sync(view.last, host, place=not dropped)
        if scrape is None and t > 3:
            scrape = threading.Thread(target=_scrape_page, args=(replicas, run_dir), daemon=True)
            scrape.start()
        if not dropped and t >= sc.DROP_AT:
            dropped = True
            result.drop_at = time.time()
            members.finish_jobs()
            for i in range(sc.PENDING_JOBS):
                host.delete("v1", "pods", f"job-{i}", "default")
        if dropped and not pending and not [c for c in view.last.values() if c.get("deleting_until") is None]:
            break
        if t > sc.MAX_S:
            result.notes.append(f"cloud not empty after {sc.MAX_S:.0f}s: {sorted(view.last)}")
            break
        time.sleep(0.25)
    if scrape is not None:
        scrape.join(timeout=90)  # the CLI takes seconds to start on a loaded machine


def _scrape_page(replicas: dict[str, Replica], run_dir: Path) -> None:
    """What an operator sees mid-run — ``burst status``, the status page, /metrics — kept for the
    secrets check (in a thread: the CLI takes seconds to start on a loaded machine)."""
    rep = next(iter(replicas.values()))
    (run_dir / "burst-status.txt").write_text(_burst_status(replicas, run_dir), encoding="utf-8")
    report = _burst_status(replicas, run_dir, "report", "--by", "cluster", "--output", "json")
    (run_dir / "burst-report.txt").write_text(report, encoding="utf-8")
    url = rep.status_url() if rep.alive and not rep.stopped else None
    if url is None:
        return
    try:
        for suffix, name in (("/", "status.html"), ("/metrics", "metrics.txt")):
            with urllib.request.urlopen(url + suffix, timeout=20) as resp:
                (run_dir / name).write_bytes(resp.read())
    except OSError:
        return


def _check(
    spec: sc.RunSpec,
    host: ChaosHost,
    replicas: dict[str, Replica],
    run_dir: Path,
    state: str,
    result: RunResult,
    fake_secrets: dict[str, str],
    tokens: dict[str, str],
    view: CloudView,
    members: Members,
    remote: Remote | None,
) -> None:
    from burst.store import Store

    if remote is not None:
        remote.poll(view)
        result.failures += [f"fake cloud: {e}" for e in remote.errors[:3]]
        result.notes.append("the members' API is not served here (local federation): jobs are not watched")
        audit = []
        for t, sender, call, cluster, outcome in remote.audit():
            rep = replicas.get(sender)
            pid = rep.pid_at(t) if rep is not None else None
            audit.append(CloudCall(t, pid or -1, call, cluster, outcome))
    else:
        poll_local(view, run_dir / "cloud.json")
        members.sync(view.last, host, place=False)
        audit = read_audit(run_dir / "audit.jsonl")
    for call in audit:
        if call.call in ("create_cluster", "CreateCluster") and call.outcome == "accepted":
            view.ever.add(call.cluster)

    # processes: exit codes and tracebacks (their output is kept beside the run for a look later)
    for rep in replicas.values():
        text = rep.text()
        (run_dir / f"replica-{rep.name}.log").write_text(text, encoding="utf-8")
        if "Traceback" in text:
            result.failures.append(f"replica {rep.name}: traceback in its output")
        bad = [c for c in rep.codes if c not in (0, -signal.SIGKILL)]
        if bad:
            result.failures.append(f"replica {rep.name}: exit code(s) {bad}")

    if not state:
        return
    if state.startswith("sqlite:///") and not state.startswith("sqlite:////"):
        state = f"sqlite:///{run_dir / state[len('sqlite:///') :]}"
    with STORE_LOCK:  # opening a store runs Alembic, whose context is process-global
        store = Store(state, _owner(spec))
    try:
        records = {c.cluster_id: c for c in store.all_clusters()}
        ledger = store.ledger()
        decisions = store.decisions(limit=10_000)
        transitions = store.transitions()
        now = datetime.fromtimestamp(result.stopped_at or time.time(), UTC)
    finally:
        store.close()

    # leaked: in the cloud (not being deleted) while the store has no live record of it
    live_states = {"PLANNED", "PROVISIONING", "JOINING", "ACTIVE", "DRAINING", "REMOVING", "FAILED"}
    leaked = []
    for cid, c in view.last.items():
        if c.get("deleting_until") is not None:
            continue
        rec = records.get(cid)
        if rec is None or rec.state.value not in live_states:
            leaked.append(cid)
    result.leaked = len(leaked)
    if leaked:
        result.notes.append(f"leaked: {leaked}")
    left = [cid for cid, c in view.last.items() if c.get("deleting_until") is None and cid not in leaked]
    if left:
        result.notes.append(f"still in the cloud at the end (known to the store): {left}")

    result.duplicates = max(0, view.max_alive - sc.NEEDED)
    # jobs killed, as the members saw it; a budget's hard stop is the one documented exception
    # (it removes a cluster under running work when the money runs out) and is reported apart
    hard_stops = {
        str(tr["cluster_id"])
        for tr in transitions
        if tr.get("to_state") == "REMOVING" and "hard stop" in str(tr.get("reason", "")) and spec.budget is not None
    }
    killed = {j.cluster: j.killed for j in members.jobs.values() if j.killed and j.cluster not in hard_stops}
    result.killed_jobs = len(killed)
    if killed:
        result.notes.append(f"jobs killed: {killed}")
    if hard_stops:
        result.notes.append(f"budget hard stop (allowed to kill): {sorted(hard_stops)}")

    # non-leader side effects: each mutating call against the Lease holder of its moment
    pid_of = {pid: rep.name for rep in replicas.values() for _, pid in rep.pids}
    offences = []
    for call in audit:
        holder = host.holder_at(call.t)
        if holder is None or not holder.endswith(f"-{call.pid}"):
            at = round(call.t - host.lease_writes[0].t, 2) if host.lease_writes else 0
            who = f"{pid_of.get(call.pid, call.pid)} (pid {call.pid})"
            offences.append(f"{call.call} {call.cluster} by {who} at {at}s while lease={holder}")
    for w in host.writes:
        pid = replicas[w.replica].pid_at(w.t) if w.replica in replicas else None
        holder = host.holder_at(w.t)
        if pid is None or holder is None or not holder.endswith(f"-{pid}"):
            at = round(w.t - host.lease_writes[0].t, 2) if host.lease_writes else 0
            offences.append(f"{w.method} {w.path} by {w.replica} (pid {pid}) at {at}s while lease={holder}")
    result.non_leader = len(offences)
    if offences:
        pids = {rep.name: [p for _, p in rep.pids] for rep in replicas.values()}
        holders = [(round(w.t - host.lease_writes[0].t, 2), w.holder) for w in host.lease_writes]
        result.notes.append(f"non-leader side effects: {offences[:5]}; pids {pids}; lease writes {holders[:40]}")

    creates = [c for c in audit if c.call in ("create_cluster", "CreateCluster") and c.outcome != "exists"]
    result.creates = len(creates)
    result.creates_per_needed = len(creates) / sc.NEEDED

    # budget: spend past the cap by more than one tick at the fleet's peak burn
    if spec.budget is not None:
        spend = sum(s.cost(now) for s in ledger)
        marks = sorted({s.start for s in ledger})
        peak = max(
            (
                sum(s.quantity * s.rate_per_hour for s in ledger if s.start <= m and (s.end is None or s.end > m))
                for m in marks
            ),
            default=0.0,
        )
        allowed = spec.budget + peak * sc.TICK_S / 3600
        result.budget_overrun = max(0.0, spend - allowed)
        if result.budget_overrun:
            result.notes.append(f"spent {spend:.6f} EUR, cap {spec.budget} + one tick = {allowed:.6f}")

    # phantom spend: billed for a cluster the cloud never accepted
    phantom = [s for s in ledger if s.cluster_id not in view.ever]
    result.phantom_spend = sum(s.cost(now) for s in phantom)
    if phantom:
        result.notes.append(f"phantom spend on {sorted({s.cluster_id for s in phantom})}")

    # restart regret inputs: every drain the run decided
    for d in decisions:
        at = d["at"] if d["at"].tzinfo else d["at"].replace(tzinfo=UTC)
        if result.drop_at and at.timestamp() > result.drop_at + 1.0:
            continue  # the queue was empty: giving capacity back is right
        detail = d.get("detail")
        actions = (json.loads(detail) if isinstance(detail, str) else detail or {}).get("actions", [])
        for a in actions:
            if a.get("op") in ("drain", "shrink", "delete"):
                # by the cluster's number: a twin on AWS has its own installation name
                result.drains.add((a["op"], str(a.get("cluster")).removeprefix(f"{_owner(spec)}-")))

    # secrets: in any output, log, page, report
    needles = [*fake_secrets.values(), *tokens.values(), host.token, *members.all_tokens, *_member_tokens(host)]
    texts = {f"replica {r.name}": r.text() for r in replicas.values()}
    status_text = (
        (run_dir / "burst-status.txt").read_text(encoding="utf-8") if (run_dir / "burst-status.txt").exists() else ""
    )
    if status_text.startswith("EXIT") and not _store_down(spec, status_text):
        result.failures.append(f"burst status failed: {status_text[:300]}")
    report_text = (
        (run_dir / "burst-report.txt").read_text(encoding="utf-8") if (run_dir / "burst-report.txt").exists() else ""
    )
    if report_text.startswith("EXIT") and not _store_down(spec, report_text):
        result.failures.append(f"burst report failed: {report_text[:300]}")
    for name in ("burst-status.txt", "burst-report.txt", "status.html", "metrics.txt"):
        p = run_dir / name
        if p.exists():
            texts[name] = p.read_text(encoding="utf-8", errors="replace")
    found = sorted({where for where, text in texts.items() for n in needles if n and n in text})
    result.secrets_leaked = len(found)
    if found:
        result.notes.append(f"secrets found in: {found}")


def _member_tokens(host: ChaosHost) -> list[str]:
    import base64

    out = []
    for s in host.objects("v1", "secrets", "kube-federation-system"):
        tok = (s.get("data") or {}).get("token")
        if tok:
            out.append(base64.b64decode(tok).decode(errors="replace"))
    return out


def _burst_status(replicas: dict[str, Replica], run_dir: Path, *command: str) -> str:
    """``burst status`` (or another read-only command) as an operator runs it beside the daemon."""
    rep = next(iter(replicas.values()), None)
    if rep is None:
        return ""
    proc = subprocess.run(
        [sys.executable, "-m", "burst.cli", *(command or ("status",)), "--config", str(rep.config)],
        capture_output=True,
        text=True,
        cwd=run_dir,
        env=rep.env,
        timeout=60,
        check=False,
    )
    head = "" if proc.returncode == 0 else f"EXIT {proc.returncode}\n"
    return head + proc.stdout + proc.stderr


def _store_down(spec: sc.RunSpec, text: str) -> bool:
    """An operator's verb run while the scenario had PostgreSQL down: the right answer is one
    ``error: cannot open store …`` line and exit 2, not a failure of burst."""
    lines = [ln for ln in text.splitlines() if ln.startswith("error:")]
    return (
        spec.scenario == "pg_restart"
        and text.startswith("EXIT 2")
        and "Traceback" not in text
        and len(lines) == 1
        and "cannot open store" in lines[0]
    )
