"""The `lfa` command as a user runs it: output formats and one-line errors for bad input."""

import json
import os
import re
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


# ---------------------------------------------------------------- first contact: --help, configs, progress

def _commands() -> list[tuple[list[str], object]]:
    """Every command and group of `lfa` as (words, click command), `lfa curate export` included."""
    import typer

    from lfa.cli import app

    root = typer.main.get_command(app)
    found = []

    def walk(words: list[str], command) -> None:
        found.append((words, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk([*words, name], sub)

    walk([], root)
    _, export, _ = root.resolve_command(root.context_class(root), ["curate", "export"])
    found.append((["curate", "export"], export))
    return found


def _params(command) -> list:
    return [*command.params, command.get_help_option(command.context_class(command))]


def test_every_option_and_argument_has_help():
    commands = _commands()
    assert len(commands) > 20 and ["curate", "export"] in [w for w, _ in commands]
    missing = [f"lfa {' '.join(words)} {p.opts[0] if p.opts else p.name}" for words, command in commands
               for p in _params(command) if not (p.help or "").strip()]
    assert missing == []


def test_every_pose_option_defaults_to_fused():
    poses = {" ".join(words): p.default for words, command in _commands() for p in command.params if p.name == "pose"}
    assert {"faces", "identity calibrate", "identity compare", "bench"} <= set(poses)
    assert set(poses.values()) == {"fused"}, poses


def test_help_pages_fit_80_columns_with_readable_value_labels():
    from typer.testing import CliRunner

    from lfa.cli import app

    runner = CliRunner()
    for words, _ in _commands():
        result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "80"})
        page = f"lfa {' '.join(words)} --help:\n{result.output}"
        assert result.exit_code == 0 and "Usage:" in result.output, page
        assert "<" not in result.output, page  # typer's type labels: <bool>, <list[Path]>
        assert max(len(line) for line in result.output.splitlines()) <= 80, page
        assert "…" not in result.output, page  # a column cut short
    curate = runner.invoke(app, ["curate", "--help"], env={"COLUMNS": "80"}).output
    assert "INPUTS" in curate and "PATH..." in curate and "KEY=VALUE" in curate


def test_help_shows_no_third_party_line():
    proc = lfa("synth", "render", "--help", env={"COLUMNS": "80"})
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip().startswith("Usage:")
    assert "turn-away" in proc.stdout  # the trajectories come from the code



@pytest.mark.parametrize("suffix", [".json", ".yaml", ".txt"])
def test_config_files_are_json_or_yaml_for_curate_train_and_the_adapter(tmp_path, suffix):
    import yaml

    from lfa.curate.config import CurateConfig
    from lfa.model.config import AdapterConfig
    from lfa.train.config import load_config

    def write(name: str, data: dict) -> Path:
        path = tmp_path / f"{name}{suffix}"
        path.write_text(json.dumps(data) if suffix == ".json" else yaml.safe_dump(data))
        return path

    assert CurateConfig.load(write("curate", {"tracking": {"sample_fps": 2}}), None).tracking.sample_fps == 2
    train = load_config(config_file=write("train", {"max_steps": 7, "lora_rank": 4}))
    assert train.max_steps == 7 and train.adapter_config().lora_rank == 4
    assert AdapterConfig.load(write("adapter", {"lora_rank": 4})).lora_rank == 4


