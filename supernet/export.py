"""Export a subnet to a model directory: TorchScript and ONNX graphs, metadata, parity checks.

    supernet export subnet.pt -o models/mobile                      # TorchScript + ONNX
    supernet export subnet.pt -o models/mobile --formats onnx --onnx-exporter dynamo

The subnet is cut into graphs by :func:`supernet.graphs.build_graphs` (encoder; RNN-T predictor
and joiner; attention decoder step; the learnable front-end), each exported with batch and time
axes dynamic. Greedy decoding and feature extraction run in host code (``supernet.runtime``).
The directory layout is documented in ``export/README.md``; in short::

    MODEL_DIR/metadata.json           arch, vocabulary, feature config, graphs, exporters, parity, versions
    MODEL_DIR/onnx/<graph>.onnx
    MODEL_DIR/torchscript/<graph>.pt

Exporters:

- TorchScript: ``torch.jit.script`` (control flow kept; every block of ``supernet.nn`` scripts).
- ONNX, ``torchscript`` exporter (default): ``torch.onnx.export(..., dynamo=False)``, opset 17,
  ``dynamic_axes`` for batch and time. It handles every block, LSTMs included.
- ONNX, ``dynamo`` exporter: ``torch.export.export`` with dynamic batch and time dims, then
  ``torch.onnx.export(program)``. LSTM graphs cannot go through it at variable length
  (pytorch#115092: the LSTM kernel specialises the time axis), which is reported as an
  :class:`ExportError`; it is also far slower (tens of seconds per graph here).

Parity: after export every graph runs eagerly, as TorchScript and in ONNX Runtime on three
batches whose sizes and lengths differ from the export example; the largest absolute difference
of each output must stay within ``atol`` (1e-4), or export fails. The numbers go into the metadata.

A graph the exporter cannot handle raises :class:`ExportError` naming the export target, the
graph and the operator.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from supernet.graphs import DYNAMIC_AXES, build_graphs, example_inputs, graph_names, io_names
from supernet.utils import atomic_dir, atomic_write_json, versions

__all__ = ["ExportError", "ExportConfig", "export_subnet", "feature_metadata", "decoder_metadata", "streaming_metadata",
           "parity_report", "to_torchscript", "to_onnx", "METADATA",
           "FORMAT", "register"]

FORMAT = "supernet-model-dir/1"
METADATA = "metadata.json"
FORMATS = ("torchscript", "onnx")
ONNX_EXPORTERS = ("torchscript", "dynamo")
# Modules that make an exporter fail without naming an operator (torch.export reports only that a
# dynamic dim was specialised): when such a failure happens, the first of these in the graph is named.
_SPECIALISING = {"dynamo": {nn.LSTM: "aten::lstm (nn.LSTM)"}}
_WHY = {"aten::lstm (nn.LSTM)": "torch.export specialises the LSTM's time axis to the example length (pytorch#115092); "
                               "use --onnx-exporter torchscript"}


class ExportError(RuntimeError):
    """A graph could not be exported (or disagrees with eager): names target, graph and operator.

    Attributes:
        target: "torchscript", "onnx (torchscript exporter, opset 17)", ...
        graph: the graph name ("encoder", "predictor", ...).
        op: the operator or module that failed (None when unknown).
    """

    def __init__(self, target: str, graph: str, op: str | None, reason: str) -> None:
        self.target, self.graph, self.op = target, graph, op
        where = f"{target}: graph {graph!r}"
        super().__init__(f"{where}: operator {op} cannot be exported: {reason}" if op else f"{where}: {reason}")


@dataclass
class ExportConfig:
    """Settings of :func:`export_subnet`.

    Args:
        formats: which of "torchscript", "onnx" to write.
        onnx_exporter: "torchscript" (``torch.onnx.export(dynamo=False)``) or "dynamo" (torch.export).
        opset: ONNX opset.
        example_seconds: audio length of the export example (batch of 2: this and 60 % of it).
        parity_seconds: batches checked after export, one list of utterance lengths each; they must
            differ from the example.
        atol: largest allowed absolute difference between eager, TorchScript and ONNX Runtime.
        parity: run the check (turn off only to inspect a failing export).
    """

    formats: tuple[str, ...] = FORMATS
    onnx_exporter: str = "torchscript"
    opset: int = 17
    example_seconds: float = 1.0
    parity_seconds: tuple[tuple[float, ...], ...] = ((0.43,), (1.37, 0.81), (2.71, 0.55, 1.9))
    atol: float = 1e-4
    parity: bool = True

    def __post_init__(self) -> None:
        self.formats = tuple(self.formats)
        bad = [f for f in self.formats if f not in FORMATS]
        if bad or not self.formats:
            raise ValueError(f"formats {list(self.formats)}: choose from {list(FORMATS)}")
        if self.onnx_exporter not in ONNX_EXPORTERS:
            raise ValueError(f"onnx_exporter {self.onnx_exporter!r}: choose from {list(ONNX_EXPORTERS)}")
        if any(self.example_seconds in lengths for lengths in self.parity_seconds):
            raise ValueError("parity_seconds must differ from example_seconds (parity is checked on unseen lengths)")

    @property
    def onnx_target(self) -> str:
        return f"onnx ({self.onnx_exporter} exporter, opset {self.opset})"


# ---------------------------------------------------------------------------- metadata
def feature_metadata(model: nn.Module) -> dict[str, Any]:
    """How the host computes the model's input features (or which graph does)."""
    from supernet.data.features import FeatureConfig

    arch, net = model.arch, model.net
    common = {"name": arch.feature, "sample_rate": net.sample_rate, "hop_length": net.hop_length,
              "win_length": net.win_length, "dim": int(model.features.dim)}
    if arch.feature == "learnable":
        return {**common, "graph": "features", "config": None}
    cfg = FeatureConfig.from_name(arch.feature, sample_rate=net.sample_rate, win_ms=net.win_ms, hop_ms=net.hop_ms,
                                  normalize="none")
    return {**common, "graph": None, "config": asdict(cfg)}


