"""CoNLL-2003 data -> BERT inputs: the data side of the paper (Sec 3.1, 3.2, Figure 1).

Sec 3.1: the English and German CoNLL-2003 files, read in their original IOB1 tags or in BIO (IOB2),
and converted between the two without moving a single entity span (spans as conlleval.pl defines them).
Sec 3.2 / Figure 1: each word is split into WordPiece pieces; the word's tag sits on its first piece
and every other position gets the ignore label -100, as in google-research/bert run_classifier-style
NER fine-tuning. Sentences longer than the model's window are split into overlapping windows and each
word is predicted once, from the window where it has the most context (run_squad.py's
`_check_is_max_context`). Optional document context (Devlin et al. 2019, Sec 5.3) fills a window with
neighbouring sentences; the paper does not use it.

    python conll.py stats [--model bert-base-multilingual-cased] [--json] train.txt valid.txt
    python conll.py convert --to bio eng.train eng.train.bio
"""
import argparse
import collections
import hashlib
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass

DOCSTART = "-DOCSTART-"
IGNORE = -100  # torch cross_entropy's ignore_index: [CLS], [SEP], continuation pieces, context words


@dataclass
class Sentence:
    words: list[str]
    tags: list[str]  # NE tags, one per word (the file's last column)
    doc: int  # index of its document in the file
    line: int  # 1-based line of its first word; word i is on line + i


# ---------------------------------------------------------------- reading

def _decode(path, data, encoding):
    """Bytes -> (text, encoding used). The German originals are ISO-8859-1, the English ones ASCII.

    Strict UTF-8 first: latin-1 bytes like b"M\\xfcller" are almost never valid UTF-8, so the fallback
    only fires on a real latin-1 file and never turns UTF-8 umlauts into mojibake.
    """
    if encoding is None:
        enc = "utf-8-sig" if data.startswith(b"\xef\xbb\xbf") else "utf-8"  # keep a BOM out of word 1
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            return data.decode("latin-1"), "latin-1"  # never fails: every byte is a character
    try:
        return data.decode(encoding), encoding
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not valid {encoding} ({e.reason}); "
                         f"pass the file's real encoding, or None to detect UTF-8/latin-1") from None


