"""The standard labelled corpus: one clip for every reason curation accepts or rejects a clip.

Each clip's sidecar carries ``expected``: the decision (``accept``/``reject``), the stage and reason
of a rejection, the speech label (``on_screen``, ``voice_over``, ``silent``) and the number of shots.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from lfa.synth.clip import ClipSpec, HeadLibrary, SecondFace, render_clip


def _accept(speech: str = "silent", shots: int = 1) -> dict[str, Any]:
    return {"decision": "accept", "stage": None, "reason": None, "speech": speech, "shots": shots}


def _reject(stage: str, reason: str, speech: str = "silent") -> dict[str, Any]:
    return {"decision": "reject", "stage": stage, "reason": reason, "speech": speech, "shots": 1}


STANDARD_CORPUS: dict[str, ClipSpec] = {
    "large_angle_astronaut": ClipSpec("astronaut", "yaw-sweep", 4.0, seed=1, expected=_accept(),
                                      purpose="one face turning through ±75° yaw"),
    "large_angle_grace": ClipSpec("grace_hopper", "nod-and-turn", 4.0, seed=2, expected=_accept(),
                                  purpose="one face nodding and turning (yaw ±60°, pitch ±25°)"),
    "large_angle_degraded": ClipSpec("astronaut", "nod-and-turn", 4.0, seed=3, blur=1.0, noise=4.0,
                                     jpeg_quality=45, expected=_accept(),
                                     purpose="large angles through mild blur, noise and compression"),
    "static_face": ClipSpec("astronaut", "static", 3.0, seed=4,
                            expected=_reject("face_constraints", "insufficient_angle_variation"),
                            purpose="a head that does not move"),
    "frontal_drift": ClipSpec("grace_hopper", "frontal", 3.0, seed=5,
                              expected=_reject("face_constraints", "insufficient_angle_variation"),
                              purpose="a talking-head drift of a few degrees only"),
    "two_faces": ClipSpec("astronaut", "yaw-sweep", 4.0, seed=6, face_size=0.24,
                          second_face=SecondFace("grace_hopper", 1.0, "frontal"),
                          expected=_reject("face_constraints", "multiple_faces"),
                          purpose="two faces of equal size"),
    "background_face": ClipSpec("astronaut", "nod-and-turn", 4.0, seed=7,
                                second_face=SecondFace("grace_hopper", 0.3, "frontal"), expected=_accept(),
                                purpose="one prominent face and a much smaller one behind"),
    "small_face": ClipSpec("astronaut", "yaw-sweep", 4.0, seed=8, face_size=0.07,
                           expected=_reject("face_constraints", "face_too_small"),
                           purpose="a large-angle face too small to train on"),
    "identity_switch": ClipSpec("astronaut", "yaw-sweep", 4.0, seed=9, switch_photo="grace_hopper",
                                switch_at=2.0, expected=_reject("identity", "identity_switch"),
                                purpose="the person changes half-way through the shot"),
    "speaking_on_screen": ClipSpec("astronaut", "nod-and-turn", 4.0, seed=10, speech="on_screen",
                                   speech_index=0, expected=_accept("on_screen"),
                                   purpose="the visible person speaks: mouth follows the speech"),
    "voice_over_still_mouth": ClipSpec("grace_hopper", "yaw-sweep", 4.0, seed=11, speech="voice_over",
                                       speech_index=1, expected=_accept("voice_over"),
                                       purpose="speech on the track while the visible mouth stays still"),
    "silent": ClipSpec("grace_hopper", "nod-and-turn", 3.0, seed=12, expected=_accept("silent"),
                       purpose="large angles, no speech at all"),
    "scene_cut": ClipSpec("astronaut", "yaw-sweep", 6.0, seed=13, scene_cut_at=3.0, expected=_accept(shots=2),
                          purpose="a hard cut: two shots, each a large-angle single face"),
}


# Cases that broke curation on held-out clips (issue 12), kept apart from the standard corpus so the
# demo stays small. ``split_at``: with ``identity.on_switch=split`` the clip must be cut there (± 0.3 s).
HARD_CASES: dict[str, ClipSpec] = {
    "turn_one_way": ClipSpec("grace_hopper", "turn-away", 4.0, seed=21, expected=_accept(),
                             purpose="one person turning 0→75° one way: halves are frontal vs profile"),
    "switch_at_known_time": ClipSpec("grace_hopper", "nod-and-turn", 6.0, seed=22, switch_photo="astronaut",
                                     switch_at=2.6, expected={**_reject("identity", "identity_switch"),
                                                              "split_at": 2.6},
                                     purpose="the person changes at 2.6 s; split must cut there"),
    "look_alike_switch": ClipSpec("astronaut", "nod-and-turn", 6.0, seed=24, switch_photo="grace_hopper@astronaut",
                                  switch_at=3.0, expected={**_reject("identity", "identity_switch"), "split_at": 3.0},
                                  purpose="two people alike in all but the face (same skin, hair, clothes, "
                                          "backdrop, motion): the person changes at 3.0 s"),
    "upside_down": ClipSpec("astronaut", "yaw-sweep", 4.0, seed=23, upside_down=True,
                            expected=_reject("face_constraints", "any"),
                            purpose="a video stored upside down: not a training clip as it is"),
}


def build_corpus(out_dir: Path, *, names: list[str] | None = None, skip_existing: bool = True,
                 on_clip: Callable[[str], None] | None = None, heads: HeadLibrary | None = None,
                 specs: dict[str, ClipSpec] | None = None) -> list[Path]:
    """Render the standard corpus (or ``specs``) into ``out_dir`` (``NAME.mp4`` + ``NAME.json``); existing
    clips are kept."""
    heads = heads or HeadLibrary()
    specs = specs or STANDARD_CORPUS
    written = []
    for name in names or list(specs):
        video = out_dir / f"{name}.mp4"
        if not (skip_existing and video.exists() and video.with_suffix(".json").exists()):
            render_clip(specs[name], video, heads)
        written.append(video)
        if on_clip:
            on_clip(name)
    return written
