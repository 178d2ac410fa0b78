"""Processes of a test, read from /proc: what a test started, and what those started in turn."""

from __future__ import annotations

from pathlib import Path


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc), parents first."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        found.append(p)
        todo.extend(children.get(p, []))
    return found


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def open_files(pid: int) -> list[Path]:
    """The files ``pid`` has open now (none once it has ended)."""
    found = []
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                found.append(Path(fd.readlink()))
            except OSError:
                continue
    except OSError:
        pass
    return found
