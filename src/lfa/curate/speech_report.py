"""The report's speech section: the status distribution of accepted clips and a few examples with their
mouth-opening and speech-envelope curves."""

from __future__ import annotations

import html

import numpy as np

from lfa.htmlreport import figure_data_uri
from lfa.speech import STATUSES


def speech_section(manifest: list[dict], examples_per_status: int = 2) -> list[str]:
    rows = [m for m in manifest if m.get("speech_status")]
    if not rows:
        return []
    esc = html.escape
    counts = {s: sum(m["speech_status"] == s for m in rows) for s in STATUSES}
    parts = ["<h2>Speech</h2><p>Speaking status of the accepted clips (speech stage): speaking = the visible "
             "mouth follows the words heard; voiceover = speech the mouth does not follow (a still mouth, or one "
             "saying other words); uncertain = speech whose audio-visual evidence is too weak either way; "
             "unknown = the sound could not be analysed (the reason is in the warnings); silent and "
             "non_speech_audio: no speech.</p>",
             "<table><tr><th>status</th><th>clips</th></tr>"]
    parts += [f"<tr><td>{s}</td><td>{n}</td></tr>" for s, n in counts.items()]
    parts.append("</table>")
    examples = [m for s in ("speaking", "voiceover", "uncertain") for m in [r for r in rows if r["speech_status"] == s
                                                                 and r.get("speech_curve_t")][:examples_per_status]]
    if examples:
        parts.append("<div class='grid'>")
        for m in examples:
            parts.append(f"<figure><img alt='speech curves {esc(m['clip_id'])}' src='{_curves(m)}'><figcaption>"
                         f"{esc(m['clip_id'])}: {esc(m['transcript'] or '')}</figcaption></figure>")
        parts.append("</div>")
    return parts


def _curves(m: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array(m["speech_curve_t"], float)
    mouth = np.array([np.nan if v is None else v for v in m["speech_mouth"]], float)
    env = np.array(m["speech_envelope"], float)
    fig, ax = plt.subplots(figsize=(5, 2.6))
    ax.plot(t, mouth, label="mouth opening")
    twin = ax.twinx()
    twin.plot(t, env, color="tab:orange", alpha=0.7, label="voice-band energy")
    for seg in m["speech_segments"] or []:
        colour = {"speaking": "tab:green", "uncertain": "tab:grey"}.get(seg["status"], "tab:red")
        ax.axvspan(seg["start"], seg["end"], color=colour, alpha=0.1)
    score = "–" if m["speech_av_score"] is None else f"{m['speech_av_score']:.2f}"
    lag = "–" if m["speech_lag_s"] is None else f"{m['speech_lag_s']:+.2f} s"
    ax.set(xlabel="t (s)", ylabel="mouth", title=f"{m['speech_status']}: AV score {score}, lag {lag}")
    twin.set_ylabel("voice energy")
    fig.legend(fontsize=7, loc="upper right")
    return figure_data_uri(fig)
