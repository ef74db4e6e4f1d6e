"""The numbers the Latte paper reports: Tables 3, 4 and 5 and the joint-training numbers of its text.

Source: Ma et al., *Latte: Latent Diffusion Transformer for Video Generation* (arXiv 2401.03048), the
revision whose Table 3 has Latte+IMG at 202.23 FVD on UCF101, transcribed cell by cell. Every cell
here equals the paper's (``tests/test_reports.py`` checks each one against an in-repository copy of
the tables).

- ``table3``: FVD (``fvd2048_16f``, StyleGAN-V protocol, 256x256), lower is better.
- ``table5``: video IS on UCF101 (C3D, higher is better) and FID on FaceForensics frames (lower is better).
- ``table4``: text-to-video, VBench's 16 dimensions in percent (higher is better), dataset ``VBench``
  and one metric per dimension (``"temporal flickering"``, ...); headers: :data:`TABLE4_HEADERS_NOTE`.
- ``joint``: image-video joint training strategies, zero-shot on UCF101 (numbers stated in the text):
  FVD and FID of "Only Video" and "Temporal Mask".

A number that another revision of the paper printed differently carries a ``footnote`` naming both
values. Baseline rows are numbers the Latte authors copied or re-measured; they carry each baseline's
own protocol differences (see metrics_protocol.md §2), which is why a "reported" row is never averaged
with a "measured" one.
"""

from __future__ import annotations

from dataclasses import dataclass

from latte_bench.data.registry import paper_titles

PAPER = "Latte (arXiv 2401.03048, revision with Latte+IMG 202.23 on UCF101)"
DATASETS = paper_titles()  # the paper's columns, in its order: FaceForensics, SkyTimelapse, UCF101, Taichi-HD
TABLES = ("table3", "table4", "table5", "joint")


@dataclass(frozen=True)
class Reported:
    """One published number: ``method`` on ``dataset`` scored ``value`` with ``metric`` (``fvd``, ``fid`` or ``is``).

    ``printed``: the number as the paper prints it (``"34.00"``, ``"9.445"``); ``footnote``: empty, or
    the value another revision of the paper printed for this cell.
    """

    method: str
    dataset: str
    metric: str
    value: float
    printed: str
    footnote: str = ""


def _cell(method: str, dataset: str, metric: str, printed: str, table: str) -> "Reported":
    return Reported(method, dataset, metric, float(printed), printed, FOOTNOTES.get((table, method, dataset), ""))


# Cells that another revision of the paper printed differently (paper_tables.md names them).
FOOTNOTES = {
    ("table3", "Latte", "UCF101"): "477.97 in the revision followed here; Vchitect/Latte issue #138 quotes about 220 "
    "as the paper's UCF101 FVD, from another revision",
    ("table3", "Latte+IMG", "UCF101"): "202.23 in the revision followed here; an earlier revision printed 333.61",
}


def _fvd_row(method: str, ffs, sky, ucf, taichi) -> list[Reported]:
    return [_cell(method, d, "fvd", v, "table3") for d, v in zip(DATASETS, (ffs, sky, ucf, taichi)) if v is not None]


# Table 3: FVD, lower is better, as printed. None = "-" in the paper (no value printed).
TABLE3: tuple[Reported, ...] = tuple(
    _fvd_row("MoCoGAN", "124.7", "206.6", "2886.9", None)
    + _fvd_row("VideoGPT", "185.9", "222.7", "2880.6", None)
    + _fvd_row("MoCoGAN-HD", "111.8", "164.1", "1729.6", "128.1")
    + _fvd_row("DIGAN", "62.5", "83.11", "1630.2", "156.7")
    + _fvd_row("StyleGAN-V", "47.41", "79.52", "1431.0", None)
    + _fvd_row("PVDM", "355.92", "55.41", "343.6", "540.2")
    + _fvd_row("MoStGAN-V", "39.70", "65.30", "1380.3", None)
    + _fvd_row("LVDM", None, "95.20", "372.0", "99.0")
    + _fvd_row("VDT", None, None, "225.7", None)
    + _fvd_row("W.A.L.T", None, None, "258.1", None)
    + _fvd_row("Latte", "34.00", "59.82", "477.97", "159.60")
    + _fvd_row("Latte+IMG", "27.08", "42.67", "202.23", "97.09")
)


def _t5_row(method: str, ucf_is: str, ffs_fid: str) -> list[Reported]:
    return [_cell(method, "UCF101", "is", ucf_is, "table5"), _cell(method, "FaceForensics", "fid", ffs_fid, "table5")]


