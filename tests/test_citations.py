"""Every section, equation, footnote, table and figure the project cites as the paper's exists in
the paper: paper.py lists them (Secs 1-5.1, Eq. 1, footnotes 1-14, Tables 1-6, Figure 1). Another
paper's is named as that paper's, right before it: "ULMFiT Eq. 3", "BERT Sec 5.3", "(Devlin et
al. 2019, Sec 3)". Code comments, docstrings, flag help, explain's output (all in the source),
the README, BENCHMARKS.md, the Makefile and the scripts under bench/ are read."""
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


def citations():
    """(file:line, kind, number) of every citation that is not another paper's."""
    out = []
    for path in FILES:
        text = open(path, encoding="utf-8").read()
        flat = re.sub(r"\s*\n\s*(?:#\s*)?", " ", text)  # a citation may run over a line break
        for kind, (pattern, _) in CITES.items():
            for m in pattern.finditer(flat):
                if OWNED.search(flat[max(0, m.start() - 45):m.start()]):
                    continue
                line = text.count("\n", 0, flat_to_text(text, flat, m.start())) + 1
                for n in re.split(r"\s*(?:,|-|–|and)\s*", m.group(1)):
                    out.append((f"{os.path.relpath(path, ROOT)}:{line}", kind, n))
    return out


def flat_to_text(text, flat, i):
    """The offset in `text` of offset i of its flattened copy (same words, fewer spaces): found by
    counting the non-space characters before it."""
    want = len(re.sub(r"[\s#]", "", flat[:i]))
    seen = 0
    for j, ch in enumerate(text):
        if seen == want:
            return j
        seen += not (ch.isspace() or ch == "#")
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


def test_sec_4_1_is_the_replication_only():
    """Sec 4.1 is the replication (Table 1's grid, fn 11, Tables 2-3); Eq. (1) and gradual
    unfreezing are Sec 3.3's."""
    for path in FILES:
        for n, line in enumerate(open(path, encoding="utf-8"), start=1):
            if "Sec 4.1" in line and "test_citations" not in path:
                assert not re.search(r"unfreez|Eq\.|delta|discriminative", line), f"{path}:{n}"
