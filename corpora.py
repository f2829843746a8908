"""Where the data comes from: each corpus's split files, the free ones downloaded once, the dev
and test sets zero-shot scores read, and the fingerprint that names a run's data.

- CoNLL-2003 English (Tjong Kim Sang & De Meulder 2003; the paper's Table 2) and German (Table 3,
  licensed: never downloaded), GermEval 2014 (Benikova et al. 2014, CC-BY 4.0). `splits` finds a
  folder's train/dev/test files; `download` fetches the free two once, each file from the first
  of its sources that serves it, checked against the sha256 huggingface/datasets records and the
  published sentence (and token) counts, appearing only once complete.
- `eval_sets(lang, folder)`: a language's dev + test in CoNLL's four types (GermEval mapped by
  germeval_to_conll), to score a run trained on another (zero-shot, Wu & Dredze 2019).
- `data_dir` / `data_id` / `read_splits`: the folder a run trains on, what names its data in the
  run's key (a folder by its files' bytes), and its splits as windows of pieces (Sec 3.1, 3.2).
"""
import functools
import hashlib
import http.client
import os
import re
import shutil
import sys
import urllib.request
import zipfile
from dataclasses import dataclass, replace

import atomic
import conll
from wordpiece import WordPiece

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "mbert-ner")  # free data, downloaded once
_FINGERPRINTS = {}  # data_id's: the split files' (path, size, mtime) -> the digest of their bytes

# ---------------------------------------------------------------------------------------------
# Each corpus's split files.

SPLIT_NAMES = {"en": [("train.txt", "valid.txt", "test.txt"),
                      ("eng.train", "eng.testa", "eng.testb")],
               "de": [("deu.train", "deu.testa", "deu.testb")],
               "germeval": [("NER-de-train.tsv", "NER-de-dev.tsv", "NER-de-test.tsv")],
               "es": [("esp.train", "esp.testa", "esp.testb")],
               "nl": [("ned.train", "ned.testa", "ned.testb")],
               "cleanconll": [("cleanconll.train", "cleanconll.dev", "cleanconll.test")]}
# what splits() says to do, after "pass a folder holding" the split names
SPLIT_HOW = {"en": " (or conll2003.zip)", "es": " (or NLTK's conll2002.zip)",
             "nl": " (or NLTK's conll2002.zip)",
             "de": " (licensed, so never downloaded: make reproduce-de DE_DATA=DIR)",
             "germeval": " (GermEval 2014, CC-BY)",
             "cleanconll": ", or CoNLL-2003 English's files with CleanCoNLL's files beside them"}


def splits(data_dir, lang="en", need=("train", "dev", "test")):
    """{"train", "dev", "test"} (or those in `need`) -> the paths of lang's split files
    (SPLIT_NAMES) in data_dir, e.g. lang "en": train.txt, valid.txt, test.txt or eng.train,
    eng.testa, eng.testb."""
    named = [{k: n for k, n in zip(("train", "dev", "test"), names) if k in need}
             for names in SPLIT_NAMES[lang]]
    how = "pass a folder holding " + " or ".join(", ".join(n.values()) for n in named) + \
        SPLIT_HOW.get(lang, "")
    if not data_dir or not os.path.isdir(data_dir):
        raise FileNotFoundError(f"{data_dir}: no such folder; {how}")
    found = [n for n in named if all(os.path.isfile(os.path.join(data_dir, f)) for f in n.values())]
    if len(found) != 1:
        why = "has both naming schemes, keep one" if found else "lacks some of the files"
        raise FileNotFoundError(f"{data_dir}: {why}; {how}")
    return {k: os.path.join(data_dir, f) for k, f in found[0].items()}


