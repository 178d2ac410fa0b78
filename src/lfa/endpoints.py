"""The one client for every model endpoint lfa calls (VLM captions, the speech caption rewrite): an
OpenAI-compatible chat API through the ``openai`` package, with a timeout, retries, a disk cache keyed by
the request, and a key read from an environment variable named in config. The key itself is never
stored: not in the config, the cache, nor the logs."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from lfa.errors import ConfigError, LfaError



class EndpointError(LfaError):
    """The endpoint did not answer usefully (down, timed out, refused the key, malformed answer)."""


def api_key_from(env_name: str | None, setting: str) -> str | None:
    """The key held by the environment variable ``env_name`` (None when no variable is configured)."""
    if not env_name:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise ConfigError(f"{setting} names the environment variable {env_name}, which is not set",
                          f"export {env_name}=YOUR_KEY before running lfa, or unset {setting}")
    return key


class ChatEndpoint:
    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, key_setting: str = "api_key_env",
                 timeout_s: float = 60.0, retries: int = 2, cache_dir: Path | None = None) -> None:
        from openai import OpenAI

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.cache_dir = cache_dir
        # without a configured key a placeholder goes out (local servers ignore it); OPENAI_API_KEY is not read
        key = api_key_from(api_key_env, key_setting) or "no-key"
        self._client = OpenAI(base_url=self.base_url, api_key=key, timeout=timeout_s, max_retries=retries)

    def complete(self, messages: list[dict[str, Any]], *, max_tokens: int = 200) -> str:
        """The answer's text, from the cache when this exact request was answered before."""
        request = {"model": self.model, "messages": messages, "max_tokens": max_tokens, "temperature": 0}
        cached = None
        if self.cache_dir is not None:
            digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
            cached = self.cache_dir / f"{digest}.json"
            if cached.is_file():
                return json.loads(cached.read_text())["answer"]
        answer = self._ask(request)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".{os.getpid()}.partial")
            tmp.write_text(json.dumps({"answer": answer}))
            tmp.replace(cached)
        return answer

    def _ask(self, request: dict[str, Any]) -> str:
        import openai

        fix = "check that the server is up, serves an OpenAI-compatible chat API and accepts the key"
        try:
            response = self._client.chat.completions.create(**request)
            content = response.choices[0].message.content
        except openai.AuthenticationError as exc:
            raise EndpointError(f"{self.base_url} refused the key (HTTP {exc.status_code})",
                                "set the environment variable named in config to a valid key") from None
        except openai.APITimeoutError:
            raise EndpointError(f"{self.base_url} did not answer in time", fix + ", or raise the timeout") from None
        except openai.APIStatusError as exc:
            raise EndpointError(f"{self.base_url} answered HTTP {exc.status_code}", fix) from None
        except openai.APIError as exc:
            raise EndpointError(f"{self.base_url}: {type(exc).__name__}: {exc.message}", fix) from None
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise EndpointError(f"{self.base_url} sent a malformed answer ({type(exc).__name__})", fix) from None
        if not isinstance(content, str) or not content.strip():
            raise EndpointError(f"{self.base_url} sent a malformed answer (no message text)", fix)
        return content.strip()
