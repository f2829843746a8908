"""corpora.py: each corpus's split files, the free corpora downloaded once and checked, German
dev/test for zero-shot rows (Wu & Dredze 2019), a run's data folder.

Fixtures (made-up sentences): conll_de.txt, germeval_tiny/ and deu_tiny/ as tests/test_conll.py
describes them. Downloads never touch the network: tests replace corpora._fetch and patch
corpora.DOWNLOADS, or serve a broken reply from a local HTTP server.
"""
import dataclasses
import hashlib
import http.server
import os
import re
import shutil
import threading
import urllib.error
import zipfile

import pytest

import conll
import corpora
from conftest import FIXTURES, TINY

DE = os.path.join(FIXTURES, "conll_de.txt")
GE = os.path.join(FIXTURES, "germeval_tiny")
GE_TRAIN = os.path.join(GE, "NER-de-train.tsv")
DEU = os.path.join(FIXTURES, "deu_tiny")
# germeval_tiny's (sentences, words) per split, counted by hand (test_conll.py's stats: 6+11+8)
GE_COUNTS = {"NER-de-train.tsv": (3, 25), "NER-de-dev.tsv": (1, 5), "NER-de-test.tsv": (1, 6)}
GE_MORE = 35  # "over 35 tokens" in all: the 36 of the three files


def test_splits(tmp_path):
    """Both English namings are found (both at once is ambiguous); German missing -> the message
    says how to pass it."""
    for names in (["train.txt", "valid.txt", "test.txt"], ["eng.train", "eng.testa", "eng.testb"]):
        d = tmp_path / names[0]
        d.mkdir()
        for n in names:
            (d / n).write_text("a X O\n")
        want = dict(train=str(d / names[0]), dev=str(d / names[1]), test=str(d / names[2]))
        assert corpora.splits(d) == want
    with pytest.raises(FileNotFoundError,
                       match=r"deu.train, deu.testa, deu.testb \(licensed, so never "
                             r"downloaded: make reproduce-de DE_DATA="):
        corpora.splits(tmp_path / "train.txt", lang="de")
    for n in ("eng.train", "eng.testa", "eng.testb"):
        (tmp_path / "train.txt" / n).write_text("a X O\n")
    with pytest.raises(FileNotFoundError, match="both naming schemes"):
        corpora.splits(tmp_path / "train.txt")
    with pytest.raises(FileNotFoundError, match="DE_DATA"):
        corpora.splits(tmp_path / "german", lang="de")


def patch_corpus(monkeypatch, lang, **changes):
    """Replace fields of corpora.DOWNLOADS[lang] for one test (tiny files need tiny counts)."""
    new = dataclasses.replace(corpora.DOWNLOADS[lang], **changes)
    monkeypatch.setitem(corpora.DOWNLOADS, lang, new)


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def fake_archive(tmp_path, monkeypatch):
    """A small conll2003.zip (files inside a folder, as some copies have) standing in for the
    real one, recorded under the real URL."""
    zpath = tmp_path / "conll2003.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for name in ("train.txt", "valid.txt", "test.txt"):
            text = "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nsays VBZ B-VP O\n\nX NN B-NP O\n"
            z.writestr(f"conll2003/{name}", text)
        z.writestr("conll2003/metadata", "not CoNLL")
    (urls, _), = corpora.DOWNLOADS["en"].files.values()
    patch_corpus(monkeypatch, "en", files={"conll2003.zip": (urls, sha(zpath))},
                 counts={"train.txt": (2, 3), "valid.txt": (2, 3), "test.txt": (2, 3)})
    fetched = []

    def fetch(url, dest):
        fetched.append(url)
        shutil.copy(zpath, dest)
    monkeypatch.setattr(corpora, "_fetch", fetch)
    return fetched


def test_download_english(tmp_path, fake_archive):
    """Fetched once from data.deepai.org, checked (sha256, sentence and token counts), unpacked to
    cache/conll2003-en, the archive kept beside it; the second call uses the cache."""
    d = corpora.download("en", tmp_path / "cache")
    assert d == os.path.join(tmp_path, "cache", "conll2003-en")
    assert fake_archive == ["https://data.deepai.org/conll2003.zip"]
    assert sorted(os.listdir(d)) == ["test.txt", "train.txt", "valid.txt"]
    assert sorted(os.listdir(tmp_path / "cache")) == ["conll2003-en", "conll2003.zip"]
    assert corpora.splits(d)["dev"] == os.path.join(d, "valid.txt")
    assert corpora.download("en", tmp_path / "cache") == d and len(fake_archive) == 1