def germeval_to_conll(tags, keep_deriv_part=False):
    """GermEval 2014 tags -> CoNLL-2003 types in BIO, for zero-shot evaluation of models trained on
    CoNLL's types: PER, LOC, ORG stay, OTH -> MISC; ...deriv / ...part types -> O, or with
    keep_deriv_part to their base type (OTHpart -> MISC). Mapped span by span, so the result is
    valid BIO with the input's spans (conlleval.pl's reading) minus the dropped ones:
    ["B-PER", "I-PER", "B-LOCderiv", "B-OTH"] -> ["B-PER", "I-PER", "O", "B-MISC"].
    Convert to the model's scheme (conll.to_scheme) before scoring IOB1 predictions."""
    out = ["O"] * len(tags)
    for a, b, kind in conll.spans(tags):
        m = re.fullmatch(r"(PER|LOC|ORG|OTH)(deriv|part)?", kind)
        if m is None:
            raise ValueError(f"type {kind!r} (tag {tags[a]!r}) is not a GermEval 2014 type: "
                             f"PER, LOC, ORG, OTH, each also ...deriv and ...part")
        if m.group(2) and not keep_deriv_part:
            continue
        base = "MISC" if m.group(1) == "OTH" else m.group(1)
        out[a:b] = ["B-" + base] + ["I-" + base] * (b - a - 1)
    return out


def eval_sets(lang, folder="", keep_deriv_part=False):
    """lang's dev and test in CoNLL-2003's four types, to score a model trained on another
    language (zero-shot) -> {"dev", "test"}: sentences, from `folder` (no train file needed) or
    the free corpus downloaded once. GermEval's outer level goes through germeval_to_conll (which
    alone keep_deriv_part concerns). Sentences keep their file's line numbers and documents."""
    paths = splits(data_dir(folder, lang), lang, ("dev", "test"))
    sets, want = {}, "germeval" if lang == "germeval" else "conll"
    for split, path in paths.items():
        sents, _, layout = conll.read_conll_info(path)
        if layout != want:  # e.g. a words-only deu.testa: no gold tags to score
            raise ValueError(f"{path}: read as a {layout!r} file, expected the {want!r} layout "
                             f"with gold tags; pass the real file")
        if lang == "germeval":
            sents = [replace(s, tags=germeval_to_conll(s.tags, keep_deriv_part)) for s in sents]
        sets[split] = sents
    return sets


# ---------------------------------------------------------------------------------------------
# Downloading the free corpora once, checked.

@dataclass(frozen=True)
class Corpus:
    """A free corpus that download() fetches once, checks and keeps in cache_dir/folder."""
    name: str  # for messages
    folder: str
    files: dict  # file -> (urls tried in turn, sha256); a .zip is unpacked, others kept
    # split file -> its published (sentences, tokens), checked after the download and on each
    # cache hit; tokens None where we could not confirm a published count
    counts: dict
    offline: str  # what to do without the network
    changed: str  # what to do when a file's sha256 is not the recorded one
    more_tokens: int = 0  # all splits together hold more tokens than this ("over N tokens")


def gdrive(file_id):
    """Drive's plain link, and the one past its "can't scan this file for viruses" page."""
    return (f"https://drive.google.com/uc?export=download&id={file_id}",
            f"https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t")


