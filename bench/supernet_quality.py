"""How good are the supernet's subnets? Inherited weights against standalone training.

1. Train the supernet (``--config``, default progressive shrinking) on the built-in espeak
   corpus for at most ``--minutes`` of wall clock (the LR schedule follows the budget).
2. Score the largest and the smallest paths on the dev sets with the weights they inherit.
3. Train the same two archs from scratch, standalone, for the same number of steps with the
   same optimiser, schedule shape, data order and augmentation: the same training code on a
   search space holding that one arch (so nothing but weight sharing differs), strategy ``spos``.
4. Report the four dev WERs and the relative gap (inherited - standalone) / standalone; the
   issue's target is within 15% relative. The standalone runs validate at four points, so one
   can see whether they converged: a reference still falling steeply at the end measures how
   fast an arch starts learning, not how good it becomes (DESIGN.md). Raise ``--minutes``
   until it flattens.

    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py                   # <= 20 min + standalone runs
    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py --minutes 2       # checks the script runs
    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py --config configs/fit/sandwich.yaml
Writes bench/results/supernet_quality.json and the runs under runs/bench/supernet_quality/.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def one_arch_space(arch: Any, name: str) -> dict:
    """A search-space mapping (configs/space format) that holds exactly ``arch``."""
    from supernet.space import BLOCK_FIELDS

    layers = [la for la in arch.layers if la.block != "skip"]

    def choices(la: Any) -> dict:
        return {"block": [la.block], **{f: [getattr(la, f)] for f in BLOCK_FIELDS[la.block]}}

    first = choices(layers[0])
    overrides = {}
    for i, la in enumerate(layers[1:], start=1):
        c = choices(la)
        if set(c) != set(first):
            raise ValueError(f"layer {i} ({la.block}) uses other fields than layer 0 ({layers[0].block}); "
                             "a one-arch space needs the same fields in every layer")
        if c != first:
            overrides[i] = c
    data: dict[str, Any] = {
        "name": name,
        "frontend": {"feature": [arch.feature], "subsampling": [arch.subsampling]},
        "encoder": {"width": [arch.width], "layers": len(layers), "min_depth": len(layers), "layer": first,
                    "overrides": overrides},
        "decoder": {"type": [arch.decoder]},
        "streaming": {"chunk": [arch.chunk]},
    }
    if arch.decoder != "ctc":
        data["decoder"].update(layers=[arch.decoder_layers], width=[arch.decoder_width])
    if arch.chunk:
        data["streaming"]["lookahead"] = [arch.lookahead]
    return data


def dev_curve(run_dir: Path) -> list[dict[str, float]]:
    """(step, dev WER of the arch) at each validation of a standalone run, from metrics.csv."""
    out = []
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row.get("dev/largest/wer"):
                out.append({"step": int(float(row["step"])) + 1, "wer": float(row["dev/largest/wer"])})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/fit/progressive.yaml", help="supernet fit config")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget of the supernet training")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--run-dir", default=str(REPO / "runs/bench/supernet_quality"))
    p.add_argument("--out", default=str(REPO / "bench/results/supernet_quality.json"))
    args = p.parse_args(argv)

    import torch
    import yaml

    from supernet.config import from_dict, load_yaml, to_dict
    from supernet.space import SearchSpace
    from supernet.training.config import FitConfig
    from supernet.training.run import fit
    from supernet.utils import atomic_write_json, atomic_write_text, provenance

    torch.set_num_threads(args.threads)
    run_dir = Path(args.run_dir)
    base = load_yaml(REPO / args.config)
    base["space"] = str(REPO / base.get("space", "configs/space/conformer_elastic.yaml"))
    base.setdefault("data", {})
    base["data"]["cache_dir"] = str(REPO / base["data"].get("cache_dir", "cache/corpora"))  # relative to the repo
    base.setdefault("trainer", {}).update(max_minutes=args.minutes, num_threads=args.threads, progress=False)
    if base.get("strategy", "sandwich") != "progressive":
        base["trainer"]["max_steps"] = 100_000  # the wall clock decides
    cfg = from_dict(FitConfig, {**base, "out_dir": str(run_dir / "supernet")}, where=args.config)
    t0 = time.perf_counter()
    sup = fit(cfg)
    minutes = (time.perf_counter() - t0) / 60
    steps = sup.summary["steps"]
    space = SearchSpace.from_yaml(cfg.space)
    report: dict[str, Any] = {
        "config": args.config, "strategy": cfg.strategy, "budget_minutes": args.minutes,
        "supernet": {"steps": steps, "minutes": round(minutes, 2), "dev": sup.summary["dev"]},
        "archs": {}, "target_relative_gap": 0.15,
    }
    for tag, arch in (("largest", space.largest()), ("smallest", space.smallest())):
        d = run_dir / f"standalone_{tag}"
        d.mkdir(parents=True, exist_ok=True)
        space_file = d / "one_arch_space.yaml"
        atomic_write_text(space_file, yaml.safe_dump(one_arch_space(arch, f"standalone-{tag}"), sort_keys=False))
        over = to_dict(cfg)
        over.update(name=f"standalone_{tag}", out_dir=str(d), space=str(space_file), strategy="spos", init_from=None)
        over["trainer"].update(max_steps=steps, max_minutes=None, val_every_steps=max(1, steps // 4))
        scfg = from_dict(FitConfig, over, where=f"standalone {tag}")
        t1 = time.perf_counter()
        alone = fit(scfg)
        inherited = sup.summary["dev"][tag]["wer"]
        standalone = alone.summary["dev"]["largest"]["wer"]  # its one arch is its largest
        report["archs"][tag] = {
            "arch": arch.describe(), "params": space.params(arch, sup.module.tokenizer.vocab_size),
            "dev_wer_inherited": inherited, "dev_wer_standalone": standalone,
            "relative_gap": (inherited - standalone) / max(standalone, 1e-9),
            "standalone_minutes": round((time.perf_counter() - t1) / 60, 2),
            "standalone_dev_curve": dev_curve(d),
        }
    report["provenance"] = provenance(cfg, cfg.seed)
    atomic_write_json(args.out, report)
    print(f"supernet ({cfg.strategy}): {steps} steps in {minutes:.1f} min (budget {args.minutes} min)")
    for tag, r in report["archs"].items():
        curve = ", ".join(f"{c['step']}:{100 * c['wer']:.1f}%" for c in r["standalone_dev_curve"])
        print(f"{tag:8s} inherited {100 * r['dev_wer_inherited']:6.2f}%  standalone {100 * r['dev_wer_standalone']:6.2f}%  "
              f"gap {100 * r['relative_gap']:+.1f}% (target <= +15%)  [{r['arch']}]  standalone curve: {curve}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
