"""Damage for tests: a copy of a video whose chosen audio packets are garbage (as a broken broadcast or
film rip has), everything else copied packet for packet."""

from __future__ import annotations

from pathlib import Path

import av


def corrupt_audio_packets(src: Path, dst: Path, which: tuple[int, ...] = (0,)) -> list[float]:
    """Copy ``src`` to ``dst`` with the audio packets numbered ``which`` (0: the first) overwritten by bytes
    no decoder accepts; returns their times (s)."""
    times = []
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        k = 0
        for packet in inp.demux():
            if packet.dts is None:
                continue
            stream = streams[packet.stream.index]
            if packet.stream.type == "audio":
                if k in which:
                    junk = av.Packet(bytes((i * 97 + 13) % 256 for i in range(packet.size)))
                    junk.pts, junk.dts, junk.time_base = packet.pts, packet.dts, packet.time_base
                    times.append(float(packet.pts * packet.time_base))
                    packet = junk
                k += 1
            packet.stream = stream
            out.mux(packet)
    return times
