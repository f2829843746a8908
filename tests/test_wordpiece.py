"""wordpiece.py vs HF's two BertTokenizers: the Python one (transformers' bert legacy module,
a port of google-research/bert tokenization.py) and the Rust one (transformers.BertTokenizer in
transformers 5), on the real MiniLM vocab (uncased) and on a cased multilingual vocab built here."""
import collections
import json
import os
import subprocess
import sys

import pytest
import transformers
from transformers.models.bert.tokenization_bert_legacy import (BasicTokenizer, BertTokenizerLegacy,
                                                               WordpieceTokenizer)

from conftest import FIXTURES, ROOT
from wordpiece import MAX_WORD_CHARS, SPECIALS, WordPiece

COMBINING = "Cafe\u0301 vs Café, Ange\u0300le vs Angèle"  # e + combining accent vs precomposed é
LONE_MARKS = "\u0301 e\u0301 \u0308"  # combining marks with no letter, or one letter
GREEK = "ΟΔΟΣ ΑΘΗΝΑΣ Σίσυφος ΣΑΣ"  # capital sigma at the end of a word
CONTROLS = "bell\x07 null\x00 esc\x1b del\x7f c1\x85 pua\ue000 unassigned\u0378"

TORTURE = [
    "Müller wohnt in der Straße über dem Bäcker.",
    "Donaudampfschifffahrtsgesellschaftskapitänsmütze ÄRGER Öl Übermut STRASSE",
    "élève à l'école, où naïveté; ¿Qué tal? ¡Olé! mañana",
    COMBINING,
    LONE_MARKS,
    "北京是中国的首都。𠀀 \uf900 \U0002f800",  # CJK, an extension-B and two compatibility ideographs
    "東京タワーはひらがなとカタカナ ｶﾀｶﾅ",  # kana are not spaced out like the ideographs
    "ภาษาไทยไม่มีช่องว่าง",  # Thai: no spaces, vowel signs are combining marks
    "مرحبا بالعالم، كيف حالك؟",
    "שָׁלוֹם עוֹלָם",  # Hebrew with vowel points
    "Привет, мир! Ёлка ЁЛКА",
    GREEK,
    "안녕하세요 서울",  # Hangul syllables decompose into jamo when accents are stripped
    "हिन्दी नई दिल्ली",
    "İstanbul ıI",  # dotted capital I lowercases to i + combining dot
    "I ❤️ NY 👍🏽 👨‍👩‍👧 🇩🇪",  # emoji with variation selector, skin tone, ZWJ sequence, flag
    "Zucker\u00adwatte \u00ad",  # soft hyphen
    "zero\u200bwidth\u200cnon\u200djoiner\ufeff \u200b",
    "100\u00a0km 5\u202fkg a\u3000b c\u2028d e\u2029f g\u1680h",  # Unicode spaces, line/paragraph separators
    "a\tb\n\nc\r\nd\x0be\x0cf\x1cg",
    CONTROLS,
    "bad\ufffdbyte \ufffd",
    "",
    "   \t\n ",
    "x" * 300,
    "ab" * 50 + " b" + "ab" * 50,  # exactly 100 chars, then 101
    "U.S. 1996-08-22 $17,000 3.5% (AFP) --- ... !!! ''quoted'' `tick`",
    "don't O'Neill's e-mail C++ #tag @user http://x.com/a?b=c&d=e",
    "ＡＢＣ１２３！ｘ",  # fullwidth forms
    "x² ≤ ½ € £ ¥ © ™ ° ± €100 5°C",  # symbols that are not punctuation
    "ﬁ Ǆ ǅ ǆ ẞ ß",  # ligature, titlecase digraph, capital sharp s
]

# Where the Rust tokenizer disagrees with the Python one, we follow the Python one (our
# reference; the brief of this file). Each case states why they differ.
RUST_DIFFERS = {
    ("uncased", GREEK): "Python's str.lower() writes a word-final capital sigma as ς, Rust lowercases "
                        "char by char and always writes σ",
    ("uncased", CONTROLS): "Rust keeps the unassigned U+0378 (not a control to its tables); Python drops "
                           "every C* char, as Google's code does",
    ("cased", CONTROLS): "as above",
    ("cased", COMBINING): "Python NFC-composes e + U+0301 into é, so both spellings give the same pieces; "
                          "Rust never composes, so the decomposed one finds no pieces and is [UNK]",
    ("cased", LONE_MARKS): "as above: e + U+0301 only becomes the vocab's é after NFC",
}

