"""`supernet extract`: a trained supernet + an arch -> a standalone subnet file with its vocabulary.

    supernet extract runs/fit/sandwich/supernet.ckpt --arch largest --out subnet.pt
    supernet extract supernet.ckpt --arch arch.json --out subnet.pt        # JSON / YAML file
    supernet extract supernet.ckpt --arch '{"feature": "logmel80", ...}' --out subnet.pt

The subnet file is :func:`supernet.subnet.save_subnet`'s format; its ``extra`` entry holds what a
subnet needs to be used on its own later (fine-tuning, export, transcription): the tokenizer
(vocabulary), the supernet's data config (so fine-tuning reads the same corpus), and where it
came from. :func:`read_subnet` reads such a file back and insists on the vocabulary.

``--arch`` accepts: ``largest`` / ``smallest`` (of the supernet's space); a JSON string; or a
JSON / YAML file holding an arch dict, a row with an ``"arch"`` entry (search results, evaluator
caches, ``summary.json`` entries), or a list of those with ``--index``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supernet.config import ConfigError
from supernet.space import Arch

__all__ = ["SubnetFile", "parse_arch", "extract_from_checkpoint", "write_subnet", "read_subnet", "register"]


@dataclass
class SubnetFile:
    """A subnet read by :func:`read_subnet`.

    Attributes:
        model: the :class:`~supernet.subnet.SubnetModel` (eval mode).
        tokenizer: its tokenizer (:mod:`supernet.data.tokenizer`).
        extra: everything else stored beside it (``data``, ``source``, ``finetune`` ...).
        path: the file.
    """

    model: Any
    tokenizer: Any
    extra: dict[str, Any]
    path: Path


def parse_arch(text: str, space: Any = None, index: int | None = None) -> Arch:
    """An :class:`Arch` from ``largest`` / ``smallest``, a JSON string or a JSON/YAML file.

    Args:
        text: see the module docstring.
        space: the SearchSpace that ``largest`` / ``smallest`` refer to (and that checks the arch).
        index: which entry when the file holds a list.
    """
    where = "--arch"
    if text in ("largest", "smallest"):
        if space is None:
            raise ConfigError(f"{where} {text}: needs the supernet's search space; give an arch JSON instead")
        return space.largest() if text == "largest" else space.smallest()
    path = Path(text)
    if text.lstrip().startswith(("{", "[")):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where}: not valid JSON ({e}); pass an arch dict, a file, 'largest' or 'smallest'") from None
    elif path.is_file():
        where = str(path)
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))  # YAML is a superset of JSON
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: neither JSON nor YAML ({e})") from None
    else:
        raise ConfigError(f"{where} {text!r}: no such file, and not JSON, 'largest' or 'smallest'")
    if isinstance(data, list):
        if index is None and len(data) != 1:
            raise ConfigError(f"{where}: holds {len(data)} archs; pick one with --index N")
        try:
            data = data[index or 0]
        except IndexError:
            raise ConfigError(f"{where}: --index {index} is out of range (0..{len(data) - 1})") from None
    if isinstance(data, dict) and isinstance(data.get("arch"), dict):
        data = data["arch"]
    if not isinstance(data, dict) or "layers" not in data:
        raise ConfigError(f"{where}: expected an arch dict with 'feature', 'width', 'layers', ... (Arch.to_dict()), "
                          f"or a row with an 'arch' entry")
    try:
        arch = Arch.from_dict(data)
    except (TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"{where}: not a valid arch: {e}") from None
    if space is not None:
        space.validate(arch)
    return arch


def write_subnet(model: Any, path: str | Path, tokenizer: Any, **extra: Any) -> Path:
    """Save ``model`` with its tokenizer and ``extra`` entries (atomic; see the module docstring)."""
    from supernet.subnet import save_subnet

    return save_subnet(model, path, extra={"tokenizer": tokenizer.to_dict(), **extra})


def read_subnet(path: str | Path) -> SubnetFile:
    """Load a subnet file written by ``supernet extract`` / ``supernet finetune``.

    Raises:
        ConfigError: the file is missing, not a subnet file, or has no vocabulary.
    """
    import torch

    from supernet.data.tokenizer import TokenizerError, tokenizer_from_dict
    from supernet.subnet import load_subnet

    path = Path(path)
    try:
        model = load_subnet(path)
        extra = torch.load(path, map_location="cpu", weights_only=True).get("extra") or {}
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(str(e)) from None
    if "tokenizer" not in extra:
        raise ConfigError(f"{path}: the subnet file has no vocabulary (extra['tokenizer']); write it with "
                          "`supernet extract` or supernet.extraction.write_subnet(model, path, tokenizer)")
    try:
        tokenizer = tokenizer_from_dict(extra["tokenizer"])
    except TokenizerError as e:
        raise ConfigError(f"{path}: extra['tokenizer']: {e}") from None
    if tokenizer.vocab_size != model.vocab_size:
        raise ConfigError(f"{path}: the tokenizer has {tokenizer.vocab_size} ids but the model {model.vocab_size} outputs")
    return SubnetFile(model, tokenizer, {k: v for k, v in extra.items() if k != "tokenizer"}, path)


def extract_from_checkpoint(ckpt: str | Path, arch: str | Arch, out: str | Path, index: int | None = None) -> Path:
    """Extract ``arch`` from a ``supernet fit`` checkpoint and write the subnet file ``out``.

    Args:
        ckpt: ``supernet.ckpt`` (or ``checkpoints/last.ckpt``) of a ``supernet fit`` run.
        arch: an Arch, or the ``--arch`` text (see :func:`parse_arch`).
        out: the subnet file to write.
        index: entry of a list file.
    """
    from supernet.config import to_dict
    from supernet.subnet import extract
    from supernet.train import load_supernet

    net, space, tokenizer, meta = load_supernet(ckpt)
    if not isinstance(arch, Arch):
        arch = parse_arch(arch, space, index)
    try:
        net.check_arch(arch)
    except ValueError as e:
        raise ConfigError(f"--arch: {e}") from None
    model = extract(net, arch).eval()
    cfg = meta["config"]
    return write_subnet(model, out, tokenizer, data=to_dict(cfg.data), source={"checkpoint": str(ckpt), "seed": cfg.seed},
                        arch_describe=arch.describe())


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``supernet extract``."""
    p = subparsers.add_parser("extract", help="write one arch of a trained supernet as a standalone subnet file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", metavar="CKPT", help="supernet checkpoint of `supernet fit` (supernet.ckpt)")
    p.add_argument("--arch", required=True, help="largest | smallest | arch JSON | JSON/YAML file")
    p.add_argument("--index", type=int, default=None, help="entry to take when the arch file holds a list")
    p.add_argument("--out", "-o", required=True, metavar="FILE", help="subnet file to write (e.g. subnet.pt)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    path = extract_from_checkpoint(args.checkpoint, args.arch, args.out, args.index)
    sub = read_subnet(path)
    n = sum(p.numel() for p in sub.model.parameters())
    print(f"{path}: {sub.model.arch.describe()} (id {sub.model.arch.id}, {n:,} parameters, vocabulary {sub.tokenizer.vocab_size})",
          file=sys.stderr)
    return 0
