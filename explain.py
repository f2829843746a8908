"""`explain`: one sentence through the paper's pipeline, stage by stage, and the optimisation a
run's flags describe. Every value printed comes from the functions the pipeline itself runs.

    python experiments.py explain --model runs/en/run-KEY "Angela Merkel visited Paris ."
    python experiments.py explain --model DIR --conll eng.testb --sentence 7
    python experiments.py explain --method --delta 2.6 --unfreeze 3 --epochs 5   # offline

1. Words and pieces (Sec 3.2): wordpiece.py, as featurize calls it; [UNK] and why.
2. The windows the model sees (Sec 3.2, Figure 1): conll.featurize and finetune.tensorize.
3. The model's answer: top tags per word, both schemes (Sec 3.1), conlleval's spans and F1.
4. --method: Eq. 1's rates, the unfreezing plan and the schedule (Sec 3.3), from
   finetune.param_groups, finetune.unfreeze and finetune.lr_factor; needs no model, vocabulary
   or data (a model folder's config.json and --data's train file are read when given).
"""
import os
from dataclasses import fields

import torch

import bert
import conll
import conlleval
import corpora
import finetune
import paper
import tagger
from finetune import FinetuneConfig
from wordpiece import MAX_WORD_CHARS, WordPiece


def load(name_or_dir, device):
    """-> (Tagger, None), or (None, WordPiece) for a BERT without a token classifier."""
    try:
        return tagger.load_tagger(name_or_dir, device), None
    except ValueError as e:
        if "no classifier.weight" not in str(e):
            raise
        return None, WordPiece.from_pretrained(name_or_dir)


def explain(name_or_dir, sent, max_len=0, out=print):
    """Stages 1-3 for one conll.Sentence (gold tags when sent.gold) -> the predicted tags (None
    for a bare BERT)."""
    t, tok = load(name_or_dir, bert.pick_device())
    tok = t.tok if t else tok
    max_len = max_len or (t.max_len if t else 128)
    pieces(tok, sent.words, out)
    labels = t.labels if t else ["O"]
    feats, tags = windows(tok, sent, labels, t.scheme if t else "bio", max_len, out)
    if t is None:
        out(f"\n3. The model's answer: {name_or_dir} has no token classifier (a pretrained BERT);"
            f" fine-tune it first (python experiments.py train ...), or pass a run folder")
        return None
    return answer(t, sent, feats, out)


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
    tokens = tok.basic(word)
    if not tokens:
        return "nothing left after cleaning (control/format chars): one [UNK] keeps its label"
    for t in tokens:
        if tok.pieces(t) == [tok.unk_id] and t != "[UNK]":
            if len(t) > MAX_WORD_CHARS:
                return f"{t[:12]!r}... has over {MAX_WORD_CHARS} characters (HF's limit)"
            return f"no run of vocab pieces spells {t!r} (greedy longest match first)"
    return "the vocab's own [UNK] token"


def windows(tok, sent, labels, scheme, max_len, out):
    """Stage 2: the windows of at most max_len pieces, as tensors the model takes."""
    label2id = {tag: i for i, tag in enumerate(labels)}
    tags = conll.to_scheme(sent.tags, scheme) if sent.gold else ["O"] * len(sent.words)
    unknown = sorted(set(tags) - set(label2id))
    if unknown:  # a gold type the model never learned: its label ids cannot be shown
        out(f"   (gold tags {unknown} are not among the model's labels: labels shown as O)")
        tags = [x if x in label2id else "O" for x in tags]
    feats = conll.featurize([conll.Sentence(sent.words, tags, 0, sent.line)], tok, label2id,
                            max_len)
    data = finetune.tensorize(feats, tok, torch.device("cpu"))
    out(f"\n2. The windows the model sees (Sec 3.2, Figure 1): {len(feats)} of at most {max_len}"
        f" pieces; input ids {tuple(data.ids.shape)} (windows, T), [PAD] = {tok.pad_id}")
    for k, f in enumerate(feats):
        ids, mask, y = (x[0].tolist() for x in finetune.batch_of(data, torch.tensor([k]),
                                                                   len(f.input_ids)))
        words = [i for i, _ in f.first]
        out(f"   window {k + 1}: scores words {words[0] + 1}-{words[-1] + 1}")
        out(f"     pieces         {' '.join(tok.convert_ids_to_tokens(ids))}")
        out(f"     input ids      {ids}")
        out(f"     attention mask {mask}")
        out(f"     label ids      {y}  (-100: no word starts there)")
    return feats, tags