def _lines(path, encoding=None):
    """The file's lines (split on \\n only: latin-1 byte 0x85 is a character, not a line break)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        raise ValueError(f"{path}: empty file; expected CoNLL lines 'word ... NE-tag'")
    text, enc = _decode(path, data, encoding)
    return text.split("\n"), enc


def _fields(line):
    """Columns split on spaces/tabs only (a latin-1 non-breaking space may be part of a word)."""
    line = line.strip(" \t\r")
    return re.split(r"[ \t]+", line) if line else []


def _check_tag(tag, path, n):
    prefix, _, kind = tag.partition("-")
    if tag != "O" and not (prefix in ("B", "I") and kind):
        raise ValueError(f"{path}:{n}: tag {tag!r} is not O, B-TYPE or I-TYPE "
                         f"(the NE tag must be the last column)")


def _parse(lines, path):
    """Lines -> sentences. -DOCSTART- lines (any column form) open a new document and are never words;
    blank lines end a sentence. Sentences before the first -DOCSTART- form document 0."""
    out, words, tags, first, ncols = [], [], [], 0, None
    doc, begun = 0, False  # begun: the current document has a -DOCSTART- or a word
    for n, line in enumerate(lines + [""], start=1):  # a final "" flushes a file with no last newline
        cols = _fields(line)
        if not cols or cols[0] == DOCSTART:
            if words:
                out.append(Sentence(words, tags, doc, first))
                words, tags = [], []
            if cols:
                doc, begun = doc + begun, True
            continue
        begun = True
        if ncols is None:  # the first word line fixes the layout: 4 (English) or 5 (German) columns
            ncols, first_line = len(cols), n
            if ncols < 2:
                raise ValueError(f"{path}:{n}: one column; a word line needs 'word ... NE-tag'")
        if len(cols) != ncols:
            raise ValueError(f"{path}:{n}: {len(cols)} columns, but line {first_line} has {ncols}; "
                             f"every word line needs the same columns")
        _check_tag(cols[-1], path, n)
        if not words:
            first = n
        words.append(cols[0])
        tags.append(cols[-1])
    if not out:
        raise ValueError(f"{path}: no sentences, only blank or -DOCSTART- lines")
    return out


def read_conll_info(path, encoding=None):
    """-> (sentences, encoding used), e.g. ([Sentence(["EU", "rejects"], ["I-ORG", "O"], 0, 3)], "utf-8")."""
    lines, enc = _lines(path, encoding)
    return _parse(lines, path), enc


def read_conll(path, encoding=None):
    """English (word POS chunk NE) or German (word lemma POS chunk NE) CoNLL-2003 -> list[Sentence]."""
    return read_conll_info(path, encoding)[0]


# ---------------------------------------------------------------- tagging schemes (Sec 3.1)

def spans(tags):
    """Entity spans as conlleval.pl reads them, in IOB1 or BIO alike: {(start, end_exclusive, type)}.

    ["I-PER", "I-PER", "B-PER", "O", "B-LOC"] -> {(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")}
    """
    out, start = set(), None
    for i, tag in enumerate([*tags, "O"]):
        kind = tag[2:]
        prev = tags[i - 1][2:] if i else ""
        # conlleval.pl startOfChunk: B- always starts; I- starts after O or another type
        begins = tag != "O" and (tag[0] == "B" or kind != prev)
        if start is not None and (tag == "O" or begins):  # endOfChunk at the same place
            out.add((start, i, prev))
            start = None
        if begins:
            start = i
    return out


def to_bio(tags):
    """Every entity opens with B- (IOB2). ["I-PER", "I-PER", "B-PER", "O", "I-LOC"] ->
    ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]: an I- that starts a span becomes B-."""
    return ["B" + t[1:] if t[0] == "I" and (i == 0 or tags[i - 1][2:] != t[2:]) else t
            for i, t in enumerate(tags)]


def to_iob1(tags):
    """B- only where an entity directly follows one of the same type (IOB1, the original CoNLL-2003).
    ["B-PER", "I-PER", "B-PER", "O", "B-LOC"] -> ["I-PER", "I-PER", "B-PER", "O", "I-LOC"].

    Real data: two B- in the English eng.train follow no entity of their type (IOB1 allows only I-
    there); to_iob1 writes them as I-, so canonical IOB1 is to_iob1(to_bio(x)), with the same spans.
    """
    return ["I" + t[1:] if t[0] == "B" and (i == 0 or tags[i - 1][2:] != t[2:]) else t
            for i, t in enumerate(tags)]


def to_scheme(tags, scheme):
    """to_bio or to_iob1 by name: the one place a scheme name picks its converter."""
    if scheme not in ("bio", "iob1"):
        raise ValueError(f"scheme {scheme!r}: expected 'bio' or 'iob1'")
    return to_bio(tags) if scheme == "bio" else to_iob1(tags)


def detect_scheme(tag_seqs):
    """"iob1" or "bio", by a vote over entities that start after O, another type or the sentence start:
    BIO opens all of them with B-, IOB1 with I-. More B- than I- -> "bio"; otherwise (also no such
    entity, or no entity at all: then both schemes write the same tags) -> "iob1".

    A vote, not "any B- after O means BIO": the English eng.train is IOB1 with two stray B- tags.
    """
    votes = collections.Counter()
    for tags in tag_seqs:
        for i, t in enumerate(tags):
            if t != "O" and (i == 0 or tags[i - 1][2:] != t[2:]):
                votes[t[0]] += 1
    return "bio" if votes["B"] > votes["I"] else "iob1"


def tag_set(sentences):
    """Sorted labels, O first: ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]. Index = label id."""
    kinds = sorted({t[2:] for s in sentences for t in s.tags if t != "O"})
    return ["O"] + [p + k for k in kinds for p in ("B-", "I-")]


# ---------------------------------------------------------------- files: splits, download, writing

SPLIT_NAMES = {"en": [("train.txt", "valid.txt", "test.txt"), ("eng.train", "eng.testa", "eng.testb")],
               "de": [("deu.train", "deu.testa", "deu.testb")]}


def splits(data_dir, lang="en"):
    """{"train", "dev", "test"} -> paths in data_dir: train.txt/valid.txt/test.txt or eng.train/
    eng.testa/eng.testb (English), deu.train/deu.testa/deu.testb (German)."""
    if lang not in SPLIT_NAMES:
        raise ValueError(f"lang={lang!r}: expected 'en' or 'de'")
    how = ("German CoNLL-2003 is licensed, so it is never downloaded: pass the folder holding "
           "deu.train, deu.testa, deu.testb (make reproduce-de DE_DATA=/path/to/folder)" if lang == "de"
           else "pass a folder with train.txt/valid.txt/test.txt or eng.train/eng.testa/eng.testb")
    if not data_dir or not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{data_dir}: no such folder; {how}")
    found = [names for names in SPLIT_NAMES[lang]
             if all(os.path.isfile(os.path.join(data_dir, n)) for n in names)]
    if len(found) != 1:
        why = "has both naming schemes, keep one" if found else "lacks some of the files"
        raise FileNotFoundError(f"{data_dir}: {why}; {how}")
    return dict(zip(("train", "dev", "test"), (os.path.join(data_dir, n) for n in found[0])))


# The archive HF datasets' conll2003 script used (BIO tags, train.txt/valid.txt/test.txt); its sha256
# and size are those recorded in huggingface/datasets datasets/conll2003/dataset_infos.json.
EN_URL = "https://data.deepai.org/conll2003.zip"
EN_SHA256 = "96a104d174ddae7558bab603f19382c5fe02ff1da5c077a7f3ce2ced1578a2c3"
EN_COUNTS = {"train.txt": 14041, "valid.txt": 3250, "test.txt": 3453}  # sentences (Tjong Kim Sang 2003)


def _fetch(url, dest):
    """Download url to dest (a separate function so tests can replace the network)."""
    req = urllib.request.Request(url, headers={"User-Agent": "mbert-ner"})  # some CDNs refuse urllib's default
    with urllib.request.urlopen(req, timeout=60) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f)


def _check_counts(data_dir, cache_dir):
    for name, want in EN_COUNTS.items():
        got = len(read_conll(os.path.join(data_dir, name)))
        if got != want:
            raise ValueError(f"{os.path.join(data_dir, name)}: {got} sentences, CoNLL-2003 English has "
                             f"{want}; empty {cache_dir} to download again, or pass --data=DIR")


def download_english(cache_dir):
    """Fetch, verify and unpack the English CoNLL-2003 archive once; -> cache_dir/conll2003-en."""
    out = os.path.join(cache_dir, "conll2003-en")
    if all(os.path.isfile(os.path.join(out, n)) for n in EN_COUNTS):
        _check_counts(out, cache_dir)
        return out
    os.makedirs(cache_dir, exist_ok=True)
    zpath = os.path.join(cache_dir, "conll2003.zip")
    try:
        _fetch(EN_URL, zpath + ".part")
    except OSError as e:  # urllib's URLError is an OSError: offline, DNS, HTTP error
        raise OSError(f"could not download {EN_URL} ({e}). Offline? Unzip a copy of conll2003.zip "
                      f"(train.txt, valid.txt, test.txt) anywhere and pass --data=DIR") from e
    with open(zpath + ".part", "rb") as f:
        got = hashlib.sha256(f.read()).hexdigest()
    if got != EN_SHA256:
        raise ValueError(f"{zpath}.part: sha256 {got}, expected {EN_SHA256}; the archive changed "
                         f"upstream: check it by hand, unzip it and pass --data=DIR")
    os.replace(zpath + ".part", zpath)
    tmp = tempfile.mkdtemp(dir=cache_dir)
    try:
        with zipfile.ZipFile(zpath) as z:  # members by base name: we write fixed names, not zip paths
            members = {os.path.basename(m): m for m in z.namelist()}
            for name in EN_COUNTS:
                if name not in members:
                    raise ValueError(f"{zpath}: no {name} inside; pass --data=DIR with the three files")
                with z.open(members[name]) as src, open(os.path.join(tmp, name), "wb") as dst:
                    shutil.copyfileobj(src, dst)
        _check_counts(tmp, cache_dir)
        os.replace(tmp, out)  # the folder appears only once it is complete and checked
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful os.replace
    return out


def _write_atomic(path, text, encoding="utf-8"):
    """Write to a temp file in the same folder, then rename: a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
        f.write(text)
    os.replace(tmp, path)