def test_download_rejects_bad_archive(tmp_path, fake_archive, monkeypatch):
    """A wrong checksum, wrong sentence counts or a missing member stop the download, each with an
    error that says what to do, and no data folder (nor any temporary) is left: a file failing
    its sha256 is not kept at all; an archive that passed it stays beside the cache's folders."""
    (urls, real), = corpora.DOWNLOADS["en"].files.values()
    patch_corpus(monkeypatch, "en", files={"conll2003.zip": (urls[:1], "0" * 64)})
    with pytest.raises(ValueError) as e:
        corpora.download("en", tmp_path / "c1")
    assert str(e.value) == (f"{urls[0]}: sha256 {real}, expected {'0' * 64}; the archive changed "
                            f"upstream: check it by hand, unzip it and pass --data DIR (make "
                            f"reproduce-en DATA=DIR)")
    assert os.listdir(tmp_path / "c1") == []
    patch_corpus(monkeypatch, "en", files={"conll2003.zip": (urls[:1], real)},
                 counts={"train.txt": (14041, 3), "valid.txt": (2, 3), "test.txt": (2, 3)})
    with pytest.raises(ValueError, match="2 sentences, CoNLL-2003 English has 14041"):
        corpora.download("en", tmp_path / "c2")
    assert os.listdir(tmp_path / "c2") == ["conll2003.zip"]  # no half-checked folder left behind


def test_an_archive_without_a_split_is_refused_and_nothing_is_unpacked(tmp_path, monkeypatch):
    """A conll2003.zip that passes its sha256 but lacks valid.txt: an error naming the archive and
    the file and saying what to pass; train.txt, unpacked before it, is not left anywhere."""
    zpath = tmp_path / "src.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for name in ("train.txt", "test.txt"):
            z.writestr(name, "EU NNP B-NP B-ORG\n")
    patch_corpus(monkeypatch, "en",
                 files={"conll2003.zip": (("https://x/conll2003.zip",), sha(zpath))})
    monkeypatch.setattr(corpora, "_fetch", lambda url, dest: shutil.copy(zpath, dest))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match=re.escape(f"{cache}/conll2003.zip: no valid.txt inside; "
                                                   f"pass --data DIR with the three files")):
        corpora.download("en", cache)
    assert os.listdir(cache) == ["conll2003.zip"]


def test_download_offline(tmp_path, monkeypatch, capsys):
    """No network: an OSError that says how to use a local copy, for each corpus; where a file has
    several sources, the error is the last one's, and each one before it is said on stderr."""
    def offline(url, dest):
        raise urllib.error.URLError("no route to host")
    monkeypatch.setattr(corpora, "_fetch", offline)
    with pytest.raises(OSError, match=r"could not download .*conll2003.zip.*--data DIR \(make "
                                      r"reproduce-en DATA=DIR\)"):
        corpora.download("en", tmp_path)
    offline = ("(<urlopen error no route to host>). Offline? Download the three files from "
               "https://sites.google.com/site/germeval2014ner/data (CC-BY 4.0) and pass --data "
               "DIR / make reproduce-germeval GERMEVAL_DATA=DIR")
    want = ("could not download https://drive.usercontent.google.com/download?id=1Jjhbal535VVz2a"
            f"p4v4r_rN1UEHTdLK5P&export=download&confirm=t {offline}")
    capsys.readouterr()
    with pytest.raises(OSError) as e:
        corpora.download("germeval", tmp_path / "g")
    assert str(e.value) == want and os.listdir(tmp_path / "g") == []  # no temp folder left
    assert capsys.readouterr().err == (
        "GermEval 2014: NER-de-train.tsv: could not download https://drive.google.com/uc?export="
        f"download&id=1Jjhbal535VVz2ap4v4r_rN1UEHTdLK5P {offline}; trying the next source\n")


class CutOff(http.server.BaseHTTPRequestHandler):
    """Replies with 40 of its bytes, then hangs up: /chunked in one chunk with no last chunk, any
    other path with a Content-Length of 100."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.send_response(200)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"28\r\n" + b"x" * 40 + b"\r\n")  # 0x28 = 40 bytes
        else:
            self.send_header("Content-Length", 100)
            self.end_headers()
            self.wfile.write(b"x" * 40)
        self.close_connection = True

    def log_message(self, *args):  # keep pytest's output to the test's own
        pass


@pytest.mark.parametrize("path, why", [("/chunked", r"\(IncompleteRead\(40 bytes read\)\)"),
                                       ("/length", r"\(received 40 of 100 bytes\)")],
                         ids=["chunked", "content-length"])
def test_download_cut_off(tmp_path, monkeypatch, path, why):
    """A reply that stops early (the real _fetch, a local server) -> an OSError naming the URL
    that says to run the command again, as experiments.py prints it in one line; not
    http.client's IncompleteRead (no OSError), nor a sha256 that blames upstream. Nothing
    partial stays in the cache."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CutOff)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}{path}"
    patch_corpus(monkeypatch, "en", files={"conll2003.zip": ((url,), "0" * 64)})
    try:
        with pytest.raises(OSError, match=f"could not download {re.escape(url)}: the download "
                                          f"was cut off {why}; run the command again"):
            corpora.download("en", tmp_path)
    finally:
        server.shutdown()
        server.server_close()
    assert os.listdir(tmp_path) == []


