"""Stage 7, captions: from the input's metadata when present; optionally from a VLM behind an
OpenAI-compatible endpoint (e.g. vLLM serving Qwen2.5-VL), with timeouts, retries and a disk cache."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import time
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from lfa.curate.config import CaptionConfig
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
    """Captions an image through ``POST {endpoint}/chat/completions``; answers are cached on disk."""

    def __init__(self, config: CaptionConfig, cache_dir: Path) -> None:
        if not config.vlm_endpoint:
            raise ConfigError("no VLM endpoint configured", "set captions.vlm_endpoint=http://HOST:PORT/v1")
        self.config = config
        self.cache_dir = cache_dir
        cache_dir.mkdir(parents=True, exist_ok=True)

    def caption(self, image: np.ndarray) -> str:
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        key = hashlib.sha256(f"{self.config.vlm_model}\n{self.config.vlm_prompt}\n".encode() + jpeg.tobytes())
        cached = self.cache_dir / f"{key.hexdigest()}.json"
        if cached.is_file():
            return json.loads(cached.read_text())["caption"]
        body = {"model": self.config.vlm_model, "temperature": 0, "max_tokens": 160, "messages": [{
            "role": "user", "content": [
                {"type": "text", "text": self.config.vlm_prompt},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,"
                                                    + base64.b64encode(jpeg.tobytes()).decode()}}]}]}
        caption = self._post(body)
        tmp = cached.with_suffix(".partial")
        tmp.write_text(json.dumps({"caption": caption}))
        tmp.replace(cached)
        return caption

    def _post(self, body: dict) -> str:
        url = self.config.vlm_endpoint.rstrip("/") + "/chat/completions"
        last = ""
        for attempt in range(self.config.retries + 1):
            request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.config.timeout_s) as response:
                    return json.loads(response.read())["choices"][0]["message"]["content"].strip()
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code < 500 and exc.code != 429:
                    break
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
            except (KeyError, IndexError, json.JSONDecodeError) as exc:
                last = f"unexpected answer ({exc})"
                break
            time.sleep(min(0.5 * 2**attempt, 8.0))
        raise LfaError(f"VLM captioning failed at {url}: {last}",
                       "check that the server is up and serves an OpenAI-compatible chat API, or unset "
                       "captions.vlm_endpoint")
