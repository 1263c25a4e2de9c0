"""Streaming benchmark: a mobile-like streaming subnet at 160 ms chunks on 1 thread.

The archs (FSDD connected digits, the project's subnet trainer
``supernet.evaluation.training.train_subnet``):

- the mobile-like streaming arch: 4 causal Conformer layers (width 96), CTC, chunks of 4 encoder
  frames = 160 ms, 2 frames (80 ms) of look-ahead;
- its full-context twin: the same arch with chunk 0 (whole-utterance attention, centred convolutions).

How they are trained (default): the twin from scratch for ``--minutes``; then the streaming arch,
initialised with the twin's weights (the same parameters serve both), for ``--stream-minutes``,
and, as the equal-compute control, the twin itself for the same ``--stream-minutes`` with the
same recipe. Streaming is compared with that continued twin: both had the same compute.
From scratch, the streaming arch stalled on the CTC blank plateau in the one 10-minute run made
(92 % dev WER, the twin 3.4 %; session 5, with the per-frame LayerNorm that ``--frame-norm``
restores); ``--from-scratch`` trains both archs from scratch for ``--minutes`` each, to measure
that again (BENCHMARKS.md).

Then exports the streaming model (ONNX) and streams the dev utterances through ONNX Runtime on
1 thread in 160 ms pieces (``supernet.streaming.evaluate_streaming``). Reported:

- per-piece processing time (median / p90 / max, wall clock and process CPU time), and its ratio
  to the piece duration. Target: <= 0.2 x 160 ms;
- streaming WER vs the full-context twin's WER. Target: streaming WER <= 1.15 x full-context WER;
- the streaming model's own whole-utterance WER (equal to its streaming WER by construction).

The dev utterances are held-in speakers' held-out takes; ``--eval-set test`` streams and scores the
unseen-speaker test set instead (training still validates on dev, so nothing is picked on it): on
200 dev utterances the streaming ratio rests on ~20 word errors. Writes bench/results/streaming.json (or
``--name``) and keeps the subnets and the model directory under runs/bench/streaming-<time>/.

Usage:
    OMP_NUM_THREADS=2 .venv/bin/python bench/streaming.py [--minutes 8] [--stream-minutes 4] [--dev-utts 100]
    OMP_NUM_THREADS=2 .venv/bin/python bench/streaming.py --from-scratch --minutes 10 --name streaming_from_scratch
    OMP_NUM_THREADS=2 .venv/bin/python bench/streaming.py --twin runs/bench/streaming-<time>  # skip the twin's 8 minutes
    OMP_NUM_THREADS=2 .venv/bin/python bench/streaming.py --dynamic-chunk 0.5 --minutes 12 --control runs/bench/streaming_from_scratch-<time>
    OMP_NUM_THREADS=2 .venv/bin/python bench/streaming.py --dynamic-chunk 0.5 --minutes 12 --eval-set test --dev-utts 300

``--dynamic-chunk P`` trains one model for ``--minutes`` with dynamic chunks (WeNet U2): ``supernet
fit`` (progressive, one phase with ``streaming_prob: P``) over a space holding exactly the
full-context arch and the streaming arch, so on a share P of the steps the shared weights run
chunked. Both archs are extracted from the same weights and compared; ``--control RUN_DIR`` adds a
full-context model trained on its own (``RUN_DIR/full_context.pt`` of a ``--from-scratch`` run) as
a second reference.

How the streaming arch's convolutions use the twin's kernels is ``--causal-conv`` (``NetConfig.causal_conv``):
``shift`` (default, as the shipped configs) moves the whole kernel into the past; ``mask`` keeps each
past tap's offset and drops the future taps. From the same twin, ``mask`` was far worse (session 8:
16.4 % against 3.0 % streaming dev WER after 4 minutes; BENCHMARKS.md). ``chunk`` keeps each tap's
offset and lets a frame's future taps reach the end of its chunk (dynamic chunk convolution, Li et al.,
ICASSP 2023; measured with ``--dynamic-chunk`` in session 14). ``--causal-full-context``
(``NetConfig.causal_full_context``) makes the full-context arch's subsampler and convolutions causal
too (WeNet's U2 ``causal: true``): with ``--dynamic-chunk`` the two modes then differ only in the
attention mask and the look-ahead's shift (session 18, five folds: both modes worse, ratio 1.20x
against 1.18x).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from common import ROOT, Contention, pin_threads, write_result

CHUNK_MS = 160.0
TARGET_RTF = 0.2
TARGET_WER_RATIO = 1.15
UNTRAINED_WER = 0.9  # above this the WER comparison is not judged (the budget did not train the models)


def mobile_arch(chunk: int = 4, lookahead: int | None = 2):
    from supernet.space import Arch, LayerArch

    conf = LayerArch("conformer", "mha", 4, 2, 15)
    return Arch("logmel40", 4, 96, (conf,) * 4, "ctc", chunk=chunk, lookahead=lookahead)


# From scratch: peak rate 1e-3 (warm-up + cosine over the budget). At 2e-3 (the baseline's rate)
# this subnet left the CTC blank plateau in one 10-minute run and not in the next 8-minute one
# (BENCHMARKS.md); the quickstart and the rank-check references train at 1e-3 for the same reason.
SCRATCH_LR = 1e-3
CONTINUE_LR = 1e-3  # from the twin's weights: the same warm-up + cosine over --stream-minutes
# The one training recipe of every model here (train() and train_dynamic_chunk()), besides the rate.
OPTIM = {"schedule": "cosine", "warmup": 0.05, "weight_decay": 0.01, "grad_clip": 5.0}
SPECAUGMENT = {"freq_masks": 2, "freq_width": 8, "time_masks": 2, "time_width": 20}


def net_config(frame_norm: bool = False, causal_conv: str = "shift", causal_full_context: bool = False,
               subsampler: str = "conv1d", subsampler_channels: int = 64):
    """The archs' fixed hyper-parameters (as the shipped fit configs: a 1-D subsampler of 64
    channels unless ``subsampler`` / ``subsampler_channels`` say otherwise, no per-frame LayerNorm
    unless ``frame_norm``, causal convolutions per ``causal_conv``, in the full-context arch too when
    ``causal_full_context``)."""
    from supernet.nn.config import NetConfig

    return NetConfig(dropout=0.05, subsampler=subsampler, subsampler_channels=subsampler_channels, frame_norm=frame_norm,
                     causal_conv=causal_conv, causal_full_context=causal_full_context)


def train(arch, dm, minutes: float, seed: int, progress: bool, batches, tokenizer, net, init=None, lr: float = SCRATCH_LR):
    """Train ``arch`` for ``minutes`` (from ``init``'s weights when given); (model, TrainResult)."""
    import torch

    from supernet.baseline.config import OptimConfig
    from supernet.data.features import SpecAugmentConfig
    from supernet.evaluation.training import TrainConfig, train_subnet
    from supernet.finetune import score_subnet
    from supernet.subnet import SubnetModel

    torch.manual_seed(seed)
    model = SubnetModel(arch, tokenizer.vocab_size, net)
    if init is not None:
        model.load_state_dict(init.state_dict())  # strict: the streaming arch has the twin's parameters
    cfg = TrainConfig(max_steps=10**6, max_minutes=minutes, eval_every=150, patience=10**6, monitor="wer", batch_size=16,
                      optim=OptimConfig(lr=lr, **OPTIM), specaugment=SpecAugmentConfig(**SPECAUGMENT), seed=seed)
    res = train_subnet(model, dm.train_set, cfg, lambda m: score_subnet(m, batches, tokenizer), progress=progress,
                       label=arch.describe())
    return model, res


def parse_train_chunks(text: str | None, stream_arch) -> list[int]:
    """``--train-chunks`` ("4,8,16"): the chunks (encoder frames) dynamic-chunk training draws from;
    None: the streaming arch's chunk only. Each above the look-ahead; the arch's chunk among them."""
    if text is None:
        return [stream_arch.chunk]
    try:
        chunks = sorted({int(c) for c in text.split(",")})
    except ValueError:
        raise SystemExit(f"--train-chunks {text!r}: give comma-separated integers, e.g. 4,8,16") from None
    la = stream_arch.lookahead or 0
    if stream_arch.chunk not in chunks or chunks[0] <= la:
        raise SystemExit(f"--train-chunks {text!r}: every chunk must exceed the look-ahead ({la} frames) and the "
                         f"streaming arch's chunk ({stream_arch.chunk}) must be one of them, e.g. {stream_arch.chunk},8,16")
    return chunks


def train_dynamic_chunk(full_arch, stream_arch, data, net, minutes: float, prob: float, lr: float, seed: int,
                        run_dir: Path, progress: bool, chunks: list[int] | None = None):
    """One model trained with dynamic chunks (WeNet U2) by ``supernet fit``: progressive, one phase with
    ``streaming_prob: prob``, over a space holding exactly ``full_arch`` and ``stream_arch`` (and
    ``stream_arch`` at every chunk of ``chunks``, drawn uniformly on the chunked steps, as U2 draws
    its chunk size); the recipe of :func:`train` (optimiser, SpecAugment, batch 16, no waveform augmentation).
    (streaming model, full-context model, record, tokenizer): both models extracted from the same
    final weights."""
    import yaml

    from supernet.config import to_dict
    from supernet.space_yaml import one_arch_space
    from supernet.subnet import extract
    from supernet.training.config import load_fit_config
    from supernet.training.run import fit

    space = one_arch_space(full_arch, "streaming_dynamic_chunk")
    space["streaming"] = {"chunk": [0, *(chunks or [stream_arch.chunk])], "lookahead": [stream_arch.lookahead]}
    run_dir.mkdir(parents=True, exist_ok=True)
    space_path = run_dir / "space.yaml"
    space_path.write_text(yaml.safe_dump(space, sort_keys=False), encoding="utf-8")
    phase = {"name": "dynamic_chunk", "open": [], "steps": 10**6, "schedule": "cosine", "warmup": 0.05, "streaming_prob": prob}
    cfg = load_fit_config(
        ROOT / "configs/fit/progressive_fsdd.yaml", name="streaming_dynamic_chunk", out_dir=str(run_dir / "fit"), seed=seed,
        space=str(space_path), progressive={"phases": [phase]}, net=dataclasses.asdict(net),
        specaugment=SPECAUGMENT, optim={"lr": lr, **OPTIM},
        data={**to_dict(data), "batch_size": 16},
        trainer={"max_steps": 10**6, "max_minutes": minutes, "val_every_steps": None, "ckpt_every_steps": 500, "progress": progress})
    result = fit(cfg, logger=True)
    supernet = result.module.net.eval()
    full = extract(supernet, full_arch).eval()
    record = {"how": f"dynamic chunk (U2), streaming_prob {prob}, {minutes} min from scratch", "budget_minutes": minutes,
              "steps": result.summary["steps"], "seconds": result.summary["elapsed_s"], "fit_dir": str(result.run_dir),
              "params": sum(p.numel() for p in full.parameters())}
    return extract(supernet, stream_arch).eval(), full, record, result.module.tokenizer


def net_differences(theirs, ours) -> list[str]:
    """The NetConfig fields a saved model (``theirs``) was built with that differ from this run's
    (``ours``), as "field: theirs there, ours here"; empty when they agree."""
    return [f"{f.name}: {getattr(theirs, f.name)!r} there, {getattr(ours, f.name)!r} here"
            for f in dataclasses.fields(ours) if getattr(theirs, f.name) != getattr(ours, f.name)]


def read_full_context(path: Path, tok, full_arch, net):
    """(model, its bench record with ``from``) of a full-context model an earlier run saved, checked
    against this benchmark's arch, vocabulary and net (a full-context model does not depend on
    ``causal_conv`` unless ``causal_full_context``; everything else must match)."""
    from supernet.extraction import read_subnet

    sub = read_subnet(path)
    theirs = sub.model.net if net.causal_full_context else replace(sub.model.net, causal_conv=net.causal_conv)
    differ = net_differences(theirs, net)
    if sub.tokenizer != tok or sub.model.arch != full_arch or differ:
        raise SystemExit(f"{path}: another arch, vocabulary or net than this benchmark's (a full-context model does not "
                         "depend on causal_conv unless causal_full_context; everything else must match)"
                         + (f": {'; '.join(differ)}" if differ else ""))
    return sub.model, {**sub.extra.get("bench", {}), "from": str(path.parent)}


def _record(arch, model, res, minutes: float, how: str) -> dict:
    return {"arch": arch.to_dict(), "describe": arch.describe(), "how": how, "budget_minutes": minutes,
            "steps": res.final_step, "best_step": res.best_step, "seconds": res.seconds,
            "dev_wer": float(res.best["wer"]), "curve": res.curve, "params": sum(p.numel() for p in model.parameters())}


def speaker_fold(data, speaker: str, source: Path):
    """``data`` (an FSDD DataConfig) with ``speaker`` as the only test speaker and all its other
    speakers (train and test) as training speakers."""
    if data.corpus != "fsdd":
        raise SystemExit(f"--test-speaker: {source} is a {data.corpus!r} corpus; speaker folds need corpus: fsdd")
    everyone = [*data.fsdd.train_speakers, *data.fsdd.test_speakers]
    if speaker not in everyone:
        raise SystemExit(f"--test-speaker {speaker}: not a speaker of {source} (fsdd.train_speakers + test_speakers: "
                         f"{', '.join(everyone)})")
    fsdd = replace(data.fsdd, train_speakers=tuple(s for s in everyone if s != speaker), test_speakers=(speaker,))
    return replace(data, fsdd=fsdd)


def error_breakdown(hyps, refs, top: int = 5) -> dict:
    """Word edits of ``hyps`` against ``refs`` (jiwer's alignment): substitutions, deletions and
    insertions, and where the deleted reference words stood in their utterance (first, inner or last
    word; a one-word reference counts as first). A model that loses the ends of utterances shows up
    as ``last`` deletions. ``top_substitutions``: the ``top`` most frequent (reference word, recognised
    word, count)."""
    import jiwer

    res = jiwer.process_words(list(refs), list(hyps))
    where, swaps = dict.fromkeys(("first", "inner", "last"), 0), Counter()
    for ref, hyp, alignment in zip(res.references, res.hypotheses, res.alignments):
        for chunk in alignment:
            if chunk.type == "delete":
                for j in range(chunk.ref_start_idx, chunk.ref_end_idx):
                    where["first" if j == 0 else "last" if j == len(ref) - 1 else "inner"] += 1
            elif chunk.type == "substitute":
                swaps.update(zip(ref[chunk.ref_start_idx:chunk.ref_end_idx], hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]))
    return {"words": sum(map(len, res.references)), "substitutions": res.substitutions, "deletions": res.deletions,
            "insertions": res.insertions, "deleted_at": where,
            "top_substitutions": [[r, h, n] for (r, h), n in swaps.most_common(top)]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=8.0,
                    help="wall budget of the full-context twin from scratch (with --from-scratch: of each model)")
    ap.add_argument("--stream-minutes", type=float, default=4.0,
                    help="wall budget of the streaming arch from the twin's weights, and of the twin's equal-compute continuation")
    ap.add_argument("--lr", type=float, default=SCRATCH_LR, help=f"peak learning rate from scratch (default {SCRATCH_LR:g})")
    ap.add_argument("--from-scratch", action="store_true", help="train both archs from scratch for --minutes each (no warm start)")
    ap.add_argument("--frame-norm", action="store_true",
                    help="build the archs with NetConfig.frame_norm (per-frame LayerNorm, as sessions 1-5 measured)")
    ap.add_argument("--causal-conv", choices=["shift", "mask", "chunk"], default="shift",
                    help="how the streaming arch's convolutions use the twin's kernels (NetConfig.causal_conv; "
                         "sessions 1-6 measured shift)")
    ap.add_argument("--subsampler", choices=["conv1d", "conv2d"], default="conv1d",
                    help="NetConfig.subsampler: strided 1-D convolutions over time (default, sessions 1-21) or 2-D over "
                         "time x frequency (the headline's since session 24), causal in time for the streaming arch")
    ap.add_argument("--subsampler-channels", type=int, default=64,
                    help="NetConfig.subsampler_channels (default 64; the headline's conv2d uses 32)")
    ap.add_argument("--causal-full-context", action="store_true",
                    help="the full-context arch's subsampler and convolutions are causal too (NetConfig.causal_full_context, "
                         "WeNet U2's causal: true)")
    ap.add_argument("--lookahead", type=int, default=2,
                    help="encoder frames (40 ms each) of look-ahead of the streaming arch, 0-3: below its chunk of 4, "
                         "as the shipped spaces require (constraints.lookahead_below_chunk); default 2")
    ap.add_argument("--dynamic-chunk", type=float, default=None, metavar="P",
                    help="train one model for --minutes with dynamic chunks (U2): a share P of the steps chunked; "
                         "streaming and full context are then the same weights")
    ap.add_argument("--train-chunks", default=None, metavar="C1,C2,...",
                    help="with --dynamic-chunk: the chunks (encoder frames) the chunked steps draw from uniformly, as U2 "
                         "draws its chunk size (default: the streaming arch's chunk, 4, only)")
    ap.add_argument("--control", type=Path, default=None, metavar="RUN_DIR",
                    help="with --dynamic-chunk: also score RUN_DIR/full_context.pt (a --from-scratch run's full-context model)")
    ap.add_argument("--twin", type=Path, default=None, metavar="RUN_DIR",
                    help="start from the full-context twin an earlier run trained from scratch "
                         "(RUN_DIR/full_context_start.pt) instead of training it again for --minutes")
    ap.add_argument("--train-threads", type=int, default=2)
    ap.add_argument("--dev-utts", type=int, default=100, help="utterances streamed and scored (of --eval-set)")
    ap.add_argument("--eval-set", choices=["dev", "test"], default="dev",
                    help="what is streamed and scored: the held-in dev set (default; also what training validates on) "
                         "or the unseen-speaker test set (training still validates on dev)")
    ap.add_argument("--data", type=Path, default=ROOT / "configs/data/fsdd.yaml")
    ap.add_argument("--tokenizer", choices=["char", "word"], default=None,
                    help="output units (DataConfig.tokenizer): characters or one id per word, as the shipped baseline "
                         "(default: what --data says; configs/data/fsdd.yaml says char)")
    ap.add_argument("--test-speaker", default=None, metavar="NAME",
                    help="leave-one-speaker-out fold of an FSDD --data: NAME is the unseen test speaker and the "
                         "data's other speakers (train + test) train and form the dev set")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="streaming")
    ap.add_argument("--reuse", type=Path, default=None, metavar="RUN_DIR",
                    help="measure the subnets an earlier run trained (RUN_DIR/streaming.pt, full_context.pt): no training")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if not 0 <= args.lookahead < 4:
        ap.error(f"--lookahead {args.lookahead}: must be 0-3 (below the streaming arch's chunk of 4 encoder frames)")
    if args.subsampler_channels < 1:
        ap.error(f"--subsampler-channels {args.subsampler_channels}: must be a positive number of channels")
    if args.dynamic_chunk is not None and not 0.0 < args.dynamic_chunk < 1.0:
        ap.error(f"--dynamic-chunk {args.dynamic_chunk}: must be between 0 and 1 (exclusive): the share of chunked steps")
    if args.dynamic_chunk is not None and (args.from_scratch or args.twin or args.reuse):
        ap.error("--dynamic-chunk trains its own model from scratch: it cannot be combined with --from-scratch, --twin or --reuse")
    if args.train_chunks is not None:
        if args.dynamic_chunk is None:
            ap.error("--train-chunks sets what --dynamic-chunk's chunked steps draw; give --dynamic-chunk P too")
        parse_train_chunks(args.train_chunks, mobile_arch(lookahead=args.lookahead))
    if args.control is not None and args.dynamic_chunk is None:
        ap.error("--control is a second reference of --dynamic-chunk; without it the control is trained by the run")
    if args.control is not None and not (args.control / "full_context.pt").is_file():
        ap.error(f"--control {args.control}: no full_context.pt there (the folder of a --from-scratch run)")

    import torch

    from supernet.config import load_config
    from supernet.data.datamodule import DataConfig, SpeechDataModule
    from supernet.evaluation.batches import make_batches
    from supernet.export import export_subnet
    from supernet.extraction import read_subnet, write_subnet
    from supernet.metrics import wer
    from supernet.runtime import Recognizer
    from supernet.streaming import evaluate_streaming

    pin_threads(args.train_threads)
    data = load_config(DataConfig, args.data)
    data = replace(data, cache_dir=str(ROOT / data.cache_dir), tokenizer=args.tokenizer or data.tokenizer)
    if args.test_speaker:
        data = speaker_fold(data, args.test_speaker, args.data)
    dm = SpeechDataModule(data, progress=not args.no_progress)
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    name, dev = next(iter(dm.dev_sets.items()))
    items = [dev[i] for i in range(min(args.dev_utts, len(dev)))]
    batches = make_batches({name: items}, 16)  # training validates on dev whatever --eval-set says
    if args.eval_set == "test":  # unseen speakers: scored only, never used to pick weights
        dm.setup("test")
        name, test = next(iter(dm.test_sets.items()))
        items = [test[i] for i in range(min(args.dev_utts, len(test)))]
    run_dir = args.reuse or ROOT / "runs/bench" / f"{args.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    contention = Contention(args.train_threads)

    models, training = {}, {}
    net = net_config(frame_norm=args.frame_norm, causal_conv=args.causal_conv, causal_full_context=args.causal_full_context,
                     subsampler=args.subsampler, subsampler_channels=args.subsampler_channels)
    stream_arch, full_arch = mobile_arch(lookahead=args.lookahead), mobile_arch(0, None)

    def keep(key, arch, model, res, minutes, how):
        models[key], training[key] = model, _record(arch, model, res, minutes, how)
        write_subnet(model, run_dir / f"{key}.pt", tok, data={}, bench=training[key])
        print(f"{key}: {arch.describe()} ({how}): {res.final_step} steps, dev WER {res.best['wer']:.3f}", flush=True)

    progress = not args.no_progress
    if args.reuse:
        for key, arch in (("streaming", stream_arch), ("full_context", full_arch)):
            sub = read_subnet(run_dir / f"{key}.pt")
            if sub.tokenizer != tok or sub.model.arch != arch:
                units = (f" ({sub.tokenizer.kind} units there, {tok.kind} here; --tokenizer picks them)"
                         if sub.tokenizer.kind != tok.kind else "")
                raise SystemExit(f"{run_dir / f'{key}.pt'}: another arch or vocabulary than this benchmark's{units}")
            differ = net_differences(sub.model.net, net)
            if differ:  # the result records this run's options: they must be the measured model's
                raise SystemExit(f"{run_dir / f'{key}.pt'}: built with another net than these options say ({'; '.join(differ)}); "
                                 "give the options the run was trained with (--subsampler, --frame-norm, --causal-conv, ...)")
            models[key], training[key] = sub.model, sub.extra.get("bench", {})
    elif args.dynamic_chunk is not None:
        stream_model, full_model, rec, fit_tok = train_dynamic_chunk(full_arch, stream_arch, data, net, args.minutes, args.dynamic_chunk,
                                                                     args.lr, args.seed, run_dir, progress,
                                                                     parse_train_chunks(args.train_chunks, stream_arch))
        if fit_tok != tok:
            raise SystemExit(f"{rec['fit_dir']}: the fit built another vocabulary than this benchmark's data module")
        for key, arch, model in (("streaming", stream_arch, stream_model), ("full_context", full_arch, full_model)):
            models[key], training[key] = model, {**rec, "arch": arch.to_dict(), "describe": arch.describe()}
            write_subnet(model, run_dir / f"{key}.pt", tok, data={}, bench=training[key])
        print(f"dynamic chunk: {rec['steps']} steps in {rec['seconds']:.0f} s", flush=True)
        if args.control:
            models["control"], training["control"] = read_full_context(args.control / "full_context.pt", tok, full_arch, net)
    elif args.from_scratch:
        for key, arch in (("streaming", stream_arch), ("full_context", full_arch)):
            model, res = train(arch, dm, args.minutes, args.seed, progress, batches, tok, net, lr=args.lr)
            keep(key, arch, model, res, args.minutes, f"from scratch, {args.minutes} min")
    else:
        if args.twin:
            twin, training["full_context_start"] = read_full_context(args.twin / "full_context_start.pt", tok, full_arch, net)
            args.minutes = training["full_context_start"].get("budget_minutes", args.minutes)
        else:
            twin, res = train(full_arch, dm, args.minutes, args.seed, progress, batches, tok, net, lr=args.lr)
            keep("full_context_start", full_arch, twin, res, args.minutes, f"from scratch, {args.minutes} min")
            if res.best["wer"] >= UNTRAINED_WER:
                raise SystemExit(f"the full-context twin did not learn in {args.minutes} min (dev WER {res.best['wer']:.3f}): "
                                 f"no weights to start the streaming arch from; raise --minutes or lower --lr")
        how = f"from the twin's {args.minutes}-min weights, +{args.stream_minutes} min at lr {CONTINUE_LR:g}"
        model, res = train(stream_arch, dm, args.stream_minutes, args.seed, progress, batches, tok, net, init=twin, lr=CONTINUE_LR)
        keep("streaming", stream_arch, model, res, args.stream_minutes, how)
        model, res = train(full_arch, dm, args.stream_minutes, args.seed, progress, batches, tok, net, init=twin, lr=CONTINUE_LR)
        keep("full_context", full_arch, model, res, args.stream_minutes, how)
    train_load = contention.report() if not args.reuse else "not trained in this run (--reuse)"

    # measurement: 1 thread, ONNX Runtime
    pin_threads(1)
    model_dir = run_dir / "model"
    meta = export_subnet(models["streaming"], model_dir, tok, force=True)
    rec = Recognizer.load(model_dir, "onnx", threads=1)
    utts = [(it["audio"], it["text"]) for it in items]
    measure = Contention(1)
    ev = evaluate_streaming(rec, utts, chunk_ms=CHUNK_MS, threads=1, progress=not args.no_progress)

    refs = [t for _, t in utts]

    def whole_utterance(model) -> list[str]:  # eager, one utterance at a time, as the streaming side
        rec = Recognizer.from_model(model.eval(), tok)
        return [rec.transcribe([w])[0] for w, _ in utts]

    hyps = {"streaming": ev.hyps, **{key: whole_utterance(models[key]) for key in ("full_context", "control") if key in models}}
    errors = {key: error_breakdown(h, refs) for key, h in hyps.items()}
    full_context_wer = wer(hyps["full_context"], refs)
    control_wer = wer(hyps["control"], refs) if "control" in hyps else None
    measure_load = measure.report()

    def over(a: float, b: float) -> float:
        return a / b if b > 0 else float("inf") if a > 0 else 1.0

    ratio = over(ev.wer, full_context_wer)
    control_ratio = over(ev.wer, control_wer) if control_wer is not None else None
    # Two untrained models tie at ~100 % WER: the ratio would "pass" without meaning anything.
    trained = min(ev.wer, full_context_wer) < UNTRAINED_WER
    payload = {
        "arch": stream_arch.describe(), "chunk_ms": CHUNK_MS,
        "net": dataclasses.asdict(models["streaming"].net),
        "lookahead_ms": meta["streaming"]["lookahead_ms"], "tokenizer": tok.kind, "dev_set": name, "dev_utterances": len(utts),
        "speakers": {"train": list(data.fsdd.train_speakers), "test": list(data.fsdd.test_speakers)} if data.corpus == "fsdd" else None,
        "training": {"mode": "reused" if args.reuse else "from scratch" if args.from_scratch
                     else f"dynamic chunk (one model, streaming_prob {args.dynamic_chunk})" if args.dynamic_chunk is not None
                     else "streaming from the twin",
                     "minutes": None if args.reuse else args.minutes,
                     "stream_minutes": None if args.reuse or args.from_scratch else args.stream_minutes,
                     "threads": args.train_threads,
                     "reused_from": str(args.reuse) if args.reuse else None, **training, "contention": train_load},
        "streaming": ev.to_dict(),
        "full_context_twin_wer": full_context_wer,
        "wer_ratio_streaming_vs_full_context": ratio,
        # --dynamic-chunk: full_context_twin_wer is the same weights decoded with full context; the
        # control is a full-context model trained on its own
        "control_full_context_wer": control_wer,
        "wer_ratio_streaming_vs_control": control_ratio,
        # where each model's word errors are: substitutions / deletions / insertions, deletions by position
        "errors": errors,
        "step_over_chunk": {"wall_median": ev.step_ms["median"] / CHUNK_MS, "wall_p90": ev.step_ms["p90"] / CHUNK_MS,
                            "cpu_median": ev.step_cpu_ms["median"] / CHUNK_MS, "cpu_p90": ev.step_cpu_ms["p90"] / CHUNK_MS},
        "targets": {"step_over_chunk <= 0.2 (cpu p90)": ev.step_cpu_ms["p90"] / CHUNK_MS <= TARGET_RTF,
                    "step_over_chunk <= 0.2 (wall p90)": ev.step_ms["p90"] / CHUNK_MS <= TARGET_RTF,
                    "streaming WER <= 1.15 x full-context WER": (ratio <= TARGET_WER_RATIO) if trained else None,
                    **({"streaming WER <= 1.15 x the control's WER": (control_ratio <= TARGET_WER_RATIO) if trained else None}
                       if control_ratio is not None else {})},
        "wer_comparison_meaningful": trained,
        "measurement_contention": measure_load,
        "run_dir": str(run_dir),
        "caveat": "wall times include any waiting for a core (CPU times do not; see measurement_contention); "
                  "models trained for minutes only, so the WERs reflect the budget",
    }
    path = write_result(args.name, payload, config={"minutes": args.minutes, "stream_minutes": args.stream_minutes,
                                                    "from_scratch": args.from_scratch, "dev_utts": args.dev_utts,
                                                    "causal_conv": args.causal_conv, "subsampler": args.subsampler,
                                                    "subsampler_channels": args.subsampler_channels,
                                                    "causal_full_context": args.causal_full_context,
                                                    "train_chunks": args.train_chunks, "lookahead": args.lookahead, "twin": str(args.twin) if args.twin else None,
                                                    "dynamic_chunk": args.dynamic_chunk, "control": str(args.control) if args.control else None,
                                                    "seed": args.seed, "data": str(args.data), "tokenizer": data.tokenizer}, seed=args.seed)
    print(f"streaming WER {ev.wer:.3f} (whole-utterance {ev.full_wer:.3f}), full-context twin {full_context_wer:.3f}, "
          f"ratio {ratio:.2f}" + (f"; control {control_wer:.3f}, ratio {control_ratio:.2f}" if control_wer is not None else "")
          + f"; per 160 ms piece: median {ev.step_ms['median']:.1f} ms wall / {ev.step_cpu_ms['median']:.1f} ms cpu, "
          f"p90 {ev.step_ms['p90']:.1f} / {ev.step_cpu_ms['p90']:.1f} ms")
    for key, e in errors.items():
        print(f"{key}: {e['substitutions']} substitutions, {e['deletions']} deletions (first / inner / last word: "
              f"{e['deleted_at']['first']} / {e['deleted_at']['inner']} / {e['deleted_at']['last']}), "
              f"{e['insertions']} insertions in {e['words']} words")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
