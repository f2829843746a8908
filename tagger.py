"""A fine-tuned tagger: saved as a Hub token classifier, loaded back (or any BERT NER model from
the Hub), and applied to new text: `predict` tags a CoNLL file or raw text.

    python experiments.py predict runs/x/run-KEY eng.testb          # + conlleval's report
    python experiments.py predict dslim/bert-base-NER notes.txt --text
"""
import io
import os
import sys
from dataclasses import dataclass, replace

import atomic
import bert
import conll
import conlleval
import corpora
import finetune
from wordpiece import WordPiece, split_punct


@dataclass
class Tagger:
    """A fine-tuned NER model with what it needs to tag new text."""
    model: bert.TokenClassifier
    tok: WordPiece
    labels: list      # label id -> tag, CoNLL style: "O", "B-PER", "I-PER", ...
    scheme: str       # the scheme it was trained in (iob1 | bio)
    max_len: int      # pieces per window


def save_tagger(t, folder):
    """config.json (id2label, label2id; our scheme and max_len under "mbert_ner"),
    model.safetensors under HF's key names, vocab.txt and tokenizer_config.json: transformers'
    AutoModelForTokenClassification and pipeline("token-classification") load it as it is."""
    ours = dict(scheme=t.scheme, max_len=t.max_len)
    bert.save_pretrained(t.model, folder, config_extra=dict(
        id2label={str(i): tag for i, tag in enumerate(t.labels)},
        label2id={tag: i for i, tag in enumerate(t.labels)}, mbert_ner=ours))
    t.tok.save(folder)


def conll_tag(label, path="config.json", key="id2label"):
    """A Hub model's label as a CoNLL tag: "B-PER", "I-PER", "O" stay; IOBES "S-PER" -> "B-PER",
    "E-PER" -> "I-PER"; a bare type ("PER", IO tagging) -> "I-PER"; "B_PER" -> "B-PER". It must be
    a tag a CoNLL file could hold (conll.check_tag, else an error at path:key): "B-PER X" would
    write a fourth column, "B-PER\\n" break a sentence, "B-PER\\xa0" score as a type of its own."""
    if label[1:2] == "_":
        label = label.replace("_", "-", 1)
    prefix, sep, kind = label.partition("-")
    if sep and prefix in ("B", "I", "S", "E"):  # a bare "B-" stays "B-", which check_tag refuses
        label = {"S": "B", "E": "I"}.get(prefix, prefix) + "-" + kind
    elif label != "O":  # a type alone: IO tagging
        label = "I-" + label
    conll.check_tag(label, path, key, where="a model's label names one")
    return label


def load_tagger(name_or_dir, device):
    """A tagger from a folder written by save_tagger, or any BERT token classifier with id2label
    (dslim/bert-base-NER: BIO labels, no mbert_ner keys -> scheme bio, windows of all positions)."""
    model, config = bert.token_classifier_from_pretrained(name_or_dir)
    where = f"{name_or_dir}: config.json"
    id2label = config.get("id2label") or {}
    n = model.out.out_features
    if not isinstance(id2label, dict) or sorted(id2label) != sorted(map(str, range(n))) or not all(
            isinstance(v, str) for v in id2label.values()):
        raise ValueError(f'{where} needs id2label naming each of the {n} classifier outputs by its '
                         f'tag ("0": "O", "1": "B-PER", ...)')
    labels = [conll_tag(id2label[str(i)], where, f'id2label["{i}"]') for i in range(n)]
    ours = config.get("mbert_ner") or {}  # what save_tagger wrote; a Hub model has none
    positions = model.bert.cfg.max_position_embeddings
    max_len = int(ours.get("max_len", positions))  # "256" typed by hand is 256
    if max_len > positions:  # predict has no --max_len: say what to change in the folder
        raise ValueError(f"{where}: mbert_ner.max_len is {max_len}, but the model has {positions} "
                         f"positions: set max_len to {positions} or less there")
    tok = WordPiece.from_pretrained(name_or_dir)
    bert.check_inputs(name_or_dir, max_len, len(tok))
    return Tagger(model.to(device).eval(), tok, labels, ours.get("scheme", "bio"), max_len)


def read_text(path, encoding=None):
    """Raw text, one sentence a line, split at spaces and punctuation -> one Sentence per line
    (an empty one for a blank line, so the output lines up with the input). `path`: a file, "-"
    for stdin (closed: no lines), or else the text itself ("Angela Merkel visited Paris .")."""
    if path == "-":
        data, path = sys.stdin.buffer.read() if sys.stdin else b"", "stdin"
    elif os.path.isfile(path):
        with open(path, "rb") as f:
            data = f.read()
    elif path.strip():
        return [text_sentence(line, n + 1) for n, line in enumerate(path.splitlines())]
    else:
        raise ValueError("the sentence to tag is empty: pass a sentence, a file, or - (stdin)")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") and not encoding:
        raise ValueError(f"{path}: UTF-16 text (its byte-order mark): pass --encoding utf-16, or "
                         f"save it as UTF-8")
    lines = conll.decode(path, data, encoding)[0].split("\n")  # UTF-8 or latin-1, as CoNLL is
    if lines[-1] == "":
        lines.pop()  # the newline ending the last line starts no other
    return [text_sentence(line, n + 1) for n, line in enumerate(lines)]


