"""Training presets: the official Latte configs (``configs/*/*_train.yaml``) and a CPU ``demo``.

:class:`TrainConfig` holds every option of a run as plain values (it is stored in each
checkpoint). :func:`preset` returns the config of a named preset; command-line options
override single fields. ``batch_size`` is per process (the official ``local_batch_size``);
the global batch is ``batch_size · world_size · grad_accum``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from latte_bench.errors import UserError
from latte_bench.data.demo import DEMO_SET
from latte_bench.data.registry import DATASETS, get_dataset


@dataclass
class TrainConfig:
    # data
    dataset: str = "ffs"  # a name of data.registry.DATASETS
    data: str | None = None  # data folder; None for demo = generated in memory
    split: str | None = None  # UCF101 split list (trainlist01.txt), optional
    latents: str | None = None  # pre-encoded latent shards (latte-bench encode) instead of raw data
    num_frames: int = 16
    frame_interval: int = 3
    image_size: int = 256
    num_images: int = 0  # K frames for image-video joint training (official: 8)
    demo_videos: int = 256  # size of the in-memory demo set
    # model
    model: str = "Latte-XL/2"
    variant: int = 1  # Latte model variant (1..4, paper §3.2)
    model_options: dict = field(default_factory=dict)  # extra create_model() arguments (e.g. tiny sizes)
    num_classes: int = 0  # 0: unconditional (the official presets: their DatasetSpec.num_classes)
    class_dropout_prob: float = 0.1
    learn_sigma: bool = True
    prompt_embeds: str | None = None  # model Latte-T2V: prompt embeddings (encode-prompts), prompt k = class k
    # diffusion (Latte: linear betas, epsilon prediction)
    noise_schedule: str = "linear"  # linear (Latte) | squaredcos_cap_v2 (the IDDPM cosine schedule)
    prediction: str = "eps"  # what the model predicts: eps (Latte) | x0 (the clean sample)
    snr_gamma: float = 0.0  # Min-SNR-γ loss weighting (x_0 error weighted min(SNR_t, γ)); 0: uniform MSE (Latte)
    joint_strategy: str = "only_video"  # image-video joint training: "only_video" (official) | "temporal_mask"
    gradient_checkpointing: bool = False
    # latent space
    vae: str = "stabilityai/sd-vae-ft-ema"  # hub id, local folder, or "none" (pixel space)
    vae_scale: float = 0.18215
    vae_batch_frames: int = 64  # frames per VAE encode call
    # optimisation
    steps: int = 1_000_000
    batch_size: int = 5
    grad_accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.0
    lr_schedule: str = "constant"  # constant (official) | cosine (to 0 at `steps`)
    warmup_steps: int = 0  # linear warm-up from 0 over this many optimizer steps
    ema_decay: float = 0.9999
    start_clip_iter: int = 20_000  # optimizer steps before clipping starts (norm only logged before)
    clip_max_norm: float = 0.1
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 elsewhere) | fp32 (exact: no autocast, TF32 off) | bf16 | fp16
    compile: bool = False  # torch.compile each transformer block for training (seconds to minutes of compilation at start)
    distributed: str = "ddp"  # ddp | fsdp
    seed: int = 3407
    # bookkeeping
    out: str = "runs"
    num_workers: int = 8
    log_every: int = 100
    ckpt_every: int = 10_000
    sample_every: int = 0  # write preview videos every N steps (0: never)
    sample_videos: int = 4
    sample_steps: int = 50
    sample_sampler: str = "ddim"
    fvd_every: int = 0  # FVD against fvd_real every N steps (0: never)
    fvd_real: str | None = None
    fvd_videos: int = 256  # generated clips per periodic FVD (2048 for the paper protocol)
    device: str = "auto"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    @property
    def pixel_space(self) -> bool:
        return self.vae.lower() == "none"

    @property
    def diffusion_options(self) -> dict:
        """The options every sampler and loss of this run takes: learn_sigma, noise_schedule, prediction."""
        return diffusion_options(vars(self))


PREDICTIONS = ("eps", "x0")
NOISE_SCHEDULES = ("linear", "squaredcos_cap_v2")


def diffusion_options(info: dict) -> dict:
    """``learn_sigma``, ``noise_schedule`` and ``prediction`` of a run config or checkpoint info (Latte's defaults
    for keys it lacks, e.g. official checkpoints), checked against the values this package implements."""
    options = {"learn_sigma": bool(info.get("learn_sigma", True)), "noise_schedule": str(info.get("noise_schedule", "linear")),
               "prediction": str(info.get("prediction", "eps"))}
    if options["prediction"] not in PREDICTIONS:
        raise UserError(f"prediction {options['prediction']!r}: must be one of {', '.join(PREDICTIONS)}")
    if options["noise_schedule"] not in NOISE_SCHEDULES:
        raise UserError(f"noise schedule {options['noise_schedule']!r}: must be one of {', '.join(NOISE_SCHEDULES)}")
    return options


def _official(dataset: str, joint: bool) -> TrainConfig:
    """Latte's ``configs/<dataset>/<dataset>[_img]_train.yaml``: the dataset's classes and official settings."""
    spec = get_dataset(dataset)
    official = spec.official_img if joint else spec.official
    return TrainConfig(
        dataset=dataset,
        model="Latte-XL/2",
        num_classes=spec.num_classes,
        start_clip_iter=official.start_clip_iter,
        batch_size=4 if joint else 5,
        num_images=8 if joint else 0,
        log_every=official.log_every,
    )


PRESETS: dict[str, TrainConfig] = {
    **{name: _official(name, False) for name, spec in DATASETS.items() if spec.official},
    **{f"{name}_img": _official(name, True) for name, spec in DATASETS.items() if spec.official_img},
    # What `latte-bench demo` trains on one CPU thread in about 9 minutes (529 s in reports/demo/): 16 frames of 16x16 pixels (the
    # I3D needs >= 9 frames; 16 is the FVD protocol), a 4-block Latte-S/4 of width 64, 4 shape classes.
    # Where it departs from Latte's recipe, and why (each measured; docs/training.md, "The demo preset"):
    # - patch 4 (16 tokens per frame): 3.4x cheaper steps than patch 2, and steps are what a tiny model lacks;
    # - x_0-prediction on the cosine schedule, fixed variance: an eps-model this small recovers x_0 at high
    #   noise only through a ~60x error amplification, and its samples stay blobs; a learned variance it
    #   has not learnt yet made DDPM samples pure noise;
    # - Min-SNR-2 loss weighting: the uniform x_0 MSE spends the gradient on high noise, where x_0 is a
    #   blur; weighting each clip's x_0 error by min(SNR_t, 2) keeps each shape's outline from frame to frame
    #   (FVD 162 -> 99 at 6,000 steps; gamma 1 / 5: 101 / 113);
    # - 8,000 steps: the comparison model trains in a second process, which leaves Variant 1 the time;
    # - batch 4, lr 4e-3 with warm-up and cosine decay to 0: at a fixed CPU budget, more and larger steps
    #   beat larger batches, and the decay turns smeared shapes into sharp ones.
    "demo": TrainConfig(
        dataset="demo",
        image_size=DEMO_SET["image_size"],
        num_frames=DEMO_SET["num_frames"],
        frame_interval=DEMO_SET["frame_interval"],
        demo_videos=256,
        model="Latte-S/4",
        model_options={"hidden_size": 64, "depth": 4, "num_heads": 4},
        num_classes=DEMO_SET["num_classes"],
        learn_sigma=False,
        noise_schedule="squaredcos_cap_v2",
        prediction="x0",
        snr_gamma=2.0,
        vae="none",
        steps=8000,
        batch_size=4,
        lr=4e-3,
        lr_schedule="cosine",
        warmup_steps=200,
        ema_decay=0.995,
        start_clip_iter=0,
        clip_max_norm=1.0,
        seed=DEMO_SET["seed"],
        num_workers=0,
        log_every=100,
        ckpt_every=2000,
        sample_steps=25,
    ),
}


def preset(name: str) -> TrainConfig:
    """A fresh copy of preset ``name``."""
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], model_options=dict(PRESETS[name].model_options))


LR_SCHEDULES = ("constant", "cosine")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of optimizer step ``step`` (0-based) under ``cfg``.

    A linear warm-up over ``warmup_steps`` (from lr/warmup_steps to lr), then ``constant``
    (Latte's schedule) or ``cosine``: lr · ½(1 + cos(π·s/S)) with s counted after the warm-up and
    S = ``steps`` − ``warmup_steps``, so the rate reaches 0 at ``steps``. A function of the step
    only, so a resumed run follows the same schedule.
    """
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise UserError(f"--lr-schedule must be one of {', '.join(LR_SCHEDULES)}, not {cfg.lr_schedule!r}")
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    span = max(cfg.steps - cfg.warmup_steps, 1)
    progress = min((step - cfg.warmup_steps) / span, 1.0)
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