def decoder_metadata(model: nn.Module) -> dict[str, Any]:
    arch, head = model.arch, model.head
    out: dict[str, Any] = {"type": arch.decoder, "blank": int(head.blank), "search": "greedy (host code)"}
    if arch.decoder == "rnnt":
        out.update(max_symbols=int(head.max_symbols), predictor_layers=head.predictor.num_layers,
                   predictor_width=head.predictor.hidden_size)
    if arch.decoder == "attention":
        out.update(eos=int(head.eos), sos=int(head.eos), max_steps="encoder frames",
                   streaming_partials="ctc branch (ctc_log_probs); final result from the attention decoder")
    return out


def streaming_metadata(model: nn.Module) -> dict[str, Any]:
    arch, net = model.arch, model.net
    frame_ms = arch.subsampling * net.hop_ms
    return {"chunk": arch.chunk, "lookahead": arch.lookahead or 0, "subsampling": arch.subsampling,
            "frame_ms": frame_ms, "chunk_ms": arch.chunk * frame_ms, "lookahead_ms": (arch.lookahead or 0) * frame_ms}


# ---------------------------------------------------------------------------- exporters
def _first_module_of(module: nn.Module, kinds: dict[type, str]) -> tuple[str, str] | None:
    """(submodule path, label) of the first submodule of one of ``kinds``."""
    for name, m in module.named_modules():
        for kind, label in kinds.items():
            if isinstance(m, kind):
                return name, label
    return None


def _op_in(message: str) -> str | None:
    m = re.search(r"(aten::\w+|prim::\w+|onnx::\w+)", message)
    return m.group(1) if m else None


