"""Whether training can tell that the adapter uses identity: the held-out validation split and its fallbacks,
the identity metrics (val_id_gain with its interval over people, val_id_sensitivity, per yaw bucket), the
face_shuffle control, and normalised tiny latents. Mechanics only; what the tiny model learns is in
docs/MODEL.md (bench/identity_flow.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from lfa.errors import ConfigError
from lfa.train.config import load_config
from lfa.train.data import ReferenceFrame, Sample
from lfa.train.validation import bootstrap_interval, other_identity, split_samples

def sample(clip: str, cluster: int, start: float, yaw: float = 0.0) -> Sample:
    ref = ReferenceFrame(start, (0.0,) * 10, yaw, 0.0, 0.0)
    return Sample(clip, f"{clip}.mp4", start, 8.0, 5, (32, 32), "", cluster, yaw, (ref,), 0.0)


def windows(clip: str, cluster: int, n: int = 4) -> list[Sample]:
    return [sample(clip, cluster, 0.625 * i, yaw=20.0 * i) for i in range(n)]


def test_clip_split_holds_out_clips_of_people_with_two_clips():
    samples = windows("a1", 0) + windows("a2", 0) + windows("a3", 0) + windows("b1", 1)
    split = split_samples(samples, val_split="clip", val_fraction=0.1, val_samples=8)
    held = {samples[i].clip_id for i in split.val}
    trained = {samples[i].clip_id for i in split.train}
    assert split.kind == "clip" and len(held) == 1 and held < {"a1", "a2", "a3"}  # ceil(0.1 x 3) = 1 clip of a
    assert not held & trained and "b1" in trained  # b has one clip: it stays in training
    assert len(split.val) == 4 and not split.notes
    again = split_samples(samples, val_split="clip", val_fraction=0.1, val_samples=8)
    assert again == split  # deterministic


def test_identity_split_holds_out_whole_people_and_falls_back():
    samples = windows("a1", 0) + windows("a2", 0) + windows("b1", 1) + windows("c1", 2)
    split = split_samples(samples, val_split="identity", val_fraction=0.3, val_samples=3)
    held_people = {samples[i].cluster_id for i in split.val}
    assert split.kind == "identity" and len(held_people) == 1 and len(split.val) == 3
    assert not held_people & {samples[i].cluster_id for i in split.train}
    one_person = split_samples(windows("a1", 0) + windows("a2", 0), val_split="identity")
    assert one_person.kind == "clip" and "needs 2 identity clusters" in one_person.notes[0]


def test_without_two_clips_of_a_person_the_tail_of_every_clip_is_held_out():
    samples = windows("a1", 0, n=6) + windows("b1", 1, n=6)  # windows of 0.5 s every 0.625 s
    split = split_samples(samples, val_samples=8)
    assert split.kind == "tail" and "last window of every clip" in split.notes[0]
    assert sorted(samples[i].start for i in split.val) == [3.125, 3.125]
    for i in split.train:  # nothing trained on overlaps a held-out window
        assert samples[i].start + 4 / 8.0 < 3.125


def test_the_other_identity_is_another_cluster_at_the_closest_yaw():
    samples = windows("a1", 0) + windows("b1", 1) + [sample("c1", 2, 0.0, yaw=43.0)]  # yaws 0, 20, 40, 60
    assert other_identity(samples, 2) == 6  # a1 at 40 degrees: b1's window at 40, not c1 at 43
    assert other_identity(samples, 8) == 2  # c1 at 43: the first of the two windows at 40
    assert other_identity(samples, 5) == 1  # b1 at 20: a1 at 20, never another b1 window
    assert other_identity(windows("a1", 0), 0) is None


def test_bootstrap_interval_is_over_people_not_windows():
    tight = bootstrap_interval({0: [1.0] * 50, 1: [1.0] * 50})
    assert tight == (1.0, 1.0)
    spread = bootstrap_interval({0: [0.0] * 50, 1: [2.0] * 50, 2: [1.0]})  # 3 people, many windows each
    assert spread[0] < 0.5 and spread[1] > 1.5  # an interval over the 101 windows would be far narrower


def test_validation_samples_is_an_error_naming_the_new_keys():
    with pytest.raises(ConfigError, match="val_samples.*val_noise_draws.*val_fraction.*val_split"):
        load_config(sets=["validation_samples=2"])
    with pytest.raises(ConfigError, match="val_split"):
        load_config(sets=["val_split=people"])


def test_tiny_base_latents_are_normalised(tiny_base):
    """`lfa model init` measures latents_mean/std on the packages' sample photos: normalised latents of
    those photos have a per-channel std near 1 (a random VAE's raw latents: about 0.1)."""
    from lfa.model.vae import encode_images
    from lfa.samples import sample_photo
    from lfa.wan.base import load_base

    wan = load_base(tiny_base, parts=("vae",))
    assert all(s < 0.5 for s in wan.vae.config.latents_std)
    photos = torch.stack([torch.from_numpy(sample_photo(n)).permute(2, 0, 1).float() / 127.5 - 1
                          for n in ("astronaut",)])
    small = torch.nn.functional.interpolate(photos, size=(32, 32), mode="area")
    std = encode_images(wan.vae, small).flatten(2).std(dim=2)
    assert float(std.min()) > 0.4 and float(std.max()) < 2.5


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_identity_metrics_at_every_validation_step_and_the_shuffle_control(tiny_base, two_people,
                                                                            tmp_path, torch_one_thread):
    from lfa.wan.base import load_base
    from lfa.train.trainer import train

    sets = ["max_steps=4", "val_every=2", "learning_rate=1e-2", "val_samples=3", "val_noise_draws=1",
            "checkpoint_every=100", "tensorboard=false"]
    defaults = load_base(tiny_base, parts=()).train_defaults
    notices: list[str] = []
    train(tiny_base, two_people, tmp_path / "own", load_config(defaults, sets=sets), on_notice=notices.append)
    rows = [r for r in metrics(tmp_path / "own") if "val_loss" in r]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert rows[0]["val_split"] == "clip" and rows[0]["val_windows"] == 3
    for r in rows:
        for key in ("val_loss_other_face", "val_id_gain", "val_id_gain_lo", "val_id_gain_hi", "val_id_sensitivity"):
            assert np.isfinite(r[key]), key
        assert r["val_id_gain_lo"] <= r["val_id_gain"] <= r["val_id_gain_hi"]
        assert any(k.startswith("val_id_gain_yaw") for k in r)
    assert rows[0]["val_id_gain"] == 0.0 and rows[0]["val_id_sensitivity"] == 0.0  # face attention starts at 0
    assert rows[-1]["val_id_sensitivity"] > 0  # after training, the output responds to the face
    shuffled = tmp_path / "shuffled"
    train(tiny_base, two_people, shuffled, load_config(defaults, sets=[*sets, "face_shuffle=true"]))
    own_losses = [r["loss"] for r in metrics(tmp_path / "own") if "loss" in r]
    shuffled_losses = [r["loss"] for r in metrics(shuffled) if "loss" in r]
    assert own_losses[0] == shuffled_losses[0]  # the face attention starts at zero: faces do not matter yet
    assert own_losses[1:] != shuffled_losses[1:]  # then they do, and the control's are other people's
    assert not notices  # a clip split, 2 people, normalised latents: nothing to say


def test_one_identity_skips_the_identity_metrics_and_refuses_the_control(tiny_base, two_people, tmp_path,
                                                                         torch_one_thread):
    from lfa.wan.base import load_base
    from lfa.train.trainer import train

    one = tmp_path / "one"
    one.mkdir()
    rows = pq.read_table(two_people / "manifest.parquet").to_pylist()
    pq.write_table(pq.read_table(two_people / "manifest.parquet").take([0]), one / "manifest.parquet")
    (one / "frames.parquet").symlink_to((two_people / "frames.parquet").resolve())
    defaults = load_base(tiny_base, parts=()).train_defaults
    sets = ["max_steps=1", "val_samples=2", "val_noise_draws=1", "tensorboard=false"]
    notices: list[str] = []
    train(tiny_base, one, tmp_path / "out", load_config(defaults, sets=sets), on_notice=notices.append)
    assert any("last window of every clip" in n for n in notices)
    assert any("identity metrics" in n and "skipped" in n for n in notices)
    first = metrics(tmp_path / "out")[0]
    assert first["val_split"] == "tail" and "val_id_gain" not in first and len(rows) == 3
    with pytest.raises(ConfigError, match="face_shuffle needs at least 2 identities"):
        train(tiny_base, one, tmp_path / "out2", load_config(defaults, sets=[*sets, "face_shuffle=true"]))


def test_the_aligner_trains_on_its_own_pairs_at_batch_size_1(tiny_base, two_people, tmp_path, torch_one_thread):
    """FaithfulFaces trains the aligner on its own batch of pose pairs: at batch_size=1 every step has an
    alignment loss over aligner_batch_size pairs, and it falls."""
    from lfa.wan.base import load_base
    from lfa.train.trainer import train

    sets = ["adapter_preset=faithfulfaces", "lora_rank=4", "max_steps=60", "batch_size=1", "aligner_batch_size=32",
            "learning_rate=1e-3", "val_every=1000", "val_samples=1", "val_noise_draws=1", "checkpoint_every=1000",
            "tensorboard=false"]
    train(tiny_base, two_people, tmp_path / "out", load_config(load_base(tiny_base, parts=()).train_defaults,
                                                                sets=sets))
    steps = [r for r in metrics(tmp_path / "out") if "loss" in r]
    assert len(steps) == 60 and all("alignment" in r and r["alignment_pairs"] == 32 for r in steps)
    assert all(0 < r["aligner_temperature"] < 1 for r in steps)
    assert np.mean([r["alignment"] for r in steps[-10:]]) < np.mean([r["alignment"] for r in steps[:10]])
    pool = json.loads(next((tmp_path / "out" / "cache").glob("*/aligner/pool.json")).read_text())
    assert pool["aligner_identities"] == 2 and pool["aligner_faces"] > 2 * pool["aligner_clips"]


def test_aligner_pairs_are_one_clip_two_poses_and_never_negatives_of_their_own_person():
    from lfa.model.aligner import PoseSharedAligner
    from lfa.train.aligner_data import ClipFaces, FacePool, draw_pairs, pose_pairs

    angles = {c: torch.tensor([[float(y), 0.0, 0.0] for y in range(-60, 61, 10)]) for c in "abc"}
    def marked(clip: int) -> torch.Tensor:  # token 0: the clip, token 1: the face
        tokens = torch.zeros(13, 1, 8)
        tokens[:, 0, 0], tokens[:, 0, 1] = clip, torch.arange(13)
        return tokens.half()

    clips = [ClipFaces(c, cluster, {"identity": marked(i)}, angles[c], pose_pairs(angles[c], 30.0))
             for i, (c, cluster) in enumerate([("a", 0), ("b", 0), ("c", 1)])]  # a and b: one person
    pool = FacePool(clips, 16)
    a, b, groups = draw_pairs(pool, 64, seed=0, step=1)
    again = draw_pairs(pool, 64, seed=0, step=1)
    assert torch.equal(a.tokens["identity"], again[0].tokens["identity"])  # from (seed, step) alone
    assert not torch.equal(a.tokens["identity"], draw_pairs(pool, 64, seed=0, step=2)[0].tokens["identity"])
    assert bool(((a.angles - b.angles).abs().amax(dim=1) >= 30).all())  # the pose rule, no pair dropped
    clip_a, clip_b = a.tokens["identity"][:, 0, 0], b.tokens["identity"][:, 0, 0]
    assert torch.equal(clip_a, clip_b) and len(set(clip_a.tolist())) == 3  # both faces of a pair: one clip
    assert groups.tolist() == [[0, 0, 1][int(c)] for c in clip_a]  # each pair's person
    assert not torch.equal(a.tokens["identity"][:, 0, 1], b.tokens["identity"][:, 0, 1])
    aligner = PoseSharedAligner(8, dictionary_size=4, pose_embed_dim=4)
    x, y = torch.randn(6, 8), torch.randn(6, 8)
    people = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = aligner.logit_scale.exp() * torch.nn.functional.normalize(x, dim=-1) @ \
        torch.nn.functional.normalize(y, dim=-1).t()
    same = (people[:, None] == people[None, :]) & ~torch.eye(6, dtype=torch.bool)
    masked = logits.masked_fill(same, float("-inf"))  # a row's own person is neither positive nor negative
    labels = torch.arange(6)
    expected = 0.5 * (torch.nn.functional.cross_entropy(masked, labels)
                      + torch.nn.functional.cross_entropy(masked.t(), labels))
    assert torch.isclose(aligner.info_nce(x, y, groups=people), expected)
    assert not torch.isclose(aligner.info_nce(x, y), expected)  # without groups they would be negatives
