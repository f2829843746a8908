"""CleanCoNLL (Rucker & Akbik, EMNLP 2023): CoNLL-2003 English with 7% of its entity labels
corrected, so that a model's score says how much of its gap to 100 is the model and how much the
data's noise. Its repository may not hold the Reuters words: its annotation files mask every word
as [TOKEN], and its build script takes the words from the original files. We build it as
`create_cleanconll_from_conll03.sh` at the pinned commit does, in Python, with no external program:

    awk '{print $1}' valid.txt > tokens                  # the original's first column
    patch tokens dev_tokens.patch -o tokens_updated      # split words, sentence breaks dropped
    cut -f 2- cleanconll_annotations.dev | paste tokens_updated - | sed 's/^\\t$//' > cleanconll.dev

Everything is checked before a file appears: CleanCoNLL's files by git blob id (and sha256), the
original's words against the CoNLL-2003 English the patches were made for, each patch hunk against
the words it replaces, and the built file against the annotation file's own lines, sentences and
entities. The result is a CoNLL file like any other: word, POS, Wikipedia link (BIO), the NER tags
before the last correction phase, the final NER tags (BIO) in the last column, which conll.py reads.
`cleanconll_dir` builds the files once into the cache, a folder that appears whole.
"""
import hashlib
import itertools
import os
import re
import sys

import atomic
import conll
import corpora

REPO = "flairNLP/CleanCoNLL"
COMMIT = "bedc569f0983ddd39c2c729fb5df64be710bcab4"
RAW = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/"  # + a file's path: its bytes there
# file -> (path at COMMIT, git blob id, sha256 or None where no copy was at hand to hash)
FILES = {
    "cleanconll_annotations.train": ("data/cleanconll_annotations/cleanconll_annotations.train",
                                     "ccb9a26f47e54298af934a484a1e21ad1c2185be", None),
    "cleanconll_annotations.dev": ("data/cleanconll_annotations/cleanconll_annotations.dev",
        "714477d8b673eb74e0b705ae33c4f917232e5624",
        "404ff652ab5a3c95d706f11404e4082be122788ee415b5900b25fd92fa00e81f"),
    "cleanconll_annotations.test": ("data/cleanconll_annotations/cleanconll_annotations.test",
        "44ef9fb8abbc050293715beb9084495cf63ef21f",
        "89092bb1964c32498bfcbaa46e7641900d139465cfbdce9e9d377a0ba09e9ea0"),
    "train_tokens.patch": ("data/patch_files/train_tokens.patch",
                           "28ac0cce72d446f3461acf4bdb411a4245863a06",
                           "26ea56c2d205ee6805079ea8be4ab895443fe7be45ecacfdd241c93ec9e48c1b"),
    "dev_tokens.patch": ("data/patch_files/dev_tokens.patch",
                         "66623bca9cc6958980341b89a31f8a94be0eb926",
                         "b0adf80bfa3a1d058d87656b5c1bf4265d1a70d5e6144fd5ffe9a1306066faa0"),
    "test_tokens.patch": ("data/patch_files/test_tokens.patch",
                          "6fba4ff5ca3e1a23fd4a8954524528019106560e",
                          "ffd5f3a26525d241ce46cc407ada55fd95858620234fc88ddd2f6503866e72dc")}
# split -> sha256 of the original's first column (one word a line, "" between sentences, trailing
# blank lines left out; eng.* and conll2003.zip's files alike)
WORDS = {"train": "2c65c2b88312fe5a631cbb080abd2eab0e7396fedad5c44c7f87159b4203b53e",
         "dev": "486fb987062e7d8ec2e28f882dfc7eb0336bfb26b2449ad90a742e8f94280813",
         "test": "938d8d07775d17582f621c5b1dacc96953dd78fb4fee2d7d6178f3bb221f59e9"}


def git_blob(data):
    """The id git gives a file's bytes (sha1 of "blob SIZE\\0" + the bytes): checks a file
    against the repository's tree where no sha256 was recorded."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def check_file(path, name):
    """`path` holds the bytes of CleanCoNLL's `name` at COMMIT -> the bytes; else an error."""
    with open(path, "rb") as f:
        data = f.read()
    _, blob, sha256 = FILES[name]
    if git_blob(data) != blob or sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{path}: not {REPO}'s {name} at commit {COMMIT[:12]} (git blob "
                         f"{git_blob(data)}, expected {blob}): put that file there instead")
    return data


