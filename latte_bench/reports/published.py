"""The numbers the Latte paper reports, with where each one was checked.

Source: Ma et al., *Latte: Latent Diffusion Transformer for Video Generation*, arXiv 2401.03048,
**v1 (January 2024)**: Table 3 (FVD, StyleGAN-V protocol ``fvd2048_16f``, 256x256) and Table 5
(FID on FaceForensics frames, video IS on UCF101 with the C3D). Later arXiv versions changed some
Latte rows (Latte issue #115 quotes 97.09 for Taichi-HD, issue #138 about 220 for UCF101), so the
version matters: these rows are v1's.

Every value carries ``verified``: True only when a public source other than memory was found that
states the same number (recorded in ``evidence``). Unverified values are shown in the tables with a
trailing ``†`` and listed in docs/reports.md; treat them as the paper's numbers to be confirmed.
Baseline rows are numbers the Latte authors copied or re-measured; they carry each baseline's own
protocol differences (see metrics_protocol.md §2), which is why a "reported" row is never averaged
with a "measured" one.
"""

from __future__ import annotations

from dataclasses import dataclass

PAPER = "Latte (arXiv 2401.03048 v1)"
DATASETS = ("FaceForensics", "SkyTimelapse", "UCF101", "Taichi-HD")


@dataclass(frozen=True)
class Reported:
    """One published number: ``method`` on ``dataset`` scored ``value`` with ``metric``."""

    method: str
    dataset: str
    metric: str  # "fvd" (Table 3), "fid" or "is" (Table 5)
    value: float
    verified: bool
    evidence: str = ""


_EV_MAGI = "UCF101 column reproduced in the MAGI paper's Table 3 (FVD_256,2048), found via the code search"
_EV_104 = "Vchitect/Latte issue #104 and #135: 'the paper reports an FVD of 34.00' on FaceForensics"
_EV_65 = "Vchitect/Latte issue #65: 'the FVD result of 59.82 in your paper on the SKY dataset'"


def _fvd(method: str, ffs, sky, ucf, taichi, verified=(False, False, False, False), evidence=("", "", "", "")):
    out = []
    for dataset, value, ok, ev in zip(DATASETS, (ffs, sky, ucf, taichi), verified, evidence):
        if value is not None:
            out.append(Reported(method, dataset, "fvd", float(value), ok, ev))
    return out


# Table 3 (v1): FVD, lower is better. None = "-" in the paper (not reported).
TABLE3: tuple[Reported, ...] = tuple(
    _fvd("MoCoGAN", 124.7, 206.6, 2886.9, None, (False, False, True, False), ("", "", _EV_MAGI, ""))
    + _fvd("VideoGPT", 185.9, 222.7, 2880.6, None, (False, False, True, False), ("", "", _EV_MAGI, ""))
    + _fvd("MoCoGAN-HD", 111.8, 164.1, 1729.6, 128.1, (False, False, True, False), ("", "", _EV_MAGI, ""))
    + _fvd("DIGAN", 62.5, 83.11, 1630.2, 156.7, (False, False, True, False), ("", "", _EV_MAGI, ""))
    + _fvd("StyleGAN-V", 47.41, 79.52, 1431.0, None, (False, False, True, False), ("", "", _EV_MAGI, ""))
    + _fvd("PVDM", 355.92, 75.48, 1141.9, 540.2, (False, False, True, False), ("", "", _EV_MAGI, ""))
    + _fvd("MoStGAN-V", 39.70, 65.30, 1380.3, None, (False, False, True, False), ("", "", _EV_MAGI, ""))
    + _fvd("LVDM", None, 95.20, 372.0, 99.0)
    + _fvd(
        "Latte",
        34.00,
        59.82,
        477.97,
        159.60,
        (True, True, True, False),
        (_EV_104, _EV_65, _EV_MAGI + " (rounded there to 477.9); wizwand.com lists 477.9", ""),
    )
    + _fvd("Latte+IMG", 27.08, None, 333.61, None)
)

# Table 5 (v1): FID on FaceForensics (lower is better), IS on UCF101 (higher is better).
# None of these could be confirmed from a stored public source in this session.
TABLE5: tuple[Reported, ...] = (
    Reported("MoCoGAN", "UCF101", "is", 12.42, False),
    Reported("VideoGPT", "UCF101", "is", 24.69, False),
    Reported("MoCoGAN-HD", "FaceForensics", "fid", 7.12, False),
    Reported("MoCoGAN-HD", "UCF101", "is", 32.36, False),
    Reported("DIGAN", "FaceForensics", "fid", 19.1, False),
    Reported("DIGAN", "UCF101", "is", 29.71, False),
    Reported("StyleGAN-V", "FaceForensics", "fid", 9.445, False),
    Reported("StyleGAN-V", "UCF101", "is", 23.94, False),
    Reported("PVDM", "UCF101", "is", 74.40, False),
    Reported("Latte", "FaceForensics", "fid", 5.74, False),
    Reported("Latte", "UCF101", "is", 68.53, False),
    Reported("Latte+IMG", "FaceForensics", "fid", 3.87, False),
    Reported("Latte+IMG", "UCF101", "is", 73.31, False),
)

METHOD_ORDER = (
    "MoCoGAN",
    "VideoGPT",
    "MoCoGAN-HD",
    "DIGAN",
    "StyleGAN-V",
    "PVDM",
    "MoStGAN-V",
    "LVDM",
    "Latte",
    "Latte+IMG",
)


def reported(table: str) -> tuple[Reported, ...]:
    """The published rows of ``table`` ("table3" or "table5")."""
    return {"table3": TABLE3, "table5": TABLE5}[table]
