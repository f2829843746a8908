"""conlleval.py against hand-worked cases, seqeval's conlleval-compatible mode, and
outputs of the real conlleval.pl (2004-01-26) stored as fixtures."""
import io
import os
import random
import re
import subprocess
import sys

import pytest
from seqeval.metrics import classification_report

import conlleval
from conftest import FIXTURES, ROOT

SCRIPT = os.path.join(ROOT, "conlleval.py")


def counts(gold, pred):
    """(tokens, correct_tags, gold, found, correct) for sentences of tags."""
    c = conlleval.count(gold, pred)
    return c.tokens, c.correct_tags, c.gold, c.found, c.correct


def run_cli(text, *opts):
    data = text.encode("utf-8") if isinstance(text, str) else text
    return subprocess.run([sys.executable, SCRIPT, *opts], input=data, capture_output=True)


# ----------------------------------------------------------------------------
# Hand-worked chunk logic. Counts are (tokens, correct_tags, gold, found, correct).

def test_iob1_exact_match():
    """IOB1 'I-PER I-PER O I-LOC': I- after O starts a chunk, so PER(0-1) and LOC(3).
    Guess == gold: 4 tokens, 4 right tags, 2 gold, 2 found, 2 correct."""
    tags = [["I-PER", "I-PER", "O", "I-LOC"]]
    assert counts(tags, tags) == (4, 4, 2, 2, 2)


def test_iob1_adjacent_same_type():
    """IOB1 'I-PER B-PER' is two PER chunks (B- splits them); the guess 'I-PER I-PER'
    is one chunk (0-1) matching neither. Tags: word 0 right, word 1 wrong.
    -> (2, 1, 2, 1, 0)."""
    assert counts([["I-PER", "B-PER"]], [["I-PER", "I-PER"]]) == (2, 1, 2, 1, 0)


def test_iob2_i_after_o_starts_chunk():
    """Gold BIO 'B-PER I-PER' = PER(0-1). Guess 'O I-PER': the I- after O starts PER(1),
    which has the wrong span. Word 1 right. -> (2, 1, 1, 1, 0)."""
    assert counts([["B-PER", "I-PER"]], [["O", "I-PER"]]) == (2, 1, 1, 1, 0)


def test_i_of_another_type_starts_chunk():
    """Guess 'B-PER I-LOC': the type change ends PER(0) and starts LOC(1), so two found
    chunks, neither equal to gold PER(0-1). -> (2, 1, 1, 2, 0); per type PER found 1,
    LOC found 1 and gold 0."""
    c = conlleval.count([["B-PER", "I-PER"]], [["B-PER", "I-LOC"]])
    assert (c.tokens, c.correct_tags, c.gold, c.found, c.correct) == (2, 1, 1, 2, 0)
    assert c.found_by_type == {"PER": 1, "LOC": 1} and c.gold_by_type == {"PER": 1}


def test_b_of_another_type_vs_i_of_another_type():
    """Gold 'B-PER I-PER B-LOC', guess 'B-PER I-PER I-LOC': both read PER(0-1) LOC(2)
    (a new type starts a chunk whatever the prefix), so both phrases are correct though
    the last tag differs. -> (3, 2, 2, 2, 2)."""
    assert counts([["B-PER", "I-PER", "B-LOC"]], [["B-PER", "I-PER", "I-LOC"]]) == (3, 2, 2, 2, 2)


def test_sentence_break_cuts_chunk():
    """'B-PER | I-PER' over two sentences: the break is an O, so the I- opens a second
    chunk; gold and guess agree -> (2, 2, 2, 2, 2). The same tags in one sentence are
    one chunk -> (2, 2, 1, 1, 1)."""
    assert counts([["B-PER"], ["I-PER"]], [["B-PER"], ["I-PER"]]) == (2, 2, 2, 2, 2)
    assert counts([["B-PER", "I-PER"]], [["B-PER", "I-PER"]]) == (2, 2, 1, 1, 1)


