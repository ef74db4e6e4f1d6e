"""Latent space: a tiny random diffusers AutoencoderKL through the real code paths (load, encode, shards, train)."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from latte_bench.data.datasets import ClipDataset
from latte_bench.data.demo import make_demo_videos
from latte_bench.errors import UserError
from latte_bench.training.latents import LatentShardDataset, LatentSpace, encode_dataset, load_vae, to_uint8
from latte_bench.training.trainer import train


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, sample_size=16,
    )
    root = tmp_path_factory.mktemp("repo")
    vae.save_pretrained(root / "vae")  # a repository with a vae/ subfolder, like maxin-cn/Latte
    return root


def test_load_vae_from_folder_or_repo_and_errors(vae_dir, tmp_path):
    assert load_vae("none") is None
    direct, via_repo = load_vae(str(vae_dir / "vae")), load_vae(str(vae_dir))
    assert direct.config.latent_channels == 4 and not direct.training
    assert all(torch.equal(a, b) for a, b in zip(direct.state_dict().values(), via_repo.state_dict().values()))
    with pytest.raises(UserError, match="cannot load the VAE"):
        load_vae(str(tmp_path))


def test_encode_decode_shapes_scale_and_frame_batching(vae_dir):
    vae = load_vae(str(vae_dir))
    video = torch.rand(2, 3, 3, 8, 8) * 2 - 1
    space = LatentSpace(vae, batch_frames=2)
    assert (space.channels, space.downsample) == (4, 2)
    moments = space.moments(video)
    assert moments.shape == (2, 3, 8, 4, 4)
    assert torch.allclose(moments, LatentSpace(vae, batch_frames=64).moments(video), atol=1e-6)  # batching does not matter
    expected_mean = vae.encode(video[1, 2:3]).latent_dist.mean
    assert torch.allclose(moments[1, 2, :4], expected_mean[0], atol=1e-5)
    g = torch.Generator().manual_seed(0)
    z = space.sample_moments(moments, g)
    mean, logvar = moments.chunk(2, dim=2)
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(z, (mean + torch.exp(0.5 * logvar) * eps) * 0.18215, atol=1e-6)
    assert space.decode(z).shape == (2, 3, 3, 8, 8)
    pixels = LatentSpace(None)
    assert pixels.encode(video) is video and pixels.channels == 3


def test_to_uint8_rounds_like_latte():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0 / 255, 1.0, 2.0]).reshape(1, 6, 1, 1, 1).expand(1, 6, 3, 1, 1)
    out = to_uint8(x)[0, :, 0, 0, 0].tolist()
    assert out == [0, 0, 128, 128, 255, 255]  # floor(127.5 + 0.5) = 128; floor(128.0 + 0.5) = 128


def test_shards_round_trip_resume_and_training_from_them(vae_dir, tmp_path):
    videos, labels = make_demo_videos(5, num_frames=6, size=8, seed=0, classes=2)
    ds = ClipDataset.from_arrays(videos, labels, num_frames=4, frame_interval=1, image_size=8)
    space = LatentSpace(load_vae(str(vae_dir)))
    out = encode_dataset(ds, space, tmp_path / "lat", shard_size=2, batch_size=2, progress=False,
                         description={"channels": 4, "latent_size": 4})
    assert sorted(p.name for p in out.glob("shard_*")) == [f"shard_0000{i}.safetensors" for i in range(3)]
    shards = LatentShardDataset(out, num_images=2, seed=0)
    assert len(shards) == 5
    item = shards[(3, 0)]
    assert torch.allclose(item["moments"][:4], space.moments(ds[(3, 0)]["video"][None])[0], atol=1e-6)
    assert item["moments"].shape == (6, 8, 4, 4) and item["label"].item() == int(labels[3]) and item["image_labels"].shape == (2,)
    stamp = (out / "shard_00001.safetensors").stat().st_mtime_ns
    (out / "shard_00002.safetensors").unlink()
    encode_dataset(ds, space, out, shard_size=2, batch_size=2, progress=False, description={"channels": 4, "latent_size": 4})
    assert (out / "shard_00002.safetensors").is_file() and (out / "shard_00001.safetensors").stat().st_mtime_ns == stamp

    from test_trainer import tiny  # tests/ is on sys.path under pytest

    cfg = tiny(tmp_path / "run", latents=str(out), vae=str(vae_dir), batch_size=2, steps=2)
    result = train(cfg, progress=False)
    assert result["step"] == 2 and np.isfinite(result["loss"])
    with pytest.raises(UserError, match="latte-bench encode"):
        LatentShardDataset(tmp_path / "nothing")


def test_training_from_pixels_through_the_vae(vae_dir, tmp_path):
    from test_trainer import tiny

    result = train(tiny(tmp_path / "run", vae=str(vae_dir), steps=2, image_size=8), progress=False)
    from latte_bench.training.checkpoint import latest_checkpoint, load_checkpoint

    ckpt = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert ckpt["config"]["latent_channels"] == 4 and ckpt["config"]["latent_size"] == 4
    assert np.isfinite(result["loss"])


def test_encode_command_writes_shards_of_a_folder(vae_dir, tmp_path):
    from latte_bench.cli import main
    from latte_bench.data.demo import write_demo_dataset

    data = write_demo_dataset(tmp_path / "data", n=3, num_frames=5, size=8, classes=2)
    argv = ["encode", "demo", "--data", str(data), "--out", str(tmp_path / "lat"), "--vae", str(vae_dir),
            "--image-size", "8", "--num-frames", "4", "--frame-interval", "1", "--device", "cpu"]
    assert main(argv) == 0
    shards = LatentShardDataset(tmp_path / "lat")
    assert len(shards) == 3 and shards.meta["latent_size"] == 4 and shards.meta["channels"] == 4
    assert [int(shards[i]["label"]) for i in range(3)] == [0, 1, 0]
    assert main(argv[:-4] + ["--vae", "none"]) == 2  # pixel space has nothing to encode
