"""MkDocs hook: pages that are generated at build time, so they cannot drift from the code.

Two markers are replaced in a page's markdown (before pymdownx.snippets runs its includes):

- ``<!-- burst:config-reference -->`` — one table per configuration section, rendered from
  ``burst.config.schema()``: the core file's models and every installed plugin's section
  (``x-plugins``), so a new key or plugin shows up without anyone editing the docs;
- ``<!-- burst:bench-results -->`` — one table per trace from ``bench/results/*.json``, every
  strategy that run measured;
- ``<!-- burst:lifecycle -->`` — the cluster states and their allowed transitions, from
  ``burst.lifecycle.TRANSITIONS``.

A page with a marker but nothing to render fails the build (strict or not): an empty reference
would look like a documented absence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

CONFIG_MARKER = "<!-- burst:config-reference -->"
BENCH_MARKER = "<!-- burst:bench-results -->"
LIFECYCLE_MARKER = "<!-- burst:lifecycle -->"

_GROUPS = (
    ("burst.providers", "providers.<name>", "Providers"),
    ("burst.backlogs", "backlog", "Backlog sources"),
    ("burst.federations", "federation", "Federations"),
    ("burst.policies", "policies[]", "Policies"),
)

_NO_FACTORY = object()

_ISO_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def _cell(text: str) -> str:
    """Markdown table cells hold one line and no bare pipe."""
    return " ".join(text.split()).replace("|", "\\|")


def human_duration(value: str) -> str:
    """``PT1H30M`` → ``1h30m``: the form the YAML file takes, not pydantic's ISO export."""
    m = _ISO_DURATION.match(value)
    if not m or value in ("P", "PT"):
        return value
    days, hours, minutes, seconds = m.groups()
    parts = []
    for amount, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")):
        if amount and float(amount):
            parts.append(f"{float(amount):g}{unit}")
    return "".join(parts) or "0s"


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(prop: dict[str, Any]) -> str:
    """A reader's type: ``duration``, ``list of string``, ``Money or null``, ``integer ≥ 0``."""
    if "$ref" in prop:
        return f"`{_ref_name(prop['$ref'])}`"
    if "const" in prop:
        return f"`{json.dumps(prop['const'])}`"
    if "enum" in prop:
        return " | ".join(f"`{json.dumps(v)}`" for v in prop["enum"])
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in prop:
            options = [type_of(option) for option in prop[combinator]]
            return " or ".join(dict.fromkeys(options))
    kind = prop.get("type")
    if kind == "array":
        items = prop.get("items")
        return f"list of {type_of(items)}" if items else "list"
    if kind == "object":
        values = prop.get("additionalProperties")
        if isinstance(values, dict) and values:
            return f"map of string → {type_of(values)}"
        return "mapping"
    if kind == "string" and prop.get("format") in ("duration", "date", "date-time"):
        base = str(prop["format"])
    elif kind == "null":
        base = "null"
    else:
        base = str(kind) if kind else "any"
    bounds = [
        f"{symbol} {prop[key]:g}"
        for key, symbol in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"))
        if key in prop
    ]
    if "pattern" in prop:
        bounds.append(f"matching `{prop['pattern']}`")
    if prop.get("minItems"):
        bounds.append(f"at least {prop['minItems']} items")
    if prop.get("minProperties"):
        bounds.append(f"at least {prop['minProperties']} entries")
    return " ".join([base, ", ".join(bounds)]) if bounds else base


def _is_duration(prop: dict[str, Any]) -> bool:
    if prop.get("format") == "duration":
        return True
    return any(_is_duration(option) for option in prop.get("anyOf", []))


def factory_defaults(model_class: Any) -> dict[str, Any]:
    """Defaults made by a ``default_factory``, which pydantic leaves out of the JSON Schema.

    Keyed by the name the YAML file uses (the alias where there is one, e.g. ``for``).
    """
    out: dict[str, Any] = {}
    for name, field in getattr(model_class, "model_fields", {}).items():
        if field.default_factory is not None:
            out[field.alias or name] = field.default_factory()
    return out


def _render_value(value: Any) -> str:
    if isinstance(value, timedelta):
        return f"`{human_duration(f'PT{value.total_seconds():g}S')}`"
    if hasattr(value, "model_dump"):
        return "its defaults"  # a nested section: its own table lists them
    return f"`{json.dumps(value, ensure_ascii=False, default=str)}`"