def text_sentence(line, n=1):
    """A line of raw text -> a words-only Sentence: "Paris, 1999." -> Paris , 1999 ."""
    words = [p for w in line.split() for p in split_punct(w)]
    return conll.Sentence(words, ["O"] * len(words), 0, n, gold=False)


def fresh_path(name):
    """name, or name with -2, -3, ... before its extension: the first that does not exist, not
    even as a dangling symlink (os.path.exists says False for one; writing there fails)."""
    stem, ext = os.path.splitext(name)
    k = 2
    while os.path.lexists(name):
        name, k = f"{stem}-{k}{ext}", k + 1
    return name


def check_types(model, labels, sents, path):
    """A Hub model's entity types must meet the gold file's: none in common is an error (PERSON vs
    PER scores nothing), some unmatched a warning."""
    ours = {t[2:] for t in labels if t != "O"}
    gold = {t[2:] for s in sents for t in s.tags if t != "O"}
    if gold and not ours & gold:
        raise ValueError(f"{model} tags {sorted(ours)}, {path} has {sorted(gold)}: no type in "
                         f"common, so no span could match; use a model trained on these types")
    if gold and ours != gold:
        print(f"warning: types only in the model: {sorted(ours - gold) or 'none'}; only in "
              f"{path}: {sorted(gold - ours) or 'none'}", file=sys.stderr)


def predict(name_or_dir, path, text=False, output=None, encoding=None, batch_size=0):
    """Tag a CoNLL file (labelled or words only) or, with text=True, raw text. CoNLL: "word gold
    pred" lines ("word pred" for words only), in the gold file's scheme if its tags show one, go
    to a new file (output, or INPUT.pred.txt here, -2, -3, ... if taken); returns conlleval's
    report. Text: "word TAG" lines, a blank line after each input line, returned or to `output`."""
    if output and os.path.lexists(output):
        raise ValueError(f"{output} exists; pass another --output (predict never overwrites)")
    if not text and not os.path.lexists(path) and " " in path.strip():
        raise ValueError(f"{path}: no such file; a sentence? add --text")
    t = load_tagger(name_or_dir, bert.pick_device())
    sents = read_text(path, encoding) if text else conll.read_conll(path, encoding)
    labelled = not text and conll.has_gold(sents)
    entities = labelled and any(tag != "O" for s in sents for tag in s.tags)
    scheme = conll.detect_scheme(s.tags for s in sents) if entities else t.scheme
    if labelled:
        check_types(name_or_dir, t.labels, sents, path)
    try:
        pred = tag_sentences(t, sents, scheme, batch_size)
    except ValueError as e:  # featurize's "line 8: word ... has 600 pieces, ...; raise max_len"
        where = "stdin" if path == "-" else path if os.path.isfile(path) else "the text"
        raise ValueError(f"{where}, {str(e).split('; ')[0]}; split the word with spaces (max_len "
                         f"is the model's: mbert_ner.max_len in {name_or_dir}/config.json, at most"
                         f" {t.model.bert.cfg.max_position_embeddings})") from None
    tagged = "" if labelled else "".join(  # "word pred": text and words-only input
        "".join(f"{w} {p}\n" for w, p in zip(s.words, tags)) + "\n" for s, tags in zip(sents, pred))
    if text and not output:
        return tagged
    out = output or fresh_path(os.path.basename(path) + ".pred.txt")  # never an old file
    if labelled:  # -DOCSTART- lines as the input has them: conlleval counts each one
        tagged = conll.conll_text(sents, pred, docstart=conll.has_docstart(path, encoding))
    atomic.write_text(out, tagged)
    shown = out if out.isprintable() else repr(out)  # a newline in a name is not printed raw
    return (report_of(out) if labelled else "") + f"(predictions in {shown})\n"


def report_of(path):
    """conlleval's report of a written file, byte for byte `conlleval.pl < path`'s (a gold word
    "-X-" is a sentence break there, a -DOCSTART- line a token): the two never disagree."""
    out = io.BytesIO()
    with open(path, "rb") as f:
        conlleval.main([], f, out, sys.stderr)
    return out.getvalue().decode("utf-8", errors="replace")


def tag_sentences(t, sents, scheme, batch_size=0):
    """finetune.predict_tags on any sentences (their own tags unused); empty ones get no tags.
    Batched as a run's own evaluation is by default, so a saved run tags its dev and test files as
    it did when trained (under bf16 on CUDA, other batches could round a near tie the other way)."""
    full = [replace(s, tags=["O"] * len(s.words)) for s in sents if s.words]
    if not full:
        return [[] for _ in sents]
    feats = conll.featurize(full, t.tok, {tag: i for i, tag in enumerate(t.labels)}, t.max_len)
    data = finetune.tensorize(feats, t.tok, next(t.model.parameters()).device)
    tags = iter(finetune.predict_tags(t.model, corpora.Split(full, feats, scheme), data,
                                      t.labels, batch_size))
    return [next(tags) if s.words else [] for s in sents]