# URLs and sha256 as huggingface/datasets records them (datasets/conll2003 and datasets/germeval_14:
# the loading scripts and dataset_infos.json). English is the archive HF's conll2003 script used.
DOWNLOADS = {
    "en": Corpus(
        name="CoNLL-2003 English", folder="conll2003-en",
        # deepai first (HF's and TFDS's source: 982,975 bytes); then two Hub copies whose Git LFS
        # records give the same sha256 and size (a user's repo, and another's pinned commit)
        files={"conll2003.zip": ((
            "https://data.deepai.org/conll2003.zip",
            "https://huggingface.co/datasets/alex1qaz/conll2003/resolve/main/conll2003.zip",
            "https://huggingface.co/datasets/leonadase/mycoll3/resolve/"
            "e5fa8d150a9461acc2e0aab2cffba63afe86d05a/conll2003.zip"),
            "96a104d174ddae7558bab603f19382c5fe02ff1da5c077a7f3ce2ced1578a2c3")},
        # Tjong Kim Sang & De Meulder 2003, Table 1: its tokens exactly; its sentences (14,987 /
        # 3,466 / 3,684) count one -DOCSTART- line per article (946 / 216 / 231), which the reader
        # does not: 14,041 = 14,987 - 946
        counts={"train.txt": (14041, 203621), "valid.txt": (3250, 51362),
                "test.txt": (3453, 46435)},
        offline="Unzip a copy of conll2003.zip (train.txt, valid.txt, test.txt) anywhere and pass "
                "--data DIR (make reproduce-en DATA=DIR)",
        changed="the archive changed upstream: check it by hand, unzip it and pass --data DIR "
                "(make reproduce-en DATA=DIR)"),
    "germeval": Corpus(  # CC-BY 4.0; UTF-8 files of 7882358, 723876 and 1682738 bytes
        name="GermEval 2014", folder="germeval2014",
        files={"NER-de-train.tsv": (gdrive("1Jjhbal535VVz2ap4v4r_rN1UEHTdLK5P"),
                   "1e5a803d81f5fe6ade54700a7e8e9107a45edba80469d42e41a360550d1758e7"),
               "NER-de-dev.tsv": (gdrive("1ZfRcQThdtAR5PPRjIDtrVP7BtXSCUBbm"),
                   "d69d1347847e3ac0d1bfd14d7e5c0713dcb82899624301ced6df807dbb070056"),
               "NER-de-test.tsv": (gdrive("1u9mb7kNJHWQCWyweMDRMuTFoOHOfeBTH"),
                   "9405e49532379f3aee048851d116b35823d31c04e9521b87a9c4e6572c269097")},
        # Sentences: Benikova et al. 2014. Tokens: only the total is published ("over 591,000
        # tokens", LREC 2014); we found no per-split count in any source, and no copy of the
        # files to count.
        counts={"NER-de-train.tsv": (24000, None), "NER-de-dev.tsv": (2200, None),
                "NER-de-test.tsv": (5100, None)}, more_tokens=591000,
        offline="Download the three files from https://sites.google.com/site/germeval2014ner/data "
                "(CC-BY 4.0) and pass --data DIR / make reproduce-germeval GERMEVAL_DATA=DIR",
        changed="the file changed upstream: check it by hand and pass --data DIR (make "
                "reproduce-germeval GERMEVAL_DATA=DIR)"),
}


def conll2002(name, counts):
    """CoNLL-2002 Spanish or Dutch (Tjong Kim Sang 2002) from NLTK's conll2002.zip (its README: for
    research use only), BIO; its published counts, as read (a Dutch -DOCSTART- is no token)."""
    names = list(counts)
    return Corpus(name=f"CoNLL-2002 {name}", folder=f"conll2002-{names[0][:3]}", counts=counts,
                  files={"conll2002.zip": (("https://raw.githubusercontent.com/nltk/nltk_data/"
                                            "gh-pages/packages/corpora/conll2002.zip",),
                         "64440e49236d0d393e08e0b266284966d68e2d2a82a50cc41b8e96d98c03b5c8")},
                  offline=f"pass --data DIR holding NLTK's conll2002.zip, or the files unzipped "
                          f"from it ({', '.join(names)})",
                  changed="the archive changed upstream: check it by hand and pass --data DIR")


DOWNLOADS["es"] = conll2002("Spanish", {"esp.train": (8323, 264715), "esp.testa": (1915, 52923),
                                        "esp.testb": (1517, 51533)})
DOWNLOADS["nl"] = conll2002("Dutch", {"ned.train": (15806, 202644), "ned.testa": (2895, 37687),
                                      "ned.testb": (5195, 68875)})


