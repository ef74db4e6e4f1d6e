"""Leaderboards: the paper's Table 3 (FVD), Table 4 (VBench) and Table 5 (FID / IS), published beside measured.

A leaderboard is a tidy :class:`pandas.DataFrame` with one line per (method, column): ``method``,
``source`` (``reported`` = the paper's number from :mod:`latte_bench.reports.published`,
``measured`` = records from the results store), ``column`` (e.g. ``UCF101`` or
``FaceForensics FID``), ``metric``, ``mean``, ``std`` (over seeds, ddof=1; empty for one record),
``n`` (records), ``seeds``, ``ci_low``/``ci_high`` (bootstrap, when computed), ``note`` (what
the row label shows in brackets: its nonstandard tags, then settings that tell it from a sibling
row), ``nonstandard`` (``;``-joined tags: where a measured row departs from its column's protocol,
:func:`latte_bench.reports.store.nonstandard_tags`), ``footnote`` (reported rows: another paper
revision's value) and ``records``. :func:`to_markdown` pivots it to the paper's layout; :func:`write_table` writes the
Markdown and CSV atomically.

Table 4 has one column per VBench dimension (percent). Its measured rows hold temporal flickering
(``--metrics flicker``, times 100) and show every other dimension as :data:`NOT_MEASURED`.

:func:`record_uncertainty` gives a single record's FVD/FID se and N → ∞ estimate (docs/uncertainty.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from latte_bench.data.registry import canonical_dataset
from latte_bench.errors import UserError
from latte_bench.fsutil import write_bytes
from latte_bench.reports import published
from latte_bench.reports.store import GENERATED_ONLY, Record, Row, group_rows, metric_family, record_features
from latte_bench.metrics.compare import compare_features
from latte_bench.metrics.uncertainty import frechet_from_features

TABLES = {
    # name: (title, metric families)
    "table3": ("Table 3: FVD (fvd2048_16f, lower is better)", ("fvd",)),
    "table4": ("Table 4: text-to-video on VBench, percent (higher is better)", ("flicker",)),
    "table5": ("Table 5: IS on UCF101 (higher is better), FID on FaceForensics (lower is better)", ("fid", "is")),
    "joint": ("Image-video joint training, zero-shot on UCF101: FVD and FID (lower is better)", ("fvd", "fid")),
}
# (paper dataset, metric family) cells a table shows; measured numbers on other datasets get their own columns
PAPER_CELLS = {
    "table5": {("FaceForensics", "fid"), ("UCF101", "is")},
    "joint": {("UCF101", "fvd"), ("UCF101", "fid")},
}

NOT_MEASURED = "not measured here"
FLICKER_COLUMN = "temporal flickering"  # the VBench dimension that `--metrics flicker` measures

COLUMNS = [
    "method",
    "source",
    "column",
    "metric",
    "mean",
    "std",
    "n",
    "seeds",
    "ci_low",
    "ci_high",
    "note",
    "nonstandard",
    "footnote",
    "printed",
    "records",
]


def _column(table: str, dataset: str, metric: str) -> str:
    """The column a number goes to: the dataset (Table 3), the VBench dimension (Table 4) or dataset and
    metric (``UCF101 IS``)."""
    if table == "table3":
        return dataset
    if table == "table4":
        return FLICKER_COLUMN if metric_family(metric) == "flicker" else metric
    return f"{dataset} {metric_family(metric).upper()}"


def _reported_lines(table: str) -> list[dict]:
    lines = []
    for r in published.reported(table):
        lines.append(
            dict(
                method=r.method,
                source="reported",
                column=_column(table, r.dataset, r.metric),
                metric=r.metric,
                mean=r.value,
                std=math.nan,
                n=math.nan,
                seeds="",
                ci_low=math.nan,
                ci_high=math.nan,
                note="",
                nonstandard="",
                footnote=r.footnote,
                printed=r.printed,
                records=published.PAPER,
            )
        )
    return lines


def _measured_lines(table: str, rows: Iterable[Row]) -> list[dict]:
    rows = list(rows)
    # several metric names of one family for one method (e.g. fvd2048_16f and fvd2048_128f):
    # name the metric in the label so that they are not mistaken for each other
    names: dict[tuple[str, str, str], set[str]] = {}
    for r in rows:
        names.setdefault((r.method, r.dataset, metric_family(r.metric)), set()).add(r.metric)
    lines = []
    for r in rows:
        note = r.note
        if len(names[(r.method, r.dataset, metric_family(r.metric))]) > 1:
            note = ", ".join(x for x in (r.metric, note) if x)
        scale = 1.0
        if table == "table4":  # VBench's scores in [0, 1], shown in percent like the paper; the videos' dataset named
            scale = 100.0
            if r.dataset != GENERATED_ONLY:
                note = ", ".join(x for x in (canonical_dataset(r.dataset), note) if x)
        lines.append(
            dict(
                method=r.method,
                source="measured",
                column=_column(table, canonical_dataset(r.dataset), r.metric),
                metric=r.metric,
                mean=r.mean * scale,
                std=r.std * scale,
                n=len(r.values),
                seeds=" ".join("-" if s is None else str(s) for s in r.seeds),
                ci_low=r.ci[0] * scale if r.ci else math.nan,
                ci_high=r.ci[1] * scale if r.ci else math.nan,
                note=note,
                nonstandard="; ".join(r.nonstandard),
                footnote="",
                printed="",
                records=" ".join(str(p) for p in r.paths),
            )
        )
    return lines


def build_table(table: str, records: Iterable[Record], strict: bool = False, with_reported: bool = True,
                uncertainty: bool = False, against: str | None = None) -> pd.DataFrame:
    """The tidy leaderboard ``table`` ("table3", "table4", "table5" or "joint") from ``records`` (+ the paper's rows).

    ``records``: :class:`latte_bench.reports.store.Record` objects (``load_records`` / ``record_from_dict``).
    A measured row that departs from its column's protocol is labelled with its tags
    (``Latte [3 clips]``); ``strict=True`` refuses it instead (:class:`UserError`).
    Table 5 keeps FID only for FaceForensics and IS only for UCF101 among the paper's datasets,
    as the paper does, and "joint" FVD and FID on UCF101 only; measured numbers on any other
    dataset (e.g. the demo set) get their own column. Table 4 takes the ``flicker`` records into its
    temporal-flickering column, in percent, whatever their dataset (named in the row's label).
    ``uncertainty=True`` adds ``se``, ``inf``, ``inf_low``, ``inf_high`` to FVD/FID rows of a single record
    (:func:`record_uncertainty`): cells show ``value ± se`` and a ``<column> FVD∞`` column the N → ∞ estimate.
    ``against=METHOD`` adds ``p_against``: the p-value of the difference between a single-record measured FVD/FID
    row and METHOD's single-record row of the same column (:func:`latte_bench.metrics.compare.compare_features`,
    when both records stored features); cells not significantly different at 5% are marked ``≈``.
    """
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}; choose from {sorted(TABLES)}")
    fams = TABLES[table][1]
    records = list(records)
    rows = group_rows(records, fams, strict=strict)
    if table in PAPER_CELLS:
        keep = PAPER_CELLS[table]
        paper = set(published.DATASETS)
        rows = [
            r for r in rows
            if canonical_dataset(r.dataset) not in paper or (canonical_dataset(r.dataset), metric_family(r.metric)) in keep
        ]
    lines = (_reported_lines(table) if with_reported else []) + _measured_lines(table, rows)
    df = pd.DataFrame(lines, columns=COLUMNS)
    if uncertainty:
        by_path = {str(r.path): r for r in records}
        found = [record_uncertainty(by_path[line["records"]], line["metric"])
                 if line["source"] == "measured" and line["n"] == 1 and line["records"] in by_path else None
                 for _, line in df.iterrows()]
        for i, key in enumerate(("se", "inf", "inf_low", "inf_high")):
            df[key] = [math.nan if u is None else u[i] for u in found]
        for key in ("ci_low", "ci_high"):  # the percentile bootstrap interval gives way to se and FVD∞
            df[key] = [math.nan if u is not None else v for u, v in zip(found, df[key])]
    if against is not None:
        df["p_against"] = _p_against(df, {str(r.path): r for r in records}, against)
    return df


def _p_against(df: pd.DataFrame, by_path: dict, against: str) -> list[float]:
    """Per line: the p-value of its FD against ``against``'s line in the same column (NaN where untestable)."""
    import numpy as np


    measured = (df["source"] == "measured") & (df["n"] == 1)
    base = {line["column"]: line for _, line in df[measured & (df["method"] == against)].iterrows()}
    if not base:
        raise UserError(f"--against {against}: no measured single-record row of that method; "
                        f"methods: {', '.join(sorted(set(df.loc[measured, 'method'])))}")
    out = []
    for _, line in df.iterrows():
        ref = base.get(line["column"])
        p = math.nan
        if (ref is not None and measured[line.name] and line["method"] != against
                and metric_family(line["metric"]) in ("fvd", "fid")
                and line["records"] in by_path and ref["records"] in by_path):
            fa = record_features(by_path[ref["records"]], ref["metric"])
            fb = record_features(by_path[line["records"]], line["metric"])
            if fa is not None and fb is not None:
                same = fa[0].shape == fb[0].shape and np.array_equal(fa[0], fb[0])
                p = compare_features(fa[0], fa[1], fb[1], real_b=None if same else fb[0]).p_value
        out.append(p)
    return out


def record_uncertainty(record: Record, metric: str) -> tuple[float, float, float, float] | None:
    """``(se, inf, inf_low, inf_high)`` of a record's FVD/FID (docs/uncertainty.md), or None.

    From the record's ``results`` (``se``, ``fvd_inf``, ``fvd_inf_ci``) when it has them, else computed from its
    stored features (:func:`latte_bench.reports.store.record_features`) with the record's covariance and seed.
    """
    fam = metric_family(metric)
    if fam not in ("fvd", "fid"):
        return None
    results = record.raw.get("results") or {}
    entry = results.get(metric) or next((v for k, v in results.items() if metric_family(k) == fam), None)
    if isinstance(entry, dict) and entry.get("se") is not None:
        low, high = entry[f"{fam}_inf_ci"]
        return float(entry["se"]), float(entry[f"{fam}_inf"]), float(low), float(high)
    feats = record_features(record, metric) or record_features(record, fam)
    if feats is None:
        return None

    protocol = record.raw.get("protocol") or {}
    e = frechet_from_features(*feats, metric=fam, covariance=protocol.get("covariance", "biased"),
                              seed=int(record.raw.get("seed") or 0))
    return (e.se, e.inf, *e.inf_ci) if math.isfinite(e.se) else None


# ---------------------------------------------------------------- formatting


def _fmt(x: float, digits: int) -> str:
    return f"{x:.{digits}f}"


_SUPERSCRIPTS = "¹²³⁴⁵⁶⁷⁸⁹"


def footnotes(df: pd.DataFrame) -> dict[str, str]:
    """{footnote text: marker} of the reported cells in ``df``, numbered in order of appearance."""
    texts = [t for t in df["footnote"] if isinstance(t, str) and t]
    return {t: _SUPERSCRIPTS[i] if i < len(_SUPERSCRIPTS) else f"[{i + 1}]" for i, t in enumerate(dict.fromkeys(texts))}


def format_cell(line: pd.Series, digits: int = 2, marks: dict[str, str] | None = None) -> str:
    """A cell's text: a reported number as the paper prints it (``124.7``, ``9.445``; ``202.23 ¹`` with a
    footnote); a measured one as ``412.30 ± 5.10 (n=3)`` or ``412.30 (n=1) [CI 400.1–430.2]``."""
    if line["source"] == "reported":
        note = line["footnote"] if isinstance(line["footnote"], str) else ""
        text = line["printed"] if isinstance(line["printed"], str) and line["printed"] else _fmt(line["mean"], digits)
        return text + (f" {(marks or footnotes(pd.DataFrame([line])))[note]}" if note else "")
    text = _fmt(line["mean"], digits)
    if not math.isnan(line["std"]):
        text += " ± " + _fmt(line["std"], digits)
    elif not math.isnan(line.get("se", math.nan)):
        text += " ± " + _fmt(line["se"], digits) + " se"
    text += f" (n={int(line['n'])})"
    if line.get("p_against", math.nan) >= 0.05:  # NaN compares False: untested rows are not marked
        text += " ≈"
    if not math.isnan(line["ci_low"]):
        text += f" [CI {_fmt(line['ci_low'], 1)}–{_fmt(line['ci_high'], 1)}]"
    return text


def _row_label(line: pd.Series) -> str:
    return f"{line['method']} [{line['note']}]" if line["note"] else line["method"]


def to_wide(df: pd.DataFrame, digits: int = 2, table: str | None = None) -> pd.DataFrame:
    """Paper layout: one line per (method, source), one column per dataset (or dataset+metric).

    ``table="table4"``: the 16 VBench dimensions as columns, and a measured row's cells that have no
    number read :data:`NOT_MEASURED` (elsewhere an empty cell is ``–``)."""
    paper_cols = [c for c in _paper_columns(df) if c in set(df["column"])]
    if table == "table4":
        paper_cols = list(published.VBENCH_DIMENSIONS)
    other_cols = sorted(set(df["column"]) - set(paper_cols))
    cols = paper_cols + other_cols
    if "inf" in df.columns:  # an N -> inf column after each column that has one
        with_inf = {line["column"] for _, line in df.iterrows() if not math.isnan(line["inf"])}
        cols = [x for c in cols for x in ((c, _inf_column(df, c)) if c in with_inf else (c,))]
    order = {m: i for i, m in enumerate(published.METHOD_ORDER)}
    keyed: dict[tuple[str, str], dict[str, str]] = {}
    marks = footnotes(df)
    for _, line in df.iterrows():
        key = (_row_label(line), line["source"])
        keyed.setdefault(key, {})[line["column"]] = format_cell(line, digits, marks)
        if "inf" in df.columns and not math.isnan(line["inf"]):
            keyed[key][_inf_column(df, line["column"])] = (f"{_fmt(line['inf'], digits)} "
                                                           f"[{_fmt(line['inf_low'], 1)}–{_fmt(line['inf_high'], 1)}]")

    def sort_key(key):
        label, source = key
        base = label.split(" [")[0]
        return (source != "reported", order.get(base, len(order)), label)

    out = []
    for key in sorted(keyed, key=sort_key):
        empty = NOT_MEASURED if table == "table4" and key[1] == "measured" else "–"
        out.append({"Method": key[0], "Source": key[1], **{c: keyed[key].get(c, empty) for c in cols}})
    return pd.DataFrame(out, columns=["Method", "Source", *cols])


def _inf_column(df: pd.DataFrame, column: str) -> str:
    fam = metric_family(df[df["column"] == column]["metric"].iloc[0])
    return f"{column} {fam.upper()}∞"


def _paper_columns(df: pd.DataFrame) -> list[str]:
    """The paper's columns in its order: those of the reported rows as they appear, then the rest."""
    cols = list(dict.fromkeys(df[df["source"] == "reported"]["column"]))
    cols += list(published.DATASETS)
    cols += [f"{d} {m}" for d in published.DATASETS for m in ("FVD", "FID", "IS", "KVD")]
    return list(dict.fromkeys(cols))


def markdown_table(wide: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency); ``|`` in cells is escaped."""
    head = [str(c) for c in wide.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"]
    for _, row in wide.iterrows():
        lines.append("| " + " | ".join(str(v).replace("|", "\\|") for v in row.values) + " |")
    return "\n".join(lines)


def _table4_notes() -> list[str]:
    return [
        "`reported` = VBench score in percent printed in " + published.PAPER + " (Table 4); "
        + published.TABLE4_HEADERS_NOTE + ".",
        "`measured` = VBench's temporal flickering (`latte-bench eval --metrics flicker`) × 100, mean ± std over "
        "seeds (n records), of the videos each record scored (its dataset in brackets): every video, without "
        "VBench's static filter and prompt suite, so it is not comparable with the reported column "
        "(docs/t2v.md).",
        f"`{NOT_MEASURED}`: VBench's other dimensions score with networks (DINO, CLIP, RAFT, AMT, MUSIQ, the LAION "
        "aesthetic head, GRiT, UMT, Tag2Text, ViCLIP) whose weights VBench downloads at run time.",
    ]


def to_markdown(df: pd.DataFrame, table: str, title: str | None = None, footer: str = "") -> str:
    title = title or TABLES[table][0]
    if table == "table4":  # two blocks of eight dimensions, as the paper prints them
        wide = to_wide(df, table=table)
        half = 2 + len(published.VBENCH_DIMENSIONS) // 2
        blocks = [wide.iloc[:, :half], wide.iloc[:, [0, 1, *range(half, wide.shape[1])]]]
        notes = _table4_notes() + ([footer] if footer else [])
        return (f"### {title}\n\n" + "\n\n".join(markdown_table(b) for b in blocks) + "\n\n"
                + "\n".join(f"- {n}" for n in notes) + "\n")
    notes = [
        "`reported` = number printed in " + published.PAPER + ". `measured` = mean ± std over seeds "
        "(n records) from this results store, with an interval stored in older records (`bootstrap`) where present.",
        "A measured row tagged `[...]` departs from its column's protocol (2,048 clips of 16 frames, the "
        "paper's strides and resize) in what the tag names, e.g. `[3 clips]`, and is not "
        "comparable with the reported numbers; untagged rows followed the protocol.",
    ]
    for lines in df[df["source"] == "reported"].groupby("footnote", sort=False):
        text = lines[0]
        if isinstance(text, str) and text:
            first = lines[1].iloc[0]
            notes.append(f"{footnotes(df)[text]} {first['method']}, {first['column']}: {text}.")
    if "inf" in df.columns and df["inf"].notna().any():
        notes.append("`value ± se`: the standard error of a single evaluation; `FVD∞` (`FID∞`): the bias-corrected "
                     "estimate of the population distance with its 95% interval (docs/uncertainty.md).")
    if footer:
        notes.append(footer)
    return f"### {title}\n\n" + markdown_table(to_wide(df)) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def write_table(df: pd.DataFrame, table: str, out_dir: str | Path, footer: str = "", title: str | None = None) -> tuple[Path, Path, str]:
    """Write ``OUT/<table>.md`` and ``OUT/<table>.csv`` atomically; returns (md, csv, markdown text)."""
    out_dir = Path(out_dir)
    md = to_markdown(df, table, title=title, footer=footer)
    md_path, csv_path = out_dir / f"{table}.md", out_dir / f"{table}.csv"
    write_bytes(md_path, md.encode("utf-8"))
    write_bytes(csv_path, df.to_csv(index=False, float_format="%.6g").encode("utf-8"))
    return md_path, csv_path, md


# ---------------------------------------------------------------- bootstrap
