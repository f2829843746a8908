"""`explain`: one sentence through the paper's pipeline, stage by stage, and the optimisation a
run's flags describe, each value printed from the functions the pipeline itself runs.

    python experiments.py explain --model runs/en/run-KEY "Angela Merkel visited Paris ."
    python experiments.py explain --model DIR --conll eng.testb --sentence 7
    python experiments.py explain --method --delta 2.6 --unfreeze 3 --epochs 5   # offline

1. Words and pieces (Sec 3.2): wordpiece.py, as featurize calls it; [UNK] and why.
2. The windows the model sees (Sec 3.2, Figure 1): conll.featurize and finetune.tensorize.
3. The model's answer: top tags per word, both schemes (Sec 3.1), conlleval's spans and F1.
4. --method: Eq. 1's rates, the unfreezing plan and the schedule (Sec 3.3), offline.
"""
import os
from dataclasses import fields, replace

import torch

import bert
import conll
import conlleval
import corpora
import finetune
import tagger
from finetune import FinetuneConfig
from wordpiece import MAX_WORD_CHARS, WordPiece


def command(args):
    """`python experiments.py explain` (see above); args: its flags, FinetuneConfig's among them."""
    cfg = FinetuneConfig(**{f.name: args[f.name] for f in fields(FinetuneConfig) if f.name in args})
    if args["method"]:  # a local folder's shape, else mBERT's: a Hub id is not looked up
        path = os.path.join(cfg.model, "config.json")
        shape = (bert.BertConfig.from_json(path), path) if os.path.isfile(path) else (
            bert.BertConfig(), "BertConfig's default, mBERT's shape")
        return method(cfg, *shape, *plan_length(cfg, args["updates"]))
    if args["conll"]:
        sents, k = conll.read_conll(args["conll"]), args["sentence"]
        if not 1 <= k <= len(sents):
            raise ValueError(f"--sentence={k}: {args['conll']} has {len(sents)} sentences")
        sent = sents[k - 1]
    elif args["text"].strip():
        sent = tagger.text_sentence(args["text"])
    else:  # none, or one of spaces only: no word to explain
        raise ValueError('explain needs a sentence with a word in it ("Angela Merkel visited '
                         'Paris ."), --conll FILE, or --method')
    explain(cfg.model, sent, args.get("max_len", 0))


def explain(name_or_dir, sent, max_len=0, out=print):
    """Stages 1-3 for one conll.Sentence (gold tags when sent.gold) -> the predicted tags; None
    for a BERT without a token classifier (make explain's default, mBERT): stages 1-2 only."""
    device = bert.pick_device()
    try:
        t = tagger.load_tagger(name_or_dir, device)
    except ValueError as e:
        if "no classifier.weight" not in str(e):
            raise
        t = tagger.Tagger(None, WordPiece.from_pretrained(name_or_dir), ["O"], "bio", 128)
    pieces(t.tok, sent.words, out)
    feats, ids, mask = windows(t, sent, max_len or t.max_len, device, out)
    if t.model:
        return answer(t, sent, feats, ids, mask, out)
    out(f"\n3. The model's answer: none, {name_or_dir} has no token classifier: fine-tune it")


def pieces(tok, words, out):
    """Stage 1: each word's WordPiece pieces and ids, as featurize gets them (encode_words)."""
    out(f"1. Words and pieces (Sec 3.2; google-research/bert tokenization.py): {len(words)} "
        f"words, a vocab of {len(tok):,} pieces, {'uncased' if tok.lower else 'cased'}")
    for w, ids in zip(words, tok.encode_words(words)):
        names = tok.convert_ids_to_tokens(ids)
        shown = " ".join(f"{p} ({i})" for p, i in zip(names, ids))
        out(f"   {w:<16} -> {shown}" + f"   [label on {names[0]}]" * (len(ids) > 1))
        if tok.unk_id in ids:
            out(f"   {'':<16}    [UNK]: {unk_reason(tok, w)}")
    out("   A word's label sits on its first piece; the model is scored there (BERT Sec 5.3).")


