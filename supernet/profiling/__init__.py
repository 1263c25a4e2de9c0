"""Cost profiler internals; the public entry point is :mod:`supernet.profile`.

- ``flops``: parameters, FLOPs/MACs (FlopCounterMode + recurrent/FFT formulas), peak memory.
- ``timing``: thread-pinned latency measurement with torch.utils.benchmark, device name.
- ``measure``: :func:`profile_model` and :class:`ProfileResult` for any ``(audio, lengths)`` model.
- ``lut``: :class:`LatencyLUT`, the per-part latency lookup table and its predictor.
- ``parts``: how supernet archs decompose into timed parts (front-end, layers, decoder).
"""
