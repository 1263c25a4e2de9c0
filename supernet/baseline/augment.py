"""Training-time waveform augmentation for padded batches: speed, gain and noise.

With four training speakers, an unseen speaker is the hard case; speed perturbation (resampling:
tempo, pitch and formants shift together, like a different vocal tract) is the cheapest speaker
variety there is (Ko et al., 2015). Gain and additive noise make the model indifferent to level
and to the digital silence between FSDD digits. Every draw comes from an explicit
``torch.Generator``; the batch's lengths are updated, padding stays zero.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF
from torch import Tensor, nn

from supernet.data.features import lengths_to_mask

__all__ = ["AugmentConfig", "WaveAugment"]


@dataclass
class AugmentConfig:
    """Waveform augmentation (all off when the ranges are degenerate or probabilities 0).

    Args:
        speed: (low, high) speed factor, uniform, quantised to 0.01 (1.1 = 10% faster, higher pitch).
        speed_prob: probability that an utterance is speed-perturbed.
        gain_db: (low, high) gain in dB, uniform.
        noise_snr_db: (low, high) SNR of added white noise in dB, uniform.
        noise_prob: probability that an utterance gets noise.
    """

    speed: tuple[float, float] = (1.0, 1.0)
    speed_prob: float = 0.0
    gain_db: tuple[float, float] = (0.0, 0.0)
    noise_snr_db: tuple[float, float] = (20.0, 40.0)
    noise_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in ("speed", "gain_db", "noise_snr_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        if not 0.5 <= self.speed[0] <= self.speed[1] <= 2.0:
            raise ValueError(f"speed factors must lie in [0.5, 2.0], got {self.speed}")
        for name in ("speed_prob", "noise_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        return (self.speed_prob > 0 and self.speed != (1.0, 1.0)) or self.gain_db != (0.0, 0.0) or self.noise_prob > 0


def _uniform(lo: float, hi: float, n: int, g: torch.Generator) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


class WaveAugment(nn.Module):
    """Speed, gain and noise perturbation of a padded audio batch; identity in eval mode.

    Args:
        cfg: :class:`AugmentConfig`.
        seed: seeds the module's own generator (used when forward gets none).

    Shapes:
        forward(audio (B, S), audio_lengths (B,), generator=None) -> audio (B, S'), lengths (B,)
    """

    def __init__(self, cfg: AugmentConfig | None = None, seed: int = 0):
        super().__init__()
        self.cfg = cfg or AugmentConfig()
        self.generator = torch.Generator().manual_seed(seed)

    def _speed(self, audio: Tensor, lengths: Tensor, g: torch.Generator) -> tuple[Tensor, Tensor]:
        c = self.cfg
        b = audio.shape[0]
        factors = torch.round(_uniform(*c.speed, b, g) * 100).long()  # speed x100
        apply = torch.rand(b, generator=g) < c.speed_prob
        rows, new_lengths = [], []
        for i in range(b):
            x = audio[i, : int(lengths[i])]
            f = int(factors[i]) if apply[i] else 100
            if f != 100:
                # Reading the samples as if recorded at f/100 of the rate plays them f/100 faster.
                x = AF.resample(x, orig_freq=f, new_freq=100)
            rows.append(x)
            new_lengths.append(x.shape[0])
        out = nn.utils.rnn.pad_sequence(rows, batch_first=True)
        return out, torch.tensor(new_lengths, dtype=lengths.dtype, device=lengths.device)

    def forward(self, audio: Tensor, audio_lengths: Tensor,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        c = self.cfg
        if not self.training or not c.active:
            return audio, audio_lengths
        g = generator or self.generator
        b = audio.shape[0]
        if c.speed_prob > 0 and c.speed != (1.0, 1.0):
            audio, audio_lengths = self._speed(audio, audio_lengths, g)
        mask = lengths_to_mask(audio_lengths, audio.shape[1])
        gain = 10.0 ** (_uniform(*c.gain_db, b, g) / 20.0)
        audio = audio * gain.to(audio)[:, None]
        if c.noise_prob > 0:
            power = (audio**2).sum(1) / audio_lengths.clamp(min=1).to(audio)
            snr = _uniform(*c.noise_snr_db, b, g).to(audio)
            scale = torch.sqrt(power / 10.0 ** (snr / 10.0))
            scale = scale * (torch.rand(b, generator=g) < c.noise_prob).to(audio)
            noise = torch.randn(audio.shape, generator=g).to(audio)
            audio = audio + noise * scale[:, None]
        return audio.masked_fill(~mask, 0.0), audio_lengths
