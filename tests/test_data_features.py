import pytest
import torch

from supernet.data.features import (
    FeatureConfig,
    FeatureExtractor,
    SpecAugment,
    SpecAugmentConfig,
    lengths_to_mask,
    num_frames,
)

LENGTHS = [16000, 9000, 4321, 400]


def padded_batch(lengths=LENGTHS, seed=0):
    g = torch.Generator().manual_seed(seed)
    audio = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        audio[i, :n] = 0.1 * torch.randn(n, generator=g)
    return audio, torch.tensor(lengths)


def test_num_frames():
    assert num_frames(torch.tensor([0, 159, 160, 16000]), 160).tolist() == [1, 1, 2, 101]
    assert FeatureConfig(sample_rate=8000, hop_ms=10).hop_length == 80


@pytest.mark.parametrize("kind, dim", [("logmel", 80), ("mfcc", 40)])
def test_padded_batch_equals_each_utterance_alone(kind, dim):
    fe = FeatureExtractor(FeatureConfig(kind=kind))
    audio, lengths = padded_batch()
    # Garbage beyond the lengths must not matter either.
    audio_dirty = audio.clone()
    for i, n in enumerate(LENGTHS):
        audio_dirty[i, n:] = 5.0
    feats, flen = fe(audio_dirty, lengths)
    assert feats.shape == (4, 101, dim) and fe.dim == dim
    assert flen.tolist() == [101, 57, 28, 3] and flen.dtype == torch.long
    for i, n in enumerate(LENGTHS):
        alone, alen = fe(audio[i:i + 1, :n], lengths[i:i + 1])
        assert alen.item() == flen[i].item() == alone.shape[1]
        torch.testing.assert_close(feats[i, :flen[i]], alone[0], atol=1e-4, rtol=1e-4)
        assert torch.all(feats[i, flen[i]:] == 0)


def test_utterance_normalisation_over_valid_frames_only():
    fe = FeatureExtractor(FeatureConfig(kind="logmel", n_mels=40))
    feats, flen = fe(*padded_batch())
    for i in range(3):  # the 400-sample one has 3 frames: statistics too noisy to compare
        valid = feats[i, :flen[i]]
        torch.testing.assert_close(valid.mean(0), torch.zeros(40), atol=1e-4, rtol=0)
        torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(40), atol=1e-2, rtol=0)
    raw = FeatureExtractor(FeatureConfig(kind="logmel", n_mels=40, normalize="none"))(*padded_batch())[0]
    assert raw[0].mean().abs() > 1  # un-normalised log-mels are far from zero mean


def test_from_name_matches_space_features():
    assert FeatureConfig.from_name("logmel80").dim == 80
    assert FeatureConfig.from_name("logmel40").n_mels == 40
    mfcc = FeatureConfig.from_name("mfcc40")
    assert mfcc.kind == "mfcc" and mfcc.dim == 40 and mfcc.n_mels == 80
    with pytest.raises(ValueError, match="learnable"):
        FeatureConfig.from_name("learnable")
    with pytest.raises(ValueError, match="n_mfcc"):
        FeatureConfig(kind="mfcc", n_mfcc=100, n_mels=80)


def test_specaugment_respects_lengths_and_generator():
    feats, flen = FeatureExtractor(FeatureConfig(n_mels=40))(*padded_batch())
    feats = feats + 10.0 * lengths_to_mask(flen, feats.shape[1])[..., None]  # valid frames never 0
    cfg = SpecAugmentConfig(freq_masks=2, freq_width=8, time_masks=2, time_width=20, max_time_ratio=0.2)
    sa = SpecAugment(cfg).train()
    out1 = sa(feats, flen, generator=torch.Generator().manual_seed(3))
    out2 = sa(feats, flen, generator=torch.Generator().manual_seed(3))
    out3 = sa(feats, flen, generator=torch.Generator().manual_seed(4))
    assert torch.equal(out1, out2) and not torch.equal(out1, out3)
    valid = lengths_to_mask(flen, feats.shape[1])
    for b in range(4):
        masked_t = ((out1[b] == 0).all(1) & valid[b]).sum().item()
        assert masked_t <= 2 * min(20, int(flen[b] * 0.2))  # time masks capped by own length
        masked_f = (out1[b, :flen[b]] == 0).all(0).sum().item()
        assert masked_f <= 2 * 8
    assert (out1 == 0).sum() > (feats == 0).sum()  # something was masked
    assert torch.equal(out1[~valid], feats[~valid])  # padding untouched (still 0)
    assert torch.equal(sa.eval()(feats, flen), feats)  # identity in eval mode


def test_specaugment_frequency_warp_moves_bins_and_keeps_the_unwarped_draws():
    feats = torch.arange(8, dtype=torch.float32).repeat(2, 3, 1) + 1.0  # (B=2, T=3, F=8), bin f holds f + 1
    flen = torch.tensor([3, 3])
    no_mask = dict(freq_masks=0, time_masks=0)
    warp = SpecAugment(SpecAugmentConfig(warp=(2.0, 2.0), **no_mask)).train()
    out = warp(feats, flen, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out[0, 0], torch.tensor([1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5]))  # bin f reads bin f / 2
    shrink = SpecAugment(SpecAugmentConfig(warp=(0.5, 0.5), **no_mask)).train()
    assert torch.allclose(shrink(feats, flen)[1, 2], torch.tensor([1.0, 3.0, 5.0, 7.0, 8.0, 8.0, 8.0, 8.0]))  # clamped at the top
    # with a warp the masks are the ones drawn without it (the warp draws after them)
    feats = torch.rand(2, 30, 8) + 1.0
    flen = torch.tensor([30, 20])
    plain = SpecAugment(SpecAugmentConfig(freq_width=3, time_width=5)).train()
    warped = SpecAugment(SpecAugmentConfig(freq_width=3, time_width=5, warp=(0.9, 1.1))).train()
    a = plain(feats, flen, generator=torch.Generator().manual_seed(1))
    b = warped(feats, flen, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a == 0, b == 0) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="warp"):
        SpecAugmentConfig(warp=(1.2, 0.9))