def unk_reason(tok, word):
    """Why a word has an [UNK] piece, in WordPiece's own terms."""
    # a basic token is spelled by vocab pieces whole, or is one [UNK] whole
    t = next((t for t in tok.basic(word) if tok.pieces(t) == [tok.unk_id]), None)
    if t is None:  # no basic token at all
        return "nothing left after cleaning (control/format chars): one [UNK] keeps its label"
    if len(t) > MAX_WORD_CHARS:
        return f"{t[:12]!r}... has over {MAX_WORD_CHARS} characters (HF's limit)"
    return f"no run of vocab pieces spells {t!r} (greedy longest match first)"


def windows(t, sent, max_len, device, out):
    """Stage 2: the windows of at most max_len pieces, as one batch -> (feats, ids, mask)."""
    label2id = {tag: i for i, tag in enumerate(t.labels)}
    tags = conll.to_scheme(sent.tags, t.scheme) if sent.gold else ["O"] * len(sent.words)
    feats = conll.featurize([replace(sent, tags=tags)], t.tok, label2id, max_len)
    data = finetune.tensorize(feats, t.tok, device)
    ids, mask, y = finetune.batch_of(data, torch.arange(len(feats), device=device),
                                     data.ids.shape[1])  # (windows, T) each
    out(f"\n2. The windows the model sees (Sec 3.2, Figure 1): {len(feats)} of at most {max_len}"
        f" pieces; input ids {tuple(ids.shape)} (windows, T), [PAD] = {t.tok.pad_id}")
    for k, f in enumerate(feats):
        n, words = len(f.input_ids), [i for i, _ in f.first]
        out(f"   window {k + 1}: scores words {words[0] + 1}-{words[-1] + 1}")
        out(f"     pieces         {' '.join(t.tok.convert_ids_to_tokens(f.input_ids))}")
        out(f"     input ids      {ids[k, :n].tolist()}")
        out(f"     label ids      {y[k, :n].tolist()}  (-100: no word starts there)")
    return feats, ids, mask


def answer(t, sent, feats, ids, mask, out):
    """Stage 3: per word the top three tags, the tags in both schemes, spans and, with gold tags,
    conlleval's counts for this one sentence, in the gold file's scheme."""
    with torch.no_grad(), bert.autocast(ids.device):
        probs = t.model(ids, mask).float().softmax(-1)  # (windows, T, labels)
    W, T, n = probs.shape
    # each word's scores at its first piece (BERT Sec 5.3), picked by conll.gather as predict's
    # are: here it picks each position's own index into the (windows * T) grid
    first = conll.gather(feats, torch.arange(W * T).view(W, T).tolist(), [sent])[0]
    top = probs.view(W * T, n)[first].topk(min(3, n))  # (words, 3)
    out(f"\n3. The model's answer: scores {(W, T, n)} (windows, T, labels); per word, at its "
        f"first piece, its three likeliest tags")
    for w, p, i in zip(sent.words, top.values.tolist(), top.indices.tolist()):
        out(f"   {w:<16} " + ", ".join(f"{t.labels[j]} {q:.2f}" for q, j in zip(p, i)))
    # the likeliest tags made a valid sequence, as finetune.predict_tags makes them
    pred = conll.to_scheme([t.labels[i] for i in top.indices[:, 0].tolist()], t.scheme)
    other = "bio" if t.scheme == "iob1" else "iob1"
    out(f"   tags, {t.scheme.upper()} (the model's scheme): {' '.join(pred)}")
    out(f"   tags, {other.upper()} (Sec 3.1): {' '.join(conll.to_scheme(pred, other))}")
    out(f"   spans conlleval reads: {show_spans(sent.words, conll.spans(pred))}")
    if sent.gold:
        theirs = conll.to_scheme(pred, conll.detect_scheme([sent.tags]))
        s = conlleval.evaluate([sent.tags], [theirs])
        out(f"   gold spans: {show_spans(sent.words, conll.spans(sent.tags))}")
        out("   conlleval: precision {precision:.2f}, recall {recall:.2f}, F1 {f1:.2f} ({correct} "
            "of {gold} gold spans found, {found} predicted)".format(**s))
    return pred


