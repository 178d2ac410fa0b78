"""The progress bar of a job over named items (corpus clips): transient, so the terminal keeps only the
summary line the command prints after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


@contextmanager
def item_progress(console: Console, total: int, what: str,
                  after: str | None = None) -> Iterator[Callable[[str], None]]:
    """A bar over ``total`` items; call the callback with each finished item's name. ``after``: what the bar
    says once the last item is done, while the command goes on with something else."""
    with Progress(TextColumn("{task.description}"), BarColumn(bar_width=20), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as progress:
        task = progress.add_task(what, total=total)

        def done(name: str) -> None:
            progress.advance(task)
            finished = progress.tasks[0].finished
            progress.update(task, description=after if finished and after else f"{what}: {name}")

        yield done
