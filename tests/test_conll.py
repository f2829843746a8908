"""conll.py: reading CoNLL-2003 and GermEval 2014 files, IOB1 <-> BIO, windows of pieces
(Sec 3.1, 3.2), the CLI.

Fixtures (made-up sentences, not the Reuters or Wikipedia text):
  conll_en.txt  4 columns, ASCII, IOB1, two documents.
  conll_de.txt  5 columns (word lemma POS chunk NE), latin-1 bytes, CRLF, trailing blanks on one
                line, German -DOCSTART- form, no final newline.
  germeval_tiny/NER-de-{train,dev,test}.tsv  GermEval 2014 layout, UTF-8; train: 3 sentences
                (lines 2, 10, 23), the first two from one URL; deriv, part, OTH and an inner tag.
  deu_tiny/deu.testa, deu.testb  CoNLL-2003 German dev/test layout (5 columns, IOB1, latin-1),
                2 sentences each; testb has 2 documents and a B-ORG (two clubs side by side).
  germeval_trailing_tab.tsv  GermEval 2014 layout whose first word line is the official
                NER-de-test.tsv's '1<TAB>"<TAB>O<TAB>O<TAB>' (a fifth, empty field); other word
                lines end in two tabs, a space, a tab and a space. 2 sentences (lines 2, 11).
"""
import os
import random
import re
import subprocess
import sys

import pytest
from seqeval.metrics.sequence_labeling import get_entities

import conll
import corpora
from conftest import FIXTURES, ROOT

EN = os.path.join(FIXTURES, "conll_en.txt")
DE = os.path.join(FIXTURES, "conll_de.txt")
GE = os.path.join(FIXTURES, "germeval_tiny")
GE_TRAIN = os.path.join(GE, "NER-de-train.tsv")
GE_TAB = os.path.join(FIXTURES, "germeval_trailing_tab.tsv")
L2I = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}


class FakeTok:
    """Stand-in for wordpiece.WordPiece: a word of n characters has 1 + (n - 1) % 3 pieces
    ("a" -> 1, "bb" -> 2, "ccc" -> 3, "dddd" -> 1). The k-th new word gets ids 10 + 3k,
    11 + 3k, ..."""
    pad_id, cls_id, sep_id, unk_id = 0, 1, 2, 3

    def __init__(self):
        self.ids = {}  # word -> its piece ids
        self.word_of = {}  # first piece id -> word

    def encode_words(self, words):
        for w in words:
            if w not in self.ids:
                start = 10 + 3 * len(self.ids)
                self.ids[w] = [start + j for j in range(1 + (len(w) - 1) % 3)]
                self.word_of[start] = w
        return [list(self.ids[w]) for w in words]

    def words(self, input_ids):
        """The words a feature holds, read back from their first pieces."""
        return [self.word_of[i] for i in input_ids if i in self.word_of]


def sent(words, tags=None, doc=0, line=1):
    return conll.Sentence(list(words), tags or ["O"] * len(words), doc, line)


# ---------------------------------------------------------------- reading

def test_read_english_fixture():
    """Hand-read from conll_en.txt: 3 sentences (lines 3, 9, 17), documents 0, 0, 1; NE is
    column 4."""
    got, enc, _ = conll.read_conll_info(EN)
    assert enc == "utf-8"  # ASCII is valid UTF-8
    assert got == [
        sent(["Anna", "Berg", "visited", "Oslo", "."], ["I-PER", "I-PER", "O", "I-LOC", "O"], 0, 3),
        sent(["Teams", ":", "Lakers", "Celtics", "."], ["O", "O", "I-ORG", "B-ORG", "O"], 0, 9),
        sent(["Paris", "Open"], ["I-LOC", "I-MISC"], 1, 17)]


def test_read_german_latin1_crlf():
    """conll_de.txt is latin-1 with CRLF and no final newline: umlauts come back intact, NE is
    column 5 (not column 4, the chunk), the line with trailing blanks parses, one document."""
    got, enc, _ = conll.read_conll_info(DE)
    assert enc == "latin-1"
    assert got == [
        sent(["Jürgen", "Müller", "grüßt", "Köln", "."], ["I-PER", "I-PER", "O", "I-LOC", "O"],
             0, 3),
        sent(["Straße", "in", "Düsseldorf"], ["O", "O", "I-LOC"], 0, 9)]


def test_utf8_umlauts_not_taken_for_latin1(tmp_path):
    """The same German text saved as UTF-8 reads as UTF-8 with the same words: the latin-1
    fallback only fires on bytes that are not UTF-8."""
    p = tmp_path / "de_utf8.txt"
    p.write_bytes(open(DE, "rb").read().decode("latin-1").encode("utf-8"))
    got, enc, _ = conll.read_conll_info(p)
    assert enc == "utf-8" and got == conll.read_conll(DE)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())  # a BOM is not part of the first word
    assert conll.read_conll_info(p) == (got, "utf-8-sig", "conll")


