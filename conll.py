"""CoNLL-2003 data -> BERT inputs: the data side of the paper (Sec 3.1, 3.2).

Sec 3.1: the English and German CoNLL-2003 files in their original IOB1 tags or in BIO (IOB2),
converted between the two without moving an entity span (spans as conlleval.pl reads them).
GermEval 2014 (Benikova et al. 2014: NER-de-{train,dev,test}.tsv, BIO, outer and inner level) and
words-only files (one column, gold=False) read into the same sentences; corpora.py finds the files.

Sec 3.2: each word is split into WordPiece pieces (wordpiece.py), and a sentence becomes the
piece ids of one BERT input. Its label ids sit on each word's first piece, -100 elsewhere
(BERT Sec 5.3: first piece only). Sentences longer than the model's window are split into
overlapping windows (featurize).

    python conll.py stats eng.train deu.train
    python conll.py convert eng.train --to bio > eng.train.bio
"""
import argparse
import codecs
import collections
import itertools
import re
import sys
from dataclasses import dataclass

import conlleval  # spans: conlleval.pl's chunk rules

DOCSTART = "-DOCSTART-"
BOM = "\ufeff"  # UTF-8's byte-order mark, at line starts where `cat` joined files: never a word
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

def decode(path, data, encoding=None):
    """Bytes -> (text, encoding used). CoNLL-2003 German is latin-1, English ASCII, GermEval
    UTF-8. With encoding=None: valid UTF-8 -> "utf-8"; no multi-byte UTF-8 at all -> "latin-1"
    (b"M\\xfcller" -> "Müller"); both -> ValueError, as either reading garbles part of the file.
    A leading UTF-8 BOM is dropped, as "utf-8-sig", which convert writes back."""
    if encoding is None:
        text = data.decode("utf-8", errors="surrogateescape")  # invalid byte b -> U+DC00 + b
        bad = re.search(r"[\udc80-\udcff]", text)
        good = re.search(r"[^\x00-\x7f\udc80-\udcff]", text)
        if bad and good:
            at, seen = (text[:m.start()].count("\n") + 1 for m in (bad, good))
            raise ValueError(f"{path}:{at}: byte 0x{ord(bad.group()) - 0xdc00:02x} is not valid "
                             f"UTF-8, but line {seen} is UTF-8; fix the byte, or read every byte "
                             f"as latin-1 (--encoding latin-1; to train: iconv -f latin-1)")
        encoding = "latin-1" if bad else "utf-8"
    try:
        text = data.decode(encoding)
    except LookupError:
        raise ValueError(f"{path}: unknown encoding {encoding!r}; pass e.g. latin-1") from None
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not valid {encoding} ({e.reason}); pass the file's "
                         f"real encoding, or leave it out to detect UTF-8/latin-1") from None
    if codecs.lookup(encoding).name == "utf-8" and text.startswith(BOM):
        return text[1:], "utf-8-sig"
    return text, encoding


def _lines(path, encoding=None):
    """The file's lines, split on \\n only: latin-1 byte 0x85 is no line break."""
    with open(path, "rb") as f:
        text, enc = decode(path, f.read(), encoding)
    return text.split("\n"), enc


def _rows(lines):
    """(line number, columns) per line, no columns for a blank line. Columns are split on spaces
    and tabs only: a latin-1 non-breaking space may be part of a word."""
    for n, line in enumerate(lines, start=1):
        line = line.lstrip(BOM).strip(" \t\r")
        yield n, re.split(r"[ \t]+", line) if line else []


def check_tag(tag, path, n, where="the NE tag must be the last column"):
    """O, B-TYPE or I-TYPE (IOB1 and BIO use only these), else an error at path:n. TYPE holds no
    space or invisible char: "I-PER\\xa0" would be a type of its own, never predicted."""
    prefix, _, kind = tag.partition("-")
    if tag != "O" and not (prefix in ("B", "I") and kind):
        raise ValueError(f"{path}:{n}: tag {tag!r} is not O, B-TYPE or I-TYPE ({where})")
    # isprintable() is False for control and format characters and every whitespace but " "
    bad = [c for c in kind if c == " " or not c.isprintable()]
    if bad:
        raise ValueError(f"{path}:{n}: tag {tag!r}: its type holds U+{ord(bad[0]):04X}, a space "
                         f"or an invisible character; delete the character")