def test_a_config_file_that_is_neither_json_nor_yaml_is_one_line(tmp_path, video):
    bad = tmp_path / "bad.yaml"
    bad.write_text('{"tracking": {"sample_fps": 2}\nkey: [unclosed\n')
    proc = lfa("curate", str(video), "--out", str(tmp_path / "out"), "--config", str(bad))
    assert_one_line_error(proc, "bad.yaml", "neither JSON", "nor YAML", "fix:")
    (tmp_path / "list.json").write_text("[1, 2]")
    from lfa.curate.config import CurateConfig
    from lfa.errors import ConfigError

    with pytest.raises(ConfigError, match="not KEY: VALUE pairs"):
        CurateConfig.load(tmp_path / "list.json")
    with pytest.raises(ConfigError, match="config file not found"):
        CurateConfig.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize(("load", "typo", "suggestion"), [
    ("curate", "tracking.sampel_fps=2", "did you mean tracking.sample_fps?"),
    ("curate", "speech.min_av_scor=0.5", "did you mean speech.min_av_score?"),
    ("train", "max_step=5", "did you mean max_steps?"),
    ("train", "lora_rnk=4", "did you mean lora_rank?"),
    ("train", "adapter.lora_rnk=4", "did you mean lora_rank?"),
    ("adapter", "every_k_block=1", "did you mean every_k_blocks?"),
])
def test_an_unknown_key_names_the_closest_valid_one(load, typo, suggestion):
    from lfa.curate.config import CurateConfig
    from lfa.errors import ConfigError
    from lfa.model.config import AdapterConfig, parse_overrides
    from lfa.train.config import load_config

    loaders = {"curate": lambda: CurateConfig.load(None, [typo]), "train": lambda: load_config(sets=[typo]),
               "adapter": lambda: AdapterConfig(**parse_overrides([typo]))}
    with pytest.raises(ConfigError) as info:
        loaders[load]()
    assert info.value.fix.startswith(suggestion), info.value.fix
    assert repr(typo.split("=")[0].removeprefix("adapter.")) in info.value.message
    key = suggestion.removeprefix("did you mean ").removesuffix("?").split(".")[-1]
    assert re.search(rf"keys[^:]*: .*\b{key}\b", info.value.fix)  # then every valid key


def test_synth_corpus_and_demo_show_a_transient_bar_then_a_summary(monkeypatch, tmp_path):
    """Not one line per clip: the bar goes away, a summary line stays."""
    import lfa.demo
    import lfa.synth
    from typer.testing import CliRunner

    from lfa.cli import app

    names = list(lfa.synth.STANDARD_CORPUS)

    def build_corpus(directory, *, on_clip, **_):
        for name in names:
            on_clip(name)
        return [directory / f"{name}.mp4" for name in names]

    def run_demo(out_dir, *, on_clip, on_stage):
        for stage in lfa.demo.STAGES:
            on_stage(stage)
            if stage == "corpus":
                build_corpus(out_dir / "corpus", on_clip=on_clip)
        return {"curation report": out_dir / "curated" / "report.html"}

    monkeypatch.setattr(lfa.synth, "build_corpus", build_corpus)
    monkeypatch.setattr(lfa.demo, "run_demo", run_demo)
    runner = CliRunner()
    corpus = runner.invoke(app, ["synth", "corpus", "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert corpus.exit_code == 0, corpus.output
    assert [line for line in corpus.output.splitlines() if names[-1] in line] == [
        line for line in corpus.output.splitlines() if line.startswith("│ " + names[-1])]  # its table row only
    assert corpus.output.rstrip().splitlines()[-1] == f"{len(names)} clips (NAME.mp4 + NAME.json) in {tmp_path}"
    demo = runner.invoke(app, ["demo", "--out", str(tmp_path)], env={"COLUMNS": "200"})
    assert demo.exit_code == 0, demo.output
    assert [line.strip() for line in demo.output.splitlines() if line.strip()] == [
        f"demo: {len(names)} clips rendered and curated, the tiny base trained, videos generated and scored",
        f"curation report    {tmp_path / 'curated' / 'report.html'}"]


def test_generate_checks_the_face_photo_before_it_loads_the_models(tmp_path):
    """A photo without a face is said at once, before the base and the adapter are read (seconds, not 13 s)."""
    blank = tmp_path / "blank.jpg"
    write_image(blank, np.zeros((64, 64, 3), np.uint8))
    proc = lfa("generate", "--base", str(tmp_path), "--adapter", str(tmp_path / "no-adapter"),  # neither loads
               "--face", str(blank), "--out", str(tmp_path / "v.mp4"))
    assert_one_line_error(proc, "face image 1: no face found")
