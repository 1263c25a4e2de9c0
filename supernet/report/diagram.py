"""A drawing of one architecture: a column of boxes, front-end at the bottom, decoder on top.

Plain matplotlib patches (no graphviz): one box per encoder layer naming the block type and its
choices (width, kernel, heads, FFN width, attention), coloured by block type; skipped layers
are left out, streaming settings are written beside the stack.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from supernet.space import BLOCKS, Arch, LayerArch  # noqa: E402
from supernet.utils import atomic_path  # noqa: E402

__all__ = ["layer_label", "arch_boxes", "draw_arch", "plot_archs"]

_COLORS = dict(zip(BLOCKS, ("#8fb8de", "#b5d99c", "#f4c27a", "#f0a36b", "#c9a7e0", "#dddddd")))


def layer_label(la: LayerArch, width: int) -> str:
    """``conformer  d48  mha h4  ffn 96  k15``: the block and every choice it uses."""
    parts = [la.block, f"d{width}"]
    if la.attention is not None:
        parts.append(f"{la.attention} h{la.heads}")
    if la.ffn_ratio is not None:
        parts.append(f"ffn {la.ffn_ratio * width}")
    if la.kernel is not None:
        parts.append(f"k{la.kernel}")
    return "  ".join(parts)


def arch_boxes(arch: Arch) -> list[tuple[str, str]]:
    """``[(label, colour)]`` from the front-end (first) to the decoder (last)."""
    boxes = [(f"front-end {arch.feature}, subsampling x{arch.subsampling}", "#eeeeee")]
    boxes += [(layer_label(la, arch.width), _COLORS[la.block]) for la in arch.layers if la.block != "skip"]
    dec = arch.decoder if arch.decoder == "ctc" else f"{arch.decoder} (layers {arch.decoder_layers}, width {arch.decoder_width})"
    boxes.append((f"decoder {dec}", "#fbe3a6"))
    return boxes


def _draw(ax: Any, arch: Arch, title: str) -> None:
    boxes = arch_boxes(arch)
    h, gap = 0.8, 0.35
    for i, (label, color) in enumerate(boxes):
        y = i * (h + gap)
        ax.add_patch(FancyBboxPatch((0.0, y), 1.0, h, boxstyle="round,pad=0.02,rounding_size=0.08", fc=color, ec="0.3", lw=1))
        ax.text(0.5, y + h / 2, label, ha="center", va="center", fontsize=8)
        if i:
            ax.annotate("", xy=(0.5, y), xytext=(0.5, y - gap), arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 1})
    stream = "full context" if arch.chunk == 0 else f"streaming: chunk {arch.chunk}, look-ahead {arch.lookahead} (encoder frames)"
    top = len(boxes) * (h + gap)
    ax.text(0.5, top, f"{title}\n{stream}", ha="center", va="bottom", fontsize=8.5)
    ax.set_xlim(-0.1, 1.1)
    ax.set_ylim(-0.2, top + 0.9)
    ax.axis("off")


def draw_arch(arch: Arch, path: str | Path, title: str = "") -> Path:
    """Draw one arch into a PNG (written atomically)."""
    return plot_archs({title or arch.id: arch}, path)


def plot_archs(archs: dict[str, Arch], path: str | Path) -> Path:
    """Several archs side by side (``{title: arch}``), one column each, into one PNG."""
    if not archs:
        raise ValueError("plot_archs needs at least one arch")
    rows = max(len(arch_boxes(a)) for a in archs.values())
    fig, axes = plt.subplots(1, len(archs), figsize=(3.9 * len(archs), 0.62 * rows + 1.2), squeeze=False)
    for ax, (title, arch) in zip(axes[0], archs.items()):
        _draw(ax, arch, title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)
    return path
