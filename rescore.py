"""A trained English run scored on gold files it did not train on, by its own prediction step:
- CleanCoNLL (Rücker & Akbik 2023), CoNLL-2003 English's dev and test with corrected labels:
  every English run's, kept in its result.json (experiments.run_one);
- German dev and test (Wu & Dredze 2019's zero-shot transfer, the paper's Sec 5.1), with no
  German training: OUT/run-KEY/zero-shot-ID.json.
"""
import hashlib
import json
import os

import atomic
import bert
import cleanconll
import conll
import conlleval
import corpora
import tables
import tagger

_CLEAN, _GERMAN = {}, {}  # clean_sets' and german_sets' memos, per process


def score_on(tagged, sets, batch_size, scheme=None):
    """conlleval's scores of `tagged` on each split of sets ({"dev", "test"}: sentences), each
    split tagged in `scheme`, or in its file's own where None."""
    out = {}
    for split, sents in sets.items():
        pred = tagger.tag_sentences(tagged, sents, scheme or conll.detect_scheme(
            s.tags for s in sents), batch_size)
        out[split] = conlleval.evaluate([s.tags for s in sents], pred)
    return out


def digest(x):
    return hashlib.sha1(json.dumps(x).encode()).hexdigest()[:12]


def clean_sets(cfg, exp, warn=None):
    """CleanCoNLL's dev and test for a run on the original English files -> (digest of their words
    and tags, {"dev", "test"}: sentences), built once and read once per process; None for other
    data, with --cleanconll off, or where "auto" cannot build it (said by `warn`, where given)."""
    if cfg.lang != "en" or exp.cleanconll == "off":
        return None
    source = "" if exp.cleanconll == "auto" else exp.cleanconll
    k = (cfg.data, source)
    if k not in _CLEAN:
        _CLEAN[k] = None
        english = corpora.data_dir(cfg.data, "en")
        try:
            folder = cleanconll.cleanconll_dir(english, source or cfg.data)
        except (OSError, ValueError) as e:
            if source:
                raise
            if warn and not isinstance(e, cleanconll.NotOriginal):
                warn(f"note: CleanCoNLL cannot be built here ({e}); runs are scored on "
                     f"CoNLL-2003 alone (--cleanconll off says nothing)")
            return None
        sets = {s: conll.read_conll(os.path.join(folder, f"cleanconll.{s}"))
                for s in ("dev", "test")}
        _CLEAN[k] = digest([[x.words, x.tags] for s in ("dev", "test") for x in sets[s]]), sets
    return _CLEAN[k]


def clean_scores(cfg, exp, tagged, log=print):
    """A trained English run's scores on CleanCoNLL dev and test (its words as CleanCoNLL has them:
    some split, some sentences joined), in BIO -> a record's "cleanconll" entry, or None."""
    if not (got := clean_sets(cfg, exp)):
        return None
    out = dict(data=got[0], **score_on(tagged, got[1], exp.eval_batch_size, "bio"))
    log(f"CleanCoNLL: dev F1 {out['dev']['f1']:.2f} test F1 {out['test']['f1']:.2f}")
    return out


def german_sets(exp):
    """--zero_shot's German dev/test in CoNLL-2003 types -> (format, {"dev", "test"}: sentences,
    id: a digest of the format, the mapping and every word and tag), read once per process."""
    k = (os.path.abspath(exp.zero_shot), exp.zero_shot_keep)
    if k not in _GERMAN:
        fmt, sets = corpora.german_eval_sets(exp.zero_shot, exp.zero_shot_keep)
        words = [[s.words, s.tags] for split in ("dev", "test") for s in sets[split]]
        _GERMAN[k] = fmt, sets, digest([fmt, exp.zero_shot_keep, words])
    return _GERMAN[k]


def zero_shot(cfg, exp, folder, log=print):
    """Wu & Dredze (2019)'s zero-shot transfer: the English-trained run in `folder` scored on
    German dev and test, with no German training -> folder/zero-shot-ID.json, once."""
    fmt, sets, data = german_sets(exp)
    name = f"zero-shot-{data}.json"
    if tables.read_result(folder, name):
        return
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        return log(f"warning: {folder} has no saved model (--save false): no zero-shot scores; "
                   f"train it again with --save true in a new --out")
    tagged = tagger.load_tagger(folder, bert.pick_device())
    run = os.path.basename(folder).removeprefix("run-")
    rec = dict(run=run, data=data, format=fmt, keep=exp.zero_shot_keep, folder=exp.zero_shot,
               **score_on(tagged, sets, exp.eval_batch_size))
    log(f"zero-shot on {fmt}: dev F1 {rec['dev']['f1']:.2f} test F1 {rec['test']['f1']:.2f}")
    atomic.write_text(os.path.join(folder, name), json.dumps(rec, indent=1))