def answer(t, sent, feats, out):
    """Stage 3: per word the top three tags, the tags in both schemes, spans and, with gold tags,
    conlleval's own counts for this one sentence."""
    device = next(t.model.parameters()).device
    data = finetune.tensorize(feats, t.tok, device)
    with torch.no_grad(), bert.autocast(device):
        ids, mask, _ = finetune.batch_of(data, torch.arange(len(feats), device=device),
                                         data.ids.shape[1])
        probs = t.model.eval()(ids, mask).float().softmax(-1)  # (windows, T, labels)
    best = [None] * len(sent.words)
    for k, f in enumerate(feats):
        for i, pos in f.first:
            best[i] = probs[k, pos].topk(min(3, probs.shape[-1]))
    out(f"\n3. The model's answer: scores {tuple(probs.shape)} (windows, T, labels); per word, "
        f"at its first piece, its three likeliest tags")
    for w, (p, i) in zip(sent.words, best):
        top = ", ".join(f"{t.labels[j]} {q:.2f}" for q, j in zip(p.tolist(), i.tolist()))
        out(f"   {w:<16} {top}")
    pred = conll.to_scheme([t.labels[int(i[0])] for _, i in best], t.scheme)
    other = "bio" if t.scheme == "iob1" else "iob1"
    out(f"   tags, {t.scheme.upper()} (the model's scheme): {' '.join(pred)}")
    out(f"   tags, {other.upper()} (Sec 3.1): {' '.join(conll.to_scheme(pred, other))}")
    out(f"   spans conlleval reads: {show_spans(sent.words, conll.spans(pred))}")
    if sent.gold:
        score(sent, pred, out)
    return pred


def show_spans(words, spans):
    return "; ".join(f"{typ} [{' '.join(words[a:b])}]" for a, b, typ in sorted(spans)) or "none"


def score(sent, pred, out):
    """The gold sentence against the prediction, in the gold file's scheme, as conlleval counts."""
    scheme = conll.detect_scheme([sent.tags]) or "bio"
    pred = conll.to_scheme(pred, scheme)
    gold_spans, pred_spans = conll.spans(sent.tags), conll.spans(pred)
    s = conlleval.evaluate([sent.tags], [pred])
    out(f"   gold spans: {show_spans(sent.words, gold_spans)}")
    out(f"   matched: {show_spans(sent.words, gold_spans & pred_spans)}; missed: "
        f"{show_spans(sent.words, gold_spans - pred_spans)}; spurious: "
        f"{show_spans(sent.words, pred_spans - gold_spans)}")
    out(f"   conlleval on this sentence: precision {s['precision']:.2f}, recall "
        f"{s['recall']:.2f}, F1 {s['f1']:.2f} ({s['correct']} of {s['gold']} gold spans found,"
        f" {s['found']} predicted)")


def command(args):
    """`python experiments.py explain`: a sentence (text, or --conll's --sentence) through stages
    1-3, or with --method stage 4. args: the parsed flags, FinetuneConfig's among them."""
    names = {f.name for f in fields(FinetuneConfig)}
    cfg = FinetuneConfig(**{k: v for k, v in args.items() if k in names})
    if args["method"]:
        return method(cfg, *shape(cfg.model), *plan_length(cfg, args["updates"]))
    if args["conll"]:
        sents = conll.read_conll(args["conll"])
        if not 1 <= args["sentence"] <= len(sents):
            raise ValueError(f"--sentence={args['sentence']}: {args['conll']} has {len(sents)} "
                             f"sentences")
        sent = sents[args["sentence"] - 1]
    elif args["text"].strip():
        sent = tagger.text_sentence(args["text"])
    else:  # none, or one of spaces only: no word to explain
        raise ValueError('explain needs a sentence with a word in it ("Angela Merkel visited '
                         'Paris ."), --conll FILE, or --method')
    explain(cfg.model, sent, args.get("max_len", 0))



# ---------------------------------------------------------------------------------------------
# 4. The method's schedules (Sec 3.3), offline: no weights, vocabulary or data are needed.

GERMAN_TRAIN_SENTENCES = 12705  # CoNLL-2003 German train (Tjong Kim Sang & De Meulder 2003)


def shape(model):
    """-> (BertConfig, where it came from): a local folder's config.json, else BertConfig's
    default, mBERT's shape (a Hub id is not looked up: --method runs offline)."""
    path = os.path.join(model, "config.json")
    if os.path.isfile(path):
        return bert.BertConfig.from_json(path), path
    return bert.BertConfig(), "BertConfig's default, mBERT's shape"


