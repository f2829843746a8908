"""The CoNLL shared-task chunk/NER scorer, a drop-in for conlleval.pl (paper Sec 3.2).

Every F1 in the paper is the number printed by conlleval.pl (Tjong Kim Sang, version 2004-01-26,
shipped with CoNLL-2000/2003). This file re-implements that script's state machine line for line,
so the counts, the percentages and the printed report are the same, character for character:

    $ python conlleval.py < output.txt        # columns ... GOLD GUESS, blank line = sentence end
    processed 4 tokens with 2 phrases; found: 3 phrases; correct: 2.
    accuracy:  75.00%; precision:  66.67%; recall: 100.00%; FB1:  80.00
                  LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1
                  ...

and the library form used by finetune.py, where sentences are lists of per-word tags:

    >>> evaluate([["B-PER", "I-PER", "O"]], [["B-PER", "I-PER", "B-LOC"]])["precision"]
    50.0

What conlleval.pl does, and so what we do (read before trusting a number):
- A chunk starts/ends by comparing each tag with the previous one (endOfChunk/startOfChunk
  below). That covers IOB1, IOB2/BIO, IOE1/IOE2 and the bracket tags `[` `]`. It does NOT know
  IOBES: S- is no boundary (only a change of type opens or closes a chunk around it) and E- then
  B- of the same type does not split, so "B-PER E-PER B-PER E-PER" and "S-PER S-PER" are each ONE
  chunk. Convert IOBES to BIO before scoring.
- The per-word tag is split at its first hyphen ("B-MISC-X" has type "MISC-X").
- `-DOCSTART- -X- -X- O` is an ordinary token (its first column is not "-X-"): it counts in
  "processed N tokens" and in accuracy. Only blank lines and lines whose first column is the
  boundary "-X-" are sentence breaks, which close chunks and are not counted. In the library
  form, keep each -DOCSTART- as a one-word sentence tagged O to get the perl script's token
  count and accuracy; P/R/F1 are the same with or without it.
Where we depart from the perl script: -d is a Python regular expression, not a Perl one (the two
read '\\t' and '\\s+' alike); -b BOUNDARY (the perl script hard-codes "-X-"); -h/--help; error
messages name the line (exit codes are the script's: 1 for a column mismatch, 255 where it dies);
no "uninitialized value" warnings for two-column input; and a note on stderr when the input looks
like CRLF or tab-separated text read with the default space delimiter. stdout, the report, stays
byte for byte the perl script's.
"""
import io
import re
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from itertools import repeat

BOUNDARY = "-X-"  # conlleval.pl: $boundary, first column of a sentence-break line
USAGE = "usage: python conlleval.py [-l] [-r] [-d DELIM] [-o OUTSIDE] [-b BOUNDARY] < FILE"
HELP = f"""{USAGE}

Score NER or chunking output the way conlleval.pl (CoNLL-2000/2003) does. Each line of
stdin is one word: columns ... GOLD GUESS, the last two its gold and guessed tag. A blank
line, or a line whose first column is the boundary, ends a sentence.

options (before any other argument, each value its own argument):
  -l           print the rows of a LaTeX table instead of the report
  -r           raw tags: no B-/I- prefixes, each tag other than OUTSIDE is a one-word chunk
  -d DELIM     field delimiter, a Python regex (default: one space), e.g. '\\t' or '\\s+'
  -o OUTSIDE   the outside tag for -r (default: O; ignored without -r)
  -b BOUNDARY  first column of a sentence-break line (default: -X-; not in the perl script)
  -h, --help   print this help and exit

exit status: 0 done, 1 a column count unlike the first line's, 255 a bad option or one column
"""


# ----------------------------------------------------------------------------
# Chunk boundaries: conlleval.pl's endOfChunk / startOfChunk, as sets of (prev, cur) pairs.
# The perl script writes "I after O" twice in each list; a set keeps one copy.

_END_PAIRS = {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O"),  # IOB1 / IOB2
              ("E", "E"), ("E", "I"), ("E", "O")}              # IOE1 / IOE2
_START_PAIRS = {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I"),
                ("E", "E"), ("E", "I"), ("O", "E")}


def end_of_chunk(prev, tag, prev_type, typ):
    """Did a chunk end between the previous word and this one?  ("I","O","PER","") -> True"""
    return ((prev, tag) in _END_PAIRS
            # conlleval.pl: a change of type closes any chunk, "O" and "." excepted
            or prev != "O" and prev != "." and prev_type != typ
            or prev in ("[", "]"))  # conlleval.pl 1998-12-22: bracket chunks have length 1


def start_of_chunk(prev, tag, prev_type, typ):
    """Did a chunk start at this word?  ("O","I","","PER") -> True (IOB1: I- after O starts)"""
    return ((prev, tag) in _START_PAIRS
            # conlleval.pl: I-LOC right after I-PER starts a LOC chunk
            or tag != "O" and tag != "." and prev_type != typ
            or tag in ("[", "]"))


