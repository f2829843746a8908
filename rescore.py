"""A trained run scored on gold files it did not train on, by its own prediction step:
- CleanCoNLL (Rücker & Akbik 2023), CoNLL-2003 English's dev and test with corrected labels:
  every English run's, kept in its result.json (experiments.run_one);
- other languages' dev and test (zero-shot transfer, Wu & Dredze 2019, the paper's Sec 5.1:
  English to German, Spanish, Dutch), with no training there: OUT/run-KEY/zero-shot-ID.json."""
import functools
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

_CLEAN = {}  # clean_sets' memo, per process


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


def targets(spec, keep=False):
    """--zero_shot "es,nl,de=DIR" -> [(lang, folder, keep)]: each a language whose dev and test
    are read from the folder after "=", or downloaded once where it has none (corpora.eval_sets);
    keep (--zero_shot_keep) for GermEval alone."""
    out = []
    for item in filter(None, spec.split(",")):
        lang, _, folder = item.partition("=")
        if lang not in tables.XLING:
            raise ValueError(f"--zero_shot {spec}: {lang!r} is none of {', '.join(tables.XLING)}; "
                             f"name each as LANG or LANG=DIR, e.g. es,nl,de=/data/conll2003-de")
        out.append((lang, folder, keep and lang == "germeval"))
    return out


@functools.lru_cache(maxsize=None)
def target_sets(lang, folder, keep):
    """A target's dev and test in CoNLL-2003 types -> (id: a digest of the language, the mapping
    and every word and tag, {"dev", "test"}: sentences), read once per process."""
    sets = corpora.eval_sets(lang, folder, keep)
    words = [[s.words, s.tags] for split in ("dev", "test") for s in sets[split]]
    return digest([lang, keep, words]), sets


def zero_shot(cfg, exp, folder, tagged=None, log=print):
    """Zero-shot transfer (Wu & Dredze 2019; Pires et al. 2019): the run in `folder` (its model
    `tagged`, or the one saved there) scored on the dev and test of each --zero_shot language
    but its own, with no training there -> folder/zero-shot-ID.json each, once."""
    for lang, data, keep in targets(exp.zero_shot, exp.zero_shot_keep):
        if lang == cfg.lang:  # a run's own language: its test set is its own score
            continue
        data_id, sets = target_sets(lang, data, keep)
        name = f"zero-shot-{data_id}.json"
        if tables.read_result(folder, name):
            continue
        if not (tagged or os.path.isfile(os.path.join(folder, "model.safetensors"))):
            return log(f"warning: {folder} has no saved model (--save false): no zero-shot "
                       f"scores; train it again with --save true in a new --out")
        tagged = tagged or tagger.load_tagger(folder, bert.pick_device())
        rec = dict(run=os.path.basename(folder).removeprefix("run-"), lang=lang, data=data_id,
                   keep=keep, folder=data, **score_on(tagged, sets, exp.eval_batch_size))
        log(f"zero-shot on {lang}: dev F1 {rec['dev']['f1']:.2f} test F1 {rec['test']['f1']:.2f}")
        atomic.write_text(os.path.join(folder, name), json.dumps(rec, indent=1))