def plan_length(cfg, updates=0):
    """-> (updates, how they were counted): --updates, else ceil(sentences / batch) x epochs,
    with --data's train sentences, or the corpus's published count (a window per sentence: the
    few longer than max_len pieces add one each)."""
    if updates:
        return updates, "--updates"
    if cfg.data:
        path = corpora.splits(corpora.data_dir(cfg.data, cfg.lang), cfg.lang)["train"]
        n, where = len(conll.read_conll(path)), path
    elif cfg.lang == "de":
        n, where = GERMAN_TRAIN_SENTENCES, "CoNLL-2003 German's published train sentences"
    else:  # CleanCoNLL's train: CoNLL-2003 English's sentences, a few of them joined
        corpus = corpora.DOWNLOADS["germeval" if cfg.lang == "germeval" else "en"]
        name, (n, _) = next(iter(corpus.counts.items()))
        where = f"{corpus.name}'s published {name} sentences"
    n = min(n, cfg.max_train_sentences or n)
    per_epoch = -(-n // cfg.batch_size)
    return per_epoch * cfg.epochs, (f"{cfg.epochs} epochs x ceil({n:,} / {cfg.batch_size}) = "
                                    f"{per_epoch} updates: {where}")


def method(cfg, bert_cfg, model_from, updates, counted="", out=print):
    """Eq. 1's rate per unit, the unfreezing plan per epoch, and the schedule over `updates`."""
    with torch.device("meta"):  # the shapes alone: no weights are read or made
        model = bert.TokenClassifier(bert.Bert(bert_cfg), 9)
    L = len(finetune.depth_units(model)) - 2
    names = finetune.unit_names(L)
    rates = {g["depth"]: g["lr"] for g in finetune.param_groups(model, cfg.lr, cfg.delta)}
    out(f"4. The method ({L} layers: {model_from})")
    if (cfg.unfreeze, cfg.epochs, cfg.lm_epochs) == (paper.UNFREEZE, paper.UNFREEZE_EPOCHS, 0):
        out(f"   Tables 5-6's \"+ Task fine-tuning\" at eta_0 {cfg.lr:g}, delta {cfg.delta:g} "
            f"(Sec 4.2: the two are chosen on dev; reproduce --ablations searches them)")
    out(f"   lr {cfg.lr:g}, delta {cfg.delta:g} (Sec 3.3, Eq. 1: each unit's rate is the one "
        f"above it / delta)")
    for depth, name in enumerate(names):
        out(f"   {name:<12} {rates[depth]:.3g}")
    how = f"{cfg.unfreeze} layers an epoch" if cfg.unfreeze else "off, everything trains"
    out(f"\n   Gradual unfreezing (Sec 3.3), {how}: the units that train")
    for epoch in range(cfg.epochs):
        n = finetune.unfreeze(model, epoch, cfg.unfreeze)
        out(f"   epoch {epoch + 1}: {units(names[:n])}")
    never = finetune.never_trained(L, cfg.unfreeze, cfg.epochs)
    if never:
        out(f"   warning: over {cfg.epochs} epochs, {', '.join(never)} never train (Sec 3.3: "
            f"12 layers, 3 an epoch, 5 epochs)")
    out(f"\n   The rate's multiplier over {updates} updates ({counted or 'given'}): "
        f"{cfg.schedule} (Sec 3.3; Table 4)")
    for line in plot([finetune.lr_factor(s, updates, cfg.warmup, cfg.schedule, cfg.stlr_ratio)
                      for s in range(updates)]):
        out("   " + line)


def units(names):
    """["classifier", "layer 11", "layer 10", "layer 9"] -> "classifier, layers 11-9";
    ["classifier"] (the first epoch of gradual unfreezing) -> "classifier"."""
    layers = [n for n in names if n.startswith("layer ")]
    span = [f"layers {layers[0][6:]}-{layers[-1][6:]}" if len(layers) > 1 else layers[0]
            ] if layers else []
    return ", ".join([names[0], *span, *names[len(layers) + 1:]])


def plot(ys, width=60, height=8):
    """ys (0..1) as a small text plot: a column per stretch of updates, its mean as the bar."""
    n = len(ys)
    cols = [ys[i * n // width:max(i * n // width + 1, (i + 1) * n // width)]
            for i in range(min(width, n))]
    means = [sum(c) / len(c) for c in cols]
    rows = []
    for r in range(height, 0, -1):
        rows.append(f"{r / height:4.2f} |" + "".join("#" if m >= (r - 0.5) / height else " "
                                                     for m in means))
    rows.append("     +" + "-" * len(means))
    rows.append(f"      update 0{' ' * max(1, len(means) - 8 - len(str(n)))}{n - 1}")
    return rows