@pytest.mark.parametrize("enc", [None, "utf-8", "UTF8", "utf_8"])
def test_bom_with_utf8_flag(tmp_path, enc):
    """A BOM opens no word whether UTF-8 is detected or given (any spelling of --encoding utf-8):
    one document, "EU" on line 3, encoding utf-8-sig; a GermEval file with a BOM is still GermEval;
    convert writes the BOM back (to BIO only I-ORG -> B-ORG changes)."""
    p, ge = tmp_path / "bom.txt", tmp_path / "bom.tsv"
    p.write_bytes(b"\xef\xbb\xbf-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\n")
    assert conll.read_conll_info(p, enc) == ([sent(["EU"], ["I-ORG"], 0, 3)], "utf-8-sig", "conll")
    assert conll.convert(p, "bio", enc) == p.read_bytes().replace(b"I-ORG", b"B-ORG")
    ge.write_bytes(b"\xef\xbb\xbf" + open(GE_TRAIN, "rb").read())
    assert conll.read_conll_info(ge, enc)[1:] == ("utf-8-sig", "germeval")


def test_bom_mid_file(tmp_path):
    """Files saved with a BOM and joined with `cat` have one mid-file, opening line 5 here: not
    part of that -DOCSTART- (2 documents; "EU" on lines 3 and 7), of a word (line 9, "EU"), of a
    GermEval '#' or word line. convert keeps it where it is on disk, as every byte but the tags."""
    a = "\ufeff-DOCSTART- -X- -X- O\n\nEU NNP B-NP I-ORG\n\n".encode()
    p = tmp_path / "joined.txt"
    p.write_bytes(a + a + "\ufeffEU NNP B-NP I-ORG\n".encode())
    eu = [["EU"], ["I-ORG"]]
    assert conll.read_conll(p) == [sent(*eu, 0, 3), sent(*eu, 1, 7), sent(*eu, 1, 9)]
    assert conll.convert(p, "bio") == p.read_bytes().replace(b"I-ORG", b"B-ORG")
    ge = tmp_path / "joined.tsv"
    ge.write_bytes(2 * (b"\xef\xbb\xbf" + open(GE_TRAIN, "rb").read()))
    got = conll.read_germeval(ge)
    assert [s.doc for s in got] == [0, 0, 1, 2, 2, 3] and got[3:] == [
        conll.Sentence(s.words, s.tags, s.doc + 2, s.line + 31) for s in got[:3]]
    ge.write_bytes("#\tu\n\ufeff1\tEU\tB-ORG\tO\n".encode())  # `cat` of a '#' line, a BOM'd file
    assert conll.read_conll_info(ge)[0] == [sent(["EU"], ["B-ORG"], 0, 2)]


def test_latin1_byte_0x85_is_no_line_break(tmp_path):
    """Lines end at \\n only (CRLF's \\r is stripped): latin-1 byte 0x85 (NEL, a line break to
    str.splitlines) stays a character of the word "M\\x85ller"."""
    p = tmp_path / "nel.txt"
    p.write_bytes(b"M\x85ller B-PER\r\n")
    assert conll.read_conll(p, "latin-1") == [sent(["M\x85ller"], ["B-PER"])]


@pytest.mark.parametrize("text, docs", [
    ("a X O\n\nb X O\n", [0, 0]),  # no -DOCSTART-: one document
    ("-DOCSTART- -X- O O\n\na X O\n-DOCSTART- -X- O O\nb X O", [0, 1]),  # no blank before DOCSTART
    ("a X O\n\n-DOCSTART- -X- -X- O\n\nb X O\n", [0, 1]),  # words before the first DOCSTART: doc 0
    ("-DOCSTART- -X- -X- -X- O\n\n-DOCSTART- -X- O O\n\na X O\n", [1]),  # an empty document 0
])
def test_docstart_forms(tmp_path, text, docs):
    """Document index per sentence, worked out by hand for each layout; DOCSTART never a word."""
    p = tmp_path / "d.txt"
    p.write_text(text)
    got = conll.read_conll(p)
    assert [s.doc for s in got] == docs and all("-DOCSTART-" not in s.words for s in got)


@pytest.mark.parametrize("text, where, what", [
    ("a NN I-NP O\nb NN O\n", ":2:", "3 columns, but line 1 has 4"),
    ("-DOCSTART- -X- O O\n\na NN I-NP O\n\nb NN I-NP E-PER\n", ":5:", "'E-PER' is not O"),
    ("a NN I-NP PER\n", ":1:", "'PER' is not O"),
    ("a NN I-NP B-\n", ":1:", "'B-' is not O"),
    ("a NN I-NP X-PER\n", ":1:", "'X-PER' is not O, B-TYPE or I-TYPE"),
    ("a NN I-NP S-PER\n", ":1:", "'S-PER' is not O, B-TYPE or I-TYPE"),  # IOBES
    ("a O\nb O\n\nc E-LOC\n", ":4:", "'E-LOC' is not O"),
    ("a\nb NN I-NP O\n", ":2:", "4 columns, but line 1 has 1"),
    ("a NN I-NP O\nb\n", ":2:", "1 columns, but line 1 has 4"),
    ("", "", "no sentences"),
    (" \n\n", "", "no sentences"),
    ("-DOCSTART- -X- O O\n\n", "", "no sentences"),
])
def test_malformed_files(tmp_path, text, where, what):
    """Each bad file raises ValueError naming file:line (hand-counted) and what is wrong."""
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(ValueError) as e:
        conll.read_conll(p)
    assert f"{p}{where}" in str(e.value) and what in str(e.value)


def test_missing_file_and_wrong_encoding(tmp_path):
    """A missing file is FileNotFoundError; forcing UTF-8 on the latin-1 fixture fails at line 3,
    its first non-ASCII byte (the ü of Jürgen)."""
    with pytest.raises(FileNotFoundError, match="No such file or directory: .*nope.txt"):
        conll.read_conll(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match=r"conll_de.txt:3: not valid utf-8"):
        conll.read_conll(DE, encoding="utf-8")


