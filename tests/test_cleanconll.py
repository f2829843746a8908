"""cleanconll.py and its use: CleanCoNLL built as the repository's script builds it, every bad input
refused before anything appears, and English runs scored on it beside CoNLL-2003.

The fixture tests/fixtures/cleanconll_tiny was cut the way the real files are: conll2003/ holds a
small English CoNLL-2003 in the original layout (IOB1, -DOCSTART- lines, hyphenated headline words,
test.txt with an extra blank line at its end as eng.testb has); cleanconll/ holds masked
annotation files ([TOKEN], POS, Wikipedia link, NER before the last phase, final NER; some labels
corrected) and normal-diff token patches (made with diff(1)) that split hyphenated words and drop
a sentence break, as the real ones do. built/ is the reference: the output of the repository's
create_cleanconll_from_conll03.sh (flairNLP/CleanCoNLL at bedc569f), run by hand with awk, patch,
cut, paste and sed on those inputs (2026-12-03). The same script run on the real dev and test
files gave bytes our build reproduces exactly; tests never read those real files.
"""
import hashlib
import os
import shutil
import urllib.error
from dataclasses import replace

import pytest

import cleanconll
import conll
import corpora
import experiments
import rescore
import tables
import tagger
from conftest import FIXTURES, bert_folder, cpu_only
from experiments import Experiment
from finetune import FinetuneConfig

TINY_CC = os.path.join(FIXTURES, "cleanconll_tiny")
ORIGINAL = os.path.join(TINY_CC, "conll2003")
SOURCE = os.path.join(TINY_CC, "cleanconll")
BUILT = os.path.join(TINY_CC, "built")
SPLIT_FILE = {"train": "train.txt", "dev": "valid.txt", "test": "test.txt"}


def pin(monkeypatch, source=SOURCE, original=ORIGINAL):
    """cleanconll's recorded ids (git blob, sha256, the words' sha256) set to those of the files
    in `source` and `original`, as if the repository and CoNLL-2003 were these small ones."""
    files, words = {}, {}
    for name, (path, _, _) in cleanconll.FILES.items():
        data = open(os.path.join(source, name), "rb").read()
        files[name] = (path, cleanconll.git_blob(data), hashlib.sha256(data).hexdigest())
    for split in cleanconll.WORDS:
        column = cleanconll.first_column(open(os.path.join(original, SPLIT_FILE[split]),
                                              "rb").read())
        while column and column[-1] == b"":
            column.pop()
        words[split] = hashlib.sha256(b"\n".join(column) + b"\n").hexdigest()
    monkeypatch.setattr(cleanconll, "FILES", files)
    monkeypatch.setattr(cleanconll, "WORDS", words)
    monkeypatch.setattr(corpora, "_fetch", None)  # a download would call it: none may happen


def listing(folder):
    return sorted(os.path.relpath(os.path.join(d, n), folder)
                  for d, ds, fs in os.walk(folder) for n in ds + fs)


def test_the_build_is_the_scripts_output_byte_for_byte(tmp_path, monkeypatch):
    """All three splits from the fixture equal what create_cleanconll_from_conll03.sh wrote for
    them, the extra blank line of the original test.txt carried through as paste carries it. The
    folder is cache_dir/cleanconll/<the original's data id>-train, holding those three files and
    nothing else, with no temporary left; dev and test alone go to cache_dir/cleanconll/<id>."""
    pin(monkeypatch)
    out = cleanconll.cleanconll_dir(ORIGINAL, SOURCE, str(tmp_path), train=True)
    data_id = corpora.data_id(ORIGINAL, "en")
    assert out == os.path.join(tmp_path, "cleanconll", data_id + "-train")
    assert sorted(os.listdir(out)) == ["cleanconll.dev", "cleanconll.test", "cleanconll.train"]
    for split in ("train", "dev", "test"):
        with open(os.path.join(out, f"cleanconll.{split}"), "rb") as a, \
                open(os.path.join(BUILT, f"cleanconll.{split}"), "rb") as b:
            assert a.read() == b.read(), split
    assert not [p for p in listing(str(tmp_path)) if p.endswith(".tmp")]
    two = cleanconll.cleanconll_dir(ORIGINAL, SOURCE, str(tmp_path))
    assert two == os.path.join(tmp_path, "cleanconll", data_id)
    assert sorted(os.listdir(two)) == ["cleanconll.dev", "cleanconll.test"]


