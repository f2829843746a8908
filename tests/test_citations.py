"""Every section, equation, footnote, table and figure the project cites as the paper's exists in
the paper: paper.py lists them (Secs 1-5.1, Eq. 1, footnotes 1-14, Tables 1-6, Figure 1). Another
paper's is named as that paper's, right before it: "ULMFiT Eq. 3", "BERT Sec 5.3", "(Devlin et
al. 2019, Sec 3)". And each is cited for what it holds (PLACES: Sec 2.4 is mBERT, Sec 3.3 Eq. 1
and unfreezing, ...), as the words on the citing line say. Code comments, docstrings, flag help,
explain's output (all in the source), the README, BENCHMARKS.md, the Makefile and the scripts
under bench/ are read."""
import glob
import os
import re

import pytest

import paper
from conftest import ROOT

FILES = sorted(glob.glob(os.path.join(ROOT, "*.py")) + glob.glob(os.path.join(ROOT, "bench", "*"))
               + glob.glob(os.path.join(ROOT, "tests", "*.py"))
               + [os.path.join(ROOT, n) for n in ("README.md", "BENCHMARKS.md", "Makefile")])
FILES.remove(os.path.abspath(__file__))  # its own examples of wrong citations
# the papers and programs whose own sections are cited here, as the text names them
OWNERS = (r"(?:BERT|ULMFiT|ULMFiT's|Devlin et al\.|Howard & Ruder|Vaswani et al\.|their|"
          r"Loshchilov & Hutter|Tjong Kim Sang & De Meulder|Benikova et al\.)")
OWNED = re.compile(OWNERS + r"[\s,(]*(?:\d{4}[a-z]?)?[\s,;(]*$")
DOTTED = r"\d+(?:\.\d+)+"
CITES = {  # kind -> (pattern, the numbers the paper has)
    "Sec": (re.compile(rf"\bSec(?:tion)?s?\.?\s+(\d+(?:\.\d+)*(?:\s*(?:,|-|–|and)\s*{DOTTED})*)"),
            set(paper.SECTIONS)),
    "Eq": (re.compile(r"\bEq(?:uation)?s?\.?\s*\(?(\d+)\)?"), {str(n) for n in paper.EQUATIONS}),
    "fn": (re.compile(r"\b(?:fn|footnote)s?\.?\s+(\d+)"),
           {str(n) for n in range(1, paper.FOOTNOTES + 1)}),
    "Table": (re.compile(r"\bTables?\s+(\d+(?:\s*(?:-|–|,|and)\s*\d+)*)"),
              {str(n) for n in range(1, paper.TABLES + 1)}),
    "Figure": (re.compile(r"\bFig(?:ure)?s?\.?\s+(\d+)"),
               {str(n) for n in range(1, paper.FIGURES + 1)}),
    "App": (re.compile(r"\bApp(?:endix)?\.\s+([A-Z][.\d]*)"), set()),  # the paper has none
}


def scan():
    """(path, line, kind, numbers) of every citation that is not another paper's: a citation
    may run over a line break and name several places ("Sec 3.1-3.3, 4.1")."""
    out = []
    for path in FILES:
        text = open(path, encoding="utf-8").read()
        flat = re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)  # a citation may run over a line break
        for kind, (pattern, _) in CITES.items():
            for m in pattern.finditer(flat):
                if OWNED.search(flat[max(0, m.start() - 45):m.start()]):
                    continue
                line = text.count("\n", 0, flat_to_text(text, flat, m.start())) + 1
                out.append((path, line, kind, re.split(r"\s*(?:,|-|–|and)\s*", m.group(1))))
    return out


def citations():
    """(file:line, kind, number) of every citation that is not another paper's."""
    return [(f"{os.path.relpath(path, ROOT)}:{line}", kind, n)
            for path, line, kind, numbers in scan() for n in numbers]


def flat_to_text(text, flat, i):
    """The offset in `text` of offset i of its flattened copy (same words, fewer spaces): found by
    counting the non-space characters before it; the offset of the next such character, so that
    a citation that opens a line is that line's, not the one before."""
    want = len(re.sub(r"[\s#]", "", flat[:i]))
    seen = 0
    for j, ch in enumerate(text):
        skipped = ch.isspace() or ch == "#"
        if seen == want and not skipped:
            return j
        seen += not skipped
    return len(text)