def write_conll(path, sentences, pred_tags, docstart=True):
    """"word gold pred" lines for conlleval, a blank line after each sentence. With docstart, each
    document opens with "-DOCSTART- O O" + blank line, as in the CoNLL-2003 files: conlleval.pl
    counts it as one O token (eng.testb: 46435 words + 231 = its "processed 46666 tokens"), no span.
    Tags are written as given: convert predictions to the gold file's scheme first."""
    assert len(pred_tags) == len(sentences), f"{len(pred_tags)} predictions for {len(sentences)} sentences"
    out, doc = [], None
    for s, pred in zip(sentences, pred_tags):
        assert len(pred) == len(s.words), f"line {s.line}: {len(pred)} tags for {len(s.words)} words"
        if docstart and s.doc != doc:
            out.append(f"{DOCSTART} O O\n\n")
        doc = s.doc
        out.extend(f"{w} {g} {p}\n" for w, g, p in zip(s.words, s.tags, pred))
        out.append("\n")
    _write_atomic(path, "".join(out))


# ---------------------------------------------------------------- features (Sec 3.2, Figure 1)

@dataclass
class Feature:
    input_ids: list[int]  # [CLS] pieces [SEP]; segment ids are all 0
    labels: list[int]  # label id at the first piece of each word in `first`, -100 elsewhere
    sent: int  # index of the sentence in the list given to featurize
    first: list[tuple[int, int]]  # (word index in the sentence, position of its first piece)


