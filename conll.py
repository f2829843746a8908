"""CoNLL-2003 data -> BERT inputs: the data side of the paper (Sec 3.1, 3.2, Figure 1).

Sec 3.1: the English and German CoNLL-2003 files, read in their original IOB1 tags or in BIO
(IOB2), and converted between the two without moving a single entity span (spans as conlleval.pl
defines them). GermEval 2014 (Benikova et al. 2014, CC-BY: NER-de-{train,dev,test}.tsv, BIO, outer
and inner level) reads into the same sentences. Words-only files (one column) read too,
marked gold=False. Where the files are, and downloading the free ones, is corpora.py's.
Encoding: a file that is valid UTF-8 is UTF-8; one with no multi-byte UTF-8 sequence at all is
latin-1 (the German deu.* files); one with both UTF-8 and invalid bytes is an error, never mojibake.

Sec 3.2 / Figure 1: each word is split into WordPiece pieces; the word's tag sits on its first
piece and every other position gets the ignore label -100, as in google-research/bert
run_classifier-style NER fine-tuning. Sentences longer than the model's window are split into
overlapping windows and each word is predicted once, from the window where it has the most
context (run_squad.py's `_check_is_max_context`). Optional document context, BERT Sec 5.3
(Devlin et al. 2019), fills a window with neighbouring sentences; the paper does not use it.

    python conll.py stats [--model bert-base-multilingual-cased] [--json] train.txt valid.txt
    python conll.py convert --to bio eng.train eng.train.bio
    python conll.py stats --encoding latin-1 deu.train      # GermEval .tsv files are detected
"""
import argparse
import codecs
import collections
import itertools
import json
import os
import re
import sys
from dataclasses import dataclass

import atomic

DOCSTART = "-DOCSTART-"
# A byte-order mark opening a line is never part of a word. _decode drops the file's first; files
# saved with one and joined with `cat` have more, which the readers skip and convert keeps.
BOM = "\ufeff"


def unmarked(line):
    """`line` without the byte-order marks at its start, in either reading: U+FEFF (UTF-8) or
    "\u00ef\u00bb\u00bf" (its bytes read as latin-1 or cp1252). A mark is never part of a word,
    at a file's start or at a line's (files joined with cat); the bytes on disk stay as they are."""
    return re.sub("^(?:\ufeff|\u00ef\u00bb\u00bf)+", "", line)
IGNORE = -100  # torch cross_entropy's ignore_index: [CLS], [SEP], continuation pieces, context


@dataclass
class Sentence:
    words: list[str]
    tags: list[str]  # NE tags, one per word (the file's last column); all "O" if not gold
    doc: int  # index of its document in the file
    line: int  # 1-based line of its first word; word i is on line + i
    gold: bool = True  # False for words-only (one-column) input: the "O" tags are placeholders


def has_gold(sentences):
    """True if the sentences carry gold tags, False for words-only input (Sentence.gold)."""
    return all(s.gold for s in sentences)


# ---------------------------------------------------------------- reading

def decode(path, data, encoding):
    """Bytes -> (text, encoding used). CoNLL-2003 German is latin-1 (ISO-8859-1), English ASCII,
    GermEval 2014 UTF-8. With encoding=None: valid UTF-8 -> "utf-8" ("utf-8-sig" drops a BOM);
    no valid multi-byte UTF-8 sequence at all -> "latin-1" (b"M\\xfcller" -> "Müller"); UTF-8
    sequences *and* invalid bytes -> ValueError, as either reading garbles part of the file
    (UTF-8 "Müller" read as latin-1 is "MÃ¼ller"). A given UTF-8 (utf8, UTF_8, ...) drops a BOM
    as detection does.
    """
    if encoding is not None:
        try:
            text = data.decode(encoding)
        except LookupError:
            raise ValueError(f"{path}: unknown encoding {encoding!r}; pass e.g. utf-8 or "
                             f"latin-1") from None
        except UnicodeDecodeError as e:
            line = data[:e.start].count(b"\n") + 1
            raise ValueError(f"{path}:{line}: not valid {encoding} ({e.reason}); pass the file's "
                             f"real encoding, or leave it out to detect UTF-8/latin-1") from None
        if codecs.lookup(encoding).name == "utf-8" and text.startswith(BOM):
            return text[1:], "utf-8-sig"  # as detection does, so convert writes the BOM back
        return text, encoding
    text = data.decode("utf-8", errors="surrogateescape")  # invalid byte b -> U+DC00 + b
    bad = re.search(r"[\udc80-\udcff]", text)
    if bad is None:  # keep a BOM out of word 1; writing back with utf-8-sig restores it
        return (text[1:], "utf-8-sig") if text.startswith(BOM) else (text, "utf-8")
    # a valid multi-byte sequence; a byte-order mark is none (a latin-1 body behind one is latin-1)
    good = re.search(r"[^\x00-\x7f\udc80-\udcff]", re.sub(r"(?:^|(?<=\n))\ufeff", "", text))
    if good is None:
        return data.decode("latin-1"), "latin-1"  # never fails: every byte is a character
    at, seen = (text[:m.start()].count("\n") + 1 for m in (bad, good))
    raise ValueError(f"{path}:{at}: byte 0x{ord(bad.group()) - 0xdc00:02x} is not valid UTF-8, "
                     f"but the file has UTF-8 elsewhere (line {seen}); fix the byte if the file "
                     f"is UTF-8, or read every byte as latin-1: predict and conll.py take "
                     f"--encoding latin-1; for training, convert the file to UTF-8 (iconv -f "
                     f"latin-1 -t utf-8)")


