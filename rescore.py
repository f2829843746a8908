"""A trained English run scored on gold files it was not trained for, by the same model and the
same prediction step as its own evaluation:

- CleanCoNLL (Rücker & Akbik 2023): CoNLL-2003 English's dev and test with corrected labels,
  scored with every English run and kept in its record (experiments.run_one);
- German dev and test (Wu & Dredze 2019's zero-shot transfer, the paper's Sec 5.1), with no
  German training, kept in OUT/zero_shot.jsonl.
"""
import os

import bert
import conll
import conlleval
import corpora
import records
import tagger


def score_on(tagged, sets, batch_size, scheme=None):
    """conlleval's scores of `tagged` on each split of sets ({"dev", "test"}: sentences), each
    split tagged in `scheme`, or in its file's own where None."""
    out = {}
    for split, sents in sets.items():
        pred = tagger.tag_sentences(tagged, sents, scheme or conll.detect_scheme(
            s.tags for s in sents), batch_size)
        out[split] = conlleval.evaluate([s.tags for s in sents], pred)
    return out


_CLEAN = {}


def clean_sets(cfg, exp, warn=None):
    """CleanCoNLL's dev and test for an English run -> (digest of their words and tags,
    {"dev", "test"}: sentences), built once (corpora.cleanconll_dir) and read once per process;
    None for other languages, with --cleanconll off, or where it cannot be built with "auto"
    (said by `warn` where given: the checks before training pass one). A folder that fails is an
    error."""
    if cfg.lang != "en" or exp.cleanconll == "off":
        return None
    source = "" if exp.cleanconll == "auto" else exp.cleanconll
    k = (corpora.data_fingerprint(cfg.data, cfg.lang), source)
    if k not in _CLEAN:
        try:
            folder = corpora.cleanconll_dir(corpora.data_dir(cfg.data, "en"), source or cfg.data)
        except (OSError, ValueError) as e:
            if source:
                raise
            _CLEAN[k] = None
            if warn:
                warn(f"note: CleanCoNLL cannot be built here ({e}); runs are scored on "
                     f"CoNLL-2003 alone (--cleanconll off says nothing)")
            return None
        sets = {s: conll.read_conll(os.path.join(folder, f"cleanconll.{s}"))
                for s in ("dev", "test")}
        words = [[x.words, x.tags] for s in ("dev", "test") for x in sets[s]]
        _CLEAN[k] = records.digest(words), sets
    return _CLEAN[k]


def clean_scores(cfg, exp, tagged, log=print):
    """A trained English run's scores on CleanCoNLL dev and test (Rücker & Akbik 2023): the same
    model and prediction step as its own evaluation, on CleanCoNLL's words as its files have
    them (some words split, some sentences joined), scored in their scheme (BIO). -> a record's
    "cleanconll" entry, or None."""
    got = clean_sets(cfg, exp)
    if got is None:
        return None
    data, sets = got
    out = dict(data=data, **score_on(tagged, sets, exp.eval_batch_size, "bio"))
    log(f"CleanCoNLL: dev F1 {out['dev']['f1']:.2f} test F1 {out['test']['f1']:.2f}")
    return out


_GERMAN = {}


def german_sets(exp):
    """--zero_shot's German dev/test in CoNLL-2003 types -> (format, {"dev", "test"}: sentences,
    id: a digest of the format, the mapping and every word and tag), read once per process."""
    k = (os.path.abspath(exp.zero_shot), exp.zero_shot_keep)
    if k not in _GERMAN:
        fmt, sets = corpora.german_eval_sets(exp.zero_shot, exp.zero_shot_keep)
        words = [[s.words, s.tags] for split in ("dev", "test") for s in sets[split]]
        _GERMAN[k] = fmt, sets, records.digest([fmt, exp.zero_shot_keep, words])
    return _GERMAN[k]


def zero_shot(cfg, exp, tagged=None, log=print):
    """Wu & Dredze (2019)'s zero-shot transfer: an English-trained run scored on German dev and
    test, with no German training, recorded once in OUT/zero_shot.jsonl (under a claim, so that
    workers never score one run twice). tagged None: a run recorded earlier, loaded from
    OUT/run-KEY (a warning if it was not saved)."""
    fmt, sets, data = german_sets(exp)
    run = records.run_key(cfg)
    key = records.digest(dict(run=run, data=data))
    folder = os.path.join(exp.out, f"run-{run}")
    with records.claim(exp.out, f"zero-shot-{key}") as mine:
        scored = records.read_results(exp.out, name=records.ZERO_SHOT)
        if not mine or key in {r["key"] for r in scored}:
            return  # being scored by another process, or scored
        if tagged is None and not os.path.isfile(os.path.join(folder, "model.safetensors")):
            return log(f"warning: run {run} has no saved model in {folder} (--save false): "
                       f"no zero-shot scores; train it again with --save true in a new --out")
        tagged = tagged or tagger.load_tagger(folder, bert.pick_device())
        rec = dict(key=key, run=run, data=data, format=fmt, keep=exp.zero_shot_keep,
                   folder=exp.zero_shot, **score_on(tagged, sets, exp.eval_batch_size))
        log(f"zero-shot on {fmt} ({exp.zero_shot}): dev F1 {rec['dev']['f1']:.2f} "
            f"test F1 {rec['test']['f1']:.2f}")
        records.append_result(exp.out, rec, records.ZERO_SHOT)