# ---------------------------------------------------------------------------------------------
# The build script's steps, each as the program it replaces does it.

def lines_of(data):
    """Bytes -> lines as awk, cut and paste read them: split at "\\n", a last one unended kept."""
    lines = data.split(b"\n")
    return lines[:-1] if lines[-1] == b"" else lines


def filled(lines):
    """How many lines are left once trailing blank ones are dropped (paste fills those)."""
    return max((n for n, line in enumerate(lines, start=1) if line), default=0)


def first_column(data):
    """awk '{print $1}': each line's first field (runs of spaces and tabs separate, leading ones
    ignored), "" for a blank line."""
    return [re.split(rb"[ \t\n]+", line.strip(b" \t\n"))[0] for line in lines_of(data)]


def apply_patch(words, patch, where):
    """patch(1) with a normal diff ("2784d2783", "4120c4118,4120", "< old" / "---" / "> new"):
    each hunk's old lines must be the words it replaces, or the original is not the file the
    patch was made for (an error naming the hunk)."""
    text = lines_of(patch)
    out, at, i = [], 0, 0  # words[:at] are copied or replaced, text[:i] read
    while i < len(text):
        m = re.fullmatch(rb"(\d+)(?:,(\d+))?([acd])(\d+)(?:,(\d+))?", text[i])
        if not m:
            raise ValueError(f"{where}: line {i + 1} is no normal-diff hunk: {text[i][:40]!r}")
        first, last = int(m[1]), int(m[2] or m[1])
        old, new, i = [], [], i + 1
        while i < len(text) and text[i].startswith(b"<"):
            old.append(text[i][2:])  # "< word"; "< " a blank line
            i += 1
        if i < len(text) and text[i] == b"---":  # between a change's old and new lines
            i += 1
        while i < len(text) and text[i].startswith(b">"):
            new.append(text[i][2:])
            i += 1
        start, end = (first, first) if m[3] == b"a" else (first - 1, last)  # "a": after `first`
        if start < at or words[start:end] != old:
            raise ValueError(f"{where}: hunk {m[0].decode()} expects {old[:3]!r} at line "
                             f"{first}, the original has {words[start:start + 3]!r}: not the "
                             f"CoNLL-2003 English files CleanCoNLL's patches were made for")
        out += words[at:start] + new
        at = end
    return out + words[at:]


def paste(words, annotations):
    """cut -f 2- ANNOTATIONS | paste WORDS - | sed 's/^\\t$//': each word, a tab, the annotation
    line after its first tab (a line with none whole, as cut prints it); "" where both are empty."""
    rest = [line.split(b"\t", 1)[-1] for line in annotations]
    rows = [w + b"\t" + r for w, r in itertools.zip_longest(words, rest, fillvalue=b"")]
    return b"".join((b"" if row == b"\t" else row) + b"\n" for row in rows)


# ---------------------------------------------------------------------------------------------
# One split built and checked.

class NotOriginal(ValueError):
    """English files other than CoNLL-2003's: CleanCoNLL has nothing to correct there."""


def check_words(original, split):
    """The first column of the file `original` must be CoNLL-2003 English's `split` -> its words;
    else an error before anything is fetched or built."""
    with open(original, "rb") as f:
        words = first_column(f.read())
    got = hashlib.sha256(b"\n".join(words[:filled(words)]) + b"\n").hexdigest()
    if got != WORDS[split]:
        raise NotOriginal(f"{original}: its words are not CoNLL-2003 English's {split} words "
                         f"(sha256 of its first column {got[:12]}, expected {WORDS[split][:12]}): "
                         f"CleanCoNLL's patches and labels fit the original files only")
    return words


