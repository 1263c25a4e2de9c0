"""`supernet space count | sample | show`: inspect a search space from the command line.

    supernet space show   -c configs/space/default.yaml
    supernet space count  -c configs/space/default.yaml [--max-params 2M --vocab-size 32]
    supernet space sample -c configs/space/default.yaml -n 5 --seed 0   # one arch JSON per line
"""

from __future__ import annotations

import argparse
import random
import sys

__all__ = ["register"]


def _size(text: str) -> int:
    """``2000000``, ``2e6``, ``2M`` or ``500k`` -> int."""
    scale = {"k": 10**3, "m": 10**6, "g": 10**9}.get(text[-1:].lower(), 1)
    number = text[:-1] if scale > 1 else text
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number like 2000000, 2e6 or 2M, got {text!r}") from None
    if value < 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a non-negative whole number, got {text!r}")
    return int(value)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("space", help="inspect a search space: show | count | sample")
    sub = parser.add_subparsers(dest="space_command", metavar="ACTION", required=True)

    def add(name: str, help: str, func) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("-c", "--config", required=True, help="search space YAML (configs/space/*.yaml)")
        p.set_defaults(func=func)
        return p

    add("show", "print every dimension of the space and its size", _show)
    p = add("count", "exact number of architectures (DP over layers, no enumeration)", _count)
    p.add_argument("--max-params", type=_size, default=None, help="count only archs with at most this many parameters (2e6, 2M, ...)")
    p.add_argument("--vocab-size", type=int, default=None, help="output vocabulary size; required with --max-params (sizes the decoder)")
    p = add("sample", "print random archs of the space, one canonical JSON per line", _sample)
    p.add_argument("-n", "--num", type=int, default=1, help="how many archs (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same archs (default 0)")


def _load(args: argparse.Namespace):
    from supernet.space import SearchSpace

    return SearchSpace.from_yaml(args.config)


def _count(args: argparse.Namespace) -> int:
    if args.max_params is not None and args.vocab_size is None:
        print("error: --max-params needs --vocab-size (the decoder's output layer depends on it)", file=sys.stderr)
        return 2
    space = _load(args)
    print(space.count(max_params=args.max_params, vocab_size=args.vocab_size))
    return 0


def _sample(args: argparse.Namespace) -> int:
    if args.num < 0:
        print(f"error: -n must be >= 0, got {args.num}", file=sys.stderr)
        return 2
    space = _load(args)
    rng = random.Random(args.seed)
    for _ in range(args.num):
        print(space.sample(rng).to_json())
    return 0


def _fmt(values) -> str:
    return ", ".join(str(v) for v in values) if values else "-"


def _show(args: argparse.Namespace) -> int:
    space = _load(args)
    sp = space.spec
    rows = [
        ("frontend.feature", _fmt(sp.features)),
        ("frontend.subsampling", _fmt(sp.subsamplings)),
        ("encoder.width", _fmt(sp.widths)),
        ("encoder.depth", f"{_fmt(sp.depths)} (of {space.num_layers} layer slots; skips form a suffix)"),
    ]
    # Consecutive layers with the same choices are shown once, as a range.
    groups: list[tuple[int, int, object]] = []
    for i in range(space.num_layers):
        ch = space.choices_for(i)
        if groups and groups[-1][2] == ch:
            groups[-1] = (groups[-1][0], i, ch)
        else:
            groups.append((i, i, ch))
    for first, last, ch in groups:
        name = f"layer {first}" if first == last else f"layers {first}-{last}"
        for f in ("block", "attention", "heads", "ffn_ratio", "kernel"):
            if getattr(ch, f):
                rows.append((f"{name} {f}", _fmt(getattr(ch, f))))
    uniq = lambda xs: list(dict.fromkeys(x for x in xs if x is not None))  # noqa: E731
    rows.append(("decoder.type", _fmt(uniq(d for d, _, _ in sp.decoders))))
    if any(d != "ctc" for d, _, _ in sp.decoders):
        rows.append(("decoder.layers", f"{_fmt(uniq(n for _, n, _ in sp.decoders))} (not ctc)"))
        rows.append(("decoder.width", f"{_fmt(uniq(w for _, _, w in sp.decoders))} (not ctc)"))
    rows.append(("streaming.chunk", f"{_fmt(uniq(c for c, _ in sp.streams))} (encoder frames; 0 = full context)"))
    if any(c > 0 for c, _ in sp.streams):
        rows.append(("streaming.lookahead", f"{_fmt(uniq(la for _, la in sp.streams))} (encoder frames)"))
        rows.append(("chunk+lookahead pairs", _fmt("full" if c == 0 else f"{c}+{la}" for c, la in sp.streams)))
    rule = "look-ahead < chunk" if sp.lookahead_below_chunk else "any look-ahead"
    rows.append(("constraints", f"full-context blocks: {_fmt(sp.full_context_blocks)}; heads divide width; {rule}"))
    width = max(len(k) for k, _ in rows)
    print(f"space {space.name!r} from {sp.where}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    n = space.count()
    print(f"  {'size':<{width}}  {n} architectures ({n:.3e})")
    return 0