def test_fetch_is_whole_or_nothing(tmp_path, monkeypatch):
    """fetch(url, path, check, offline): the bytes reach `path` only once check(their temporary)
    accepts them. A check that fails, a web page in place of the file, or no network each raise
    (the last two saying what to do), and leave `path` as it was (an old file kept, none made)
    with no temporary beside it."""
    served = {"https://x/f": b"the file\n", "https://x/page": b"  <!DOCTYPE html><html></html>"}

    def fetch(url, dest):
        if url not in served:
            raise urllib.error.URLError("no route to host")
        with open(dest, "wb") as f:
            f.write(served[url])
    monkeypatch.setattr(corpora, "_fetch", fetch)
    path, seen = tmp_path / "f", []

    def check(tmp):
        seen.append(open(tmp, "rb").read())
    corpora.fetch("https://x/f", path, check, "pass --data DIR")
    assert path.read_bytes() == b"the file\n" and seen == [b"the file\n"]

    def refuse(tmp):
        raise ValueError("sha256 differs")
    path.write_bytes(b"old")
    with pytest.raises(ValueError, match="sha256 differs"):
        corpora.fetch("https://x/f", path, refuse, "pass --data DIR")
    with pytest.raises(OSError, match=r"https://x/page answered with a web page.*\); pass --data "
                                      r"DIR$"):
        corpora.fetch("https://x/page", path, check, "pass --data DIR")
    with pytest.raises(OSError, match=r"could not download https://x/none \(<urlopen error no "
                                      r"route to host>\)\. Offline\? pass --data DIR$"):
        corpora.fetch("https://x/none", path, check, "pass --data DIR")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["f"]
    with pytest.raises(ValueError):
        corpora.fetch("https://x/f", tmp_path / "g", refuse, "pass --data DIR")
    assert os.listdir(tmp_path) == ["f"]


def test_data_id_names_a_folder_by_its_bytes_and_a_download_without_one(tmp_path, monkeypatch):
    """data "" -> "LANG:" and 12 hex digits of the recorded sha256s, with no download (_fetch is
    None, the cache is never made), the same each time and another for each corpus; a folder ->
    the digest of its split files' bytes: a copy elsewhere is the same data, one word edited is
    other data."""
    monkeypatch.setattr(corpora, "_fetch", None)
    monkeypatch.setattr(corpora, "CACHE", str(tmp_path / "cache"))
    en = corpora.data_id("", "en")
    assert re.fullmatch(r"en:[0-9a-f]{12}", en) and corpora.data_id("", "en") == en
    assert re.fullmatch(r"germeval:[0-9a-f]{12}", corpora.data_id("", "germeval"))
    assert not os.path.exists(tmp_path / "cache")
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(TINY, a)
    shutil.copytree(TINY, b)
    assert re.fullmatch(r"[0-9a-f]{12}", corpora.data_id(str(a), "en"))
    assert corpora.data_id(str(a), "en") == corpora.data_id(str(b), "en") == \
        corpora.data_id(TINY, "en")
    text = (b / "valid.txt").read_text()
    (b / "valid.txt").write_text(text.replace("Results NN", "Result NN", 1))
    assert corpora.data_id(str(b), "en") != corpora.data_id(str(a), "en")


@pytest.fixture
def fake_germeval(monkeypatch):
    """The three tiny GermEval fixtures (3, 1, 1 sentences) served under the real Drive URLs."""
    files = corpora.DOWNLOADS["germeval"].files
    serve = {url: os.path.join(GE, name) for name, (urls, _) in files.items() for url in urls}
    patch_corpus(monkeypatch, "germeval",
                 files={n: (urls, sha(os.path.join(GE, n))) for n, (urls, _) in files.items()},
                 counts=GE_COUNTS, more_tokens=GE_MORE)
    fetched = []

    def fetch(url, dest):
        fetched.append(url)
        shutil.copy(serve[url], dest)
    monkeypatch.setattr(corpora, "_fetch", fetch)
    return fetched


