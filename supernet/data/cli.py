"""``supernet data build | check | import-kaldi | download-fsdd``."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

__all__ = ["register"]


def _errors() -> tuple[type[Exception], ...]:
    from supernet.data.audio import AudioError
    from supernet.data.corpus import CorpusError
    from supernet.data.manifest import ManifestError
    from supernet.data.tokenizer import TokenizerError

    return ManifestError, AudioError, CorpusError, TokenizerError


def _print_check(report, show_notes: bool) -> None:
    """Problems to stdout, one line each; notes and the summary to stderr."""
    for p in report.problems:
        print(p)
    if show_notes:
        for n in report.notes:
            print(f"note: {n}", file=sys.stderr)
    elif report.notes:
        groups = Counter(n.reason for n in report.notes).most_common()
        for reason, count in groups[:10]:
            print(f"note: {count} entr{'y' if count == 1 else 'ies'}: {reason}", file=sys.stderr)
        if len(groups) > 10:
            rest = sum(c for _, c in groups[10:])
            print(f"note: ... {rest} more (--notes lists every note)", file=sys.stderr)
    n_bad, n_ok = len(report.problems), len(report.entries)
    print(f"{report.path}: {n_ok} of {n_ok + n_bad} entries usable", file=sys.stderr)


def _check(args: argparse.Namespace) -> int:
    from supernet.data.manifest import inspect_manifest
    from supernet.data.tokenizer import load_tokenizer

    try:
        vocab = load_tokenizer(args.vocab) if args.vocab else None
        report = inspect_manifest(args.manifest, sample_rate=args.sample_rate, vocab=vocab, mono=args.mono,
                                  progress=not args.quiet)
    except _errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    _print_check(report, args.notes)
    return 0 if report.ok else 1


def _build(args: argparse.Namespace) -> int:
    from supernet.config import load_config
    from supernet.data.datamodule import DataConfig, SpeechDataModule
    from supernet.data.manifest import inspect_manifest

    cfg = load_config(DataConfig, args.config)
    try:
        if cfg.corpus == "manifest":
            # Nothing to build: check the user's manifests so that problems show up before training.
            ok = True
            for name, path in SpeechDataModule(cfg).manifests().items():
                report = inspect_manifest(path, sample_rate=cfg.sample_rate, mono=cfg.mono)
                _print_check(report, show_notes=False)
                ok &= report.ok or cfg.skip_bad
            return 0 if ok else 1
        if cfg.corpus == "fsdd":
            from supernet.data.fsdd import build_fsdd_corpus as build
        else:
            from supernet.data.espeak import build_espeak_corpus as build
        out = Path(args.out) if args.out else SpeechDataModule(cfg).corpus_dir()
        manifests = build(cfg.fsdd if cfg.corpus == "fsdd" else cfg.espeak, out, progress=not args.quiet)
    except _errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{cfg.corpus} corpus in {out}")
    for name, path in manifests.items():
        print(f"  {name}: {path}")
    return 0


def _import_kaldi(args: argparse.Namespace) -> int:
    from supernet.data.manifest import import_kaldi

    try:
        utts = import_kaldi(args.data_dir, args.out, lang=args.lang, root=args.root)
    except _errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    hours = sum(u.duration for u in utts) / 3600
    print(f"wrote {args.out}: {len(utts)} utterances, {hours:.2f} h")
    return 0


def _download_fsdd(args: argparse.Namespace) -> int:
    from supernet.data.fsdd import download_fsdd

    try:
        dest = download_fsdd(args.dest, url=args.url, sha256=None if args.no_verify else args.sha256,
                             progress=not args.quiet)
    except _errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"FSDD recordings in {dest / 'recordings'}; use it with SUPERNET_FSDD_DIR={dest} or fsdd.fsdd_dir")
    return 0


def register(subparsers) -> None:
    """Add ``supernet data ...`` to the top-level parser."""
    from supernet.data.fsdd import PINNED_SHA256, PINNED_URL

    data = subparsers.add_parser("data", help="build corpora, check manifests, import data",
                                 description="Speech data: build the built-in corpora, check manifests, import data.")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda a: (data.print_help(), 2)[1])

    p = sub.add_parser("build", help="build (or find cached) the corpus of a data config")
    p.add_argument("-c", "--config", required=True, help="data config YAML (configs/data/*.yaml)")
    p.add_argument("--out", help="corpus folder (default: <cache_dir>/<corpus>-<config hash>)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_build)

    p = sub.add_parser("check", help="list every unusable entry of a manifest (exit 1 if any)",
                       description="Prints one line per unusable entry: MANIFEST:LINE: FILE: REASON. "
                                   "Notes (resampling, mixing down) go to stderr.")
    p.add_argument("manifest", help="JSONL manifest")
    p.add_argument("--sample-rate", type=int, default=16000, help="rate training reads audio at (default 16000)")
    p.add_argument("--vocab", help="tokenizer JSON: also flag characters (or words, for a word tokenizer) it cannot encode")
    p.add_argument("--mono", choices=["mix", "error"], default="mix",
                   help="mix: multi-channel audio is averaged (noted); error: it is a problem")
    p.add_argument("--notes", action="store_true", help="list every note, not a summary")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_check)

    p = sub.add_parser("import-kaldi", help="convert a Kaldi data dir (wav.scp, text, utt2spk) to a manifest")
    p.add_argument("data_dir", help="Kaldi data dir")
    p.add_argument("out", help="output JSONL manifest")
    p.add_argument("--lang", default="en", help="language of utterances not in utt2lang (default en)")
    p.add_argument("--root", help="folder relative wav.scp paths start from (default: current folder)")
    p.set_defaults(func=_import_kaldi)

    p = sub.add_parser("download-fsdd", help="download the Free Spoken Digit Dataset (needs internet)")
    p.add_argument("dest", help="folder to create; recordings go to DEST/recordings")
    p.add_argument("--url", default=PINNED_URL, help=f"archive URL (default {PINNED_URL})")
    p.add_argument("--sha256", default=PINNED_SHA256, help="expected SHA-256 of the archive")
    p.add_argument("--no-verify", action="store_true", help="skip the checksum (prints the hash instead)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_download_fsdd)
