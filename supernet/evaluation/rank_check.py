"""Ranking fidelity of the supernet: do inherited-weight scores order archs as training them would?

``supernet rank-check -c configs/rank_check/NAME.yaml`` samples K archs across the size range
(stratified by parameter count), trains each one standalone from scratch on the same training
data until its dev loss stops improving (early stopping with patience, under a step and time
cap), and compares the standalone dev WER and loss with the supernet's inherited-weight WER and
loss: Kendall's tau and Spearman's rho, each with a bootstrap confidence interval.

A reference that hit its cap before its dev loss stopped improving did not converge, and a
ranking against unconverged references measures how fast archs start learning, not how good
they become (DESIGN.md); the report counts converged references and states the budget.

Output folder (``out_dir``, default ``runs/rank_check/<name>``), each file written atomically::

    config.yaml            the resolved config
    provenance.json        seed, versions, machine
    supernet/              the supernet run, when the config trains one (``fit:``)
    supernet_eval.jsonl    the evaluator's result cache
    references/<id>.json   one standalone run per arch: learning curve, final step, best scores;
                           reused by a rerun with the same reference settings (resumable);
                           <id>.seed<S>.json for reference seeds other than 0
    report.json            per arch: params, supernet and reference scores; correlations with CIs
    report.md              the same, readable
    scatter.png            supernet vs standalone, WER and loss
    curves.png             the references' dev loss and WER over training steps

The standalone trainer is :func:`supernet.evaluation.training.train_subnet` (plain PyTorch, early
stopping, best weights restored); references are scored by the same :class:`Evaluator` code and
dev batches as the supernet.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supernet.config import NEW_OPTION, ConfigError
from supernet.data.datamodule import DataConfig
from supernet.evaluation.training import TrainConfig

__all__ = ["RankCheckConfig", "RankCheckResult", "load_rank_check_config", "rank_check", "run", "format_stat", "TARGET_TAU",
           "TARGET_K"]

log = logging.getLogger(__name__)

TARGET_TAU, TARGET_K = 0.8, 12  # issue #5: tau >= 0.8 on WER with K >= 12 archs


def _reference_default() -> TrainConfig:
    return TrainConfig(max_steps=3000, max_minutes=20.0, eval_every=100, patience=5, monitor="loss")


@dataclass
class RankCheckConfig:
    """A rank check.

    Args:
        name: run name; outputs go to ``out_dir`` (default ``runs/rank_check/<name>``).
        out_dir: output folder.
        seed: arch sampling, reference initialisation, bootstrap.
        supernet: a trained supernet (``supernet.ckpt`` of a ``supernet fit`` run).
        fit: or a fit config (``configs/fit/*.yaml``) to train the supernet first, into
            ``out_dir/supernet`` (exactly one of ``supernet`` and ``fit``).
        fit_overrides: fields of the fit config to replace (nested mappings merge key by key),
            e.g. ``{trainer: {max_steps: 400}}`` (``null`` clears them: ``fit_overrides=null``).
        data: corpus for the references and the dev scores (default: the supernet's own training
            data, so references see the same data).
        num_archs: K, archs compared.
        pool: random archs drawn before stratifying by params (default 20 K).
        reference: standalone training of each arch (budget, early stopping, optimiser). Its
            ``seed`` sets data order, augmentation, dropout and, when not 0, the initial weights.
        reference_seeds: train every arch standalone once per seed (overriding
            ``reference.seed``) and rank against the mean of their scores. With two or more
            seeds the report also gives how well the seeds' rankings agree with each other:
            the ceiling on any supernet's tau, since a ranking the references cannot repeat
            themselves cannot be matched (on FSDD two seeds agree at tau ~0; BENCHMARKS.md).
            None: ``[reference.seed]``, one set as before.
        finetune: also score each arch after a short fine-tune from its inherited weights
            (:func:`~supernet.evaluation.training.train_subnet` with these settings, e.g.
            ``{max_steps: 100, eval_every: 50}``) and correlate those scores with the references
            too: the ranking a search gets when its evaluator fine-tunes briefly (the ``short``
            stage of progressive evaluation). None: inherited weights only.
        eval_batch_size: dev utterances per batch when scoring.
        bootstrap_samples: resamples of the bootstrap intervals.
        confidence: level of the intervals.
        num_threads: torch CPU threads (None: leave the default / OMP_NUM_THREADS).
        device: where the supernet is scored and the references train ("cpu", "cuda", "cuda:1").
            The result of a reference does not depend on where it trained beyond float rounding,
            so references trained on a GPU are reused by a CPU run (each records its device).
        shard: "I/N" trains only the references of archs I, I+N, I+2N, ... (0-based) and writes
            no report: N processes (or machines sharing out_dir) train the references in
            parallel, then one run without ``shard`` reuses them all and writes the report.
        progress: progress bars.
    """

    name: str = "rank_check"
    out_dir: str | None = None
    seed: int = 0
    supernet: str | None = None
    fit: str | None = None
    fit_overrides: dict[str, Any] | None = None
    data: DataConfig | None = None
    num_archs: int = 12
    pool: int | None = None
    reference: TrainConfig = field(default_factory=_reference_default)
    finetune: TrainConfig | None = field(default=None, metadata=NEW_OPTION)
    reference_seeds: list[int] | None = field(default=None, metadata=NEW_OPTION)
    eval_batch_size: int = 32
    bootstrap_samples: int = 2000
    confidence: float = 0.95
    num_threads: int | None = None
    device: str = "cpu"
    shard: str | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.supernet is None) == (self.fit is None):
            raise ValueError("give exactly one of supernet (a supernet.ckpt) and fit (a fit config to train one)")
        if self.fit_overrides and self.fit is None:
            raise ValueError("fit_overrides needs fit (they change the fit config used to train the supernet); "
                             "clear them with fit_overrides=null when giving supernet")
        if self.num_archs < 2:
            raise ValueError(f"num_archs must be >= 2 (a ranking needs two archs), got {self.num_archs}")
        if self.pool is not None and self.pool < self.num_archs:
            raise ValueError(f"pool ({self.pool}) must be >= num_archs ({self.num_archs})")
        if self.eval_batch_size < 1 or self.bootstrap_samples < 1:
            raise ValueError("eval_batch_size and bootstrap_samples must be >= 1")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.reference_seeds is not None:
            seeds = list(self.reference_seeds)
            if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(v, int) and v >= 0 for v in seeds):
                raise ValueError(f"reference_seeds must be distinct integers >= 0 (e.g. [0, 1]), got {self.reference_seeds!r}")
        self.shard_index()  # validates

    @property
    def seeds(self) -> list[int]:
        """The reference seeds: ``reference_seeds``, or ``[reference.seed]``."""
        return list(self.reference_seeds) if self.reference_seeds is not None else [self.reference.seed]

    def for_seed(self, seed: int) -> RankCheckConfig:
        """This config with ``reference.seed = seed`` (what keys and trains that seed's references)."""
        from dataclasses import replace

        return replace(self, reference=replace(self.reference, seed=seed))

    def shard_index(self) -> tuple[int, int] | None:
        """``shard`` as (I, N), or None when every reference is trained here."""
        if self.shard is None:
            return None
        try:
            i, n = (int(v) for v in str(self.shard).split("/"))
        except ValueError:
            i, n = -1, 0
        if not (n >= 1 and 0 <= i < n):
            raise ValueError(f"shard must be 'I/N' with 0 <= I < N (e.g. '0/4'), got {self.shard!r}")
        return i, n

    @property
    def run_dir(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("runs/rank_check") / self.name


def load_rank_check_config(source: str | Path | dict, **overrides: Any) -> RankCheckConfig:
    """Build a :class:`RankCheckConfig` from a YAML file or dict."""
    from supernet.config import load_config

    return load_config(RankCheckConfig, source, **overrides)


@dataclass
class RankCheckResult:
    """What :func:`rank_check` found (``report`` is what report.json holds)."""

    out_dir: Path
    report: dict[str, Any]


# ---------------------------------------------------------------------------- pieces
# DataConfig fields that do not change what a reference trains on: the supernet's own batching (a
# reference batches with reference.batch_size) and where the corpus is cached (its content is
# fixed by the corpus settings and the dev audio is hashed into the key).
_NOT_IN_KEY = ("batch_size", "max_batch_seconds", "num_buckets", "num_workers", "cache_dir")


# Where a corpus's source files are, not what they hold (the dev audio is hashed into the key).
# Keys before session 15 held them: ``with_locations=True`` rebuilds such a key so those are found.
_LOCATIONS = {"fsdd": ("fsdd_dir",)}


def reference_data_key(data_cfg: Any, dev_fingerprint: str, *, with_locations: bool = False) -> dict[str, Any]:
    """What identifies a reference's data: the corpus and dev sets, not the supernet's batching
    or where the cache and the corpus's recordings are. Options added later (``NEW_OPTION``)
    count only when set, so references trained before them are still found."""
    from supernet.config import hash_view

    data = {k: v for k, v in hash_view(data_cfg).items() if k not in _NOT_IN_KEY}
    return {"data": data if with_locations else without_locations(data), "dev": dev_fingerprint}


def without_locations(data_view: dict[str, Any]) -> dict[str, Any]:
    """A data config's ``hash_view`` less where the corpora's source files are (``fsdd.fsdd_dir``):
    the keys of standalone references, here and in ``bench/supernet_quality.py``."""
    data = dict(data_view)
    for section, names in _LOCATIONS.items():
        if isinstance(data.get(section), dict):
            data[section] = {k: v for k, v in data[section].items() if k not in names}
    return data


def reference_key(arch: Any, net_cfg: Any, vocab_size: int, cfg: RankCheckConfig, data_key: dict[str, Any]) -> str:
    """The key a stored reference must carry to be reused: recipe, seed, net, vocabulary, arch and
    data. ``net_cfg`` goes in as the dataclass, so its later options (``frame_norm``,
    ``causal_conv``, ``causal_full_context``) at their defaults stay out and references trained before them are found."""
    from supernet.config import config_hash

    return config_hash({"reference": cfg.reference, "seed": cfg.seed, "net": net_cfg,
                        "vocab": vocab_size, "arch": arch.to_dict(), **data_key})


def _seed_of(*key: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:4], "little")


def reference_filename(arch_id: str, seed: int) -> str:
    """``<id>.json`` for reference seed 0 (the name references have always had), else ``<id>.seed<S>.json``."""
    return f"{arch_id}.json" if seed == 0 else f"{arch_id}.seed{seed}.json"


def _references(arch: Any, net_cfg: Any, vocab_size: int, train_set: Any, evaluator: Any, cfg: RankCheckConfig,
                ref_dir: Path, data_key: dict[str, Any], legacy_data_key: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """``arch``'s standalone runs, one per reference seed (each trained or reused)."""
    return [{"seed": s, **_reference(arch, net_cfg, vocab_size, train_set, evaluator, cfg.for_seed(s), ref_dir, data_key,
                                     legacy_data_key)}
            for s in cfg.seeds]


def _reference_init_seed(cfg: RankCheckConfig, arch_id: str) -> int:
    """The seed of a reference's initial weights: per arch (independent of the order of archs), and
    per ``reference.seed`` when that is set, so a second training seed redraws the initialisation
    too (``rank-check ... reference.seed=1`` measures how far the references reorder on their own).
    ``reference.seed: 0`` keeps the seed references have always had."""
    if cfg.reference.seed == 0:
        return _seed_of(cfg.seed, arch_id)
    return _seed_of(cfg.seed, arch_id, cfg.reference.seed)


def _reference(arch: Any, net_cfg: Any, vocab_size: int, train_set: Any, evaluator: Any, cfg: RankCheckConfig,
               ref_dir: Path, data_key: dict[str, Any], legacy_data_key: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``arch`` standalone from scratch (or reuse a finished run with the same settings:
    its key, or the key it had before the recordings' folder left the key)."""
    import torch

    from supernet.config import to_dict
    from supernet.subnet import SubnetModel
    from supernet.utils import atomic_write_json

    key = reference_key(arch, net_cfg, vocab_size, cfg, data_key)
    path = ref_dir / reference_filename(arch.id, cfg.reference.seed)
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        accepted = {key} | ({reference_key(arch, net_cfg, vocab_size, cfg, legacy_data_key)} if legacy_data_key else set())
        if saved.get("key") in accepted:
            log.info("reference %s: reusing %s", arch.id, path)
            return saved
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_reference_init_seed(cfg, arch.id))
        model = SubnetModel(arch, vocab_size, net_cfg)
    device = evaluator.device
    model.to(device)
    from supernet.evaluation.training import train_subnet

    res = train_subnet(model, train_set, cfg.reference, lambda m: evaluator.score_model(m, arch.id),
                       progress=cfg.progress, label=arch.id)
    row = {"key": key, "arch_id": arch.id, "arch": arch.to_dict(), **res.to_dict(), "device": str(device),
           "torch": torch.__version__}
    atomic_write_json(path, row)
    return row


def _scored(cfg: RankCheckConfig) -> list[tuple[str, str]]:
    """(row field, metric) of every score compared with the references."""
    sources = ("supernet",) + (("finetuned",) if cfg.finetune is not None else ())
    return [(s, m) for s in sources for m in ("wer", "loss")]


def _corr_key(source: str, metric: str) -> str:
    return metric if source == "supernet" else f"{source}_{metric}"  # "wer", "loss": as before


_SOURCE_LABEL = {"supernet": "supernet (inherited weights)", "finetuned": "inherited + short fine-tune"}


def _plots(rows: list[dict], corr: dict, out: Path, title: str, agreement: list[dict] | None = None) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from supernet.utils import atomic_path

    files = {}
    # (x, y, stats, x label, y label) per panel; two panels (WER, loss) a row
    panels = []
    for source in ("supernet", "finetuned"):
        for metric in ("wer", "loss"):
            if _corr_key(source, metric) in corr:
                name = "WER" if metric == "wer" else metric
                panels.append(([r["reference"][metric] for r in rows], [r[source][metric] for r in rows],
                               corr[_corr_key(source, metric)], f"standalone (trained from scratch) dev {name}",
                               f"{_SOURCE_LABEL[source]} dev {name}", name))
    if agreement:  # the first pair of reference seeds against each other: the ceiling
        pair = agreement[0]
        for metric in ("wer", "loss"):
            name = "WER" if metric == "wer" else metric
            panels.append(([r["references"][0][metric] for r in rows], [r["references"][1][metric] for r in rows],
                           pair[metric], f"standalone, seed {pair['seeds'][0]}: dev {name}",
                           f"standalone, seed {pair['seeds'][1]}: dev {name}", name))
    fig, axes = plt.subplots(len(panels) // 2, 2, figsize=(10, 4.5 * (len(panels) // 2)), squeeze=False)
    for ax, (x, y, stats_, xlabel, ylabel, name) in zip(axes.flat, panels):
        sc = ax.scatter(x, y, c=[r["params"] / 1e6 for r in rows], cmap="viridis")
        for r, xi, yi in zip(rows, x, y):
            ax.annotate(r["arch_id"][:6], (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"dev {name}: Kendall tau {format_stat(stats_['kendall_tau'])}, "
                     f"Spearman {format_stat(stats_['spearman'])}", fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        fig.colorbar(sc, ax=ax, label="params (M)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out / "scatter.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    files["scatter"] = "scatter.png"

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for r in rows:
        curve = r["curve"]
        steps = [p["step"] for p in curve]
        plotted = r["references"][0]  # the first seed's curve
        label = f"{r['arch_id'][:6]} ({r['params'] / 1e6:.2f}M){'' if plotted['converged'] else ' not converged'}"
        for ax, metric in zip(axes, ("loss", "wer")):
            (line,) = ax.plot(steps, [p[metric] for p in curve], marker=".", label=label)
            best = next(p for p in curve if p["step"] == r["best_step"])
            ax.plot([best["step"]], [best[metric]], "o", mfc="none", ms=9, color=line.get_color())
    axes[0].set_yscale("log")  # the first steps' loss would flatten the rest
    for ax, metric in zip(axes, ("dev loss", "dev WER")):
        ax.set_xlabel("training step")
        ax.set_ylabel(metric)
        ax.set_title(f"standalone references: {metric} (circle: best, kept)", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(out / "curves.png") as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
    files["curves"] = "curves.png"
    return files


def format_stat(s: dict[str, Any]) -> str:
    """``+0.733 [+0.400, +1.000]``, or why there is no number."""
    if s["value"] is None:
        return "undefined (constant scores: no ranking)"
    if s["low"] is None:
        return f"{s['value']:+.3f} [interval undefined]"
    return f"{s['value']:+.3f} [{s['low']:+.3f}, {s['high']:+.3f}]"


def _json_safe(obj: Any) -> Any:
    """NaN/inf -> None, so report.json is strict JSON (readable by jq and browsers)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def _markdown(report: dict[str, Any]) -> str:
    b = report["reference_budget"]
    cap = f"{b['max_steps']} steps" + (f" / {b['max_minutes']} min" if b["max_minutes"] is not None else "")
    t = report["target"]
    verdict = "met" if t["met"] else "not met"
    if not t["valid"]:
        verdict += " (not a valid test: fewer archs than required or not every reference converged)"
    lines = [f"# Rank check: {report['name']}", "",
             f"Supernet `{report['supernet']}`, space `{report['space']}`, {report['num_archs']} archs stratified by "
             f"params, seed {report['seed']}.", "",
             f"References: trained from scratch on the same data, early stopping on dev {b['monitor']} (patience "
             f"{b['patience']} evaluations, one every {b['eval_every']} steps), capped at {cap}. "
             f"**{report['converged']} of {report['num_archs']} converged** (stopped by patience, not by the cap, "
             "with the best dev WER at least 0.1 below min(start WER, 1)). "
             f"Training took {report['reference_seconds']:.0f} s in all.",
             "", "| | Kendall tau | Spearman rho |", "|---|---|---|"]
    ft = report.get("finetune")
    for key, c in report["correlations"].items():
        source, metric = key.split("_") if "_" in key else ("supernet", key)
        what = f"dev {metric}" + (f", after {ft['max_steps']} fine-tuning steps at most" if source == "finetuned" else "")
        lines.append(f"| {what} | {format_stat(c['kendall_tau'])} | {format_stat(c['spearman'])} |")
    seeds = report["reference_seeds"]
    if len(seeds) > 1:
        lines += ["", f"Each arch was trained standalone once per seed ({', '.join(map(str, seeds))}: initial weights, "
                      "data order, augmentation, dropout) and the supernet is ranked against the mean of their scores. "
                      "How well the seeds' rankings agree with each other bounds what any supernet can reach: "
                      "a ranking the references do not repeat is noise.", "",
                  "| references against each other | Kendall tau | Spearman rho |", "|---|---|---|"]
        for pair in report["reference_agreement"]:
            for metric in ("wer", "loss"):
                c = pair[metric]
                lines.append(f"| seed {pair['seeds'][0]} vs seed {pair['seeds'][1]}, dev {metric} | "
                             f"{format_stat(c['kendall_tau'])} | {format_stat(c['spearman'])} |")
    decoders = sorted({r["arch"]["decoder"] for r in report["archs"]})
    if len(decoders) > 1:
        lines += ["", f"The archs use several decoders ({', '.join(decoders)}) whose losses are different quantities "
                      "(CTC, RNN-T, joint CTC/attention), so the loss correlation mixes scales; WER compares across them."]
    small = (" With this few archs the interval understates the uncertainty: a resample repeats archs, and a "
             "perfect ranking of a handful resamples to itself." if report["num_archs"] < 10 else "")
    lines += ["", f"Intervals: {report['confidence']:.0%} percentile bootstrap over archs "
                  f"({report['bootstrap_samples']} resamples).{small}",
              f"Target (issue #5), tau >= {t['kendall_tau']} on WER with K >= {t['num_archs']}: **{verdict}**.", "",
              "| arch | params | supernet WER | standalone WER | supernet loss | standalone loss | best / final step "
              "| stopped | describe |", "|---|---|---|---|---|---|---|---|---|"]
    num = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731 - None: a non-finite value

    def per_seed(r: dict[str, Any], metric: str) -> str:  # the mean, then each seed's score
        each = r["references"]
        tail = f" ({' / '.join(num(x[metric]) for x in each)})" if len(each) > 1 else ""
        return num(r["reference"][metric]) + tail

    for r in report["archs"]:
        sup = r["supernet"]
        steps = " ; ".join(f"{x['best_step']} / {x['final_step']}" for x in r["references"])
        stopped = " ; ".join(str(x["stopped"]) for x in r["references"])
        lines.append(f"| `{r['arch_id']}` | {r['params'] / 1e6:.3f}M | {num(sup['wer'])} | {per_seed(r, 'wer')} | "
                     f"{num(sup['loss'])} | {per_seed(r, 'loss')} | {steps} | {stopped} | {r['describe']} |")
    if len(seeds) > 1:
        lines += ["", f"Standalone scores: the mean over seeds {', '.join(map(str, seeds))}, then each seed's in "
                      "brackets; steps and stop reasons per seed. The learning curves plotted are seed "
                      f"{seeds[0]}'s."]
    if ft is not None:
        lines += ["", f"After a short fine-tune from the inherited weights (at most {ft['max_steps']} steps, one dev "
                      f"evaluation every {ft['eval_every']}, best weights kept):", "",
                  "| arch | supernet WER | fine-tuned WER | standalone WER | fine-tuning steps |", "|---|---|---|---|---|"]
        for r in report["archs"]:
            lines.append(f"| `{r['arch_id']}` | {num(r['supernet']['wer'])} | {num(r['finetuned']['wer'])} | "
                         f"{num(r['reference']['wer'])} | {r['finetuned']['steps']} |")
    lines += ["", "![supernet vs standalone](scatter.png)", "", "![learning curves](curves.png)", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- run
def _finetuned(arch: Any, net: Any, train_set: Any, evaluator: Any, cfg: RankCheckConfig) -> dict[str, Any]:
    """``arch``'s dev scores after ``cfg.finetune`` from its inherited weights (the supernet is untouched)."""
    import torch

    from supernet.evaluation.training import train_subnet
    from supernet.subnet import extract

    model = extract(net, arch).to(evaluator.device)  # a copy of the weights
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_seed_of(cfg.seed, arch.id, "finetune"))  # dropout, independent of the order of archs
        res = train_subnet(model, train_set, cfg.finetune, lambda m: evaluator.score_model(m, arch.id),
                           progress=cfg.progress, label=f"{arch.id} fine-tune")
    return {**{k: res.best[k] for k in ("wer", "cer", "loss")}, "steps": res.final_step, "seconds": res.seconds}


def rank_check(cfg: RankCheckConfig, net: Any, space: Any, tokenizer: Any, datamodule: Any,
               supernet_label: str = "<in memory>") -> RankCheckResult:
    """Run the rank check on a loaded supernet and a set-up DataModule; write the output folder.

    Args:
        cfg: the rank check.
        net: the trained :class:`~supernet.model.SpeechSupernet` (eval mode).
        space: its :class:`~supernet.space.SearchSpace` (archs are sampled from it).
        tokenizer: the supernet's tokenizer.
        datamodule: a :class:`~supernet.data.SpeechDataModule` after ``setup("fit")`` (train and dev sets).
        supernet_label: names the supernet in the report.
    """
    import yaml

    from supernet.config import to_dict
    from supernet.evaluation.evaluator import Evaluator
    from supernet.evaluation.ranking import rank_correlations, stratified_sample
    from supernet.utils import atomic_write_json, atomic_write_text, provenance

    out = cfg.run_dir
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True))
    atomic_write_json(out / "provenance.json", provenance(cfg, cfg.seed))
    if datamodule.train_set is None or not datamodule.dev_sets:
        raise ValueError("the DataModule needs train and dev sets: call setup('fit') first")
    evaluator = Evaluator(net, datamodule.dev_sets, tokenizer, batch_size=cfg.eval_batch_size,
                          cache_path=out / "supernet_eval.jsonl")
    vocab = tokenizer.vocab_size
    archs = stratified_sample(space, cfg.num_archs, random.Random(f"rank-check/{cfg.seed}"),
                              size=lambda a: space.params(a, vocab), pool=cfg.pool)
    data_key = reference_data_key(datamodule.cfg, evaluator.data_fingerprint)
    legacy_key = reference_data_key(datamodule.cfg, evaluator.data_fingerprint, with_locations=True)
    rows = []
    t0 = time.monotonic()
    shard = cfg.shard_index()
    if shard is not None:
        mine = [a for j, a in enumerate(archs) if j % shard[1] == shard[0]]
        for i, arch in enumerate(mine, 1):
            print(f"[shard {cfg.shard}: {i}/{len(mine)}] {arch.id} {arch.describe()}: reference",
                  file=sys.stderr, flush=True)
            for ref in _references(arch, net.config.net, vocab, datamodule.train_set, evaluator, cfg,
                                   out / "references", data_key, legacy_key):
                rows.append({"arch_id": arch.id, "seed": ref["seed"], "best": ref["best"], "final_step": ref["final_step"],
                             "stopped": ref["stopped"], "converged": ref["converged"], "seconds": ref["seconds"]})
        return RankCheckResult(out, {"shard": cfg.shard, "references": rows})
    for i, arch in enumerate(archs, 1):
        sup = evaluator.evaluate(arch)
        print(f"[{i}/{len(archs)}] {arch.id} {arch.describe()}: supernet WER {sup.wer:.3f}; reference",
              file=sys.stderr, flush=True)
        refs = _references(arch, net.config.net, vocab, datamodule.train_set, evaluator, cfg, out / "references", data_key,
                           legacy_key)
        ref = refs[0]  # its learning curve is the one plotted
        rows.append({"arch_id": arch.id, "describe": arch.describe(), "arch": arch.to_dict(), "params": sup["params"],
                     "supernet": {"wer": sup.wer, "cer": sup.cer, "loss": sup.loss},
                     # the mean over the reference seeds (the one seed's scores when there is one)
                     "reference": {k: sum(r["best"][k] for r in refs) / len(refs) for k in ("wer", "cer", "loss")},
                     "references": [{"seed": r["seed"], **{k: r["best"][k] for k in ("wer", "cer", "loss")},
                                     **{k: r[k] for k in ("best_step", "final_step", "stopped", "converged", "seconds")}}
                                    for r in refs],
                     "best_step": ref["best_step"], "final_step": ref["final_step"], "stopped": ref["stopped"],
                     "converged": all(r["converged"] for r in refs), "seconds": sum(r["seconds"] for r in refs),
                     "curve": ref["curve"]})
        if cfg.finetune is not None:
            rows[-1]["finetuned"] = ft = _finetuned(arch, net, datamodule.train_set, evaluator, cfg)
            print(f"[{i}/{len(archs)}] {arch.id}: WER {ft['wer']:.3f} after {ft['steps']} fine-tuning steps",
                  file=sys.stderr, flush=True)

    def correlate(x: list[float], y: list[float]) -> dict[str, Any]:  # tau and rho with intervals, as JSON
        stats_ = rank_correlations(x, y, samples=cfg.bootstrap_samples, confidence=cfg.confidence, seed=cfg.seed)
        return _json_safe({k: v.to_dict() for k, v in stats_.items()})

    corr = {_corr_key(source, metric): correlate([r[source][metric] for r in rows], [r["reference"][metric] for r in rows])
            for source, metric in _scored(cfg)}
    seeds = cfg.seeds  # the references against themselves: seed a's ranking against seed b's
    agreement = [{"seeds": [seeds[a], seeds[b]],
                  **{m: correlate([r["references"][a][m] for r in rows], [r["references"][b][m] for r in rows])
                     for m in ("wer", "loss")}}
                 for a in range(len(seeds)) for b in range(a + 1, len(seeds))]
    converged = sum(r["converged"] for r in rows)
    valid = len(rows) >= TARGET_K and converged == len(rows)
    tau = corr["wer"]["kendall_tau"]["value"]  # None when undefined
    report = {
        "name": cfg.name, "supernet": supernet_label, "space": f"{space.name} ({space.hash})", "seed": cfg.seed,
        "num_archs": len(rows), "converged": converged, "reference_budget": to_dict(cfg.reference),
        "finetune": None if cfg.finetune is None else to_dict(cfg.finetune),
        "reference_seeds": seeds, "reference_agreement": agreement,
        "reference_seconds": round(sum(r["seconds"] for r in rows), 1), "elapsed_seconds": round(time.monotonic() - t0, 1),
        "bootstrap_samples": cfg.bootstrap_samples, "confidence": cfg.confidence, "correlations": corr,
        "target": {"kendall_tau": TARGET_TAU, "num_archs": TARGET_K, "met": bool(valid and tau is not None and tau >= TARGET_TAU),
                   "valid": valid},
        "archs": rows,
    }
    report["files"] = _plots(rows, corr, out, f"{cfg.name}: K={len(rows)}, {converged}/{len(rows)} references converged",
                             agreement)
    report["files"].update({"report_json": "report.json", "report_md": "report.md"})
    report = _json_safe(report)
    atomic_write_json(out / "report.json", report)
    atomic_write_text(out / "report.md", _markdown(report))
    return RankCheckResult(out, report)


def _fit_config(cfg: RankCheckConfig) -> Any:
    from supernet.config import from_dict, load_yaml, merge_dicts  # `supernet fit`'s merge rule for -c files
    from supernet.training.config import FitConfig

    data = merge_dicts(load_yaml(cfg.fit), cfg.fit_overrides or {})
    data["out_dir"] = str(cfg.run_dir / "supernet")
    return from_dict(FitConfig, data, where=f"{cfg.fit} + rank-check fit_overrides")


def run(cfg: RankCheckConfig) -> RankCheckResult:
    """Resolve the supernet (load it, or train it with ``cfg.fit``), set up the data, run the check."""
    import torch

    from supernet.data.datamodule import SpeechDataModule
    from supernet.training.run import fit, load_supernet

    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    ckpt = cfg.supernet
    if ckpt is None:
        ckpt = str(fit(_fit_config(cfg)).checkpoint)
    net, space, tokenizer, meta = load_supernet(ckpt, map_location=cfg.device)
    net.to(cfg.device)
    data_cfg = cfg.data or meta["config"].data
    dm = SpeechDataModule(data_cfg, tokenizer=tokenizer, progress=cfg.progress)
    dm.prepare_data()
    dm.setup("fit")
    return rank_check(cfg, net, space, tokenizer, dm, supernet_label=str(ckpt))