def test_download_germeval(tmp_path, fake_germeval):
    """Three files fetched one by one (train, dev, test) from the Drive URLs HF records, kept
    byte for byte under their own names in cache/germeval2014, nothing else left in the
    cache; the second call fetches nothing; splits() finds them."""
    d = corpora.download("germeval", tmp_path / "cache")
    assert d == os.path.join(tmp_path, "cache", "germeval2014")
    drive = "https://drive.google.com/uc?export=download&id="  # as HF's germeval_14 script
    assert fake_germeval == [drive + "1Jjhbal535VVz2ap4v4r_rN1UEHTdLK5P",
                             drive + "1ZfRcQThdtAR5PPRjIDtrVP7BtXSCUBbm",
                             drive + "1u9mb7kNJHWQCWyweMDRMuTFoOHOfeBTH"]
    assert os.listdir(tmp_path / "cache") == ["germeval2014"]
    for name in ("NER-de-train.tsv", "NER-de-dev.tsv", "NER-de-test.tsv"):
        assert open(os.path.join(d, name), "rb").read() == open(os.path.join(GE, name), "rb").read()
    assert corpora.download("germeval", tmp_path / "cache") == d and len(fake_germeval) == 3
    assert corpora.splits(d, "germeval")["dev"] == os.path.join(d, "NER-de-dev.tsv")


def test_download_germeval_rejects_bad_files(tmp_path, fake_germeval, monkeypatch):
    """A wrong dev checksum stops after fetching train and dev, naming the URL: nothing is kept,
    not even the file that failed, and no folder. Wrong sentence counts (train has 3, not 24000)
    stop it too, and a cached folder whose file was cut short fails on the next call."""
    files = dict(corpora.DOWNLOADS["germeval"].files)
    urls, real = files["NER-de-dev.tsv"]
    patch_corpus(monkeypatch, "germeval",
                 files=dict(files, **{"NER-de-dev.tsv": (urls[:1], "0" * 64)}))
    with pytest.raises(ValueError) as e:
        corpora.download("germeval", tmp_path / "c1")
    assert str(e.value).startswith(f"{urls[0]}: sha256 {real}, expected {'0' * 64}; the file "
                                   f"changed upstream: check it by hand")
    assert len(fake_germeval) == 2 and os.listdir(tmp_path / "c1") == []
    patch_corpus(monkeypatch, "germeval", files=files,
                 counts=dict(GE_COUNTS, **{"NER-de-train.tsv": (24000, 25)}))
    with pytest.raises(ValueError, match="NER-de-train.tsv: 3 sentences, GermEval 2014 has 24000"):
        corpora.download("germeval", tmp_path / "c2")
    assert os.listdir(tmp_path / "c2") == []
    patch_corpus(monkeypatch, "germeval", counts=GE_COUNTS)
    d = corpora.download("germeval", tmp_path / "c3")
    train = os.path.join(d, "NER-de-train.tsv")
    with open(train, "rb") as f:
        head = f.read().split(b"\n\n")[0]  # the first sentence only
    with open(train, "wb") as f:
        f.write(head)
    with pytest.raises(ValueError, match=f"1 sentences, GermEval 2014 has 3; empty {tmp_path}/c3 "
                                         f"to download again"):
        corpora.download("germeval", tmp_path / "c3")


def test_download_checks_token_counts(tmp_path, fake_germeval, monkeypatch):
    """The published token counts are checked with the sentence counts: a file that lost words
    but no sentence passes the sentence check alone. NER-de-train.tsv cut mid-sentence (its last
    word line, '8 .', gone: still 3 sentences, 24 words, not 25) fails on the next call, naming
    the file and both numbers. Where a split's count is not published (None), the published
    total still is: over GE_MORE = 35 tokens in all, and the files now hold 35."""
    d = corpora.download("germeval", tmp_path)
    train = os.path.join(d, "NER-de-train.tsv")
    with open(train, "rb") as f:
        data = f.read()
    with open(train, "wb") as f:
        f.write(data.replace(b"8\t.\tO\tO\n", b""))
    assert len(conll.read_conll(train)) == 3
    with pytest.raises(ValueError) as e:
        corpora.download("germeval", tmp_path)
    assert str(e.value) == (f"{train}: 24 tokens, GermEval 2014 has 25; empty {tmp_path} to "
                            f"download again, or pass --data DIR")
    patch_corpus(monkeypatch, "germeval", counts=dict(GE_COUNTS, **{"NER-de-train.tsv": (3, None)}))
    with pytest.raises(ValueError) as e:
        corpora.download("germeval", tmp_path)
    assert str(e.value) == (f"{d}: 35 tokens in NER-de-train.tsv, NER-de-dev.tsv, NER-de-test.tsv,"
                            f" GermEval 2014 has over 35; empty {tmp_path} to download again, or "
                            f"pass --data DIR")
    patch_corpus(monkeypatch, "germeval", more_tokens=34)
    assert corpora.download("germeval", tmp_path) == d


