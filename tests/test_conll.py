"""conll.py: reading CoNLL-2003 files, IOB1 <-> BIO, windows of pieces (Sec 3.1, 3.2), the CLI.

Fixtures (made-up sentences, not the Reuters text):
  conll_en.txt  4 columns, ASCII, IOB1, two documents.
  conll_de.txt  5 columns (word lemma POS chunk NE), latin-1 bytes, CRLF, trailing blanks on one
                line, German -DOCSTART- form, no final newline.
"""
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import urllib.error
import zipfile

import pytest
from seqeval.metrics.sequence_labeling import get_entities

import conll
from conftest import FIXTURES, ROOT

EN = os.path.join(FIXTURES, "conll_en.txt")
DE = os.path.join(FIXTURES, "conll_de.txt")
L2I = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "I-LOC": 4}


class FakeTok:
    """Stand-in for wordpiece.WordPiece: a word of n characters has 1 + (n - 1) % 3 pieces
    ("a" -> 1, "bb" -> 2, "ccc" -> 3, "dddd" -> 1). The k-th new word gets ids 10 + 3k, 11 + 3k, ..."""
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
    """Hand-read from conll_en.txt: 3 sentences (lines 3, 9, 17), documents 0, 0, 1; NE = column 4."""
    got, enc = conll.read_conll_info(EN)
    assert enc == "utf-8"  # ASCII is valid UTF-8
    assert got == [
        sent(["Anna", "Berg", "visited", "Oslo", "."], ["I-PER", "I-PER", "O", "I-LOC", "O"], 0, 3),
        sent(["Teams", ":", "Lakers", "Celtics", "."], ["O", "O", "I-ORG", "B-ORG", "O"], 0, 9),
        sent(["Paris", "Open"], ["I-LOC", "I-MISC"], 1, 17)]


def test_read_german_latin1_crlf():
    """conll_de.txt is latin-1 with CRLF and no final newline: umlauts come back intact, NE is
    column 5 (not column 4, the chunk), the line with trailing blanks parses, one document."""
    got, enc = conll.read_conll_info(DE)
    assert enc == "latin-1"
    assert got == [
        sent(["Jürgen", "Müller", "grüßt", "Köln", "."], ["I-PER", "I-PER", "O", "I-LOC", "O"], 0, 3),
        sent(["Straße", "in", "Düsseldorf"], ["O", "O", "I-LOC"], 0, 9)]


def test_utf8_umlauts_not_taken_for_latin1(tmp_path):
    """The same German text saved as UTF-8 reads as UTF-8 with the same words: the latin-1
    fallback only fires on bytes that are not UTF-8."""
    p = tmp_path / "de_utf8.txt"
    p.write_bytes(open(DE, "rb").read().decode("latin-1").encode("utf-8"))
    got, enc = conll.read_conll_info(p)
    assert enc == "utf-8" and got == conll.read_conll(DE)
    p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())  # a BOM is not part of the first word
    assert conll.read_conll_info(p) == (got, "utf-8-sig")


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
    ("-DOCSTART- -X- O O\n\na NN I-NP O\n\nb NN I-NP E-PER\n", ":5:", "'E-PER'"),
    ("a NN I-NP PER\n", ":1:", "'PER' is not O"),
    ("a NN I-NP B-\n", ":1:", "'B-' is not O"),
    ("a\n", ":1:", "one column"),
    ("", "", "empty file"),
    (" \n\n", "", "empty file"),
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
    with pytest.raises(FileNotFoundError, match="nope.txt: no such file"):
        conll.read_conll(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match=r"conll_de.txt:3: not valid utf-8"):
        conll.read_conll(DE, encoding="utf-8")


# ---------------------------------------------------------------- schemes