def test_cleanconlls_files_are_fetched_once_checked_and_kept_whole(tmp_path, monkeypatch):
    """No folder of CleanCoNLL's files given: the four that dev and test need are fetched through
    corpora.fetch from the pinned commit's URLs, kept in cache_dir/cleanconll/files, and the build
    equals the script's; a second build (the folder deleted) fetches nothing. A file served with
    other bytes is refused by its git blob id, and neither it nor a built folder is kept."""
    pin(monkeypatch)
    serve = {cleanconll.RAW + path: os.path.join(SOURCE, name)
             for name, (path, _, _) in cleanconll.FILES.items()}
    fetched = []

    def fetch(url, dest):
        fetched.append(url.rsplit("/", 1)[1])
        shutil.copy(serve[url], dest)
    monkeypatch.setattr(corpora, "_fetch", fetch)
    cache = tmp_path / "cache"
    out = cleanconll.cleanconll_dir(ORIGINAL, "", str(cache))
    assert fetched == ["dev_tokens.patch", "cleanconll_annotations.dev", "test_tokens.patch",
                       "cleanconll_annotations.test"]
    assert sorted(os.listdir(cache / "cleanconll" / "files")) == sorted(fetched)
    for split in ("dev", "test"):
        with open(os.path.join(out, f"cleanconll.{split}"), "rb") as a, \
                open(os.path.join(BUILT, f"cleanconll.{split}"), "rb") as b:
            assert a.read() == b.read(), split
    shutil.rmtree(out)
    assert cleanconll.cleanconll_dir(ORIGINAL, "", str(cache)) == out and len(fetched) == 4
    assert not [p for p in listing(str(cache)) if p.endswith(".tmp")]

    def changed(url, dest):
        fetch(url, dest)
        with open(dest, "ab") as f:
            f.write(b"\n")
    monkeypatch.setattr(corpora, "_fetch", changed)
    other = tmp_path / "other"
    with pytest.raises(ValueError, match=r"not flairNLP/CleanCoNLL's dev_tokens.patch at commit "
                                         r"bedc569f0983"):
        cleanconll.cleanconll_dir(ORIGINAL, "", str(other))
    assert listing(str(other)) == ["cleanconll", "cleanconll/files"]


def test_files_are_fetched_from_the_pinned_commit_and_checked_as_git_does():
    """Each file's URL names the pinned commit and its path in the repository; git_blob gives
    the id git itself gives a file's bytes (`printf 'hello\\n' | git hash-object --stdin`)."""
    assert cleanconll.RAW + cleanconll.FILES["dev_tokens.patch"][0] == (
        "https://raw.githubusercontent.com/flairNLP/CleanCoNLL/"
        "bedc569f0983ddd39c2c729fb5df64be710bcab4/data/patch_files/dev_tokens.patch")
    assert cleanconll.git_blob(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_apply_patch_is_patch_with_a_normal_diff():
    """a (add after), d (delete) and c (change) hunks, worked by hand: words 1-5 "A B C D E" with
    "1a2,3" (add x, y after A), "3d5" (delete C), "5c7" (E -> e) give "A x y B D e"."""
    patch = b"1a2,3\n> x\n> y\n3d5\n< C\n5c7\n< E\n---\n> e\n"
    words = [b"A", b"B", b"C", b"D", b"E"]
    assert cleanconll.apply_patch(words, patch, "t") == [b"A", b"x", b"y", b"B", b"D", b"e"]
    with pytest.raises(ValueError, match=r"t: hunk 3d5 expects \[b'C'\] at line 3, the "
                                         r"original has \[b'Z'"):
        cleanconll.apply_patch([b"A", b"B", b"Z", b"D", b"E"], patch, "t")


def edited(tmp_path, name, edit):
    """A copy of the fixture's CleanCoNLL files with `name` edited."""
    source = tmp_path / "source"
    shutil.copytree(SOURCE, source)
    path = source / name
    path.write_bytes(edit(path.read_bytes()))
    return str(source)


def test_a_changed_annotation_file_is_refused_by_its_id(tmp_path, monkeypatch):
    """One label changed in the annotations: the file is not the repository's (git blob id), an
    error naming it, and no cleanconll.* is left."""
    pin(monkeypatch)
    source = edited(tmp_path, "cleanconll_annotations.dev", lambda b: b.replace(b"B-PER", b"B-ORG",
                                                                                1))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=r"cleanconll_annotations.dev: not flairNLP/CleanCoNLL's "
                                         r"cleanconll_annotations.dev at commit bedc569f0983"):
        cleanconll.cleanconll_dir(ORIGINAL, source, str(cache))
    assert not [p for p in listing(str(cache)) if "cleanconll." in p or p.endswith(".tmp")]


