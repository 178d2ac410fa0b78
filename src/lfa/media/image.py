"""Still images (Pillow) and cheap content sniffing that tells images from videos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lfa.errors import MediaError

PathLike = str | os.PathLike[str]

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".heic", ".avif"}
)
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".flv", ".ts", ".mts", ".m2ts",
     ".mpg", ".mpeg", ".wmv", ".y4m", ".3gp", ".ogv"}
)
# ISO-BMFF brands (bytes 8..12 after "ftyp") that are stills or audio, not video.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1", b"avif"})
_AUDIO_BRANDS = frozenset({b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "})
_QT_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})


def check_file(path: PathLike) -> Path:
    """The path as a ``Path`` if it is an existing, non-empty file; else a MediaError."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"file not found: {p}", "check the path and that the file exists")
    if not p.is_file():
        raise MediaError(f"not a file: {p}", "pass a video or image file, not a directory")
    if p.stat().st_size == 0:
        raise MediaError(f"empty file: {p}", "the file has 0 bytes; re-download or re-create it")
    return p


def _head(path: Path, n: int = 192) -> bytes | None:
    try:
        with path.open("rb") as fh:
            return fh.read(n)
    except OSError:
        return None


_GIF = (b"GIF87a", b"GIF89a")


def _sniff_image(head: bytes) -> bool:
    if head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", *_GIF, b"II*\x00", b"MM\x00*", b"BM")):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return head[4:8] == b"ftyp" and head[8:12] in _IMAGE_BRANDS


def _sniff_video(head: bytes) -> bool:
    if head[4:8] == b"ftyp":
        return head[8:12] not in _IMAGE_BRANDS | _AUDIO_BRANDS
    return (
        head[4:8] in _QT_ATOMS
        or head.startswith((b"\x1a\x45\xdf\xa3", b"FLV", b"\x00\x00\x01\xba",
                            b"\x00\x00\x01\xb3", b"YUV4MPEG2",
                            b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"))
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
        or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)  # MPEG-TS
    )


def is_image_path(path: PathLike) -> bool:
    """True if the file's first bytes are an image signature (extension only if it is absent)."""
    p = Path(path)
    head = _head(p) if p.is_file() else None
    if not head:
        return p.suffix.lower() in IMAGE_EXTENSIONS
    return _sniff_image(head)


def is_gif(path: PathLike) -> bool:
    """True if the file is a GIF (by signature): an image to :func:`read_image`, a video to the decoder."""
    head = _head(Path(path))
    return bool(head) and head.startswith(_GIF)


def is_video_path(path: PathLike) -> bool:
    """True if the file looks like a video container.

    Sniffs the container signature; for an unknown signature it asks FFmpeg (still cheap:
    header only). A missing file is judged by its extension, so output paths work too.
    Audio-only files in a generic container (e.g. an .mkv with only sound) pass the sniff;
    ``probe`` rejects them with a clear error.
    """
    p = Path(path)
    head = _head(p) if p.is_file() else None
    if not head:
        return p.suffix.lower() in VIDEO_EXTENSIONS
    if _sniff_image(head):
        return False
    if _sniff_video(head):
        return True
    import av  # local: keep image-only users free of the FFmpeg import cost

    try:
        with av.open(str(p)) as container:
            return len(container.streams.video) > 0
    except (av.FFmpegError, OSError, ValueError):
        return False


def looks_like_video_container(path: Path) -> bool:
    """Signature check only (used to say 'corrupt video' rather than 'not a video')."""
    head = _head(path)
    return bool(head) and _sniff_video(head)  # type: ignore[arg-type]


def read_image(path: PathLike, *, upright: bool = True) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB, turned upright by its EXIF orientation (``upright=False``:
    the pixels as stored, as ``PIL.Image.open(path).convert("RGB")`` gives them)."""
    p = check_file(path)
    try:
        with Image.open(p) as img:
            img.load()
            if upright:
                img = ImageOps.exif_transpose(img)
            if img.mode in ("I", "F") or img.mode.startswith("I;16"):
                arr = np.asarray(img, dtype=np.float64)
                if arr.max(initial=0) > 255:  # 16-bit data: scale rather than clip
                    arr = arr / 257.0
                gray = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
                return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except UnidentifiedImageError:
        if looks_like_video_container(p):
            raise MediaError(
                f"not an image (it is a video): {p}", "read it with lfa.media.iter_frames"
            ) from None
        raise MediaError(
            f"not an image: {p}", "pass a PNG, JPEG, BMP, TIFF, GIF or WebP file"
        ) from None
    except (OSError, SyntaxError, ValueError) as e:
        raise MediaError(
            f"truncated or corrupt image: {p} ({e})", "re-download it or re-save it as PNG"
        ) from None


def write_image(path: PathLike, rgb: np.ndarray) -> None:
    """Save (H, W, 3) or (H, W) uint8 as an image; the format follows the extension."""
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise MediaError(
            f"cannot write {path}: expected (H, W, 3) or (H, W) uint8, "
            f"got shape {arr.shape} dtype {arr.dtype}",
            "convert with np.clip(x, 0, 255).astype(np.uint8)",
        )
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": 95} if p.suffix.lower() in (".jpg", ".jpeg", ".webp") else {}
    try:
        Image.fromarray(arr).save(p, **options)
    except (ValueError, KeyError) as e:
        raise MediaError(f"cannot write image {p}: {e}", "use a .png or .jpg file name") from None
