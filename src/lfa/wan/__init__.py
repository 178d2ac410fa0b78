"""A Wan base and what goes with it, for every job that runs one (training, generation, ``lfa model``):
loading and checking a diffusers Wan directory (:mod:`lfa.wan.base`, also the tiny random base), the face
experts named next to it (:mod:`lfa.wan.encoders`) and frames fitted to its buckets, with the first-frame
condition of an image-to-video base (:mod:`lfa.wan.frames`)."""