def test_ioe():
    """IOE 'I-PER E-PER I-PER E-PER' = PER(0-1) PER(2-3) (E then I splits). Guess
    'I-PER I-PER I-PER E-PER' = PER(0-3). Word 1 wrong. -> (4, 3, 2, 1, 0)."""
    gold = [["I-PER", "E-PER", "I-PER", "E-PER"]]
    assert counts(gold, [["I-PER", "I-PER", "I-PER", "E-PER"]]) == (4, 3, 2, 1, 0)


def test_iobes_is_not_understood():
    """conlleval.pl knows no S- and no E-then-B rule: 'B-PER E-PER B-PER E-PER' is ONE
    chunk PER(0-3), and so is 'S-PER S-PER S-PER S-PER' (S- only starts a chunk on a
    type change). The spans agree, so 1 correct phrase with 0 right tags.
    -> (4, 0, 1, 1, 1). Convert IOBES to BIO before scoring."""
    gold = [["B-PER", "E-PER", "B-PER", "E-PER"]]
    assert counts(gold, [["S-PER"] * 4]) == (4, 0, 1, 1, 1)


def test_s_then_o_closes_on_type_change():
    """Gold 'S-PER S-PER' = PER(0-1) (no split). Guess 'S-PER O': the O has type '', a
    type change after a non-O tag, so the guess is PER(0). -> (2, 1, 1, 1, 0)."""
    assert counts([["S-PER", "S-PER"]], [["S-PER", "O"]]) == (2, 1, 1, 1, 0)


def test_brackets():
    """Bracket tags are one-word chunks: gold '[-NP ]-NP ]-NP' = 3 chunks. Guess
    '[-NP ]-NP .-NP': '.' never starts a chunk (it is exempt from the type rule), so 2
    chunks, both matching. Tags: 2 right. -> (3, 2, 3, 2, 2)."""
    assert counts([["[-NP", "]-NP", "]-NP"]], [["[-NP", "]-NP", ".-NP"]]) == (3, 2, 3, 2, 2)


def test_types_split_at_first_hyphen_and_zero_is_empty():
    """'B-MISC-X' has type 'MISC-X'. 'B-0' has type '' (perl treats "0" as false), so
    'B-0' and 'B' are the same tag: 1 right tag, 1 correct phrase of type ''."""
    assert conlleval.split_tag("B-MISC-X") == ("B", "MISC-X")
    c = conlleval.count([["B-0"]], [["B"]])
    assert (c.correct_tags, c.correct_by_type) == (1, {"": 1})


def test_empty_and_only_o():
    """No sentences: all counts 0 and the report is the first line alone. Only O tags:
    3 tokens, 3 right, no phrases; P/R/F are 0 by conlleval.pl's zero rules, accuracy 100."""
    c = conlleval.count([], [])
    assert counts([], []) == (0, 0, 0, 0, 0)
    want = "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"
    assert conlleval.report(c) == want
    s = conlleval.evaluate([["O", "O"], ["O"]], [["O", "O"], ["O"]])
    assert (s["tokens"], s["accuracy"], s["precision"], s["recall"], s["f1"]) == (3, 100.0, 0, 0, 0)


@pytest.mark.parametrize("gold, pred", [
    ([["O"]], [["O"], ["O"]]),
    ([["O", "O"]], [["O"]]),
    (["O"], ["O"]),
])
def test_count_rejects_misaligned_input(gold, pred):
    """Different sentence counts, different lengths, or a flat list of tags: ValueError."""
    with pytest.raises(ValueError, match="sentence"):
        conlleval.count(gold, pred)


# ----------------------------------------------------------------------------
# Property: seqeval's default (conlleval-compatible) mode gives the same P/R/F1

def iob_sentence(rng, scheme, types=("PER", "LOC", "ORG", "MISC")):
    """A valid IOB1 or IOB2 sentence from random spans."""
    tags, prev, size = [], None, rng.randint(1, 12)
    while len(tags) < size:
        if rng.random() < 0.4:
            tags.append("O")
            prev = None
            continue
        t = rng.choice(types)
        n = rng.randint(1, 3)
        first = "B" if scheme == "iob2" or prev == t else "I"  # IOB1: B- only between same type
        tags += [f"{first}-{t}"] + [f"I-{t}"] * (n - 1)
        prev = t
    return tags


