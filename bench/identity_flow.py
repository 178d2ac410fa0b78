"""Does identity flow from the face photos to the output? A miniature of the papers' ablation tables.

    python bench/identity_flow.py [--work out/identity_flow] [--steps 1500] [--quick]

Stages (each cached under ``--work``; a rerun redoes only what is missing):

1. ``photos``: every face photo the registry packages ship (bench/identity_calibration.py ``photos``:
   10 people, Obama x3); ``render``: ``--clips`` lfa.synth clips per person, clip C of every person with the
   same trajectory, backdrop and light (the *slot*: the face is all that differs between people), Obama's
   clips cycling over his three photos; ``curate``: ``lfa curate`` defaults (a person it splits into
   several identity clusters is merged by the renders' ground truth, since the trainer holds out and swaps
   by cluster); ``base``: ``lfa model init --preset tiny``.
2. ``train``: ``lfa.train.trainer.train`` for each preset and for the controls (``face_shuffle=true``), the
   same steps, seed and data each; ``val_split=clip`` (held-out clips of known people) and, for ``cofe`` and
   its control, ``val_split=identity`` (held-out people). Besides the trainer's val_id_gain (swap: another
   person's window closest in yaw), a *same-slot* swap gain: every other person's window of the same slot
   and time (same backdrop, light and yaw), so that only who the person is changes.
3. ``ceiling``: on the held-out windows, the flow loss at pure noise (sigma = 1, where the loss of
   predicting ``noise - m`` is MSE(x0, m)) of a model that knows only the person's mean latent, against one
   that knows the swapped person's, and the global mean; over the whole window or on the face's latent
   cells only; no mean sees the held-out clip's slot.
4. ``generate``: ``lfa.generate.pipeline.IdentityGenerator`` with each person's photo, the same seed and
   prompt, default guidance and ``--id-scale``: generated latents' relative mean abs difference and
   frames' mean abs pixel difference for every pair of people (interval: bootstrap over people of each
   person's mean difference to the others), Obama's photo pairs (same person), and the held-out people.

Writes ``results.json`` and ``results.md`` (the tables in docs/MODEL.md) under ``--work``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from identity_calibration import PHOTOS, cmd_photos, photo_path  # noqa: E402

TRAJECTORIES = ("yaw-sweep", "nod-and-turn", "turn-away", "profile-sweep")
PRESETS = ("cofe", "mofe", "faithfulfaces", "mv2id")
PROMPT = "a video of a person face turns left right"
SAME_PERSON = "obama"
# what a model knowing only the person's mean latent gains (flow loss at sigma = 1): over the whole window,
# or on the face's latent cells only (the global mean elsewhere); against the swapped person's mean, or the
# global mean
CEILINGS = ("vs_other_person", "vs_global_mean", "face_vs_other_person", "face_vs_global_mean")


def people() -> dict[str, list[tuple[str, tuple | None]]]:
    """identity -> [(photo file, crop)], in PHOTOS order."""
    out: dict[str, list] = {}
    for identity, name, crop in PHOTOS:
        out.setdefault(identity, []).append((name, crop))
    return out


def slot(sample) -> str:
    """A clip's index among its person's renders (``WHO__C``): clip C of every person shares trajectory,
    backdrop and light."""
    return sample.clip_id.split("__")[1].split("-")[0]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------- data
def photo_files(work: Path) -> dict[str, list[str]]:
    """identity -> photo paths (sample names for the packages' own photos), fetched once."""
    photos, crops = work / "photos", work / "crops"
    if not (photos / "obama3.jpg").is_file():
        cmd_photos(photos)
    crops.mkdir(parents=True, exist_ok=True)
    return {who: [_at_most(photo_path(photos, crops, who, name, crop), crops) for name, crop in files]
            for who, files in people().items()}


def _at_most(photo: str, crops: Path, side: int = 640) -> str:
    """The photo, shrunk to ``side`` pixels on its longer side (a face filling a 940-pixel frame, "tongue",
    is not detected at full size)."""
    import cv2

    from lfa.media import read_image, write_image

    if not Path(photo).is_file():
        return photo  # a sample name
    image = read_image(photo)
    if max(image.shape[:2]) <= side:
        return photo
    out = crops / f"{Path(photo).stem}_{side}.png"
    if not out.is_file():
        scale = side / max(image.shape[:2])
        write_image(out, cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    return str(out)


def render(work: Path, photos: dict[str, list[str]], clips: int, duration: float, size: int) -> Path:
    from lfa.synth import ClipSpec, HeadLibrary, render_clip

    folder = work / "videos"
    heads = HeadLibrary()
    for who, files in photos.items():
        for c in range(clips):
            out = folder / f"{who}__{c}.mp4"
            if out.is_file():
                continue
            # clip c of every person shares trajectory, backdrop and light (seed c): the face is all that
            # differs between people, so a person's clips say nothing about a held-out clip's backdrop
            spec = ClipSpec(files[c % len(files)], TRAJECTORIES[c % len(TRAJECTORIES)], duration, fps=16.0,
                            width=size, height=size, audio_stream=False, seed=1 + c,
                            background="photo" if c % 3 else "field")
            render_clip(spec, out, heads)
            log(f"rendered {out.name}")
    return folder


def curate(work: Path, videos: Path) -> Path:
    from lfa.curate.run import curate as run_curate

    run = work / "curated"
    summary = run_curate([videos], run, executor="local", workers=1, report=False)
    log(f"curated: {summary.accepted_clips} clips accepted from {summary.inputs} videos")
    return run


def base(work: Path, size: int = 32) -> Path:
    """``lfa model init --preset tiny``; for another training ``size``, a copy whose ``latents_mean`` /
    ``latents_std`` are re-measured at that size (the random VAE's latent statistics depend on it: measured at
    32 px, 64 px latents have per-channel std 1.6-4.4), as the trainer's warning asks."""
    import shutil

    from lfa.wan.base import init_tiny_base, latent_statistics, load_base

    folder = work / "wan-tiny"
    if not (folder / "model_index.json").is_file():
        init_tiny_base(folder)
    if size == 32:
        return folder
    sized = work / f"wan-tiny-{size}"
    if not (sized / "model_index.json").is_file():
        shutil.rmtree(sized, ignore_errors=True)
        shutil.copytree(folder, sized)
        mean, std = latent_statistics(load_base(sized, parts=("vae",)).vae, size=size)
        config = json.loads((sized / "vae" / "config.json").read_text())
        (sized / "vae" / "config.json").write_text(json.dumps({**config, "latents_mean": mean, "latents_std": std},
                                                              indent=2) + "\n")
    return sized


def standardise_on_data(args: argparse.Namespace, wan: Path, data: Path) -> None:
    """The photos' statistics do not standardise 64x64x9 video latents of the renders (per-channel std
    2.0-5.1 after them): cache the data once, then rescale ``latents_mean``/``latents_std`` of the sized base
    copy by the cached latents' own per-channel mean and std (the cache is rebuilt for the new base)."""
    import torch

    from lfa.wan.base import load_base
    from lfa.train.cache import load_shard
    from lfa.train.config import load_config
    from lfa.train.trainer import train

    marker = wan / "standardised_on_data"
    if marker.is_file():
        return
    run = dict(name="x", preset="cofe", split="clip", shuffle=False)
    out = args.work / f"stats-{args.train_size}"
    result = train(wan, data, out, load_config(load_base(wan, parts=()).train_defaults, sets=train_sets(args, run)),
                   cache_only=True)
    latents = torch.cat([load_shard(p, result.cache_dir.name)["latents"].flatten(1)
                         for p in sorted(result.cache_dir.glob("*.safetensors"))], dim=1).double()
    m, sd = latents.mean(1), latents.std(1)
    config = json.loads((wan / "vae" / "config.json").read_text())
    old_mean, old_std = torch.tensor(config["latents_mean"]).double(), torch.tensor(config["latents_std"]).double()
    config.update(latents_mean=[round(float(v), 6) for v in old_mean + old_std * m],
                  latents_std=[round(float(v), 6) for v in old_std * sd])
    (wan / "vae" / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    marker.write_text(json.dumps({"cached_std_before": [float(v) for v in sd],
                                  "cached_mean_before": [float(v) for v in m]}))
    log(f"re-standardised {wan.name} on the data: cached per-channel std was {[round(float(v), 2) for v in sd]}")


def clusters(run: Path) -> tuple[dict[str, int], dict[str, set[int]]]:
    """identity (from the clip's file name) -> the smallest of curate's cluster_ids of its clips, and all of them."""
    import pyarrow.parquet as pq

    rows = pq.read_table(run / "manifest.parquet").to_pylist()
    by_who: dict[str, set[int]] = {}
    for r in rows:
        by_who.setdefault(Path(r["source"]).stem.split("__")[0], set()).add(int(r["cluster_id"]))
    return {who: min(ids) for who, ids in by_who.items()}, by_who


def one_cluster_per_person(work: Path, run: Path) -> Path:
    """The curation run with each person's clips in one identity cluster (the renders' ground truth): curate
    may split one person (Obama's three photos) into two clusters, and the trainer holds out and swaps by
    cluster. A run folder beside ``run`` sharing its frames; ``run`` itself when nothing needs merging."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids, _ = clusters(run)
    table = pq.read_table(run / "manifest.parquet")
    truth = [ids[Path(src).stem.split("__")[0]] for src in table.column("source").to_pylist()]
    if truth == [int(c) for c in table.column("cluster_id").to_pylist()]:
        return run
    folder = work / "curated-people"
    folder.mkdir(exist_ok=True)
    column = table.schema.get_field_index("cluster_id")
    field = table.schema.field(column)
    pq.write_table(table.set_column(column, field, pa.array(truth, field.type)), folder / "manifest.parquet")
    if not (folder / "frames.parquet").exists():
        (folder / "frames.parquet").symlink_to((run / "frames.parquet").resolve())
    return folder


# ---------------------------------------------------------------------------------------------- train
def runs(presets: tuple[str, ...], controls: tuple[str, ...]) -> list[dict]:
    """The configurations: each preset on held-out clips, a shuffled-face control of each of ``controls``,
    and cofe with its control on held-out people."""
    out = [dict(name=p, preset=p, split="clip", shuffle=False) for p in presets]
    out += [dict(name=f"{p}-shuffled", preset=p, split="clip", shuffle=True) for p in controls]
    out += [dict(name="cofe-heldout-people", preset="cofe", split="identity", shuffle=False),
            dict(name="cofe-shuffled-heldout-people", preset="cofe", split="identity", shuffle=True)]
    return out


def train_sets(args: argparse.Namespace, run: dict) -> list[str]:
    size = []
    if args.train_size:
        height, width, frames = (int(v) for v in args.train_size.split("x"))
        size = [f"height={height}", f"width={width}", f"num_frames={frames}", "fps=16"]
    return [*size, f"max_steps={args.steps}", f"learning_rate={args.lr}", f"batch_size={args.batch}",
            f"val_every={max(1, args.steps // 4)}", f"checkpoint_every={args.steps}", "keep_checkpoints=1",
            f"val_samples={args.val_samples}", "val_noise_draws=2", "tensorboard=false",
            f"adapter_preset={run['preset']}", f"val_split={run['split']}",
            f"val_fraction={0.25 if run['split'] == 'clip' else 0.3}", f"face_shuffle={str(run['shuffle']).lower()}",
            *args.set]


def train_run(args: argparse.Namespace, wan: Path, data: Path, run: dict) -> dict:
    from lfa.wan.base import load_base
    from lfa.train.config import load_config
    from lfa.train.trainer import train

    out = runs_folder(args) / run["name"]
    if not (out / "adapter" / "lfa_training.json").is_file():
        shared = cache_folder(args)
        shared.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)
        if not (out / "cache").exists():
            (out / "cache").symlink_to(shared.resolve())  # every run reads the same cached tensors
        (out / "metrics.jsonl").unlink(missing_ok=True)
        config = load_config(load_base(wan, parts=()).train_defaults, sets=train_sets(args, run))
        t0 = time.time()
        train(wan, data, out, config, on_notice=lambda line: log(f"{run['name']}: {line}"))
        log(f"trained {run['name']} in {time.time() - t0:.0f} s")
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return {"val": [r for r in records if "val_loss" in r], "adapter": str(out / "adapter")}


# ---------------------------------------------------------------------------------------------- ceiling
def ceiling(args: argparse.Namespace, wan: Path, data: Path, split_kind: str) -> dict:
    """Flow loss at sigma = 1 of a model that knows a person's mean latent (see the module docstring):
    own person's mean (the person's other clips: training clips, or for held-out people their other
    held-out clips) against the swapped person's (as val_id_gain swaps) and against the global mean."""
    import torch

    from lfa.wan.base import load_base
    from lfa.train.cache import load_shard
    from lfa.train.config import load_config
    from lfa.train.data import build_samples
    from lfa.train.validation import bootstrap_interval, other_identity, split_samples

    run = dict(name="ceiling", preset="cofe", split=split_kind, shuffle=False)
    config = load_config(load_base(wan, parts=()).train_defaults, sets=train_sets(args, run))
    samples = build_samples(data, config)
    split = split_samples(samples, val_split=config.val_split, val_fraction=config.val_fraction,
                          val_samples=config.val_samples, seed=config.seed)
    folder = next(p for p in cache_folder(args).iterdir() if p.is_dir() and p.name != "clips")
    shards = {i: load_shard(folder / f"{s.key}.safetensors", folder.name) for i, s in enumerate(samples)}
    latents = {i: v["latents"].float() for i, v in shards.items()}
    val = set(split.val)
    pool = [i for i in range(len(samples)) if i not in val] if split_kind == "clip" else list(range(len(samples)))

    def mean_of(rows: list[int]) -> torch.Tensor:
        return torch.stack([latents[i] for i in rows]).mean(0)

    groups: dict[str, dict[int, list[float]]] = {k: {} for k in CEILINGS}
    for row in split.val:
        me = samples[row]
        # no estimate sees the held-out clip's slot (its backdrop, light and trajectory, which every person's
        # clip of that slot shares): only who the person is differs between the means
        fair = [i for i in pool if slot(samples[i]) != slot(me)]
        own_rows = [i for i in fair if samples[i].cluster_id == me.cluster_id]
        other = samples[other_identity(samples, row)].cluster_id
        other_rows = [i for i in fair if samples[i].cluster_id == other]
        if not own_rows or not other_rows:
            continue
        x0, own, other = latents[row], mean_of(own_rows), mean_of(other_rows)
        train_mean = mean_of([i for i in fair if i not in val])
        face = (shards[row]["face_mask"].float() > 0.5).float()[None]  # (1, F', h, w): the face's latent cells

        def loss(m: torch.Tensor) -> float:
            return float(((x0 - m) ** 2).mean())

        for key, (mine, theirs) in {"vs_other_person": (own, other), "vs_global_mean": (own, train_mean),
                                    "face_vs_other_person": (face * own + (1 - face) * train_mean,
                                                             face * other + (1 - face) * train_mean),
                                    "face_vs_global_mean": (face * own + (1 - face) * train_mean, train_mean)
                                    }.items():
            groups[key].setdefault(me.cluster_id, []).append(loss(theirs) - loss(mine))
    out = {}
    for key, by_person in groups.items():
        lo, hi = bootstrap_interval(by_person)
        out[key] = {"mean": float(np.mean([v for g in by_person.values() for v in g])), "lo": lo, "hi": hi}
    every = mean_of([i for i in range(len(samples)) if i not in val])
    out["x0_mse_global"] = float(np.mean([float(((latents[r] - every) ** 2).mean()) for r in split.val]))
    out["windows"], out["people"] = len(split.val), len(groups["vs_other_person"])
    return out


def slot_gain(args: argparse.Namespace, wan: Path, data: Path, run: dict) -> dict:
    """val_id_gain with a stricter swap: each held-out window's faces (and reference views) replaced by those of
    every other person's window at the same slot and time (same backdrop, light, trajectory and yaw), so the
    swap changes who the person is and nothing else; interval over people as in lfa.train.validation.
    (val_id_gain swaps in the window of another person closest in yaw, which may come from another backdrop:
    reference crops and Mv2ID's reference frames also carry the clip's backdrop and light.)"""
    import torch

    from lfa.model.adapter import IdentityAdapter
    from lfa.model.training import IdentityTrainingModule
    from lfa.wan.base import load_base
    from lfa.train.config import load_config
    from lfa.train.data import build_samples
    from lfa.train.trainer import _Data  # the trainer's own batches: the same inputs validation scores
    from lfa.train.validation import bootstrap_interval, split_samples

    out = runs_folder(args) / run["name"]
    config = load_config(load_base(wan, parts=()).train_defaults, sets=train_sets(args, run))
    samples = build_samples(data, config)
    split = split_samples(samples, val_split=config.val_split, val_fraction=config.val_fraction,
                          val_samples=config.val_samples, seed=config.seed)
    folder = next(p for p in cache_folder(args).iterdir() if p.is_dir() and p.name != "clips")
    adapter = IdentityAdapter.from_pretrained(out / "adapter", load_base(wan, parts=("transformer",)).transformer)
    module = IdentityTrainingModule(adapter, config.flow_config()).eval()
    data_ = _Data([folder / f"{s.key}.safetensors" for s in samples], folder.name, config, adapter.config)
    where = {(s.cluster_id, slot(s), s.start): i for i, s in enumerate(samples)}
    gains: dict[int, list[float]] = {}
    with torch.no_grad():
        for row in split.val:
            me = samples[row]
            others = [where[k] for k in where if k[0] != me.cluster_id and k[1:] == (slot(me), me.start)]
            for draw in range(config.val_noise_draws):
                kwargs = dict(step=draw, first_row=row, seed=config.seed + 1, flow=module.flow, train=False)
                own = float(module(data_.batch([row], **kwargs)).losses["flow"])
                for o in others:
                    other = float(module(data_.batch([row], face_rows=[o], **kwargs)).losses["flow"])
                    gains.setdefault(me.cluster_id, []).append(other - own)
    lo, hi = bootstrap_interval(gains)
    return {"mean": float(np.mean([v for g in gains.values() for v in g])), "lo": lo, "hi": hi,
            "swaps": sum(len(g) for g in gains.values())}


# ---------------------------------------------------------------------------------------------- generate
def generate(args: argparse.Namespace, wan: Path, adapter: str, photos: dict[str, list[str]],
             analyzer) -> dict[str, dict[str, np.ndarray]]:
    """photo path -> {"latents", "frames"} with the default guidance and id scale, one seed and prompt."""
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator
    from lfa.media import read_image
    from lfa.samples import SAMPLE_NAMES, sample_photo

    generator = IdentityGenerator(wan, adapter, device="cpu", analyzer=analyzer)
    out = {}
    for files in photos.values():
        for photo in files:
            image = sample_photo(photo) if photo in SAMPLE_NAMES else read_image(photo)
            frames = generator([image], GenerateOptions(prompt=PROMPT, seed=args.seed, steps=args.gen_steps))
            out[photo] = {"latents": generator.latents[0].numpy(), "frames": frames.astype(np.float32)}
    return out


def differences(gen: dict, photos: dict[str, list[str]], who: list[str], *, among: list[str] | None = None) -> dict:
    """Every pair of people in ``who`` (first photo each; with ``among``, only pairs with one of ``among``):
    relative mean abs latent difference and mean abs pixel difference, each with a bootstrap interval over
    people of each person's mean difference; plus Obama's photo pairs (same person)."""
    from lfa.train.validation import bootstrap_interval

    def pair(a: str, b: str) -> tuple[float, float]:
        za, zb = gen[a]["latents"], gen[b]["latents"]
        rel = float(np.abs(za - zb).mean() / (0.5 * (np.abs(za).mean() + np.abs(zb).mean())))
        return rel, float(np.abs(gen[a]["frames"] - gen[b]["frames"]).mean())

    lat: dict[str, list[float]] = {}
    pix: dict[str, list[float]] = {}
    count = 0
    for x, y in itertools.combinations(who, 2):
        if among is not None and x not in among and y not in among:
            continue
        rel, px = pair(photos[x][0], photos[y][0])
        count += 1
        for person in (x, y):
            if among is None or person in among:
                lat.setdefault(person, []).append(rel)
                pix.setdefault(person, []).append(px)
    out = {"pairs": count}
    for key, groups in (("latent_rel", lat), ("pixel", pix)):
        lo, hi = bootstrap_interval(groups)
        out[key] = {"mean": float(np.mean([np.mean(v) for v in groups.values()])), "lo": lo, "hi": hi}
    same = [pair(a, b) for a, b in itertools.combinations(photos[SAME_PERSON], 2)]
    out["same_person"] = {"latent_rel": float(np.mean([s[0] for s in same])),
                          "pixel": float(np.mean([s[1] for s in same])), "pairs": len(same)}
    return out


# ---------------------------------------------------------------------------------------------- report
def held_out_people(args: argparse.Namespace, wan: Path, data: Path, names: dict[int, str]) -> list[str]:
    from lfa.wan.base import load_base
    from lfa.train.config import load_config
    from lfa.train.data import build_samples
    from lfa.train.validation import split_samples

    run = dict(name="x", preset="cofe", split="identity", shuffle=False)
    config = load_config(load_base(wan, parts=()).train_defaults, sets=train_sets(args, run))
    samples = build_samples(data, config)
    split = split_samples(samples, val_split="identity", val_fraction=config.val_fraction,
                          val_samples=config.val_samples, seed=config.seed)
    return sorted({names[samples[i].cluster_id] for i in split.val})


def _gain(record: dict) -> str:
    return f"{record['val_id_gain']:+.2e} [{record['val_id_gain_lo']:+.1e}, {record['val_id_gain_hi']:+.1e}]"


def _ci(d: dict, fmt: str) -> str:
    return f"{d['mean']:{fmt}} [{d['lo']:{fmt}}, {d['hi']:{fmt}}]"


def report(results: dict) -> str:
    lines = [f"{results['people']} people, {results['clips']} accepted clips, {results['windows']} windows of "
             f"{results['window']}; {results['steps']} steps each (lr {results['lr']}, batch {results['batch']}); "
             f"generation: {results['gen_steps']} steps, guidance 5, id scale 1, seed {results['seed']}.", ""]
    c = results["ceiling"]
    lines += ["| run | val split | val_loss | val_id_gain [95% over people] | same-slot swap gain [95%] | "
              "val_id_sensitivity | "
              "A-vs-B latents, rel. [95%] | A-vs-B pixels /255 [95%] | same person (Obama ×3): latents, pixels |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        last = r["val"][-1]
        row = [name, r["split"], f"{last['val_loss']:.4f}", _gain(last), _ci(r["slot_gain"], "+.2e"),
               f"{last['val_id_sensitivity']:.4f}"]
        g = r.get("generation")
        if g:
            row += [_ci(g["latent_rel"], ".4f") + f" ({g['pairs']} pairs)", _ci(g["pixel"], ".3f"),
                    f"{g['same_person']['latent_rel']:.4f}, {g['same_person']['pixel']:.3f}"]
        else:
            row += ["", "", ""]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "Ceiling (flow loss at sigma = 1 with only the person's mean latent; same held-out windows):", "",
              "| val split | whole window: own vs swapped person's mean (what val_id_gain swaps) | "
              "own vs global mean | face cells only: own vs swapped | own vs global | x0 MSE to global mean |",
              "|---|---|---|---|---|---|"]
    for split, v in c.items():
        lines.append(f"| {split} | " + " | ".join(_ci(v[k], "+.2e") for k in CEILINGS)
                     + f" | {v['x0_mse_global']:.4f} |")
    buckets = sorted({k for r in results["runs"].values() for k in r["val"][-1] if k.startswith("val_id_gain_yaw")},
                     key=lambda k: float(k.split("yaw")[1].split("_")[0]))
    if buckets:
        lines += ["", "val_id_gain per |yaw| bucket of the window (last validation):", "",
                  "| run | " + " | ".join(b.replace("val_id_gain_yaw", "").replace("_", "–") + "°" for b in buckets)
                  + " |", "|---" * (len(buckets) + 1) + "|"]
        for name, r in results["runs"].items():
            last = r["val"][-1]
            lines.append(f"| {name} | " + " | ".join(f"{last[b]:+.1e}" if b in last else "–" for b in buckets) + " |")
    h = results.get("heldout_generation")
    if h:
        lines += ["", f"Held-out people ({', '.join(results['heldout_people'])}), generation from the "
                  "val_split=identity runs, pairs with at least one held-out person:", "",
                  "| run | pairs | latents, rel. [95%] | pixels /255 [95%] |", "|---|---|---|---|"]
        for name, g in h.items():
            lines.append(f"| {name} | {g['pairs']} | {_ci(g['latent_rel'], '.4f')} | {_ci(g['pixel'], '.3f')} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("out/identity_flow"))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--val-samples", type=int, default=24)
    parser.add_argument("--clips", type=int, default=4, help="clips per person")
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--size", type=int, default=256, help="rendered clip side (pixels)")
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument("--controls", default="cofe,mofe", help="presets also trained with face_shuffle=true")
    parser.add_argument("--train-size", default="", help="HEIGHTxWIDTHxFRAMES of the training windows, at 16 fps "
                        "(default: the tiny base's, 32x32x5 at 8 fps, the size its latent statistics are measured at)")
    parser.add_argument("--gen-steps", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="more training settings")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 clips a person, 20 steps, 2 presets")
    args = parser.parse_args()
    if args.quick:
        args.clips, args.steps, args.presets, args.controls, args.gen_steps = 3, 20, "cofe,mv2id", "cofe", 4
        args.work = args.work.with_name(args.work.name + "-quick")
    torch_threads()
    args.work.mkdir(parents=True, exist_ok=True)
    photos = photo_files(args.work)
    data = curate(args.work, render(args.work, photos, args.clips, args.duration, args.size))
    wan = base(args.work, int(args.train_size.split("x")[0]) if args.train_size else 32)
    ids, all_ids = clusters(data)
    if len(set(ids.values())) != len(ids):
        raise SystemExit(f"curation put two people in one cluster: {all_ids}")
    split_people = {who: sorted(c) for who, c in all_ids.items() if len(c) > 1}
    if split_people:
        log(f"curation split people into several clusters, merged for training: {split_people}")
    data = one_cluster_per_person(args.work, data)
    if args.train_size:
        standardise_on_data(args, wan, data)
    names = {c: who for who, c in ids.items()}
    people_ = [who for who in photos if who in ids]
    from lfa.face import FaceAnalyzer

    analyzer = FaceAnalyzer()
    heldout = held_out_people(args, wan, data, names)
    import pyarrow.parquet as pq

    manifest = pq.read_table(data / "manifest.parquet").to_pylist()
    results: dict = {"people": len(people_), "clips": len(manifest), "steps": args.steps, "lr": args.lr,
                     "batch": args.batch, "gen_steps": args.gen_steps, "seed": args.seed, "runs": {},
                     "heldout_people": heldout, "heldout_generation": {},
                     "curate_clusters": {k: sorted(v) for k, v in all_ids.items()}}
    for run in runs(tuple(args.presets.split(",")), tuple(c for c in args.controls.split(",") if c)):
        trained = train_run(args, wan, data, run)
        entry = {"split": run["split"], "val": trained["val"], "slot_gain": slot_gain(args, wan, data, run)}
        gen_file = runs_folder(args) / run["name"] / "generation.json"
        if gen_file.is_file():
            done = json.loads(gen_file.read_text())
        else:
            gen = generate(args, wan, trained["adapter"], {w: photos[w] for w in people_}, analyzer)
            done = {"all": differences(gen, photos, people_)}
            if run["split"] == "identity":
                done["heldout"] = differences(gen, photos, people_, among=heldout)
            gen_file.write_text(json.dumps(done))
            log(f"generated with {run['name']}: {done['all']}")
        if run["split"] == "clip":
            entry["generation"] = done["all"]
        else:
            results["heldout_generation"][run["name"]] = done["heldout"]
        results["runs"][run["name"]] = entry
    results["ceiling"] = {s: ceiling(args, wan, data, s) for s in ("clip", "identity")}
    from lfa.wan.base import load_base

    d = load_base(wan, parts=()).train_defaults
    results["window"] = args.train_size or f"{d['height']}x{d['width']}x{d['num_frames']}"
    results["windows"] = sum(1 for _ in cache_folder(args).glob("*/*.safetensors"))
    tag = f"-{args.train_size}" if args.train_size else ""
    (args.work / f"results{tag}.json").write_text(json.dumps(results, indent=1))
    text = report(results)
    (args.work / f"results{tag}.md").write_text(text)
    print(text)


def cache_folder(args: argparse.Namespace) -> Path:
    return args.work / (f"cache-{args.train_size}" if args.train_size else "cache")


def runs_folder(args: argparse.Namespace) -> Path:
    return args.work / (f"runs-{args.train_size}" if args.train_size else "runs")


def torch_threads() -> None:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


if __name__ == "__main__":
    main()
