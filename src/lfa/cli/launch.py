"""``--launch N``: the same command in N local processes through torchrun, with the children's one-line
errors relayed to the terminal once (their stderr is lfa's log file, like any library's output)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lfa.errors import LfaError

ERROR_DIR_ENV = "LFA_LAUNCH_ERRORS"  # where each child process writes its error line (lfa.cli.main)


class LaunchError(LfaError):
    pass


def record_child_error(exc: LfaError) -> None:
    """In a launched child: leave the error for the parent (no-op elsewhere)."""
    folder = os.environ.get(ERROR_DIR_ENV)
    if folder:
        rank = os.environ.get("RANK", "0")
        Path(folder, f"rank-{rank}.json").write_text(json.dumps({"message": exc.message, "fix": exc.fix}))


def relaunch(processes: int, argv: list[str], option: str = "--launch") -> int:
    """Run ``lfa ARGV`` (without ``option N``) in ``processes`` processes; the exit code of the group.
    A child's error line is raised here once, however many ranks report it."""
    args = list(argv)
    i = args.index(option)
    del args[i: i + 2]
    with tempfile.TemporaryDirectory(prefix="lfa-launch-") as folder:
        env = {**os.environ, ERROR_DIR_ENV: folder}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "lfa", *args]
        code = subprocess.call(cmd, env=env)
        errors = [json.loads(p.read_text()) for p in sorted(Path(folder).glob("rank-*.json"))]
    if code == 0:
        return 0
    if errors:
        raise LaunchError(errors[0]["message"], errors[0]["fix"])
    from lfa.logs import current_log

    log = current_log()
    raise LaunchError(f"the {processes} training processes stopped (exit code {code})",
                      f"see {log}" if log else "rerun with `lfa -v` to see their output")