def _parse(rows, path):
    """(line number, columns) rows -> sentences. A -DOCSTART- row (any column form) opens a new
    document and is never a word; no columns end a sentence. Sentences before the first
    -DOCSTART- form document 0. A one-column file is words only: tags all "O", gold=False."""
    out, words, tags = [], [], []  # words, tags: of the sentence being read
    first = 0  # the line of its first word
    ncols = None  # word line columns: 4 (English), 5 (German) or 1 (words only)
    doc, begun = 0, False  # begun: the current document has a -DOCSTART- or a word
    for n, cols in itertools.chain(rows, [(None, [])]):  # the last row flushes the last sentence
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
            raise ValueError(f"{path}:{n}: {len(cols)} columns, but line {first_line} has {ncols}")
        if ncols > 1:
            check_tag(cols[-1], path, n)
        if not words:
            first = n
        words.append(cols[0])
        tags.append(cols[-1] if ncols > 1 else "O")
    if not out:
        raise ValueError(f"{path}: no sentences, only blank lines or document openings")
    return out


# GermEval 2014 (Benikova et al. 2014): "#\tURL [date]" opens each sentence, then word lines
# "index<TAB>word<TAB>outer<TAB>inner" in BIO over 12 types (PER, LOC, ORG, OTH, each also
# ...deriv and ...part), a blank line after each sentence, UTF-8.
GERMEVAL_LEVELS = {"outer": 2, "inner": 3}  # level -> its column


def _is_germeval(lines):
    """The first non-blank line is a '#' comment and the first word line has 4 tab-separated
    columns, the first an integer. CoNLL-2003 files open with -DOCSTART- or a word line."""
    rows = (x.lstrip(BOM).rstrip(" \t\r") for x in lines if x.lstrip(BOM).strip())
    if not next(rows, "").startswith("#"):
        return False
    cols = next((x for x in rows if not x.startswith("#")), "").split("\t")
    return len(cols) == 4 and cols[0].isdigit()


def _germeval_rows(lines, path, level):
    """GermEval lines as the rows _parse reads: [word, tag of the level] for a word line (both tags
    checked), [DOCSTART] for a '#' line naming a new source URL (an article is a document), no
    columns for other '#' and blank lines."""
    url = None  # the source URL of the current document
    for n, line in enumerate(lines, start=1):
        # the official NER-de-test.tsv has a word line '1\t"\tO\tO\t', a fifth field that is
        # empty (HF's germeval_14 loader reads row[:4] and never sees it): not an error
        row = line.lstrip(BOM).rstrip(" \t\r")
        cols = row.split("\t")
        if row.startswith("#"):  # "#\thttp://de.wikipedia.org/wiki/X [2009-10-17]" -> URL
            src = row[1:].strip().rsplit(" [", 1)[0]
            yield n, [DOCSTART] if src != url else []
            url = src
        elif not row.strip():
            yield n, []
        elif len(cols) != 4 or not cols[0].isdigit() or not cols[1]:
            raise ValueError(f"{path}:{n}: {row!r} is not a word line; a GermEval 2014 word "
                             f"line is 'index<TAB>word<TAB>outer<TAB>inner'")
        else:
            for tag in cols[2:]:
                check_tag(tag, path, n, "columns 3 and 4 hold the outer and inner BIO tags")
            yield n, [cols[1], cols[GERMEVAL_LEVELS[level]]]


def read_conll_info(path, encoding=None):
    """-> (sentences, encoding used, format: "conll", "words" (one column) or "germeval"), e.g.
    ([Sentence(["EU", "rejects"], ["I-ORG", "O"], 0, 3)], "utf-8", "conll")."""
    lines, enc = _lines(path, encoding)
    if _is_germeval(lines):
        return _parse(_germeval_rows(lines, path, "outer"), path), enc, "germeval"
    sents = _parse(_rows(lines), path)
    return sents, enc, "conll" if has_gold(sents) else "words"


def read_conll(path, encoding=None):
    """English (word POS chunk NE) or German (word lemma POS chunk NE) CoNLL-2003 -> sentences;
    also words-only files and GermEval 2014 ones (the outer level; read_germeval for the inner)."""
    return read_conll_info(path, encoding)[0]


def has_docstart(path, encoding=None):
    """Whether a CoNLL file holds -DOCSTART- lines (predict writes them back only then)."""
    return any(cols[:1] == [DOCSTART] for _, cols in _rows(_lines(path, encoding)[0]))