def _windows(pre, t0, t1, budget):
    """Word ranges [a, b) covering words t0..t1-1, each at most `budget` pieces; the next window
    starts at the word half-way (in pieces) through this one, so they overlap by about half."""
    out, a = [], t0
    while True:
        b = a
        while b < t1 and pre[b + 1] - pre[a] <= budget:
            b += 1
        assert b > a, f"word {a} alone is over the budget (featurize checks this first)"
        out.append((a, b))
        if b == t1:
            return out
        half = (pre[a] + pre[b]) / 2  # piece offset of the window's middle
        a = next(i for i in range(a + 1, b + 1) if pre[i] >= half)


def _widen(pre, a, b, budget):
    """Document context: add whole words left and right of [a, b), nearest first and alternating,
    while they fit; pre spans the document, so context never crosses into another one."""
    grow = True
    while grow:
        grow = False
        if a > 0 and pre[b] - pre[a - 1] <= budget:
            a, grow = a - 1, True
        if b < len(pre) - 1 and pre[b + 1] - pre[a] <= budget:
            b, grow = b + 1, True
    return a, b


def _owners(pre, wins, t0, t1):
    """Window index that predicts each word t0..t1-1: the one where min(left, right) context in
    pieces is largest, ties to the longer window, then the first (run_squad.py _check_is_max_context)."""
    best, owner = {}, {}
    for w, (a, b) in enumerate(wins):
        for i in range(max(a, t0), min(b, t1)):
            score = (min(pre[i] - pre[a], pre[b] - pre[i + 1]), pre[b] - pre[a])
            if i not in best or score > best[i]:
                best[i], owner[i] = score, w
    assert sorted(owner) == list(range(t0, t1)), "a word is in no window"
    return owner