@pytest.mark.parametrize("iob1, bio, want", [
    (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], ["B-PER", "I-PER", "B-PER", "O", "B-LOC"],
     {(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")}),
    (["I-ORG", "I-LOC", "I-LOC", "O"], ["B-ORG", "B-LOC", "I-LOC", "O"], {(0, 1, "ORG"), (1, 3, "LOC")}),
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
    """A fresh FakeTok gives "a" -> [10], "bb" -> [13, 14], "c" -> [16]: input [CLS 10 13 14 16 SEP];
    each word's tag id sits on its first piece (positions 1, 2, 4), -100 elsewhere (Figure 1)."""
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
    assert conll.gather(feats, preds, 2)[1] == [L2I[t] for t in tags]


def test_document_context_by_hand():
    """Doc 0 = [a b] [c d e] [f g], doc 1 = [h]; one piece each, max_len 7 (5 pieces). Context is
    added nearest first, left then right: [c d e] -> b c d e f; [a b] has nothing on the left:
    a b c d e; [f g] -> c d e f g; [h] stays alone (other document). Labels only on the centre."""
    sents = [sent("a b".split()), sent("c d e".split()), sent("f g".split(), doc=0), sent(["h"], doc=1)]
    tok = FakeTok()
    feats = conll.featurize(sents, tok, L2I, max_len=7, doc_context=True)
    assert [tok.words(f.input_ids) for f in feats] == [list("abcde"), list("bcdef"), list("cdefg"), ["h"]]
    assert [f.first for f in feats] == [[(0, 1), (1, 2)], [(0, 2), (1, 3), (2, 4)],
                                        [(0, 4), (1, 5)], [(0, 1)]]
    assert feats[1].labels == [-100, -100, 0, 0, 0, -100, -100]
    plain = conll.featurize(sents, tok, L2I, max_len=7)  # off: each sentence alone
    assert [tok.words(f.input_ids) for f in plain] == [s.words for s in sents]


def test_document_context_long_sentence():
    """A 300-word sentence between two short ones, with context: still each word once, every
    window full to the budget or to the document's end."""
    r = random.Random(1)
    sents = [sent(["x"] * 20), sent([f"w{i}" for i in range(300)], [r.choice(list(L2I)) for _ in range(300)]),
             sent(["y"] * 20)]
    feats = conll.featurize(sents, FakeTok(), L2I, max_len=64, doc_context=True)
    assert all(len(f.input_ids) <= 64 for f in feats)
    assert all(len(f.input_ids) >= 62 for f in feats)  # words have at most 3 pieces
    out = conll.gather(feats, [[max(x, 0) for x in f.labels] for f in feats], sents)
    assert out == [[L2I[t] for t in s.tags] for s in sents]


def test_featurize_errors():
    """A word of 3 pieces cannot fit max_len 4 (2 pieces + [CLS]/[SEP]); a tag outside label2id is
    refused; both name the line of the word (sentence line 7 + word index 1 = 8)."""
    with pytest.raises(ValueError, match=r"line 8: word 'ccc' has 3 pieces, more than max_len - 2 = 2"):
        conll.featurize([sent(["a", "ccc"], line=7)], FakeTok(), L2I, max_len=4)
    with pytest.raises(ValueError, match=r"line 8: tag 'B-ORG' is not in label2id"):
        conll.featurize([sent(["a", "b"], ["O", "B-ORG"], line=7)], FakeTok(), L2I)


def test_gather_checks():
    """Predictions come back per word (padded rows allowed); a word predicted twice or never fails."""
    sents = [sent("a bb".split()), sent(["c"])]
    feats = conll.featurize(sents, FakeTok(), L2I)
    rows = [[9, 4, 3, 3, 9, 0, 0], [9, 2, 9, 0]]  # positions 1 and 2 / 1 hold the word predictions
    assert conll.gather(feats, rows, sents) == [[4, 3], [2]]
    with pytest.raises(AssertionError, match="predicted twice"):
        conll.gather(feats + feats[:1], rows + rows[:1], sents)
    with pytest.raises(AssertionError, match="without a prediction"):
        conll.gather(feats[:1], rows[:1], sents)


def test_featurize_matches_hf_tokenizer(minilm_dir):
    """Real WordPiece on the MiniLM vocab against the reference recipe of HF token classification:
    BertTokenizerFast(is_split_into_words=True), label on the first token of each word_id."""
    from transformers import BertTokenizerFast
    from wordpiece import WordPiece
    ref = BertTokenizerFast.from_pretrained(minilm_dir)
    sents = conll.read_conll(EN) + [sent(["Hauptbahnhof", "Zürich", "unbelievably", "(", "1996-08-22", ")"],
                                         ["B-LOC", "I-LOC", "O", "O", "O", "O"])]
    l2i = {t: i for i, t in enumerate(conll.tag_set(sents))}
    feats = conll.featurize(sents, WordPiece.from_pretrained(minilm_dir), l2i)
    for s, f in zip(sents, feats, strict=True):
        enc = ref(s.words, is_split_into_words=True)
        ids = enc.word_ids()
        want = [-100 if w is None or (k and ids[k - 1] == w) else l2i[s.tags[w]] for k, w in enumerate(ids)]
        assert f.input_ids == enc["input_ids"] and f.labels == want


# ---------------------------------------------------------------- writing, files, download

def test_write_conll(tmp_path):
    """'word gold pred' per line, a blank line after each sentence, "-DOCSTART- O O" opening each
    document; it reads back (3 columns, pred last) and leaves no temp file behind."""
    sents = conll.read_conll(EN)
    pred = [["O"] * len(s.words) for s in sents]
    pred[2] = ["I-LOC", "O"]
    out = tmp_path / "pred.txt"
    conll.write_conll(out, sents, pred)
    lines = out.read_text().split("\n")
    assert lines[:5] == ["-DOCSTART- O O", "", "Anna I-PER O", "Berg I-PER O", "visited O O"]
    assert out.read_text().endswith("\n-DOCSTART- O O\n\nParis I-LOC I-LOC\nOpen I-MISC O\n\n")
    assert [s.tags for s in conll.read_conll(out)] == pred and os.listdir(tmp_path) == ["pred.txt"]


def test_splits(tmp_path):
    """Both English namings are found (both at once is ambiguous); German missing -> the message
    says how to pass it."""
    for names in (["train.txt", "valid.txt", "test.txt"], ["eng.train", "eng.testa", "eng.testb"]):
        d = tmp_path / names[0]
        d.mkdir()
        for n in names:
            (d / n).write_text("a X O\n")
        assert conll.splits(d) == dict(train=str(d / names[0]), dev=str(d / names[1]), test=str(d / names[2]))
    with pytest.raises(FileNotFoundError, match=r"deu.train, deu.testa, deu.testb \(make reproduce-de DE_DATA="):
        conll.splits(tmp_path / "train.txt", lang="de")
    for n in ("eng.train", "eng.testa", "eng.testb"):
        (tmp_path / "train.txt" / n).write_text("a X O\n")
    with pytest.raises(FileNotFoundError, match="both naming schemes"):
        conll.splits(tmp_path / "train.txt")
    with pytest.raises(FileNotFoundError, match="DE_DATA"):
        conll.splits(tmp_path / "german", lang="de")
    with pytest.raises(ValueError, match="lang='fr'"):
        conll.splits(tmp_path, lang="fr")


@pytest.fixture
def fake_archive(tmp_path, monkeypatch):
    """A small conll2003.zip (files inside a folder, as some copies have) standing in for the real one."""
    zpath = tmp_path / "conll2003.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for name in ("train.txt", "valid.txt", "test.txt"):
            z.writestr(f"conll2003/{name}", "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\n\nX NN B-NP O\n")
        z.writestr("conll2003/metadata", "not CoNLL")
    monkeypatch.setattr(conll, "EN_COUNTS", {"train.txt": 2, "valid.txt": 2, "test.txt": 2})
    monkeypatch.setattr(conll, "EN_SHA256", hashlib.sha256(zpath.read_bytes()).hexdigest())
    fetched = []

    def fetch(url, dest):
        fetched.append(url)
        shutil.copy(zpath, dest)
    monkeypatch.setattr(conll, "_fetch", fetch)
    return fetched


def test_download_english(tmp_path, fake_archive):
    """Fetched once, checked (sha256, sentence counts), unpacked to cache/conll2003-en; the second
    call uses the cache."""
    d = conll.download_english(tmp_path / "cache")
    assert d == os.path.join(tmp_path, "cache", "conll2003-en") and fake_archive == [conll.EN_URL]
    assert sorted(os.listdir(d)) == ["test.txt", "train.txt", "valid.txt"]
    assert conll.splits(d)["dev"] == os.path.join(d, "valid.txt")
    assert conll.download_english(tmp_path / "cache") == d and len(fake_archive) == 1


def test_download_rejects_bad_archive(tmp_path, fake_archive, monkeypatch):
    """A wrong checksum or wrong sentence counts stop the download, leaving no data folder."""
    monkeypatch.setattr(conll, "EN_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="sha256"):
        conll.download_english(tmp_path / "c1")
    real = hashlib.sha256((tmp_path / "conll2003.zip").read_bytes()).hexdigest()
    monkeypatch.setattr(conll, "EN_SHA256", real)
    monkeypatch.setattr(conll, "EN_COUNTS", {"train.txt": 14041, "valid.txt": 2, "test.txt": 2})
    with pytest.raises(ValueError, match="2 sentences, CoNLL-2003 English has 14041"):
        conll.download_english(tmp_path / "c2")
    assert not os.path.exists(tmp_path / "c1" / "conll2003-en")
    assert os.listdir(tmp_path / "c2") == ["conll2003.zip"]  # no half-checked folder left behind


def test_download_offline(tmp_path, monkeypatch):
    """No network: an OSError that says how to use a local copy."""
    def offline(url, dest):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(conll, "_fetch", offline)
    with pytest.raises(OSError, match=r"could not download .*conll2003.zip.*--data=DIR"):
        conll.download_english(tmp_path)


# ---------------------------------------------------------------- command line

def test_stats_json(capsys):
    """Counts read off the fixtures by hand: en 2 documents, 3 sentences, 5+5+2 words, entities
    PER 1 (Anna Berg), LOC 2, ORG 2 (Lakers | Celtics), MISC 1; all starts use I- -> iob1."""
    conll.main(["stats", "--json", EN, DE])
    en, de = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert en == dict(file=EN, documents=2, sentences=3, tokens=12,
                      entities=dict(LOC=2, MISC=1, ORG=2, PER=1), scheme="iob1", encoding="utf-8")
    assert de == dict(file=DE, documents=1, sentences=2, tokens=8, entities=dict(LOC=2, PER=1),
                      scheme="iob1", encoding="latin-1")


def test_stats_text_with_model(minilm_dir):
    """The command as a user runs it, with a tokenizer: no fixture sentence reaches 128 pieces."""
    out = subprocess.run([sys.executable, "conll.py", "stats", "--model", minilm_dir, EN], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "2 documents, 3 sentences, 12 tokens, scheme iob1, encoding utf-8" in out
    assert "sentences over 128 pieces: 0, over 512: 0" in out


def test_convert_round_trip(tmp_path):
    """to BIO changes only the NE column where an I- opens an entity (5 tags here, by hand); back
    to IOB1 gives the original bytes, which are canonical IOB1."""
    bio, back = tmp_path / "bio.txt", tmp_path / "back.txt"
    conll.main(["convert", "--to", "bio", EN, str(bio)])
    old, new = open(EN).read().split("\n"), bio.read_text().split("\n")
    changed = [(a, b) for a, b in zip(old, new, strict=True) if a != b]
    assert changed == [("Anna NNP I-NP I-PER", "Anna NNP I-NP B-PER"),
                       ("Oslo NNP I-NP I-LOC", "Oslo NNP I-NP B-LOC"),
                       ("Lakers NNPS I-NP I-ORG", "Lakers NNPS I-NP B-ORG"),
                       ("Paris NNP I-NP I-LOC", "Paris NNP I-NP B-LOC"),
                       ("Open NNP I-NP I-MISC", "Open NNP I-NP B-MISC")]
    conll.main(["convert", "--to", "iob1", str(bio), str(back)])
    assert back.read_bytes() == open(EN, "rb").read()


def test_convert_keeps_latin1_crlf(tmp_path):
    """The German fixture to BIO: same bytes (latin-1, CRLF, trailing blanks, no final newline)
    except I-PER -> B-PER on Jürgen, I-LOC -> B-LOC on Köln and Düsseldorf."""
    out = tmp_path / "de.bio"
    conll.convert(DE, out, "bio")
    want = open(DE, "rb").read().replace(b"I-PER\r\nM", b"B-PER\r\nM").replace(b"I-LOC", b"B-LOC")
    assert out.read_bytes() == want