@pytest.mark.parametrize("name, edit, match", [
    ("test_tokens.patch", lambda b: b.replace(b"< SOCCER-JAPAN", b"< SOCCER-CHINA"),
     r"test patch on .*test.txt: hunk 3c3,5 expects \[b'SOCCER-CHINA'\] at line 3, the original "
     r"has \[b'SOCCER-JAPAN'"),
    ("cleanconll_annotations.test", lambda b: b.replace(b"[TOKEN]\tCD\tO\tO\tO\n", b"\n", 1),
     r"CleanCoNLL's test annotations, line 18: a sentence break where .*test.txt \(patched\) "
     r"has '1996-12-06'"),
    ("cleanconll_annotations.test", lambda b: b + b"[TOKEN]\t.\tO\tO\tO\n",
     r"CleanCoNLL's test annotations have 43 lines, the words of .*test.txt after the patch 42")])
def test_a_patch_or_annotation_that_does_not_fit_is_refused(tmp_path, monkeypatch, name, edit,
                                                            match):
    """Files that pass their id check (as if the repository held them) but do not fit the
    original: a hunk whose words are not there, annotation lines that no longer line up with the
    patched words (a word line made blank: a sentence break meets a word), one line too many. Each
    names the file and what differs; nothing is built."""
    source = edited(tmp_path, name, edit)
    pin(monkeypatch, source)
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=match):
        cleanconll.cleanconll_dir(ORIGINAL, source, str(cache))
    assert not [p for p in listing(str(cache)) if "cleanconll.test" in p or p.endswith(".tmp")]


def test_other_original_files_are_refused_before_any_download(tmp_path, monkeypatch):
    """A CoNLL-2003 copy whose words differ (one word changed) is not the original the patches
    were made for: an error naming the file, found before anything is fetched (_fetch is None
    here and would fail if called) and nothing built."""
    pin(monkeypatch)
    other = tmp_path / "other"
    shutil.copytree(ORIGINAL, other)
    p = other / "valid.txt"
    p.write_text(p.read_text().replace("Emirates", "Emirate"))
    with pytest.raises(ValueError, match=r"valid.txt: its words are not CoNLL-2003 English's dev "
                                         r"words"):
        cleanconll.cleanconll_dir(str(other), "", str(tmp_path / "cache"))
    assert not os.path.exists(tmp_path / "cache" / "cleanconll" / "files")


@pytest.fixture
def english_run(tmp_path, monkeypatch):
    """A tiny model trained on the fixture's English files (CPU), scored on CleanCoNLL built from
    the fixture's CleanCoNLL files (--cleanconll DIR) -> (cfg, exp, record)."""
    pin(monkeypatch)
    monkeypatch.setattr(corpora, "CACHE", str(tmp_path / "cache"))
    rescore._CLEAN.clear()
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, data=ORIGINAL)
    cfg = FinetuneConfig(model=folder, data=ORIGINAL, lr=1e-3, batch_size=4, epochs=2)
    exp = Experiment(out=str(tmp_path / "out"), cleanconll=SOURCE)
    with cpu_only():
        experiments.check_ready(cfg, exp, [cfg])
        return cfg, exp, experiments.run_one(cfg, exp, log=lambda s: None)


def test_an_english_run_is_scored_on_both_and_the_table_shows_both(english_run, tmp_path):
    """The record holds CoNLL-2003 dev/test and CleanCoNLL dev/test scores; the CleanCoNLL test
    F1 is conlleval's on the saved tagger's predictions for the built cleanconll.test, which
    predict prints for that file like any other (its words as CleanCoNLL has them: SOCCER - JAPAN
    three words); the table's row shows both pairs of columns and says what the second is."""
    cfg, exp, rec = english_run
    assert set(rec["cleanconll"]) == {"data", "dev", "test"}
    built = os.path.join(corpora.CACHE, "cleanconll", corpora.data_id(ORIGINAL, "en"),
                         "cleanconll.test")
    gold = conll.read_conll(built)
    assert [w for s in gold for w in s.words][:3] == ["SOCCER", "-", "JAPAN"]
    with cpu_only():
        report = tagger.predict(os.path.join(exp.out, f"run-{rec['key']}"), built,
                                output=str(tmp_path / "p.txt"))
    f1 = float(report.split("FB1:")[1].split()[0])
    assert f1 == pytest.approx(rec["cleanconll"]["test"]["f1"], abs=0.005)
    text = tables.table(exp.out)
    head = text.split("\n")[0]
    assert "| CleanCoNLL dev | CleanCoNLL test |" in head and "CleanCoNLL: the same runs'" in text
    row = text.split("\n")[2].split(" | ")
    assert row[10] == f"{rec['cleanconll']['dev']['f1']:.2f}"