def test_download_repairs_incomplete_folder(tmp_path, fake_archive):
    """A cached folder missing a file (valid.txt deleted by hand) is fetched again and replaced
    by the new checked folder, not kept beside a FileNotFoundError on every call."""
    d = corpora.download("en", tmp_path)
    os.remove(os.path.join(d, "valid.txt"))
    assert corpora.download("en", tmp_path) == d and len(fake_archive) == 2
    assert sorted(os.listdir(d)) == ["test.txt", "train.txt", "valid.txt"]
    assert sorted(os.listdir(tmp_path)) == ["conll2003-en", "conll2003.zip"]  # no temp left
    assert corpora.download("en", tmp_path) == d and len(fake_archive) == 2


def test_download_sources():
    """Each corpus' folder holds exactly the split names splits() looks for, so download's
    output is always a valid --data folder; German CoNLL-2003 (licensed: data_dir says so) and
    unknown languages are refused."""
    for lang, src in corpora.DOWNLOADS.items():
        assert tuple(src.counts) in corpora.SPLIT_NAMES[lang]
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for _, h in src.files.values())
        assert all(u.startswith("https://") for urls, _ in src.files.values() for u in urls)
    assert corpora.DOWNLOADS["en"].counts == {  # Tjong Kim Sang & De Meulder 2003, Table 1
        "train.txt": (14041, 203621), "valid.txt": (3250, 51362), "test.txt": (3453, 46435)}
    assert corpora.DOWNLOADS["germeval"].counts == {  # per split: sentences only, see corpora.py
        "NER-de-train.tsv": (24000, None), "NER-de-dev.tsv": (2200, None),
        "NER-de-test.tsv": (5100, None)}
    assert corpora.DOWNLOADS["germeval"].more_tokens == 591000  # LREC 2014: "over 591,000 tokens"
    assert corpora.DOWNLOADS["en"].more_tokens == 0  # its splits' counts are all published
    with pytest.raises(ValueError, match="lang='de': expected one of en, germeval, es, nl to"):
        corpora.download("de", "unused")
    with pytest.raises(ValueError, match="lang='fr': expected one of en, germeval, es, nl to"):
        corpora.download("fr", "unused")


def test_splits_germeval(tmp_path):
    """lang="germeval" finds NER-de-{train,dev,test}.tsv; missing files say what to pass; the
    English and German namings are unaffected (test_splits)."""
    assert corpora.splits(GE, "germeval") == {
        k: os.path.join(GE, f"NER-de-{k}.tsv") for k in ("train", "dev", "test")}
    with pytest.raises(FileNotFoundError, match=r"lacks some of the files; pass a folder holding "
                                                r"NER-de-train.tsv, NER-de-dev.tsv, "
                                                r"NER-de-test.tsv \(GermEval 2014, CC-BY\)"):
        corpora.splits(tmp_path, "germeval")
    assert [len(conll.read_conll(p)) for p in corpora.splits(GE, "germeval").values()] == [3, 1, 1]


def test_eval_sets_conll2003_de():
    """deu_tiny holds deu.testa/deu.testb only (no deu.train, which zero-shot scoring never reads):
    tags as in the files (IOB1, so "Werder" keeps B-ORG after Bayern München's I-ORG), latin-1
    umlauts intact, lines and documents the file's: testa lines 3 and 11 (doc 0, 0), testb lines
    3 and 12 (doc 0, 1). keep_deriv_part changes nothing: it only concerns GermEval types."""
    sets = corpora.eval_sets("de", DEU)
    assert list(sets) == ["dev", "test"]
    dev, test = sets["dev"], sets["test"]
    assert [(s.line, s.doc) for s in dev] == [(3, 0), (11, 0)]
    assert [(s.line, s.doc) for s in test] == [(3, 0), (12, 1)]
    assert dev[0].words[1] == "Europäische" and test[1].words[0] == "Fußball"
    assert dev[0].tags == ["O", "I-ORG", "I-ORG", "O", "O", "I-LOC", "O"]
    assert test[0].tags[0] == "I-MISC"
    assert test[1].tags == ["O", "O", "I-ORG", "I-ORG", "B-ORG", "I-ORG", "O"]
    assert corpora.eval_sets("de", DEU, keep_deriv_part=True) == sets


