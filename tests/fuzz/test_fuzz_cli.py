"""The command line, fuzzed: hostile arguments (numbers out of range, paths with ``[/x]`` and
control characters, garbage config and trace files) end in exit 0 or one ``error:`` line on
stderr and a non-zero exit; never a traceback, never a hang.  In-process for the 1 000 inputs;
then one subprocess per entry proves the real top-level path (``burst`` as installed)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from burst import cli

from .support import FUZZ, HOSTILE_NUMBER_TEXT, HOSTILE_TEXT, watchdog

ROOT = Path(__file__).resolve().parents[2]
GARBAGE_CONFIGS = [
    b"\xff\xfe not utf-8 \xe9",
    b"onprem: {cores: .nan}\nproviders: {a: {kind: local}}\n",
    b"onprem: {cores: 8}\nonprem: {cores: 8}\n",
    b"reconciler: {tick: 99999999999999d}\n",
    b"- [/x]\n",
    b"installation: '[/x]'\nonprem: {cores: 1}\nproviders: {a: {kind: local}}\n",
    b"x: " + b"[" * 50000 + b"]" * 50000 + b"\n",
    b"",
]
GARBAGE_TRACES = [
    b"1 1e999 0 60 4 -1 -1 4 -1 -1 1 1 -1 -1 -1 -1 -1 -1\n",
    b"submit,runtime,cpus\nnan,60,4\n",
    b"\x00\x01\x02",
]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    base = tmp_path_factory.mktemp("cli")
    configs, traces = [], []
    (base / "c[").mkdir()  # so that file names hold "[/x]", which rich once read as a closing tag
    for i, data in enumerate(GARBAGE_CONFIGS):
        (base / "c[" / f"x]{i}.yaml").write_bytes(data)
        configs.append(str(base / "c[" / f"x]{i}.yaml"))
    for i, data in enumerate(GARBAGE_TRACES):
        name = f"t{i}[bold].{'csv' if data.startswith(b'submit') else 'swf'}"
        (base / name).write_bytes(data)
        traces.append(str(base / name))
    return {
        "configs": [*configs, str(base / "missing [/x].yaml"), str(base)],
        "traces": [*traces, "/nonexistent/t.swf"],
    }


@pytest.fixture(scope="module")
def command() -> Any:
    """The click command ``burst`` runs, built once (building it is most of a call's cost)."""
    return typer.main.get_command(cli.app)


ARG = st.one_of(HOSTILE_NUMBER_TEXT, HOSTILE_TEXT.filter(lambda s: "\x00" not in s and "\udcff" not in s))


def _argv(data: st.DataObject, files: dict[str, list[str]]) -> list[str]:
    cfg = data.draw(st.sampled_from(files["configs"]))
    trace = data.draw(st.sampled_from(files["traces"]))
    x = data.draw(ARG)
    forms = [
        ["config", "validate", cfg, "-o", x],
        ["config", "validate", cfg],
        ["trace", "info", trace, "--onprem-cores", x],
        ["trace", "info", trace, "-o", "json"],
        ["simulate", trace, "-c", cfg, "--onprem-cores", x],
        ["plan", "-c", cfg],
        ["apply", "-c", cfg, "-o", x],
        ["status", "-c", cfg],
        ["providers", "-c", cfg],
        ["drain", "-c", cfg, x],
        ["remove", "-c", cfg, x, "--yes"],
        ["report", "-c", cfg, "--from", x],
        ["report", "-c", cfg, "--by", x],
        ["bench", trace, "-c", cfg, "--wait-target", x],
        [x, cfg],
        data.draw(st.lists(ARG, min_size=1, max_size=4)),
    ]
    return data.draw(st.sampled_from(forms))


def _run_in_process(command: Any, argv: list[str]) -> tuple[int, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr), watchdog():
        code = cli.run_command(command, argv)
    return code, stderr.getvalue()


@FUZZ
@given(data=st.data())
def test_hostile_arguments_end_in_one_error_line(
    files: dict[str, list[str]], command: Any, data: st.DataObject
) -> None:
    argv = _argv(data, files)
    if argv in (["--help"], ["-h"]) or not [a for a in argv if a.strip()]:
        return  # help is not an error
    code, stderr = _run_in_process(command, argv)
    assert "Traceback" not in stderr
    if code != 0:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        if lines and not lines[0].lstrip().startswith("Usage:"):  # `burst config` alone prints its help
            assert len(lines) == 1 and lines[0].startswith("error: "), stderr


#: One per distinct top-level path: ``guarded`` commands, typer's own option check, the report
#: and bench modules' own error handling.
ENTRIES = [
    ["config", "validate", "{cfg}"],
    ["trace", "info", "{trace}", "--onprem-cores", "5"],
    ["simulate", "{trace}", "-c", "{cfg}"],
    ["run", "-c", "{cfg}", "--metrics-port", "99999"],
    ["plan", "-c", "{cfg}"],
    ["report", "-c", "{cfg}"],
    ["bench", "{trace}", "-c", "{cfg}"],
]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: "-".join(a for a in e if not a.startswith(("{", "-"))))
def test_each_entry_prints_one_error_line_and_exits_non_zero(tmp_path: Path, entry: list[str]) -> None:
    (tmp_path / "bad [").mkdir()
    cfg = tmp_path / "bad [" / "x].yaml"
    cfg.write_bytes(b"onprem: {cores: 8}\n# caf\xe9\n")
    trace = tmp_path / "bad [" / "x].swf"
    trace.write_text("1 1e999 0 60 4 -1 -1 4 -1 -1 1 1 -1 -1 -1 -1 -1 -1\n")
    argv = [a.format(cfg=cfg, trace=trace) for a in entry]
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    burst = Path(sys.executable).with_name("burst")
    done = subprocess.run([str(burst), *argv], capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    if "--metrics-port" in entry:
        assert "--metrics-port" in lines[0] and "65535" in lines[0]
    elif entry[:2] == ["trace", "info"]:
        assert f"{trace}:1: field 2 (submit time) is 1e999" in lines[0]
    else:
        assert f"{cfg}: not UTF-8 text (byte 0xe9 at offset 24)" in lines[0]


def test_config_validate_runs_the_checks_across_sections(tmp_path: Path, command: Any) -> None:
    """Currency vs the offerings' prices, and lease vs tick: found by `config validate`, not at run time."""
    base = "onprem: {cores: 8}\nproviders:\n  a: {kind: local, cloud: tsystems}\n"
    cases = {
        "currency: USD\n" + base: "currency: offerings are priced in EUR but the config's currency is USD",
        base + "reconciler: {tick: 1m}\nleader_election: {kubeconfig: k, lease_duration: 90s}\n": (
            "leader_election.lease_duration: 1m30s is shorter than two reconciler ticks (1m each)"
        ),
    }
    for i, (text, expected) in enumerate(cases.items()):
        (tmp_path / f"{i}.yaml").write_text(text)
        code, stderr = _run_in_process(command, ["config", "validate", str(tmp_path / f"{i}.yaml")])
        assert code == 2 and expected in stderr and len(stderr.strip().splitlines()) == 1, stderr
    (tmp_path / "pattern.yaml").write_text(base + "installation: Bad\n")  # rich once mangled the pattern
    code, stderr = _run_in_process(command, ["config", "validate", str(tmp_path / "pattern.yaml")])
    assert code == 2 and "installation: String should match pattern '^[a-z][a-z0-9-]{0,19}$'" in stderr
    (tmp_path / "ok.yaml").write_text(base + "leader_election: {kubeconfig: k, lease_duration: 2m}\n")
    assert _run_in_process(command, ["config", "validate", str(tmp_path / "ok.yaml")]) == (0, "")
