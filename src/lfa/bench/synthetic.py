"""Synthetic "generated" videos for testing the benchmark, built on :mod:`lfa.synth`.

:func:`lfa.synth.render_clip` covers same/other identity, frozen and turning heads; this module adds
the two cases it does not: an identity that changes *with the head angle* (the failure the benchmark
exists to catch) and a video with no face at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lfa.media import write_video
from lfa.synth import HeadLibrary
from lfa.synth.backgrounds import colour_field
from lfa.synth.render import HeadPlacement, render
from lfa.synth.trajectory import resolve


def render_identity_by_yaw(out: Path, heads: HeadLibrary, photo: str, far_photo: str, *, far_from: float = 45.0,
                           trajectory: str = "yaw-sweep", duration: float = 3.0, fps: float = 10.0,
                           width: int = 320, height: int = 320, face_size: float = 0.3, seed: int = 0) -> list[dict]:
    """Render ``photo``'s head, but ``far_photo``'s whenever the true |yaw| exceeds ``far_from``; returns
    the per-frame truth (t, yaw, pitch, roll, identity)."""
    traj = resolve(trajectory)
    background = colour_field(width, height, seed)
    frames, truth = [], []
    for i in range(int(round(duration * fps))):
        t = i / fps
        state = traj(t, duration)
        name = far_photo if abs(state.yaw) > far_from else photo
        head = heads.get(name)
        scale = face_size * width / head.face_width * state.zoom
        placement = HeadPlacement(head, state.yaw, state.pitch, state.roll,
                                  ((0.5 + state.dx) * width, (0.55 + state.dy) * height), scale)
        image, _ = render(background, [placement])
        frames.append(image)
        truth.append({"t": t, "yaw": state.yaw, "pitch": state.pitch, "roll": state.roll, "identity": name})
    write_video(out, frames, fps)
    return truth


def write_faceless(out: Path, *, duration: float = 2.0, fps: float = 10.0, width: int = 320, height: int = 320,
                   seed: int = 0) -> None:
    """A video of a drifting backdrop and no face."""
    base = colour_field(width, height, seed)
    n = int(round(duration * fps))
    write_video(out, (np.roll(base, 3 * i, axis=1) for i in range(n)), fps)


TEST_SET = ("same", "other", "frozen", "drift", "noface")
"""The acceptance set: the reference identity turning (``same``), another identity turning (``other``), the
reference identity frozen at the reference pose (``frozen``), the reference identity that becomes another
beyond 45° of yaw (``drift``) and no face (``noface``)."""


def write_test_set(root: Path, heads: HeadLibrary | None = None, *, items: tuple[str, ...] = TEST_SET,
                   duration: float = 3.0, fps: float = 10.0, size: int = 320, photo: str = "astronaut",
                   other: str = "grace_hopper", prompt: str = "a person turning their head") -> Path:
    """Render reference images ``{root}/references/{id}.png``, "generated" videos ``{root}/gen/{id}.mp4``
    and ``{root}/spec.jsonl``; returns the spec's path. Each item's reference is the first frame of a
    frozen frontal render of ``photo`` (same identity, a different backdrop per item)."""
    import json

    from lfa.media import iter_frames, write_image
    from lfa.synth import ClipSpec, render_clip

    root = Path(root)
    gen = root / "gen"
    gen.mkdir(parents=True, exist_ok=True)
    heads = heads or HeadLibrary()
    kw = dict(duration=duration, fps=fps, width=size, height=size)
    refs = root / "references"
    for k, item in enumerate(items):
        ref_clip = refs / f"{item}.mp4"
        render_clip(ClipSpec(photo, "static", duration=2 / fps, fps=fps, width=size, height=size, seed=10 + k),
                    ref_clip, heads)
        write_image(refs / f"{item}.png", next(iter(iter_frames(ref_clip))).image)
    makers = {
        "same": lambda p: render_clip(ClipSpec(photo, "yaw-sweep", seed=1, **kw), p, heads),
        "other": lambda p: render_clip(ClipSpec(other, "yaw-sweep", seed=1, **kw), p, heads),
        "frozen": lambda p: render_clip(ClipSpec(photo, "static", seed=1, **kw), p, heads),
        "drift": lambda p: render_identity_by_yaw(p, heads, photo, other, seed=1, duration=duration, fps=fps,
                                                  width=size, height=size),
        "noface": lambda p: write_faceless(p, duration=duration, fps=fps, width=size, height=size, seed=1),
    }
    for item in items:
        makers[item](gen / f"{item}.mp4")
    spec = root / "spec.jsonl"
    spec.write_text("".join(json.dumps({"id": i, "reference": f"references/{i}.png", "prompt": prompt,
                                        "labels": {"case": i}}) + "\n" for i in items))
    return spec


MODEL_KINDS = ("genuine", "paste", "static", "swapped")
"""The four "models" of the headline's acceptance test: the reference's person turning their head
(``genuine``), the reference image itself in every frame (``paste``), the reference's head rendered without
moving (``static``) and somebody else turning (``swapped``)."""


TARGETS = {"turn-away": [0, 75], "yaw-sweep": [-75, 75], "profile-sweep": [-90, 90]}  # labels.target_yaw


def write_model_set(root: Path, heads: HeadLibrary | None = None, *, people: tuple[str, ...] = ("astronaut",
                    "grace_hopper"), variants: tuple[tuple[str, int], ...] = (("turn-away", 1), ("turn-away", 2)),
                    duration: float = 2.0, fps: float = 4.0, size: int = 320) -> tuple[Path, dict[str, Path]]:
    """One item per (person, variant): a frontal reference render, and each model's video in
    ``{root}/{kind}/{id}.mp4``. ``swapped`` of one person is the ``genuine`` video of the next person (the
    same file content, as a model that ignored the reference would produce). Returns the spec (with
    ``labels.target_yaw`` the trajectory's turn, :data:`TARGETS`) and ``{kind: folder}``. The default, a
    0→75° turn in 8 frames, puts a frame or two in every |yaw| bucket."""
    import json
    import shutil

    from lfa.media import iter_frames, write_image
    from lfa.synth import ClipSpec, render_clip

    root = Path(root)
    heads = heads or HeadLibrary()
    folders = {kind: root / kind for kind in MODEL_KINDS}
    for folder in [*folders.values(), root / "references"]:
        folder.mkdir(parents=True, exist_ok=True)
    kw = dict(duration=duration, fps=fps, width=size, height=size)
    lines = []
    for v, (trajectory, seed) in enumerate(variants):
        for p, person in enumerate(people):
            item = f"{person}-{v}"
            ref_clip = root / "references" / f"{item}.mp4"
            render_clip(ClipSpec(person, "static", duration=2 / fps, fps=fps, width=size, height=size,
                                 seed=20 + 10 * v + p), ref_clip, heads)
            reference = next(iter(iter_frames(ref_clip))).image
            ref_clip.unlink()
            ref_clip.with_suffix(".json").unlink(missing_ok=True)
            write_image(root / "references" / f"{item}.png", reference)
            render_clip(ClipSpec(person, trajectory, seed=seed, **kw), folders["genuine"] / f"{item}.mp4", heads)
            render_clip(ClipSpec(person, "static", seed=seed + 5, **kw), folders["static"] / f"{item}.mp4", heads)
            write_video(folders["paste"] / f"{item}.mp4", [reference] * int(round(duration * fps)), fps)
            lines.append({"id": item, "reference": f"references/{item}.png",
                          "prompt": "A person turns their head.",
                          "labels": {"cluster_id": person, "target_yaw": TARGETS[trajectory],
                                     "trajectory": trajectory}})
        for p, person in enumerate(people):
            other = people[(p + 1) % len(people)]
            shutil.copy(folders["genuine"] / f"{other}-{v}.mp4", folders["swapped"] / f"{person}-{v}.mp4")
    for folder in folders.values():
        for sidecar in folder.glob("*.json"):
            sidecar.unlink()
    spec = root / "spec.jsonl"
    spec.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return spec, folders