def read_germeval(path, level="outer", encoding=None):
    """GermEval 2014 .tsv -> sentences with the outer (column 3) or inner (column 4) BIO tags:
    "1\\tAnna\\tB-PER\\tO" -> word "Anna", tag "B-PER" (outer) or "O" (inner). Read as GermEval
    whatever its first lines look like, so a bad word line is named as one."""
    return _parse(_germeval_rows(_lines(path, encoding)[0], path, level), path)


# ---------------------------------------------------------------- tagging schemes (Sec 3.1)

def opens(tags, i):
    """Would an I- at i open an entity? Yes where tags[i] is not O and follows O, another type
    or the sentence start: conlleval.pl's startOfChunk for IOB1/BIO (where a B- opens one
    anywhere). ["O", "I-PER", "I-PER", "B-PER", "I-LOC"] -> True at 1 and 4 only."""
    return tags[i] != "O" and (i == 0 or tags[i - 1][2:] != tags[i][2:])


def spans(tags):
    """Entity spans by conlleval's chunk rules, in IOB1 or BIO alike: {(start, end_excl, type)}.
    ["I-PER", "I-PER", "B-PER", "O", "B-LOC"] -> {(0, 2, "PER"), (2, 3, "PER"), (4, 5, "LOC")}"""
    out, start = set(), None
    prev, prev_type = "O", ""  # a sentence opens as if after an O, as in conlleval.pl
    for i, tag in enumerate([*tags, "O"]):  # the final O closes a span still open
        t, typ = conlleval.split_tag(tag)
        if start is not None and conlleval.end_of_chunk(prev, t, prev_type, typ):
            out.add((start, i, prev_type))
            start = None
        if conlleval.start_of_chunk(prev, t, prev_type, typ):
            start = i
        prev, prev_type = t, typ
    return out


def to_bio(tags):
    """Every entity opens with B- (IOB2). ["I-PER", "I-PER", "B-PER", "O", "I-LOC"] ->
    ["B-PER", "I-PER", "B-PER", "O", "B-LOC"]: an I- that starts a span becomes B-."""
    return ["B" + t[1:] if t[0] == "I" and opens(tags, i) else t for i, t in enumerate(tags)]


def to_iob1(tags):
    """B- only where an entity directly follows one of the same type (IOB1, the original
    CoNLL-2003). ["B-PER", "I-PER", "B-PER", "O", "B-LOC"] -> ["I-PER", "I-PER", "B-PER", "O",
    "I-LOC"]. The two B- of eng.train that follow no entity of their type become I-."""
    return ["I" + t[1:] if t[0] == "B" and opens(tags, i) else t for i, t in enumerate(tags)]


def to_scheme(tags, scheme):
    """to_bio or to_iob1 by name: the one place a scheme name picks its converter."""
    assert scheme in ("bio", "iob1"), f"scheme {scheme!r}"  # argparse and tagger check names
    return to_bio(tags) if scheme == "bio" else to_iob1(tags)


def detect_scheme(tag_seqs):
    """"iob1" or "bio", by a vote over entities that start after O, another type or the sentence
    start: BIO opens them with B-, IOB1 with I-. More B- than I- -> "bio", else "iob1" (no such
    entity: both write the same tags). A vote, as eng.train is IOB1 with two stray B- tags."""
    votes = collections.Counter(t[0] for ts in tag_seqs for i, t in enumerate(ts) if opens(ts, i))
    return "bio" if votes["B"] > votes["I"] else "iob1"


def tag_set(sentences):
    """Sorted labels, O first: ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]. Index = label id."""
    kinds = sorted({t[2:] for s in sentences for t in s.tags if t != "O"})
    return ["O"] + [p + k for k in kinds for p in ("B-", "I-")]


def conll_text(sentences, pred_tags, docstart=True):
    """"word gold pred" lines for conlleval, a blank line after each sentence. With docstart, each
    document opens with "-DOCSTART- O O" + blank line, as in the CoNLL-2003 files: conlleval.pl
    counts it as one O token (eng.testb: 46435 words + 231 = its "processed 46666 tokens"), no
    span. Tags go as given: convert predictions to the gold file's scheme first. A space in a word
    (GermEval's columns are tabs) is written "_", else conlleval reads a column too many."""
    assert has_gold(sentences), "words-only sentences have no gold tags for conlleval"
    out, doc = [], None
    for s, pred in zip(sentences, pred_tags, strict=True):
        if docstart and s.doc != doc:
            out.append(f"{DOCSTART} O O\n\n")
        doc = s.doc
        out.extend(f"{w.replace(' ', '_')} {g} {p}\n"
                   for w, g, p in zip(s.words, s.tags, pred, strict=True))
        out.append("\n")
    return "".join(out)