def _check_fits(s, pieces, label2id, max_len):
    """Bad input, named by line (word i of a sentence is on line s.line + i)."""
    for i, (word, tag, p) in enumerate(zip(s.words, s.tags, pieces)):
        if tag not in label2id:
            raise ValueError(f"line {s.line + i}: tag {tag!r} is not in label2id "
                             f"(build it from all splits, e.g. with tag_set)")
        if len(p) > max_len - 2:  # rare: a CoNLL word can hold several basic tokens, each up to 100 pieces
            raise ValueError(f"line {s.line + i}: word {word!r} has {len(p)} pieces, more than "
                             f"max_len - 2 = {max_len - 2}; raise max_len")


def _features(k, labels, pieces, pre, wins, t0, tok):
    """One Feature per window that predicts some word of sentence k (words t0.. of the stream)."""
    owner = _owners(pre, wins, t0, t0 + len(labels))
    feats = []
    for w, (a, b) in enumerate(wins):
        ids = [tok.cls_id] + [p for word in pieces[a:b] for p in word] + [tok.sep_id]
        first = [(i - t0, 1 + pre[i] - pre[a]) for i in range(t0, t0 + len(labels)) if owner[i] == w]
        lab = [IGNORE] * len(ids)
        for i, pos in first:
            lab[pos] = labels[i]  # Figure 1: the tag goes on the word's first piece
        if first:  # a window whose words are all better predicted elsewhere adds nothing
            feats.append(Feature(ids, lab, k, first))
    return feats


def featurize(sentences, tok, label2id, max_len=128, doc_context=False):
    """Sentences -> Features of at most max_len pieces, [CLS]/[SEP] included; every word is labelled
    in exactly one. label2id={"O": 0, "B-PER": 1, "I-PER": 2}, Sentence(["Ann", "Lee", "ran"],
    ["B-PER", "I-PER", "O"]) with "Lee" -> 2 pieces: input_ids [CLS a l1 l2 r SEP],
    labels [-100, 1, 2, -100, 0, -100], first [(0, 1), (1, 2), (2, 4)].
    doc_context: fill the rest of each window with the sentence's document (unlabelled); the paper
    does not; Devlin et al. (Sec 5.3) do."""
    if max_len < 3:
        raise ValueError(f"max_len={max_len}: needs room for [CLS], one piece and [SEP]")
    feats = []
    # a stream is one sentence, or with doc_context a run of sentences of one document
    for _, run in itertools.groupby(range(len(sentences)), lambda j: sentences[j].doc if doc_context else j):
        run = list(run)
        pieces = [p for j in run for p in tok.encode_words(sentences[j].words)]
        pre = list(itertools.accumulate((len(p) for p in pieces), initial=0))  # piece offsets
        assert all(pieces), "encode_words gave a word no pieces (it should give [unk_id])"
        t0 = 0
        for j in run:
            s, t1 = sentences[j], t0 + len(sentences[j].words)
            _check_fits(s, pieces[t0:t1], label2id, max_len)
            wins = _windows(pre, t0, t1, max_len - 2)
            if doc_context:
                wins = [_widen(pre, a, b, max_len - 2) for a, b in wins]
            feats += _features(j, [label2id[t] for t in s.tags], pieces, pre, wins, t0, tok)
            t0 = t1
    return feats