def test_conlleval_reads_a_built_file(tmp_path):
    """conlleval.py -d '\\t' on a built file scores its fourth column (the labels before the
    last correction phase) against its fifth (the final ones), as on any tab-separated file. By
    hand: 34 words and 2 -DOCSTART- lines (conlleval counts them) = 36 tokens; 6 phrases before
    (Nadim Ladki, AL-AIN, United Arab Emirates, Japan as LOC, Asian Cup, Honeywell), 7 after
    (Japan now ORG, Minneapolis a LOC), 5 alike."""
    import subprocess
    import sys
    from conftest import ROOT
    with open(os.path.join(BUILT, "cleanconll.test"), "rb") as f:
        r = subprocess.run([sys.executable, os.path.join(ROOT, "conlleval.py"), "-d", "\t"],
                           stdin=f, capture_output=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"processed 36 tokens with 6 phrases; found: 7 phrases; correct: "
                               b"5.\n")


def test_training_on_cleanconll(tmp_path, monkeypatch):
    """--lang cleanconll trains on a folder holding cleanconll.train/dev/test (here the one
    cleanconll_dir(train=True) builds from the fixture): a run trains and is scored on them, in
    its rows of the table; no paper table stands beside it. Without --data there is no folder to
    train on: an error that says what to pass."""
    pin(monkeypatch)
    data = cleanconll.cleanconll_dir(ORIGINAL, SOURCE, str(tmp_path / "cache"), train=True)
    folder = bert_folder(str(tmp_path / "bert"), layers=1, hidden=16, data=ORIGINAL)
    cfg = FinetuneConfig(model=folder, data=data, lang="cleanconll", scheme="bio", lr=1e-3,
                         batch_size=4, epochs=1)
    exp = Experiment(out=str(tmp_path / "out"), save=False)
    with cpu_only():
        experiments.check_ready(cfg, exp, [cfg])
        rec = experiments.run_one(cfg, exp, log=lambda s: None)
    gold = conll.read_conll(os.path.join(BUILT, "cleanconll.test"))
    assert rec["test"]["gold"] == sum(len(conll.spans(s.tags)) for s in gold)
    assert "cleanconll" not in rec  # its own scores are CleanCoNLL's already
    text = tables.table(exp.out)
    assert "| cleanconll |" in text and "Table 2" not in text
    with pytest.raises(ValueError, match="--lang cleanconll: pass --data DIR"):
        corpora.data_dir("", "cleanconll")


def test_auto_scores_conll_alone_where_cleanconll_cannot_be_built(tmp_path, monkeypatch):
    """--cleanconll auto (the default): English files that are not the original (the tests'
    en_tiny) have nothing CleanCoNLL corrects: no note, no download tried (_fetch is None), and
    runs are scored on CoNLL-2003 alone. The original offline (CleanCoNLL's files neither beside
    it nor fetched): a note before training that says why. A folder given that fails is an
    error; other languages are never scored on it."""
    from conftest import TINY
    pin(monkeypatch)
    monkeypatch.setattr(corpora, "CACHE", str(tmp_path / "cache"))
    rescore._CLEAN.clear()
    notes = []
    cfg = FinetuneConfig(data=TINY)
    assert rescore.clean_sets(cfg, Experiment(), warn=notes.append) is None and notes == []
    with pytest.raises(ValueError, match="its words are not"):
        rescore.clean_sets(cfg, Experiment(cleanconll=SOURCE))
    assert rescore.clean_sets(replace(cfg, lang="germeval"), Experiment()) is None

    def offline(url, dest):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(corpora, "_fetch", offline)
    assert rescore.clean_sets(replace(cfg, data=ORIGINAL), Experiment(), notes.append) is None
    (note,) = notes
    assert note.startswith("note: CleanCoNLL cannot be built here (could not download https://raw"
                           ".githubusercontent.com/flairNLP/CleanCoNLL/") and "Offline? put " \
        "CleanCoNLL's annotation and patch files" in note
