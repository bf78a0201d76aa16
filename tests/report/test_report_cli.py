"""`burst report` as a command: every output format, files, and one-line errors with exit code 2."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from burst.report import ReportError
from burst.report_cli import By, ReportOutput, report, run_report

from .conftest import BUDGET_POLICIES, NOW, build_hand_store

# a1's hour before midnight: 3 nodes × 0.40 + control plane 0.10
FIRST_DAY = 3 * 0.40 + 0.10
TOTAL = 13.60


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    db = tmp_path / "burst.db"
    build_hand_store(f"sqlite:///{db}").close()
    cfg = {
        "installation": "burst",
        "state": "sqlite:///burst.db",  # relative to the config file
        "onprem": {"cores": 100},
        "providers": {"aws": {"kind": "local", "cloud": "aws"}},
        "policies": BUDGET_POLICIES,
    }
    path = tmp_path / "burst.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def app() -> typer.Typer:
    """The verb registered the way burst's CLI registers it."""
    a = typer.Typer()
    a.command("report")(report)

    @a.command("version")
    def version() -> None:  # a second verb, so `report` stays a named subcommand
        """unused"""

    return a


def invoke(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app(), ["report", *args])
    return res.exit_code, res.stdout, res.stderr


def test_json_and_csv_to_stdout(config_file: Path) -> None:
    code, out, _ = invoke("-c", str(config_file), "--from", "2027-03-01", "--to", "2027-03-01", "-o", "json")
    assert code == 0
    data = json.loads(out)
    assert data["from"] == "2027-03-01T00:00:00+00:00" and data["to"] == "2027-03-02T00:00:00+00:00"
    assert data["total"]["spend"] == pytest.approx(FIRST_DAY)
    assert [b["label"] for b in data["budgets"]] == ["cern monthly", "cern moriond"]

    code, out, _ = invoke(
        "-c", str(config_file), "--from", "2027-03-01", "--to", "2027-03-01", "--by", "cluster", "-o", "csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["cluster"] for r in rows] == ["a1", "(total)"]
    assert float(rows[0]["node_hours"]) == pytest.approx(3)


def test_table_to_stdout(config_file: Path) -> None:
    code, out, _ = invoke("-c", str(config_file), "--from", "2027-03-01", "--to", "2027-03-01", "--by", "campaign")
    assert code == 0
    assert "moriond" in out and "1.30" in out and "total" in out


@pytest.mark.parametrize("fmt", list(ReportOutput))
def test_every_format_to_a_file(config_file: Path, tmp_path: Path, fmt: ReportOutput) -> None:
    out = tmp_path / f"costs.{fmt.value}"
    text = run_report(config_file, None, None, By.provider, fmt, out, now=NOW)
    written = out.read_text()
    assert written == text
    if fmt is ReportOutput.json:
        assert json.loads(written)["total"]["spend"] == pytest.approx(TOTAL, abs=1e-4)
    elif fmt is ReportOutput.csv:
        assert written.splitlines()[-1].startswith("(total),3,")
    elif fmt is ReportOutput.html:
        assert written.startswith("<!DOCTYPE html>") and "13.60 EUR" in written
    else:
        assert "13.60" in written and "gce" in written and "\x1b[" not in written  # plain text, no colours


def test_html_to_file_through_the_command(config_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    code, _, err = invoke(
        "-c", str(config_file), "--from", "2027-03-01", "--to", "2027-03-02", "-o", "html", "--out", str(out)
    )
    assert code == 0, err
    assert "report written to" in err
    assert "plotly-graph-div" in out.read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-o", "html"], "--output html writes a file"),
        (["--from", "2027-03-05", "--to", "2027-03-01"], "is after --to"),
        (
            [
                "--by",
                "day",
                "--from",
                "2027-03-01",
                "--to",
                "2027-03-01",
                "--out",
                "/nonexistent-dir/x.csv",
                "-o",
                "csv",
            ],
            "cannot write",
        ),
    ],
)
def test_errors_are_one_line_and_exit_2(config_file: Path, args: list[str], message: str) -> None:
    code, out, err = invoke("-c", str(config_file), *args)
    assert code == 2
    assert message in err and err.startswith("error:")
    assert "Traceback" not in err and out == ""


def test_config_errors_are_reported(tmp_path: Path) -> None:
    code, _, err = invoke("-c", str(tmp_path / "missing.yaml"))
    assert code == 2 and "config file not found" in err


def test_usage_errors_come_from_typer(config_file: Path) -> None:
    code, _, err = invoke("-c", str(config_file), "--by", "flavor")
    assert code == 2 and "flavor" in err
    code, _, err = invoke("-c", str(config_file), "--from", "03/01/2027")
    assert code == 2 and "--from" in err


def test_run_report_raises_burst_errors(config_file: Path) -> None:
    with pytest.raises(ReportError):
        run_report(config_file, datetime(2027, 3, 5), datetime(2027, 3, 1), By.day, ReportOutput.json, None, now=NOW)
