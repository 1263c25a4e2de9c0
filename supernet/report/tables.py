"""The report's tables: Markdown rendering, the selected-model table, the top-N archs, the header.

Numbers are printed as found; a figure a file does not hold is printed as ``n/a``, never estimated.
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import re
from typing import Any, Mapping, Sequence

from supernet.utils import cpu_model

__all__ = ["NA", "fmt", "md_table", "flatten", "eval_summary", "EVAL_FIELDS", "selected_table", "top_archs_table",
           "cpu_model", "header_lines"]  # fmt: skip

NA = "n/a"

# (column, candidate keys in the flattened eval JSON, kind). The first key present wins; see
# docs/report.md for the schema ``supernet run`` writes to ``eval/<target>.json``.
EVAL_FIELDS: list[tuple[str, tuple[str, ...], str]] = [
    ("WER (mean)", ("wer", "wer_mean", "test/wer", "mean/wer"), "pct"),
    ("params", ("params", "costs/params", "num_parameters"), "count"),
    ("FLOPs", ("flops", "costs/flops"), "count"),
    ("latency p50 (ms)", ("latency_ms/p50", "latency_p50_ms", "latency/p50_ms", "latency_ms/median", "latency_ms"), "num"),
    ("latency p90 (ms)", ("latency_ms/p90", "latency_p90_ms", "latency/p90_ms"), "num"),
    ("RTF", ("rtf", "rtf/p50", "costs/rtf"), "num"),
    ("chunk latency (ms)", ("chunk_latency_ms/p50", "chunk_latency_ms", "chunk_latency/p50_ms"), "num"),
    ("streaming WER", ("streaming_wer", "streaming/wer", "wer_streaming"), "pct"),
    ("export parity (max abs diff)", ("export/parity_max_abs_diff", "export_parity", "export/parity", "parity"), "parity"),
]
_SET = tuple(re.compile(p) for p in (r"^wer/set/(.+)$", r"^wer_per_set/(.+)$", r"^(?:test/)?sets/([^/]+)/wer$"))
_LANG = tuple(re.compile(p) for p in (r"^wer/lang/(.+)$", r"^wer_per_language/(.+)$", r"^(?:test/)?langs/([^/]+)/wer$"))


def fmt(value: Any, kind: str = "num") -> str:
    """One cell: ``pct`` (fraction -> percent), ``count`` (1.2M), ``num`` (4 significant digits),
    ``parity`` (largest difference); None / NaN -> ``n/a``."""
    if value is None or isinstance(value, bool) and kind != "parity":
        return NA
    if kind == "parity" and isinstance(value, bool):
        return "ok" if value else "FAILED"
    if isinstance(value, str):
        return value
    v = float(value)
    if math.isnan(v):
        return NA
    if kind == "pct":
        return f"{100 * v:.2f}%"
    if kind == "count":
        for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= div:
                return f"{v / div:.3g}{unit}"
        return f"{v:.0f}"
    if kind == "parity":
        return f"{v:.2e}"
    return f"{v:.4g}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table (``|`` inside cells escaped)."""
    esc = lambda c: str(c).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings joined with ``/`` (lists are kept as values)."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, f"{name}/"))
            if not v:
                out[name] = None
        else:
            out[name] = v
    return out


def _leaf_max(v: Any) -> Any:
    """A parity entry as one number: the largest numeric leaf of a nested mapping."""
    if isinstance(v, Mapping):
        if "max_abs_diff" in v:
            return _leaf_max(v["max_abs_diff"])
        leaves = [x for x in (_leaf_max(x) for x in v.values()) if isinstance(x, (int, float)) and not isinstance(x, bool)]
        return max(leaves) if leaves else (v.get("ok") if "ok" in v else None)
    return v


