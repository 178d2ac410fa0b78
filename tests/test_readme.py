"""The README is a contract: its shell lines and Python snippets run as written, in order, from one working
folder, and print nothing on stderr (no third-party line reaches the terminal).

What this test provides that a reader brings themselves (the stand-ins), in ``workdir``:
- ``photo.jpg``, ``a.jpg``: scikit-image's astronaut; ``me.jpg``: matplotlib's Grace Hopper;
  ``b_folder/``: the astronaut photo and its mirror; ``people/``: two people, two photos each;
- ``clip.mp4``: the corpus clip ``speaking_on_screen.mp4`` (a turning head that speaks);
  ``videos/``: two corpus clips; ``more.mp4``: a third one;
- ``corpus``: a link to the suite's rendered standard corpus and ``run``: a copy of the suite's curation of
  it, so the line that renders and curates them (resumable, both) finds them done and re-creates nothing;
  ``out/corpus``: a copy of that corpus, for the line that renders it there;
- a private ``LFA_HOME`` whose models link to the provisioned ones.
Lines that cannot run here are in ``SKIP`` with the reason; every other line runs.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

# A README line (its start) that does not run here -> why.
SKIP = {
    "make demo": "the demo's steps run in this test and in tests/test_train.py; `make test` runs this suite",
    "make test": "it runs this suite",
    "lfa faces clip.mp4 --pose whenet --identity arcface --detector scrfd": "user-supplied ArcFace and SCRFD",
    "lfa synth eval-pose": "minutes (sweeps of every sample photo); tests/test_synth.py evaluates the pose",
    "lfa curate videos/ --out out/ray --executor ray": "a Ray cluster at HEAD:6379 (tests/test_curate_ray.py)",
    "ray start": "a Ray cluster",
    "lfa curate /shared/raw": "a Ray cluster and shared storage",
    "tensorboard": "a server (tests/test_train.py reads the scalars it would show)",
    "lfa train --base models/wan-tiny --data run --out out/ddp --launch 2":
        "two more processes and their own cache (tests/test_train.py runs DDP; its errors: test_cli.py)",
    "lfa bench --spec spec/spec.jsonl --videos tiny=videos/tiny --out out/bench-peers":
        "user-supplied CLIP and Inception",
}
THIRD_PARTY = re.compile(r"^(W0000|I0000|E0000|INFO: |WARNING: |\[transformers\]|.*Warning: )", re.M)


def blocks(text: str) -> list[tuple[str, str, int]]:
    """(language, body, line number) of every fenced code block."""
    found, lang, body, start = [], None, [], 0
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            if lang is None:
                lang, body, start = line[3:].strip(), [], n
            else:
                found.append((lang, "\n".join(body), start))
                lang = None
        elif lang is not None:
            body.append(line)
    return found


def shell_lines(body: str) -> list[str]:
    """Logical lines (continuations joined), comments and blank lines left out."""
    lines, current = [], ""
    for raw in body.splitlines():
        current += raw
        if raw.endswith("\\"):
            current = current[:-1]
            continue
        if current.strip() and not current.strip().startswith("#"):
            lines.append(current.strip())
        current = ""
    return lines


def skipped(line: str) -> str | None:
    return next((why for start, why in SKIP.items() if line.startswith(start)), None)


def readme_steps() -> list[tuple[str, str]]:
    steps = []
    for lang, body, start in blocks(README.read_text()):
        if lang == "sh":
            steps += [("sh", line) for line in shell_lines(body)]
        elif lang == "python" and not body.lstrip().startswith("# sketch"):
            steps.append(("python", body))
    return steps


def test_the_readme_has_no_placeholder_in_a_runnable_line():
    steps = readme_steps()
    assert len(steps) > 25
    for kind, text in steps:
        if kind == "sh" and not skipped(text):
            assert "..." not in text and not re.search(r"\[--", text), text
    for start in SKIP:  # a skip entry whose line left the README is stale
        assert any(kind == "sh" and text.startswith(start) for kind, text in steps), start


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, corpus, curated_corpus, store, astronaut, grace):
    from lfa.media import write_image

    work = tmp_path_factory.mktemp("readme")
    write_image(work / "photo.jpg", astronaut)
    write_image(work / "a.jpg", astronaut)
    write_image(work / "me.jpg", grace)
    (work / "b_folder").mkdir()
    write_image(work / "b_folder" / "astronaut.png", astronaut)
    write_image(work / "b_folder" / "mirrored.png", np.ascontiguousarray(astronaut[:, ::-1]))
    for name, image in (("eileen", astronaut), ("grace", grace)):
        (work / "people" / name).mkdir(parents=True)
        write_image(work / "people" / name / "a.png", image)
        write_image(work / "people" / name / "b.png", np.ascontiguousarray(image[:, ::-1]))
    shutil.copy(corpus / "speaking_on_screen.mp4", work / "clip.mp4")
    (work / "videos").mkdir()
    for name in ("large_angle_grace", "two_faces"):
        shutil.copy(corpus / f"{name}.mp4", work / "videos" / f"{name}.mp4")
    shutil.copy(corpus / "large_angle_astronaut.mp4", work / "more.mp4")
    (work / "corpus").symlink_to(corpus)
    shutil.copytree(corpus, work / "out" / "corpus")
    shutil.copytree(curated_corpus, work / "run", symlinks=True)
    home = work / "lfa-home"
    (home / "models").mkdir(parents=True)
    cache = store.path("yunet").parent.parent
    for entry in cache.iterdir():
        target = home / "models" / entry.name
        if entry.is_dir():
            target.symlink_to(entry)
        else:
            shutil.copy(entry, target)
    return work


def env(work: Path) -> dict[str, str]:
    src = str(README.parent / "src")
    return {**os.environ, "LFA_HOME": str(work / "lfa-home"), "OMP_NUM_THREADS": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "80"}


@pytest.mark.parametrize("kind,text", readme_steps(), ids=lambda v: v.splitlines()[0][:60])
def test_readme_step_runs_as_written(kind, text, workdir):
    if kind == "sh":
        why = skipped(text)
        if why:
            pytest.skip(why)
        proc = subprocess.run(["bash", "-c", f"set -euo pipefail; {text}"], cwd=workdir, env=env(workdir),
                              capture_output=True, text=True, timeout=600)
    else:
        preamble = "from lfa.face import FaceAnalyzer, AnalyzerConfig\nfrom lfa.media import read_image, iter_frames\n" \
                   "analyzer = FaceAnalyzer()\n"  # what an earlier snippet of the README defined
        proc = subprocess.run([sys.executable, "-c", preamble + text], cwd=workdir, env=env(workdir),
                              capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{text}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
    assert not THIRD_PARTY.search(proc.stderr), proc.stderr[-3000:]
    assert proc.stderr.strip() == "", proc.stderr[-3000:]