def split_tag(tag):
    """'B-PER' -> ('B', 'PER'); 'O' -> ('O', ''); 'B-MISC-X' -> ('B', 'MISC-X')."""
    chunk, _, typ = tag.partition("-")  # conlleval.pl 2004-01-26: /^([^-]*)-(.*)$/
    # conlleval.pl: `$type ? $type : ""`, and "0" is false in perl, so "B-0" has no type
    return chunk, ("" if typ == "0" else typ)


# ----------------------------------------------------------------------------
# Counting

@dataclass
class Counts:
    """What conlleval.pl counts. gold/found/correct are phrases (chunks), tokens are words."""
    tokens: int = 0        # $tokenCounter: words, sentence breaks excluded
    correct_tags: int = 0  # $correctTags: words whose gold and guessed tag agree
    gold: int = 0          # $foundCorrect: chunks in the gold tags
    found: int = 0         # $foundGuessed: chunks in the guessed tags
    correct: int = 0       # $correctChunk: guessed chunks with the gold span and type
    gold_by_type: Counter = field(default_factory=Counter)  # the same per chunk type
    found_by_type: Counter = field(default_factory=Counter)
    correct_by_type: Counter = field(default_factory=Counter)


def scan(rows):
    """Run conlleval.pl's main loop over (gold_tag, guessed_tag, is_break) rows -> Counts.

    ("B-PER", "B-PER", False), ("I-PER", "O", False) -> gold 1, found 1, correct 0:
    the guessed chunk ends one word early, so it is not counted as correct."""
    c = Counts()
    parts = {}  # tag -> split_tag(tag); a test set has a few dozen distinct tags
    last_g, last_gt = "O", ""  # the previous word's gold tag and type
    last_p, last_pt = "O", ""  # and its guessed ones
    in_correct = False  # $inCorrect: gold and guess opened the same chunk, both still open
    for gold, guess, is_break in rows:
        g, gt = parts.get(gold) or parts.setdefault(gold, split_tag(gold))
        p, pt = parts.get(guess) or parts.setdefault(guess, split_tag(guess))
        if in_correct:
            g_end = end_of_chunk(last_g, g, last_gt, gt)
            p_end = end_of_chunk(last_p, p, last_pt, pt)
            if g_end and p_end and last_pt == last_gt:  # both closed here: a correct phrase
                in_correct = False
                c.correct += 1
                c.correct_by_type[last_gt] += 1
            elif g_end != p_end or pt != gt:  # one closed without the other: spans differ
                in_correct = False
        g_start = start_of_chunk(last_g, g, last_gt, gt)
        p_start = start_of_chunk(last_p, p, last_pt, pt)
        if g_start:
            c.gold += 1
            c.gold_by_type[gt] += 1
        if p_start:
            c.found += 1
            c.found_by_type[pt] += 1
        # a phrase is correct so far when both open one here with the same type
        in_correct = in_correct or (g_start and p_start and pt == gt)
        if not is_break:  # conlleval.pl: `$firstItem ne $boundary`
            c.tokens += 1
            c.correct_tags += g == p and gt == pt  # compares the split parts, as perl does
        last_g, last_gt, last_p, last_pt = g, gt, p, pt
    if in_correct:  # a phrase still open at the end of the input
        c.correct += 1
        c.correct_by_type[last_gt] += 1
    return c


def count(gold, pred):
    """Counts for sentences of per-word tags, exactly as conlleval.pl counts a file that
    holds the same tags with a blank line after every sentence.

    count([["B-PER", "I-PER"], ["O"]], [["B-PER", "O"], ["O"]])
      -> tokens 3, correct_tags 2, gold 1, found 1, correct 0"""
    if len(gold) != len(pred):
        raise ValueError(f"conlleval.count: {len(gold)} gold sentences but {len(pred)} predicted")
    for i, (gs, ps) in enumerate(zip(gold, pred)):
        if isinstance(gs, str) or isinstance(ps, str) or len(gs) != len(ps):
            raise ValueError(f"conlleval.count: sentence {i}: pass a list of tags per sentence, "
                             f"gold and predicted aligned word for word (not {gs!r}, {ps!r})")
    # each sentence, then the blank line after it, which perl reads as "-X- O O"
    return scan(row for gs, ps in zip(gold, pred)
                for row in (*zip(gs, ps, repeat(False)), ("O", "O", True)))


# ----------------------------------------------------------------------------
# Scores and the printed report

