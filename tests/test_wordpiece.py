"""wordpiece.py vs HF's Rust BertTokenizer (transformers.BertTokenizer in transformers 5), which
agrees with google-research/bert tokenization.py save where wordpiece.py's docstring lists; there
the cases are worked by hand as Google's code reads them. Vocabs: the real MiniLM (uncased) and
a sample of mBERT's cased vocab. HF's legacy Python BasicTokenizer (same Unicode tables as ours)
is a second reference for the character classes."""
import json
import os
import shutil
import unicodedata

import pytest
import transformers
from tokenizers import normalizers, pre_tokenizers
from transformers.models.bert.tokenization_bert_legacy import (BasicTokenizer, BertTokenizerLegacy,
                                                               WordpieceTokenizer)

from conftest import FIXTURES
from wordpiece import MAX_WORD_CHARS, SPECIALS, WordPiece

# bert-base-multilingual-cased's vocab.txt (from the Hub), given to check the sample against it
MBERT_VOCAB = os.environ.get("MBERT_VOCAB", "")
# Its pieces that can match in any text below (see mbert_sample): on these texts, the same
# pieces as the whole 119,547-line vocab.
MBERT_SAMPLE = os.path.join(FIXTURES, "wordpiece_mbert_cased_sample.txt")

DECOMPOSED = "Cafe\u0301 vs Café, Ange\u0300le vs Angèle, e\u0301 vs é"  # e + U+0301 vs é
NFD = unicodedata.normalize("NFD", "Tiếng Việt Ελληνικά Ἀθῆναι 한국어 Łódź Ærø")
LONE_MARKS = "\u0301 e\u0301 \u0308"  # combining marks with no letter, or one letter
GREEK = "ΟΔΟΣ ΑΘΗΝΑΣ Σίσυφος ΣΑΣ"  # capital sigma at the end of a word
CONTROLS = "bell\x07 null\x00 esc\x1b del\x7f c1\x85 unassigned\u0378"

