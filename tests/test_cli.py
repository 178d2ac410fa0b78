"""The `lfa` command as a user runs it: output formats and one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lfa.media import write_image, write_video

FACE_KEYS = {"box", "score", "yaw", "pitch", "roll", "landmarks5", "area_ratio", "sharpness", "embedding_model",
             "pose_source", "pose_confidence", "pose_missing_reason"}


def lfa(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lfa", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def photo(tmp_path_factory, astronaut) -> Path:
    path = tmp_path_factory.mktemp("img") / "astronaut.png"
    write_image(path, astronaut)
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory, astronaut) -> Path:
    path = tmp_path_factory.mktemp("vid") / "astronaut.mp4"
    frames = [np.roll(astronaut, 4 * i, axis=1) for i in range(20)]  # 2 s at 10 fps, panning a little
    write_video(path, frames, fps=10)
    return path


def test_faces_json_for_an_image(photo, tmp_path):
    viz = tmp_path / "viz.png"
    proc = lfa("faces", str(photo), "--json", "--viz", str(viz))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    [face] = data["faces"]
    assert set(face) == FACE_KEYS
    assert len(face["box"]) == 4 and len(face["landmarks5"]) == 5 and abs(face["yaw"]) < 15
    assert face["embedding_model"] == "dlib_resnet"
    assert viz.stat().st_size > 10_000


def test_faces_json_for_a_video(video):
    proc = lfa("faces", str(video), "--json", "--fps", "2")
    assert proc.returncode == 0, proc.stderr
    frames = json.loads(proc.stdout)
    assert [f["frame"] for f in frames] == [0, 5, 10, 15]
    assert [f["t"] for f in frames] == pytest.approx([0.0, 0.5, 1.0, 1.5], abs=0.01)
    assert all(len(f["faces"]) == 1 and set(f["faces"][0]) == FACE_KEYS for f in frames)


def test_faces_table_and_contact_sheet(video, tmp_path):
    sheet = tmp_path / "sheet.png"
    proc = lfa("faces", str(video), "--viz", str(sheet))
    assert proc.returncode == 0, proc.stderr
    assert "yaw" in proc.stdout and "4 frames" in proc.stdout
    assert sheet.exists()


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture\n")
    assert_one_line_error(lfa("faces", str(path)), "notes.png")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    assert_one_line_error(lfa("faces", str(path)), "empty")


def test_truncated_mp4(video, tmp_path):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(video.read_bytes()[: video.stat().st_size * 2 // 5])
    assert_one_line_error(lfa("faces", str(path)), "truncated.mp4", "fix:")


def test_missing_file(tmp_path):
    assert_one_line_error(lfa("faces", str(tmp_path / "nope.jpg")), "nope.jpg")


def test_missing_model_names_file_and_fix(photo, tmp_path):
    proc = lfa("faces", str(photo), env={"LFA_HOME": str(tmp_path / "empty-home")})
    assert_one_line_error(proc, "yunet", "face_detection_yunet_2023mar.onnx", "lfa models fetch")


def test_missing_user_model(photo, user_store):
    proc = lfa("faces", str(photo), "--identity", "arcface", env={"LFA_HOME": str(user_store.home)})
    assert_one_line_error(proc, "arcface", "arcface.onnx", "lfa models add arcface")


def test_models_list_and_verify():
    proc = lfa("models", "list", env={"COLUMNS": "250"})
    assert proc.returncode == 0 and "yunet" in proc.stdout and "user-supplied" in proc.stdout
    proc = lfa("models", "verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_faces_with_a_corrupt_model_is_one_line_naming_the_fetch(photo, tmp_path, store):
    """One changed byte in YuNet used to kill `lfa faces` with SIGFPE inside OpenCV."""
    home = tmp_path / "home"
    for name in ("yunet", "face_landmarker", "whenet", "dlib_resnet"):
        dest = home / "models" / name / store.path(name).name
        dest.parent.mkdir(parents=True)
        if name == "yunet":
            data = bytearray(store.path(name).read_bytes())
            data[len(data) // 2] ^= 0xFF
            dest.write_bytes(bytes(data))
        else:
            dest.symlink_to(store.path(name))
    proc = lfa("faces", str(photo), env={"LFA_HOME": str(home)})
    assert_one_line_error(proc, "yunet", "corrupt or changed", "lfa models fetch yunet")