# ---------------------------------------------------------------- features (Sec 3.2)

@dataclass
class Feature:
    input_ids: list[int]  # [CLS] pieces [SEP]; segment ids are all 0
    labels: list[int]  # label id at the first piece of each word in `first`, -100 elsewhere
    sent: int  # index of the sentence in the list given to featurize
    first: list[tuple[int, int]]  # (word index in the sentence, position of its first piece)


def _windows(pre, budget):
    """Word ranges [a, b) covering a sentence's words (pre: their piece offsets), each at most
    `budget` pieces; the next window starts at the word half-way (in pieces) through this one, so
    they overlap by about half."""
    out, a, n = [], 0, len(pre) - 1
    while True:
        b = a
        while b < n and pre[b + 1] - pre[a] <= budget:
            b += 1
        assert b > a, f"word {a} alone is over the budget (featurize checks this first)"
        out.append((a, b))
        if b == n:
            return out
        half = (pre[a] + pre[b]) / 2  # piece offset of the window's middle
        a = next(i for i in range(a + 1, b + 1) if pre[i] >= half)


def _features(k, labels, wins, pieces, pre, tok):
    """One Feature per window that predicts some word of sentence k: its label ids, its windows,
    its words' pieces and piece offsets. A word is predicted by the window where min(left, right)
    context in pieces is largest, ties to the longer window, then the first (run_squad.py's
    _check_is_max_context)."""
    best, owner = {}, {}  # word -> its best score, the window that has it
    for w, (a, b) in enumerate(wins):
        for i in range(a, b):
            score = (min(pre[i] - pre[a], pre[b] - pre[i + 1]), pre[b] - pre[a])
            if i not in best or score > best[i]:
                best[i], owner[i] = score, w
    feats = []
    for w, (a, b) in enumerate(wins):
        ids = [tok.cls_id] + [p for word in pieces[a:b] for p in word] + [tok.sep_id]
        first = [(i, 1 + pre[i] - pre[a]) for i in range(len(labels)) if owner[i] == w]
        lab = [IGNORE] * len(ids)
        for i, pos in first:
            lab[pos] = labels[i]  # BERT Sec 5.3: first piece only
        if first:  # a window whose words are all better predicted elsewhere adds nothing
            feats.append(Feature(ids, lab, k, first))
    return feats


def featurize(sentences, tok, label2id, max_len=128):
    """Sentences -> Features of at most max_len pieces, [CLS]/[SEP] included; every word is labelled
    in exactly one. label2id={"O": 0, "B-PER": 1, "I-PER": 2}, Sentence(["Ann", "Lee", "ran"],
    ["B-PER", "I-PER", "O"]) with "Lee" -> 2 pieces: input_ids [CLS a l1 l2 r SEP],
    labels [-100, 1, 2, -100, 0, -100], first [(0, 1), (1, 2), (2, 4)]. A window holds one
    sentence's words only (the paper's input; Devlin et al. add document context, BERT Sec 5.3)."""
    feats = []
    for j, s in enumerate(sentences):
        pieces = tok.encode_words(s.words)
        for i, (word, tag, p) in enumerate(zip(s.words, s.tags, pieces)):
            if tag not in label2id:  # bad input, named by line: word i is on s.line + i
                raise ValueError(f"line {s.line + i}: tag {tag!r} is not in label2id")
            # rare: a CoNLL word can hold several basic tokens, each up to 100 pieces
            if len(p) > max_len - 2:
                raise ValueError(f"line {s.line + i}: word {word!r} has {len(p)} pieces, "
                                 f"more than max_len - 2 = {max_len - 2}; raise max_len")
        pre = list(itertools.accumulate((len(p) for p in pieces), initial=0))  # piece offsets
        # a sentence over the model's input: the paper does not say what it did; we cut it
        # into overlapping windows and score each word once, where it has the most context
        wins = _windows(pre, max_len - 2)
        feats += _features(j, [label2id[t] for t in s.tags], wins, pieces, pre, tok)
    return feats