def _lines(path, encoding=None):
    """The file's lines (split on \\n only: latin-1 byte 0x85 is a character, not a line break).
    A \\r inside a line is an error: with old Mac (CR-only) line ends the file is one line, its
    words one sentence tagged by the last column. CRLF's \\r ends a line, the readers strip it."""
    if os.path.isdir(path):
        raise ValueError(f"{path}: a folder; pass a file")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        data = f.read()
    if not data.strip():
        raise ValueError(f"{path}: empty file; expected CoNLL lines 'word ... NE-tag'")
    text, enc = decode(path, data, encoding)
    lines = text.split("\n")
    for n, line in enumerate(lines, start=1):
        if "\r" in line.rstrip(" \t\r"):
            raise ValueError(f"{path}:{n}: a carriage return (\\r) inside the line: the file has "
                             f"old Mac (CR-only) line endings; convert them to \\n")
    return lines, enc


def _fields(line):
    """Columns split on spaces/tabs only (a latin-1 non-breaking space may be part of a word)."""
    line = unmarked(line).strip(" \t\r")
    return re.split(r"[ \t]+", line) if line else []


def check_tag(tag, path, n, where="the NE tag must be the last column"):
    """O, B-TYPE or I-TYPE (IOB1 and BIO use only these), TYPE printable with no space; anything
    else is an error at path:n. An invisible character would make a type of its own, scored
    apart and never predicted: "I-PER\\xa0" (a latin-1 no-break space, which the CoNLL reader
    keeps in the column) is type "PER\\xa0", not PER."""
    prefix, _, kind = tag.partition("-")
    if prefix in ("S", "E") and kind:
        raise ValueError(f"{path}:{n}: tag {tag!r} is IOBES; convert IOBES to BIO first "
                         f"(S- -> B-, E- -> I-)")
    if tag != "O" and not (prefix in ("B", "I") and kind):
        raise ValueError(f"{path}:{n}: tag {tag!r} is not O, B-TYPE or I-TYPE ({where})")
    # isprintable() is False for control and format characters and every whitespace but " "
    if not kind.isprintable() or " " in kind:
        bad = next(c for c in kind if c == " " or not c.isprintable())
        raise ValueError(f"{path}:{n}: tag {tag!r}: its type holds U+{ord(bad):04X}, a space "
                         f"or an invisible character, which would make {kind!r} a type of its "
                         f"own; delete the character")


def _parse(lines, path):
    """Lines -> sentences. -DOCSTART- lines (any column form) open a new document and are never
    words; blank lines end a sentence. Sentences before the first -DOCSTART- form document 0.
    A one-column file is words only: tags all "O", gold=False."""
    out = []
    words, tags = [], []  # of the sentence being read
    first = 0  # the line of its first word
    ncols = None  # word line columns: 4 (English), 5 (German) or 1 (words only)
    doc = 0
    begun = False  # the current document has a -DOCSTART- or a word
    for n, line in enumerate(lines + [""], start=1):  # a final "" flushes a last line with no \n
        cols = _fields(line)
        if not cols or cols[0] == DOCSTART:
            if words:
                out.append(Sentence(words, tags, doc, first, gold=ncols > 1))
                words, tags = [], []
            if cols:
                doc, begun = doc + begun, True
            continue
        begun = True
        if ncols is None:  # the first word line fixes the layout
            ncols, first_line = len(cols), n
        if len(cols) != ncols:
            raise ValueError(f"{path}:{n}: {len(cols)} columns, but line {first_line} has "
                             f"{ncols}; every word line needs the same columns")
        if ncols > 1:
            check_tag(cols[-1], path, n)
        if not words:
            first = n
        words.append(cols[0])
        tags.append(cols[-1] if ncols > 1 else "O")
    if not out:
        raise ValueError(f"{path}: no sentences, only blank or -DOCSTART- lines")
    return out


