"""Speech data: corpora, manifests, tokenizer, features and the DataModule.

Importing ``supernet.data`` is cheap: names are loaded from their modules on first use, so the
CLI and small tools do not pay for torch/Lightning unless they need them.

- :mod:`supernet.data.manifest`   JSONL manifests, ``check_manifest``, Kaldi import
- :mod:`supernet.data.audio`      ``load_audio`` (soundfile + torchaudio resampling)
- :mod:`supernet.data.fsdd`       FSDD connected digits (real speech)
- :mod:`supernet.data.espeak`     built-in multilingual espeak-ng corpus
- :mod:`supernet.data.tokenizer`  ``normalize_text``, ``CharTokenizer``, ``WordTokenizer``
- :mod:`supernet.data.features`   ``FeatureExtractor``, ``SpecAugment``
- :mod:`supernet.data.datamodule` ``DataConfig``, ``SpeechDataModule``, ``collate``
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "manifest": ["Utterance", "Problem", "ManifestError", "ManifestReport", "read_manifest", "write_manifest",
                 "inspect_manifest", "check_manifest", "import_kaldi"],
    "audio": ["AudioError", "AudioInfo", "probe_audio", "load_audio", "read_audio", "write_wav"],
    "corpus": ["CorpusError"],
    "fsdd": ["FSDDConfig", "build_fsdd_corpus", "download_fsdd"],
    "espeak": ["EspeakConfig", "build_espeak_corpus"],
    "tokenizer": ["normalize_text", "CharTokenizer", "WordTokenizer", "TokenizerError", "load_tokenizer"],
    "features": ["FeatureConfig", "SpecAugmentConfig", "FeatureExtractor", "SpecAugment", "num_frames",
                 "lengths_to_mask"],
    "datamodule": ["DataConfig", "SpeechDataset", "collate", "LengthBucketSampler", "SpeechDataModule"],
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"supernet.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'supernet.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
