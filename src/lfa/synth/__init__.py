"""Ground-truth face videos rendered from one photo: labelled clips, the standard corpus, pose accuracy."""

from lfa.synth.clip import ClipSpec, HeadLibrary, SecondFace, render_clip
from lfa.synth.corpus import STANDARD_CORPUS, build_corpus
from lfa.synth.trajectory import NAMED as TRAJECTORIES

__all__ = ["STANDARD_CORPUS", "TRAJECTORIES", "ClipSpec", "HeadLibrary", "SecondFace", "build_corpus",
           "render_clip"]