# GermEval 2014 (Benikova et al. 2014): "#\tURL [date]" opens each sentence, then word lines
# "index<TAB>word<TAB>outer<TAB>inner" in BIO over 12 types (PER, LOC, ORG, OTH, each also
# ...deriv and ...part), a blank line after each sentence, UTF-8.
GERMEVAL_LEVELS = {"outer": 2, "inner": 3}  # level -> its column
GERMEVAL_LINE = "a GermEval 2014 word line is 'index<TAB>word<TAB>outer<TAB>inner'"


def _germeval_row(line):
    """A GermEval line without its BOM, line end and trailing blanks. The official
    NER-de-test.tsv has a word line '1\\t"\\tO\\tO\\t', a fifth field that is empty (HF's
    germeval_14 loader reads row[:4] and never sees it); a fifth field that is not empty, or a
    missing fourth, stays an error."""
    return unmarked(line).rstrip(" \t\r")


def _is_germeval(lines):
    """The first non-blank line is a '#' comment and the first word line has 4 tab-separated
    columns, the first an integer. CoNLL-2003 files open with -DOCSTART- or a word line."""
    rows = (_germeval_row(x) for x in lines)
    rows = (x for x in rows if x.strip())
    if not next(rows, "").startswith("#"):
        return False
    cols = next((x for x in rows if not x.startswith("#")), "").split("\t")
    return len(cols) == 4 and cols[0].isdigit()


def _check_germeval(cols, path, n):
    if len(cols) != 4:
        raise ValueError(f"{path}:{n}: {len(cols)} tab-separated columns; {GERMEVAL_LINE}")
    if not cols[0].isdigit() or not cols[1]:
        what = f"index {cols[0]!r} is not an integer" if cols[1] else "empty word"
        raise ValueError(f"{path}:{n}: {what}; {GERMEVAL_LINE}")
    for tag in cols[2:]:
        check_tag(tag, path, n, "columns 3 and 4 hold the outer and inner BIO tags")


def _parse_germeval(lines, path, level):
    """GermEval lines -> sentences of one level. Consecutive sentences whose '#' lines name the
    same source URL form one document (Sentence.doc), so doc_context stays within an article."""
    if level not in GERMEVAL_LEVELS:
        raise ValueError(f"level={level!r}: expected 'outer' or 'inner'")
    out = []
    words, tags = [], []  # of the sentence being read
    first = 0  # the line of its first word
    doc = 0
    url = None  # the source URL of the current document
    for n, line in enumerate(lines + [""], start=1):
        line = _germeval_row(line)
        if not line.strip() or line.startswith("#"):
            if words:
                out.append(Sentence(words, tags, doc, first))
                words, tags = [], []
            if line.startswith("#"):  # "#\thttp://de.wikipedia.org/wiki/X [2009-10-17]" -> URL
                src = line[1:].strip().rsplit(" [", 1)[0]
                if url is not None and src != url:
                    doc += 1
                url = src
            continue
        cols = line.split("\t")
        _check_germeval(cols, path, n)
        if not words:
            first = n
        words.append(cols[1])
        tags.append(cols[GERMEVAL_LEVELS[level]])
    if not out:
        raise ValueError(f"{path}: no sentences, only '#' or blank lines")
    return out


def read_conll_info(path, encoding=None):
    """-> (sentences, encoding used, format: "conll", "words" (one column) or "germeval"), e.g.
    ([Sentence(["EU", "rejects"], ["I-ORG", "O"], 0, 3)], "utf-8", "conll")."""
    lines, enc = _lines(path, encoding)
    if _is_germeval(lines):
        return _parse_germeval(lines, path, "outer"), enc, "germeval"
    sents = _parse(lines, path)
    return sents, enc, "conll" if has_gold(sents) else "words"


def read_conll(path, encoding=None):
    """English (word POS chunk NE) or German (word lemma POS chunk NE) CoNLL-2003 -> sentences.
    Also: words-only files (one column: tags all "O", Sentence.gold False, see has_gold) and
    GermEval 2014 files (detected by layout; the outer level, read_germeval for the inner)."""
    return read_conll_info(path, encoding)[0]