def test_every_citation_of_the_paper_exists_in_it():
    cited = citations()
    assert len(cited) > 100, "the scan found the project's citations"
    wrong = [c for c in cited if c[2] not in CITES[c[1]][1]]
    assert not wrong, f"cited as the paper's, but the paper has no such {wrong}"


@pytest.mark.parametrize("text, ok", [
    ("Eq. (1) rates", True), ("see Eq. 3 of the paper", False), ("ULMFiT Eq. 3", True),
    ("ULMFiT's Eq. (3)", True), ("(Devlin et al. 2019, Sec 3)", True), ("BERT Sec 5.3", True),
    ("Sec 4.1, fn 11", True), ("Sec 3.4", False), ("fn 15", False), ("Table 7", False),
    ("Sec 3.1-3.3, 4.1, 4.2", True), ("Sec 3.1, 4.3", False), ("App. A.1", False),
    ("BERT Sec 3.1 Task #1, BERT App. A.1", True), ("Sec 3.3, 12 layers", True)])
def test_the_scan_itself(tmp_path, monkeypatch, text, ok):
    """The scan on hand-made lines: the paper's own numbers pass, others fail unless the line
    names their paper right before them; "12 layers" after a section is no section."""
    f = tmp_path / "x.py"
    f.write_text(f"# {text}\n")
    monkeypatch.setattr(__import__(__name__), "FILES", [str(f)])
    assert (not [c for c in citations() if c[2] not in CITES[c[1]][1]]) == ok


# What each cited place of the paper is for (../shared/paper/FACTS.md), as words: a line that cites
# one place alone names one of its words, there or on the line before (a phrase and its citation
# may be split by a line break; a line citing several places is a list, a file map's row, and is
# not held to them), and no line that cites it names a word of another place.
PLACES = {  # place: (what it holds, one of these words on the line, none of these)
    "Sec 2.2": ("ULMFiT: LM fine-tuning on the task text (step 1.5), STLR, discriminative rates, "
                "gradual unfreezing", r"ULMFiT|LM|step 1\.5|slanted|discriminative|unfreez", None),
    "Sec 2.3": ("BERT: masked-LM pre-training", r"BERT", r"mBERT|[Mm]ultilingual"),
    "Sec 2.4": ("mBERT: Wikipedia of 104 languages", r"mBERT|[Mm]ultilingual|104", None),
    "Sec 3.1": ("the data: CoNLL-2003 English and German, IOB1 and BIO",
                r"CoNLL|GermEval|IOB1|BIO|scheme|tags|corp(?:us|ora)", None),
    "Sec 3.2": ("the method: WordPiece, the windows, one linear layer, conlleval's F1",
                r"[Pp]iece|window|feature|linear|F1|conlleval|scor", None),
    "Sec 3.3": ("Eq. 1's rates, gradual unfreezing (3 layers an epoch, 5 epochs), STLR read as "
                "BERT's warmup", r"Eq\.|delta|rate|unfreez|thaw|frozen|never train|layers|epochs|"
                r"schedul|slanted|learn how fast", None),
    "Sec 4.1": ("the replication: Table 1's grid, chosen on dev, fn 11's setting",
                r"grid|Table 1|dev|fn 11|batch", r"unfreez|Eq\.|delta|discriminative"),
    "Sec 4.1.1": ("mBERT and German: 3 epochs", r"German|3 epochs|mBERT", None),
    "Sec 4.2": ("Tables 4-6: warmup, the ULMFiT methods, masked-LM epochs first",
                r"Tables? [4-6]|masked-LM|lm_finetune|warmup|not higher|--ablations", None),
    "Sec 5.1": ("future work: zero-shot transfer (Wu & Dredze 2019)", r"zero-shot", None),
    "Eq 1": ("eta_n = eta_0 / delta^n, discriminative rates (Sec 3.3)",
             r"rate|delta|eta|\blr\b|discriminative|param_groups|unfreez|ULMFiT", None),
    "BERT Sec 5.3": ("NER with BERT: each word's first piece, document context",
                     r"first piece|document", None),
}
BERT_53 = re.compile(r"\bBERT Sec 5\.3\b")


