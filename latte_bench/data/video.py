"""Video sets on disk: one reader interface over three layouts, and atomic writers.

Readers. :func:`open_videos` turns a path into a :class:`VideoSource`, a sorted list of
:class:`VideoEntry` (a name, a frame count known without decoding, ``read(indices)``):

- a folder of frame folders, ``ROOT/<video>/<frame>.png|jpg`` (StyleGAN-V and Latte's layout;
  frames in the order of the number in their names, :func:`frame_order`; videos by folder name);
- a folder tree of video files (``.mp4 .avi .mov .mkv .webm``, searched recursively, e.g.
  UCF101's ``ROOT/<Class>/<video>.avi``), decoded with PyAV (FFmpeg); or a single video file;
- a ``.npy`` / ``.npz`` array of uint8 videos shaped (N, T, H, W, 3) (:func:`check_video_array`).

Hidden names (a leading dot) are never read: they include every temporary file a
crashed writer leaves (:func:`latte_bench.fsutil.is_data_name`). Symbolic links that loop or
point nowhere are refused with the file named (skipped with ``skip_bad``).

Every frame comes back as uint8 RGB (T, H, W, 3). Grayscale image files (PNG/JPEG mode ``L``)
are repeated to 3 channels, as the StyleGAN-V metrics do before calling the detector; frames
with an alpha channel or more than 8 bits are refused, and so is every array that is not
(N, T, H, W, 3) (grayscale or RGBA arrays included: their shape is ambiguous). Anything
unreadable raises :class:`UserError` naming the file; with ``skip_bad=True`` videos that
cannot be opened (a frame folder with a missing frame included) are skipped and listed in
``VideoSource.skipped`` instead.

Writers (all atomic): :func:`write_video` (H.264 mp4 through PyAV, lossy), :func:`write_frames`
(lossless PNG frames ``000000.png``) and :func:`write_npz` (many videos in one file).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from latte_bench.errors import UserError, literal
from latte_bench.fsutil import atomic_path, is_data_name, sha256_file

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm")
IMAGE_EXTS = (".png", ".jpg", ".jpeg")
ARRAY_EXTS = (".npy", ".npz")
VIDEO_ARRAY_SHAPE = "uint8 videos (N,T,H,W,3)"
MIN_SIDE = 8  # frames narrower than this are an axis read as another (a (T,H,W,1) video read as (N,T,H,W))


@dataclass
class VideoEntry:
    """One video: ``read(indices)`` returns uint8 (len(indices), H, W, 3) RGB frames."""

    name: str
    num_frames: int
    reader: Callable[[Sequence[int]], np.ndarray] = field(repr=False)
    fingerprint: str = field(default="", repr=False)  # what changes when the file changes

    def read(self, indices: Sequence[int]) -> np.ndarray:
        indices = [int(i) for i in indices]
        if indices and (min(indices) < 0 or max(indices) >= self.num_frames):
            raise UserError(f"{self.name}: frame index out of range 0..{self.num_frames - 1}")
        frames = self.reader(indices)
        return _as_rgb_uint8(frames, self.name)


@dataclass
class VideoSource:
    """A sorted set of videos read from ``root`` (``kind``: frames, videos or array)."""

    root: Path
    kind: str
    entries: list[VideoEntry]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> VideoEntry:
        return self.entries[i]

    def fingerprint(self) -> str:
        """sha256 that changes when the videos change (the key of cached real statistics and of work folders).

        It covers the layout, every entry's name, frame count and file stamp (size and mtime; for a
        frame folder the sum of its files' sizes and the newest mtime), and the content: an array file
        by the sha256 of all its bytes, an in-memory array by that of its data; for frame folders and
        video trees a sample of :data:`CONTENT_SAMPLE` videos (all of them when there are no more; else
        those whose names have the lowest sha256): the sha256 of the first and the last frame file of
        each sampled frame folder, of the first and last :data:`SAMPLE_BYTES` bytes of each sampled video file.
        """
        h = hashlib.sha256()
        h.update(f"{self.kind}\n".encode())
        for e in self.entries:
            h.update(f"{e.name}\t{e.num_frames}\t{e.fingerprint}\n".encode())
        if self.kind == "array" and self.root.is_file():
            h.update(f"content\t{file_sha256(self.root)}\n".encode())
        elif self.kind in ("frames", "videos"):
            sample = sorted(self.entries, key=lambda e: hashlib.sha256(e.name.encode()).digest())[:CONTENT_SAMPLE]
            for e in sorted(sample, key=lambda e: e.name):
                h.update(f"content\t{e.name}\t{_content_digest(e.reader)}\n".encode())
        return h.hexdigest()


CONTENT_SAMPLE = 256  # videos of a folder whose bytes are sampled into its fingerprint
SAMPLE_BYTES = 1 << 16  # bytes read from the start and from the end of a sampled video file
_FILE_SHA256: dict[tuple, str] = {}


def _stat_key(path: Path) -> tuple:
    """What changes whenever a file is rewritten (the inode change time too, which no copy tool can restore)."""
    st = os.stat(path)
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def file_sha256(path: Path) -> str:
    """sha256 of all the bytes of ``path``, computed once per process while the file is unchanged."""

    key = _stat_key(path)
    if key not in _FILE_SHA256:
        _FILE_SHA256[key] = sha256_file(path)
    return _FILE_SHA256[key]


def _content_digest(reader) -> str:
    """sha256 of a sample of one video's bytes: its first and last frame files, or its file's first and last bytes."""
    h = hashlib.sha256()
    if isinstance(reader, _FrameFolderReader):
        for p in dict.fromkeys((reader.paths[0], reader.paths[-1])):
            with open(p, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    elif isinstance(reader, _VideoFileReader):
        with open(reader.path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(0)
            h.update(f.read(SAMPLE_BYTES))
            f.seek(max(size - SAMPLE_BYTES, 0))
            h.update(f.read(SAMPLE_BYTES))
    return h.hexdigest()


def open_videos(path: str | os.PathLike, skip_bad: bool = False) -> VideoSource:
    """List the videos at ``path`` (see the module docstring for the layouts)."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"{root}: no such file or folder")
    if root.is_file():
        if root.suffix.lower() in ARRAY_EXTS:
            return _open_array(root)
        if root.suffix.lower() in VIDEO_EXTS:
            return _open_video_files(root.parent, [root], skip_bad)
        raise UserError(f"{root}: not a video set (expected a folder, a video file or a .npy/.npz array)")
    children = sorted((d for d in os.scandir(root) if is_data_name(d.name)), key=lambda d: d.name)
    if not children:
        raise UserError(f"{root}: folder is empty")
    bad: list[tuple[str, str]] = []
    subdirs = [d for d in children if _entry_kind(d, skip_bad, bad) == "dir"]
    if any(_has_images(d.path, skip_bad, bad) for d in subdirs):
        return _open_frame_folders(root, subdirs, skip_bad, bad)
    videos = _find_video_files(root, skip_bad, bad)
    if videos:
        return _open_video_files(root, videos, skip_bad, bad)
    if any(d.name.lower().endswith(IMAGE_EXTS) and _entry_kind(d, True, []) == "file" for d in children):
        raise UserError(f"{root}: holds image files directly; put each video's frames in its own subfolder ROOT/<video>/")
    raise UserError(f"{root}: no frame folders (ROOT/<video>/<frame>.png|jpg) or video files ({' '.join(VIDEO_EXTS)}) found")