# CoNLL-style words (made up, Reuters-like) for the word-level path
WORDS = ["BRUSSELS", "1996-08-22", "The", "U.S.", "Federal", "Reserve", "said", "on", "Thursday", "it",
         "raised", "rates", "by", "0.25", "%", "--", "$", "17,000", "(", "AFP", ")", "Al-Ahly", "beat",
         "Zürich", "1:0", "in", "Saint-Étienne", "'s", "n't", "...", "Müller", "Straße", "Köln", "O'Neill",
         "x" * 101, "unaffable", "EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]


def build_vocab(text, size=1500):
    """A cased multilingual vocab in mBERT's form: the specials, every char of `text` alone and as
    ##char, then the `size` most frequent substrings (2-8 chars) of its words, word-initial ones
    bare, inner ones with ##. Deterministic: ties are broken alphabetically."""
    words = text.split()
    chars = sorted(set("".join(words)))
    counts = collections.Counter()
    for w in words:
        for i in range(len(w)):
            for j in range(i + 2, min(len(w), i + 8) + 1):
                counts[w[i:j] if i == 0 else "##" + w[i:j]] += 1
    common = sorted(counts, key=lambda s: (-counts[s], s))[:size]
    return [*SPECIALS, *chars, *("##" + c for c in chars), *common]


def write_model(folder, tokens, cfg=None, newline="\n"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8", newline="") as f:
        f.write("".join(t + newline for t in tokens))
    if cfg is not None:
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f)
    return str(folder)


@pytest.fixture(scope="session")
def cased_dir(tmp_path_factory):
    with open(os.path.join(FIXTURES, "wordpiece_multilingual.txt"), encoding="utf-8") as f:
        tokens = build_vocab(f.read())
    return write_model(tmp_path_factory.mktemp("cased"), tokens, {"do_lower_case": False})


@pytest.fixture(scope="session")
def models(minilm_dir, cased_dir):
    """name -> (ours, HF Python, HF Rust), each loaded by its own from_pretrained."""
    return {name: (WordPiece.from_pretrained(d), BertTokenizerLegacy.from_pretrained(d),
                   transformers.BertTokenizer.from_pretrained(d))
            for name, d in (("uncased", minilm_dir), ("cased", cased_dir))}


def rust_words(fast, words):
    """Piece ids per word from HF Rust's is_split_into_words; a word with no pieces gets []."""
    enc = fast(words, is_split_into_words=True, add_special_tokens=False)
    out = [[] for _ in words]
    for i, w in zip(enc["input_ids"], enc.word_ids()):
        out[w].append(i)
    return out


# --- against the references ------------------------------------------------------

@pytest.mark.parametrize("name", ["uncased", "cased"])
@pytest.mark.parametrize("text", TORTURE)
def test_tokenize_matches_hf(models, name, text):
    ours, slow, fast = models[name]
    got = ours.tokenize(text)
    assert got == slow.tokenize(text)
    assert ours.encode(text) == slow.encode(text, add_special_tokens=False)
    if (name, text) in RUST_DIFFERS:
        assert got != fast.tokenize(text), "the Rust tokenizer agrees now: drop the RUST_DIFFERS entry"
    else:
        assert got == fast.tokenize(text)


@pytest.mark.parametrize("lower,strip", [(True, None), (False, None), (False, True), (True, False)])
def test_basic_every_code_point(lower, strip):
    """Pre-tokenization of every code point of planes 0-1, the CJK extension blocks' edges and
    plane 14 (tags, variation selectors), each between two letters, as HF's Python BasicTokenizer."""
    cps = [*range(0x20000), *range(0xE0000, 0xE01F0), 0x2A6DF, 0x2A6E0, 0x2A700, 0x2B73F, 0x2B740,
           0x2B81F, 0x2B820, 0x2CEAF, 0x2CEB0, 0x2F7FF, 0x2F800, 0x2FA1F, 0x2FA20, 0x10FFFF]
    text = "".join(f"x{chr(cp)}y " for cp in cps)
    ours = WordPiece(list(SPECIALS), do_lower_case=lower, strip_accents=strip)
    assert ours.basic(text) == BasicTokenizer(do_lower_case=lower, strip_accents=strip).tokenize(text)


@pytest.mark.parametrize("lower", [True, False])
def test_basic_ascii_shortcut(lower):
    """ASCII text takes a shortcut in `basic`; every ASCII char in several spots gives HF's words."""
    text = "".join(f"a{c}B{c}{c}9 {c} " for c in map(chr, range(128)))
    assert text.isascii()
    assert WordPiece(list(SPECIALS), do_lower_case=lower).basic(text) == \
        BasicTokenizer(do_lower_case=lower).tokenize(text)


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_encode_words_matches_hf(models, name):
    """Word-level path == HF Rust's is_split_into_words ids grouped by word_ids, and HF Python per word."""
    ours, slow, fast = models[name]
    got = ours.encode_words(WORDS)
    assert len(got) == len(WORDS)
    assert got == rust_words(fast, WORDS)
    assert got == [slow.encode(w, add_special_tokens=False) for w in WORDS]


def test_special_ids_and_vocab_match_hf(models):
    ours, slow, fast = models["uncased"]
    assert len(ours) == len(slow.vocab) == 30522
    assert ours.vocab == slow.vocab
    assert (ours.pad_id, ours.unk_id, ours.cls_id, ours.sep_id, ours.mask_id) == \
        (fast.pad_token_id, fast.unk_token_id, fast.cls_token_id, fast.sep_token_id, fast.mask_token_id)


def test_special_token_text_is_split(models):
    """"[MASK]" typed in the text is split like any text, as Google's code does:
    ["[", "mask", "]", "x"], HF Rust's answer with split_special_tokens=True."""
    ours, _, fast = models["uncased"]
    assert ours.tokenize("[MASK] x") == fast.tokenize("[MASK] x", split_special_tokens=True) == \
        ["[", "mask", "]", "x"]


@pytest.mark.parametrize("cfg", [None, {}, {"do_lower_case": False},
                                 {"do_lower_case": True, "strip_accents": False},
                                 {"do_lower_case": False, "strip_accents": True},
                                 {"do_lower_case": True, "tokenize_chinese_chars": False}])
def test_casing_config_read_as_hf(tmp_path, cfg):
    """tokenizer_config.json (or its absence) gives the casing HF's from_pretrained reads."""
    with open(os.path.join(FIXTURES, "wordpiece_multilingual.txt"), encoding="utf-8") as f:
        sample = f.read()
    tokens = build_vocab(sample + sample.lower(), size=3000)
    folder = write_model(tmp_path, tokens, cfg)
    text = "Müller äußerte sich in KÖLN, Café, Ἀθῆναι 北京是 東京タワー"
    ours = WordPiece.from_pretrained(folder).tokenize(text)
    # no tokenizer_config.json: we read a cased vocab as cased (see from_pretrained); HF is told so
    hf = dict(do_lower_case=False) if cfg is None else {}
    assert ours == BertTokenizerLegacy.from_pretrained(folder, **hf).tokenize(text)
    assert ours == transformers.BertTokenizer.from_pretrained(folder, **hf).tokenize(text)


def test_vocab_file_read_as_hf(tmp_path):
    """CRLF line ends and a token listed twice: ids and token->id map as HF's load_vocab.
    "##a" on lines 5 and 7 maps to 7 (the last), while tokens[5] is still "##a"."""
    tokens = [*SPECIALS, "##a", "a", "##a", "b"]
    folder = write_model(tmp_path, tokens, {}, newline="\r\n")
    ours = WordPiece.from_pretrained(folder)
    assert ours.vocab == BertTokenizerLegacy.from_pretrained(folder).vocab
    assert ours.tokens == tokens and ours.vocab["##a"] == 7
    # "ab": no "##b" in the vocab, so the whole word is [UNK]
    assert ours.tokenize("aa b ab") == ["a", "##a", "b", "[UNK]"]


# --- hand-worked -------------------------------------------------------------------

@pytest.mark.parametrize("vocab,word,expected", [
    (["un", "##aff", "##able"], "unaffable", ["un", "##aff", "##able"]),  # Google's docstring example
    # greedy takes "una" (longest first); "ff" then has no piece, so the whole word is [UNK],
    # although "un" + "##aff" would cover it
    (["un", "una", "##aff"], "unaff", ["[UNK]"]),
    (["un", "una", "##aff", "##ff"], "unaff", ["una", "##ff"]),
    (["a", "##a"], "a" * MAX_WORD_CHARS, ["a"] + ["##a"] * (MAX_WORD_CHARS - 1)),  # at the limit
    (["a", "##a"], "a" * (MAX_WORD_CHARS + 1), ["[UNK]"]),  # one char over: [UNK], not truncated
])
def test_greedy_longest_match(vocab, word, expected):
    """Expected pieces worked by hand; HF's Python WordpieceTokenizer agrees."""
    wp = WordPiece([*SPECIALS, *vocab], do_lower_case=False)
    assert wp.tokenize(word) == expected
    assert WordpieceTokenizer(wp.vocab, "[UNK]").tokenize(word) == expected


def test_zero_piece_words_become_unk(models):
    """A soft hyphen, a zero-width space, a BEL char and a lone combining accent (stripped when
    uncased) yield no pieces. They stay, as one [UNK] each, so the word keeps its tag:
    [["eu"], ["[UNK]"], ["rejects"], ["[UNK]"], ["[UNK]"], ["[UNK]"], ["german"]].
    HF Rust drops them from word_ids instead, leaving only words 0, 2 and 6."""
    ours, _, fast = models["uncased"]
    words = ["EU", "\u00ad", "rejects", "\u200b", "\x07", "\u0301", "German"]
    got = [ours.convert_ids_to_tokens(ids) for ids in ours.encode_words(words)]
    assert got == [["eu"], ["[UNK]"], ["rejects"], ["[UNK]"], ["[UNK]"], ["[UNK]"], ["german"]]
    enc = fast(words, is_split_into_words=True, add_special_tokens=False)
    assert sorted(set(enc.word_ids())) == [0, 2, 6]


def test_cache_is_not_shared_with_caller(models):
    """Editing the returned lists must not change later answers: "EU" stays [7327] ("eu")."""
    ours = WordPiece(models["uncased"][0].tokens)
    first = ours.encode_words(["EU", "EU"])
    first[0].append(0)
    first[1].clear()
    assert ours.encode_words(["EU"]) == [[ours.vocab["eu"]]] == [[7327]]
    assert "EU" in ours.cache


def test_id_conversion_round_trip_and_errors(models):
    """"[CLS]" -> 101 -> "[CLS]" in MiniLM; an unknown token or an id out of range is an error."""
    ours = models["uncased"][0]
    assert ours.convert_tokens_to_ids(["[CLS]", "##s"]) == [101, ours.vocab["##s"]]
    assert ours.convert_ids_to_tokens([101, 102]) == ["[CLS]", "[SEP]"]
    with pytest.raises(ValueError, match="not in the vocab"):
        ours.convert_tokens_to_ids(["[cls]"])
    with pytest.raises(ValueError, match="out of range"):
        ours.convert_ids_to_tokens([-1])


@pytest.mark.parametrize("cfg_text,match", [
    ('{"do_lower_case": false,\n "strip_accents": tru}', r"tokenizer_config.json:2: not valid JSON"),
    ('{"do_lower_case": "no"}', "do_lower_case must be true or false"),
    ('{"strip_accents": 1}', "strip_accents must be true or false or null"),
    ('{"do_basic_tokenize": false}', "not supported"),
    ('["do_lower_case"]', "expected a JSON object"),
])
def test_bad_config_names_file(tmp_path, cfg_text, match):
    folder = write_model(tmp_path, list(SPECIALS))
    (tmp_path / "tokenizer_config.json").write_text(cfg_text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        WordPiece.from_pretrained(folder)


def test_bad_vocab(tmp_path):
    with pytest.raises(ValueError, match=r"vocab.txt: no line \[MASK\]"):
        WordPiece.from_pretrained(write_model(tmp_path / "m", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"]))
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        WordPiece.from_pretrained(str(tmp_path))  # a folder with no vocab.txt
    with pytest.raises(ValueError, match="must be 0..5"):
        WordPiece({t: i for i, t in enumerate([*SPECIALS, "a"], start=1)})


def test_dict_vocab_equals_list_vocab(models):
    ours = models["uncased"][0]
    assert WordPiece(ours.vocab).tokens == ours.tokens


def test_cli(models, minilm_dir):
    """One output line per input line, empty for an empty or blank line; pieces as HF Python's."""
    lines = ["Hello, World!", "", "naïve café 北京 a\rb", "  ", "\u00ad"]
    run = subprocess.run([sys.executable, os.path.join(ROOT, "wordpiece.py"), minilm_dir],
                         input="\n".join(lines).encode("utf-8") + b"\n", capture_output=True, check=True)
    slow = models["uncased"][1]
    assert run.stdout.decode("utf-8").split("\n") == [" ".join(slow.tokenize(t)) for t in lines] + [""]


def test_casing_read_off_the_vocab_without_config(tmp_path, minilm_dir):
    """No tokenizer_config.json: a vocab with upper-case pieces is cased, the MiniLM (uncased) vocab is
    uncased. HF would lowercase both, turning a cased mBERT folder's "Köln" into "koln"."""
    import shutil
    shutil.copy(os.path.join(minilm_dir, "vocab.txt"), tmp_path / "vocab.txt")
    assert WordPiece.from_pretrained(str(tmp_path)).lower is True
    cased = tmp_path / "cased"
    write_model(cased, [*SPECIALS, "K", "##ö", "##ln", "k"], None)
    wp = WordPiece.from_pretrained(str(cased))
    assert wp.lower is False and wp.tokenize("Köln") == ["K", "##ö", "##ln"]
