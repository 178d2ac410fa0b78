"""Video, audio and image IO (PyAV + Pillow). Every user-facing failure is a ``MediaError``."""

from lfa.errors import MediaError
from lfa.media.audio import extract_audio
from lfa.media.decode import DecodedFrame, Frame, iter_decoded, iter_frames, read_frames, rotate_upright
from lfa.media.encode import write_video
from lfa.media.image import is_image_path, is_video_path, read_image, write_image
from lfa.media.probe import VideoInfo, is_animated_gif, probe
from lfa.media.sampling import indices_for_times, sample_times

__all__ = [
    "DecodedFrame",
    "Frame",
    "MediaError",
    "VideoInfo",
    "extract_audio",
    "indices_for_times",
    "is_animated_gif",
    "is_image_path",
    "is_video_path",
    "iter_decoded",
    "iter_frames",
    "probe",
    "read_frames",
    "read_image",
    "rotate_upright",
    "sample_times",
    "write_image",
    "write_video",
]
