"""The status page cannot hurt the daemon: 2 000 requests at 50 concurrent plus 400 idle sockets,
and the daemon (tick 1 s) still ticks on time, with a bounded number of threads.

The load comes from a separate process, so the test process (which also serves the host's
Kubernetes API the daemon polls every tick) is not slowed by it.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import e2e_harness as h

from burst.testing.kube_server import KubeApiServer

_LOAD = r"""
import http.client, json, socket, sys, time
from concurrent.futures import ThreadPoolExecutor
host, port = "127.0.0.1", int(sys.argv[1])
idle = []
for _ in range(400):  # connect and say nothing
    s = socket.create_connection((host, port), timeout=5)
    idle.append(s)
print(json.dumps({"idle_open": len(idle)}), flush=True)
sys.stdin.readline()  # the test has counted the daemon's threads
def get(i):
    path = "/" if i % 10 == 0 else ("/metrics" if i % 2 else "/healthz")
    c = http.client.HTTPConnection(host, port, timeout=60)
    try:
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        return r.status
    except OSError as err:
        return type(err).__name__
    finally:
        c.close()
start = time.time()
with ThreadPoolExecutor(50) as pool:
    codes = list(pool.map(get, range(2000)))
end = time.time()
out = {}
for c in codes:
    out[str(c)] = out.get(str(c), 0) + 1
print(json.dumps({"codes": out, "start": start, "end": end}), flush=True)
for s in idle:
    s.close()
"""


def _threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_status_page_under_load_never_delays_the_tick(
    tmp_path: h.Path, host: KubeApiServer, runs: list[h.BurstRun]
) -> None:
    config = h.write_config(tmp_path, host)
    daemon = h.BurstRun(config)
    runs.append(daemon)
    started = daemon.wait_log("status page and /metrics on ", timeout=90)  # a loaded machine starts slowly
    port = int(str(started["msg"]).rsplit(":", 1)[1])
    h.wait_until("3 ticks", lambda: len(daemon.ticks()) >= 3, timeout=30)
    before = _threads(daemon.proc.pid)

    load = subprocess.Popen(
        [sys.executable, "-c", _LOAD, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert load.stdin is not None and load.stdout is not None
    assert json.loads(load.stdout.readline())["idle_open"] == 400
    time.sleep(0.5)
    with_idle = _threads(daemon.proc.pid)
    load.stdin.write("go\n")
    load.stdin.flush()
    result = json.loads(load.stdout.readline())
    load.wait(timeout=30)

    # every request answered, no thread per idle socket
    assert result["codes"] == {"200": 2000}, result
    assert with_idle <= before + 2, (before, with_idle)
    # ticks kept their 1 s pace while the load ran
    stamps = [
        datetime.fromisoformat(t["ts"]).timestamp()
        for t in daemon.ticks()
        if result["start"] - 1 <= datetime.fromisoformat(t["ts"]).timestamp() <= result["end"] + 1
    ]
    assert len(stamps) >= 3, (len(stamps), result["end"] - result["start"])
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    print(f"load {result['end'] - result['start']:.1f}s, {len(stamps)} ticks, largest gap {max(gaps):.2f}s")
    assert max(gaps) <= 2.2, gaps
    metrics = h.scrape(daemon.status_url + "/metrics")
    assert h.metric(metrics, "burst_tick_failures_total") == 0
    assert "Traceback" not in daemon.text()
    assert daemon.stop() == 0
