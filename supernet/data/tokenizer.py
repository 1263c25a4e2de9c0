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


class _UnitTokenizer:
    """What both tokenizers share: units <-> ids with the CTC blank at id 0, JSON round trip.

    A subclass names its ``kind`` (the dict's "type"), ``unit``, the dict key of its units, how
    normalised text splits into units (``_split``) and joins back (``_sep``), which entries are
    valid units (``_valid``) and how an unknown unit is shown (``_show``).
    """

    blank_id = 0
    kind = ""           # "type" in to_dict
    unit = ""           # "character" / "word", in messages
    _key = ""           # to_dict key of the units
    _sep = ""           # joins decoded units
    _requirement = ""   # what a valid unit is, in messages
    _fix = ""           # how to fix an unknown unit, in messages

    def __init__(self, units: Sequence[str]):
        units = list(units)
        bad = [u for u in units if not isinstance(u, str) or not self._valid(u)]
        if bad:
            raise TokenizerError(f"vocabulary entries must be {self._requirement}, got {bad[:5]!r}")
        if len(set(units)) != len(units):
            raise TokenizerError(f"vocabulary has duplicate {self.unit}s")
        self._units = units
        self._index = {u: i + 1 for i, u in enumerate(units)}

    @staticmethod
    def _valid(u: str) -> bool:
        raise NotImplementedError

    @staticmethod
    def _split(text: str) -> list[str]:
        raise NotImplementedError

    @staticmethod
    def _show(u: str) -> str:
        return repr(u)

    @property
    def vocab_size(self) -> int:
        """Number of ids including the blank."""
        return len(self._units) + 1

    @property
    def vocab(self) -> set[str]:
        """The set of units that can be encoded (the blank excluded)."""
        return set(self._units)

    @property
    def tokens(self) -> list[str]:
        """Token string per id: ``tokens[0]`` is the blank."""
        return [BLANK, *self._units]

    def unknown(self, text: str) -> list[str]:
        """The units of normalised ``text`` that this vocabulary cannot encode, sorted."""
        return sorted(set(self._split(text)) - set(self._index))

    def describe_unknown(self, text: str) -> str:
        """The units of normalised ``text`` this vocabulary lacks, as error messages show them."""
        return ", ".join(map(self._show, self.unknown(text)))

    def encode(self, text: str, normalize: bool = True) -> list[int]:
        """Text -> ids (no blank). Unknown units raise :class:`TokenizerError` naming them.

        Args:
            text: transcript; normalised first unless ``normalize=False``.
        """
        if normalize:
            text = normalize_text(text)
        try:
            return [self._index[u] for u in self._split(text)]
        except KeyError:
            raise TokenizerError(f"text {text!r} has {self.unit}s not in the vocabulary: "
                                 f"{self.describe_unknown(text)}; {self._fix}") from None

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; blanks are skipped (CTC collapsing of repeats is the decoder's job)."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.blank_id:
                continue
            if not 0 < i < self.vocab_size:
                raise TokenizerError(f"id {i} out of range for a vocabulary of size {self.vocab_size}")
            out.append(self._units[i - 1])
        return self._sep.join(out)

    def to_dict(self) -> dict:
        return {"type": self.kind, "version": 1, "blank": BLANK, self._key: list(self._units)}

    @classmethod
    def from_dict(cls, d: dict):
        if not isinstance(d, dict) or d.get("type") != cls.kind or not isinstance(d.get(cls._key), list):
            raise TokenizerError(
                f"not a {cls.unit} tokenizer dict: expected {{'type': '{cls.kind}', '{cls._key}': [...]}} "
                f"(as written by {cls.__name__}.save / to_dict)"
            )
        return cls(d[cls._key])

    def save(self, path: str | Path) -> None:
        from supernet.utils import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path):
        return _load(path, cls.from_dict)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._units == other._units

    def __hash__(self) -> int:
        return hash((self.kind, *self._units))


class CharTokenizer(_UnitTokenizer):
    """Characters <-> ids; id 0 is the CTC blank.

    Args:
        chars: the vocabulary characters (without the blank), in id order starting at 1.

    Example:
        >>> tok = CharTokenizer.build(["drei eins vier", "zéro un"])
        >>> tok.decode(tok.encode("drei un"))
        'drei un'
    """

    kind, unit, _key, _sep = "char", "character", "chars", ""
    _requirement = "single characters"
    _fix = "build the tokenizer from training text that contains them, or remove them from this transcript"

    def __init__(self, chars: Sequence[str]):
        super().__init__(chars)

    @staticmethod
    def _valid(u: str) -> bool:
        return len(u) == 1

    @staticmethod
    def _split(text: str) -> list[str]:
        return list(text)

    @staticmethod
    def _show(u: str) -> str:
        return f"{u!r} (U+{ord(u):04X})"

    @classmethod
    def build(cls, texts: Iterable[str]) -> "CharTokenizer":
        """Vocabulary = every character of the normalised texts, plus the space, sorted."""
        chars = {" "}
        for t in texts:
            chars.update(normalize_text(t))
        return cls(sorted(chars))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size}, chars={''.join(self._units)!r})"


class WordTokenizer(_UnitTokenizer):
    """Words <-> ids; id 0 is the CTC blank. For closed vocabularies (see the module docstring).

    Args:
        words: the vocabulary words (without the blank), in id order starting at 1; each one a
            normalised word (no spaces).

    Example:
        >>> tok = WordTokenizer.build(["three one four", "one five"])
        >>> tok.encode("five one"), tok.decode(tok.encode("five one"))
        ([1, 3], 'five one')
    """

    kind, unit, _key, _sep = "word", "word", "words", " "
    _requirement = "normalised words without spaces"
    _fix = ("a word tokenizer only knows the words of its training text: add them there, or use "
            "`tokenizer: char`")

    def __init__(self, words: Sequence[str]):
        super().__init__(words)

    @staticmethod
    def _valid(u: str) -> bool:
        return bool(u) and u == normalize_text(u) and " " not in u

    @staticmethod
    def _split(text: str) -> list[str]:
        return text.split()

    @classmethod
    def build(cls, texts: Iterable[str]) -> "WordTokenizer":
        """Vocabulary = every word of the normalised texts, sorted."""
        words: set[str] = set()
        for t in texts:
            words.update(normalize_text(t).split())
        if not words:
            raise TokenizerError("no words in the training text: a word tokenizer needs at least one")
        return cls(sorted(words))

    def __repr__(self) -> str:
        more = " ..." if len(self._units) > 12 else ""
        return f"WordTokenizer(vocab_size={self.vocab_size}, words={self._units[:12]!r}{more})"


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
