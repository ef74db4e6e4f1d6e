"""Training presets: the official Latte configs (``configs/*/*_train.yaml``) and a CPU ``demo``.

:class:`TrainConfig` holds every option of a run as plain values (it is stored in each
checkpoint); each field that ``latte-bench train`` takes declares its option (flag, help,
effect: :mod:`latte_bench.options`). :func:`preset` returns the config of a named preset;
command-line options override single fields. ``batch_size`` is per process (the official ``local_batch_size``);
the global batch is ``batch_size · world_size · grad_accum``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

from latte_bench.errors import UserError
from latte_bench.data.demo import DEMO_SET
from latte_bench.data.registry import DATASETS, get_dataset
from latte_bench.options import DEVICE, SAMPLERS, Option, yes_no


@dataclass
class TrainConfig:
    # data
    dataset: str = "ffs"  # a name of data.registry.DATASETS
    data: str | None = Option(
        "data folder of the preset's dataset (videos or frame folders)", effect="generated", type=str).field(None)  # None for demo: generated in memory
    split: str | None = Option(
        'UCF101 split list (trainlist01.txt) to train on a subset', effect="generated", type=str).field(None)
    latents: str | None = Option(
        'pre-encoded latent shards from `latte-bench encode`, instead of --data', effect="generated", type=str).field(None)
    num_frames: int = Option('frames per training clip', effect="generated").field(16)
    frame_interval: int = Option('stride between the frames of a clip', effect="generated").field(3)
    image_size: int = Option('frame size in pixels (square)', effect="generated").field(256)
    num_images: int = Option(
        'K single frames per clip for image-video joint training (0: off)', effect="generated").field(0)  # official: 8
    demo_videos: int = Option('size of the generated demo set', effect="generated", minimum=1).field(256)
    # model
    model: str = Option('model size, e.g. Latte-XL/2, Latte-S/2, or Latte-T2V (text-to-video; needs --prompt-embeds)',
                        effect="generated").field("Latte-XL/2")
    variant: int = Option('Latte model variant 1-4 (paper Sec. 3.2)', effect="generated").field(1)
    model_options: dict = Option(
        'extra create_model() options as JSON, e.g. \'{"depth": 4}\'', effect="generated", type=json.loads).field(default_factory=dict)
    num_classes: int = Option(
        'class-conditional model with this many classes (0: unconditional)', effect="generated").field(0)
    class_dropout_prob: float = 0.1
    learn_sigma: bool = Option(
        'yes: the model also predicts the variance, trained by the VB loss (Latte) | no: fixed variance', effect="generated", type=yes_no).field(True)
    prompt_embeds: str | None = Option(
        "Latte-T2V: prompt embeddings from `latte-bench encode-prompts`, one prompt per class in label order",
        effect="generated", type=str).field(None)  # prompt k = class k
    # diffusion (Latte: linear betas, epsilon prediction)
    noise_schedule: str = Option(
        'diffusion betas: linear (Latte) | squaredcos_cap_v2 (cosine)', effect="generated").field("linear")
    prediction: str = Option('model target: eps (Latte) | x0 (the clean sample)', effect="generated").field("eps")
    snr_gamma: float = Option(
        "Min-SNR-gamma loss weighting: each clip's x_0 error counts min(SNR_t, gamma) times (0: uniform MSE, Latte)", effect="generated").field(0.0)
    joint_strategy: str = Option(
        'image-video joint training: only_video | temporal_mask', effect="generated").field("only_video")
    gradient_checkpointing: bool = Option(
        'recompute activations in the backward pass to save memory', effect="digits").field(False)
    # latent space
    vae: str = Option(
        'VAE hub id or folder, or none for pixel space', effect="generated").field("stabilityai/sd-vae-ft-ema")
    vae_scale: float = 0.18215
    vae_batch_frames: int = 64  # frames per VAE encode call
    # optimisation
    steps: int = Option(
        'optimizer steps to train to (with --resume: the new end)', effect="generated", minimum=1).field(1_000_000)
    batch_size: int = Option(
        'clips per process per micro-batch (global batch = batch-size x processes x grad-accum)', effect="generated", minimum=1).field(5)
    grad_accum: int = Option('micro-batches accumulated per optimizer step', effect="generated", minimum=1).field(1)
    lr: float = Option('AdamW learning rate', effect="generated").field(1e-4)
    weight_decay: float = Option('AdamW weight decay', effect="generated").field(0.0)
    lr_schedule: str = Option('constant | cosine (to 0 at --steps)', effect="generated").field("constant")
    warmup_steps: int = Option('linear learning-rate warm-up steps', effect="generated").field(0)
    ema_decay: float = Option('EMA decay per optimizer step', effect="generated").field(0.9999)
    start_clip_iter: int = Option(
        'step from which gradients are clipped (before: norm only logged)', effect="generated").field(20_000)
    clip_max_norm: float = Option('gradient-norm clipping threshold', effect="generated").field(0.1)
    precision: str = Option(
        'auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 | fp16', effect="generated").field("auto")  # fp32: exact (no autocast, TF32 off)
    compile: bool = Option(
        'torch.compile each transformer block (checkpoint names unchanged)', effect="digits").field(False)
    distributed: str = Option('under torchrun: ddp | fsdp', effect="digits").field("ddp")
    seed: int = Option('seed of the weights, data order and noise', effect="draw").field(3407)
    # bookkeeping
    out: str = Option('run folder: config.json, metrics.jsonl, checkpoints/').field("runs")
    num_workers: int = Option('DataLoader worker processes', minimum=0).field(8)
    log_every: int = Option('steps between metrics.jsonl records', minimum=1).field(100)
    ckpt_every: int = Option('steps between checkpoints', minimum=1).field(10_000)
    sample_every: int = Option('steps between preview videos (0: never)', minimum=0).field(0)
    sample_videos: int = Option('preview videos each time', minimum=1).field(4)
    sample_steps: int = Option('sampler steps for previews and periodic FVD', minimum=1).field(50)
    sample_sampler: str = Option('sampler for previews and periodic FVD', choices=SAMPLERS).field("ddim")
    fvd_every: int = Option('steps between FVD evaluations (0: never; needs --fvd-real)', minimum=0).field(0)
    fvd_real: str | None = Option('held-out real videos for the periodic FVD', type=str).field(None)
    fvd_videos: int = Option('generated clips per periodic FVD').field(256)
    device: str = DEVICE.field("auto")

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
