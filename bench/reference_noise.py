"""How well do the rank check's standalone references agree with themselves?

A rank check compares the supernet's ranking of K archs with the ranking their standalone
training gives. If two training seeds of the same archs (same recipe, same data) rank them
differently, that disagreement is the ceiling on any supernet's tau: the supernet cannot be
checked against a ranking the references do not repeat. This script reads the references of
two or more seeds (``references/<id>.json`` for seed 0, ``<id>.seed<S>.json`` for seed S, as
``supernet rank-check ... reference_seeds=[0, 1]`` or ``reference.seed=S`` writes them), and
rank-check reports whose supernet (and fine-tuned) scores it ranks against each seed and
against the seeds' mean, without retraining anything.

    .venv/bin/python bench/reference_noise.py     # the FSDD references of seeds 0 and 1, the stored reports
    .venv/bin/python bench/reference_noise.py --references A/references B/references --reports R/report.json

Writes bench/results/reference_noise.json (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from statistics import mean, median
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench/results"
DEFAULT_REFERENCES = [RESULTS / "rank_check_fsdd_gpu/references", RESULTS / "rank_check_fsdd_gpu_seed1/references"]
DEFAULT_REPORTS = [RESULTS / f"rank_check_fsdd_{n}/report.json" for n in (
    "gpu", "gpu_prog", "progressive_warmup20_framenorm_s13", "progressive_seed1_s14", "warmstart_framenorm_s13", "cpu_warm",
    "ft_seeds_s15")]
_NAME = re.compile(r"^(?P<id>[0-9a-f]+)(?:\.seed(?P<seed>\d+))?\.json$")


def load_references(dirs: list[Path]) -> dict[int, dict[str, dict[str, Any]]]:
    """{seed: {arch_id: reference row}} from every ``*.json`` reference in ``dirs``."""
    by_seed: dict[int, dict[str, dict[str, Any]]] = {}
    for d in dirs:
        if not d.is_dir():
            raise SystemExit(f"--references {d}: no such folder (give folders of rank-check reference JSONs)")
        for path in sorted(d.glob("*.json")):
            m = _NAME.match(path.name)
            if m is None:
                continue
            seed = int(m["seed"] or 0)
            row = json.loads(path.read_text(encoding="utf-8"))
            if row.get("arch_id") != m["id"] or "best" not in row:
                raise SystemExit(f"{path}: not a rank-check reference (needs arch_id {m['id']!r} and best scores)")
            if m["id"] in by_seed.get(seed, {}):
                raise SystemExit(f"{path}: a second seed-{seed} reference for {m['id']} (give each seed's folder once)")
            by_seed.setdefault(seed, {})[m["id"]] = row
    if len(by_seed) < 2:
        raise SystemExit(f"--references: found seeds {sorted(by_seed)}; need two or more to compare")
    return by_seed


def analyse(by_seed: dict[int, dict[str, dict[str, Any]]], reports: list[dict[str, Any]], *,
            samples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Seed-against-seed agreement and each report's correlations against every seed and the mean."""
    from supernet.evaluation.ranking import rank_correlations

    seeds = sorted(by_seed)
    ids = sorted(set.intersection(*(set(v) for v in by_seed.values())))
    if len(ids) < 3:
        raise SystemExit(f"only {len(ids)} archs have a reference for every seed {seeds}; need 3 or more")
    corr = lambda x, y: {k: v.to_dict() for k, v in rank_correlations(x, y, samples=samples, seed=seed).items()}  # noqa: E731
    score = lambda s, a, m: by_seed[s][a]["best"][m]  # noqa: E731
    out: dict[str, Any] = {"seeds": seeds, "archs": [], "agreement": [], "reports": []}
    for a in ids:
        row = {"arch_id": a, "params": by_seed[seeds[0]][a]["best"].get("costs", {}).get("params")}
        for s in seeds:
            ref = by_seed[s][a]
            row[f"seed{s}"] = {"wer": score(s, a, "wer"), "loss": score(s, a, "loss"),
                               "converged": ref.get("converged"), "final_step": ref.get("final_step")}
        out["archs"].append(row)

    def agree(archs: list[str], **extra: Any) -> None:  # every pair of seeds, ranked over ``archs``
        for i, s in enumerate(seeds):
            for t in seeds[i + 1:]:
                out["agreement"].append({"seeds": [s, t], **extra, **{
                    m: corr([score(s, a, m) for a in archs], [score(t, a, m) for a in archs]) for m in ("wer", "loss")}})

    agree(ids)
    # the same without the archs some seed did not converge for (stalled on a plateau, say)
    conv = [a for a in ids if all(by_seed[s][a].get("converged") for s in seeds)]
    out["converged_in_every_seed"] = conv
    if len(conv) >= 3:
        agree(conv, converged_only=True)
    wer_gap = [abs(score(seeds[0], a, "wer") - score(seeds[1], a, "wer")) for a in conv]
    out["noise"] = {"median_abs_wer_difference_between_seeds_converged": median(wer_gap) if wer_gap else None,
                    "wer_range_over_archs": {str(s): [min(score(s, a, "wer") for a in ids), max(score(s, a, "wer") for a in ids)]
                                             for s in seeds}}
    for rep in reports:
        rows = {r["arch_id"]: r for r in rep["archs"]}
        missing = [a for a in ids if a not in rows]
        if missing:
            raise SystemExit(f"report {rep['_path']}: no row for archs {missing} (was it made with other references?)")
        entry = {"report": rep["_path"], "supernet": rep["supernet"]}
        for source in ("supernet", "finetuned"):
            if source not in rows[ids[0]]:
                continue
            for m in ("wer", "loss"):
                y = [rows[a][source][m] for a in ids]
                entry[f"{source}_{m}"] = {**{f"seed{s}": corr(y, [score(s, a, m) for a in ids]) for s in seeds},
                                          "mean": corr(y, [mean(score(s, a, m) for s in seeds) for a in ids])}
        out["reports"].append(entry)
    return out