def build_split(split, words, original, patch, annotations, out):
    """The CleanCoNLL file of one split -> `out`: `words` the first column of `original` (the
    CoNLL-2003 English file), `patch` and `annotations` CleanCoNLL's bytes."""
    patched = apply_patch(words, patch, f"{split} patch on {original}")
    masked = lines_of(annotations)
    # one word for each annotation line, and a sentence break where the annotations have one
    # (trailing blank lines aside, as paste fills them)
    a, b = filled(patched), filled(masked)
    if a != b:
        raise ValueError(f"CleanCoNLL's {split} annotations have {b} lines, the words of "
                         f"{original} after the patch {a}: they do not line up")
    for n, (w, line) in enumerate(zip(patched, masked), start=1):
        if (w == b"") != (line == b""):
            raise ValueError(f"CleanCoNLL's {split} annotations, line {n}: "
                             f"{'a sentence break' if not line else 'a word'} where {original} "
                             f"(patched) has {w.decode('latin-1')!r}")
    with open(out, "wb") as f:
        f.write(paste(patched, masked))
    check_counts(conll.read_conll(out), masked, split)  # read back as any CoNLL file


def check_counts(sents, masked, split):
    """The built file's sentences have the annotation file's sentences and entities (per type): a
    blank line or a document line (POS "-X-", as -DOCSTART- has) ends one, the last column tags."""
    runs = itertools.groupby(masked, lambda line: bool(line) and line.split(b"\t")[1:2] != [b"-X-"])
    want = [[ln.split(b"\t")[-1].decode("utf-8") for ln in run] for tagged, run in runs if tagged]

    def counts(tag_lists):
        kinds = [t for tags in tag_lists for _, _, t in conll.spans(tags)]
        return len(tag_lists), {t: kinds.count(t) for t in sorted(set(kinds))}
    want, got = counts(want), counts([s.tags for s in sents if s.words])
    if got != want:
        raise ValueError(f"the built cleanconll.{split} reads as {got[0]} sentences with "
                         f"entities {got[1]}; its annotation file has {want[0]} and {want[1]}")


# ---------------------------------------------------------------------------------------------
# The built folder, once per original, and CleanCoNLL's files, from a folder or fetched once.

OFFLINE = ("put CleanCoNLL's annotation and patch files (github.com/flairNLP/CleanCoNLL at bedc569,"
           " under data/) in a folder: --cleanconll DIR, or beside the English files (--data DIR)")


def cleanconll_dir(original, source="", cache_dir=None, train=False):
    """The folder of cleanconll.dev and .test (and .train with train=True), built once from the
    CoNLL-2003 English folder `original` into cache_dir/cleanconll/<its data id>[-train] (cache_dir:
    corpora.CACHE by default). CleanCoNLL's files come from the folder `source` (side by side, or as
    the repository lays them out), else cache_dir/cleanconll/files, else the repository, fetched
    once. The original's words are checked first, so other files fail before any download."""
    paths, cache_dir = corpora.splits(original, "en"), cache_dir or corpora.CACHE
    wanted = ["dev", "test"] + ["train"] * train
    out = os.path.join(cache_dir, "cleanconll", corpora.data_id(original, "en") + "-train" * train)
    words = {s: check_words(paths[s], s) for s in wanted}  # local, cheap: before the network
    if all(os.path.isfile(os.path.join(out, f"cleanconll.{s}")) for s in wanted):
        return out

    def fill(tmp):
        for s in wanted:
            build_split(s, words[s], paths[s], _file(f"{s}_tokens.patch", source, cache_dir),
                        _file(f"cleanconll_annotations.{s}", source, cache_dir),
                        os.path.join(tmp, f"cleanconll.{s}"))
    return atomic.make_folder(out, fill)


def _file(name, source, cache_dir):
    """The bytes of CleanCoNLL's file `name`, checked (git blob id, sha256) wherever found."""
    where = [os.path.join(source, name), os.path.join(source, FILES[name][0])] if source else []
    kept = os.path.join(cache_dir, "cleanconll", "files", name)
    for path in [*where, kept]:
        if os.path.isfile(path):
            return check_file(path, name)
    corpora.fetch(RAW + FILES[name][0], kept, lambda tmp: check_file(tmp, name), OFFLINE)
    print(f"CleanCoNLL: {name} from {RAW + FILES[name][0]}", file=sys.stderr)
    return check_file(kept, name)