# ----------------------------------------------------------------------------------------- readers


def _entry_kind(entry: os.DirEntry, skip_bad: bool, skipped: list) -> str | None:
    """``"dir"``, ``"file"`` or None (anything else) for a directory entry, following symlinks.

    A symlink that loops or dangles raises :class:`UserError` naming it, or with ``skip_bad``
    is added to ``skipped`` (once, under its path) and reported as None.
    """
    try:
        if entry.is_dir():
            return "dir"
        if entry.is_file():
            return "file"
        if entry.is_symlink():
            os.stat(entry.path)  # raises for a dangling link; otherwise a device/socket/fifo
        return None
    except OSError as e:
        msg = f"{entry.path}: cannot follow ({e.strerror}; a symbolic link that loops or points nowhere?); remove or fix it"
        if skip_bad:
            if (entry.path, msg) not in skipped:
                skipped.append((entry.path, msg))
            return None
        raise UserError(msg) from None


def _data_files(folder: str, exts: tuple[str, ...], skip_bad: bool, skipped: list) -> list[os.DirEntry]:
    """The regular files in ``folder`` with one of ``exts``, hidden and temporary names excluded, sorted by name."""
    with os.scandir(folder) as it:
        entries = [d for d in it if is_data_name(d.name) and d.name.lower().endswith(exts)]
    return sorted((d for d in entries if _entry_kind(d, skip_bad, skipped) == "file"), key=lambda d: d.name)


