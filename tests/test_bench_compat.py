"""Compat modes (ConsisID, OpenS2V) equal a direct re-computation of the peers' formulas on the same
embeddings; ArcFace/CurricularFace columns, Face FID and CLIPScore with user-supplied (tiny) models."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pyarrow.parquet as pq
import pytest
from onnx import TensorProto, helper, numpy_helper

from lfa.bench import BenchConfig, run_bench
from lfa.bench import compat as C
from lfa.bench.extract import FrameRecord
from lfa.bench.synthetic import write_test_set
from lfa.media import iter_frames, probe, sample_times
from lfa.registry import ModelStore
from lfa.synth import HeadLibrary
from tests.conftest import OFFLINE_DEFAULTS
from tests.onnx_models import make_arcface_onnx


def make_feature_onnx(path: Path, size: int = 64, dim: int = 12, seed: int = 0) -> Path:
    """A stand-in for Inception: (N, 3, size, size) in [0, 1] -> (N, dim, 1, 1) (conv, ReLU, global pool)."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.normal(size=(dim, 3, 8, 8)).astype(np.float32), "w"),
             numpy_helper.from_array(np.zeros(dim, np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[8, 8], strides=[8, 8]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["pool3"])]
    graph = helper.make_graph(nodes, "tiny_inception",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("pool3", TensorProto.FLOAT, ["N", dim, 1, 1])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def make_tiny_clip(folder: Path) -> Path:
    """A random CLIP in transformers format (32 px images) with a word-level tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerFast

    words = ["<pad>", "<bos>", "<eos>", "<unk>"] + "a person turning their head face woman man the of".split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>",
                                                       special_tokens=[("<bos>", 1), ("<eos>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16, bos_token_id=1, eos_token_id=2,
                         pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=32, patch_size=8),
        projection_dim=16)
    CLIPModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory, store, analyzer):
    import torch

    from lfa.face.nets.irse import IRBackbone

    tmp = tmp_path_factory.mktemp("compat")
    home = ModelStore(tmp / "lfa-home")
    for name in OFFLINE_DEFAULTS:
        home.model_dir(name).mkdir(parents=True)
        (home.model_dir(name) / store.path(name).name).symlink_to(store.path(name))
    home.add("arcface", make_arcface_onnx(tmp / "w600k_r50.onnx"))
    torch.manual_seed(0)
    torch.save(IRBackbone(num_layers=50).state_dict(), tmp / "CurricularFace_Backbone.pth")
    home.add("curricularface", tmp / "CurricularFace_Backbone.pth")
    (tmp / "CurricularFace_Backbone.pth").unlink()
    # 16 frames: OpenS2V's 32 samples repeat each frame twice (computed once, counted twice)
    spec = write_test_set(tmp / "set", HeadLibrary(analyzer), items=("same", "noface"), duration=2.0, fps=8)
    config = BenchConfig(frames=8, compat=("consisid", "opens2v"), inception=make_feature_onnx(tmp / "incep.onnx"),
                         clip=str(make_tiny_clip(tmp / "clip")), store_home=home.home)
    res = run_bench(spec, {"m": spec.parent / "gen"}, tmp / "out", config)
    frames = pq.read_table(tmp / "out" / "frames.parquet").to_pylist()
    return res, frames, spec


def _rows(frames, mode, item="same"):
    return [r for r in frames if r["id"] == item and r["mode"] == mode]


def test_every_available_identity_model_is_scored(run):
    res, _, _ = run
    assert res.config.identities == ("arcface", "curricularface", "dlib") and res.config.primary == "arcface"
    row = {r["id"]: r for r in res.rows}["same"]
    assert any(not math.isnan(row[f"facesim_yaw_{b}"]) for b in ("0_15", "15_30", "30_45", "45_60", "60_90"))
    for col in ("facesim_arc", "facesim_cur", "facesim_dlib", "clipscore", "consisid_facesim_arc",
                "consisid_facesim_cur", "consisid_fid", "consisid_clipscore", "opens2v_facesim_cur"):
        assert col in row and not math.isnan(row[col]), col
    agg = res.aggregates["m"]
    assert agg["face_fid"] >= 0 and not any(k.startswith("fd_") for k in agg)
    # a random ArcFace cannot be calibrated from one person: the headline falls back on dlib's shipped impostors
    assert res.summary["headline"]["identity_model"] == "dlib"
    assert res.summary["feature_network"]["sha256"] and res.summary["clip"]["kind"] == "transformers"


@pytest.mark.parametrize("mode, k", [("consisid", 16), ("opens2v", 32)])
def test_compat_facesim_equals_the_peers_formula(run, mode, k):
    res, frames, spec = run
    n = probe(spec.parent / "gen" / "same.mp4").n_frames
    rows = _rows(frames, mode)
    # quirk 1: endpoint-inclusive truncated linspace (32 samples of 30 frames repeat some)
    assert [r["frame"] for r in rows] == np.linspace(0, n - 1, k, dtype=int).tolist()
    [ref] = _rows(frames, "reference_compat")
    row = {r["id"]: r for r in res.rows}["same"]
    for name, col in (("arc", "arcface"), ("cur", "curricularface"), ("dlib", "dlib")):
        assert col
        r = np.array(ref[f"emb_{name}"], np.float64)
        scores = []
        for fr in rows:
            if not fr["detected"]:
                continue
            e = np.array(fr[f"emb_{name}"], np.float64)
            score = max(0.0, float(e @ r / np.linalg.norm(e) / np.linalg.norm(r)))
            if mode == "opens2v" and name == "cur" and score == 0.0:
                continue
            scores.append(score)
        expected = float(np.mean(scores)) if scores else 0.0
        assert row[f"{mode}_facesim_{name}"] == pytest.approx(expected, abs=1e-6), name
    if mode == "consisid":
        ref_feat = np.array(ref["feat"], np.float64)
        fids = [float(np.sum((np.array(fr["feat"]) - ref_feat) ** 2)) for fr in rows if fr["detected"]]
        assert row["consisid_fid"] == pytest.approx(np.mean(fids), rel=1e-6)


def test_compat_on_a_video_without_a_face_scores_zero(run):
    res, frames, _ = run
    row = {r["id"]: r for r in res.rows}["noface"]
    assert row["detection_rate"] == 0.0
    assert row["consisid_facesim_arc"] == 0.0 and row["consisid_fid"] == 0.0 and row["opens2v_facesim_cur"] == 0.0
    padded = _rows(frames, "consisid", "noface")
    assert len(padded) == 16 and all(r["padded"] and not r["detected"] for r in padded)


def _clip_logits(folder: Path, images: list[np.ndarray], text: str) -> np.ndarray:
    """logits_per_image of transformers' CLIPModel with its own image processor (independent of lfa)."""
    import torch
    import transformers

    model = transformers.CLIPModel.from_pretrained(folder).eval()
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    proc_cls = getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)
    proc = proc_cls(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    pixels = proc(images=images, return_tensors="pt")["pixel_values"]
    tokens = tok([text], padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=pixels)
        return out.logits_per_image[:, 0].double().numpy(), float(model.logit_scale.exp())


def test_clipscores_equal_a_direct_computation(run):
    res, _, spec = run
    video = spec.parent / "gen" / "same.mp4"
    folder = Path(res.config.clip)
    row = {r["id"]: r for r in res.rows}["same"]
    prompt = res.items[0].prompt
    info = probe(video)
    # ConsisID: int(i * n / 16), frames in BGR order, mean of logits_per_image
    idx = [int(i * info.n_frames / 16) for i in range(16)]
    bgr = [np.ascontiguousarray(f.image[:, :, ::-1]) for f in iter_frames(video, indices=idx)]
    logits, _ = _clip_logits(folder, bgr, prompt)
    assert row["consisid_clipscore"] == pytest.approx(float(logits.mean()), abs=1e-4)
    rgb_logits, _ = _clip_logits(folder, [np.ascontiguousarray(im[:, :, ::-1]) for im in bgr], prompt)
    assert abs(float(rgb_logits.mean()) - row["consisid_clipscore"]) > 1e-3  # the channel-order quirk matters
    # lfa: the run's sampled frames (RGB), 100 * max(cos, 0)
    rgb = [f.image for f in iter_frames(video, times=sample_times(info.duration_s, n=8))]
    logits, scale = _clip_logits(folder, rgb, prompt)
    assert row["clipscore"] == pytest.approx(float(np.mean(100 * np.maximum(logits / scale, 0))), abs=1e-3)


def _rec(emb: list[float], detected: bool = True) -> FrameRecord:
    e = np.array(emb, np.float32)
    return FrameRecord(frame=0, t=0.0, detected=detected,
                       embeddings={"arcface": e, "curricularface": e, "dlib": e} if detected else {})


def test_compat_aggregation_rules_on_hand_made_embeddings():
    ref = _rec([1.0, 0.0])
    frames = [_rec([0.5, math.sqrt(0.75)]),  # cos 0.5
              _rec([-0.6, 0.8]),  # cos -0.6 -> clipped to 0
              _rec([0.0, 1.0]),  # cos 0
              _rec([0.0, 0.0], detected=False)]  # no face: skipped by both peers
    ids = ("arcface", "curricularface", "dlib")
    consisid = C.scores("consisid", ref, frames, None, None, ids)
    assert consisid["consisid_facesim_arc"] == pytest.approx(0.5 / 3)
    assert consisid["consisid_facesim_cur"] == pytest.approx(0.5 / 3)
    assert consisid["consisid_frames_scored"] == 3
    opens2v = C.scores("opens2v", ref, frames, None, None, ids)
    assert opens2v["opens2v_facesim_cur"] == pytest.approx(0.5)  # zeros left out for CurricularFace ...
    assert opens2v["opens2v_facesim_arc"] == pytest.approx(0.5 / 3)  # ... but not for ArcFace (their typo)
    none = C.scores("consisid", ref, [_rec([0, 0], detected=False)], None, None, ids)
    assert none["consisid_facesim_arc"] == 0.0
    assert math.isnan(C.scores("consisid", _rec([0, 0], detected=False), frames, None, None, ids)
                      ["consisid_facesim_arc"])
    clip = C.scores("consisid", ref, frames, [FrameRecord(0, 0.0, clip_cos=c) for c in (0.2, -0.1)], 100.0, ids)
    assert clip["consisid_clipscore"] == pytest.approx(5.0)  # mean of 100 * cos, no clipping


def test_peer_frame_indices_and_padding():
    assert C.linspace_indices(49, 16).tolist() == np.linspace(0, 48, 16, dtype=int).tolist()
    assert C.linspace_indices(49, 16)[[0, -1]].tolist() == [0, 48]
    assert C.consisid_clip_indices(49).tolist() == [int(i * 49 / 16) for i in range(16)]
    image = np.zeros((100, 60, 3), np.uint8)
    padded, (left, top) = C.pad_grey(image)
    assert padded.shape == (150, 90, 3) and (left, top) == (15, 25)
    assert padded[0, 0].tolist() == [128, 128, 128] and padded[25, 15].tolist() == [0, 0, 0]


def test_open_clip_format_loads_weights_safely_and_scores(tmp_path, monkeypatch):
    """The open_clip path (open_clip itself is not a dependency): a stand-in module with open_clip's API."""
    import sys
    import types

    import torch
    from safetensors.torch import save_file

    from lfa.bench.clipscore import CLIP_MEAN, CLIP_STD, ClipScorer, preprocess

    class Visual(torch.nn.Module):
        image_size = 16

        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(3 * 16 * 16, 8)

    class FakeClip(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = Visual()
            self.text = torch.nn.Embedding(50, 8)
            self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(100.0)))

        def encode_image(self, x):
            return self.visual.proj(x.flatten(1))

        def encode_text(self, tokens):
            return self.text(tokens).mean(1)

    fake = types.ModuleType("open_clip")
    fake.create_model = lambda arch, pretrained=None: FakeClip()
    fake.get_tokenizer = lambda arch: (lambda texts: torch.tensor([[len(t) % 50, 1, 2] for t in texts]))
    monkeypatch.setitem(sys.modules, "open_clip", fake)
    torch.manual_seed(0)
    trained = FakeClip()
    save_file(trained.state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    scorer = ClipScorer(f"open_clip:Fake:{tmp_path / 'open_clip_model.safetensors'}")
    assert scorer.kind == "open_clip" and scorer.size == 16 and scorer.logit_scale == pytest.approx(100.0)
    images = [np.full((20, 30, 3), v, np.uint8) for v in (30, 200)]
    cos = scorer.cosines(images, "a person")
    with torch.no_grad():
        img = trained.encode_image(torch.from_numpy(preprocess(images, 16, CLIP_MEAN, CLIP_STD)))
        txt = trained.encode_text(torch.tensor([[len("a person") % 50, 1, 2]]))
        expected = torch.nn.functional.cosine_similarity(img, txt).numpy()
    assert cos == pytest.approx(expected, abs=1e-5)  # the checkpoint's weights, not the fresh model's
    with pytest.raises(Exception, match="open_clip:ARCH:FILE"):
        ClipScorer("open_clip:only-arch")


def test_compat_reads_the_reference_without_exif_orientation_like_the_peers(tmp_path, astronaut):
    from PIL import Image

    from lfa.media import read_image

    stored = astronaut[:, :400]  # not square, so a rotation shows in the shape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    Image.fromarray(stored).save(tmp_path / "ref.jpg", exif=exif.tobytes(), quality=95)
    assert C.read_reference(tmp_path / "ref.jpg").shape == stored.shape  # PIL's .convert("RGB"): as stored
    assert read_image(tmp_path / "ref.jpg").shape == (stored.shape[1], stored.shape[0], 3)  # lfa: upright