def gather(features, preds, sentences):
    """Per-position predictions, one row per feature (rows may be padded past len(input_ids)) ->
    per-sentence per-word label ids. `sentences`: the list given to featurize (or just its length).
    Rows may be tensors; plain lists (tensor.tolist()) index faster."""
    n = sentences if isinstance(sentences, int) else len(sentences)
    got = [{} for _ in range(n)]
    assert len(preds) == len(features), f"{len(preds)} prediction rows for {len(features)} features"
    for f, row in zip(features, preds):
        assert len(row) >= len(f.input_ids), f"sentence {f.sent}: prediction row shorter than input"
        for i, pos in f.first:
            assert i not in got[f.sent], f"sentence {f.sent}: word {i} predicted twice"
            got[f.sent][i] = int(row[pos])
    out = []
    for k, g in enumerate(got):
        want = len(g) if isinstance(sentences, int) else len(sentences[k].words)
        assert sorted(g) == list(range(want)), f"sentence {k}: words without a prediction"
        out.append([g[i] for i in range(want)])
    return out


# ---------------------------------------------------------------- command line

def stats(path, tok=None):
    """One file's counts: documents, sentences, tokens, entities per type, scheme, encoding."""
    sents, enc = read_conll_info(path)
    ents = collections.Counter(kind for s in sents for _, _, kind in spans(s.tags))
    out = dict(file=path, documents=len({s.doc for s in sents}), sentences=len(sents),
               tokens=sum(len(s.words) for s in sents), entities=dict(sorted(ents.items())),
               scheme=detect_scheme(s.tags for s in sents), encoding=enc)
    if tok is not None:  # pieces incl. [CLS]/[SEP], as featurize counts them
        n = [2 + sum(len(p) for p in tok.encode_words(s.words)) for s in sents]
        out.update(over_128=sum(x > 128 for x in n), over_512=sum(x > 512 for x in n))
    return out


def convert(src, dst, to):
    """Rewrite only the NE column (last) to `to` ("bio" or "iob1"); every other byte stays, the
    file keeps its encoding, -DOCSTART- lines, blank lines and line ends."""
    lines, enc = _lines(src)
    for s in _parse(lines, src):
        for i, tag in enumerate(to_scheme(s.tags, to)):
            n = s.line - 1 + i  # a sentence's words are on consecutive lines
            m = re.fullmatch(r"(.*[ \t])([^ \t\r]+)([ \t\r]*)", lines[n])
            assert m and m.group(2) == s.tags[i], f"{src}:{n + 1}: line and parse disagree"
            lines[n] = m.group(1) + tag + m.group(3)
    _write_atomic(dst, "\n".join(lines), enc)  # utf-8-sig writes back the BOM it stripped


def main(argv=None):
    ap = argparse.ArgumentParser(description="CoNLL-2003 files: statistics and IOB1/BIO conversion")
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("stats", help="documents, sentences, tokens, entities, scheme, encoding")
    st.add_argument("--model", help="BERT folder or Hub id: also count sentences over 128/512 pieces")
    st.add_argument("--json", action="store_true", help="one JSON object per file per line")
    st.add_argument("files", nargs="+")
    cv = sub.add_parser("convert", help="rewrite the NE column in another scheme")
    cv.add_argument("--to", choices=("bio", "iob1"), required=True)
    cv.add_argument("src")
    cv.add_argument("dst")
    args = ap.parse_args(argv)
    if args.cmd == "convert":
        return convert(args.src, args.dst, args.to)
    tok = None
    if args.model:
        from wordpiece import WordPiece  # only needed for piece counts
        tok = WordPiece.from_pretrained(args.model)
    for path in args.files:
        d = stats(path, tok)
        if args.json:
            print(json.dumps(d))
            continue
        print(f"{path}: {d['documents']} documents, {d['sentences']} sentences, {d['tokens']} tokens, "
              f"scheme {d['scheme']}, encoding {d['encoding']}")
        print("  entities: " + ", ".join(f"{k} {v}" for k, v in d["entities"].items()))
        if tok is not None:
            print(f"  sentences over 128 pieces: {d['over_128']}, over 512: {d['over_512']}")


if __name__ == "__main__":
    sys.exit(main())