def has_docstart(path, encoding=None):
    """Whether a CoNLL file holds -DOCSTART- lines (predict writes them back only then)."""
    lines, _ = _lines(path, encoding)
    return any(_fields(x)[:1] == [DOCSTART] for x in lines)


def read_germeval(path, level="outer", encoding=None):
    """GermEval 2014 .tsv -> sentences with the outer (column 3) or inner (column 4) BIO tags:
    "1\\tAnna\\tB-PER\\tO" -> word "Anna", tag "B-PER" (outer) or "O" (inner)."""
    lines, _ = _lines(path, encoding)
    return _parse_germeval(lines, path, level)


# ---------------------------------------------------------------- tagging schemes (Sec 3.1)

def opens(tags, i):
    """Would an I- at i open an entity? Yes where tags[i] is not O and follows O, another type
    or the sentence start: conlleval.pl's startOfChunk for IOB1/BIO (where a B- opens one
    anywhere). ["O", "I-PER", "I-PER", "B-PER", "I-LOC"] -> True at 1 and 4 only."""
    return tags[i] != "O" and (i == 0 or tags[i - 1][2:] != tags[i][2:])


def spans(tags):
    """Entity spans as conlleval.pl reads them, in IOB1 or BIO alike: {(start, end_excl, type)}.

    ["I-PER", "I-PER", "B-PER", "O", "B-LOC"] -> {(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")}
    """
    out, start = set(), None
    tags = [*tags, "O"]
    for i, tag in enumerate(tags):
        begins = tag[0] == "B" or opens(tags, i)  # conlleval.pl startOfChunk
        if start is not None and (tag == "O" or begins):  # endOfChunk at the same place
            out.add((start, i, tags[i - 1][2:]))
            start = None
        if begins:
            start = i
    return out


def to_bio(tags):
    """Every entity opens with B- (IOB2). ["I-PER", "I-PER", "B-PER", "O", "I-LOC"] ->
    ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]: an I- that starts a span becomes B-."""
    return ["B" + t[1:] if t[0] == "I" and opens(tags, i) else t for i, t in enumerate(tags)]


def to_iob1(tags):
    """B- only where an entity directly follows one of the same type (IOB1, the original
    CoNLL-2003). ["B-PER", "I-PER", "B-PER", "O", "B-LOC"] -> ["I-PER", "I-PER", "B-PER", "O",
    "I-LOC"].

    Real data: two B- in the English eng.train follow no entity of their type (IOB1 allows only
    I- there); to_iob1 writes them as I-, so canonical IOB1 is to_iob1(to_bio(x)), same spans.
    """
    return ["I" + t[1:] if t[0] == "B" and opens(tags, i) else t for i, t in enumerate(tags)]


def to_scheme(tags, scheme):
    """to_bio or to_iob1 by name: the one place a scheme name picks its converter."""
    if scheme not in ("bio", "iob1"):
        raise ValueError(f"scheme {scheme!r}: expected 'bio' or 'iob1'")
    return to_bio(tags) if scheme == "bio" else to_iob1(tags)


def detect_scheme(tag_seqs):
    """"iob1" or "bio", by a vote over entities that start after O, another type or the sentence
    start: BIO opens all of them with B-, IOB1 with I-. More B- than I- -> "bio"; otherwise (also
    no such entity, or no entity at all: then both schemes write the same tags) -> "iob1".

    A vote, not "any B- after O means BIO": the English eng.train is IOB1 with two stray B- tags.
    """
    votes = collections.Counter()
    for tags in tag_seqs:
        for i, t in enumerate(tags):
            if opens(tags, i):
                votes[t[0]] += 1
    return "bio" if votes["B"] > votes["I"] else "iob1"


def tag_set(sentences):
    """Sorted labels, O first: ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]. Index = label id."""
    kinds = sorted({t[2:] for s in sentences for t in s.tags if t != "O"})
    return ["O"] + [p + k for k in kinds for p in ("B-", "I-")]


# ---------------------------------------------------------------- writing