@pytest.mark.parametrize("lang", ["es", "nl"])
def test_eval_sets_conll2002_are_its_dev_and_test_as_read(lang):
    """Spanish and Dutch: testa and testb as conll.read_conll reads them (BIO, CoNLL's types)."""
    sets = corpora.eval_sets(lang, os.path.join(FIXTURES, f"{lang}_tiny"))
    paths = corpora.splits(os.path.join(FIXTURES, f"{lang}_tiny"), lang)
    assert sets == {k: conll.read_conll(paths[k]) for k in ("dev", "test")}


@pytest.mark.parametrize("keep, bremer, goethes", [(False, "O", "O"), (True, "B-LOC", "B-PER")])
def test_eval_sets_germeval(tmp_path, keep, bremer, goethes):
    """A folder with NER-de-dev.tsv (here a copy of the 3-sentence train fixture) and
    NER-de-test.tsv, no train file: the outer level in CoNLL types.
    Dev, by hand: Anna Berg B-PER I-PER and Köln B-LOC stay; Kölner (B-LOCderiv) and EU-Politik
    (B-ORGpart) -> O, or B-LOC / B-ORG with keep; Universität zu Köln B-ORG I-ORG I-ORG stays (its
    inner B-LOC is not read); Der Zauberberg B-OTH I-OTH -> B-MISC I-MISC. Test: Goethes
    (B-PERderiv) -> O or B-PER; Faust B-OTH -> B-MISC; Leipzig B-LOC. Lines 2, 10, 23 and
    documents 0, 0, 1 stay the file's."""
    shutil.copy(GE_TRAIN, tmp_path / "NER-de-dev.tsv")
    shutil.copy(os.path.join(GE, "NER-de-test.tsv"), tmp_path)
    sets = corpora.eval_sets("germeval", str(tmp_path), keep)
    dev, (test,) = sets["dev"], sets["test"]
    assert [(s.line, s.doc) for s in dev] == [(2, 0), (10, 0), (23, 1)] and test.line == 2
    assert dev[0].tags == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    org = "B-ORG" if keep else "O"
    assert dev[1].tags == ["O", bremer, "O", "O", "B-ORG", "I-ORG", "I-ORG", "O", "O", org, "O"]
    assert dev[2].tags == ["O", "O", "B-MISC", "I-MISC", "O", "B-PER", "I-PER", "O"]
    assert test.words[:2] == ["Goethes", "Faust"] and test.words[4] == "Leipzig"
    assert test.tags == [goethes, "B-MISC", "O", "O", "B-LOC", "O"]
    assert [s.words for s in dev] == [s.words for s in conll.read_germeval(GE_TRAIN)]


def test_eval_sets_errors(tmp_path):
    """German with no folder: it is licensed, said as a run's data is; a folder lacking a file
    names the two it needs; a words-only deu.testa (no gold tags to score) and a CoNLL file named
    NER-de-dev.tsv are refused, naming the file."""
    with pytest.raises(ValueError, match="CoNLL-2003 German is licensed: pass the folder"):
        corpora.eval_sets("de", "")
    with pytest.raises(FileNotFoundError) as e:
        corpora.eval_sets("de", str(tmp_path))
    assert str(e.value) == (f"{tmp_path}: lacks some of the files; pass a folder holding "
                            f"deu.testa, deu.testb (licensed, so never downloaded: make "
                            f"reproduce-de DE_DATA=DIR)")
    shutil.copy(os.path.join(DEU, "deu.testb"), tmp_path)
    (tmp_path / "deu.testa").write_text("Köln\n\nBonn\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"deu.testa: read as a 'words' file, expected the "
                                         r"'conll' layout with gold tags; pass the real file"):
        corpora.eval_sets("de", str(tmp_path))
    shutil.copy(DE, tmp_path / "NER-de-dev.tsv")
    shutil.copy(os.path.join(GE, "NER-de-test.tsv"), tmp_path)
    with pytest.raises(ValueError, match=r"NER-de-dev.tsv: read as a 'conll' file, expected the "
                                         r"'germeval' layout"):
        corpora.eval_sets("germeval", str(tmp_path))