def _has_images(folder: str, skip_bad: bool, skipped: list) -> bool:
    return bool(_data_files(folder, IMAGE_EXTS, skip_bad, skipped))


def _find_video_files(root: Path, skip_bad: bool, skipped: list) -> list[Path]:
    """Video files below ``root`` (recursive; symlinked folders are not entered), sorted by relative path."""
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if is_data_name(d))
        found += [Path(d.path) for d in _data_files(dirpath, VIDEO_EXTS, skip_bad, skipped)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def _open_frame_folders(root: Path, subdirs, skip_bad: bool, bad: list | None = None) -> VideoSource:
    entries, skipped = [], list(bad or [])
    for d in subdirs:
        try:
            frames = _frames_in_order(d.path, skip_bad, skipped)
        except UserError as e:
            if skip_bad:
                skipped.append((d.name, str(e)))
                continue
            raise
        paths = [f.path for f in frames]
        stats = [f.stat() for f in frames]
        stamp = f"{sum(s.st_size for s in stats)}:{max(s.st_mtime_ns for s in stats)}"
        entries.append(VideoEntry(d.name, len(paths), _FrameFolderReader(paths), stamp))
    if not entries:
        raise UserError(f"{root}: no readable frame folders")
    return VideoSource(root, "frames", entries, skipped)


def _frames_in_order(folder: str, skip_bad: bool, skipped: list) -> list[os.DirEntry]:
    """The frame files of one video folder in playing order (:func:`frame_order`)."""
    frames = {f.name: f for f in _data_files(folder, IMAGE_EXTS, skip_bad, skipped)}
    if not frames:
        raise UserError(f"{folder}: video folder has no .png/.jpg frames")
    return [frames[name] for name in frame_order(list(frames), folder)]


_LAST_NUMBER = re.compile(r"([0-9]+)[^0-9]*$")


def frame_order(names: Sequence[str], folder: str | os.PathLike) -> list[str]:
    """The frame file ``names`` of the video folder ``folder`` in playing order.

    A frame's number is the last run of digits in its name without the extension
    (``frame_0001.png``: 1, ``img10.jpg``: 10, ``clip7_0002.png``: 2). Frames play in the order of
    their numbers, which must step evenly (0, 1, 2, ... or a constant step such as 0, 3, 6) and never
    repeat. Names without any number keep the order of the names if they are all of one width
    (``a.png``, ``b.png``). Anything else (a missing frame, a number used twice, numberless names of
    different widths, numberless names beside numbered ones) raises :class:`UserError` naming ``folder``.
    """
    fix = "number the frames evenly (000000.png, 000001.png, ...) or remove the folder ({skip_bad} skips it)"
    where = literal(folder)
    numbered = [(int(m.group(1)), n) for n in names if (m := _LAST_NUMBER.search(os.path.splitext(n)[0]))]
    if not numbered:
        widths = {len(os.path.splitext(n)[0]) for n in names}
        if len(widths) > 1:
            short, long = min(names, key=len), max(names, key=len)
            raise UserError(f"{where}: frame names have no number and differ in width ({literal(short)}, {literal(long)}), "
                            f"so their order is unknown; {fix}", skip_bad=True)
        return sorted(names)
    if len(numbered) < len(names):
        plain = next(n for n in sorted(names) if not _LAST_NUMBER.search(os.path.splitext(n)[0]))
        raise UserError(f"{where}: {literal(plain)} has no number in its name, the other frames do; {fix}", skip_bad=True)
    numbered.sort()
    steps = [b[0] - a[0] for a, b in zip(numbered, numbered[1:])]
    for a, b, step in zip(numbered, numbered[1:], steps):
        if step == 0:
            raise UserError(f"{where}: frame number {a[0]} twice ({literal(a[1])}, {literal(b[1])}); {fix}", skip_bad=True)
    for a, b, step in zip(numbered, numbered[1:], steps):
        if step != min(steps):
            raise UserError(f"{where}: frame numbers jump from {a[0]} to {b[0]} ({literal(a[1])}, {literal(b[1])}; a missing "
                            f"frame?) where the others step by {min(steps)}; {fix}", skip_bad=True)
    return [n for _, n in numbered]


class _FrameFolderReader:
    """Picklable reader for one frame folder (DataLoader workers pickle it)."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        from PIL import Image

        frames = []
        for i in indices:
            p = self.paths[i]
            try:
                with Image.open(p) as im:
                    im.load()
                    frames.append(_pil_to_rgb(im, p))
            except UserError:
                raise
            except Exception as e:  # PIL raises many types for broken files
                raise UserError(f"{p}: cannot read image ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
        return _stack_same_size(frames, [self.paths[i] for i in indices])


def _pil_to_rgb(im, path: str) -> np.ndarray:
    if im.mode == "RGB":
        return np.asarray(im)
    if im.mode == "L":  # grayscale: repeat to 3 channels like StyleGAN-V
        a = np.asarray(im)
        return np.repeat(a[:, :, None], 3, axis=2)
    if im.mode == "P" and "transparency" not in im.info:
        return np.asarray(im.convert("RGB"))
    raise UserError(f"{path}: image mode {im.mode} is not 8-bit RGB or grayscale; convert the frames to RGB")


def _stack_same_size(frames: list[np.ndarray], names: list[str]) -> np.ndarray:
    shape = frames[0].shape
    for f, n in zip(frames, names):
        if f.shape != shape:
            raise UserError(
                f"{n}: mixed resolutions, {f.shape[1]}x{f.shape[0]} versus {shape[1]}x{shape[0]} in {names[0]}; resize all frames to one size"
            )
    return np.stack(frames)


def _open_video_files(root: Path, paths: list[Path], skip_bad: bool, bad: list | None = None) -> VideoSource:
    entries, skipped = [], list(bad or [])
    for p in paths:
        name = p.relative_to(root).as_posix()
        try:
            n = _VideoFileReader(str(p)).num_frames()
            if n <= 0:
                raise UserError(f"{p}: video has no frames")
        except UserError as e:
            if skip_bad:
                skipped.append((name, str(e)))
                continue
            raise
        st = p.stat()
        entries.append(VideoEntry(name, n, _VideoFileReader(str(p)), f"{st.st_size}:{st.st_mtime_ns}"))
    if not entries:
        raise UserError(f"{root}: no readable video files ({len(skipped)} skipped as unreadable)")
    return VideoSource(root, "videos", entries, skipped)


class _VideoFileReader:
    """PyAV (FFmpeg) reader for one file, opened on each call (picklable, no open handles kept).

    Frame ``i`` is the ``i``-th frame in presentation order (the packets' timestamps sorted, as
    decord indexes them; the ``i``-th decoded frame). A read that does not start at frame 0
    seeks to the last keyframe at or before its first frame and decodes forward from it, keeping
    only frames from that keyframe on (leading frames of an open GOP, which reference the
    previous GOP, are never used), so the frames equal those of a full decode from the start;
    files whose packets carry no usable timestamps are decoded from the start. Frames are
    converted to RGB by FFmpeg's swscale, as decord does; one decoding thread, so DataLoader
    workers do not oversubscribe the machine. FFmpeg's log lines are silenced.
    """

    def __init__(self, path: str):
        self.path = path
        self._index = None  # (sorted frame pts, keyframe indices) as int64 arrays, read once per process

    def __getstate__(self):
        return {"path": self.path, "_index": None}

    def _open(self):
        import av

        _quiet_ffmpeg()
        try:
            container = av.open(self.path, metadata_errors="ignore")
        except Exception as e:
            raise UserError(f"{literal(self.path)}: not a readable video (corrupt, truncated or not a video; use {{skip_bad}} "
                            "to skip it)", skip_bad=True) from e
        if not container.streams.video:
            container.close()
            raise UserError(f"{literal(self.path)}: holds no video stream (use {{skip_bad}} to skip it)", skip_bad=True)
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
        return container, stream

    def num_frames(self) -> int:
        """Frame count from the container header, or by reading the packets (no decoding) when it has none."""
        container, stream = self._open()
        try:
            n = int(stream.frames or 0)
            if n <= 0:
                n = sum(1 for packet in container.demux(stream) if packet.size)
            return n
        except Exception as e:
            raise UserError(f"{literal(self.path)}: not a readable video (corrupt or truncated; use {{skip_bad}} to skip it)",
                            skip_bad=True) from e
        finally:
            container.close()

    def _read_index(self, container, stream):
        """Every frame's pts in presentation order and the keyframes' frame indices, from the packets
        alone (no decoding; 8 bytes a frame); False when the timestamps cannot index the frames."""
        pts, keys = [], []
        for packet in container.demux(stream):
            if not packet.size:
                continue
            if packet.pts is None:
                return False
            pts.append(int(packet.pts))
            if packet.is_keyframe:
                keys.append(int(packet.pts))
        order = np.sort(np.asarray(pts, np.int64))
        if not keys or (len(order) > 1 and not (np.diff(order) > 0).all()):
            return False
        return order, np.sort(np.searchsorted(order, np.asarray(keys, np.int64)))

    def _index_once(self):
        if self._index is None:
            container, stream = self._open()
            try:
                self._index = self._read_index(container, stream)
            except Exception:
                self._index = False  # unreadable packets: the decode below names the file
            finally:
                container.close()
        return self._index

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        wanted = set(indices)
        if not wanted:
            return np.zeros((0, 1, 1, 3), np.uint8)
        first = min(wanted)
        index = self._index_once() if first > 0 else False  # from frame 0 no seek is needed (generated clips)
        if index:
            order, key_rank = index
            before = key_rank[key_rank <= first]
            start = int(before[-1]) if len(before) else 0
            got = self._decode(wanted, start, int(order[start]), order)
            if got is None:  # timestamps that do not map to frames: decode everything from the start
                got = self._decode(wanted, 0, None, None)
        else:
            got = self._decode(wanted, 0, None, None)
        if len(got) < len(wanted):
            missing = min(wanted - set(got))
            raise UserError(f"{literal(self.path)}: decoding stopped before frame {missing} (corrupt or truncated video; use "
                            "{skip_bad} to skip it)", skip_bad=True)
        return _stack_same_size([got[i] for i in indices], [f"{self.path}[{i}]" for i in indices])

    def _decode(self, wanted: set, start: int, seek_pts, order) -> dict | None:
        """Frames ``wanted`` as {index: uint8 RGB}, decoding from keyframe ``start`` (at ``seek_pts``).

        ``order``: the sorted frame pts (a frame's index is its position; None: count decoded
        frames from the first). Returns None when a decoded timestamp is not in ``order``.
        """
        from av.video.reformatter import VideoReformatter

        last, got = max(wanted), {}
        container, stream = self._open()
        to_rgb = VideoReformatter()  # one swscale context for the whole video (a new one per frame costs 3x)
        try:
            if seek_pts is not None and start > 0:
                container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
            for n, frame in enumerate(container.decode(stream)):
                if order is None:
                    i = n
                else:
                    i = int(np.searchsorted(order, frame.pts)) if frame.pts is not None else len(order)
                    if i >= len(order) or order[i] != frame.pts or (n == 0 and i > start):
                        return None  # unmapped timestamp, or the seek landed past the keyframe
                if i < start:
                    continue  # before the keyframe in presentation order (an open GOP's leading frames)
                if i in wanted and i not in got:
                    got[i] = to_rgb.reformat(frame, format="rgb24").to_ndarray()
                if i >= last:  # frames come in presentation order: nothing asked for follows
                    break
        except Exception as e:
            raise UserError(f"{self.path}: decoding failed at frames {min(wanted)}..{last} (corrupt or truncated video)") from e
        finally:
            container.close()
        return got


def _quiet_ffmpeg() -> None:
    """Keep FFmpeg's C-level log lines off the terminal (errors reach the user as one UserError line)."""
    import av.logging

    av.logging.set_level(None)


def check_video_array(arr, name: str) -> np.ndarray:
    """``arr`` as uint8 RGB videos (N, T, H, W, 3), N, T >= 1, H, W >= ``MIN_SIDE``; ``name`` names it in errors.

    Every other shape is refused instead of being read with one axis taken for another: a 4-D
    array is one video (T, H, W, C) or grayscale videos (N, T, H, W), and read as the latter a
    (T, H, W, 1) video becomes T videos of H frames at W x 1 pixels; a last axis of 1 or 4 is
    grayscale or RGBA; frames under ``MIN_SIDE`` pixels are an axis out of place. The message
    names the shape received, the one expected and the fix.
    """
    if hasattr(arr, "detach"):  # a torch tensor
        arr = arr.detach().cpu().numpy()
    arr = np.asarray(arr) if not isinstance(arr, np.ndarray) else arr
    if arr.dtype != np.uint8:
        raise UserError(f"{name}: array dtype is {arr.dtype}; expected {VIDEO_ARRAY_SHAPE} in 0..255")
    shape = tuple(arr.shape)
    got, expected = f"{name}: array shape {shape}", f"expected {VIDEO_ARRAY_SHAPE} with H, W >= {MIN_SIDE}"
    if arr.ndim == 4 and shape[-1] == 3:
        raise UserError(f"{got} looks like one video (T,H,W,3); {expected}: save or pass video[None] for a single video")
    if arr.ndim == 4:
        raise UserError(f"{got} has 4 axes (one video (T,H,W,C) or grayscale videos (N,T,H,W)?); {expected}: pass "
                        "video[None] for a single video, np.repeat(videos[..., None], 3, axis=-1) for grayscale ones")
    if arr.ndim != 5:
        raise UserError(f"{got}; {expected}")
    if shape[-1] == 1:
        raise UserError(f"{got} has 1 channel; {expected}: repeat grayscale to RGB with np.repeat(videos, 3, axis=-1)")
    if shape[-1] == 4:
        raise UserError(f"{got} has 4 channels; {expected}: drop the alpha channel with videos[..., :3]")
    if shape[-1] != 3:
        raise UserError(f"{got}: the last axis is not 3 RGB channels; {expected}: move the channel axis last "
                        "(videos.transpose(0, 1, 3, 4, 2) for (N,T,3,H,W))")
    if shape[0] == 0 or shape[1] == 0:
        raise UserError(f"{got} holds no videos or no frames; {expected}")
    if min(shape[2], shape[3]) < MIN_SIDE:
        raise UserError(f"{got} has frames of {shape[3]}x{shape[2]} pixels (an axis out of place?); {expected}")
    return arr


def _load_array(path: Path) -> np.ndarray:
    """The uint8 video array in ``path`` (memory-mapped for .npy), cached per process."""
    try:
        key = _stat_key(path)  # a file rewritten in place (same size and mtime) is read again
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror}); expected {VIDEO_ARRAY_SHAPE}") from None
    if key not in _ARRAYS:
        try:
            if path.suffix.lower() == ".npy":
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            else:
                with np.load(path, allow_pickle=False) as z:
                    names = list(z.keys())
                    name = "videos" if "videos" in names else (names[0] if len(names) == 1 else None)
                    if name is None:
                        raise UserError(f"{path}: .npz holds {names}; expected one array or one named 'videos'")
                    arr = z[name]
        except UserError:
            raise
        except Exception as e:
            raise UserError(f"{path}: cannot load array ({type(e).__name__}); expected {VIDEO_ARRAY_SHAPE}") from e
        arr = check_video_array(arr, str(path))
        _ARRAYS.clear()  # keep at most one array per process
        _ARRAYS[key] = arr
    return _ARRAYS[key]


