"""Face encoders on tiny randomly initialised networks built here (no downloads)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfa.errors import ConfigError
from lfa.face.align import ARCFACE_112
from lfa.model import FaceInputs, prepare_faces
from lfa.model.encoders import (
    SIGLIP_MEAN,
    ArcFaceEncoder,
    EmbeddingIdentityEncoder,
    VaeDetailEncoder,
    VisionTowerEncoder,
)
from lfa.model.vae import encode_images, patchify


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def tiny_clip(hidden: int = 32, layers: int = 3):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                              num_attention_heads=2, image_size=32, patch_size=8)
    return CLIPVisionModel(config).eval()


def tiny_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                            latents_mean=[0.1, -0.2, 0.3, 0.0], latents_std=[1.5, 2.0, 0.5, 1.0]).eval()


def crops(n: int = 2, size: int = 48) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_prepare_faces_aligns_with_the_arcface_template():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (200, 240, 3), dtype=np.uint8)
    # landmarks = the template moved and scaled: the aligned crop is a pure resample of that square
    landmarks = ARCFACE_112.points * 1.5 + np.array([30.0, 20.0])
    faces = prepare_faces([image, image], [landmarks, landmarks], size=168, angles=[[10, 0, 0], [-60, 5, 2]])
    assert faces.crops.shape == (2, 3, 168, 168) and faces.crops.dtype == torch.float32
    assert 0.0 <= faces.crops.min() and faces.crops.max() <= 1.0
    expected = image[20:20 + 168, 30:30 + 168].astype(np.float32) / 255.0
    got = faces.crops[0].permute(1, 2, 0).numpy()
    assert np.abs(got[4:-4, 4:-4] - expected[4:-4, 4:-4]).mean() < 0.02
    assert faces.angles.shape == (2, 3)


def test_face_inputs_validate_shapes():
    with pytest.raises(ConfigError):
        FaceInputs(torch.rand(2, 3, 32, 40))
    with pytest.raises(ConfigError):
        FaceInputs(torch.rand(2, 3, 32, 32), angles=torch.zeros(2, 2))


def test_vision_tower_tokens_from_chosen_layers(tmp_path):
    model = tiny_clip()
    encoder = VisionTowerEncoder(model, layers=(-2, -1))
    tokens = encoder(FaceInputs(crops()))
    n = (32 // 8) ** 2 + 1  # patches + CLS
    assert tokens.shape == (2, 2 * n, 32) and encoder.token_dim == 32
    hidden = model(pixel_values=torch.zeros(1, 3, 32, 32), output_hidden_states=True).hidden_states
    assert len(hidden) == 4

    model.save_pretrained(tmp_path / "clip")
    loaded = VisionTowerEncoder.from_pretrained(tmp_path / "clip", layers=(-2,))
    torch.testing.assert_close(loaded(FaceInputs(crops())), tokens[:, :n])
    with pytest.raises(ConfigError, match="out of range"):
        VisionTowerEncoder(model, layers=(9,))(FaceInputs(crops()))


def test_siglip_tower():
    from transformers import SiglipVisionConfig, SiglipVisionModel

    config = SiglipVisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                                image_size=32, patch_size=8)
    encoder = VisionTowerEncoder(SiglipVisionModel(config).eval(), mean=SIGLIP_MEAN, std=SIGLIP_MEAN)
    assert encoder(FaceInputs(crops())).shape == (2, 16, 24)


def test_vae_detail_tokens_are_patchified_normalised_latents():
    vae = tiny_vae()
    encoder = VaeDetailEncoder(vae, patch=2, size=32)
    tokens = encoder(FaceInputs(crops()))
    assert tokens.shape == (2, (32 // 8 // 2) ** 2, 4 * 2 * 2) and encoder.token_dim == 16
    images = torch.nn.functional.interpolate(crops(), size=(32, 32), mode="bilinear", antialias=True) * 2 - 1
    raw = vae.encode(images[:, :, None]).latent_dist.mode()[:, :, 0]
    mean = torch.tensor(vae.config.latents_mean).view(1, 4, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, 4, 1, 1)
    torch.testing.assert_close(tokens, patchify((raw - mean) / std, 2))


def test_encode_images_keeps_views_apart():
    vae = tiny_vae()
    views = torch.rand(2, 3, 3, 32, 32) * 2 - 1
    latents = encode_images(vae, views)
    assert latents.shape == (2, 4, 3, 4, 4)
    torch.testing.assert_close(latents[:, :, 1], encode_images(vae, views[:, 1])[:, :, 0])


def test_arcface_ir_encoder_gives_one_unit_token():
    from lfa.face.nets.irse import IRBackbone

    torch.manual_seed(0)
    encoder = ArcFaceEncoder(IRBackbone(50).eval())
    tokens = encoder(FaceInputs(crops(2, 64)))
    assert tokens.shape == (2, 1, 512)
    torch.testing.assert_close(tokens.norm(dim=-1), torch.ones(2, 1))


def test_embedding_identity_encoder_uses_given_or_registered_embeddings():
    given = np.array([[3.0, 4.0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 2.0]], np.float32)
    encoder = EmbeddingIdentityEncoder(8)
    tokens = encoder(FaceInputs(crops(), embeddings=given))
    torch.testing.assert_close(tokens[:, 0, :2], torch.tensor([[0.6, 0.8], [0.0, 0.0]]))

    class Registered:  # the lfa.face.identity.IdentityEncoder protocol
        name, template = "arcface", ARCFACE_112

        def embed_aligned(self, batch: np.ndarray) -> np.ndarray:
            assert batch.shape == (2, 112, 112, 3) and batch.dtype == np.uint8
            return np.tile(np.arange(1, 9, dtype=np.float32), (len(batch), 1))

    tokens = EmbeddingIdentityEncoder(8, Registered())(FaceInputs(crops()))
    torch.testing.assert_close(tokens.norm(dim=-1), torch.ones(2, 1))
    with pytest.raises(ConfigError, match="no identity embeddings"):
        EmbeddingIdentityEncoder(8)(FaceInputs(crops()))
    with pytest.raises(ConfigError, match="identity_dim"):
        EmbeddingIdentityEncoder(16)(FaceInputs(crops(), embeddings=given))


def test_registered_identity_model_embeds_with_its_own_alignment(store):  # store: fails if dlib is missing
    from lfa.samples import sample_photo

    encoder = EmbeddingIdentityEncoder.from_registry("dlib")
    assert encoder.token_dim == 128
    image = sample_photo("grace_hopper")
    landmarks = ARCFACE_112.points * 1.6 + np.array([100.0, 80.0])  # a fixed square; no detector needed
    faces = prepare_faces([image], [landmarks], size=112, identity=encoder.encoder)
    tokens = encoder(faces)
    assert tokens.shape == (1, 1, 128)
    torch.testing.assert_close(tokens.norm(dim=-1), torch.ones(1, 1))
    with pytest.raises(ConfigError, match="ArcFace template"):  # dlib cannot embed ArcFace crops directly
        encoder(FaceInputs(faces.crops))
