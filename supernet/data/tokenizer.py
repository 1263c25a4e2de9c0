"""Text normalisation and the tokenizers shared by training and scoring.

Training targets and WER/CER scoring must see the same text, so both go through
:func:`normalize_text`. A tokenizer maps normalised text to ids with the CTC blank at id 0; it is
a plain JSON-able object so that it can live inside a checkpoint.

Two kinds of unit (``DataConfig.tokenizer``):

- ``char`` (:class:`CharTokenizer`, the default): any word the characters spell can be output.
- ``word`` (:class:`WordTokenizer`): one id per word of the training text, for closed
  vocabularies (digits, commands, keywords). A greedy CTC decoder can then only output words it
  was trained on, never a misspelling ("fwour", "sixe"); a word it never saw cannot be output
  at all, and a transcript containing one is refused with the word named.

:func:`build_tokenizer`, :func:`tokenizer_from_dict` and :func:`load_tokenizer` pick the class.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["normalize_text", "CharTokenizer", "WordTokenizer", "Tokenizer", "TokenizerError", "BLANK",
           "build_tokenizer", "tokenizer_from_dict", "load_tokenizer", "TOKENIZER_KINDS"]

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
    unit = "character"

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

    def unknown(self, text: str) -> list[str]:
        """The characters of normalised ``text`` that this vocabulary cannot encode, sorted."""
        return sorted(set(text) - set(self._index))

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
            shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in self.unknown(text))
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
        return _load(path, cls.from_dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharTokenizer) and self._chars == other._chars

    def __hash__(self) -> int:
        return hash(tuple(self._chars))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, chars={''.join(self._chars)!r})"


class WordTokenizer:
    """Words <-> ids; id 0 is the CTC blank. For closed vocabularies (see the module docstring).

    Args:
        words: the vocabulary words (without the blank), in id order starting at 1; each one a
            normalised word (no spaces).

    Example:
        >>> tok = WordTokenizer.build(["three one four", "one five"])
        >>> tok.encode("five one"), tok.decode(tok.encode("five one"))
        ([1, 2], 'five one')
    """

    blank_id = 0
    unit = "word"

    def __init__(self, words: Sequence[str]):
        words = list(words)
        bad = [w for w in words if not isinstance(w, str) or not w or w != normalize_text(w) or " " in w]
        if bad:
            raise TokenizerError(f"vocabulary entries must be normalised words without spaces, got {bad[:5]!r}")
        if len(set(words)) != len(words):
            raise TokenizerError("vocabulary has duplicate words")
        self._words = words
        self._index = {w: i + 1 for i, w in enumerate(words)}

    @classmethod
    def build(cls, texts: Iterable[str]) -> "WordTokenizer":
        """Vocabulary = every word of the normalised texts, sorted."""
        words: set[str] = set()
        for t in texts:
            words.update(normalize_text(t).split())
        if not words:
            raise TokenizerError("no words in the training text: a word tokenizer needs at least one")
        return cls(sorted(words))

    @property
    def vocab_size(self) -> int:
        """Number of ids including the blank."""
        return len(self._words) + 1

    @property
    def vocab(self) -> set[str]:
        """The set of words that can be encoded (the blank excluded)."""
        return set(self._words)

    @property
    def tokens(self) -> list[str]:
        """Token string per id: ``tokens[0]`` is the blank."""
        return [BLANK, *self._words]

    def unknown(self, text: str) -> list[str]:
        """The words of normalised ``text`` that this vocabulary cannot encode, sorted."""
        return sorted(set(text.split()) - set(self._index))

    def encode(self, text: str, normalize: bool = True) -> list[int]:
        """Text -> ids (no blank). Unknown words raise :class:`TokenizerError`.

        Args:
            text: transcript; normalised first unless ``normalize=False``.
        """
        if normalize:
            text = normalize_text(text)
        unknown = self.unknown(text)
        if unknown:
            raise TokenizerError(
                f"text {text!r} has words not in the vocabulary: {', '.join(map(repr, unknown))}; a word "
                "tokenizer only knows the words of its training text: add them there, or use `tokenizer: char`")
        return [self._index[w] for w in text.split()]

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text, words joined by spaces; blanks are skipped."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.blank_id:
                continue
            if not 0 < i < self.vocab_size:
                raise TokenizerError(f"id {i} out of range for a vocabulary of size {self.vocab_size}")
            out.append(self._words[i - 1])
        return " ".join(out)

    def to_dict(self) -> dict:
        return {"type": "word", "version": 1, "blank": BLANK, "words": list(self._words)}

    @classmethod
    def from_dict(cls, d: dict) -> "WordTokenizer":
        if not isinstance(d, dict) or d.get("type") != "word" or not isinstance(d.get("words"), list):
            raise TokenizerError(
                "not a word tokenizer dict: expected {'type': 'word', 'words': [...]} "
                "(as written by WordTokenizer.save / to_dict)"
            )
        return cls(d["words"])

    def save(self, path: str | Path) -> None:
        from supernet.utils import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "WordTokenizer":
        return _load(path, cls.from_dict)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordTokenizer) and self._words == other._words

    def __hash__(self) -> int:
        return hash(("word", *self._words))

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab_size={self.vocab_size}, words={self._words[:12]!r}{' ...' if len(self._words) > 12 else ''})"


Tokenizer = CharTokenizer | WordTokenizer
_KINDS: dict[str, type] = {"char": CharTokenizer, "word": WordTokenizer}
TOKENIZER_KINDS = tuple(_KINDS)


def build_tokenizer(kind: str, texts: Iterable[str]) -> Tokenizer:
    """A tokenizer of ``kind`` ("char" or "word") built from training ``texts``."""
    if kind not in _KINDS:
        raise TokenizerError(f"unknown tokenizer kind {kind!r}; use one of {', '.join(TOKENIZER_KINDS)}")
    return _KINDS[kind].build(texts)


def tokenizer_from_dict(d: dict) -> Tokenizer:
    """The tokenizer a ``to_dict`` wrote, of whichever kind its ``type`` names."""
    kind = d.get("type") if isinstance(d, dict) else None
    if kind not in _KINDS:
        raise TokenizerError(f"not a tokenizer dict: 'type' is {kind!r}, expected one of {', '.join(TOKENIZER_KINDS)} "
                             "(as written by a tokenizer's save / to_dict)")
    return _KINDS[kind].from_dict(d)


def load_tokenizer(path: str | Path) -> Tokenizer:
    """Read a tokenizer JSON file of either kind; errors name the file."""
    return _load(path, tokenizer_from_dict)


def _load(path: str | Path, from_dict) -> Tokenizer:
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TokenizerError(f"{path}: tokenizer file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TokenizerError(f"{path}: not a tokenizer JSON file: {e}") from None
    try:
        return from_dict(d)
    except TokenizerError as e:
        raise TokenizerError(f"{path}: {e}") from None