_ARRAYS: dict[tuple, np.ndarray] = {}


def _open_array(path: Path) -> VideoSource:
    arr = _load_array(path)
    st = path.stat()
    stamp = f"{st.st_size}:{st.st_mtime_ns}"
    width = len(str(arr.shape[0] - 1))
    entries = [
        VideoEntry(f"{path.name}[{i:0{width}d}]", arr.shape[1], _ArrayReader(path, i), stamp) for i in range(arr.shape[0])
    ]
    return VideoSource(path, "array", entries)


class _ArrayReader:
    """Reads one video of an array file; holds the path only, so workers pickle it cheaply."""

    def __init__(self, path: Path, index: int):
        self.path, self.index = path, index

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        return np.asarray(_load_array(self.path)[self.index, list(indices)])


class MemoryReader:
    """Reads frames of video ``index`` of an in-memory uint8 (N, T, H, W, 3) array (picklable; :func:`check_video_array` first)."""

    def __init__(self, array: np.ndarray, index: int):
        self.array, self.index = array, index

    def __call__(self, indices: Sequence[int]) -> np.ndarray:
        return self.array[self.index, list(indices)]


def _as_rgb_uint8(frames: np.ndarray, name: str) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise UserError(f"{name}: frames are {frames.dtype}, expected uint8")
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise UserError(f"{name}: frames shaped {frames.shape}, expected (T,H,W,3)")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    return np.ascontiguousarray(frames)


