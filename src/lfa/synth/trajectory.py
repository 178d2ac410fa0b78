"""Scripted head trajectories: lfa angles (degrees), small translations and zoom over time."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lfa.errors import ConfigError


@dataclass(frozen=True)
class HeadState:
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    dx: float = 0.0  # translation, fraction of the frame width
    dy: float = 0.0
    zoom: float = 1.0


Trajectory = Callable[[float, float], HeadState]  # (t seconds, duration seconds) -> state


def _phase(t: float, duration: float, cycles: float = 1.0) -> float:
    return 2 * math.pi * cycles * t / max(duration, 1e-6)


def frontal(t: float, d: float) -> HeadState:
    """A talking-head drift: a few degrees, never a large angle."""
    p = _phase(t, d)
    return HeadState(3 * math.sin(p), 2 * math.sin(2 * p), 1.5 * math.sin(p + 1), 0.01 * math.sin(p))


def static(t: float, d: float) -> HeadState:
    return HeadState()


def yaw_sweep(t: float, d: float) -> HeadState:
    """0 → +75 → −75 → 0 degrees of yaw."""
    p = _phase(t, d)
    return HeadState(yaw=75 * math.sin(p), dx=0.02 * math.sin(p), zoom=1 + 0.03 * math.sin(2 * p))


def turn_away(t: float, d: float) -> HeadState:
    """0 → +75 degrees of yaw in one direction: the two halves of the clip are frontal vs profile."""
    return HeadState(yaw=75 * min(max(t / d, 0.0), 1.0))


def profile_sweep(t: float, d: float) -> HeadState:
    """0 → +90 → −90 → 0 degrees of yaw: both full profiles."""
    p = _phase(t, d)
    return HeadState(yaw=90 * math.sin(p), dx=0.02 * math.sin(p))


def pitch_sweep(t: float, d: float) -> HeadState:
    return HeadState(pitch=40 * math.sin(_phase(t, d)))


def roll_sweep(t: float, d: float) -> HeadState:
    return HeadState(roll=30 * math.sin(_phase(t, d)))


def nod_and_turn(t: float, d: float) -> HeadState:
    p = _phase(t, d)
    return HeadState(yaw=60 * math.sin(p), pitch=25 * math.sin(2 * p), roll=10 * math.sin(p + 0.5),
                     dx=0.02 * math.sin(p), dy=0.01 * math.sin(2 * p))


NAMED: dict[str, Trajectory] = {
    "frontal": frontal,
    "static": static,
    "yaw-sweep": yaw_sweep,
    "profile-sweep": profile_sweep,
    "turn-away": turn_away,
    "pitch-sweep": pitch_sweep,
    "roll-sweep": roll_sweep,
    "nod-and-turn": nod_and_turn,
}


def keyframes(points: list[dict[str, float]]) -> Trajectory:
    """Linear interpolation between ``{"t": s, "yaw": .., "pitch": .., "roll": .., ...}`` keyframes."""
    if not points or any("t" not in p for p in points):
        raise ConfigError("a trajectory file needs a list of keyframes, each with a time 't'",
                          'write e.g. [{"t": 0, "yaw": 0}, {"t": 2, "yaw": 60}]')
    points = sorted(points, key=lambda p: p["t"])
    times = np.array([p["t"] for p in points], float)
    fields = ("yaw", "pitch", "roll", "dx", "dy", "zoom")
    table = {f: np.array([p.get(f, 1.0 if f == "zoom" else 0.0) for p in points], float) for f in fields}

    def trajectory(t: float, d: float) -> HeadState:
        return HeadState(**{f: float(np.interp(t, times, table[f])) for f in fields})

    return trajectory


def resolve(name_or_file: str) -> Trajectory:
    if name_or_file in NAMED:
        return NAMED[name_or_file]
    path = Path(name_or_file)
    if path.suffix == ".json" and path.is_file():
        return keyframes(json.loads(path.read_text()))
    raise ConfigError(f"unknown trajectory {name_or_file!r}",
                      f"use one of {', '.join(NAMED)} or a .json file of keyframes")
