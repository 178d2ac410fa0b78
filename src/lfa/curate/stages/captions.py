"""Stage 7, captions: from the input's metadata when present; optionally from a VLM behind an
OpenAI-compatible endpoint (e.g. vLLM serving Qwen2.5-VL), with timeouts, retries and a disk cache."""

from __future__ import annotations

import base64
import csv
import json
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from lfa.curate.config import CaptionConfig
from lfa.endpoints import ChatEndpoint, EndpointError
from lfa.errors import ConfigError, LfaError


@cache
def _metadata_table(path: str) -> dict[str, str]:
    file = Path(path)
    try:
        if file.suffix.lower() == ".csv":
            with open(file, newline="") as fh:
                return {row["file"]: row["caption"] for row in csv.DictReader(fh)}
        data = json.loads(file.read_text())
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read caption metadata {file}: {exc}",
                          "give a CSV with columns file,caption or a JSON object {file: caption}") from None
    return {str(k): str(v) for k, v in data.items()}


def caption_from_metadata(source: Path, config: CaptionConfig) -> tuple[str | None, str | None]:
    """(caption, where it came from): the metadata table, else VIDEO.txt, else a ``caption`` in VIDEO.json."""
    if config.metadata:
        table = _metadata_table(config.metadata)
        for key in (str(source), source.name, source.stem):
            if key in table:
                return table[key], "metadata"
    text = source.with_suffix(".txt")
    if text.is_file():
        return text.read_text().strip(), "sidecar-txt"
    side = source.with_suffix(".json")
    if side.is_file():
        try:
            caption = json.loads(side.read_text()).get("caption")
        except (json.JSONDecodeError, AttributeError):
            caption = None
        if isinstance(caption, str) and caption.strip():
            return caption.strip(), "sidecar-json"
    return None, None


class VlmCaptioner:
    """Captions an image through the configured OpenAI-compatible chat endpoint (:mod:`lfa.endpoints`:
    timeout, retries, the key from ``captions.vlm_api_key_env``, answers cached on disk)."""

    def __init__(self, config: CaptionConfig, cache_dir: Path) -> None:
        if not config.vlm_endpoint:
            raise ConfigError("no VLM endpoint configured", "set captions.vlm_endpoint=http://HOST:PORT/v1")
        self.config = config
        self.endpoint = ChatEndpoint(config.vlm_endpoint, config.vlm_model, api_key_env=config.vlm_api_key_env,
                                     key_setting="captions.vlm_api_key_env", timeout_s=config.timeout_s,
                                     retries=config.retries, cache_dir=cache_dir)

    def caption(self, image: np.ndarray) -> str:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        content = [{"type": "text", "text": self.config.vlm_prompt},
                   {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,"
                                                       + base64.b64encode(jpeg.tobytes()).decode()}}]
        try:
            return self.endpoint.complete([{"role": "user", "content": content}], max_tokens=160)
        except EndpointError as exc:
            raise LfaError(f"VLM captioning failed: {exc.message}",
                           f"{exc.fix}; or unset captions.vlm_endpoint") from None
