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


def test_word_tokenizer_round_trip_and_errors(tmp_path):
    from supernet.data.tokenizer import WordTokenizer, build_tokenizer, load_tokenizer, tokenizer_from_dict

    tok = build_tokenizer("word", ["Three one four!", "one five  nine", "zéro"])
    assert isinstance(tok, WordTokenizer) and tok.unit == "word"
    assert tok.tokens == [BLANK, "five", "four", "nine", "one", "three", "zéro"]
    assert tok.vocab_size == 7 and tok.blank_id == 0
    ids = tok.encode("Nine, one ZÉRO")
    assert ids == [3, 4, 6]
    # CTC output: blanks skipped, words joined by single spaces.
    assert tok.decode([0, 3, 0, 4, 4, 0, 6]) == "nine one one zéro"
    assert tok.decode([]) == ""
    with pytest.raises(TokenizerError, match="out of range"):
        tok.decode([7])
    with pytest.raises(TokenizerError, match=r"words not in the vocabulary: 'eight', 'two'.*tokenizer: char"):
        tok.encode("two one eight")
    assert tok.unknown("two one eight") == ["eight", "two"]
    with pytest.raises(TokenizerError, match="no words"):
        WordTokenizer.build(["...", ""])
    with pytest.raises(TokenizerError, match="normalised words without spaces"):
        WordTokenizer(["one two"])
    with pytest.raises(TokenizerError, match="normalised words without spaces"):
        WordTokenizer(["One"])
    with pytest.raises(TokenizerError, match="duplicate"):
        WordTokenizer(["one", "one"])
    # Saved and loaded through the kind-dispatching readers; never equal to a char tokenizer.
    tok.save(tmp_path / "w.json")
    assert load_tokenizer(tmp_path / "w.json") == tok == tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert WordTokenizer.load(tmp_path / "w.json") == tok
    char = build_tokenizer("char", ["one"])
    assert isinstance(load_tokenizer(_saved(char, tmp_path / "c.json")), CharTokenizer)
    assert char != WordTokenizer(["one"])
    with pytest.raises(TokenizerError, match="not a word tokenizer"):
        WordTokenizer.load(tmp_path / "c.json")
    (tmp_path / "bpe.json").write_text('{"type": "bpe"}')
    with pytest.raises(TokenizerError, match=r"bpe.json: not a tokenizer dict: 'type' is 'bpe'"):
        load_tokenizer(tmp_path / "bpe.json")
    with pytest.raises(TokenizerError, match="unknown tokenizer kind 'bpe'"):
        build_tokenizer("bpe", ["one"])


def _saved(tok, path):
    tok.save(path)
    return path
