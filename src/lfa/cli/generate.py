"""``lfa generate``: a video of the person in a photo, from a Wan base and a trained identity adapter."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from lfa.errors import ConfigError

out = Console()


def generate(
    base: Path = typer.Option(..., "--base", help="Wan diffusers directory (or a name from `lfa models add`)."),
    adapter: Path = typer.Option(..., "--adapter", help="The adapter/ folder `lfa train` wrote."),
    face: list[Path] = typer.Option(None, "--face", help="Face photo; repeat for several reference views."),
    image: Path = typer.Option(None, "--image", help="First frame: for an image-to-video base (default: the "
                                                     "first --face photo), or a Wan2.2 TI2V base (default: none)."),
    prompt: str = typer.Option("", "--prompt", help="What happens in the video."),
    out_path: Path = typer.Option(..., "--out", help="FILE.mp4, or a folder with --spec."),
    spec: Path = typer.Option(None, "--spec", help="Benchmark spec JSONL: one video per item into --out."),
    negative_prompt: str = typer.Option("", "--negative-prompt", help="What the video should not show."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial noise (same seed, same video)."),
    num_frames: int = typer.Option(None, "--num-frames", help="4n+1 (default: the adapter's training size)."),
    height: int = typer.Option(None, "--height", help="Multiple of 16, 32 for Wan2.2 TI2V (default: the adapter's "
                                                     "training size)."),
    width: int = typer.Option(None, "--width", help="Multiple of 16, 32 for Wan2.2 TI2V (default: the adapter's "
                                                   "training size)."),
    steps: int = typer.Option(30, "--steps", help="Denoising steps."),
    guidance_scale: float = typer.Option(5.0, "--guidance-scale", help="Text guidance."),
    guidance_scale_2: float = typer.Option(None, "--guidance-scale-2", help="Text guidance of a Wan2.2 A14B base's "
                                           "low-noise expert (default: = --guidance-scale)."),
    id_guidance_scale: float = typer.Option(None, "--id-guidance-scale",
                                            help="Identity guidance (default: = --guidance-scale, two branches)."),
    id_scale: float = typer.Option(1.0, "--id-scale", help="Strength of the identity adapter: face "
                                   "cross-attention and LoRA both scale by it (0 = the base model)."),
    face_index: int = typer.Option(None, "--face-index", help="Which face of a photo with several, largest first "
                                   "(default: the spec's reference_box, else the largest)."),
    fps: float = typer.Option(None, "--fps", help="Frame rate of the mp4 (default: the adapter's training rate)."),
    encoders: Path = typer.Option(None, "--encoders", help="Face-encoder spec (default: BASE/lfa_encoders.json)."),
    cpu_offload: bool = typer.Option(False, "--cpu-offload", help="Keep text encoder and VAE on the CPU between uses."),
    vae_tiling: bool = typer.Option(False, "--vae-tiling", help="Decode the video in tiles (less memory)."),
    device: str = typer.Option(None, "--device", help="cuda or cpu (default: cuda when available)."),
) -> None:
    """Generate an identity-preserving video (or one per benchmark item with --spec)."""
    from rich.progress import BarColumn, Progress, TextColumn

    from lfa.bench.spec import load_spec
    from lfa.face import FaceAnalyzer
    from lfa.generate.pipeline import GenerateOptions, IdentityGenerator, generate_spec, pick_faces, write_result
    from lfa.media.image import read_image
    from lfa.registry import ModelStore
    from lfa.registry.directories import resolve_directory

    if spec is None and not face:
        raise ConfigError("no face given", "pass --face PHOTO (or --spec SPEC.jsonl)")
    if spec is None and out_path.suffix.lower() != ".mp4":
        raise ConfigError(f"--out {out_path} is not an .mp4 file", "pass --out video.mp4 (a folder only with --spec)")
    options = GenerateOptions(prompt, negative_prompt, num_frames, height, width, steps, guidance_scale,
                              id_guidance_scale, id_scale, seed, fps, guidance_scale_2)
    base_dir = resolve_directory(ModelStore(), base)
    analyzer = FaceAnalyzer()  # the inputs' faces are checked before the (slow) models load
    if spec is None:
        pick_faces(analyzer, [read_image(p) for p in face], face_index=face_index)
    else:
        for item in load_spec(spec):
            try:
                pick_faces(analyzer, [read_image(p) for p in item.references], boxes=item.boxes, face_index=face_index)
            except ConfigError as exc:
                raise ConfigError(f"spec item {item.id}: {exc.message}", exc.fix) from exc
    generator = IdentityGenerator(base_dir, adapter, encoders_file=encoders, device=device, cpu_offload=cpu_offload,
                                  vae_tiling=vae_tiling, analyzer=analyzer)
    extra = {"base": str(base), "adapter": str(adapter), "model_hashes": generator.model_hashes()}

    def note(message: str) -> None:
        out.print(f"[yellow]{escape(message)}[/]", highlight=False)

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  console=out) as bar:
        if spec is not None:
            task = bar.add_task("videos", total=len(load_spec(spec)))
            generate_spec(generator, spec, out_path, options, face_index=face_index, extra=extra,
                          on_item=lambda _id: bar.advance(task), on_note=note)
            out.print(f"[green]videos[/] → {out_path} (score them: lfa bench --spec {spec} --videos NAME={out_path})",
                      highlight=False)
            return
        task = bar.add_task("denoise", total=steps)
        frames = generator([read_image(p) for p in face], options, face_index=face_index, on_note=note,
                           on_step=lambda i, n: bar.update(task, completed=i),
                           first_frame=None if image is None else read_image(image))
        write_result(frames, out_path, options, {**extra, "faces": [str(p) for p in face],
                                                 "image": None if image is None else str(image)})
    out.print(f"[green]wrote[/] {out_path} ({frames.shape[0]} frames, {frames.shape[2]}x{frames.shape[1]})",
              highlight=False)