def eval_summary(data: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one ``eval/<target>.json``: ``{"sets": {name: wer}, "langs": {code: wer},
    column: value or None}`` for every column of :data:`EVAL_FIELDS`."""
    body = {k: v for k, v in data.items() if k != "utterances"}
    flat = flatten(body)
    out: dict[str, Any] = {"sets": {}, "langs": {}}
    for k, v in flat.items():
        for pats, dest in ((_SET, "sets"), (_LANG, "langs")):
            for p in pats:
                m = p.match(k)
                if m and isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[dest].setdefault(m.group(1), float(v))
    for col, keys, kind in EVAL_FIELDS:
        value = None
        for k in keys:
            if kind == "parity":
                value = _leaf_max(_get(body, k))
            elif k in flat and not isinstance(flat[k], list):
                value = flat[k]
            if value is not None:
                break
        out[col] = value
    return out


def _get(d: Mapping[str, Any], path: str) -> Any:
    cur: Any = d
    for part in path.split("/"):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def selected_table(targets: Mapping[str, Any], baseline: Mapping[str, Any] | None = None) -> str:
    """One row per target: the selected model's test figures (from ``eval/<target>.json``); a
    last row for the baseline when ``baseline`` (``eval/baseline.json``) is given."""
    summaries = {name: eval_summary(t.eval) if t.eval is not None else None for name, t in targets.items()}
    every = [v for v in summaries.values() if v] + ([eval_summary(baseline)] if baseline is not None else [])
    sets = sorted({s for v in every for s in v["sets"]})
    langs = sorted({s for v in every for s in v["langs"]})
    headers = ["target", "arch"] + [f"WER {s}" for s in sets] + [f"WER [{lang}]" for lang in langs] + [c for c, _, _ in EVAL_FIELDS]
    rows = []
    for name, t in targets.items():
        s = summaries[name]
        arch = (t.eval or {}).get("arch_id") or (t.summary.get("selected") or {}).get("arch_id") or NA
        if s is None:
            rows.append([name, arch] + [NA] * (len(headers) - 2))
            continue
        rows.append([name, arch] + [fmt(s["sets"].get(x), "pct") for x in sets] + [fmt(s["langs"].get(x), "pct") for x in langs]
                    + [fmt(s[c], kind) for c, _, kind in EVAL_FIELDS])  # fmt: skip
    if baseline is not None:
        s = eval_summary(baseline)
        rows.append([f"baseline ({baseline.get('name') or baseline.get('model') or 'hand-designed'})", "-"]
                    + [fmt(s["sets"].get(x), "pct") for x in sets] + [fmt(s["langs"].get(x), "pct") for x in langs]
                    + [fmt(s[c], kind) for c, _, kind in EVAL_FIELDS])  # fmt: skip
    return md_table(headers, rows)


def top_archs_table(records: Sequence[Any], fitness: Any, metrics: Sequence[str], n: int = 5) -> tuple[str, list[Any]]:
    """The ``n`` fittest archs side by side (one column per arch). Returns (Markdown, records)."""
    from supernet.space import BLOCK_FIELDS

    top = sorted(records, key=lambda r: (fitness(r.arch, r.metrics), r.number))[:n]
    if not top:
        return "(no evaluated archs)", []
    rows: list[list[Any]] = [["trial"] + [r.number for r in top], ["arch id"] + [r.arch.id for r in top],
                             ["strategy"] + [r.strategy or NA for r in top],
                             ["feasible"] + ["yes" if fitness.feasible(r.arch, r.metrics) else "no" for r in top]]  # fmt: skip
    for m in metrics:
        kind = "pct" if m.startswith("wer") or m == "cer" else ("count" if m in ("params", "flops") else "num")
        rows.append([m] + [fmt(r.metrics.get(m), kind) for r in top])
    rows += [["feature"] + [f"{r.arch.feature}/{r.arch.subsampling}" for r in top], ["width"] + [r.arch.width for r in top],
             ["depth"] + [r.arch.depth for r in top]]  # fmt: skip
    for i in range(max(len(r.arch.layers) for r in top)):
        cells = []
        for r in top:
            la = r.arch.layers[i] if i < len(r.arch.layers) else None
            if la is None or la.block == "skip":
                cells.append("-")
                continue
            args = [str(getattr(la, f)) if f == "attention" else f"{f[0]}{getattr(la, f)}" for f in BLOCK_FIELDS[la.block]]
            cells.append(la.block + (f"({','.join(args)})" if args else ""))
        rows.append([f"layer {i}"] + cells)
    rows += [["decoder"] + [r.arch.describe().split("] ", 1)[-1] for r in top]]
    return md_table(["", *[f"#{k + 1}" for k in range(len(top))]], rows), top




def header_lines(provenance: Mapping[str, Any] | None, config_hash: str | None, threads_fallback: int | None = None) -> list[str]:
    """The report's header: machine, torch threads, versions, date, run config hash."""
    import torch

    from supernet.utils import versions

    prov = provenance or {}
    machine = prov.get("machine") or {}
    recorded = bool(machine)
    cpu = machine.get("cpu_model") or cpu_model()
    cores = machine.get("cpu_count") or os.cpu_count()
    threads = machine.get("torch_threads") or threads_fallback or torch.get_num_threads()
    vers = prov.get("versions") or versions()
    src = "from the run's provenance.json" if recorded else "provenance.json missing: this machine, now"
    return [
        f"- machine: {cpu}, {cores} cores ({machine.get('platform') or platform.platform()}; {src})",
        f"- torch threads: {threads}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(vers.items())),
        f"- report written: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- run config hash: {config_hash or NA}" + ("" if config_hash else " (run.yaml missing)"),
        f"- seed: {prov.get('seed') if prov.get('seed') is not None else NA}",
    ]