def noisy(rng, sent, tagset, rate):
    return [rng.choice(tagset) if rng.random() < rate else t for t in sent]


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("scheme", ["iob1", "iob2", "any"])
def test_matches_seqeval(scheme):
    """200 seeded random corpora per scheme ('any' = arbitrary O/B-/I- strings): overall
    and per-type precision, recall and F1 equal seqeval's default mode (in percent)."""
    rng = random.Random({"iob1": 1, "iob2": 2, "any": 3}[scheme])
    tagset = ["O"] + [f"{p}-{t}" for p in "BI" for t in ("PER", "LOC", "ORG", "MISC")]
    for _ in range(200):
        n = rng.randint(1, 6)
        if scheme == "any":
            gold = [[rng.choice(tagset) for _ in range(rng.randint(1, 10))] for _ in range(n)]
        else:
            gold = [iob_sentence(rng, scheme) for _ in range(n)]
        pred = [noisy(rng, s, tagset, rng.choice([0.0, 0.1, 0.3, 1.0])) for s in gold]
        ours = conlleval.evaluate(gold, pred)
        ref = classification_report(gold, pred, output_dict=True, zero_division=0)
        micro = ref.pop("micro avg")
        assert ours["precision"] == pytest.approx(100 * micro["precision"], abs=1e-9)
        assert ours["recall"] == pytest.approx(100 * micro["recall"], abs=1e-9)
        assert ours["f1"] == pytest.approx(100 * micro["f1-score"], abs=1e-9)
        ref = {t: v for t, v in ref.items() if not t.endswith(" avg")}
        assert sorted(ours["per_type"]) == sorted(ref)
        for t, v in ref.items():
            got = ours["per_type"][t]
            assert got["gold"] == v["support"]
            assert got["f1"] == pytest.approx(100 * v["f1-score"], abs=1e-9)
            assert got["precision"] == pytest.approx(100 * v["precision"], abs=1e-9)


# ----------------------------------------------------------------------------
# Report text

EXAMPLE_GOLD = [["B-PER", "I-PER", "O"], ["B-ORG"]]
EXAMPLE_PRED = [["B-PER", "I-PER", "B-LOC"], ["B-ORG"]]


def test_report_golden():
    """Counts by hand: 4 tokens, 3 right tags (75.00%), gold PER ORG, found PER LOC ORG,
    2 correct: P 2/3 -> ' 66.67' (%6.2f), R 100.00, FB1 2*66.67*100/166.67 = 80.00.
    Per type, '%17s' right-aligns the name and the last field is the found count."""
    want = ("processed 4 tokens with 2 phrases; found: 3 phrases; correct: 2.\n"
            "accuracy:  75.00%; precision:  66.67%; recall: 100.00%; FB1:  80.00\n"
            "              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1\n"
            "              ORG: precision: 100.00%; recall: 100.00%; FB1: 100.00  1\n"
            "              PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  1\n")
    assert conlleval.report(conlleval.count(EXAMPLE_GOLD, EXAMPLE_PRED)) == want


def test_report_latex_golden():
    """The same counts through conlleval.pl -l's formats: a header ending in '\\\\\\hline'
    with no newline, then '\\n%-7s &  %6.2f\\% & %6.2f\\% & %6.2f \\\\' per type,
    '\\hline\\n', and the Overall row."""
    want = ("        & Precision &  Recall  & F$_{\\beta=1} \\\\\\hline\n"
            "LOC     &    0.00\\% &   0.00\\% &   0.00 \\\\\n"
            "ORG     &  100.00\\% & 100.00\\% & 100.00 \\\\\n"
            "PER     &  100.00\\% & 100.00\\% & 100.00 \\\\\\hline\n"
            "Overall &   66.67\\% & 100.00\\% &  80.00 \\\\\\hline\n")
    assert conlleval.report(conlleval.count(EXAMPLE_GOLD, EXAMPLE_PRED), latex=True) == want


