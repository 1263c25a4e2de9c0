"""Text normalisation and the character tokenizer shared by training and scoring.

Training targets and WER/CER scoring must see the same text, so both go through
:func:`normalize_text`. The tokenizer maps normalised characters to ids with the CTC blank at
id 0; it is a plain JSON-able object so that it can live inside a checkpoint.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["normalize_text", "CharTokenizer", "TokenizerError", "BLANK"]

BLANK = "<blank>"

# Apostrophe look-alikes folded into "'" so "don’t" and "don't" are one spelling.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_SPACES = re.compile(r"\s+")


class TokenizerError(ValueError):
    """Text contains a character the tokenizer does not know, or ids are out of range."""


def _keep(ch: str) -> bool:
    # Letters (any script, accents included), digits and combining marks are content.
    return unicodedata.category(ch)[0] in "LNM"


def normalize_text(s: str) -> str:
    """Normalise a transcript: NFC, lowercase, punctuation removed, whitespace collapsed.

    Letters with accents (ü é ñ ç ß ...) are kept. Punctuation and symbols become spaces, so
    "well-known" gives "well known" rather than gluing words together. An apostrophe between
    two letters is kept ("don't", "l'eau"), because it is part of the word's spelling in
    English and French; anywhere else it is removed.

    Args:
        s: raw transcript.

    Returns:
        The normalised transcript (possibly empty).
    """
    s = unicodedata.normalize("NFC", s).translate(_APOSTROPHES)
    # casefold would turn "ß" into "ss"; lower() keeps the letter the speaker said.
    s = s.lower()
    out = []
    for i, ch in enumerate(s):
        if _keep(ch):
            out.append(ch)
        elif ch == "'" and 0 < i < len(s) - 1 and s[i - 1].isalpha() and s[i + 1].isalpha():
            out.append(ch)
        else:
            out.append(" ")
    return _SPACES.sub(" ", "".join(out)).strip()


class CharTokenizer:
    """Characters <-> ids; id 0 is the CTC blank.

    Args:
        chars: the vocabulary characters (without the blank), in id order starting at 1.

    Example:
        >>> tok = CharTokenizer.build(["drei eins vier", "zéro un"])
        >>> tok.decode(tok.encode("drei un"))
        'drei un'
    """

    blank_id = 0

    def __init__(self, chars: Sequence[str]):
        chars = list(chars)
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise TokenizerError(f"vocabulary entries must be single characters, got {bad[:5]!r}")
        if len(set(chars)) != len(chars):
            raise TokenizerError("vocabulary has duplicate characters")
        self._chars = chars
        self._index = {c: i + 1 for i, c in enumerate(chars)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> "CharTokenizer":
        """Vocabulary = every character of the normalised texts, plus the space, sorted."""
        chars = {" "}
        for t in texts:
            chars.update(normalize_text(t))
        return cls(sorted(chars))

    @property
    def vocab_size(self) -> int:
        """Number of ids including the blank."""
        return len(self._chars) + 1

    @property
    def vocab(self) -> set[str]:
        """The set of characters that can be encoded (the blank excluded)."""
        return set(self._chars)

    @property
    def tokens(self) -> list[str]:
        """Token string per id: ``tokens[0]`` is the blank."""
        return [BLANK, *self._chars]

    def encode(self, text: str, normalize: bool = True) -> list[int]:
        """Text -> ids (no blank). Unknown characters raise :class:`TokenizerError`.

        Args:
            text: transcript; normalised first unless ``normalize=False``.
        """
        if normalize:
            text = normalize_text(text)
        try:
            return [self._index[c] for c in text]
        except KeyError:
            unknown = sorted({c for c in text if c not in self._index})
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in unknown)
            raise TokenizerError(
                f"text {text!r} has characters not in the vocabulary: {shown}; build the tokenizer "
                "from training text that contains them, or remove them from this transcript"
            ) from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; blanks are skipped (CTC collapsing of repeats is the decoder's job)."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.blank_id:
                continue
            if not 0 < i < self.vocab_size:
                raise TokenizerError(f"id {i} out of range for a vocabulary of size {self.vocab_size}")
            out.append(self._chars[i - 1])
        return "".join(out)

    def to_dict(self) -> dict:
        return {"type": "char", "version": 1, "blank": BLANK, "chars": list(self._chars)}

    @classmethod
    def from_dict(cls, d: dict) -> "CharTokenizer":
        if not isinstance(d, dict) or d.get("type") != "char" or not isinstance(d.get("chars"), list):
            raise TokenizerError(
                "not a character tokenizer dict: expected {'type': 'char', 'chars': [...]} "
                "(as written by CharTokenizer.save / to_dict)"
            )
        return cls(d["chars"])

    def save(self, path: str | Path) -> None:
        from supernet.utils import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "CharTokenizer":
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TokenizerError(f"{path}: tokenizer file not found") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise TokenizerError(f"{path}: not a tokenizer JSON file: {e}") from None
        try:
            return cls.from_dict(d)
        except TokenizerError as e:
            raise TokenizerError(f"{path}: {e}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self._chars == other._chars

    def __hash__(self) -> int:
        return hash(tuple(self._chars))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, chars={''.join(self._chars)!r})"