def default_of(prop: dict[str, Any], required: bool, factory: Any = _NO_FACTORY) -> str:
    if required:
        return "—"
    if "default" not in prop:
        return "" if factory is _NO_FACTORY else _render_value(factory)
    value = prop["default"]
    if value is None:
        return "unset"
    if isinstance(value, str) and _is_duration(prop):
        return f"`{human_duration(value)}`"
    return _render_value(value)


def model_table(model: dict[str, Any], factories: Mapping[str, Any] | None = None) -> list[str]:
    """One markdown table: key, type, default, description, required."""
    factories = factories or {}
    required = set(model.get("required", []))
    rows = ["| key | type | default | description | required |", "|---|---|---|---|---|"]
    for key, prop in model.get("properties", {}).items():
        needed = key in required
        rows.append(
            "| "
            + " | ".join(
                [
                    _cell(f"`{key}`"),
                    _cell(type_of(prop)),
                    _cell(default_of(prop, needed, factories.get(key, _NO_FACTORY))),
                    _cell(prop.get("description", "")),
                    "yes" if needed else "",
                ]
            )
            + " |"
        )
    return rows


def _intro(model: dict[str, Any]) -> list[str]:
    text = model.get("description", "").replace("``", "`")
    return [" ".join(text.split()), ""] if text else []


def _defs_section(defs: dict[str, Any], level: str, owner: str) -> list[str]:
    out: list[str] = []
    for name, sub in defs.items():
        if "properties" not in sub:
            continue
        out += [f"{level} `{name}` ({owner})", "", *_intro(sub), *model_table(sub), ""]
    return out


def config_reference(schema: dict[str, Any], classes: Mapping[str, Any] | None = None, level: int = 2) -> str:
    """Markdown for the whole file: the core sections, then each plugin group and kind.

    ``classes`` maps ``"core"`` and ``"<group>:<kind>"`` to the pydantic model, only to recover
    defaults that come from a factory.  ``level`` is the heading level of the top sections, so the
    reference can sit under a page's own heading.
    """
    classes = classes or {}
    h1, h2, h3 = ("#" * (level + i) for i in range(3))
    plugins: dict[str, dict[str, Any]] = schema.get("x-plugins", {})
    core = {key: value for key, value in schema.items() if key != "x-plugins"}
    # the core leaves plugin sections untyped; say where their keys are
    core_props = {key: dict(prop) for key, prop in core.get("properties", {}).items()}
    for _, where, title in _GROUPS:
        key = where.split(".")[0].rstrip("[]")
        if key in core_props and not core_props[key].get("description"):
            core_props[key]["description"] = f"plugin section(s) picked by `kind:`; each kind's keys: {title}, below"
    core = {**core, "properties": core_props}
    out = [f"{h1} The file", "", *_intro(core), *model_table(core, factory_defaults(classes.get("core"))), ""]
    for name, sub in core.get("$defs", {}).items():
        section = next(
            (key for key, prop in core.get("properties", {}).items() if f"#/$defs/{name}" in json.dumps(prop)),
            name,
        )
        out += [f"{h2} `{section}` (`{name}`)", "", *_intro(sub), *model_table(sub), ""]
    for group, where, title in _GROUPS:
        kinds = plugins.get(group, {})
        if not kinds:
            continue
        out += [f"{h1} {title} (`{where}`)", "", f"Entry-point group `{group}`; `kind:` picks one of these.", ""]
        for kind, model in kinds.items():
            factories = factory_defaults(classes.get(f"{group}:{kind}"))
            out += [f"{h2} `{where}` — `kind: {kind}`", "", *_intro(model), *model_table(model, factories), ""]
            out += _defs_section(model.get("$defs", {}), h3, f"`{where}`, `kind: {kind}`")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# benchmarks


def _duration_s(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.0f} {currency}" if amount >= 100 else f"{amount:,.2f} {currency}"


_BENCH_KEYS = ("trace", "strategy", "cost_total", "cost_ratio_to_lower_bound", "leaked_clusters", "killed_jobs")


