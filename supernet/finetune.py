"""`supernet finetune`: train an extracted subnet on its own, optionally distilled from the supernet.

    supernet finetune subnet.pt -c configs/finetune/default.yaml --out runs/finetune/mobile
    supernet finetune subnet.pt -c configs/finetune/distill.yaml --out DIR train.max_steps=200

The training loop is :func:`supernet.evaluation.training.train_subnet` (the one that progressive
evaluation and rank-check references use): AdamW, early stopping on dev WER, best weights kept.
Dev scoring uses the evaluator's batching and aggregation (:func:`score_subnet`), so fine-tuned
WERs are comparable with the search's.

Distillation (``distill`` section): the teacher is the supernet's largest subnet, extracted once
as a static model, pinned to the student's subsampling and decoder type where the space allows
(frame-level KD needs the same frame rate and output posteriors). The loss of a step is
``label_weight * label loss + weight * KL(teacher || student)`` per valid output position
(``supernet.training.losses.distill_loss``). When the posteriors cannot be compared the step
trains on labels alone and the number of such steps is reported.

Outputs in ``--out``: ``subnet.pt`` (the fine-tuned subnet with its vocabulary, data config and
fine-tuning record, readable by ``supernet export``), ``finetune.json`` (config, dev curve, best
step, why it stopped, provenance).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from supernet.config import ConfigError, load_config, to_dict
from supernet.evaluation.training import TrainConfig

__all__ = ["DistillConfig", "FinetuneConfig", "DistilledSubnet", "score_subnet", "teacher_for", "finetune", "register"]

log = logging.getLogger(__name__)


def _finetune_train() -> TrainConfig:
    return TrainConfig(max_steps=1000, eval_every=50, patience=4, monitor="wer")


@dataclass
class DistillConfig:
    """Distillation from the supernet's largest subnet.

    Args:
        teacher: supernet checkpoint (``supernet fit``); None: the one the subnet was extracted from.
        arch: "largest" (pinned to the student's subsampling and decoder type) or an arch JSON / file.
        weight: weight of the KL term.
        label_weight: weight of the student's own label loss.
        temperature: softmax temperature (the KL is scaled by T^2).
    """

    teacher: str | None = None
    arch: str = "largest"
    weight: float = 1.0
    label_weight: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.weight < 0 or self.label_weight < 0 or self.temperature <= 0:
            raise ValueError("distill: weight and label_weight must be >= 0 and temperature > 0")


@dataclass
class FinetuneConfig:
    """A fine-tuning run (``configs/finetune/*.yaml``).

    Args:
        data: corpus and batching; None: the data config stored in the subnet file (the supernet's).
        train: steps, early stopping (``monitor: wer``), optimiser, SpecAugment, seed.
        distill: distillation settings; None: labels only.
        dev_batch_size: utterances per dev batch.
        threads: torch intra-op threads (None: leave as is).
        progress: progress bar.
    """

    data: Any = None
    train: TrainConfig = field(default_factory=_finetune_train)
    distill: DistillConfig | None = None
    dev_batch_size: int = 16
    threads: int | None = None
    progress: bool = True


def load_finetune_config(source: str | Path | dict | None, overrides: Mapping[str, Any] | None = None) -> FinetuneConfig:
    """Typed config from YAML (or a dict), ``overrides`` as nested dicts merged on top."""
    from supernet.config import load_yaml
    from supernet.data.datamodule import DataConfig

    raw = {} if source is None else (load_yaml(source) if not isinstance(source, dict) else dict(source))
    for k, v in (overrides or {}).items():
        raw = _merge(raw, {k: v})
    data = raw.pop("data", None)
    cfg = load_config(FinetuneConfig, raw)
    if data is not None:
        cfg.data = load_config(DataConfig, data)
    return cfg


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------------------- scoring
@torch.no_grad()
def score_subnet(model: nn.Module, batches: list, tokenizer: Any, label: str = "subnet") -> Any:
    """Dev loss, WER and CER of a static subnet on prepared batches (``make_batches``).

    Same decoding and aggregation as :class:`supernet.evaluation.evaluator.Evaluator`, without a
    supernet: a :class:`~supernet.evaluation.results.Metrics` with ``loss``, ``wer``, ``cer``.
    """
    import time

    from supernet.evaluation.results import GroupOutput, Metrics, summarize

    t0 = time.perf_counter()
    was_training = model.training
    model.eval()
    groups: dict[tuple[str, str], GroupOutput] = {}
    try:
        for b in batches:
            enc, enc_lengths = model(b.audio, b.audio_lengths)
            outputs = model.head(enc, enc_lengths, b.targets, b.target_lengths)
            loss = float(model.head.loss(outputs, enc_lengths, b.targets, b.target_lengths))
            g = groups.setdefault((b.set_name, b.lang), GroupOutput(b.set_name, b.lang))
            g.hyps += [tokenizer.decode(ids) for ids in model.head.decode(enc, enc_lengths)]
            g.refs += b.texts
            g.loss_sum += loss * len(b)
    finally:
        model.train(was_training)
    return Metrics(label, *summarize(groups.values()), seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------- distillation
class DistilledSubnet(nn.Module):
    """A student subnet whose loss adds distillation from a frozen teacher subnet.

    It has the interface ``train_subnet`` drives (``features``, ``encoder``, ``loss``): the
    teacher runs on the batch's audio in ``features`` (no gradients, eval mode) and its encoder
    output is kept for the ``loss`` call of the same step, which needs the targets to compute
    the teacher's RNN-T / attention posteriors. Only the student is a registered submodule, so
    parameters, state_dict and the optimiser see the student alone.

    Args:
        student: the SubnetModel being trained.
        teacher: a SubnetModel (frozen).
        cfg: weights and temperature.
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig) -> None:
        super().__init__()
        self.student = student
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)  # not a submodule: never trained or saved
        self.cfg = cfg
        self._teacher_enc: tuple[Tensor, Tensor] | None = None
        self.steps = 0
        self.unmatched = 0

    @property
    def head(self) -> nn.Module:
        return self.student.head

    def features(self, audio: Tensor, audio_lengths: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            self._teacher_enc = self.teacher(audio, audio_lengths)
        return self.student.features(audio, audio_lengths)

    def encoder(self, feats: Tensor, feat_lengths: Tensor) -> tuple[Tensor, Tensor]:
        return self.student.encoder(feats, feat_lengths)

    def loss(self, enc: Tensor, enc_lengths: Tensor, targets: Tensor, target_lengths: Tensor) -> Tensor:
        from supernet.training.losses import distill_loss, posterior_parts

        if self._teacher_enc is None:
            raise RuntimeError("DistilledSubnet.loss() before features(): the teacher has not seen this batch")
        t_enc, t_lengths = self._teacher_enc
        self._teacher_enc = None
        head = self.student.head
        out = head(enc, enc_lengths, targets, target_lengths)
        label = head.loss(out, enc_lengths, targets, target_lengths)
        with torch.no_grad():
            t_out = self.teacher.head(t_enc, t_lengths, targets, target_lengths)
        self.steps += 1
        kd = None
        if torch.equal(t_lengths, enc_lengths):
            kd = distill_loss(posterior_parts(self.student.arch.decoder, out, enc_lengths, target_lengths),
                              posterior_parts(self.teacher.arch.decoder, t_out, t_lengths, target_lengths),
                              self.cfg.temperature)
        if kd is None:
            self.unmatched += 1
            return label
        return self.cfg.label_weight * label + self.cfg.weight * kd


def teacher_for(student_arch: Any, ckpt: str | Path, arch_text: str = "largest") -> nn.Module:
    """The teacher SubnetModel: ``arch_text`` of the supernet in ``ckpt`` (see :class:`DistillConfig`)."""
    from supernet.extraction import parse_arch
    from supernet.subnet import extract
    from supernet.train import load_supernet

    net, space, _, _ = load_supernet(ckpt)
    if arch_text == "largest":
        try:
            arch = space.largest(subsampling=student_arch.subsampling, decoder=student_arch.decoder)
        except ValueError as e:
            log.warning("teacher: %s; using the unpinned largest arch (distillation may not line up)", e)
            arch = space.largest()
    else:
        arch = parse_arch(arch_text, space)
    return extract(net, arch).eval()


# ---------------------------------------------------------------------------- run
def finetune(subnet_path: str | Path, cfg: FinetuneConfig, out_dir: str | Path) -> dict[str, Any]:
    """Fine-tune the subnet file ``subnet_path`` as ``cfg`` says; write ``out_dir`` (see the module docstring).

    Returns:
        The summary written to ``finetune.json``.
    """
    from supernet.data.datamodule import DataConfig, SpeechDataModule
    from supernet.evaluation.batches import make_batches
    from supernet.evaluation.training import train_subnet
    from supernet.extraction import read_subnet, write_subnet
    from supernet.utils import atomic_write_json, provenance

    sub = read_subnet(subnet_path)
    out_dir = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = cfg.data
    if data is None:
        if "data" not in sub.extra:
            raise ConfigError(f"{subnet_path}: the subnet file records no data config; give one in the finetune "
                              "config's `data:` section (see configs/finetune/default.yaml)")
        data = load_config(DataConfig, sub.extra["data"])
    dm = SpeechDataModule(data, tokenizer=sub.tokenizer, progress=cfg.progress)
    dm.prepare_data()
    dm.setup("fit")
    batches = make_batches(dm.dev_sets, cfg.dev_batch_size, "cpu", sample_rate=data.sample_rate)
    student = sub.model
    model: nn.Module = student
    teacher_info: dict[str, Any] | None = None
    if cfg.distill is not None:
        ckpt = cfg.distill.teacher or sub.extra.get("source", {}).get("checkpoint")
        if not ckpt:
            raise ConfigError("distill.teacher: no supernet checkpoint given and the subnet file does not name the one "
                              "it was extracted from; set distill.teacher: runs/fit/<name>/supernet.ckpt")
        teacher = teacher_for(student.arch, ckpt, cfg.distill.arch)
        if teacher.vocab_size != student.vocab_size:
            raise ConfigError(f"distill.teacher {ckpt}: vocabulary of {teacher.vocab_size} ids, the subnet has "
                              f"{student.vocab_size}; use the supernet the subnet was extracted from")
        model = DistilledSubnet(student, teacher, cfg.distill)
        teacher_info = {"checkpoint": str(ckpt), "arch": teacher.arch.to_dict(), "describe": teacher.arch.describe()}
    label = f"finetune {student.arch.id}"
    result = train_subnet(model, dm.train_set, cfg.train, lambda m: score_subnet(student, batches, sub.tokenizer),
                          progress=cfg.progress, label=label)
    student.eval()
    record = {"config": to_dict(cfg), "best_step": result.best_step, "final_step": result.final_step,
              "stopped": result.stopped, "best": {k: float(result.best[k]) for k in ("wer", "cer", "loss")},
              "start": result.curve[0], "teacher": teacher_info}
    if isinstance(model, DistilledSubnet):
        record["distill_steps"] = model.steps
        record["distill_unmatched_steps"] = model.unmatched
    write_subnet(student, out_dir / "subnet.pt", sub.tokenizer, data=to_dict(data),
                 source={**sub.extra.get("source", {}), "subnet": str(subnet_path)}, finetune=record,
                 arch_describe=student.arch.describe())
    summary = {**record, "arch": student.arch.to_dict(), "arch_id": student.arch.id, "describe": student.arch.describe(),
               "curve": result.curve, "seconds": result.seconds, "skipped_steps": result.skipped_steps,
               "converged": result.converged, "subnet": str(out_dir / "subnet.pt"),
               "provenance": provenance(cfg, cfg.train.seed)}
    atomic_write_json(out_dir / "finetune.json", summary)
    return summary


# ---------------------------------------------------------------------------- CLI
def _parse_override(item: str) -> dict[str, Any]:
    import yaml

    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} must look like key.sub=value (e.g. train.max_steps=200)")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {item!r}: the value is not valid YAML ({e})") from None
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def _intermixed(base: type) -> type:
    """``base`` parsing like ``parse_intermixed_args``: positionals may come after options.

    A subcommand's parser is called through ``parse_known_args``; plain argparse would stop
    filling ``overrides`` at the first option and reject the rest.
    """

    class Intermixed(base):
        def parse_known_args(self, args=None, namespace=None):
            if getattr(self, "_intermixing", False):  # parse_known_intermixed_args calls back in here
                return super().parse_known_args(args, namespace)
            self._intermixing = True
            try:
                return self.parse_known_intermixed_args(args, namespace)
            finally:
                self._intermixing = False

    return Intermixed


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet finetune``."""
    p = subparsers.add_parser("finetune", help="fine-tune an extracted subnet (early stopping on dev WER, optional KD)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.__class__ = _intermixed(type(p))  # `SUBNET -c cfg.yaml key=value`: options between positionals
    p.add_argument("subnet", metavar="SUBNET", help="subnet file from `supernet extract`")
    p.add_argument("-c", "--config", default=None, metavar="YAML", help="finetune config (configs/finetune/*.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="override a config field, e.g. train.max_steps=200")
    p.add_argument("--teacher", default=None, metavar="CKPT", help="distil from this supernet checkpoint (turns distill on)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder (subnet.pt, finetune.json)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    merged: dict[str, Any] = {}
    for item in args.overrides:
        merged = _merge(merged, _parse_override(item))
    if args.teacher:
        merged = _merge(merged, {"distill": {"teacher": args.teacher}})
    cfg = load_finetune_config(args.config, merged)
    summary = finetune(args.subnet, cfg, args.out)
    b = summary["best"]
    print(f"{summary['subnet']}: {summary['describe']}: dev WER {summary['start']['wer']:.3f} -> {b['wer']:.3f} "
          f"(best step {summary['best_step']} of {summary['final_step']}, stopped: {summary['stopped']})", file=sys.stderr)
    return 0