def test_scores_dict():
    """The same example as a dict: overall P 200/3, R 100, F1 80, accuracy 75; LOC has
    found 1, gold 0, correct 0."""
    s = conlleval.evaluate(EXAMPLE_GOLD, EXAMPLE_PRED)
    assert s["precision"] == pytest.approx(200 / 3) and s["recall"] == 100.0
    assert s["f1"] == pytest.approx(80.0) and s["accuracy"] == 75.0
    assert (s["gold"], s["found"], s["correct"]) == (2, 3, 2)
    assert s["per_type"]["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                    "gold": 0, "found": 1, "correct": 0}


@pytest.mark.parametrize("opts, golden", [([], "conlleval_mixed.out"),
                                          (["-l"], "conlleval_mixed_latex.out")])
def test_cli_matches_perl_output(opts, golden):
    """conlleval_mixed.txt mixes IOB1/IOB2/IOE/S-/bracket/'.'/'B-0'/'B'/hyphenated and
    UTF-8 types, -DOCSTART-, -X- and blank lines. The .out files are the stdout of the
    real conlleval.pl (2004-01-26) on it; ours must match byte for byte (note the empty
    type printed twice and the UTF-8 name padded by bytes, as perl does)."""
    with open(os.path.join(FIXTURES, "conlleval_mixed.txt"), "rb") as f:
        data = f.read()
    with open(os.path.join(FIXTURES, golden), "rb") as f:
        want = f.read()
    r = run_cli(data, *opts)
    assert (r.returncode, r.stdout) == (0, want)


# ----------------------------------------------------------------------------
# Command line: options and errors

def test_cli_same_as_library_and_docstart_is_a_token():
    """The file form of EXAMPLE_* with a '-DOCSTART-' line first: the docstart line is a
    token (O/O, right), so 5 tokens, 4 right tags (80.00%); phrases as in the library."""
    lines = ["-DOCSTART- -X- O O", ""]
    for g, p in zip(EXAMPLE_GOLD, EXAMPLE_PRED):
        lines += [f"w x {a} {b}" for a, b in zip(g, p)] + [""]
    r = run_cli("\n".join(lines) + "\n")
    c = conlleval.count([["O"]] + EXAMPLE_GOLD, [["O"]] + EXAMPLE_PRED)
    assert r.returncode == 0 and r.stdout.decode() == conlleval.report(c)
    assert r.stdout.decode().startswith("processed 5 tokens with 2 phrases;")
    assert "accuracy:  80.00%;" in r.stdout.decode()


def test_cli_raw_and_outside_tag():
    """-r -o NIL: 'PER PER', 'PER NIL', 'NIL LOC' become B-PER B-PER, B-PER O, O B-LOC.
    Gold PER(0) PER(1); guess PER(0) LOC(2); PER(0) correct. 1 right tag of 3 (33.33%),
    P = R = F = 50. PER: P 1/1, R 1/2, F 66.67, found 1; LOC: 0, found 1."""
    r = run_cli("a PER PER\nb PER NIL\nc NIL LOC\n", "-r", "-o", "NIL")
    assert r.stdout.decode() == (
        "processed 3 tokens with 2 phrases; found: 2 phrases; correct: 1.\n"
        "accuracy:  33.33%; precision:  50.00%; recall:  50.00%; FB1:  50.00\n"
        "              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  1\n"
        "              PER: precision: 100.00%; recall:  50.00%; FB1:  66.67  1\n")


def test_cli_delimiter_and_boundary():
    """-d with a tab gives the same report as spaces. -b === makes '=== x O O' a
    sentence break: 2 tokens instead of 3 (phrases are 2 either way, since I- after O
    starts a chunk)."""
    text = "w x B-PER B-PER\n=== x O O\nw x I-PER I-PER\n"
    plain = run_cli(text).stdout.decode()
    assert run_cli(text.replace(" ", "\t"), "-d", "\t").stdout.decode() == plain
    assert plain.startswith("processed 3 tokens with 2 phrases;")
    with_b = run_cli(text, "-b", "===").stdout.decode()
    assert with_b.startswith("processed 2 tokens with 2 phrases;")


def test_cli_delimiter_runs_of_blanks():
    """-d '\\s+' splits at runs of spaces and tabs, so " \\t " between columns scores as one space.
    Like conlleval.pl on bytes, it takes ASCII whitespace only: UTF-8 letters that hold byte 0xA0
    or 0x85 (Р = D0 A0, х = D1 85) stay whole, and the report equals the default one."""
    text = "Россия x B-LOC B-LOC\nхорошо x O O\nliegt x O O\n"
    plain = run_cli(text)
    assert plain.returncode == 0
    assert plain.stdout.decode().startswith("processed 3 tokens with 1 phrases")
    assert run_cli(text, "-d", "\\s+").stdout == plain.stdout
    assert run_cli(text.replace(" ", " \t "), "-d", "\\s+").stdout == plain.stdout


def test_cli_delimiter_python_cannot_read():
    """-d '(' is no Python regex: exit 255 (perl's status for a bad regex), no report, and a
    message that says so."""
    r = run_cli("a O O\n", "-d", "(")
    assert r.returncode == 255 and r.stdout == b""
    assert "no Python regex" in r.stderr.decode()




def test_cli_column_mismatch_error():
    """Line 3 has 3 columns where line 1 set 4: perl prints 'unexpected number of
    features: 3 (4)' and exits 1; we print the same plus the line number."""
    r = run_cli("a x O O\nb x O O\nc O O\n")
    err = r.stderr.decode()
    assert r.returncode == 1 and r.stdout == b""
    assert "line 3" in err and "unexpected number of features: 3 (4)" in err


@pytest.mark.parametrize("text, opts, needle", [
    ("a\n", [], "line 1"),                      # one column: no gold/guess pair (perl dies)
    ("a O O\n", ["-x"], "unknown argument -x"),
    ("a O O\n", ["-d"], "-d requires a value"),
    ("a O O\n", ["file.txt"], "unexpected command line argument"),
])
def test_cli_dies_like_perl(text, opts, needle):
    """Where conlleval.pl dies we exit 255 with a message naming the problem."""
    r = run_cli(text, *opts)
    assert r.returncode == 255 and needle in r.stderr.decode() and r.stdout == b""


@pytest.mark.parametrize("line, want", [
    (" a B-PER", ["", "a", "B-PER"]),  # a leading delimiter makes an empty first column
    ("a  B-PER", ["a", "", "B-PER"]),  # two spaces: an empty column between
    ("a B-PER  ", ["a", "B-PER"]),     # trailing empties are dropped, as perl's split does
    ("   ", []),                        # so a line of spaces is a sentence break
])
def test_split_fields_like_perl(line, want):
    """Perl's split(/ /, $line) results, checked against perl by hand."""
    assert conlleval.split_fields(line, re.compile(" ")) == want


# ----------------------------------------------------------------------------
# Command line: help, notes on stderr, inputs that must not trace back

def call_main(data, *opts):
    """(exit status, stdout bytes, stderr text) of conlleval.main, in process."""
    out, err = io.BytesIO(), io.StringIO()
    code = conlleval.main(list(opts), io.BytesIO(data), out, err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("opts", [["-h"], ["--help"], ["-l", "-h"]])
def test_cli_help(opts):
    """-h/--help (ours; the perl script dies on it): the usage and every option with its
    meaning on stdout, exit 0, stdin not read."""
    code, out, err = call_main(b"not read\n", *opts)
    text = out.decode()
    assert (code, err) == (0, "") and text.startswith(conlleval.USAGE)
    for flag in ("-l ", "-r ", "-d DELIM", "-o OUTSIDE", "-b BOUNDARY", "-h, --help"):
        assert f"\n  {flag}" in text
    assert "-d DELIM     field delimiter, a Python regex" in text


def test_cli_crlf_note():
    """CRLF: "a B-PER B-PER\\r" and "b O O\\r". The perl script keeps the \\r, so the guesses
    are "B-PER\\r" (type "PER\\r") and "O\\r", which is no O: a chunk of type "" (a type
    change after B-). 2 tokens, 0 right tags; gold PER(0); found "PER\\r"(0) and ""(1); 0
    correct. Types in sort order: "", "PER" (found 0), "PER\\r". stdout is that report, the
    same as without the note; stderr has the note."""
    code, out, err = call_main(b"a B-PER B-PER\r\nb O O\r\n")
    zeros = "precision:   0.00%; recall:   0.00%; FB1:   0.00"
    assert code == 0 and out.decode("latin-1") == (
        "processed 2 tokens with 1 phrases; found: 2 phrases; correct: 0.\n"
        f"accuracy:   0.00%; {zeros}\n"
        f"{'':>17}: {zeros}  1\n"
        f"{'PER':>17}: {zeros}  0\n"
        f"{'PER' + chr(13):>17}: {zeros}  1\n")
    assert "2 of 2 lines end in \\r (CRLF)" in err and "tr -d '\\r'" in err


def test_cli_tab_note():
    """Tab-separated columns with the default delimiter: a line is one column, so the perl
    script dies (255, nothing on stdout); the note says to pass -d '\\t'. With -d '\\t' no
    note, and the report is that of the space-separated file."""
    tabbed = b"w\tx\tB-PER\tB-PER\n\nw\tx\tO\tB-LOC\n"
    code, out, err = call_main(tabbed)
    assert (code, out) == (255, b"") and "line 1: unexpected number of features" in err
    assert "2 of 3 lines hold tabs" in err and "pass -d '\\t'" in err
    code, out, err = call_main(tabbed, "-d", "\\t")
    assert (code, err) == (0, "") and out == call_main(tabbed.replace(b"\t", b" "))[1]


def test_cli_notes_leave_stdout_alone():
    """A tab inside a column (no tab-separated file: 4 columns either way) and CRLF on one line
    of three: stdout is exactly the report the library makes of those lines, notes aside."""
    data = b"w x\ty B-PER B-PER\nv x O O\r\nu x B-LOC B-LOC\n"
    code, out, err = call_main(data)
    lines = data.decode("latin-1").split("\n")[:-1]
    want = conlleval.report(conlleval.scan(conlleval.read_rows(lines)))
    assert code == 0 and out == want.encode("latin-1")
    assert err.count("conlleval: note:") == 2 and "1 of 3 lines" in err


@pytest.mark.parametrize("data, want", [
    (b"", "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"),
    (b"\n\n", "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"),
    (b"\xff\xfe w B-\xe9 B-\xe9\n", "processed 1 tokens with 1 phrases; found: 1 phrases; "
                                    "correct: 1.\n"),
])
def test_cli_empty_or_undecodable_input(data, want):
    """Empty input, blank lines only, and bytes that are no UTF-8 (read as bytes, as perl
    does): a report, exit 0, no traceback."""
    r = run_cli(data)
    assert r.returncode == 0 and r.stderr == b""
    assert r.stdout.startswith(want.encode())


def test_cli_stdin_closed():
    """stdin closed (`<&-`, so Python's sys.stdin is None): read as empty input, as conlleval.pl
    does: the empty report, exit 0, nothing on stderr."""
    r = subprocess.run(["bash", "-c", 'exec "$0" "$1" <&-', sys.executable, SCRIPT],
                       capture_output=True)
    assert (r.returncode, r.stderr) == (0, b"")
    assert r.stdout == run_cli(b"").stdout == (
        b"processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n")


def test_cli_broken_pipe():
    """The reader goes away before the report (`| head -0`): no traceback on stderr."""
    p = subprocess.Popen([sys.executable, SCRIPT], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()
    _, err = p.communicate(b"w x B-PER B-PER\n" * 1000)
    assert b"Traceback" not in err and b"Error" not in err