def test_mixed_utf8_and_latin1_is_an_error(tmp_path):
    """UTF-8 "Müller" on line 1 and a latin-1 ü (byte 0xfc) on line 3: neither reading is right
    (latin-1 would give "MÃ¼ller"), so it is an error naming line 3, the byte and line 1. Forcing
    latin-1 reads every byte as latin-1, as asked. The message names what works for each command
    (training has no --encoding). A UTF-8 byte-order mark before a latin-1 body is UTF-8 too."""
    p = tmp_path / "x.txt"
    p.write_bytes("Müller B-PER\n\n".encode() + b"K\xf6ln B-LOC\n")
    want = (f"{p}:3: byte 0xf6 is not valid UTF-8, but line 1 is UTF-8; fix the byte, or read "
            f"every byte as latin-1 (--encoding latin-1; to train: iconv -f latin-1)")
    with pytest.raises(ValueError, match=re.escape(want)):
        conll.read_conll(p)
    assert [s.words for s in conll.read_conll(p, "latin-1")] == [["MÃ¼ller"], ["Köln"]]
    p.write_bytes(b"\xef\xbb\xbfK\xf6ln B-LOC\n")
    with pytest.raises(ValueError, match=re.escape(f"{p}:1: byte 0xf6 is not valid UTF-8")):
        conll.read_conll(p)


def test_unknown_encoding_name():
    """A misspelt encoding is a ValueError naming the file, not a LookupError traceback."""
    with pytest.raises(ValueError, match=r"conll_en.txt: unknown encoding 'utf9'"):
        conll.read_conll(EN, encoding="utf9")


def test_words_only(tmp_path):
    """One column = words only (what predict reads): lines 1-2 and 4 hold the words; tags are
    placeholders "O" and Sentence.gold / has_gold say False. Labelled files say True."""
    p = tmp_path / "w.txt"
    p.write_text("Anna\nBerg\n\nOslo\n")
    got = conll.read_conll(p)
    assert got == [conll.Sentence(["Anna", "Berg"], ["O", "O"], 0, 1, gold=False),
                   conll.Sentence(["Oslo"], ["O"], 0, 4, gold=False)]
    assert not conll.has_gold(got) and conll.has_gold(conll.read_conll(EN))


# ---------------------------------------------------------------- schemes

