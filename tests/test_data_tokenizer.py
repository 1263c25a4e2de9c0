import json

import pytest

from supernet.data.tokenizer import BLANK, CharTokenizer, TokenizerError, normalize_text


@pytest.mark.parametrize("raw, norm", [
    ("Hello,   World!", "hello world"),
    ("  Drei  EINS\tvier\n", "drei eins vier"),
    ("Grüße aus MÜNCHEN.", "grüße aus münchen"),           # ß kept (not folded to ss), Ü lowercased
    ("¿Dónde está la estación?", "dónde está la estación"),
    ("Il fait beau aujourd’hui", "il fait beau aujourd'hui"),  # curly apostrophe folded, kept inside word
    ("'quoted' words", "quoted words"),                      # apostrophes at word edges removed
    ("well-known c'est", "well known c'est"),                # hyphen becomes a space, words not glued
    ("Garçon NIÑO", "garçon niño"),
    ("e\u0301cole", "école"),                                # NFD input -> NFC
    ("...!?", ""),
    ("route 66", "route 66"),
])
def test_normalize_text(raw, norm):
    assert normalize_text(raw) == norm
    assert normalize_text(norm) == norm  # idempotent


def test_round_trip_with_accents():
    texts = ["drei eins vier fünf", "zéro un deux", "llámame más tarde", "grüße", "c'est très bien"]
    tok = CharTokenizer.build(texts)
    assert tok.blank_id == 0 and tok.tokens[0] == BLANK
    assert tok.vocab_size == len(tok.vocab) + 1
    assert {"ü", "é", "á", "ß", "'", " "} <= tok.vocab
    for t in texts:
        ids = tok.encode(t)
        assert 0 not in ids and len(ids) == len(t)
        assert tok.decode(ids) == t
    assert tok.encode("Zéro, UN!") == tok.encode("zéro un")  # normalised on encode


def test_decode_skips_blank_and_rejects_bad_ids():
    tok = CharTokenizer.build(["ab"])
    a, b = tok.encode("a")[0], tok.encode("b")[0]
    assert tok.decode([0, a, 0, 0, b, 0]) == "ab"
    with pytest.raises(TokenizerError, match="out of range"):
        tok.decode([tok.vocab_size])


def test_unknown_character_raises_clear_error():
    tok = CharTokenizer.build(["one two"])
    with pytest.raises(TokenizerError) as e:
        tok.encode("one ünd")
    assert "'ü' (U+00FC)" in str(e.value) and "'d'" in str(e.value)


def test_save_load_and_dict(tmp_path):
    tok = CharTokenizer.build(["fünf sechs", "cinq"])
    tok.save(tmp_path / "tok.json")
    assert CharTokenizer.load(tmp_path / "tok.json") == tok
    d = json.loads(json.dumps(tok.to_dict()))  # JSON-able, e.g. inside a checkpoint
    again = CharTokenizer.from_dict(d)
    assert again == tok and again.encode("fünf") == tok.encode("fünf")
    (tmp_path / "bad.json").write_text('{"type": "bpe"}')
    with pytest.raises(TokenizerError, match="bad.json"):
        CharTokenizer.load(tmp_path / "bad.json")
    with pytest.raises(TokenizerError, match="not found"):
        CharTokenizer.load(tmp_path / "missing.json")
