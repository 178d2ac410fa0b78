"""Where output goes: the terminal shows lfa's own output; what third-party libraries print (TensorFlow
Lite, MediaPipe, OpenCV, FFmpeg, Ray) and Python log records go to a log file, or to the terminal with
``lfa -v``.

Native libraries write to file descriptor 2 directly, so the redirection is at the descriptor level;
lfa's own stderr (error lines, warnings meant for the user) keeps a duplicate of the terminal."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

_verbose = False
_terminal: TextIO | None = None  # lfa's own stderr while fd 2 points at the log file
_log_path: Path | None = None


def set_verbose(verbose: bool) -> None:
    """Show third-party output on the terminal (``lfa -v``); from Python, ``lfa.logs.set_verbose(True)``."""
    global _verbose
    _verbose = verbose
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)


def is_verbose() -> bool:
    """``lfa -v``, ``set_verbose(True)`` or the environment variable ``LFA_VERBOSE=1``."""
    return _verbose or os.environ.get("LFA_VERBOSE", "") not in ("", "0")


def current_log() -> Path | None:
    """The file third-party output goes to now (None: the terminal)."""
    return _log_path


def default_log_dir() -> Path:
    from lfa.registry.store import lfa_home

    return lfa_home() / "logs"


def send_third_party_output_to(path: Path) -> Path | None:
    """Point fd 2 (and Python logging) at ``path`` unless verbose; call again to move it (a run moves it
    into its run directory). Child processes started afterwards inherit it. Returns the log path."""
    global _terminal, _log_path
    if _verbose:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    if _terminal is None:
        try:
            is_fd2 = sys.stderr.fileno() == 2
        except (AttributeError, OSError, ValueError):  # a test runner's buffer: leave lfa's stderr to it
            is_fd2 = False
        if is_fd2:
            _terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding, errors="replace")
            sys.stderr = _terminal
    _point_fd2_at(path)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_lfa", False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler._lfa = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(min(root.level or logging.WARNING, logging.INFO))
    logging.captureWarnings(True)  # Python warnings of libraries: the log file, not the terminal
    _log_path = path
    return path


def _point_fd2_at(path: Path) -> None:
    """File descriptor 2 (what native libraries write to) appends to ``path`` from now on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)


@contextmanager
def native_output_to_log() -> Iterator[None]:
    """For library code used from Python (no ``lfa`` command around it): what native libraries print to
    fd 2 inside this block (MediaPipe's and TensorFlow Lite's start-up lines) goes to lfa's log file
    (``$LFA_HOME/logs/lfa.log``). A no-op where lfa already redirects fd 2, and when verbose."""
    if _log_path is not None or is_verbose():
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all
        yield
        return
    try:
        path = default_log_dir() / "lfa.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        sys.stderr.flush()
        _point_fd2_at(path)
    except OSError:
        os.close(saved)
        yield
        return
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)