def write_conll(path, sentences, pred_tags, docstart=True, new=False):
    """"word gold pred" lines for conlleval, a blank line after each sentence. With docstart, each
    document opens with "-DOCSTART- O O" + blank line, as in the CoNLL-2003 files: conlleval.pl
    counts it as one O token (eng.testb: 46435 words + 231 = its "processed 46666 tokens"), no
    span. Tags are written as given: convert predictions to the gold file's scheme first. A space
    inside a word (GermEval's columns are tabs, so its words may hold one) is written as "_", or
    the line would have a column too many for conlleval. new: only as a new file
    (atomic.replace)."""
    assert len(pred_tags) == len(sentences), (f"{len(pred_tags)} predictions for "
                                              f"{len(sentences)} sentences")
    if not has_gold(sentences):
        raise ValueError("words-only sentences have no gold tags for conlleval; write "
                         "'word pred' lines instead")
    out, doc = [], None
    for s, pred in zip(sentences, pred_tags):
        assert len(pred) == len(s.words), f"line {s.line}: {len(pred)} tags, {len(s.words)} words"
        if docstart and s.doc != doc:
            out.append(f"{DOCSTART} O O\n\n")
        doc = s.doc
        out.extend(f"{w.replace(' ', '_')} {g} {p}\n"
                   for w, g, p in zip(s.words, s.tags, pred))
        out.append("\n")
    atomic.write_text(path, "".join(out), new=new)


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
    pieces is largest, ties to the longer window, then the first (run_squad.py
    _check_is_max_context)."""
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
        # rare: a CoNLL word can hold several basic tokens, each up to 100 pieces
        if len(p) > max_len - 2:
            raise ValueError(f"line {s.line + i}: word {word!r} has {len(p)} pieces, more than "
                             f"max_len - 2 = {max_len - 2}; raise max_len")


def _features(k, labels, wins, *, t0, pieces, pre, tok):
    """One Feature per window that predicts some word of sentence k: its label ids, its windows,
    and where it sits in its stream (words t0.., the stream's pieces and piece offsets)."""
    owner = _owners(pre, wins, t0, t0 + len(labels))
    feats = []
    for w, (a, b) in enumerate(wins):
        ids = [tok.cls_id] + [p for word in pieces[a:b] for p in word] + [tok.sep_id]
        first = [(i - t0, 1 + pre[i] - pre[a])
                 for i in range(t0, t0 + len(labels)) if owner[i] == w]
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
    stream_of = (lambda j: sentences[j].doc) if doc_context else (lambda j: j)
    for _, run in itertools.groupby(range(len(sentences)), stream_of):
        run = list(run)
        pieces = [p for j in run for p in tok.encode_words(sentences[j].words)]
        pre = list(itertools.accumulate((len(p) for p in pieces), initial=0))  # piece offsets
        assert all(pieces), "encode_words gave a word no pieces (it should give [unk_id])"
        t0 = 0
        for j in run:
            s, t1 = sentences[j], t0 + len(sentences[j].words)
            _check_fits(s, pieces[t0:t1], label2id, max_len)
            # a sentence over the model's input: the paper does not say what it did; we cut it
            # into overlapping windows and score each word once, where it has the most context
            wins = _windows(pre, t0, t1, max_len - 2)
            if doc_context:
                wins = [_widen(pre, a, b, max_len - 2) for a, b in wins]
            labels = [label2id[t] for t in s.tags]
            feats += _features(j, labels, wins, t0=t0, pieces=pieces, pre=pre, tok=tok)
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

def stats(path, tok=None, encoding=None):
    """One file's counts: format, documents, sentences, tokens, entities per type, scheme
    (None for words only), encoding. GermEval files count their outer level."""
    sents, enc, fmt = read_conll_info(path, encoding)
    ents = collections.Counter(kind for s in sents for _, _, kind in spans(s.tags))
    out = dict(file=path, format=fmt, documents=len({s.doc for s in sents}),
               sentences=len(sents), tokens=sum(len(s.words) for s in sents),
               entities=dict(sorted(ents.items())),
               scheme=detect_scheme(s.tags for s in sents) if has_gold(sents) else None,
               encoding=enc)
    if tok is not None:  # pieces incl. [CLS]/[SEP], as featurize counts them
        n = [2 + sum(len(p) for p in tok.encode_words(s.words)) for s in sents]
        out.update(over_128=sum(x > 128 for x in n), over_512=sum(x > 512 for x in n))
    return out


def _retag(line, col, old, new):
    """line with one tag replaced and every other byte kept. col None: the last space/tab-
    separated column (CoNLL-2003); 2 or 3: that tab-separated column (GermEval outer, inner)."""
    body = line.rstrip(" \t\r")
    end = line[len(body):]
    cols = re.split(r"([ \t]+)" if col is None else r"(\t)", body)  # separators kept, odd slots
    k = len(cols) - 1 if col is None else 2 * col
    assert cols[k] == old, f"line {line!r}: tag {cols[k]!r}, the parse read {old!r}"
    cols[k] = new
    return "".join(cols) + end


def convert(src, dst, to, encoding=None):
    """Rewrite only the NE tags to `to` ("bio" or "iob1"): the last column of a CoNLL-2003 file,
    both tag columns of a GermEval one. Every other byte stays: the encoding, -DOCSTART- and '#'
    lines, blank lines and line ends."""
    if os.path.isdir(dst):
        raise ValueError(f"{dst}: a folder; pass the file to write, e.g. "
                         f"{os.path.join(dst, os.path.basename(src))}")
    lines, enc = _lines(src, encoding)
    if _is_germeval(lines):
        jobs = [(c, _parse_germeval(lines, src, lv)) for lv, c in GERMEVAL_LEVELS.items()]
    else:
        jobs = [(None, _parse(lines, src))]
        if not has_gold(jobs[0][1]):
            raise ValueError(f"{src}: words only (one column), no NE tags to convert")
    for col, sents in jobs:
        for s in sents:
            for i, tag in enumerate(to_scheme(s.tags, to)):
                n = s.line - 1 + i  # a sentence's words are on consecutive lines
                lines[n] = _retag(lines[n], col, s.tags[i], tag)
    atomic.write_text(dst, "\n".join(lines), enc)  # utf-8-sig writes back the BOM it stripped


ENCODING_HELP = ("the files' encoding, e.g. latin-1 (default: detected: UTF-8 if valid, latin-1 "
                 "if the file has no UTF-8 at all, else an error)")


def parser():
    """conll.py's command line; each flag's help gives its type (metavar), default and meaning."""
    ap = argparse.ArgumentParser(prog="conll.py", description="CoNLL-2003 and GermEval 2014 "
                                 "files: statistics and IOB1/BIO conversion")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    what = "documents, sentences, tokens, entities, scheme, encoding of each file"
    st = sub.add_parser("stats", help=what, description=what)
    st.add_argument("--model", metavar="STR", help="BERT folder or Hub id: also count sentences "
                    "over 128/512 pieces (default: none, no piece counts)")
    st.add_argument("--json", action="store_true",
                    help="one JSON object per file per line (default: off, text)")
    st.add_argument("--encoding", metavar="STR", help=ENCODING_HELP)
    st.add_argument("files", nargs="+", metavar="FILE",
                    help="CoNLL-2003, words-only or GermEval 2014 (.tsv, detected) file")
    what = "rewrite the NE tags in another scheme, keeping every other byte"
    cv = sub.add_parser("convert", help=what, description=what)
    cv.add_argument("--to", choices=("bio", "iob1"), required=True,
                    help="the scheme to write: bio (IOB2) or iob1 (required, no default)")
    cv.add_argument("--encoding", metavar="STR", help=ENCODING_HELP)
    cv.add_argument("src", metavar="SRC", help="CoNLL-2003 or GermEval 2014 file to read")
    cv.add_argument("dst", metavar="DST", help="file to write (not a folder), replaced atomically")
    return ap


def _print_stats(d, tok):
    name = d["file"] if d["file"].isprintable() else repr(d["file"])  # a newline shown, not kept
    print(f"{name}: {d['format']}, {d['documents']} documents, {d['sentences']} sentences, "
          f"{d['tokens']} tokens, scheme {d['scheme'] or 'none'}, encoding {d['encoding']}")
    print("  entities: " + ", ".join(f"{k} {v}" for k, v in d["entities"].items()))
    if tok is not None:
        print(f"  sentences over 128 pieces: {d['over_128']}, over 512: {d['over_512']}")


def main(argv=None):
    """Returns the exit status: 0, or 1 after printing "error: <what to change>" for bad input
    (a missing or malformed file, an unwritable destination): no traceback for user errors."""
    args = parser().parse_args(argv)
    try:
        if args.cmd == "convert":
            convert(args.src, args.dst, args.to, args.encoding)
            return 0
        tok = None
        if args.model:
            from wordpiece import WordPiece  # only needed for piece counts
            tok = WordPiece.from_pretrained(args.model)
        for path in args.files:
            d = stats(path, tok, args.encoding)
            if args.json:
                print(json.dumps(d))
            else:
                _print_stats(d, tok)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import signal  # only the command line needs it
    if hasattr(signal, "SIGPIPE"):  # `... | head` closes the pipe: end quietly, as `cat` does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