def test_drives_confirmation_page_is_passed_by_its_second_door(tmp_path, fake_germeval,
                                                                monkeypatch, capsys):
    """Google Drive answers the plain link of NER-de-train.tsv with its "can't scan for viruses"
    page: that answer is no file (it used to fail as a changed sha256), the next source (Drive's
    confirm=t door) serves it, checked by the same sha256, and the log says which source served
    each file."""
    real = corpora._fetch

    def fetch(url, dest):
        if "uc?export" in url and "1Jjhbal535VVz2ap4v4r_rN1UEHTdLK5P" in url:
            with open(dest, "w") as f:
                f.write("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning"
                        "</title></head><form action=\"https://drive.usercontent.google.com/"
                        "download\"></form></html>")
            return
        real(url, dest)
    monkeypatch.setattr(corpora, "_fetch", fetch)
    d = corpora.download("germeval", tmp_path)
    err = capsys.readouterr().err
    assert "GermEval 2014: NER-de-train.tsv from https://drive.usercontent.google.com/" in err
    assert "GermEval 2014: NER-de-dev.tsv from https://drive.google.com/uc?" in err
    with open(os.path.join(d, "NER-de-train.tsv"), "rb") as f:
        assert f.read() == open(os.path.join(GE, "NER-de-train.tsv"), "rb").read()
    assert sorted(os.listdir(tmp_path)) == ["germeval2014"]


def test_english_falls_back_to_the_hub_copies_of_the_archive(tmp_path, fake_archive,
                                                             monkeypatch, capsys):
    """data.deepai.org down (it has been: huggingface/datasets #3582, #3904): the first Hub copy
    answers with other bytes (a changed file), the second serves the archive, checked by the same
    sha256 as deepai's; the log names it. The copies are tried in the recorded order."""
    real = corpora._fetch

    def fetch(url, dest):
        if "deepai" in url:
            raise urllib.error.URLError("503 Service Unavailable")
        if "alex1qaz" in url:
            with open(dest, "wb") as f:
                f.write(b"PK\x03\x04 another archive")
            return
        real(url, dest)
    monkeypatch.setattr(corpora, "_fetch", fetch)
    d = corpora.download("en", tmp_path)
    assert [u.split("/")[2] for u in fake_archive] == ["huggingface.co"]
    assert "leonadase/mycoll3/resolve/e5fa8d150a9461acc2e0aab2cffba63afe86d05a" in fake_archive[0]
    assert f"CoNLL-2003 English: conll2003.zip from {fake_archive[0]}" in capsys.readouterr().err
    assert sorted(os.listdir(d)) == ["test.txt", "train.txt", "valid.txt"]
    (urls, _), = corpora.DOWNLOADS["en"].files.values()
    assert [u.split("/")[2] for u in urls] == ["data.deepai.org", "huggingface.co",
                                               "huggingface.co"]


# ---------------------------------------------------------------------------------------------
# CoNLL-2002 Spanish and Dutch (Tjong Kim Sang 2002): fixtures cut from NLTK's conll2002.zip
# (research use only), the first sentences of each file as they are.

C2002 = {"es": ("esp", "Spanish"), "nl": ("ned", "Dutch")}


@pytest.mark.parametrize("lang, docs", [("es", 1), ("nl", 2)])
def test_conll2002_splits_read_as_the_shared_task_counts_them(lang, docs):
    """esp.train/testa/testb (no -DOCSTART-) and ned.* (each article's -DOCSTART- line inside its
    first sentence, no blank line after it): testa is dev, testb test; a Dutch -DOCSTART- starts a
    document and is no word (the published token counts leave it out); tags are BIO, and one
    Spanish sentence opens with an I- tag, as the real files have it (a break inside an entity)."""
    pre, _ = C2002[lang]
    paths = corpora.splits(os.path.join(FIXTURES, f"{lang}_tiny"), lang)
    assert [os.path.basename(p) for p in paths.values()] == [f"{pre}.train", f"{pre}.testa",
                                                             f"{pre}.testb"]
    for path in paths.values():
        sents = conll.read_conll(path)
        text = open(path, encoding="utf-8").read()
        blocks = [b for b in text.split("\n\n") if b.strip()]
        lines = [ln for b in blocks for ln in b.split("\n") if ln and ln[:10] != "-DOCSTART-"]
        assert len(sents) == len(blocks) and sum(map(len, (s.words for s in sents))) == len(lines)
        assert len({s.doc for s in sents}) == docs and "-DOCSTART-" not in sents[0].words
        assert conll.detect_scheme(s.tags for s in sents) == "bio"
    if lang == "es":
        assert any(s.tags[0].startswith("I-") for s in conll.read_conll(paths["train"]))


