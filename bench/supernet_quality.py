"""How good are the supernet's subnets? Inherited weights against standalone training.

1. Train the supernet (``--config``, default progressive shrinking) on the built-in espeak
   corpus for at most ``--minutes`` of wall clock (the LR schedule follows the budget).
2. Score the largest and the smallest paths on the dev sets with the weights they inherit.
3. Train the same two archs from scratch, standalone, for the same wall-clock budget
   (``--standalone-minutes``, default the supernet's; issue #9) or, with ``--same-steps``, for
   the supernet's number of steps (issue #4) with the same optimiser, schedule shape,
   data order and augmentation: the same training code on a search space holding that one arch
   (so nothing but weight sharing differs), strategy ``spos``. A standalone run whose resolved
   config matches is reused (``--standalone-only`` trains just them, e.g. once for several
   supernet variants).
4. Report the four dev WERs and the relative gap (inherited - standalone) / standalone; the
   issue's target is within 15% relative. The standalone runs validate at four points, so one
   can see whether they converged: a reference still falling steeply at the end measures how
   fast an arch starts learning, not how good it becomes (DESIGN.md). Raise ``--minutes``
   until it flattens.

    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py --same-steps      # issue #4: espeak, same steps
    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py --minutes 2       # checks the script runs
    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py --config configs/fit/sandwich.yaml
    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py --config configs/fit/progressive_fsdd.yaml \
        --tag progressive_fsdd                 # issue #9's setting (FSDD)
    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py --config configs/fit/progressive_fsdd.yaml \
        --set net.frame_norm=true --tag progressive_fsdd_framenorm   # the same with the per-frame LayerNorm
    OMP_NUM_THREADS=2 .venv/bin/python bench/supernet_quality.py --config configs/fit/progressive_fsdd.yaml \
        --supernet-set seed=1 --tag progressive_fsdd_seed1   # another supernet seed, the same references
    .venv/bin/python bench/supernet_quality.py --replot bench/results/supernet_quality_TAG.json   # its plot again
Writes bench/results/supernet_quality[_TAG].json (with the supernet's own dev curve and phase
boundaries), a plot of both sides beside it (.png), and the runs under runs/bench/supernet_quality/.
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


def dev_curve(run_dir: Path) -> list[dict[str, float]]:
    """(step, dev WER of the arch) at each validation of a standalone run, from metrics.csv (its
    one arch is its largest path: :func:`supernet_curve`'s ``largest`` column)."""
    return [{"step": c["step"], "wer": c["largest"]} for c in supernet_curve(run_dir)[0] if "largest" in c]


def supernet_curve(run_dir: Path) -> tuple[list[dict[str, float]], list[dict[str, int]]]:
    """The supernet's own record, from its metrics.csv: (step, dev WER of the largest and the
    smallest path) at each validation, and the first step of each progressive phase (the
    ``train/phase`` column, to the logging interval; empty for other strategies). A step counts
    the steps done (the logged index + 1)."""
    curve: list[dict[str, float]] = []
    phases: list[dict[str, int]] = []
    with open(run_dir / "metrics.csv", newline="") as f:
        for row in csv.DictReader(f):
            step = int(float(row["step"])) + 1
            if row.get("train/phase") and (not phases or phases[-1]["phase"] != int(float(row["train/phase"]))):
                phases.append({"phase": int(float(row["train/phase"])), "first_step": step})
            wers = {tag: float(row[f"dev/{tag}/wer"]) for tag in ("largest", "smallest") if row.get(f"dev/{tag}/wer")}
            if wers:
                curve.append({"step": step, **wers})
    return curve, phases


def own_steps_to_match(report: dict[str, Any], tag: str) -> dict[str, Any]:
    """How many of its own steps the standalone reference needed to first reach the inherited
    path's WER: the first step of the reference's dev curve at or below it. Both sides on the same
    validation batches where the supernet's curve has the path (the largest and the smallest: its
    last point); otherwise (the middle arch) against the inherited WER on all dev utterances, which
    the ``on`` field says. ``step`` is None where the reference never got there."""
    r = report["archs"][tag]
    last = (report["supernet"].get("dev_curve") or [{}])[-1]
    wer, on = (last[tag], "validation batches") if tag in last else (r["dev_wer_inherited"], "all dev utterances")
    step = next((c["step"] for c in r["standalone_dev_curve"] if c["wer"] <= wer + 1e-9), None)
    return {"wer": wer, "on": on, "step": step}


def target_text(report: dict[str, Any], tag: str) -> str:
    target = report["target_relative_gap"].get(tag)
    return "no target" if target is None else f"target <= +{100 * target:.0f}%"


def plot_report(report: dict[str, Any], path: Path) -> Path:
    """Left: the supernet's inherited dev WER of the largest and smallest paths over its steps,
    with the phase boundaries and each standalone reference's final WER (dashed) and target band
    (shaded: up to the relative gap allowed). Right: the standalone references' own curves (their
    steps cost less, so their step axes differ). PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from supernet.utils import atomic_path

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    sup = report["supernet"]
    limit = report.get("provenance", {}).get("config", {}).get("trainer", {}).get("limit_val_batches")
    batches = f"{limit} dev batches" if limit else "all dev"
    for tag, colour in (("largest", "tab:blue"), ("smallest", "tab:orange"), ("middle", "tab:green")):
        arch = report["archs"].get(tag)
        if arch is None:
            continue
        pts = [(c["step"], c[tag]) for c in sup.get("dev_curve", []) if tag in c]
        if pts:
            ax.plot(*zip(*pts), marker="o", ms=3, color=colour, label=f"{tag}, inherited ({batches})")
        ax.plot([sup["steps"]], [arch["dev_wer_inherited"]], marker="*", ms=10, color=colour)
        ref = arch["dev_wer_standalone"]
        ax.axhline(ref, color=colour, ls="--", lw=0.8, label=f"{tag}, standalone {100 * ref:.2f} %")
        if report["target_relative_gap"].get(tag) is not None:
            ax.axhspan(ref, ref * (1 + report["target_relative_gap"][tag]), color=colour, alpha=0.15)
        curve = arch["standalone_dev_curve"]
        if curve:
            ax2.plot([c["step"] for c in curve], [c["wer"] for c in curve], color=colour, label=f"{tag}: {arch['arch'][:38]}")
    for p in sup.get("phases", [])[1:]:
        ax.axvline(p["first_step"], color="grey", lw=0.6, ls=":")
    ax.set_yscale("symlog", linthresh=0.05)
    ax.set_xlabel("supernet step (dotted: a new phase; star: all dev utterances at the end)")
    ax.set_ylabel("dev WER")
    warm = f", warm start (+{report['warm_start_minutes']:.0f} min before)" if report.get("warm_start") else ""
    ax.set_title(f"supernet ({report['strategy']}{warm}), {sup['minutes']:.0f} min")
    ax.legend(fontsize=7)
    ax2.set_xscale("log")
    ax2.set_yscale("symlog", linthresh=0.05)
    ax2.set_xlabel("standalone step")
    ax2.set_title(f"standalone references, {report['standalone_budget']}")
    ax2.legend(fontsize=7)
    for a in (ax, ax2):
        a.set_ylim(bottom=0)  # WER; linear below 5 %, logarithmic above
        a.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def replot(result: Path, run_dir: Path) -> Path:
    """Draw :func:`plot_report` for a result JSON already written (``--replot``); one written
    before the supernet's curve was recorded gets it from the supernet's metrics.csv, found where
    the run was made or under ``run_dir`` by its folder name. The JSON itself is left as it is."""
    import json

    try:
        report = json.loads(result.read_text())
        sup, out_dir = report["supernet"], Path(report["provenance"]["config"]["out_dir"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"--replot {result}: not a result of this script ({type(e).__name__}: {e})") from None
    if "dev_curve" not in sup:
        found = [d for d in (out_dir, run_dir / out_dir.name) if (d / "metrics.csv").is_file()]
        if not found:
            raise SystemExit(f"--replot {result}: the supernet's metrics.csv is neither in {out_dir} nor in "
                             f"{run_dir / out_dir.name}; pass --run-dir with the folder holding {out_dir.name}/")
        sup["dev_curve"], sup["phases"] = supernet_curve(found[0])
    return plot_report(report, result.with_suffix(".png"))


def finished_supernet(cfg: Any) -> dict[str, Any]:
    """``--reuse-supernet``: the summary of the finished supernet run in ``cfg.out_dir``, after
    checking that it was trained from this config (locations aside: the space file's path, the
    output folder, the corpus cache and recordings, the warm start's folder). Anything else is refused, naming the fields."""
    import json

    import yaml

    from supernet.config import from_dict, hash_view
    from supernet.evaluation.rank_check import without_locations
    from supernet.training.config import FitConfig

    d = Path(cfg.out_dir)
    missing = [n for n in ("summary.json", "supernet.ckpt", "config.yaml", "space.yaml") if not (d / n).is_file()]
    if missing:
        raise SystemExit(f"--reuse-supernet: {d} holds no finished supernet run (missing {', '.join(missing)}); "
                         "drop --reuse-supernet to train it")

    def view(c: Any) -> dict[str, Any]:
        v = hash_view(c)
        v["data"] = without_locations({k: x for k, x in v["data"].items() if k != "cache_dir"})
        if v.get("init_from"):  # a warm start's reference: its folder's name is its content's hash
            v["init_from"] = Path(v["init_from"]).parent.name
        return {k: x for k, x in v.items() if k not in ("space", "out_dir")}

    old = from_dict(FitConfig, yaml.safe_load((d / "config.yaml").read_text()), where=str(d / "config.yaml"))
    a, b = view(old), view(cfg)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    if yaml.safe_load((d / "space.yaml").read_text()) != yaml.safe_load(Path(cfg.space).read_text()):
        differ.append("space")
    if differ:
        raise SystemExit(f"--reuse-supernet: {d / 'config.yaml'} differs from this command's config in "
                         f"{', '.join(differ)}; use another --tag, or drop --reuse-supernet to train it again")
    return json.loads((d / "summary.json").read_text())


def score_inherited(checkpoint: Path, data_cfg: Any, archs: dict[str, Any], split: str = "dev") -> dict[str, Any]:
    """WER of ``archs`` with the checkpoint's weights on every utterance of the ``dev`` (held-in
    speakers) or ``test`` split (FSDD: unseen speakers), scored by the code that scores the
    largest and smallest paths at the end of a fit. A standalone reference is a one-arch supernet
    checkpoint, scored the same way."""
    from supernet.data.datamodule import SpeechDataModule
    from supernet.training.run import evaluate_archs, load_supernet

    net, _, tokenizer, _ = load_supernet(checkpoint)
    dm = SpeechDataModule(data_cfg, tokenizer=tokenizer, progress=False)
    if split == "test":
        dm.setup("test")
        return evaluate_archs(net, archs, dm.test_dataloader(), dm.test_names, tokenizer)
    dm.setup("validate")
    return evaluate_archs(net, archs, dm.val_dataloader(), dm.dev_names, tokenizer)


def standalone_key(scfg: Any, space: dict) -> str:
    """What names a standalone run's folder: its one-arch space and its FitConfig, less where
    things are (space file, out_dir, corpus cache, the FSDD recordings' folder), its name and the
    supernet-only sections.
    ``hash_view``, not ``to_dict``: an option added later (NEW_OPTION) at its default must not
    re-key (and re-train, 20 minutes each) the references already on disk."""
    import json

    from supernet.config import hash_view
    from supernet.evaluation.rank_check import without_locations

    view = hash_view(scfg)
    view["data"].pop("cache_dir", None)
    view["data"] = without_locations(view["data"])  # where the recordings lie (session 15; as rank-check's key)
    cfg = {k: v for k, v in view.items() if k not in ("space", "out_dir", "progressive", "sandwich", "name")}
    return json.dumps({"space": space, "cfg": cfg}, sort_keys=True, default=str)


def standalone_config(cfg: Any, arch: Any, tag: str, minutes: float | None, root: Path, steps: int | None = None) -> Any:
    """The FitConfig of ``arch`` trained alone for ``minutes`` (or exactly ``steps``), in a folder
    named by :func:`standalone_key`."""
    import dataclasses
    import hashlib

    import yaml

    from supernet.config import from_dict, to_dict
    from supernet.space_yaml import one_arch_space
    from supernet.training.config import FitConfig

    space = one_arch_space(arch, f"standalone-{tag}")
    over = to_dict(cfg)
    over.update(name=f"standalone_{tag}", strategy="spos", init_from=None)
    if steps is None:
        over["trainer"].update(max_steps=100_000, max_minutes=minutes, val_every_steps=100)
    else:
        over["trainer"].update(max_steps=steps, max_minutes=None, val_every_steps=max(1, steps // 8))
    scfg = from_dict(FitConfig, over, where=f"standalone {tag}")
    key = standalone_key(scfg, space)
    d = root / f"standalone_{tag}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"
    d.mkdir(parents=True, exist_ok=True)
    space_file = d / "one_arch_space.yaml"
    if not space_file.is_file():
        from supernet.utils import atomic_write_text

        atomic_write_text(space_file, yaml.safe_dump(space, sort_keys=False))
    return dataclasses.replace(scfg, out_dir=str(d), space=str(space_file))


def run_standalone(cfg: Any, arch: Any, tag: str, minutes: float | None, root: Path, steps: int | None = None) -> dict[str, Any]:
    """Train (or reuse) the standalone run of ``arch``; its summary, dev curve and checkpoint."""
    import json

    from supernet.training.run import fit

    scfg = standalone_config(cfg, arch, tag, minutes, root, steps)
    d = Path(scfg.out_dir)
    if not (d / "summary.json").is_file():
        print(f"standalone {tag}: training {f'{steps} steps' if steps else f'{minutes} min'} -> {d}", flush=True)
        t1 = time.perf_counter()
        fit(scfg)
        (d / "wall_minutes.txt").write_text(f"{(time.perf_counter() - t1) / 60:.2f}\n")
    else:
        print(f"standalone {tag}: reusing {d}", flush=True)
    summary = json.loads((d / "summary.json").read_text())
    return {"dir": str(d), "checkpoint": str(d / "supernet.ckpt"), "steps": summary["steps"],
            "dev_wer": summary["dev"]["largest"]["wer"],  # its one arch is its largest
            "minutes": float((d / "wall_minutes.txt").read_text()) if (d / "wall_minutes.txt").is_file() else None,
            "dev_curve": dev_curve(d)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/fit/progressive.yaml", help="supernet fit config")
    p.add_argument("--minutes", type=float, default=20.0, help="wall-clock budget of the supernet training")
    p.add_argument("--standalone-minutes", type=float, default=None, help="budget of each standalone run (default --minutes)")
    p.add_argument("--standalone-only", action="store_true", help="train (or reuse) the two standalone runs and stop")
    p.add_argument("--same-steps", action="store_true",
                   help="standalone runs take the supernet's step count instead of its wall clock (issue #4's comparison)")
    p.add_argument("--warm-start", action="store_true",
                   help="initialise the supernet from the standalone largest run (trained first; its time is reported)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the fit config, as on supernet fit's command line (e.g. net.frame_norm=true); "
                        "repeatable; the standalone runs get it too")
    p.add_argument("--supernet-set", dest="supernet_overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the supernet's fit config only (e.g. seed=1 for a second seed against the "
                        "same references); repeatable")
    p.add_argument("--tag", default="", help="suffix of the result file and run folder (e.g. the variant)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--run-dir", default=str(REPO / "runs/bench/supernet_quality"))
    p.add_argument("--out", default=None, help="result JSON (default bench/results/supernet_quality[_TAG].json)")
    p.add_argument("--middle", action="store_true",
                   help="also the middle arch (every size choice at its middle value; no target): its standalone "
                        "reference and its inherited dev WER")
    p.add_argument("--reuse-supernet", action="store_true",
                   help="score the finished supernet run of this --tag (trained from the same config) instead of "
                        "training it again, e.g. to add --middle to a result")
    p.add_argument("--test", action="store_true",
                   help="also score every arch, inherited and standalone, on the test split (FSDD: the unseen "
                        "speakers; more words than dev, so smaller gaps can be told from noise); no target")
    p.add_argument("--replot", metavar="RESULT_JSON", type=Path, default=None,
                   help="train nothing: draw the plot of a result already written (beside it, .png)")
    args = p.parse_args(argv)
    if args.replot:
        print(f"wrote {replot(args.replot, Path(args.run_dir))}")
        return 0
    if args.warm_start and args.same_steps:
        p.error("--warm-start needs the standalone largest first: drop --same-steps")

    import torch

    from supernet.config import apply_override, from_dict, load_yaml
    from supernet.space import SearchSpace
    from supernet.training.config import FitConfig
    from supernet.training.run import fit
    from supernet.utils import atomic_write_json, provenance

    torch.set_num_threads(args.threads)
    root = Path(args.run_dir)
    suffix = f"_{args.tag}" if args.tag else ""
    out = Path(args.out or REPO / f"bench/results/supernet_quality{suffix}.json")
    alone_minutes = args.standalone_minutes or args.minutes
    base = load_yaml(REPO / args.config)
    for item in args.overrides:
        base = apply_override(base, item)
    base["space"] = str(REPO / base.get("space", "configs/space/conformer_elastic.yaml"))
    base.setdefault("data", {})
    base["data"]["cache_dir"] = str(REPO / base["data"].get("cache_dir", "cache/corpora"))  # relative to the repo
    base.setdefault("trainer", {}).update(max_minutes=args.minutes, num_threads=args.threads, progress=False)
    if base.get("strategy", "sandwich") != "progressive":
        base["trainer"]["max_steps"] = 100_000  # the wall clock decides
    cfg = from_dict(FitConfig, {**base, "out_dir": str(root / f"supernet{suffix}")}, where=args.config)
    for item in args.supernet_overrides:  # after the references' config is fixed: they do not see these
        base = apply_override(base, item)
    space = SearchSpace.from_yaml(cfg.space)
    archs = {"largest": space.largest(), "smallest": space.smallest(), **({"middle": space.middle()} if args.middle else {})}
    ref_cfg = cfg
    alone = {} if args.same_steps else {tag: run_standalone(ref_cfg, arch, tag, alone_minutes, root) for tag, arch in archs.items()}
    if args.standalone_only:
        for tag, a in alone.items():
            print(f"standalone {tag}: {a['steps']} steps, dev WER {100 * a['dev_wer']:.2f}%  ({a['dir']})")
        return 0
    if args.warm_start or args.supernet_overrides:
        init = {"init_from": alone["largest"]["checkpoint"]} if args.warm_start else {}
        cfg = from_dict(FitConfig, {**base, "out_dir": cfg.out_dir, **init}, where=args.config)
    if args.reuse_supernet:
        from supernet.training.run import load_supernet

        summary = finished_supernet(cfg)
        minutes, checkpoint = summary["elapsed_s"] / 60, Path(cfg.out_dir) / "supernet.ckpt"
        vocab_size = load_supernet(checkpoint)[2].vocab_size
        print(f"supernet: reusing {cfg.out_dir} ({summary['steps']} steps)", flush=True)
    else:
        t0 = time.perf_counter()
        sup = fit(cfg)
        minutes, summary, checkpoint = (time.perf_counter() - t0) / 60, sup.summary, Path(cfg.out_dir) / "supernet.ckpt"
        vocab_size = sup.module.tokenizer.vocab_size
    steps = summary["steps"]
    inherited = {tag: summary["dev"][tag]["wer"] for tag in archs if tag in summary["dev"]}
    others = {tag: arch for tag, arch in archs.items() if tag not in inherited}
    if others:
        inherited.update({tag: r["wer"] for tag, r in score_inherited(checkpoint, cfg.data, others).items()})
    if args.same_steps:
        alone = {tag: run_standalone(ref_cfg, arch, tag, None, root, steps=steps) for tag, arch in archs.items()}
    report: dict[str, Any] = {
        "config": args.config, "overrides": args.overrides, "supernet_overrides": args.supernet_overrides,
        "strategy": cfg.strategy, "budget_minutes": args.minutes,
        "warm_start": alone["largest"]["dir"] if args.warm_start else None,
        "warm_start_minutes": alone["largest"]["minutes"] if args.warm_start else 0.0,
        "supernet": {"steps": steps, "minutes": round(minutes, 2), "dev": summary["dev"],
                     "init_report": summary.get("init_from"), "reused": args.reuse_supernet},
        "standalone_budget": f"{steps} steps (the supernet's)" if args.same_steps else f"{alone_minutes} min",
        "archs": {},
        "target_relative_gap": {"largest": 0.15, "smallest": 0.25},  # issue #9; none for the middle arch
    }
    for tag, arch in archs.items():
        standalone = alone[tag]["dev_wer"]
        report["archs"][tag] = {
            "arch": arch.describe(), "params": space.params(arch, vocab_size),
            "dev_wer_inherited": inherited[tag], "dev_wer_standalone": standalone,
            "relative_gap": (inherited[tag] - standalone) / max(standalone, 1e-9),
            "standalone_steps": alone[tag]["steps"], "standalone_minutes": alone[tag]["minutes"],
            "standalone_dev_curve": alone[tag]["dev_curve"],
        }
    if args.test:  # the same archs on the unseen-speaker set: inherited, then each reference's own checkpoint
        print("scoring on the test split", flush=True)
        test = score_inherited(checkpoint, cfg.data, archs, "test")
        for tag, arch in archs.items():
            alone_test = score_inherited(Path(alone[tag]["checkpoint"]), cfg.data, {tag: arch}, "test")[tag]["wer"]
            r = report["archs"][tag]
            r.update({"test_wer_inherited": test[tag]["wer"], "test_wer_standalone": alone_test,
                      "test_relative_gap": (test[tag]["wer"] - alone_test) / max(alone_test, 1e-9)})
    report["supernet"]["dev_curve"], report["supernet"]["phases"] = supernet_curve(Path(cfg.out_dir))
    for tag, r in report["archs"].items():  # what the inherited weights are worth in the reference's own steps
        r["standalone_steps_to_inherited_wer"] = own_steps_to_match(report, tag)
    report["provenance"] = provenance(cfg, cfg.seed)
    atomic_write_json(out, report)
    figure = plot_report(report, out.with_suffix(".png"))
    print(f"supernet ({cfg.strategy}{', warm start' if args.warm_start else ''}): {steps} steps in {minutes:.1f} min "
          f"(budget {args.minutes} min)")
    for tag, r in report["archs"].items():
        curve = ", ".join(f"{c['step']}:{100 * c['wer']:.1f}%" for c in r["standalone_dev_curve"])
        print(f"{tag:8s} inherited {100 * r['dev_wer_inherited']:6.2f}%  standalone {100 * r['dev_wer_standalone']:6.2f}%  "
              f"gap {100 * r['relative_gap']:+.1f}% ({target_text(report, tag)})  "
              f"[{r['arch']}]  standalone reached {100 * r['standalone_steps_to_inherited_wer']['wer']:.1f}% "
              f"({r['standalone_steps_to_inherited_wer']['on']}) at step {r['standalone_steps_to_inherited_wer']['step']} "
              f"of {r['standalone_steps']}; standalone curve: {curve}")
        if "test_wer_inherited" in r:
            print(f"{tag:8s} test: inherited {100 * r['test_wer_inherited']:6.2f}%  standalone "
                  f"{100 * r['test_wer_standalone']:6.2f}%  gap {100 * r['test_relative_gap']:+.1f}%")
    print(f"wrote {out} and {figure.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