def cited_lines():
    """(file:line, place, the line's text, the line before's, whether it cites that place alone)
    for each citation of a place PLACES names: the paper's (scan) and BERT Sec 5.3."""
    found = [(path, line, f"{kind} {n}", len(numbers)) for path, line, kind, numbers in scan()
             for n in numbers]
    for path in FILES:
        text = open(path, encoding="utf-8").read()
        flat = re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)
        for m in BERT_53.finditer(flat):
            found.append((path, text.count("\n", 0, flat_to_text(text, flat, m.start())) + 1,
                          "BERT Sec 5.3", 1))
    per_line = {}
    for path, line, _, n in found:
        per_line[path, line] = per_line.get((path, line), 0) + n
    lines = {path: open(path, encoding="utf-8").read().split("\n") for path in FILES}
    return [(f"{os.path.relpath(path, ROOT)}:{line}", place, lines[path][line - 1],
             lines[path][line - 2] if line > 1 else "", per_line[path, line] == 1)
            for path, line, place, _ in found if place in PLACES]


def misplaced(cited):
    """The citations of `cited` (cited_lines) whose words are not their place's."""
    need = [c for c in cited if c[4] and not re.search(PLACES[c[1]][1], f"{c[3]}\n{c[2]}")]
    never = [c for c in cited if PLACES[c[1]][2] and re.search(PLACES[c[1]][2], c[2])]
    return need + never


def test_each_citation_names_what_its_place_is_for():
    """Sec 2.4 is mBERT, Sec 3.3 Eq. 1 and unfreezing, Sec 4.1.1 German, BERT Sec 5.3 the first
    piece (PLACES): a line that cites one of them alone names one of its words, and no line that
    cites it names a word of another (`grep -n "Sec 2.3" finetune.py` finds no mBERT)."""
    cited = cited_lines()
    assert {c[1] for c in cited} >= {"Sec 2.3", "Sec 2.4", "Sec 3.3", "Sec 4.1.1", "Eq 1",
                                     "BERT Sec 5.3"}, "the scan found them"
    wrong = [f"{where} ({place}: {PLACES[place][0]}): {line.strip()}"
             for where, place, line, _, _ in misplaced(cited)]
    assert not wrong, "\n".join(["cited for what its place does not hold:"] + wrong)


@pytest.mark.parametrize("text, ok", [
    ("model = 'bert-base-multilingual-cased'  # Sec 2.4: mBERT", True),
    ("the encoder, MLM head  # Sec 2.4", False), ("mBERT's encoder (Sec 2.3)", False),
    ("BERT's masked-LM pre-training (Sec 2.3)", True), ("rate = lr / delta  # Eq. (1)", True),
    ("warmup = 0.1  # Eq. 1", False), ("3 epochs for German (Sec 4.1.1)", True),
    ("gradual unfreezing (Sec 4.1)", False), ("labels on the first piece (BERT Sec 5.3)", True),
    ("the classifier (BERT Sec 5.3)", False), ("Sec 3.1, 3.2, Fig. 1", True),
    ("German runs train for\n# 3 epochs (Sec 4.1.1)", True), ("German\n\n# (Sec 4.1.1)", False)])
def test_the_places_check_itself(tmp_path, monkeypatch, text, ok):
    """The check of PLACES on hand-made lines; a line citing several places is not held to
    their words."""
    f = tmp_path / "x.py"
    f.write_text(f"{text}\n")
    monkeypatch.setattr(__import__(__name__), "FILES", [str(f)])
    cited = cited_lines()
    assert cited and (not misplaced(cited)) == ok


def test_sec_4_1_is_the_replication_only():
    """Sec 4.1 is the replication (Table 1's grid, fn 11, Tables 2-3); Eq. (1) and gradual
    unfreezing are Sec 3.3's."""
    for path in FILES:
        for n, line in enumerate(open(path, encoding="utf-8"), start=1):
            if "Sec 4.1" in line and "test_citations" not in path:
                assert not re.search(r"unfreez|Eq\.|delta|discriminative", line), f"{path}:{n}"
