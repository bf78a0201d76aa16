"""The docs site builds with ``mkdocs build --strict``, so a broken link, anchor or include fails here.

Also: the generated pages carry what they are generated from (every configuration key of every
installed plugin, every trace of ``bench/results``), every page is reachable from the navigation,
and the README stays a short front page that keeps the two commands CI greps for.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from burst.config import schema
from burst.lifecycle import BILLABLE, LIVE, SCHEDULABLE, TRANSITIONS
from burst.registry import kinds

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# The exact code blocks under "## The two commands" (CI and the house rules grep for them).
SIMULATE = (
    "```sh\npython3 -m pip install --quiet uv==0.13.9 && uv sync --all-packages --frozen && "
    "uv run burst simulate examples/traces/KTH-SP2-1996-slice-1997w06-w11.swf.gz --config examples/burst.yaml\n```"
)
TEST = "```sh\n./scripts/test\n```"

GROUPS = ("burst.providers", "burst.backlogs", "burst.federations", "burst.policies")


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("burst_docs_hook", DOCS / "hooks" / "burst_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _text(html: str) -> str:
    """Visible text of a page: tags dropped, so a key split by markup still matches."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace(" ,", ",")


class _IgnoreTags(yaml.SafeLoader):
    """mkdocs.yml uses MkDocs' own tags (``!relative``); the nav does not need them."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    done = _mkdocs(ROOT / "mkdocs.yml", out)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def test_config_reference_lists_every_key_of_every_installed_plugin(site: Path) -> None:
    page = _text((site / "configuration" / "index.html").read_text())
    assert "pending_cores_above" in page
    full = schema()
    for key in full["properties"]:
        assert key in page, key
    for group in GROUPS:
        found = kinds(group)
        assert found, group
        for kind in found:
            assert f"kind: {kind}" in page, (group, kind)
            for key in full["x-plugins"][group][kind]["properties"]:
                assert key in page, (group, kind, key)
    # pydantic's ISO durations are shown as the file writes them, factory defaults are recovered
    assert "PT15M" not in page
    assert '["m5.2xlarge", "c5.4xlarge"]' in page.replace("&quot;", '"')


def test_benchmarks_page_has_every_trace_and_strategy(site: Path) -> None:
    page = _text((site / "benchmarks" / "index.html").read_text())
    results = sorted(p for p in (ROOT / "bench" / "results").glob("*.json") if p.name != "chaos.json")
    assert results
    for path in results:
        rows = json.loads(path.read_text())
        assert rows[0]["trace"] in page
        for row in rows:
            assert row["strategy"] in page
    # bench/README.md is included, not copied
    assert "The lower bound" in page


def test_architecture_lists_every_lifecycle_state_and_its_transitions(site: Path) -> None:
    page = _text((site / "architecture" / "index.html").read_text())
    for state, targets in TRANSITIONS.items():
        nexts = ", ".join(sorted(str(t) for t in targets)) or "— (final)"
        assert f"{state} {nexts}" in page, state
    hook = _hook()
    with pytest.raises(ValueError, match="FAILED has no description"):
        hook.lifecycle_table(
            TRANSITIONS,
            BILLABLE,
            SCHEDULABLE,
            LIVE,
            {"PLANNED": "x"} | {str(s): "y" for s in TRANSITIONS if str(s) != "FAILED"},
        )


def test_repository_readmes_are_included_not_copied(site: Path) -> None:
    includes = {
        "providers/aws": ROOT / "providers" / "aws" / "README.md",
        "providers/gce": ROOT / "providers" / "gce" / "README.md",
        "providers/tsystems": ROOT / "providers" / "tsystems" / "README.md",
        "providers/openstack": ROOT / "providers" / "openstack" / "README.md",
        "providers/local": ROOT / "providers" / "local" / "README.md",
        "terraform": ROOT / "terraform" / "README.md",
    }
    for page, readme in includes.items():
        source = (DOCS / page).with_suffix(".md") if page != "terraform" else DOCS / "terraform" / "index.md"
        assert source.read_text().strip() == f'--8<-- "{readme.relative_to(ROOT)}"', source
        html = _text((site / page / "index.html").read_text())
        headings = [line for line in readme.read_text().splitlines() if re.match(r"#{1,2} ", line)]
        for heading in (headings[0], headings[-1]):
            assert heading.lstrip("# ").replace("`", "") in html, (page, heading)


def _small_site(tmp_path: Path, other_page: str) -> Path:
    """Two pages under this repository's mkdocs.yml settings (validation, extensions, theme)."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("# Home\n\nSee [the other page](other.md).\n")
    (docs / "other.md").write_text(other_page)
    config: dict[str, Any] = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_IgnoreTags)
    config.update(docs_dir=str(docs), nav=["index.md", "other.md"], hooks=[])
    for extension in config["markdown_extensions"]:
        if isinstance(extension, dict) and "pymdownx.snippets" in extension:
            extension["pymdownx.snippets"]["base_path"] = str(tmp_path)
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    return tmp_path / "mkdocs.yml"