def _shown(p: Path) -> str:
    """``p`` relative to the repository when inside it (results stay readable on another checkout)."""
    try:
        return str(p.resolve().relative_to(REPO))
    except ValueError:
        return str(p)


def _tau(c: dict[str, Any]) -> str:
    t = c["kendall_tau"]
    return "undefined" if t["value"] is None else f"{t['value']:+.2f} [{t['low']:+.2f}, {t['high']:+.2f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--references", nargs="+", type=Path, default=DEFAULT_REFERENCES,
                    help="folders of reference JSONs (default: the FSDD references of seeds 0 and 1)")
    ap.add_argument("--reports", nargs="*", type=Path, default=None,
                    help="rank-check report.json files (default: the FSDD reports in bench/results/ when "
                         "--references is left at its default, else none)")
    ap.add_argument("--samples", type=int, default=2000, help="bootstrap resamples")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/reference_noise.json")
    args = ap.parse_args(argv)
    if args.reports is None:
        args.reports = DEFAULT_REPORTS if args.references == DEFAULT_REFERENCES else []
    reports = []
    for p in args.reports:
        if not p.is_file():
            raise SystemExit(f"--reports {p}: no such file (give rank-check report.json files)")
        reports.append({**json.loads(p.read_text(encoding="utf-8")), "_path": _shown(p)})
    res = analyse(load_references(args.references), reports, samples=args.samples)
    from supernet.utils import atomic_write_json, provenance

    res["provenance"] = provenance({"references": [_shown(p) for p in args.references],
                                    "reports": [_shown(p) for p in args.reports]}, 0)
    atomic_write_json(args.out, res)
    print(f"{len(res['archs'])} archs, seeds {res['seeds']}")
    for pair in res["agreement"]:
        which = f" ({len(res['converged_in_every_seed'])} converged in every seed)" if pair.get("converged_only") else ""
        print(f"seed {pair['seeds'][0]} vs seed {pair['seeds'][1]}{which}: Kendall tau on WER {_tau(pair['wer'])}, "
              f"on loss {_tau(pair['loss'])}")
    gap = res["noise"]["median_abs_wer_difference_between_seeds_converged"]
    if gap is not None:
        print(f"median |WER difference| between seeds (converged archs) {gap:.4f}; WER range over archs "
              f"{res['noise']['wer_range_over_archs']}")
    for rep in res["reports"]:
        for key, c in rep.items():
            if isinstance(c, dict) and "mean" in c:
                cols = ", ".join(f"{k} {_tau(v)}" for k, v in c.items())
                print(f"{rep['report']}: {key}: tau against {cols}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
