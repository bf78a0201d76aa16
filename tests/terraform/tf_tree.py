"""Reading burst's Terraform tree as data, for tests that need no terraform binary.

No terraform binary or provider plugin can be installed here (no network), so the modules are
checked the way that is possible: every file parsed by ``python-hcl2`` (a real HCL2 grammar), and
the parsed blocks cross-checked against each other and against burst's own code and config models.
Nothing here evaluates HCL beyond what the tests name (``jsonencode`` of a reference).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "terraform"
MODULES = TERRAFORM / "modules"
EXAMPLES = TERRAFORM / "examples"

#: cloud (example directory) → module directory name.  The test fails if either side is missing.
CLOUDS = {
    "aws": "aws-landing-zone",
    "gce": "gce-landing-zone",
    "otc": "otc-landing-zone",
    "openstack": "openstack-landing-zone",
}

_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True, preserve_heredocs=True
)


@cache
def parse_file(path: Path) -> dict[str, Any]:
    """One .tf file as python-hcl2's dict (blocks as lists of ``{label: body}``)."""
    return dict(hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTIONS))


def blocks(parsed: dict[str, Any], kind: str) -> dict[str, Any]:
    """Single-label blocks (variable, output, module) of one kind, by label."""
    out: dict[str, Any] = {}
    for entry in parsed.get(kind, []):
        for label, body in entry.items():
            assert label not in out, f"{kind} {label!r} declared twice"
            out[label] = body
    return out


def typed_blocks(parsed: dict[str, Any], kind: str) -> dict[tuple[str, str], Any]:
    """Two-label blocks (resource, data) by (type, name)."""
    out: dict[tuple[str, str], Any] = {}
    for entry in parsed.get(kind, []):
        for rtype, named in entry.items():
            for name, body in named.items():
                assert (rtype, name) not in out, f"{kind} {rtype}.{name} declared twice"
                out[(rtype, name)] = body
    return out


@dataclass
class TfDir:
    """All .tf files of one directory (a module or an example), merged as Terraform merges them."""

    path: Path
    texts: dict[str, str] = field(default_factory=dict)
    parsed: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TfDir:
        files = sorted(path.glob("*.tf"))
        assert files, f"{path} has no .tf files"
        d = cls(path)
        for f in files:
            d.texts[f.name] = f.read_text(encoding="utf-8")
            d.parsed[f.name] = parse_file(f)
        return d

    def _merged(self, kind: str, typed: bool) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for parsed in self.parsed.values():
            part = typed_blocks(parsed, kind) if typed else blocks(parsed, kind)
            dup = set(out) & set(part)
            assert not dup, f"{self.path}: {kind} {dup} declared in two files"
            out.update(part)
        return out

    @property
    def variables(self) -> dict[str, Any]:
        return self._merged("variable", typed=False)

    @property
    def outputs(self) -> dict[str, Any]:
        return self._merged("output", typed=False)

    @property
    def modules(self) -> dict[str, Any]:
        return self._merged("module", typed=False)

    @property
    def resources(self) -> dict[tuple[str, str], Any]:
        return self._merged("resource", typed=True)

    @property
    def data(self) -> dict[tuple[str, str], Any]:
        return self._merged("data", typed=True)

    @property
    def locals(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for parsed in self.parsed.values():
            for entry in parsed.get("locals", []):
                out.update(entry)
        return out

    def text(self) -> str:
        return "\n".join(self.texts.values())


def module(cloud: str) -> TfDir:
    return TfDir.load(MODULES / CLOUDS[cloud])


def example(cloud: str) -> TfDir:
    return TfDir.load(EXAMPLES / cloud)


_HEREDOC = re.compile(r"\A<<(-?)([A-Z_]+)\n(.*)\n[ \t]*\2\Z", re.S)


def heredoc(value: str) -> str:
    """The string a heredoc stands for.  ``<<-`` strips the least indentation of its lines, as
    Terraform does; the text ends with a newline (Terraform keeps the one before the marker)."""
    m = _HEREDOC.match(value)
    assert m, f"not a heredoc: {value[:40]!r}"
    body = m.group(3) + "\n"
    return textwrap.dedent(body) if m.group(1) else body


def unquote(expr: str) -> str:
    """python-hcl2 writes an expression attribute as ``${...}``; the bare expression."""
    assert expr.startswith("${") and expr.endswith("}"), f"not an expression: {expr!r}"
    return expr[2:-1]