@pytest.mark.parametrize("iob1, bio, want", [
    (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["B-PER", "I-PER", "B-PER", "O", "B-LOC"],
     {(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")}),
    (["I-ORG", "I-LOC", "I-LOC", "O"], ["B-ORG", "B-LOC", "I-LOC", "O"],
     {(0, 1, "ORG"), (1, 3, "LOC")}),
    (["I-PER", "B-PER"], ["B-PER", "B-PER"], {(0, 1, "PER"), (1, 2, "PER")}),
    (["O", "O"], ["O", "O"], set()),
    ([], [], set()),
])
def test_schemes_by_hand(iob1, bio, want):
    """Hand-converted pairs. Spans by conlleval.pl's rules: B- always starts an entity, I- starts
    one after O or another type; both encodings give the same spans."""
    assert conll.to_bio(iob1) == bio and conll.to_iob1(bio) == iob1
    assert conll.spans(iob1) == conll.spans(bio) == want


def test_non_canonical_iob1():
    """A B- that follows no entity of its type (as twice in the English eng.train) is not IOB1;
    to_iob1 writes I-, keeping the span: ["O", "B-MISC", "I-MISC"] -> ["O", "I-MISC", "I-MISC"]."""
    x = ["O", "B-MISC", "I-MISC"]
    assert conll.to_iob1(conll.to_bio(x)) == conll.to_iob1(x) == ["O", "I-MISC", "I-MISC"]
    assert conll.spans(x) == conll.spans(conll.to_iob1(x)) == {(1, 3, "MISC")}


def test_opens_by_hand():
    """An I- opens an entity after O, another type or the sentence start (conlleval.pl
    startOfChunk): in O I-PER I-PER B-PER I-LOC that is positions 1 and 4; the B-PER at 3 follows
    its own type, so there only a B- opens one."""
    tags = ["O", "I-PER", "I-PER", "B-PER", "I-LOC"]
    assert [conll.opens(tags, i) for i in range(5)] == [False, True, False, False, True]
    assert conll.opens(["B-LOC"], 0)


@pytest.mark.parametrize("seqs, want", [
    ([["I-PER", "B-PER"]], "iob1"),  # B- only after the same type
    ([["O", "B-PER"]], "bio"),  # B- opening an entity after O
    ([["B-PER", "B-LOC"]], "bio"),  # ... at sentence start and after another type
    ([["O"], []], "iob1"),  # no entities: both schemes write the same tags
    ([["B-PER"], ["I-LOC"], ["I-ORG"]], "iob1"),  # vote 1 B- against 2 I-
    ([["B-PER"], ["B-LOC"], ["I-ORG"]], "bio"),  # vote 2 B- against 1 I-
])
def test_detect_scheme(seqs, want):
    """The rule in detect_scheme's docstring, applied by hand to each case."""
    assert conll.detect_scheme(seqs) == want


@pytest.mark.parametrize("seed", range(3))
def test_schemes_random(seed):
    """Random tag sequences: spans match seqeval's get_entities (a conlleval port) and survive
    every conversion; the conversions are idempotent and each other's inverse on canonical input."""
    r = random.Random(seed)
    seqs = [[r.choice(["O", "B-A", "I-A", "B-B", "I-B"]) for _ in range(r.randint(0, 12))]
            for _ in range(500)]
    for x in seqs:
        want = {(s, e + 1, t) for t, s, e in get_entities(x)}
        bio, iob1 = conll.to_bio(x), conll.to_iob1(x)
        assert conll.spans(x) == conll.spans(bio) == conll.spans(iob1) == want
        assert conll.to_bio(iob1) == conll.to_bio(bio) == bio
        assert conll.to_iob1(bio) == conll.to_iob1(iob1) == iob1
    assert conll.detect_scheme(map(conll.to_bio, seqs)) == "bio"
    assert conll.detect_scheme(map(conll.to_iob1, seqs)) == "iob1"


# ---------------------------------------------------------------- features

def test_feature_by_hand():
    """A fresh FakeTok gives "a" -> [10], "bb" -> [13, 14], "c" -> [16]: input
    [CLS 10 13 14 16 SEP];
    each word's tag id sits on its first piece (positions 1, 2, 4), -100 elsewhere (BERT Sec 5.3:
    first piece only)."""
    (f,) = conll.featurize([sent("a bb c".split(), ["B-PER", "I-PER", "O"])], FakeTok(), L2I)
    assert f.input_ids == [1, 10, 13, 14, 16, 2]
    assert f.labels == [-100, 1, 2, -100, 0, -100]
    assert f.first == [(0, 1), (1, 2), (2, 4)] and f.sent == 0


def test_most_context_by_hand():
    """10 one-piece words, max_len 8 (6 pieces a window). Windows: [0,6); the next starts half-way,
    at word 3: [3,9); then [6,10). min(left, right) context of word 4 is 1 in both [0,6) and [3,9),
    a tie in length too -> the first; word 5: 0 in [0,6), 2 in [3,9); word 7: 1 in [3,9) and [6,10),
    the longer [3,9) wins; word 8: 0 in [3,9), 1 in [6,10). So windows predict 0-4, 5-7, 8-9."""
    words = "a b c d e f g h i j".split()
    tok = FakeTok()
    feats = conll.featurize([sent(words)], tok, L2I, max_len=8)
    assert [tok.words(f.input_ids) for f in feats] == [words[0:6], words[3:9], words[6:10]]
    assert [f.first for f in feats] == [[(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)],
                                        [(5, 3), (6, 4), (7, 5)], [(8, 3), (9, 4)]]


@pytest.mark.parametrize("max_len", [8, 32, 128])
def test_long_sentence_windows(max_len):
    """1000 words of 1-3 pieces: every feature fits max_len, every word is labelled exactly once,
    on its own first piece with its own tag, and gather returns every tag in order."""
    r = random.Random(max_len)
    words = [f"w{i}" + "x" * r.randint(0, 2) for i in range(1000)]
    tags = [r.choice(list(L2I)) for _ in words]
    tok = FakeTok()
    feats = conll.featurize([sent(["z"]), sent(words, tags)], tok, L2I, max_len=max_len)
    assert all(len(f.input_ids) <= max_len for f in feats) and len(feats) > 2
    seen = [i for f in feats if f.sent == 1 for i, _ in f.first]
    assert sorted(seen) == list(range(1000))
    for f in feats:
        assert sum(x != -100 for x in f.labels) == len(f.first)
        for i, pos in f.first:
            assert f.input_ids[pos] == tok.ids[words[i] if f.sent else "z"][0]
            assert f.labels[pos] == L2I[tags[i] if f.sent else "O"]
    preds = [[max(x, 0) for x in f.labels] for f in feats]  # a perfect "model"
    assert conll.gather(feats, preds, [sent(["z"]), sent(words)])[1] == [L2I[t] for t in tags]


def test_featurize_errors():
    """A word of 3 pieces cannot fit max_len 4 (2 pieces + [CLS]/[SEP]); a tag outside label2id is
    refused; both name the line of the word (sentence line 7 + word index 1 = 8)."""
    with pytest.raises(ValueError, match=r"line 8: word 'ccc' has 3 pieces, more than "
                                         r"max_len - 2 = 2"):
        conll.featurize([sent(["a", "ccc"], line=7)], FakeTok(), L2I, max_len=4)
    with pytest.raises(ValueError, match=r"line 8: tag 'B-ORG' is not in label2id"):
        conll.featurize([sent(["a", "b"], ["O", "B-ORG"], line=7)], FakeTok(), L2I)


def test_gather_checks():
    """Predictions come back per word (padded rows allowed); a word never predicted fails."""
    sents = [sent("a bb".split()), sent(["c"])]
    feats = conll.featurize(sents, FakeTok(), L2I)
    rows = [[9, 4, 3, 3, 9, 0, 0], [9, 2, 9, 0]]  # positions 1 and 2 / 1 hold the word predictions
    assert conll.gather(feats, rows, sents) == [[4, 3], [2]]
    with pytest.raises(AssertionError, match="without a prediction"):
        conll.gather(feats[:1], rows[:1], sents)


def test_featurize_matches_hf_tokenizer(minilm_dir):
    """Real WordPiece on the MiniLM vocab against the reference recipe of HF token classification:
    BertTokenizerFast(is_split_into_words=True), label on the first token of each word_id."""
    from transformers import BertTokenizerFast
    from wordpiece import WordPiece
    ref = BertTokenizerFast.from_pretrained(minilm_dir)
    extra = ["Hauptbahnhof", "Zürich", "unbelievably", "(", "1996-08-22", ")"]
    sents = conll.read_conll(EN) + [sent(extra, ["B-LOC", "I-LOC", "O", "O", "O", "O"])]
    l2i = {t: i for i, t in enumerate(conll.tag_set(sents))}
    feats = conll.featurize(sents, WordPiece.from_pretrained(minilm_dir), l2i)
    for s, f in zip(sents, feats, strict=True):
        enc = ref(s.words, is_split_into_words=True)
        ids = enc.word_ids()
        want = [-100 if w is None or (k and ids[k - 1] == w) else l2i[s.tags[w]]
                for k, w in enumerate(ids)]
        assert f.input_ids == enc["input_ids"] and f.labels == want


# ---------------------------------------------------------------- writing

def test_conll_text(tmp_path):
    """'word gold pred' per line, a blank line after each sentence, "-DOCSTART- O O" opening each
    of conll_en.txt's 2 documents (none with docstart=False); written out, it reads back (3
    columns, pred last)."""
    sents = conll.read_conll(EN)
    pred = [["O"] * len(s.words) for s in sents]
    pred[2] = ["I-LOC", "O"]
    body = ["Anna I-PER O\nBerg I-PER O\nvisited O O\nOslo I-LOC O\n. O O\n\n",
            "Teams O O\n: O O\nLakers I-ORG O\nCeltics B-ORG O\n. O O\n\n",
            "Paris I-LOC I-LOC\nOpen I-MISC O\n\n"]
    head = "-DOCSTART- O O\n\n"
    assert conll.conll_text(sents, pred) == head + body[0] + body[1] + head + body[2]
    assert conll.conll_text(sents, pred, docstart=False) == "".join(body)
    out = tmp_path / "pred.txt"
    out.write_text(conll.conll_text(sents, pred))
    assert [s.tags for s in conll.read_conll(out)] == pred


# ---------------------------------------------------------------- command line

def test_stats():
    """Counts read off the fixtures by hand: en 2 documents, 3 sentences, 5+5+2 words, entities
    PER 1 (Anna Berg), LOC 2, ORG 2 (Lakers | Celtics), MISC 1; all starts use I- -> iob1."""
    en, de = conll.stats(EN), conll.stats(DE)
    assert en == dict(file=EN, format="conll", documents=2, sentences=3, tokens=12,
                      entities=dict(LOC=2, MISC=1, ORG=2, PER=1), scheme="iob1", encoding="utf-8")
    assert de == dict(file=DE, format="conll", documents=1, sentences=2, tokens=8,
                      entities=dict(LOC=2, PER=1), scheme="iob1", encoding="latin-1")


def test_stats_text():
    """The command as a user runs it: one line of counts, one of entities per type."""
    out = subprocess.run([sys.executable, "conll.py", "stats", EN], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert out == (f"{EN}: conll, 2 documents, 3 sentences, 12 tokens, scheme iob1, encoding "
                   f"utf-8\n  entities: LOC 2, MISC 1, ORG 2, PER 1\n")


def test_convert_round_trip(tmp_path, capsysbinary):
    """`conll.py convert EN --to bio > bio.txt` changes only the NE column where an I- opens an
    entity (5 tags here, by hand); back to IOB1 gives the original bytes, canonical IOB1."""
    bio = tmp_path / "bio.txt"
    assert conll.main(["convert", EN, "--to", "bio"]) == 0
    bio.write_bytes(capsysbinary.readouterr().out)
    old, new = open(EN).read().split("\n"), bio.read_text().split("\n")
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert changed == [("Anna NNP I-NP I-PER", "Anna NNP I-NP B-PER"),
                       ("Oslo NNP I-NP I-LOC", "Oslo NNP I-NP B-LOC"),
                       ("Lakers NNPS I-NP I-ORG", "Lakers NNPS I-NP B-ORG"),
                       ("Paris NNP I-NP I-LOC", "Paris NNP I-NP B-LOC"),
                       ("Open NNP I-NP I-MISC", "Open NNP I-NP B-MISC")]
    assert conll.main(["convert", "--to", "iob1", str(bio)]) == 0
    assert capsysbinary.readouterr().out == open(EN, "rb").read()


def test_convert_keeps_latin1_crlf():
    """The German fixture to BIO: same bytes (latin-1, CRLF, trailing blanks, no final newline)
    except I-PER -> B-PER on Jürgen, I-LOC -> B-LOC on Köln and Düsseldorf; the command prints
    those bytes whatever the locale's encoding."""
    want = open(DE, "rb").read().replace(b"I-PER\r\nM", b"B-PER\r\nM").replace(b"I-LOC", b"B-LOC")
    assert conll.convert(DE, "bio") == want
    r = subprocess.run([sys.executable, "conll.py", "convert", DE, "--to", "bio"], cwd=ROOT,
                       capture_output=True, env={**os.environ, "PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0 and r.stdout == want, r.stderr


def test_convert_equals_form_and_encoding_flag(capsysbinary):
    """--to=bio works as --to bio does; --encoding latin-1 on the German fixture gives the same
    bytes as detection (latin-1 too)."""
    assert conll.main(["convert", "--to=bio", DE]) == 0
    a = capsysbinary.readouterr().out
    assert conll.main(["convert", "--to", "bio", "--encoding=latin-1", DE]) == 0
    b = capsysbinary.readouterr().out
    assert a == b == conll.convert(DE, "bio") != open(DE, "rb").read()


@pytest.mark.parametrize("cmd", [[], ["stats"], ["convert"]])
def test_help_lists_every_flag(cmd, capsys):
    """-h on conll.py and each sub-command exits 0 and shows each flag with its type (metavar or
    choices), a default and its meaning."""
    with pytest.raises(SystemExit) as e:
        conll.main(cmd + ["-h"])
    out = " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping
    assert e.value.code == 0
    want = {(): ["stats", "convert"],
            ("stats",): ["--encoding STR", "FILE"],
            ("convert",): ["--to {bio,iob1}", "--encoding STR", "SRC"]}[tuple(cmd)]
    assert all(w in out for w in want), out
    assert cmd == [] or out.count("default") >= len([w for w in want if w.startswith("--")])


@pytest.mark.parametrize("argv, what", [
    (["stats", "{tmp}/missing.txt"], "No such file or directory: '{tmp}/missing.txt'"),
    (["stats", "{tmp}/bad.txt"], "{tmp}/bad.txt:2: 3 columns, but line 1 has 4"),
    (["stats", "--encoding", "utf9", EN], "unknown encoding 'utf9'"),
    (["stats", "{tmp}"], "Is a directory: '{tmp}'"),
    (["convert", "--to", "bio", "{tmp}/bad.txt"], "{tmp}/bad.txt:2: 3 columns, but line 1 has 4"),
    (["convert", "--to", "bio", "{tmp}/words.txt"], "words only (one column)"),
])
def test_cli_errors(tmp_path, capsys, argv, what):
    """User errors print one "error: ..." line naming the file (and line) and exit 1; nothing
    goes to standard output."""
    (tmp_path / "bad.txt").write_text("a NN I-NP O\nb NN O\n")
    (tmp_path / "words.txt").write_text("a\nb\n")
    assert conll.main([a.format(tmp=tmp_path) for a in argv]) == 1
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and what.format(tmp=tmp_path) in err, err
    assert err.count("\n") == 1 and out == ""


def test_cli_no_traceback(tmp_path):
    """The command as a user types it: a missing file is one line on stderr and exit status 1."""
    r = subprocess.run([sys.executable, "conll.py", "stats", "missing.txt"], cwd=ROOT,
                       capture_output=True, text=True)
    want = "error: [Errno 2] No such file or directory: 'missing.txt'\n"
    assert r.returncode == 1 and r.stderr == want and not r.stdout


def test_conll_text_refuses_words_only():
    """Words-only sentences have no gold column: "word gold pred" lines would score against
    placeholder O tags, so conll_text refuses (an assert: predict writes "word pred" for them)."""
    s = [conll.Sentence(["a"], ["O"], 0, 1, gold=False)]
    with pytest.raises(AssertionError, match="words-only"):
        conll.conll_text(s, [["B-PER"]])


def test_stats_words_only(tmp_path, capsys):
    """A words-only file: format "words", 2 sentences, 3 tokens, no entities, scheme none."""
    p = tmp_path / "w.txt"
    p.write_text("Anna\nBerg\n\nOslo\n")
    assert conll.main(["stats", str(p)]) == 0
    assert capsys.readouterr().out == (f"{p}: words, 1 documents, 2 sentences, 3 tokens, "
                                       f"scheme none, encoding utf-8\n  entities: \n")


# ---------------------------------------------------------------- GermEval 2014

def test_read_germeval_by_hand():
    """NER-de-train.tsv: sentences on lines 2, 10, 23; the first two share the URL of
    Anna_Berg (document 0), the third is Der_Zauberberg (document 1). Outer tags are column 3;
    the inner level (column 4) has one tag, B-LOC on Köln inside "Universität zu Köln"."""
    outer = conll.read_germeval(GE_TRAIN)
    assert [(s.line, s.doc, len(s.words)) for s in outer] == [(2, 0, 6), (10, 0, 11), (23, 1, 8)]
    assert outer[0].words == ["Anna", "Berg", "wohnt", "in", "Köln", "."]
    assert outer[0].tags == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    assert outer[1].tags == ["O", "B-LOCderiv", "O", "O", "B-ORG", "I-ORG", "I-ORG", "O", "O",
                             "B-ORGpart", "O"]
    inner = conll.read_germeval(GE_TRAIN, level="inner")
    assert [s.words for s in inner] == [s.words for s in outer]
    assert inner[1].tags == ["O"] * 6 + ["B-LOC"] + ["O"] * 4 and inner[0].tags == ["O"] * 6
    assert conll.read_conll(GE_TRAIN) == outer  # detected by its layout


def test_germeval_trailing_tabs_and_blanks(tmp_path):
    """The official NER-de-test.tsv has a word line '1<TAB>"<TAB>O<TAB>O<TAB>': a fifth, empty
    field, which made the file unreadable. germeval_trailing_tab.tsv opens with that line (so
    detection sees it first), then lines ending in two tabs, a space, a tab and a space: all are
    4 columns. By hand: sentences on lines 2 and 11 of 7 and 5 words, documents 0 and 1 (two
    URLs); outer B-OTH on Faust, B-LOC on Leipzig (twice) and Sachsen; inner all O. Detected as
    GermEval, not read as CoNLL (whose last column on line 1 is '[2009-10-20]'). convert to IOB1
    turns every B- into I- (each follows O) and keeps the trailing bytes; back to BIO restores
    the file."""
    for got in (conll.read_germeval(GE_TAB), conll.read_conll(GE_TAB)):
        assert [(s.line, s.doc, len(s.words)) for s in got] == [(2, 0, 7), (11, 1, 5)]
        assert got[0].words == ['"', "Faust", '"', "spielt", "in", "Leipzig", "."]
        assert got[0].tags == ["O", "B-OTH", "O", "O", "O", "B-LOC", "O"]
        assert got[1].tags == ["B-LOC", "O", "O", "B-LOC", "O"]
    assert conll.read_conll_info(GE_TAB)[1:] == ("utf-8", "germeval")
    assert [s.tags for s in conll.read_germeval(GE_TAB, "inner")] == [["O"] * 7, ["O"] * 5]
    iob1 = tmp_path / "iob1.tsv"
    raw = open(GE_TAB, "rb").read()
    iob1.write_bytes(conll.convert(GE_TAB, "iob1"))
    assert iob1.read_bytes() == raw.replace(b"B-", b"I-")
    assert conll.convert(iob1, "bio") == raw


@pytest.mark.parametrize("data, where, bad", [
    (b"a NN I-NP I-PER\xa0\n", ":1:", "U+00A0"),  # latin-1 no-break space glued to the tag
    ("a NN I-NP O\nb NN I-NP B-PER\x00\n".encode(), ":2:", "U+0000"),  # NUL, UTF-8
    ("a NN I-NP I-PER\u200b\r\n".encode(), ":1:", "U+200B"),  # zero-width space, CRLF
    ("#\tu\n1\ta\tI-PER\xa0\tO\n".encode(), ":2:", "U+00A0"),  # GermEval outer tag
    ("#\tu\n1\ta\tO\tB-PER\x00\n".encode(), ":2:", "U+0000"),  # GermEval inner tag
    ("#\tu\n1\ta\tB-PER \tO\n".encode(), ":2:", "U+0020"),  # a space inside a tab column
], ids=["conll-nbsp", "conll-nul", "conll-zwsp", "germeval-outer", "germeval-inner",
        "germeval-space"])
def test_invisible_characters_in_tags(tmp_path, data, where, bad):
    """'I-PER\\xa0' or 'B-PER\\x00' would be types 'PER\\xa0' and 'PER\\x00', scored apart from
    PER and never predicted: an error naming file:line (hand-counted), the tag and the
    character, in CoNLL files (columns split on spaces and tabs only, so a latin-1 no-break
    space stays in the tag) and in both GermEval tag columns."""
    p = tmp_path / "bad.txt"
    p.write_bytes(data)
    with pytest.raises(ValueError) as e:
        conll.read_conll(p)
    assert f"{p}{where} tag " in str(e.value) and bad in str(e.value)


def test_a_germeval_word_with_a_space_writes_a_readable_prediction_file(tmp_path):
    """GermEval's columns are tabs, so "New York" can be one word; in the space-separated
    prediction file it is "New_York", one column, so the file reads back and conlleval scores it
    (a column too many before: read_conll and conlleval refused the file)."""
    src = tmp_path / "ge.tsv"
    src.write_text("#\thttp://x [2009-10-17]\n1\tNew York\tB-LOC\tO\n2\tist\tO\tO\n\n")
    sents = conll.read_conll(str(src))
    assert sents[0].words == ["New York", "ist"]
    (tmp_path / "pred.txt").write_text(conll.conll_text(sents, [s.tags for s in sents]))
    back = conll.read_conll(str(tmp_path / "pred.txt"))
    assert back[0].words == ["New_York", "ist"] and back[0].tags == sents[0].tags
    r = subprocess.run([sys.executable, os.path.join(ROOT, "conlleval.py")],
                       input=(tmp_path / "pred.txt").read_bytes(), capture_output=True)
    assert r.returncode == 0 and b"found: 1 phrases; correct: 1." in r.stdout, r.stderr


@pytest.mark.parametrize("text, where, what", [
    ("#\tu\n1\ta\tO\n", ":2:", r"'1\ta\tO' is not a word line; a GermEval 2014 word line is"),
    ("#\tu\n1\ta\tO\tO\nx\tb\tO\tO\n", ":3:", r"'x\tb\tO\tO' is not a word line"),  # index x
    ("#\tu\n1\t\tO\tO\n", ":2:", r"'1\t\tO\tO' is not a word line"),  # empty word
    ("#\tu\n1\ta\tO\tO\n\n#\tu\n1\tb\tB-\tO\n", ":5:", "'B-' is not O, B-TYPE or I-TYPE"),
    ("#\tu\n1\ta\tO\tX-PER\n", ":2:", "'X-PER' is not O"),
    ("#\tu\n1\ta\tS-PER\tO\n", ":2:", "'S-PER' is not O, B-TYPE or I-TYPE"),  # IOBES
    ("#\tu\n1\ta\tO\tO\tX\n", ":2:", "not a word line"),  # an extra field, not empty
    ("#\tu\n1\ta\tO\tO\t\tX\t\n", ":2:", "not a word line"),  # one after an empty
    ("#\tu\n1\ta\tO\t\n", ":2:", "not a word line"),  # no inner tag, only a tab
    ("#\tu\n1\t\tO\tO\t\n", ":2:", "not a word line"),  # a trailing tab excuses no empty word
    ("#\tu\n#\tv\n", "", "no sentences"),
])
def test_malformed_germeval(tmp_path, text, where, what):
    """Bad GermEval lines get file:line errors as CoNLL ones do (line numbers by hand); both tag
    columns are checked whichever level is read."""
    p = tmp_path / "NER-de-bad.tsv"
    p.write_text(text)
    with pytest.raises(ValueError) as e:
        conll.read_germeval(p, level="inner")
    assert f"{p}{where}" in str(e.value) and what in str(e.value)


@pytest.mark.parametrize("keep, want", [
    (False, ["O", "O", "O", "O", "B-ORG", "I-ORG", "I-ORG", "O", "O", "O", "O"]),
    (True, ["O", "B-LOC", "O", "O", "B-ORG", "I-ORG", "I-ORG", "O", "O", "B-ORG", "O"]),
])
def test_germeval_to_conll_fixture(keep, want):
    """Sentence 2 of NER-de-train.tsv (O B-LOCderiv O O B-ORG I-ORG I-ORG O O B-ORGpart O):
    without keep_deriv_part Kölner and EU-Politik drop to O; with it they become B-LOC, B-ORG.
    Sentence 3's B-OTH I-OTH becomes B-MISC I-MISC either way."""
    sents = conll.read_germeval(GE_TRAIN)
    assert corpora.germeval_to_conll(sents[1].tags, keep) == want
    assert corpora.germeval_to_conll(sents[2].tags, keep)[2:4] == ["B-MISC", "I-MISC"]


@pytest.mark.parametrize("tags, keep, want", [
    (["B-PERderiv", "I-PERderiv", "I-PER"], False, ["O", "O", "B-PER"]),  # I- left: opens with B-
    (["B-LOC", "B-LOCpart"], True, ["B-LOC", "B-LOC"]),  # two spans stay two
    (["B-PER", "I-PERpart"], True, ["B-PER", "B-PER"]),  # I- of another type opened a span
    (["B-OTHderiv", "I-OTHderiv"], True, ["B-MISC", "I-MISC"]),
    (["I-OTH", "O"], False, ["B-MISC", "O"]),
    ([], False, []),
])
def test_germeval_to_conll_by_hand(tags, keep, want):
    """Span by span (conlleval.pl's reading of the input): the output is valid BIO with the
    input's spans, types mapped, dropped ones O; an I- after a dropped B- never continues it."""
    assert corpora.germeval_to_conll(tags, keep) == want


def test_germeval_to_conll_rejects_other_types():
    """A CoNLL type such as MISC is not GermEval's: say so rather than pass it through."""
    with pytest.raises(ValueError, match="'MISC' .* is not a GermEval 2014 type"):
        corpora.germeval_to_conll(["B-MISC"])


def test_stats_germeval():
    """Counted by hand on NER-de-train.tsv (outer level): 2 documents, 3 sentences, 6+11+8 = 25
    words; entities PER 2, LOC 1, LOCderiv 1, ORG 1, ORGpart 1, OTH 1; every entity opens with
    B- -> bio."""
    assert conll.stats(GE_TRAIN) == dict(
        file=GE_TRAIN, format="germeval", documents=2, sentences=3, tokens=25,
        entities=dict(LOC=1, LOCderiv=1, ORG=1, ORGpart=1, OTH=1, PER=2), scheme="bio",
        encoding="utf-8")


def test_convert_germeval(tmp_path, capsysbinary):
    """To IOB1 both tag columns change where a B- opens an entity after O: here every B- of
    the file, on 8 lines (7 outer; 1 inner, Köln on line 16, whose outer I-ORG stays); '#'
    lines, indices and words stay. Back to BIO gives the original bytes."""
    iob1 = tmp_path / "iob1.tsv"
    assert conll.main(["convert", "--to", "iob1", GE_TRAIN]) == 0
    iob1.write_bytes(capsysbinary.readouterr().out)
    old, new = open(GE_TRAIN, encoding="utf-8").read(), iob1.read_text(encoding="utf-8")
    changed = [(a, b) for a, b in zip(old.split("\n"), new.split("\n"), strict=True) if a != b]
    assert len(changed) == 8 and changed[4] == ("7\tKöln\tI-ORG\tB-LOC", "7\tKöln\tI-ORG\tI-LOC")
    assert changed[0] == ("1\tAnna\tB-PER\tO", "1\tAnna\tI-PER\tO")
    assert new.count("B-") == 0 and new.count("I-") == old.count("B-") + old.count("I-")
    assert conll.convert(iob1, "bio") == open(GE_TRAIN, "rb").read()


def test_cli_broken_pipe():
    """`conll.py stats ... | head -1`: the reader leaves after one line, so a later write finds
    the pipe closed. That ends the command quietly, as it does cat and conlleval.py,
    not with "error: [Errno 32] Broken pipe". 1000 files print ~150 KB, more than a pipe holds,
    so the writer is still writing when the reader goes."""
    p = subprocess.Popen([sys.executable, "conll.py", "stats", *[EN] * 1000], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().startswith(EN.encode())
    p.stdout.close()
    err = p.stderr.read()
    p.wait()
    assert err == b"", err
