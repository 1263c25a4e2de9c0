"""Greedy decoding with a fixed number of emitted tokens: a decoder cost that weights cannot skew.

The cost of greedy decoding depends on what the model emits. CTC's hardly does (one projection
and an argmax per frame), but an RNN-T head runs its predictor once per emitted token and an
attention decoder runs once per token over the whole prefix. An untrained (or inherited-weights)
head on a random waveform emits nonsense — an RNN-T head up to ``max_symbols`` tokens per frame,
an attention decoder until its step limit — and would be timed at many times its real cost.

So latency is measured for a *workload*: greedy decoding that emits ``tokens`` tokens, spread
evenly over the frames, whatever the argmax says. :class:`DecodingWorkload` runs the same module
calls as the heads' ``decode`` (``supernet.nn.transducer.TransducerHead.decode``,
``supernet.nn.decoder.AttentionHead.decode``): for RNN-T one joiner call per frame plus, per
token, one predictor step and one more joiner call; for the attention decoder ``tokens + 1``
decoder passes over a growing prefix (no key/value cache, as there). The argmax still runs and
feeds the emitted ids, so no call is optimised away. For CTC it is the head's own ``decode``.

``tokens_for(seconds)`` sets the workload from a speaking rate (characters per second).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from supernet.nn.ctc import CTCHead
from supernet.nn.decoder import AttentionHead
from supernet.nn.transducer import TransducerHead

__all__ = ["decode_workload", "DecodingWorkload", "SubnetWithDecoding", "tokens_for", "DEFAULT_TOKENS_PER_SECOND", "decoding_description"]

# Characters per second of read speech (about 2.5 words of 5 letters + spaces); the tokenizer is
# character-level, so this is the number of tokens a transcript of that many seconds has.
DEFAULT_TOKENS_PER_SECOND = 12.0


def tokens_for(seconds: float, tokens_per_second: float = DEFAULT_TOKENS_PER_SECOND) -> int:
    """Emitted tokens of the workload for ``seconds`` of audio (at least 1)."""
    return max(1, round(seconds * tokens_per_second))


def decoding_description(tokens_per_second: float = DEFAULT_TOKENS_PER_SECOND) -> str:
    return (f"greedy decoding emitting a fixed {tokens_per_second:g} tokens per second of audio "
            "(supernet.profiling.decoding; CTC: the head's own decode)")


def _schedule(frames: int, tokens: int, max_per_frame: int) -> list[int]:
    """Tokens emitted at each frame: ``tokens`` spread evenly, at most ``max_per_frame`` per frame."""
    tokens = min(tokens, frames * max_per_frame)
    return [((t + 1) * tokens) // frames - (t * tokens) // frames for t in range(frames)]


def _forced(k: Tensor, vocab: int) -> Tensor:
    # A real token id (never blank 0, never an id >= vocab) that still depends on the argmax.
    return k % (vocab - 1) + 1


def _transducer(h: TransducerHead, enc: Tensor, enc_lengths: Tensor, tokens: int) -> Tensor:
    T = int(enc_lengths[0])
    vocab = h.out.out_features
    e = h.enc_proj(enc)
    start = torch.full((1, 1), h.blank, dtype=torch.long, device=enc.device)
    g, state = h.predictor(h.embed(start))
    g = h.pred_proj(g[:, 0])
    out = []
    for t, n in enumerate(_schedule(T, tokens, h.max_symbols)):
        for s in range(n + 1):
            k = h.joint(e[:, t : t + 1], g[:, None])[:, 0, 0].argmax(dim=-1)
            if s == n:  # the blank that ends this frame
                break
            k = _forced(k, vocab)
            g_new, state_new = h.predictor(h.embed(k[:, None]), state)
            emit = torch.ones_like(k, dtype=torch.bool)
            g = torch.where(emit[:, None], h.pred_proj(g_new[:, 0]), g)
            state = tuple(torch.where(emit[None, :, None], a, b) for a, b in zip(state_new, state))
            out.append(k)
    return torch.stack(out, dim=1) if out else enc.new_zeros((1, 0), dtype=torch.long)


def _attention(h: AttentionHead, enc: Tensor, enc_lengths: Tensor, tokens: int) -> Tensor:
    ys = torch.full((1, 1), h.eos, dtype=torch.long, device=enc.device)
    for step in range(tokens + 1):
        logits = h.decoder_logits(ys, torch.full((1,), ys.size(1), device=enc.device), enc, enc_lengths)[:, -1]
        logits[:, h.blank] = float("-inf")
        k = logits.argmax(dim=-1)
        if step == tokens:  # the step that emits <eos>
            break
        ys = torch.cat([ys, _forced(k, h.eos)[:, None]], dim=1)
    return ys[:, 1:]


def decode_workload(head: nn.Module, enc: Tensor, enc_lengths: Tensor, tokens: int):
    """Greedy decoding of ``head`` on ``enc (1, T, D)`` that emits exactly ``tokens`` tokens.

    Returns the emitted ids (1, tokens) (RNN-T: fewer if ``T * max_symbols < tokens``), or for
    CTC the head's own greedy ids.
    """
    if enc.size(0) != 1:
        raise ValueError(f"the decoding workload is batch 1, got a batch of {enc.size(0)}")
    if tokens < 1:
        raise ValueError(f"tokens must be >= 1, got {tokens}")
    if isinstance(head, CTCHead):
        return head.decode(enc, enc_lengths)
    if isinstance(head, TransducerHead):
        return _transducer(head, enc, enc_lengths, tokens)
    if isinstance(head, AttentionHead):
        return _attention(head, enc, enc_lengths, tokens)
    raise TypeError(f"no decoding workload for a {type(head).__name__}; known heads: CTCHead, TransducerHead, AttentionHead")


class DecodingWorkload(nn.Module):
    """:func:`decode_workload` as a module (a timed part of the latency table).

    Args:
        head: a :class:`CTCHead`, :class:`TransducerHead` or :class:`AttentionHead`.
        tokens: tokens to emit.

    Shapes:
        forward(enc (1, T, D), enc_lengths (1,)) -> emitted ids
    """

    def __init__(self, head: nn.Module, tokens: int) -> None:
        super().__init__()
        self.head = head
        self.tokens = tokens

    def forward(self, enc: Tensor, enc_lengths: Tensor):
        return decode_workload(self.head, enc, enc_lengths, self.tokens)


class SubnetWithDecoding(nn.Module):
    """A SubnetModel's forward followed by the decoding workload: what one recognition costs.

    Args:
        model: a :class:`supernet.subnet.SubnetModel` (``forward(audio, lengths) -> enc, enc_lengths``, ``head``).
        tokens_per_second: emitted tokens per second of audio.

    Shapes:
        forward(audio (1, S), audio_lengths (1,)) -> emitted ids
    """

    def __init__(self, model: nn.Module, tokens_per_second: float = DEFAULT_TOKENS_PER_SECOND) -> None:
        super().__init__()
        self.model = model
        self.tokens_per_second = tokens_per_second
        self.sample_rate = model.net.sample_rate

    def forward(self, audio: Tensor, audio_lengths: Tensor):
        enc, enc_lengths = self.model(audio, audio_lengths)
        tokens = tokens_for(int(audio_lengths[0]) / self.sample_rate, self.tokens_per_second)
        return decode_workload(self.model.head, enc, enc_lengths, tokens)
