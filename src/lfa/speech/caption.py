"""Caption enrichment: the caption states the speaking status and, when the on-screen person speaks,
quotes what they say. A deterministic template; optionally rewritten by a chat model behind an
OpenAI-compatible endpoint (the template stays when that fails, and the failure is returned)."""

from __future__ import annotations

from pathlib import Path

from lfa.endpoints import ChatEndpoint, EndpointError
from lfa.speech.config import SpeechConfig

REWRITE_PROMPT = ("Rewrite this video caption as one fluent caption for text-to-video training. Keep every "
                  "fact. It must state whether the person on screen speaks; if they speak, keep their words "
                  "as a quotation, unchanged. Answer with the caption only.")


def status_sentence(status: str, transcript: str) -> str:
    quote = transcript.strip().replace('"', "'")
    if status == "speaking":
        return f'The person on screen is speaking, saying: "{quote}"' if quote else "The person on screen is speaking."
    if status == "voiceover":
        said = f' saying: "{quote}"' if quote else "."
        return f"The person on screen does not speak; a voice off screen is heard{said}"
    if status == "uncertain":
        said = f', saying: "{quote}"' if quote else ""
        return f"Speech is heard{said}; whether the person on screen is the one speaking is unclear."
    if status == "unknown":
        return "Whether the person on screen speaks could not be determined."
    if status == "non_speech_audio":
        return "The person on screen does not speak; only non-speech sound is heard."
    return "The person on screen does not speak."


def template_caption(base: str | None, status: str, transcript: str) -> str:
    sentence = status_sentence(status, transcript)
    base = (base or "").strip()
    if base and not base.endswith((".", "!", "?")):
        base += "."
    return f"{base} {sentence}".strip()


def rewrite_caption(template: str, config: SpeechConfig, cache_dir: Path | None) -> tuple[str, str | None]:
    """(caption, failure): the chat model's rewrite of ``template``, or the template and why not."""
    if not config.rewrite_endpoint:
        return template, None
    try:
        endpoint = ChatEndpoint(config.rewrite_endpoint, config.rewrite_model, api_key_env=config.rewrite_api_key_env,
                                key_setting="speech.rewrite_api_key_env", timeout_s=config.rewrite_timeout_s,
                                retries=config.rewrite_retries, cache_dir=cache_dir)
        answer = endpoint.complete([{"role": "system", "content": REWRITE_PROMPT},
                                    {"role": "user", "content": template}], max_tokens=300)
    except EndpointError as exc:
        return template, exc.message
    return answer, None