def to_torchscript(graph: nn.Module, name: str, path: Path) -> None:
    """``torch.jit.script`` the graph and save it; failures become :class:`ExportError`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.script is deprecated": still the TorchScript target
            scripted = torch.jit.script(graph)
    except Exception as e:  # noqa: BLE001 - the frontend raises many kinds; all mean "cannot script"
        raise ExportError("torchscript", name, _op_in(str(e)), f"{type(e).__name__}: {str(e).strip().splitlines()[0]}") from e
    scripted.save(str(path))


def _dynamic_shapes(inputs: Sequence[str]) -> tuple[dict[int, Any] | None, ...]:
    dims: dict[str, Any] = {}
    out = []
    for n in inputs:
        axes = DYNAMIC_AXES.get(n, {})
        out.append({ax: dims.setdefault(label, torch.export.Dim(label, min=1 if label == "B" else 2))
                    for ax, label in axes.items()} or None)
    return tuple(out)


def to_onnx(graph: nn.Module, name: str, example: tuple[Tensor, ...], path: Path, decoder: str, cfg: ExportConfig) -> None:
    """Export one graph to ONNX with dynamic axes; failures become :class:`ExportError`."""
    inputs, outputs = io_names(name, decoder)
    target = cfg.onnx_target
    quiet = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            warnings.simplefilter("ignore")
            if cfg.onnx_exporter == "torchscript":
                axes = {n: DYNAMIC_AXES[n] for n in (*inputs, *outputs) if n in DYNAMIC_AXES}
                torch.onnx.export(graph, example, str(path), dynamo=False, opset_version=cfg.opset, input_names=list(inputs),
                                  output_names=list(outputs), dynamic_axes=axes, do_constant_folding=True)
            else:
                # torch.export first, strictly: the ONNX exporter would fall back to a graph with the
                # time axis fixed to the example's, which then fails at run time on other lengths.
                program = torch.export.export(graph, example, dynamic_shapes=_dynamic_shapes(inputs), strict=False)
                onnx_program = torch.onnx.export(program, example, dynamo=True, opset_version=max(cfg.opset, 18),
                                                 input_names=list(inputs), output_names=list(outputs))
                onnx_program.save(str(path))
    except Exception as e:  # noqa: BLE001 - exporter errors have many types; the message names the op
        msg = str(e).strip()
        op = _op_in(msg)
        reason = f"{type(e).__name__}: {msg.splitlines()[0] if msg else ''}"
        culprit = _first_module_of(graph, _SPECIALISING.get(cfg.onnx_exporter, {}))
        if op is None and culprit is not None and "specializ" in msg:
            where, op = culprit
            reason = f"at {where}: {_WHY[op]} ({reason})"
        raise ExportError(target, name, op, reason) from e
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as e:  # noqa: BLE001
        raise ExportError(target, name, None, f"the exported model does not pass onnx.checker: {e}") from e


# ---------------------------------------------------------------------------- parity
def _outputs(x: Any) -> list[Tensor]:
    return list(x) if isinstance(x, (tuple, list)) else [x]


def _max_diff(a: Tensor, b: Tensor, graph: str, out: str, what: str) -> float:
    if tuple(a.shape) != tuple(b.shape):
        raise ExportError(what, graph, None, f"output {out!r} has shape {tuple(b.shape)}, eager {tuple(a.shape)}")
    if not a.dtype.is_floating_point:
        return 0.0 if torch.equal(a.long(), b.long()) else float("inf")
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def parity_report(model: nn.Module, runners: dict[str, Callable[[str, tuple[Tensor, ...]], list[Tensor]]],
                  batches: Sequence[Sequence[float]], decoder: str, seed: int = 0) -> dict[str, Any]:
    """Largest absolute difference to eager per graph, output and runner over ``batches``.

    Args:
        model: the SubnetModel (example inputs are built from it).
        runners: {"torchscript" | "onnx": f(graph name, inputs) -> outputs}.
        batches: utterance lengths in seconds, one list per batch.
        decoder: the decoder type (graph I/O names).

    Returns:
        ``{"batches": [[samples, ...], ...], "max_abs_diff": {runner: {graph: {output: float}}}}``.
    """
    graphs = build_graphs(model)
    rate = model.net.sample_rate
    report: dict[str, dict[str, dict[str, float]]] = {r: {} for r in runners}
    sizes = [[int(round(s * rate)) for s in lengths] for lengths in batches]
    for bi, lengths in enumerate(sizes):
        for name, g in graphs.items():
            inputs = example_inputs(model, name, lengths, generator=torch.Generator().manual_seed(seed + bi),
                                    tokens=2 + bi)
            with torch.no_grad():
                ref = _outputs(g(*inputs))
            out_names = io_names(name, decoder)[1]
            for runner, run in runners.items():
                got = run(name, inputs)
                for o, a, b in zip(out_names, ref, got):
                    d = report[runner].setdefault(name, {})
                    d[o] = max(d.get(o, 0.0), _max_diff(a, b, name, o, runner))
    return {"batches": sizes, "max_abs_diff": report}


def _check_parity(report: dict[str, Any], atol: float, cfg: ExportConfig) -> None:
    for runner, graphs in report["max_abs_diff"].items():
        target = cfg.onnx_target if runner == "onnx" else runner
        for graph, outs in graphs.items():
            for out, diff in outs.items():
                if not diff <= atol:
                    raise ExportError(target, graph, None, f"output {out!r} differs from eager by {diff:.3g} > atol {atol:g} "
                                      f"on batches of {report['batches']} samples")


# ---------------------------------------------------------------------------- export
def export_subnet(model: nn.Module, out_dir: str | Path, tokenizer: Any, cfg: ExportConfig | None = None, *,
                  force: bool = False, source: dict[str, Any] | None = None, progress: bool = False) -> dict[str, Any]:
    """Export ``model`` (a :class:`~supernet.subnet.SubnetModel`) into the model directory ``out_dir``.

    Args:
        model: the subnet (put in eval mode; its weights are not changed).
        out_dir: the model directory (written atomically: complete or not at all).
        tokenizer: its tokenizer (the vocabulary goes into the metadata).
        cfg: formats, exporter, parity settings.
        force: replace a non-empty ``out_dir``.
        source: recorded in the metadata (e.g. the subnet file).
        progress: print one line per graph to stderr.

    Returns:
        The metadata written to ``metadata.json``.

    Raises:
        ExportError: a graph cannot be exported or disagrees with eager beyond ``cfg.atol``.
    """
    cfg = cfg or ExportConfig()
    model = model.eval()
    arch = model.arch
    if tokenizer.vocab_size != model.vocab_size:
        raise ValueError(f"the tokenizer has {tokenizer.vocab_size} ids but the model {model.vocab_size} outputs")
    graphs = build_graphs(model)
    names = graph_names(arch.decoder, arch.feature)
    rate = model.net.sample_rate
    example_lengths = [int(cfg.example_seconds * rate), int(0.6 * cfg.example_seconds * rate)]
    meta: dict[str, Any] = {
        "format": FORMAT, "arch": arch.to_dict(), "arch_id": arch.id, "describe": arch.describe(),
        "vocab_size": model.vocab_size, "tokenizer": tokenizer.to_dict(), "net": asdict(model.net),
        "features": feature_metadata(model), "decoder": decoder_metadata(model), "streaming": streaming_metadata(model),
        "graphs": {}, "params": int(sum(p.numel() for p in model.parameters())),
        "export": {"formats": list(cfg.formats), "onnx_exporter": cfg.onnx_exporter if "onnx" in cfg.formats else None,
                   "opset": cfg.opset if "onnx" in cfg.formats else None, "example_samples": example_lengths,
                   "atol": cfg.atol},
        "versions": {**versions(), **_extra_versions()}, "source": source or {},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

    def fill(tmp: Path) -> None:
        for name in names:
            g = graphs[name]
            inputs, outputs = io_names(name, arch.decoder)
            entry: dict[str, Any] = {"inputs": list(inputs), "outputs": list(outputs),
                                     "dynamic_axes": {n: {str(a): lab for a, lab in DYNAMIC_AXES[n].items()}
                                                      for n in (*inputs, *outputs) if n in DYNAMIC_AXES}}
            example = example_inputs(model, name, example_lengths, generator=torch.Generator().manual_seed(1234))
            t0 = time.perf_counter()
            if "torchscript" in cfg.formats:
                (tmp / "torchscript").mkdir(exist_ok=True)
                to_torchscript(g, name, tmp / "torchscript" / f"{name}.pt")
                entry["torchscript"] = {"file": f"torchscript/{name}.pt", "exporter": "torch.jit.script"}
            if "onnx" in cfg.formats:
                (tmp / "onnx").mkdir(exist_ok=True)
                to_onnx(g, name, example, tmp / "onnx" / f"{name}.onnx", arch.decoder, cfg)
                entry["onnx"] = {"file": f"onnx/{name}.onnx", "exporter": cfg.onnx_exporter,
                                 "call": "torch.onnx.export(dynamo=False)" if cfg.onnx_exporter == "torchscript"
                                 else "torch.export.export + torch.onnx.export(dynamo=True)",
                                 "opset": cfg.opset if cfg.onnx_exporter == "torchscript" else max(cfg.opset, 18)}
            if progress:
                print(f"exported {name} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
            meta["graphs"][name] = entry
        if cfg.parity:
            from supernet.runtime import backend_runner

            runners = {f: backend_runner(tmp, meta, f, threads=1) for f in cfg.formats}
            report = parity_report(model, runners, cfg.parity_seconds, arch.decoder)
            report["atol"] = cfg.atol
            meta["parity"] = report
            _check_parity(report, cfg.atol, cfg)
        tokenizer.save(tmp / "tokenizer.json")
        atomic_write_json(tmp / METADATA, meta)

    atomic_dir(out_dir, fill, force)
    return meta


def _extra_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("onnx",):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


# ---------------------------------------------------------------------------- CLI
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet export``."""
    p = subparsers.add_parser("export", help="export a subnet to TorchScript and ONNX (model directory)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", metavar="MODEL", help="subnet file (from `supernet extract` or `supernet finetune`)")
    p.add_argument("-o", "--out", required=True, metavar="MODEL_DIR", help="model directory to write")
    p.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: torchscript,onnx (default both)")
    p.add_argument("--onnx-exporter", choices=ONNX_EXPORTERS, default="torchscript",
                   help="torchscript: torch.onnx.export(dynamo=False) (default; handles LSTMs); dynamo: torch.export")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--atol", type=float, default=1e-4, help="parity tolerance against eager (default 1e-4)")
    p.add_argument("--no-parity", action="store_true", help="skip the parity check (to inspect a failing export)")
    p.add_argument("--force", action="store_true", help="replace a non-empty model directory")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from supernet.extraction import read_subnet

    sub = read_subnet(args.model)
    try:
        cfg = ExportConfig(formats=tuple(f.strip() for f in args.formats.split(",") if f.strip()),
                           onnx_exporter=args.onnx_exporter, opset=args.opset, atol=args.atol, parity=not args.no_parity)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        meta = export_subnet(sub.model, args.out, sub.tokenizer, cfg, force=args.force,
                             source={"subnet": str(sub.path), **sub.extra.get("source", {})}, progress=True)
    except (ExportError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    worst = {r: max((d for g in v.values() for d in g.values()), default=0.0)
             for r, v in meta.get("parity", {}).get("max_abs_diff", {}).items()}
    print(f"{args.out}: {meta['describe']} -> graphs {', '.join(meta['graphs'])}; "
          f"parity max abs diff {', '.join(f'{r} {d:.2g}' for r, d in worst.items()) or 'not checked'}", file=sys.stderr)
    return 0