def test_a_broken_link_or_anchor_fails_the_build(tmp_path: Path) -> None:
    """The validation settings of mkdocs.yml turn both into errors under --strict."""
    page = "# Other\n\nSee [a page that is not there](missing.md) and [a heading](index.md#no-such-heading).\n"
    done = _mkdocs(_small_site(tmp_path, page), tmp_path / "site")
    assert done.returncode != 0
    assert "missing.md" in done.stderr
    assert "no-such-heading" in done.stderr


def test_an_include_of_a_missing_file_fails_the_build(tmp_path: Path) -> None:
    (tmp_path / "there.md").write_text("## Included\n")
    ok = _mkdocs(_small_site(tmp_path, '# Other\n\n--8<-- "there.md"\n'), tmp_path / "site")
    assert ok.returncode == 0, ok.stderr
    assert "Included" in (tmp_path / "site" / "other" / "index.html").read_text()
    (tmp_path / "there.md").unlink()
    done = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "there.md" in done.stderr


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_IgnoreTags)

    def pages(entry: object) -> list[str]:
        if isinstance(entry, str):
            return [entry]
        if isinstance(entry, list):
            return [page for item in entry for page in pages(item)]
        if isinstance(entry, dict):
            return [page for value in entry.values() for page in pages(value)]
        return []

    in_nav = pages(config["nav"])
    on_disk = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(in_nav) == on_disk
    assert len(in_nav) == len(set(in_nav))


def test_readme_is_a_short_front_page_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    assert SIMULATE in section
    assert TEST in section
    # the getting-started page shows the same commands
    started = (DOCS / "getting-started.md").read_text()
    assert SIMULATE in started and TEST in started


def test_durations_and_types_read_as_the_file_writes_them() -> None:
    hook = _hook()
    assert hook.human_duration("PT1H30M") == "1h30m"
    assert hook.human_duration("P30D") == "30d"
    assert hook.human_duration("PT0S") == "0s"
    assert hook.human_duration("not a duration") == "not a duration"
    assert hook.type_of({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}) == "integer ≥ 0 or null"
    assert hook.type_of({"type": "array", "items": {"enum": ["day", "week"]}}) == 'list of `"day"` | `"week"`'
    assert hook.type_of({"type": "object", "additionalProperties": {"$ref": "#/$defs/Money"}}) == (
        "map of string → `Money`"
    )
    row = hook.model_table({"properties": {"a|b": {"type": "string", "description": "x | y"}}, "required": ["a|b"]})
    assert row[2] == "| `a\\|b` | string | — | x \\| y | yes |"


def test_bench_tables_render_every_row_and_refuse_an_empty_results_dir(tmp_path: Path) -> None:
    hook = _hook()
    with pytest.raises(ValueError, match="no benchmark results"):
        hook.bench_tables(tmp_path)
    row = {
        "trace": "T-1",
        "strategy": "burst",
        "cost_total": 1234.4,
        "currency": "EUR",
        "wait_p50_s": 0.0,
        "wait_p95_s": 3725.0,
        "spike_wait_p95_s": 59.0,
        "cost_ratio_to_lower_bound": 2.5,
        "leaked_clusters": 0,
        "killed_jobs": 0,
        "node_hours": 10.0,
        "burst_core_hours_used": 80.0,
        "clusters_created": 3,
        "peak_burst_cores": 64,
        "wall_seconds": 1.25,
        "note": "",
    }
    lower = {**row, "strategy": "lower-bound", "wait_p50_s": None, "wait_p95_s": None, "spike_wait_p95_s": None}
    (tmp_path / "T-1.json").write_text(json.dumps([row, lower]))
    text = hook.bench_tables(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "T-2.json").write_text(json.dumps([{"trace": "T-2", "strategy": "burst"}]))
    with pytest.raises(ValueError, match=r"T-2.json: a row lacks \['cost_ratio_to_lower_bound', 'cost_total'"):
        hook.bench_tables(broken)
    (broken / "T-2.json").write_text("[{")
    with pytest.raises(ValueError, match=r"T-2.json:1: not JSON"):
        hook.bench_tables(broken)
    assert "### T-1" in text
    assert "| `burst` | 1,234 EUR | 0s | 1h02m | 59s | 2.50× |" in text
    assert "| `lower-bound` | 1,234 EUR | — | — | — |" in text