def show_spans(words, spans):
    return "; ".join(f"{typ} [{' '.join(words[a:b])}]" for a, b, typ in sorted(spans)) or "none"


# ---------------------------------------------------------------------------------------------
# 4. The method's schedules (Sec 3.3), offline: no weights, vocabulary or data are needed.

# --lang's published train sentences (corpora.py cites each); CleanCoNLL's: English's
TRAIN_SENTENCES = {lang: next(iter(c.counts.values()))[0] for lang, c in corpora.DOWNLOADS.items()}
TRAIN_SENTENCES.update(de=12705, cleanconll=TRAIN_SENTENCES["en"])


def plan_length(cfg, updates=0):
    """-> (updates, how they were counted): --updates, else ceil(sentences / batch) x epochs
    over --lang's published train sentences, a window a sentence (a few over max_len add one)."""
    if updates:
        return updates, "--updates"
    n = min(TRAIN_SENTENCES[cfg.lang], cfg.max_train_sentences or TRAIN_SENTENCES[cfg.lang])
    per_epoch = -(-n // cfg.batch_size)
    return per_epoch * cfg.epochs, (f"{cfg.epochs} epochs x ceil({n:,} / {cfg.batch_size}) = "
                                    f"{per_epoch} updates: --lang {cfg.lang}'s published train")


def method(cfg, bert_cfg, model_from, updates, counted="", out=print):
    """Eq. 1's rate per unit, the unfreezing plan per epoch, and the schedule over `updates`."""
    with torch.device("meta"):  # the shapes alone: no weights are read or made
        model = bert.TokenClassifier(bert.Bert(bert_cfg), 9)
    L = len(finetune.depth_units(model)) - 2
    names = finetune.unit_names(L)
    rates = {g["depth"]: g["lr"] for g in finetune.param_groups(model, cfg.lr, cfg.delta)}
    out(f"4. The method ({L} layers: {model_from})")
    out(f"   lr {cfg.lr:g}, delta {cfg.delta:g} (Sec 3.3, Eq. 1: each unit's rate is the one "
        f"above it / delta)")
    for depth, name in enumerate(names):
        out(f"   {name:<12} {rates[depth]:.3g}")
    how = f"{cfg.unfreeze} layers an epoch" if cfg.unfreeze else "off, everything trains"
    out(f"\n   Gradual unfreezing (Sec 3.3), {how}: the units that train")
    for epoch in range(cfg.epochs):
        n = finetune.unfreeze(model, epoch, cfg.unfreeze)  # the top n units of `names`
        out(f"   epoch {epoch + 1}: {names[0]}" + f" to {names[n - 1]} ({n} units)" * (n > 1))
    if never := finetune.never_trained(L, cfg.unfreeze, cfg.epochs):
        out(f"   warning: over {cfg.epochs} epochs, {', '.join(never)} never train (Sec 3.3: "
            f"12 layers, 3 an epoch, 5 epochs)")
    out(f"\n   The rate's multiplier over {updates} updates ({counted or 'given'}): "
        f"{cfg.schedule} (Sec 3.3; Table 4)")
    for line in plot([finetune.lr_factor(s, updates, cfg.warmup, cfg.schedule, cfg.stlr_ratio)
                      for s in range(updates)]):
        out("   " + line)


def plot(ys, width=60, height=8):
    """ys (0..1) as a small text plot: a column per stretch of updates, its mean as the bar."""
    n = len(ys)
    cols = [ys[i * n // width:max(i * n // width + 1, (i + 1) * n // width)]
            for i in range(min(width, n))]
    means = [sum(c) / len(c) for c in cols]
    rows = [f"{r / height:4.2f} |" + "".join("#" if m >= (r - 0.5) / height else " "
                                             for m in means) for r in range(height, 0, -1)]
    return rows + ["     +" + "-" * len(means),
                   f"      update 0{' ' * max(1, len(means) - 8 - len(str(n)))}{n - 1}"]