def bench_tables(results_dir: Path) -> str:
    """One table per trace file, rows in the order the run wrote them."""
    # A strategy benchmark writes a list of rows per trace; other results (the chaos harness's
    # ``chaos.json``, one object) have their own section in bench/README.md.
    files = sorted(p for p in results_dir.glob("*.json") if p.name != "chaos.json")
    if not files:
        raise ValueError(f"{results_dir}: no benchmark results (*.json) to render")
    out: list[str] = []
    for path in files:
        try:
            rows: list[dict[str, Any]] = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: not JSON: {err.msg}") from err
        if not rows:
            raise ValueError(f"{path}: no rows")
        missing = [key for key in _BENCH_KEYS for row in rows if key not in row]
        if missing:
            raise ValueError(f"{path}: a row lacks {sorted(set(missing))}")
        trace = str(rows[0]["trace"])
        out += [
            f"### {trace}",
            "",
            f"From `bench/results/{path.name}`.",
            "",
            "| strategy | spend | wait p50 | wait p95 | spike p95 | × lower bound | node-hours "
            "| burst core-h used | clusters | peak burst cores | leaked | killed | wall |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:
            cells = [
                f"`{row['strategy']}`",
                _money(float(row["cost_total"]), str(row.get("currency", ""))),
                _duration_s(row.get("wait_p50_s")),
                _duration_s(row.get("wait_p95_s")),
                _duration_s(row.get("spike_wait_p95_s")),
                f"{float(row['cost_ratio_to_lower_bound']):.2f}×",
                f"{float(row.get('node_hours', 0)):,.0f}",
                f"{float(row.get('burst_core_hours_used', 0)):,.0f}",
                f"{int(row.get('clusters_created', 0)):,}",
                f"{int(row.get('peak_burst_cores', 0)):,}",
                str(row["leaked_clusters"]),
                str(row["killed_jobs"]),
                f"{float(row.get('wall_seconds', 0)):.1f} s",
            ]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        notes = [f"`{row['strategy']}`: {row['note']}" for row in rows if row.get("note")]
        out += ["", *(f"- {_cell(n)}" for n in notes), ""] if notes else [""]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# lifecycle


def lifecycle_table(
    transitions: Mapping[Any, Any], billable: Any, schedulable: Any, live: Any, meaning: Mapping[str, str]
) -> str:
    """Every state, where it may go next, and whether it costs money, takes jobs, counts as capacity."""
    rows = [
        "| state | may go to | billed | takes jobs | counts as capacity | what it means |",
        "|---|---|:-:|:-:|:-:|---|",
    ]
    for state, targets in transitions.items():
        name = str(state)
        if name not in meaning:
            raise ValueError(f"lifecycle state {name} has no description in the docs hook")
        nexts = ", ".join(f"`{t}`" for t in sorted(str(t) for t in targets)) or "— (final)"
        marks = ["yes" if state in group else "" for group in (billable, schedulable, live)]
        rows.append("| " + " | ".join([f"`{name}`", nexts, *marks, _cell(meaning[name])]) + " |")
    return "\n".join(rows)


STATE_MEANING = {
    "PLANNED": "decided and committed to the store; nothing asked of a cloud yet (may still be cancelled)",
    "PROVISIONING": "the create was sent; polled every tick; past `reconciler.provisioning_timeout` it is removed",
    "JOINING": "the cloud says ready; the federation is joining it; past `reconciler.joining_timeout` rolled back",
    "ACTIVE": "the federation says it takes work",
    "DRAINING": "no new work; idle nodes are released; back to ACTIVE if demand returns, else removed at zero running",
    "REMOVING": "unjoined; the delete is polled until the provider answers `NotFound`",
    "REMOVED": "gone from the cloud; the record and its ledger stay",
    "FAILED": "a cloud step failed; retried with backoff up to `reconciler.max_attempts`, then cleaned up",
}


# ---------------------------------------------------------------------------------------------
# MkDocs entry point (hooks are plain functions looked up by name)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if CONFIG_MARKER in markdown:
        from burst.config import BurstFile, schema
        from burst.registry import kinds

        classes: dict[str, Any] = {"core": BurstFile}
        for group, _, _ in _GROUPS:
            classes.update({f"{group}:{kind}": cls for kind, cls in kinds(group).items()})
        markdown = markdown.replace(CONFIG_MARKER, config_reference(schema(), classes, level=3))
    if LIFECYCLE_MARKER in markdown:
        from burst.lifecycle import BILLABLE, LIVE, SCHEDULABLE, TRANSITIONS

        table = lifecycle_table(TRANSITIONS, BILLABLE, SCHEDULABLE, LIVE, STATE_MEANING)
        markdown = markdown.replace(LIFECYCLE_MARKER, table)
    if BENCH_MARKER in markdown:
        from mkdocs.exceptions import PluginError

        root = Path(config["config_file_path"]).parent
        try:
            tables = bench_tables(root / "bench" / "results")
        except (ValueError, KeyError, OSError) as err:
            # one line naming the file, not a traceback through MkDocs
            raise PluginError(f"benchmarks page: {err}") from err
        markdown = markdown.replace(BENCH_MARKER, tables)
    return markdown
