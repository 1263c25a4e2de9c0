"""Static costs of a forward: parameters, FLOPs/MACs, peak memory.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix products,
convolutions and fused attention (``mm``, ``addmm``, ``bmm``, ``convolution``,
``scaled_dot_product_attention`` ...) as 2 FLOPs per multiply-accumulate, and ignores everything
element-wise (activations, norms, softmax, masking, additions). Two gaps matter for speech models
and are filled here with analytic formulas registered as ``custom_mapping``:

- **Recurrent layers.** ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` reach the dispatcher as one fused
  op (``aten.lstm.input`` under inference mode, ``aten.mkldnn_rnn_layer`` with oneDNN on CPU), which
  FlopCounterMode does not know and counts as 0. We count ``2 * tokens * sum(numel of every 2-D
  weight)``: each token meets every input-to-hidden, hidden-to-hidden (and projection) matrix once
  per direction and layer. This equals what FlopCounterMode counts when the same RNN decomposes
  into per-step ``addmm`` (packed sequences, GRU under autograd), so the total does not depend on
  which kernel ran. Gate non-linearities are element-wise and not counted, as elsewhere.
- **FFT** (the STFT of log-mel / MFCC front-ends). Counted with the usual convention of FFT
  benchmarks (FFTW's "mflops"): ``5 N log2 N`` per complex transform of size N, half that for a
  real one.

MACs are reported as ``FLOPs / 2`` (every counted op is a multiply-accumulate).

Peak memory: ``tracemalloc`` does not see torch's CPU allocator, and process RSS is blurred by
the allocator keeping freed pages. We record every allocation and free of the torch allocator
during one forward with the torch profiler (``profile_memory=True``) and take the highest running
total: the activation and workspace memory a forward needs on top of what already lives (weights,
the input). Allocations outside torch's allocator (oneDNN/MKL private scratch) are not seen.
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["count_params", "weights_bytes", "count_flops", "activation_peak_bytes", "EXTRA_FLOP_FORMULAS"]


def count_params(model: nn.Module) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def weights_bytes(model: nn.Module) -> int:
    """Bytes held by parameters and buffers (the model's resident size)."""
    tensors = {id(t): t for t in list(model.parameters()) + list(model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


# --- FLOP formulas FlopCounterMode lacks. They receive shapes (torch.Size) in place of tensors. ---


def _prod(shape: Any) -> int:
    return math.prod(int(s) for s in shape)


def _rnn_weight_numel(params: Any) -> int:
    # Biases (1-D) are additions: not counted, like the bias of addmm.
    return sum(_prod(p) for p in params if len(p) == 2)


def _rnn_input_flops(input, hx, params, *args, out_val=None, **kwargs) -> int:
    """aten.{lstm,gru,rnn_tanh,rnn_relu}.input: input (T, B, F) or (B, T, F)."""
    return 2 * (_prod(input) // int(input[-1])) * _rnn_weight_numel(params)


def _rnn_data_flops(data, batch_sizes, hx, params, *args, out_val=None, **kwargs) -> int:
    """aten.{lstm,gru,rnn_tanh,rnn_relu}.data: packed data (sum of lengths, F)."""
    return 2 * int(data[0]) * _rnn_weight_numel(params)


def _mkldnn_rnn_layer_flops(input, weight0, weight1, *args, out_val=None, **kwargs) -> int:
    """aten.mkldnn_rnn_layer: one direction of one layer; weight0 (G*H, F), weight1 (G*H, H)."""
    return 2 * (_prod(input) // int(input[-1])) * (_prod(weight0) + _prod(weight1))


def _fft_flops(shape: Any, dims: Any, per_point: float, n_override: int | None = None) -> int:
    sizes = [int(shape[d]) for d in dims]
    if n_override is not None:
        sizes[-1] = int(n_override)
    n = _prod(sizes)
    if n <= 1:
        return 0
    batch = _prod(shape) // _prod(int(shape[d]) for d in dims)
    return int(per_point * n * math.log2(n)) * batch


def _fft_r2c_flops(self, dim, normalization, onesided, out_val=None, **kwargs) -> int:
    return _fft_flops(self, dim, 2.5)


def _fft_c2r_flops(self, dim, normalization, last_dim_size, out_val=None, **kwargs) -> int:
    return _fft_flops(self, dim, 2.5, n_override=last_dim_size)


def _fft_c2c_flops(self, dim, normalization, forward, out_val=None, **kwargs) -> int:
    return _fft_flops(self, dim, 5.0)


def _extra_formulas() -> dict[Any, Any]:
    aten = torch.ops.aten
    table: dict[Any, Any] = {
        aten.mkldnn_rnn_layer: _mkldnn_rnn_layer_flops,
        aten._fft_r2c: _fft_r2c_flops,
        aten._fft_c2r: _fft_c2r_flops,
        aten._fft_c2c: _fft_c2c_flops,
    }
    for name in ("lstm", "gru", "rnn_tanh", "rnn_relu"):
        packet = getattr(aten, name)
        # One packet, two overloads with different argument lists: dispatch on the first one.
        table[packet] = _RnnPacketFormula()
    return table


class _RnnPacketFormula:
    """FLOPs of ``aten.<rnn>`` whichever overload ran: ``.input`` (padded) or ``.data`` (packed)."""

    def __call__(self, first, second, *args, out_val=None, **kwargs) -> int:
        # .data(data: (N, F), batch_sizes: (T,), hx, params, ...); .input(input: 3-D, hx, params, ...)
        if len(first) == 2:
            return _rnn_data_flops(first, second, *args)
        return _rnn_input_flops(first, second, *args)


EXTRA_FLOP_FORMULAS = _extra_formulas()


def count_flops(model: Callable[..., Any], *inputs: torch.Tensor) -> int:
    """FLOPs of one ``model(*inputs)`` (see the module docstring for what is counted).

    Args:
        model: any module or callable; run in inference mode as given (call ``.eval()`` first).
        inputs: its positional inputs, e.g. ``audio (B, S)``, ``audio_lengths (B,)``.
    """
    from torch.utils.flop_counter import FlopCounterMode  # slow first import; only when counting

    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=EXTRA_FLOP_FORMULAS) as counter:
        model(*inputs)
    return int(counter.get_total_flops())


def activation_peak_bytes(model: Callable[..., Any], *inputs: torch.Tensor) -> int:
    """Highest bytes allocated by torch's CPU allocator during one ``model(*inputs)``.

    Counts what is allocated inside the forward (activations, workspaces, the output), not what
    lived before it (weights, inputs). The running total is taken over the profiler's allocation
    (+bytes) and free (-bytes) records in time order.
    """
    # Kineto (the profiler's backend) prints "USDT ... profiler_start/stop" and, on a CUDA build
    # without a GPU, "gpuGetDeviceCount failed" to stderr for every profile: hundreds of lines in
    # a search. Its log level is read when it first starts, so set it before; a user's wins.
    os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = model(*inputs)
        del out  # so that the output's free is recorded too (it does not change the peak)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    running = peak = 0
    for e in events:
        if e.device_type() != torch.autograd.DeviceType.CPU:
            continue
        running += e.nbytes()
        peak = max(peak, running)
    return peak