@pytest.mark.parametrize("lang", ["es", "nl"])
def test_conll2002_download_is_checked_and_whole(tmp_path, monkeypatch, lang):
    """conll2002.zip fetched once from NLTK's data repository, checked by sha256 and by each
    file's sentence and token counts, unpacked to cache/conll2002-esp (or -ned); a wrong sha256,
    wrong counts and a missing member each stop it with an error saying what to do, and no data
    folder is left."""
    pre, name = C2002[lang]
    zpath = tmp_path / "conll2002.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for split in ("train", "testa", "testb"):
            z.write(os.path.join(FIXTURES, f"{lang}_tiny", f"{pre}.{split}"),
                    f"conll2002/{pre}.{split}")
        z.writestr("conll2002/README", "research use only")
    counts = {}
    for split in ("train", "testa", "testb"):
        sents = conll.read_conll(os.path.join(FIXTURES, f"{lang}_tiny", f"{pre}.{split}"))
        counts[f"{pre}.{split}"] = (len(sents), sum(len(s.words) for s in sents))
    (urls, real), = corpora.DOWNLOADS[lang].files.values()
    assert real == "64440e49236d0d393e08e0b266284966d68e2d2a82a50cc41b8e96d98c03b5c8"
    assert urls == ("https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/"
                    "conll2002.zip",)
    fetched = []
    monkeypatch.setattr(corpora, "_fetch", lambda url, dest: fetched.append(url) or
                        shutil.copy(zpath, dest))
    patch_corpus(monkeypatch, lang, files={"conll2002.zip": (urls, "0" * 64)}, counts=counts)
    with pytest.raises(ValueError, match="sha256 .*, expected 0{64}; the archive changed"):
        corpora.download(lang, tmp_path / "c1")
    assert os.listdir(tmp_path / "c1") == []
    patch_corpus(monkeypatch, lang, files={"conll2002.zip": (urls, sha(zpath))},
                 counts=dict(counts, **{f"{pre}.testa": (1915, 1)}))
    with pytest.raises(ValueError, match=f"sentences, CoNLL-2002 {name} has 1915"):
        corpora.download(lang, tmp_path / "c2")
    assert os.listdir(tmp_path / "c2") == ["conll2002.zip"]
    patch_corpus(monkeypatch, lang, counts=dict(counts, **{f"{pre}.extra": (1, 1)}))
    with pytest.raises(ValueError, match=f"no {pre}.extra inside; pass --data DIR"):
        corpora.download(lang, tmp_path / "c3")
    assert os.listdir(tmp_path / "c3") == ["conll2002.zip"]
    patch_corpus(monkeypatch, lang, counts=counts)
    d = corpora.download(lang, tmp_path / "c4")
    assert d == os.path.join(tmp_path, "c4", f"conll2002-{pre}")
    assert sorted(os.listdir(d)) == sorted(counts) and fetched == list(urls) * 4
    assert corpora.splits(d, lang)["test"] == os.path.join(d, f"{pre}.testb")
    assert corpora.data_id("", lang).startswith(f"{lang}:")


@pytest.mark.parametrize("lang", ["es", "nl"])
def test_a_data_folder_may_hold_the_archive_as_downloaded(tmp_path, monkeypatch, lang):
    """--data DIR holding conll2002.zip (no split files): read through the download's own path
    from the local file (file:// URL, no network), so checked alike by sha256 and counts and
    unpacked once into the cache; the run's data id is the downloaded corpus's. Another archive
    in its place fails on its sha256, naming it, and leaves no data folder."""
    pre, _ = C2002[lang]
    folder = tmp_path / "data"
    folder.mkdir()
    zpath = folder / "conll2002.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for split in ("train", "testa", "testb"):
            z.write(os.path.join(FIXTURES, f"{lang}_tiny", f"{pre}.{split}"), f"{pre}.{split}")
    counts = {}
    for split in ("train", "testa", "testb"):
        sents = conll.read_conll(os.path.join(FIXTURES, f"{lang}_tiny", f"{pre}.{split}"))
        counts[f"{pre}.{split}"] = (len(sents), sum(len(s.words) for s in sents))
    (urls, _), = corpora.DOWNLOADS[lang].files.values()
    patch_corpus(monkeypatch, lang, files={"conll2002.zip": (urls, sha(zpath))}, counts=counts)
    monkeypatch.setattr(corpora, "CACHE", str(tmp_path / "cache"))
    d = corpora.data_dir(str(folder), lang)
    assert d == str(tmp_path / "cache" / f"conll2002-{pre}")
    assert corpora.splits(d, lang)["dev"] == os.path.join(d, f"{pre}.testa")
    assert corpora.data_id(str(folder), lang) == corpora.data_id("", lang)
    assert corpora.eval_sets(lang, str(folder))["test"] == conll.read_conll(
        os.path.join(FIXTURES, f"{lang}_tiny", f"{pre}.testb"))
    shutil.rmtree(tmp_path / "cache")
    with zipfile.ZipFile(zpath, "a") as z:
        z.writestr("extra", "another archive")
    with pytest.raises(ValueError, match=f"file://{zpath}: sha256 [0-9a-f]{{64}}, expected"):
        corpora.data_dir(str(folder), lang)
    assert os.listdir(tmp_path / "cache") == []