# ----------------------------------------------------------------------------------------- writers


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames (T,H,W,3), got {frames.dtype} {frames.shape}")
    return frames


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: int = 8, quality: int = 9) -> Path:
    """Write uint8 (T,H,W,3) frames as an H.264 mp4 (lossy, like Latte's samples; H and W even, >= 2).

    Encodes with PyAV's libx264 exactly as Latte's ``sample_ddp.py`` call
    ``imageio.mimwrite(..., quality=9)`` does: CRF ``int((1 - quality/10)·51)`` (9 → 5),
    preset medium, yuv420p by a bicubic swscale conversion, 8 fps; one encoder thread, so
    the file is the same bytes on every machine with the same FFmpeg build. The frames read
    back differ from the input by compression error; use :func:`write_frames` for exactness.
    """
    import av
    from av.video.reformatter import VideoReformatter

    frames = _check_frames(frames)
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        raise ValueError(f"H.264 yuv420p needs even frame sizes, got {frames.shape[2]}x{frames.shape[1]}")
    if not 1 <= quality <= 10:
        raise ValueError(f"quality must be in 1..10, got {quality}")
    crf = int((1 - quality / 10.0) * 51)  # imageio-ffmpeg's mapping
    _quiet_ffmpeg()
    path = Path(path)
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium", "threads": "1"}
            to_yuv = VideoReformatter()
            for frame in frames:
                yuv = to_yuv.reformat(av.VideoFrame.from_ndarray(frame, format="rgb24"), format="yuv420p", interpolation="BICUBIC")
                container.mux(stream.encode(yuv))
            container.mux(stream.encode(None))
    return path


def write_frames(folder: str | os.PathLike, frames: np.ndarray) -> Path:
    """Write uint8 (T,H,W,3) frames as lossless PNGs ``folder/000000.png`` ... (each atomic)."""
    from PIL import Image

    frames = _check_frames(frames)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
        with atomic_path(folder / f"{t:06d}.png") as tmp:
            Image.fromarray(frame).save(tmp, format="PNG")
    return folder


def write_npz(path: str | os.PathLike, videos: np.ndarray) -> Path:
    """Write uint8 videos (N,T,H,W,3) to one ``.npz`` under the key ``videos`` (atomic)."""
    videos = np.asarray(videos)
    if videos.dtype != np.uint8 or videos.ndim != 5 or videos.shape[-1] != 3:
        raise ValueError(f"expected uint8 videos (N,T,H,W,3), got {videos.dtype} {videos.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, videos=videos)
    return path