def prf(correct, found, gold):
    """Precision, recall, FB1 in percent, with conlleval.pl's zero rules (0 for 0/0).

    (2, 3, 2) -> (66.66.., 100.0, 80.0)"""
    p = 100 * correct / found if found > 0 else 0.0
    r = 100 * correct / gold if gold > 0 else 0.0
    f = 2 * p * r / (p + r) if p + r > 0 else 0.0  # FB1 from the percentages, as perl does
    return p, r, f


def type_rows(c):
    """(type, precision, recall, FB1) in the order conlleval.pl prints the types: sorted,
    duplicates dropped.

    Perl's duplicate check is `not($lastType) or $lastType ne $i`, and "" is false, so the
    empty type (from tags like "B" with no "-TYPE") is printed twice when gold and guess
    both have it. We keep that quirk; "0" cannot be a type here (split_tag maps it to "")."""
    types = sorted([*c.gold_by_type, *c.found_by_type])
    return [(t, *prf(c.correct_by_type[t], c.found_by_type[t], c.gold_by_type[t]))
            for last, t in zip([None, *types], types) if not last or last != t]


def scores(c):
    """Counts -> the report's numbers as a dict (percentages, like the report)."""
    p, r, f = prf(c.correct, c.found, c.gold)
    per_type = {t: {"precision": tp, "recall": tr, "f1": tf, "gold": c.gold_by_type[t],
                    "found": c.found_by_type[t], "correct": c.correct_by_type[t]}
                for t, tp, tr, tf in type_rows(c)}
    # perl prints no accuracy for an empty input; we report 0.0 there
    acc = 100 * c.correct_tags / c.tokens if c.tokens > 0 else 0.0
    return {"precision": p, "recall": r, "f1": f, "accuracy": acc,
            "tokens": c.tokens, "correct_tags": c.correct_tags, "gold": c.gold,
            "found": c.found, "correct": c.correct, "per_type": per_type}


def evaluate(gold, pred):
    """scores(count(gold, pred)): the paper's metric for sentences of per-word tags."""
    return scores(count(gold, pred))


def report(c, latex=False):
    """The exact text conlleval.pl prints (with -l when latex=True), from its printf formats."""
    p, r, f = prf(c.correct, c.found, c.gold)
    if latex:  # conlleval.pl -l: the rows of a table like the CoNLL-2003 paper's, no token line
        out = ["        & Precision &  Recall  & F$_{\\beta=1} \\\\\\hline"]
        out += ["\n%-7s &  %6.2f\\%% & %6.2f\\%% & %6.2f \\\\" % row for row in type_rows(c)]
        out.append("\\hline\nOverall &  %6.2f\\%% & %6.2f\\%% & %6.2f \\\\\\hline\n" % (p, r, f))
        return "".join(out)
    out = [f"processed {c.tokens} tokens with {c.gold} phrases; "
           f"found: {c.found} phrases; correct: {c.correct}.\n"]
    if c.tokens > 0:
        out.append("accuracy: %6.2f%%; precision: %6.2f%%; recall: %6.2f%%; FB1: %6.2f\n"
                   % (100 * c.correct_tags / c.tokens, p, r, f))
    for t, tp, tr, tf in type_rows(c):
        # the last number is the count of guessed phrases of this type, as in the perl script
        out.append("%17s: precision: %6.2f%%; recall: %6.2f%%; FB1: %6.2f  %d\n"
                   % (t, tp, tr, tf, c.found_by_type[t]))
    return "".join(out)


# ----------------------------------------------------------------------------
# The command line: reading a file the way conlleval.pl reads it

class InputError(ValueError):
    """Malformed input; `code` is the exit status the perl script would give."""
    def __init__(self, msg, code):
        super().__init__(msg)
        self.code = code


def compile_delim(delim):
    """-d, a Python regex. re.ASCII because we read bytes as latin-1, as perl sees them: \\s
    must not take 0xA0 or 0x85, the second bytes of some UTF-8 letters ("Р" is D0 A0)."""
    try:
        return re.compile(delim, re.ASCII)
    except re.error as e:
        raise InputError(f"conlleval: -d {delim!r} is no Python regex ({e}); escape a literal "
                         "character, e.g. -d '\\|'", 255) from e


def split_fields(line, delim):
    """Perl's split(/ /, $line): a run of delimiters leaves empty fields, trailing ones go.

    " a B-PER" -> ['', 'a', 'B-PER'];  "a  B-PER" -> ['a', '', 'B-PER'];  "a B  " -> ['a', 'B']"""
    fields = delim.split(line)
    while fields and not fields[-1]:  # "" or None (a group in -d that took no part)
        fields.pop()
    return fields


