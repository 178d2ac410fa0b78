"""What every config shares (curation and speech, training, the identity adapter): its file, JSON or YAML,
and the one-line error for a key it does not have."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``KEY: VALUE`` pairs of a JSON or YAML file (tried in that order, whatever the suffix)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}", "pass a JSON or YAML file of KEY: VALUE pairs")
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as json_error:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as yaml_error:
            why = " ".join(str(yaml_error).split())
            raise ConfigError(f"{path} is neither JSON ({json_error}) nor YAML ({why})",
                              "fix the syntax: YAML KEY: VALUE lines or a JSON object") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a {type(data).__name__}, not KEY: VALUE pairs",
                          "write YAML KEY: VALUE lines or a JSON object")
    return data


def unknown_key_error(key: str, valid: Mapping[str, Iterable[str]], *, what: str = "config key", prefix: str = "",
                      where: str = "") -> ConfigError:
    """The error for ``key``, which no group of ``valid`` (label -> keys) holds: the closest valid key
    ("did you mean ...?") and every valid key. ``prefix`` (``"tracking."``) goes before the key and the
    suggestion; ``where`` (``"--set"``, a file) after the key."""
    groups = {label: sorted(keys) for label, keys in valid.items()}
    close = difflib.get_close_matches(key, [k for keys in groups.values() for k in keys], n=1)
    hint = f"did you mean {prefix}{close[0]}? " if close else ""
    listing = "; ".join(f"{label}: {', '.join(keys)}" for label, keys in groups.items())
    return ConfigError(f"unknown {what} '{prefix}{key}'" + (f" ({where})" if where else ""), hint + listing)