TORTURE = [
    "Müller wohnt in der Straße über dem Bäcker.",
    "Donaudampfschifffahrtsgesellschaftskapitänsmütze ÄRGER Öl Übermut STRASSE",
    "élève à l'école, où naïveté; ¿Qué tal? ¡Olé! mañana",
    DECOMPOSED,
    NFD,
    LONE_MARKS,
    "北京是中国的首都。𠀀 \uf900 \U0002f800",  # CJK, extension B, two compatibility ideographs
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
    "100\u00a0km 5\u202fkg a\u3000b c\u2028d e\u2029f g\u1680h",  # Zs, line/paragraph separators
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

# Where Google's code and the Rust tokenizer differ (wordpiece.py's docstring), Google's answer
# is Rust's answer on the text spelled the way Google's code reads it.
AS_GOOGLE_READS = {
    ("uncased", GREEK): "ΟΔΟς ΑΘΗΝΑς Σίσυφος ΣΑς",  # Python's str.lower() writes a final ς
    ("uncased", "x\U0002B820y"): "x \U0002B820 y",  # Google's CJK table starts at U+2B820
    ("cased", "x\U0002B820y"): "x \U0002B820 y",
    ("uncased", "a\u2e52b"): "a \u2e52 b",  # U+2E52 is punctuation since Unicode 13
    ("cased", "a\u2e52b"): "a \u2e52 b",
}
DIFFERING = list(dict.fromkeys(t for _, t in AS_GOOGLE_READS))  # the texts, once each

# CoNLL-style words (made up, Reuters-like) for the word-level path
WORDS = ["BRUSSELS", "1996-08-22", "The", "U.S.", "Federal", "Reserve", "said", "on", "Thursday",
         "it", "raised", "rates", "by", "0.25", "%", "--", "$", "17,000", "(", "AFP", ")",
         "Al-Ahly", "beat", "Zürich", "1:0", "in", "Saint-Étienne", "'s", "n't", "...", "Müller",
         "Straße", "Köln", "O'Neill", "x" * 101, "unaffable", "EU", "rejects", "German", "call",
         "to", "boycott", "British", "lamb", ".", "Cafe\u0301", "\u00ad", "\u0301"]

# every text the cased model reads in these tests: the sample must hold their pieces
CASED_TEXTS = [*TORTURE, *DIFFERING, *AS_GOOGLE_READS.values(), *WORDS,
               "e\u0301 vs \u00e9", "pua\ue000 x"]


def rust_basic(text, lower, strip=None):
    """HF Rust's basic tokens: its BertNormalizer, then its BertPreTokenizer."""
    norm = normalizers.BertNormalizer(lowercase=lower, strip_accents=strip)
    words = pre_tokenizers.BertPreTokenizer().pre_tokenize_str(norm.normalize_str(text))
    return [w for w, _ in words]


def mbert_sample(tokens, texts):
    """The lines of `tokens` (in order) that can match in `texts`: the specials, and each piece
    that is a prefix, or ## + an inner substring, of a basic token of ours or of Rust's. Greedy
    longest-match only ever looks at those, so on `texts` the sample gives the full vocab's
    pieces."""
    basic = WordPiece(list(SPECIALS), do_lower_case=False).basic
    can = set(SPECIALS)
    for text in texts:
        for w in {*basic(text), *rust_basic(text, lower=False)}:
            can.update(w[:j] for j in range(1, len(w) + 1))
            can.update("##" + w[i:j] for i in range(1, len(w)) for j in range(i + 1, len(w) + 1))
    return [t for t in tokens if t in can]


def write_model(folder, tokens, cfg=None, newline="\n"):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8", newline="") as f:
        f.write("".join(t + newline for t in tokens))
    if cfg is not None:
        with open(os.path.join(folder, "tokenizer_config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f)
    return str(folder)


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


@pytest.fixture(scope="session")
def cased_dir(tmp_path_factory):
    tokens = read_lines(MBERT_SAMPLE)
    return write_model(tmp_path_factory.mktemp("cased"), tokens, {"do_lower_case": False})


@pytest.fixture(scope="session")
def models(minilm_dir, cased_dir):
    """name -> (ours, HF Rust), each loaded by its own from_pretrained."""
    return {name: (WordPiece.from_pretrained(d), transformers.BertTokenizer.from_pretrained(d))
            for name, d in (("uncased", minilm_dir), ("cased", cased_dir))}


def rust_words(fast, words):
    """Piece ids per word from HF Rust's is_split_into_words; a word with no pieces gets []."""
    enc = fast(words, is_split_into_words=True, add_special_tokens=False)
    out = [[] for _ in words]
    for i, w in zip(enc["input_ids"], enc.word_ids()):
        out[w].append(i)
    return out


# --- against the reference -----------------------------------------------------

def test_mbert_sample_is_complete():
    """The fixture is mbert_sample(mBERT's vocab.txt, CASED_TEXTS), so the cased tests give the
    pieces of the real mBERT vocab (needs that file, which comes from the Hub)."""
    if not os.path.isfile(MBERT_VOCAB):
        pytest.skip("set MBERT_VOCAB to bert-base-multilingual-cased's vocab.txt (from the Hub) "
                    "to check the sample against it")
    want = mbert_sample(read_lines(MBERT_VOCAB), CASED_TEXTS)
    assert read_lines(MBERT_SAMPLE) == want, \
        "texts changed: write mbert_sample(read_lines(MBERT_VOCAB), CASED_TEXTS) to MBERT_SAMPLE"


@pytest.mark.parametrize("name", ["uncased", "cased"])
@pytest.mark.parametrize("text", TORTURE + DIFFERING)
def test_tokenize_matches_rust(models, name, text):
    """Our pieces and ids are HF Rust's; where Google and Rust differ, Rust's on the text as
    Google's code reads it (AS_GOOGLE_READS), and then not Rust's on the text itself."""
    ours, fast = models[name]
    got = ours.tokenize(text)
    as_google = AS_GOOGLE_READS.get((name, text), text)
    assert got == fast.tokenize(as_google)
    assert ours.encode(text) == fast.encode(as_google, add_special_tokens=False)
    if as_google != text:
        assert got != fast.tokenize(text), "Rust agrees with Google now: update the docstrings"


def test_decomposed_accent(models):
    """mBERT cased, "e\\u0301 vs é" (decomposed, then precomposed é): no NFC step, so the basic
    tokens are "e\\u0301", "vs", "é"; "e\\u0301" is no piece, so greedy takes "e", then "##\\u0301":
    ["e", "##\\u0301", "vs", "é"]. HF's legacy Python composes first: ["é", "vs", "é"]."""
    ours, fast = models["cased"]
    text = "e\u0301 vs \u00e9"
    assert ours.tokenize(text) == fast.tokenize(text) == ["e", "##\u0301", "vs", "\u00e9"]


@pytest.mark.parametrize("lower,strip", [(True, None), (False, None), (False, True), (True, False)])
def test_basic_every_code_point_vs_rust(lower, strip):
    """Basic tokens of "x{c}y" for every code point c of planes 0-2 and 14-16 that Unicode 3.2
    already had with today's category: Rust's, private use (Co) aside (Google keeps it, see
    test_google_vs_rust). Chars added or recategorised since then follow our Python's tables."""
    old = unicodedata.ucd_3_2_0
    cps = [cp for cp in (*range(0x30000), *range(0xE0000, 0x110000))
           if unicodedata.category(chr(cp)) not in ("Co", "Cn", "Cs")
           and old.category(chr(cp)) == unicodedata.category(chr(cp))]
    assert len(cps) > 95_000
    ours = WordPiece(list(SPECIALS), do_lower_case=lower, strip_accents=strip)
    text = "".join(f"x{chr(cp)}y " for cp in cps)
    if ours.basic(text) != rust_basic(text, lower, strip):  # find the chars, for the message
        bad = [f"U+{cp:04X}" for cp in cps
               if ours.basic(f"x{chr(cp)}y") != rust_basic(f"x{chr(cp)}y", lower, strip)]
        pytest.fail(f"basic tokens differ from Rust's at {bad[:20] or 'no single char'}")


@pytest.mark.parametrize("lower,strip", [(True, None), (False, None), (False, True), (True, False)])
def test_basic_every_code_point_vs_python(lower, strip):
    """The same over planes 0-1, the CJK extension blocks' edges and plane 14, new chars included,
    against HF's legacy Python BasicTokenizer (whose Unicode tables are ours). Left out are the
    two places it departs from Google: the chars it drops and Google keeps (Co, Cn, Cs) and the
    texts NFC would change ("x\\u0307y" -> "ẋy")."""
    cps = [*range(0x20000), *range(0xE0000, 0xE01F0), 0x2A6DF, 0x2A6E0, 0x2A700, 0x2B73F,
           0x2B740, 0x2B81F, 0x2B820, 0x2CEAF, 0x2CEB0, 0x2F7FF, 0x2F800, 0x2FA1F, 0x2FA20]
    cps = [cp for cp in cps if unicodedata.category(chr(cp)) not in ("Co", "Cn", "Cs")
           and unicodedata.is_normalized("NFC", f"x{chr(cp)}y")]
    text = "".join(f"x{chr(cp)}y " for cp in cps)
    ours = WordPiece(list(SPECIALS), do_lower_case=lower, strip_accents=strip)
    hf = BasicTokenizer(do_lower_case=lower, strip_accents=strip)
    assert ours.basic(text) == hf.tokenize(text)


@pytest.mark.parametrize("lower", [True, False])
def test_basic_ascii_shortcut(lower):
    """ASCII text takes a shortcut in `basic`; every ASCII char in several spots gives Rust's."""
    text = "".join(f"a{c}B{c}{c}9 {c} " for c in map(chr, range(128)))
    assert text.isascii()
    assert WordPiece(list(SPECIALS), do_lower_case=lower).basic(text) == rust_basic(text, lower)


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_encode_words_matches_rust(models, name):
    """Word-level path == HF Rust's is_split_into_words ids grouped by word_ids, for the words
    that have pieces (see test_zero_piece_words_become_unk for the others)."""
    ours, fast = models[name]
    got = ours.encode_words(WORDS)
    assert len(got) == len(WORDS)
    # a word with no pieces ("\u00ad") is [UNK] for us, absent from Rust's word_ids
    assert got == [w or [ours.unk_id] for w in rust_words(fast, WORDS)]


def test_special_ids_and_vocab_match_hf(models, minilm_dir):
    ours, fast = models["uncased"]
    assert len(ours) == len(fast.vocab) == 30522
    assert ours.vocab == fast.vocab == BertTokenizerLegacy.from_pretrained(minilm_dir).vocab
    assert (ours.pad_id, ours.unk_id, ours.cls_id, ours.sep_id, ours.mask_id) == \
        (fast.pad_token_id, fast.unk_token_id, fast.cls_token_id, fast.sep_token_id,
         fast.mask_token_id)


def test_special_token_text_is_split(models):
    """"[MASK]" typed in the text is split like any text, as Google's code does:
    ["[", "mask", "]", "x"], HF Rust's answer with split_special_tokens=True."""
    ours, fast = models["uncased"]
    assert ours.tokenize("[MASK] x") == fast.tokenize("[MASK] x", split_special_tokens=True) == \
        ["[", "mask", "]", "x"]


# (lowercase, vocab lines after the specials, text, Google's pieces, Rust's pieces), by hand
GOOGLE_VS_RUST = [
    # Python's str.lower() writes a word-final sigma as ς: "σας"; Rust, char by char: "σασ"
    (True, ["σας", "σασ"], "ΣΑΣ", ["σας"], ["σασ"]),
    # U+E000 is Co, not Cc/Cf: Google keeps it, "a" "##\ue000" "##b"; Rust drops it: "ab"
    (False, ["a", "##b", "##\ue000"], "a\ue000b", ["a", "##\ue000", "##b"], ["a", "##b"]),
    # U+2B820: Google spaces it out (CJK); Rust's table starts at U+2B920, so it stays inside
    (False, ["x", "y", "𫠠", "##𫠠", "##y"], "x𫠠y", ["x", "𫠠", "y"], ["x", "##𫠠", "##y"]),
    # U+2E52, Po since Unicode 13: our Python's tables split it off, Rust's older ones do not
    (False, ["a", "b", "⹒", "##⹒", "##b"], "a⹒b", ["a", "⹒", "b"], ["a", "##⹒", "##b"]),
    # "[MASK]" in the text: Google splits it like any text, HF keeps the special token whole
    (False, ["[", "]", "MASK", "x"], "[MASK] x", ["[", "MASK", "]", "x"], ["[MASK]", "x"]),
    # a vocab line " b ": Google's load_vocab strips it to "b"; HF keeps " b ", so "b" is [UNK]
    (False, ["a", " b "], "a b", ["a", "b"], ["a", "[UNK]"]),
]


@pytest.mark.parametrize("lower,extra,text,google,rust", GOOGLE_VS_RUST)
def test_google_vs_rust(tmp_path, lower, extra, text, google, rust):
    """Each place where Google's code and HF Rust differ (wordpiece.py's docstring), on a vocab of
    the specials + `extra`, pieces worked by hand in the comments above: ours are Google's.
    Rust's are pinned too, so that a change on its side shows."""
    folder = write_model(tmp_path, [*SPECIALS, *extra], {"do_lower_case": lower})
    assert WordPiece.from_pretrained(folder).tokenize(text) == google
    assert transformers.BertTokenizer.from_pretrained(folder).tokenize(text) == rust


@pytest.mark.parametrize("name", ["uncased", "cased"])
def test_private_use_char(models, name):
    """"pua\\ue000 x": Google keeps U+E000 (Co) and no piece of mBERT or MiniLM holds a private-use
    char, so the word is [UNK]: ["[UNK]", "x"]. Rust drops U+E000: ["pu", "##a", "x"]."""
    ours, fast = models[name]
    assert not any(unicodedata.category(c) == "Co" for t in ours.tokens for c in t)
    assert ours.tokenize("pua\ue000 x") == ["[UNK]", "x"]
    assert fast.tokenize("pua\ue000 x") == ["pu", "##a", "x"]


def build_vocab(text, size=1500):
    """A cased multilingual vocab in mBERT's form: the specials, every char of `text` alone and as
    ##char, then the `size` most frequent substrings (2-8 chars) of its words, word-initial ones
    bare, inner ones with ##. Deterministic: ties are broken alphabetically."""
    words = text.split()
    chars = sorted(set("".join(words)))
    counts = {}
    for w in words:
        for i in range(len(w)):
            for j in range(i + 2, min(len(w), i + 8) + 1):
                s = w[i:j] if i == 0 else "##" + w[i:j]
                counts[s] = counts.get(s, 0) + 1
    common = sorted(counts, key=lambda s: (-counts[s], s))[:size]
    return [*SPECIALS, *chars, *("##" + c for c in chars), *common]


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
    assert ours == transformers.BertTokenizer.from_pretrained(folder, **hf).tokenize(text)


def test_vocab_file_read_as_hf(tmp_path):
    """CRLF line ends and a token listed twice: ids and token->id map as HF's load_vocab.
    "##a" on lines 6 and 8 maps to 7 (the last), while tokens[5] is still "##a"."""
    tokens = [*SPECIALS, "##a", "a", "##a", "b"]
    folder = write_model(tmp_path, tokens, {}, newline="\r\n")
    ours = WordPiece.from_pretrained(folder)
    assert ours.vocab == BertTokenizerLegacy.from_pretrained(folder).vocab
    assert ours.tokens == tokens and ours.vocab["##a"] == 7
    # "ab": no "##b" in the vocab, so the whole word is [UNK]
    assert ours.tokenize("aa b ab") == ["a", "##a", "b", "[UNK]"]


# --- hand-worked -------------------------------------------------------------------

@pytest.mark.parametrize("vocab,word,expected", [
    (["un", "##aff", "##able"], "unaffable", ["un", "##aff", "##able"]),  # Google's docstring
    # greedy takes "una" (longest first); "ff" then has no piece, so the whole word is [UNK],
    # although "un" + "##aff" would cover it
    (["un", "una", "##aff"], "unaff", ["[UNK]"]),
    (["un", "una", "##aff", "##ff"], "unaff", ["una", "##ff"]),
    (["a", "##a"], "a" * MAX_WORD_CHARS, ["a"] + ["##a"] * (MAX_WORD_CHARS - 1)),  # at the limit
    # one char over: [UNK], not truncated (Google's limit, 200, would give 101 pieces)
    (["a", "##a"], "a" * (MAX_WORD_CHARS + 1), ["[UNK]"]),
])
def test_greedy_longest_match(tmp_path, vocab, word, expected):
    """Expected pieces worked by hand; HF's Rust and Python WordPiece agree."""
    wp = WordPiece([*SPECIALS, *vocab], do_lower_case=False)
    assert wp.tokenize(word) == expected
    assert WordpieceTokenizer(wp.vocab, "[UNK]").tokenize(word) == expected
    folder = write_model(tmp_path, wp.tokens, {"do_lower_case": False})
    assert transformers.BertTokenizer.from_pretrained(folder).tokenize(word) == expected


def test_zero_piece_words_become_unk(models):
    """A soft hyphen, a zero-width space, a BEL char and a lone combining accent (stripped when
    uncased) yield no pieces. They stay, as one [UNK] each, so the word keeps its tag:
    [["eu"], ["[UNK]"], ["rejects"], ["[UNK]"], ["[UNK]"], ["[UNK]"], ["german"]].
    HF Rust drops them from word_ids instead, leaving only words 0, 2 and 6."""
    ours, fast = models["uncased"]
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


def test_ids_to_tokens(models):
    """101, 102 -> "[CLS]", "[SEP]" in MiniLM, as HF's vocab maps them."""
    ours, fast = models["uncased"]
    assert ours.convert_ids_to_tokens([101, 102]) == fast.convert_ids_to_tokens([101, 102]) == \
        ["[CLS]", "[SEP]"]


@pytest.mark.parametrize("cfg_text,match", [
    ('{"do_lower_case": false,\n "strip_accents": tru}', r"tokenizer_config.json:2: not valid"),
    ('{"do_lower_case": "no"}', "do_lower_case must be true or false"),
    ('{"strip_accents": 1}', "strip_accents must be true or false or null"),
    ('{"do_basic_tokenize": false}', "not supported"),
])
def test_bad_config_names_file(tmp_path, cfg_text, match):
    folder = write_model(tmp_path, list(SPECIALS))
    (tmp_path / "tokenizer_config.json").write_text(cfg_text, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        WordPiece.from_pretrained(folder)


def test_bad_vocab(tmp_path):
    with pytest.raises(ValueError, match=r"vocab.txt: no line \[MASK\]"):
        WordPiece.from_pretrained(write_model(tmp_path / "m", [*SPECIALS[:4], "a"]))
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        WordPiece.from_pretrained(str(tmp_path))  # a folder with no vocab.txt
    (tmp_path / "m" / "vocab.txt").write_bytes("\n".join(SPECIALS).encode() + b"\nK\xf6ln\n")
    with pytest.raises(ValueError, match=r"vocab.txt:6: not UTF-8 \(byte 0xf6\)"):
        WordPiece.from_pretrained(str(tmp_path / "m"))


def test_casing_read_off_the_vocab_without_config(tmp_path, minilm_dir):
    """No tokenizer_config.json: a vocab with upper-case pieces is cased, the MiniLM (uncased)
    vocab is uncased. HF would lowercase both, turning a cased mBERT folder's "Köln" into "koln"."""
    shutil.copy(os.path.join(minilm_dir, "vocab.txt"), tmp_path / "vocab.txt")
    assert WordPiece.from_pretrained(str(tmp_path)).lower is True
    cased = tmp_path / "cased"
    write_model(cased, [*SPECIALS, "K", "##ö", "##ln", "k"], None)
    wp = WordPiece.from_pretrained(str(cased))
    assert wp.lower is False and wp.tokenize("Köln") == ["K", "##ö", "##ln"]


# --- save ----------------------------------------------------------------------------

SAVE_CASES = {  # name -> (model, casing to rebuild it with; {} keeps the model's own)
    "uncased": ("uncased", {}),
    "cased": ("cased", {}),
    "cased, accents stripped": ("cased", {"do_lower_case": False, "strip_accents": True}),
    "uncased, CJK not spaced": ("uncased", {"tokenize_chinese_chars": False}),
}


@pytest.mark.parametrize("case", SAVE_CASES)
def test_save_round_trip(models, tmp_path, case):
    """ours -> save(folder) -> WordPiece.from_pretrained and HF's AutoTokenizer: the same tokens,
    casing and pieces (HF's on the text as Google's code reads it, see AS_GOOGLE_READS)."""
    name, casing = SAVE_CASES[case]
    ours = models[name][0]
    ours = WordPiece(ours.tokens, **{"do_lower_case": ours.lower, **casing})
    ours.save(str(tmp_path / "m"))
    back = WordPiece.from_pretrained(str(tmp_path / "m"))
    auto = transformers.AutoTokenizer.from_pretrained(str(tmp_path / "m"))
    assert isinstance(auto, transformers.BertTokenizer)
    assert back.tokens == ours.tokens
    assert (back.lower, back.strip, back.cjk) == (ours.lower, ours.strip, ours.cjk)
    for text in TORTURE:
        assert back.tokenize(text) == ours.tokenize(text)
        assert auto.tokenize(AS_GOOGLE_READS.get((name, text), text)) == ours.tokenize(text)


def test_save_writes_the_vocab_as_read(models, minilm_dir, tmp_path):
    """MiniLM's vocab.txt comes back byte for byte; the config says uncased, for AutoTokenizer."""
    models["uncased"][0].save(str(tmp_path))
    with open(os.path.join(minilm_dir, "vocab.txt"), "rb") as f:
        assert (tmp_path / "vocab.txt").read_bytes() == f.read()
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert cfg["tokenizer_class"] == "BertTokenizer" and cfg["do_lower_case"] is True
    assert (cfg["unk_token"], cfg["mask_token"]) == ("[UNK]", "[MASK]")


@pytest.mark.parametrize("token", ["a\nb", " a", "a\r"])
def test_save_refuses_tokens_a_vocab_cannot_hold(tmp_path, token):
    """read_vocab never gives such a token; one built by hand would not come back as it was."""
    with pytest.raises(AssertionError, match="cannot be a vocab.txt line"):
        WordPiece([*SPECIALS, token]).save(str(tmp_path))

