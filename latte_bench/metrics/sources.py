"""The two sides of an evaluation: anything that yields uint8 videos (N, T, H, W, 3).

:func:`as_source` accepts

- a path: frame folders, a video tree, a video file, a ``.npy``/``.npz`` array, or a folder written
  by ``latte-bench sample`` in any format (``videos.npz`` inside included) → :class:`FileSource`;
- a uint8 numpy array or torch tensor (N, T, H, W, 3) in memory → :class:`FileSource` over it (any
  other shape is refused, :func:`latte_bench.data.video.check_video_array`);
- an iterable, or a callable returning one, that yields uint8 batches (B, T, H, W, 3)
  (clean-fid's ``gen=``) → :class:`StreamSource` (read once, in order);
- for the generated side, a :class:`CheckpointSource`: the model is sampled in memory and its
  videos are quantised to uint8 exactly as ``latte-bench sample`` writes them losslessly.

Every source reads a list of :class:`~latte_bench.data.clips.Clip` with :meth:`iter_clips`,
yielding ``(clip, uint8 (T, H, W, 3))`` in order, or ``(clip, UserError)`` for an unreadable clip.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from latte_bench.data.clips import Clip
from latte_bench.data.registry import sampling_defaults
from latte_bench.data.video import VIDEO_ARRAY_SHAPE, MemoryReader, VideoEntry, VideoSource, check_video_array, open_videos
from latte_bench.device import PRECISIONS
from latte_bench.errors import NAME_ONLY, UserError, literal
from latte_bench.metrics.protocol import SamplingSettings
from latte_bench.training.checkpoint import LoadedModel, latent_space, load_model
from latte_bench.training.latents import to_uint8
from latte_bench.training.sampling import generate_latents, video_labels


from latte_bench.options import T2V_PROMPTS  # noqa: F401  (eval --t2v-prompts: its choice list, read here)
from latte_bench.data.prompts import CLASSNAME_TEMPLATE, classname_prompts, prompts_sha256
from latte_bench.training.t2v import (
    Latte1,
    MAX_TOKENS,
    NEGATIVE_PROMPT,
    T2V_DEFAULTS,
    check_sampler,
    is_t2v_folder,
    prompt_embeddings,
    t2v_generator,
)


def as_source(obj, *, side: str, skip_bad: bool = False):
    """The source for ``obj`` (see the module docstring); ``side`` is ``real`` or ``fake`` (for messages)."""
    if isinstance(obj, CheckpointSource):
        if side != "fake":
            raise UserError("a checkpoint can only be the generated side of an evaluation")
        return obj
    if isinstance(obj, (FileSource, StreamSource)):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return FileSource(_open_path(Path(obj), skip_bad), description={"kind": "path", "path": str(obj)})
    if isinstance(obj, (np.ndarray, torch.Tensor)):
        return FileSource.from_array(obj, side)
    if callable(obj) or isinstance(obj, Iterable):
        return StreamSource(obj, side)
    raise UserError(f"{side}: cannot evaluate a {type(obj).__name__}; pass a path, a {VIDEO_ARRAY_SHAPE} array, "
                    "an iterable of such batches, or a checkpoint")


def _open_path(path: Path, skip_bad: bool) -> VideoSource:
    if path.is_dir():
        _refuse_unfinished_samples(path)
        if (path / "videos.npz").is_file():
            return open_videos(path / "videos.npz")  # a `latte-bench sample --format npz` folder
    return open_videos(path, skip_bad=skip_bad)


def _refuse_unfinished_samples(path: Path) -> None:
    """A `latte-bench sample` folder that was interrupted is refused, not read as a smaller set."""
    unfinished = (path / ".parts").is_dir()
    record = path / "samples.json"
    if record.is_file():
        try:
            unfinished = unfinished or json.loads(record.read_text()).get("status") == "sampling"
        except ValueError:
            raise UserError(f"{record}: unreadable samples record; rerun the sample command that made {path}") from None
    if unfinished:
        raise UserError(f"{path}: an unfinished `latte-bench sample` folder (interrupted while sampling); "
                        "rerun the same sample command to finish it")


# ----------------------------------------------------------------------------------- random access


class FileSource:
    """Random-access videos (a :class:`VideoSource` from disk or memory)."""

    stream = False

    def __init__(self, videos: VideoSource, description: dict):
        self.videos = videos
        self.description = {**description, "layout": videos.kind, "videos": len(videos),
                            "skipped_unreadable": [name for name, _ in videos.skipped]}

    @classmethod
    def from_array(cls, arr, side: str) -> "FileSource":
        arr = check_video_array(arr, f"{side} array")
        digest = hashlib.sha256(np.ascontiguousarray(arr).data).hexdigest()
        entries = [VideoEntry(f"{side}[{i:06d}]", arr.shape[1], MemoryReader(arr, i), digest) for i in range(len(arr))]
        return cls(VideoSource(Path(f"<{side} array>"), "array", entries),
                   {"kind": "array", "shape": list(arr.shape), "sha256": digest})

    def fingerprint(self) -> str:
        return self.videos.fingerprint()

    def iter_clips(self, clips: Sequence[Clip], *, batch_size: int, num_workers: int = 0) -> Iterator[tuple[Clip, object]]:
        loader = torch.utils.data.DataLoader(_ClipDataset(self.videos, clips), batch_size=batch_size,
                                             num_workers=num_workers, collate_fn=list)
        for batch in loader:
            for pos, item in batch:
                yield clips[pos], item


class _ClipDataset(torch.utils.data.Dataset):
    """Reads clips; a failure comes back as its :class:`UserError` (worker tracebacks stay out of the terminal)."""

    def __init__(self, source: VideoSource, clips: Sequence[Clip]):
        self.source, self.clips = source, list(clips)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int):
        clip = self.clips[i]
        try:
            return i, self.source.entries[clip.video].read(clip.indices)
        except UserError as e:
            return i, e  # the error itself, so the command line still names its settings by flag


# ------------------------------------------------------------------------------------------ stream


class StreamSource:
    """Videos from an iterable (or a callable returning one) of uint8 batches (B, T, H, W, 3), read once in order."""

    stream = True

    def __init__(self, gen: Callable[[], Iterable] | Iterable, side: str):
        self.gen, self.side = gen, side
        self.description = {"kind": "stream", "type": type(gen).__name__}
        self._used = False

    def fingerprint(self) -> str | None:
        return None  # unknown content: never cached

    def iter_clips(self, clips: Sequence[Clip], *, batch_size: int = 8, num_workers: int = 0) -> Iterator[tuple[Clip, object]]:
        """Clips in video order; stops early when the stream ends (the caller counts what came)."""
        if self._used:
            raise UserError(f"{self.side}: a stream of videos can be read only once; pass a callable that returns a new iterator")
        it = iter(self.gen() if callable(self.gen) else self.gen)
        self._used = not callable(self.gen)
        index, pending = 0, iter(clips)
        clip = next(pending, None)
        for batch in it:
            arr = check_video_array(batch, f"{self.side} stream batch")
            for video in arr:
                while clip is not None and clip.video == index:
                    if max(clip.indices) >= len(video):
                        raise UserError(f"{self.side} stream: video {index} has {len(video)} frames; "
                                        f"{max(clip.indices) + 1} needed")
                    yield clip, np.ascontiguousarray(video[list(clip.indices)])
                    clip = next(pending, None)
                index += 1
                if clip is None:
                    return


# -------------------------------------------------------------------------------------- checkpoint


@dataclass
class CheckpointSource(SamplingSettings):
    """Generated videos sampled from a checkpoint (a file or a run folder), in memory.

    Video ``i`` depends only on ``(seed, i)`` (its noise and label come from its own generators,
    :mod:`latte_bench.training.sampling`). ``cfg_scale=None``: the dataset's default (its
    ``DatasetSpec.guidance`` for a class-conditional model: 7.0 for UCF101; else 1.0). ``labels``: ``random`` (uniform per video, as the official ``sample_ddp.py``)
    or ``balanced`` (video ``i`` gets class ``i % K``). ``batch_size=None``: the evaluation's.

    Text-to-video: ``ckpt`` a Latte-1 folder and ``t2v_prompts="classnames"``: one prompt per class of the
    dataset (:func:`latte_bench.data.prompts.classname_prompts`), video ``i`` gets class ``i % K``'s prompt
    (balanced, whatever ``labels`` says), sampled as ``LattePipeline`` (:mod:`latte_bench.training.t2v`;
    ``cfg_scale=None`` is its 7.5).
    """

    ckpt: str | os.PathLike
    device: object = field(default=None, repr=False)
    _loaded: object = field(default=None, repr=False)
    _space: object = field(default=None, repr=False)
    _t2v: object = field(default=None, repr=False)  # (Latte1, PromptEmbeddings) of a text-to-video checkpoint
    stream = False  # random access: any video can be sampled on its own

    @classmethod
    def from_model(cls, model, latent_space, info: dict, checkpoint: dict, *, device="cpu", **options) -> "CheckpointSource":
        """A source over a model already in memory (e.g. the trainer's EMA); ``info`` as :class:`LoadedModel`'s."""
        return cls(ckpt=f"<in-memory model, step {checkpoint.get('step')}>", device=device,
                   _loaded=LoadedModel(model.eval(), info, checkpoint), _space=latent_space, **options)

    def load(self, device, dataset: str | None = None) -> "CheckpointSource":
        """Load the model (and VAE) onto ``device``; a file that is not a checkpoint is a one-line error.

        ``dataset``: whose class names become the prompts of a text-to-video checkpoint."""

        if self._loaded is None and is_t2v_folder(self.ckpt):
            self._load_t2v(device, dataset)
        elif self.t2v_prompts is not None and self._loaded is None:
            raise UserError(f"{{t2v_prompts}} needs a Latte-1 folder as the checkpoint (transformer/, vae/, ...); "
                            f"{literal(self.ckpt)} is not one", t2v_prompts=NAME_ONLY)
        if self._loaded is None:
            self._loaded = load_model(self.ckpt, self.weights, preset=self.preset, model_name=self.model_name, device=device)
            self._space = latent_space(self._loaded.info, device, vae=self.vae)
            self.device = device
        return self

    def _load_t2v(self, device, dataset: str | None) -> None:
        if self.t2v_prompts is None:
            raise UserError(f"{literal(self.ckpt)} is a text-to-video model (Latte-1): pass {{t2v_prompts}} "
                            "(one prompt per class of {dataset}; docs/t2v.md)", t2v_prompts="classnames", dataset=NAME_ONLY)
        check_sampler(self.sampler)
        prompts = classname_prompts(dataset)
        embeddings = prompt_embeddings(self.ckpt, prompts=prompts, device=device, precision=self.precision)
        latte1 = Latte1.load(self.ckpt, device, vae=self.vae)
        info = {**latte1.info, "num_classes": len(prompts)}
        self._loaded, self._space, self._t2v, self.device = LoadedModel(latte1.model, info, latte1.checkpoint), latte1.latent_space, (latte1, embeddings), device

    @property
    def loaded(self):
        if self._loaded is None:
            raise RuntimeError("CheckpointSource.load(device) must run first")
        return self._loaded

    @property
    def num_classes(self) -> int:
        return int(self.loaded.info.get("num_classes", 0) or 0)

    @property
    def num_frames(self) -> int:
        return int(self.loaded.info["num_frames"])

    def effective_cfg(self, dataset: str | None) -> float:
        """``cfg_scale``, else the dataset's guidance for this model (:func:`~latte_bench.data.registry.sampling_defaults`)."""
        if self.cfg_scale is not None:
            return float(self.cfg_scale)
        if self._t2v is not None:

            return float(T2V_DEFAULTS["cfg_scale"])
        return sampling_defaults(dataset, self.num_classes).cfg_scale

    def label_of(self, indices: Sequence[int]) -> list[int] | None:
        k = self.num_classes
        if not k:
            return None
        if self.labels == "balanced" or self._t2v is not None:
            return [int(i) % k for i in indices]
        return video_labels(self.seed, indices, k)

    def settings(self, dataset: str | None) -> dict:
        """What determines the videos: the checkpoint file (its ``weights`` too) and every sampling setting
        that can move a number (:func:`latte_bench.metrics.protocol.key_settings`), resolved.

        A model in memory (no checkpoint sha256) adds ``weights_sha256`` (:func:`state_dict_sha256`) and
        its diffusion options, so that two models of one name and step never share a work folder.
        """
        out = {"checkpoint": dict(self.loaded.checkpoint), "sampler": self.sampler, "steps": int(self.steps),
               "cfg_scale": self.effective_cfg(dataset), "seed": int(self.seed), "labels": self.labels,
               "precision": self.precision, "vae": self.vae or self.loaded.info.get("vae", "none"),
               "latent_shape": list(self.loaded.latent_shape),
               "uint8": "clamp(floor((x*0.5+0.5)*255+0.5),0,255), as a lossless file of `latte-bench sample`"}
        # the model an official file is read as (latte-bench files carry it); the prompts of a text-to-video one
        for name in ("preset", "model_name", "t2v_prompts"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if not self.loaded.checkpoint.get("sha256"):
            out["weights_sha256"] = state_dict_sha256(self.loaded.model)
            out["diffusion"] = dict(self.loaded.diffusion_options)
        if self._t2v is not None:

            embeddings = self._t2v[1]
            out.update(labels="balanced", t2v_prompts=self.t2v_prompts, prompt_template=CLASSNAME_TEMPLATE,
                       prompts_sha256=prompts_sha256(embeddings.prompts), prompt_embeds_sha256=embeddings.sha256(),
                       negative_prompt=NEGATIVE_PROMPT, max_tokens=MAX_TOKENS, scheduler=self.loaded.checkpoint.get("scheduler"),
                       latent_layout="(C, F, h, w) per video, LattePipeline's")
        return out

    def fingerprint(self) -> str:
        return self.loaded.checkpoint.get("sha256") or state_dict_sha256(self.loaded.model)

    @property
    def description(self) -> dict:
        return {"kind": "checkpoint", "path": str(self.ckpt)}

    def generate(self, indices: Sequence[int], dataset: str | None, progress: bool = False) -> np.ndarray:
        """uint8 videos (len(indices), F, H, W, 3) for the videos ``indices``; ``progress``: show the sampler's
        steps when the batch runs longer than 3 s (:func:`latte_bench.progress.step_bar`)."""
        lm = self.loaded
        if self._t2v is not None:

            latte1, embeddings = self._t2v
            return t2v_generator(latte1, embeddings, seed=self.seed, sampler=self.sampler, steps=int(self.steps),
                                 cfg_scale=self.effective_cfg(dataset), device=self.device,
                                 autocast_dtype=PRECISIONS[self.precision])(list(indices))
        latents, _ = generate_latents(
            lm.model, list(indices), lm.latent_shape, seed=self.seed, sampler=self.sampler, steps=int(self.steps),
            cfg_scale=self.effective_cfg(dataset), num_classes=self.num_classes, labels=self.label_of(indices),
            clip_denoised=self._space.vae is None, **lm.diffusion_options,
            device=self.device, autocast_dtype=PRECISIONS[self.precision], progress=progress)
        return to_uint8(self._space.decode(latents))

    def iter_clips(self, clips: Sequence[Clip], *, batch_size: int, num_workers: int = 0, dataset: str | None = None,
                   on_video: Callable[[int, np.ndarray], None] | None = None,
                   progress: bool = False) -> Iterator[tuple[Clip, object]]:
        """Sample the videos of ``clips`` in batches; ``on_video(i, video)`` sees every whole video (e.g. to save it);
        ``progress``: the sampler's steps of a slow batch (:meth:`generate`)."""
        bs = int(self.batch_size or batch_size)
        for start in range(0, len(clips), bs):
            chunk = clips[start : start + bs]
            videos = self.generate([c.video for c in chunk], dataset, progress)
            for c, video in zip(chunk, videos):
                if on_video is not None:
                    on_video(c.video, video)
                yield c, np.ascontiguousarray(video[list(c.indices)])


def state_dict_sha256(model: torch.nn.Module) -> str:
    """sha256 over every entry of ``model.state_dict()``: its name, dtype, shape and bytes (in name order)."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