# Table 5: IS on UCF101 (higher is better), FID on FaceForensics (lower is better), as printed.
TABLE5: tuple[Reported, ...] = tuple(
    _t5_row("MoCoGAN", "10.09", "23.97")
    + _t5_row("VideoGPT", "12.61", "22.7")
    + _t5_row("MoCoGAN-HD", "23.39", "7.12")
    + _t5_row("DIGAN", "23.16", "19.1")
    + _t5_row("StyleGAN-V", "23.94", "9.445")
    + _t5_row("PVDM", "60.55", "29.76")
    + _t5_row("Latte", "68.53", "5.02")
    + _t5_row("Latte+IMG", "73.31", "3.87")
)

# Table 4: text-to-video on VBench, percentages as printed, higher is better. VBench's 16 dimensions in its order.
VBENCH_DIMENSIONS = (
    "subject consistency", "background consistency", "temporal flickering", "motion smoothness",
    "dynamic degree", "aesthetic quality", "imaging quality", "object class",
    "multiple objects", "human action", "color", "spatial relationship",
    "scene", "appearance style", "temporal style", "overall consistency",
)
TABLE4_HEADERS_NOTE = ("column headers in VBench's standard order of its 16 dimensions: the copy of the paper "
                       "transcribed here kept two of them (color, scene), which match that order")


def _vbench_row(method: str, *printed: str) -> list[Reported]:
    if len(printed) != len(VBENCH_DIMENSIONS):
        raise ValueError(f"{method}: {len(printed)} cells for {len(VBENCH_DIMENSIONS)} VBench dimensions")
    return [_cell(method, "VBench", dim, v, "table4") for dim, v in zip(VBENCH_DIMENSIONS, printed)]


TABLE4: tuple[Reported, ...] = tuple(
    _vbench_row("ModelScope", "89.87", "95.29", "98.28", "95.79", "66.39", "52.06", "58.57", "82.25",
                "38.98", "92.40", "81.72", "33.68", "39.26", "23.39", "25.37", "25.67")
    + _vbench_row("VideoCrafter", "86.24", "92.88", "97.60", "91.79", "89.72", "44.41", "57.22", "87.34",
                  "25.93", "93.00", "78.84", "36.74", "43.36", "21.57", "25.42", "25.21")
    + _vbench_row("CogVideo", "92.19", "95.42", "97.64", "96.47", "42.22", "38.18", "41.03", "73.40",
                  "18.11", "78.20", "79.57", "18.24", "28.24", "22.01", "7.80", "7.70")
    + _vbench_row("HiGen", "90.07", "93.99", "93.24", "96.69", "99.17", "57.30", "63.92", "86.06",
                  "22.39", "86.20", "86.22", "22.43", "44.88", "24.54", "25.14", "27.14")
    + _vbench_row("OpenSoraPlan", "97.27", "96.24", "99.12", "99.17", "35.28", "59.10", "65.73", "61.53",
                  "24.91", "58.20", "90.90", "49.64", "17.28", "20.04", "19.14", "20.39")
    + _vbench_row("Latte", "88.88", "95.40", "98.89", "94.63", "68.89", "61.59", "61.92", "86.53",
                  "34.53", "90.00", "85.31", "41.53", "36.26", "23.74", "24.76", "27.33")
)

# The paper's text: image-video joint training strategies, zero-shot on UCF101 (FVD, FID; lower is better).
JOINT: tuple[Reported, ...] = (
    _cell("Only Video", "UCF101", "fvd", "705.72", "joint"),
    _cell("Only Video", "UCF101", "fid", "75.98", "joint"),
    _cell("Temporal Mask", "UCF101", "fvd", "589.86", "joint"),
    _cell("Temporal Mask", "UCF101", "fid", "63.36", "joint"),
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
    "VDT",
    "W.A.L.T",
    "ModelScope",
    "VideoCrafter",
    "CogVideo",
    "HiGen",
    "OpenSoraPlan",
    "Latte",
    "Latte+IMG",
    "Only Video",
    "Temporal Mask",
)


def reported(table: str) -> tuple[Reported, ...]:
    """The published cells of ``table`` ("table3", "table4", "table5" or "joint"), each with method, dataset, metric, value."""
    tables = {"table3": TABLE3, "table4": TABLE4, "table5": TABLE5, "joint": JOINT}
    if table not in tables:
        raise ValueError(f"unknown table {table!r}; choose from {', '.join(TABLES)}")
    return tables[table]
