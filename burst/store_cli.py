"""``burst store``: the store's schema revision, and the way back before an older burst is deployed.

Every open of a store upgrades it to the newest schema, so the verbs here open the database
directly: ``downgrade`` must not first upgrade what it is asked to take back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import create_engine
from sqlalchemy.exc import SQLAlchemyError

from burst import config as config_mod
from burst.errors import BurstError
from burst.store import StoreError, downgrade, migrate, missing_driver, schema_revision, schema_revisions

store_app = typer.Typer(
    help="The store's schema: show its revision, upgrade it, or take it back.", no_args_is_help=True
)

ConfigOpt = Annotated[str, typer.Option("--config", "-c", help="burst's YAML config (its `state:` URL)")]


def _run(config: str, action: str, revision: str) -> str | None:
    cfg = config_mod.load(config)
    url = cfg.state_url()
    _must_exist(url, action)
    try:
        eng = create_engine(url)
    except ImportError as err:
        raise StoreError(f"cannot open store: {missing_driver(url, err)}") from None
    try:
        with eng.begin() as conn:
            if action == "upgrade":
                migrate(conn, revision)
            elif action == "downgrade":
                downgrade(conn, revision)
            return schema_revision(conn)
    except SQLAlchemyError as err:
        raise StoreError(f"store {action}: {err.__class__.__name__}: {err.args[0] if err.args else err}") from err
    finally:
        eng.dispose()


def _must_exist(url: str, action: str) -> None:
    """A read or a downgrade of a SQLite store that is not there creates nothing on disk."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    on_disk = u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:")
    if action != "upgrade" and on_disk and not Path(str(u.database)).exists():
        raise StoreError(f"no store at {u.database}")


def _check(revision: str, allow_base: bool) -> None:
    known = schema_revisions()
    if revision not in known and not (allow_base and revision == "base") and revision != "head":
        raise StoreError(f"unknown schema revision {revision!r}; known: {', '.join(known)}")


def _main(config: str, action: str, revision: str) -> None:
    from burst.cli import fail

    try:
        if action != "current":
            _check(revision, allow_base=action == "downgrade")
        now = _run(config, action, revision)
    except BurstError as e:
        raise fail(str(e)) from None
    typer.echo(now or "empty (no schema)")


@store_app.command()
def current(config: ConfigOpt) -> None:
    """Print the schema revision the store is at."""
    _main(config, "current", "")


@store_app.command()
def upgrade(config: ConfigOpt, to: Annotated[str, typer.Option(help="revision to reach")] = "head") -> None:
    """Upgrade the schema (burst does this itself on every open; this is for a planned window)."""
    _main(config, "upgrade", to)


@store_app.command("downgrade")
def downgrade_cmd(config: ConfigOpt, to: Annotated[str, typer.Option(help="revision to go back to")]) -> None:
    """Take the schema back to an older revision, with the newer burst, before deploying the older one."""
    _main(config, "downgrade", to)