def _fetch(url, dest):
    """Download url to dest (a separate function so tests can replace the network). A reply that
    stops early raises ConnectionError, an OSError like urllib's own errors."""
    # some CDNs refuse urllib's default User-Agent
    req = urllib.request.Request(url, headers={"User-Agent": "mbert-ner"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r, open(dest, "wb") as f:
            shutil.copyfileobj(r, f)
            got, want = f.tell(), r.headers.get("Content-Length")
    except http.client.HTTPException as e:  # a chunked reply's IncompleteRead is no OSError
        raise ConnectionError(repr(e)) from e
    # http.client ends a Content-Length reply that stops early as if it were complete
    if want is not None and got != int(want):
        raise ConnectionError(f"received {got} of {want} bytes")


def fetch(url, path, check, offline):
    """url's bytes -> path, whole or not at all (atomic.write), once check(their path) accepts
    them; else an error that says what to do (`offline`: without the network)."""
    def fill(tmp):
        try:
            _fetch(url, tmp)
        except ConnectionError as e:  # cut off midway: another try usually works
            raise OSError(f"could not download {url}: the download was cut off ({e}); run the "
                          f"command again") from e
        except OSError as e:  # urllib's URLError is an OSError: offline, DNS, HTTP error
            raise OSError(f"could not download {url} ({e}). Offline? {offline}") from e
        with open(tmp, "rb") as f:
            head = f.read(1024)
        if head.lstrip().lower().startswith((b"<!doctype html", b"<html")):
            raise OSError(f"{url} answered with a web page, not the file (Google Drive asks to "
                          f"confirm some downloads); {offline}")
        check(tmp)
    atomic.write(path, fill)


def _fetch_any(src, name, urls, sha256, path):
    """Each source of a file in turn, until one serves the bytes whose sha256 is recorded; says
    which did, and why each one before it failed. The last source's failure is the error."""
    def check(tmp):
        with open(tmp, "rb") as f:
            got = hashlib.sha256(f.read()).hexdigest()
        if got != sha256:
            raise ValueError(f"{url}: sha256 {got}, expected {sha256}; {src.changed}")
    for url in urls:
        try:
            fetch(url, path, check, src.offline)
            break
        except (OSError, ValueError) as e:
            if url == urls[-1]:
                raise
            print(f"{src.name}: {name}: {e}; trying the next source", file=sys.stderr)
    print(f"{src.name}: {name} from {url}", file=sys.stderr)


def _unzip(zpath, names, folder):
    """Copy the members called `names` into folder, matched by base name (some copies of the
    archive hold them in a subfolder): we write fixed names, never the archive's paths."""
    with zipfile.ZipFile(zpath) as z:
        members = {os.path.basename(m): m for m in z.namelist()}
        for name in names:
            if name not in members:
                raise ValueError(f"{zpath}: no {name} inside; pass --data DIR with the three files")
            with z.open(members[name]) as src, open(os.path.join(folder, name), "wb") as dst:
                shutil.copyfileobj(src, dst)


def _check_counts(src, folder, cache_dir):
    """Each split file has its published sentence and token counts (tokens where known), all
    together more tokens than src.more_tokens: a cut-off, wrong or misread file fails here, one
    cut mid-sentence on its tokens."""
    total, again = 0, f"empty {cache_dir} to download again, or pass --data DIR"
    for name, (n_sents, n_tokens) in src.counts.items():
        path = os.path.join(folder, name)
        sents = conll.read_conll(path)
        tokens = sum(len(s.words) for s in sents)
        total += tokens
        for what, got, want in (("sentences", len(sents), n_sents), ("tokens", tokens, n_tokens)):
            if want is not None and got != want:
                raise ValueError(f"{path}: {got} {what}, {src.name} has {want}; {again}")
    if total <= src.more_tokens:
        raise ValueError(f"{folder}: {total} tokens in {', '.join(src.counts)}, {src.name} has "
                         f"over {src.more_tokens}; {again}")


def download(lang, cache_dir, local=""):
    """Fetch (or take `local`, the archive already here), check (sha256, sentence and token counts)
    and unpack a free corpus once -> cache_dir/its folder, whose counts later calls check again.
    It appears whole (atomic.make_folder); shards that start at once may each fetch it."""
    if lang not in DOWNLOADS:
        raise ValueError(f"lang={lang!r}: expected one of {', '.join(DOWNLOADS)} to download")
    src = DOWNLOADS[lang]
    out = os.path.join(cache_dir, src.folder)
    if all(os.path.isfile(os.path.join(out, n)) for n in src.counts):
        _check_counts(src, out, cache_dir)
        return out

    def fill(tmp):
        for name, (urls, sha256) in src.files.items():
            urls = ("file://" + os.path.abspath(local),) if local else urls
            if name.endswith(".zip"):  # kept beside the folder, as fetched
                _fetch_any(src, name, urls, sha256, os.path.join(cache_dir, name))
                _unzip(os.path.join(cache_dir, name), src.counts, tmp)
            else:
                _fetch_any(src, name, urls, sha256, os.path.join(tmp, name))
        _check_counts(src, tmp, cache_dir)
    return atomic.make_folder(out, fill)


# ---------------------------------------------------------------------------------------------
# The data of a run: its folder, its id, and its splits as the windows finetune.py trains on.

def data_dir(data, lang):
    """The folder of the splits: `data`, or the free corpus of `lang` downloaded once."""
    if lang == "de" and not data:
        raise ValueError("CoNLL-2003 German is licensed: pass the folder holding deu.train, "
                         "deu.testa and deu.testb (make reproduce-de DE_DATA=DIR), or train on "
                         "GermEval 2014 (CC-BY): make reproduce-germeval")
    if lang == "cleanconll" and not data:
        raise ValueError("--lang cleanconll: pass --data DIR holding cleanconll.train/dev/test, or "
                         "CoNLL-2003 English's files to build them from")
    local = archive(data, lang)
    return download(lang, CACHE, local) if local or not data else data


def archive(data, lang):
    """The free corpus's archive (conll2003.zip, conll2002.zip) in folder `data` where its split
    files are not: --data DIR may hold the archive as downloaded. "" for none."""
    src = DOWNLOADS.get(lang) if data else None
    zips = [os.path.join(data, n) for n in (src.files if src else ()) if n.endswith(".zip")]
    found = zips and os.path.isfile(zips[0]) and not any(
        os.path.isfile(os.path.join(data, n)) for n in src.counts)
    return zips[0] if found else ""


def data_id(data, lang):
    """What names a run's data in its key, with no download: a folder by the sha1 of its split
    files' bytes (train, dev, test; cached per path, size and mtime), a downloaded corpus by its
    name and recorded sha256s."""
    if not data or archive(data, lang):  # the archive as downloaded: its pinned sha256
        return f"{lang}:" + hashlib.sha1(repr(sorted(DOWNLOADS[lang].files.items())).encode()
                                         ).hexdigest()[:12]
    paths = splits(data, lang)
    stamp = tuple((p, os.path.getsize(p), os.path.getmtime(p)) for p in paths.values())
    if stamp not in _FINGERPRINTS:
        h = hashlib.sha1()
        for split, p in sorted(paths.items()):
            with open(p, "rb") as f:
                h.update(split.encode() + f.read())
        _FINGERPRINTS[stamp] = h.hexdigest()[:12]
    return _FINGERPRINTS[stamp]



@dataclass
class Split:
    sents: list    # conll.Sentence, with the file's own (gold) tags
    feats: list    # conll.Feature windows, labelled in the trained scheme
    scheme: str    # the file's scheme: predictions are converted to it before scoring


def read_splits(cfg, tok):
    """-> ({"train", "dev", "test"}: Split, labels), labels from every split (so a type seen only in
    dev or test has an id too). Memoised: a grid's runs read alike, and a reading takes seconds."""
    return _read(tok, cfg.data, cfg.lang, cfg.level, cfg.scheme, cfg.max_len,
                 cfg.max_train_sentences)


vocabulary = functools.lru_cache(maxsize=2)(WordPiece.from_pretrained)  # _read's memo key


@functools.lru_cache(maxsize=2)  # speed only: IOB1's and BIO's readings of one grid
def _read(tok, folder, lang, level, scheme, max_len, max_train_sentences):
    paths = splits(data_dir(folder, lang), lang)
    files = {k: conll.read_germeval(p, level) if lang == "germeval" else conll.read_conll(p)
             for k, p in paths.items()}  # GermEval: one of its two levels of nested spans, in BIO
    labels = conll.tag_set([s for sents in files.values() for s in sents])
    label2id = {t: i for i, t in enumerate(labels)}
    files["train"] = files["train"][:max_train_sentences or None]  # >0: the first N only
    data = {}
    for split, sents in files.items():
        ours = [replace(s, tags=conll.to_scheme(s.tags, scheme)) for s in sents]  # Sec 3.1
        try:
            feats = conll.featurize(ours, tok, label2id, max_len)
        except ValueError as e:  # "line 8: word ... has 130 pieces": say in which file
            raise ValueError(f"{paths[split]}, {e}") from None
        data[split] = Split(sents, feats, conll.detect_scheme(s.tags for s in sents))
    return data, labels