def read_rows(lines, delim=" ", raw=False, otag="O", boundary=BOUNDARY, name="<stdin>"):
    """Yield (gold_tag, guessed_tag, is_break) per line, with conlleval.pl's checks.

    ["w x B-PER B-PER", "", "-X- x O O"]
      -> ("B-PER", "B-PER", False), ("O", "O", True), ("O", "O", True)"""
    pattern = compile_delim(delim) if isinstance(delim, str) else delim
    ncols, first = -1, 0  # perl's $nbrOfFeatures (a column count minus one) and its line
    for n, line in enumerate(lines, 1):
        f = split_fields(line, pattern)
        if ncols < 0:  # perl: a blank first line leaves it at -1, so the next line sets it
            ncols, first = len(f) - 1, n
        elif ncols != len(f) - 1 and f:
            raise InputError(f"{name} line {n}: unexpected number of features: {len(f)} "
                             f"({ncols + 1}); line {first} has {ncols + 1} columns, give "
                             "every non-blank line the same number", 1)
        if not f or f[0] == boundary:
            f = [boundary, "O", "O"]  # conlleval.pl: a sentence break is an O/O non-token
        if len(f) < 2:
            raise InputError(f"{name} line {n}: unexpected number of features in line "
                             f"{line!r}; each line needs at least the gold and guessed tag", 255)
        gold, guess = f[-2], f[-1]
        if raw:  # -r: tags carry no B-/I- prefix; each non-outside tag is a one-word chunk
            gold, guess = ("O" if t in (otag, "O") else "B-" + t for t in (gold, guess))
        # the break test looks at the first column only when there are 3+ (perl's $firstItem)
        yield gold, guess, len(f) > 2 and f[0] == boundary


def parse_args(argv):
    """conlleval.pl's option loop: flags first, each value its own argument."""
    opts = {"latex": False, "raw": False, "delim": " ", "otag": "O", "boundary": BOUNDARY}
    values = {"-d": "delim", "-o": "otag", "-b": "boundary"}
    args = list(argv)
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a in ("-h", "--help"):  # ours: the perl script dies on -h (unknown argument)
            return {**opts, "help": True}
        if a in ("-l", "-r"):
            opts["latex" if a == "-l" else "raw"] = True
        elif a in values and args:
            opts[values[a]] = args.pop(0)
        else:
            msg = f"{a} requires a value" if a in values else f"unknown argument {a}"
            raise InputError(f"conlleval: {msg}\n{USAGE}", 255)
    if args:
        raise InputError(f"conlleval: unexpected command line argument {args[0]!r}; "
                         f"the input comes on stdin\n{USAGE}", 255)
    opts["delim"] = compile_delim(opts["delim"])
    return opts


def input_notes(lines, delim):
    """Hints for stderr about input that the perl script reads, but surely not as meant.
    stdout is never touched: it stays the perl script's, byte for byte."""
    notes = []
    if crlf := sum(line.endswith("\r") for line in lines):
        notes.append(f"conlleval: note: {crlf} of {len(lines)} lines end in \\r (CRLF); the perl "
                     "script keeps the \\r in the last tag, so \"O\\r\" is not \"O\" and the "
                     "scores are off: strip it first (tr -d '\\r' < FILE | python conlleval.py)")
    if tabs := delim.pattern == " " and sum("\t" in line for line in lines):
        notes.append(f"conlleval: note: {tabs} of {len(lines)} lines hold tabs, but the delimiter "
                     "is one space (the default); if the columns are tab-separated, pass -d '\\t'")
    return notes


def main(argv, stdin, stdout, stderr):
    """Score the file on stdin and print the report; returns the exit status."""
    try:
        opts = parse_args(argv)
    except InputError as e:
        stderr.write(f"{e}\n")
        return e.code
    if opts.get("help"):
        stdout.write(HELP.encode("utf-8"))
        return 0
    # Bytes as latin-1: one byte, one character, so %17s pads a UTF-8 type name as perl (which
    # sees bytes) does, any encoding passes through unchanged, and no input fails to decode.
    text = stdin.read().decode("latin-1")
    # perl's <STDIN> + chomp: only "\n" goes, a "\r" stays; a final "\n" starts no line
    lines = text.removesuffix("\n").split("\n") if text else []
    code, out = 0, ""
    try:
        rows = read_rows(lines, opts["delim"], opts["raw"], opts["otag"], opts["boundary"])
        out = report(scan(rows), latex=opts["latex"])
    except InputError as e:
        code = e.code
        stderr.write(f"{e}\n")
    stderr.writelines(note + "\n" for note in input_notes(lines, opts["delim"]))
    stdout.write(out.encode("latin-1"))
    return code


if __name__ == "__main__":
    if hasattr(signal, "SIGPIPE"):  # the reader went away (`| head`): die quietly, as perl does
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    # stdin closed (`<&-`): Python gives None where perl reads no lines; so do we
    stdin = sys.stdin.buffer if sys.stdin else io.BytesIO()
    sys.exit(main(sys.argv[1:], stdin, sys.stdout.buffer, sys.stderr))