def gather(features, preds, sentences):
    """Per-position predictions, one row per feature (rows may be padded past len(input_ids)) ->
    per-sentence per-word label ids. `sentences`: the list given to featurize. Rows may be
    tensors; plain lists (tensor.tolist()) index faster."""
    got = [[None] * len(s.words) for s in sentences]
    for f, row in zip(features, preds, strict=True):
        for i, pos in f.first:
            got[f.sent][i] = int(row[pos])
    assert all(None not in g for g in got), "a word without a prediction"
    return got


# ---------------------------------------------------------------- command line

def stats(path, encoding=None):
    """One file's counts: format, documents, sentences, tokens, entities per type, scheme
    (None for words only), encoding. GermEval files count their outer level."""
    sents, enc, fmt = read_conll_info(path, encoding)
    ents = collections.Counter(kind for s in sents for _, _, kind in spans(s.tags))
    return dict(file=path, format=fmt, documents=len({s.doc for s in sents}),
                sentences=len(sents), tokens=sum(len(s.words) for s in sents),
                entities=dict(sorted(ents.items())), encoding=enc,
                scheme=detect_scheme(s.tags for s in sents) if has_gold(sents) else None)


def convert(src, to, encoding=None):
    """The bytes of `src` with only the NE tags rewritten to `to` ("bio" or "iob1"): the last
    column of a CoNLL-2003 file, both tag columns of a GermEval one. Every other byte stays: the
    encoding (latin-1, a UTF-8 BOM), -DOCSTART- and '#' lines, blank lines and line ends."""
    lines, enc = _lines(src, encoding)
    # GermEval: one level at a time; rewriting one tag column leaves the other level's reading as is
    levels = GERMEVAL_LEVELS.items() if _is_germeval(lines) else [(None, None)]
    for level, col in levels:
        sents = _parse(_germeval_rows(lines, src, level) if level else _rows(lines), src)
        if not has_gold(sents):
            raise ValueError(f"{src}: words only (one column), no NE tags to convert")
        for s in sents:
            for i, tag in enumerate(to_scheme(s.tags, to)):
                n = s.line - 1 + i  # a sentence's words are on consecutive lines
                body = lines[n].rstrip(" \t\r")
                # separators kept in the odd slots; the tag: the last column or GermEval's col
                cols = re.split(r"([ \t]+)" if col is None else r"(\t)", body)
                cols[-1 if col is None else 2 * col] = tag
                lines[n] = "".join(cols) + lines[n][len(body):]
    return "\n".join(lines).encode(enc)  # utf-8-sig writes back the BOM decode dropped


def parser():
    """conll.py's command line; each flag's help gives its type (metavar), default and meaning."""
    ap = argparse.ArgumentParser(prog="conll.py", description="CoNLL-2003 and GermEval 2014 "
                                 "files: statistics and IOB1/BIO conversion")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    what = "documents, sentences, tokens, entities, scheme, encoding of each file"
    st = sub.add_parser("stats", help=what, description=what)
    st.add_argument("files", nargs="+", metavar="FILE",
                    help="CoNLL-2003, words-only or GermEval 2014 (.tsv, detected) file")
    what = "print the file with its NE tags in another scheme, every other byte kept (> out.txt)"
    cv = sub.add_parser("convert", help=what, description=what)
    cv.add_argument("--to", choices=("bio", "iob1"), required=True,
                    help="the scheme to write: bio (IOB2) or iob1 (required, no default)")
    cv.add_argument("src", metavar="SRC", help="CoNLL-2003 or GermEval 2014 file to read")
    for p in (st, cv):
        p.add_argument("--encoding", metavar="STR", help="the files' encoding, e.g. latin-1 "
                       "(default: UTF-8 if valid, else latin-1)")
    return ap


def main(argv=None):
    """The exit status: 0, or 1 after printing "error: <what to change>" (no traceback)."""
    args = parser().parse_args(argv)
    try:
        if args.cmd == "convert":  # bytes, not text: the file's own encoding, whatever the locale
            sys.stdout.buffer.write(convert(args.src, args.to, args.encoding))
            return 0
        for path in args.files:
            d = stats(path, args.encoding)
            print(f"{path}: {d['format']}, {d['documents']} documents, {d['sentences']} sentences, "
                  f"{d['tokens']} tokens, scheme {d['scheme'] or 'none'}, encoding {d['encoding']}")
            print("  entities: " + ", ".join(f"{k} {v}" for k, v in d["entities"].items()))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import signal  # only the command line needs it
    if hasattr(signal, "SIGPIPE"):  # `... | head` closes the pipe: end quietly, as `cat` does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
