"""Fine-tuning BERT for NER: the paper's method, top to bottom (Sec 3.1-3.3, 4.1, 4.2).

- BertAdam: AdamW as google-research/bert optimization.py writes it (no bias correction), with
  BERT's linear warmup and decay (fn 8; Sec 3.3 reads it as ULMFiT's slanted triangular rates),
  ULMFiT's own STLR (ULMFiT Eq. 3) as an option, and a constant rate for Table 4's runs without.
- Discriminative fine-tuning (Sec 3.3, Eq. 1) and gradual unfreezing (Sec 3.3), after ULMFiT.
- `fit`, one plain loop for both stages (rate, loss, backward, clip, step); `train`, one run.
- Masked-LM fine-tuning on the task text before the task (Sec 4.2, Tables 5-6).

Where the paper leaves a point open, the line taking our reading says "the paper does not say".
It reads, trains, scores and writes nothing; fastfit.py, tagger.py and experiments.py stand beside.
"""
import math
import time
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

import bert
import conll
import conlleval
import corpora


@dataclass
class FinetuneConfig:
    """What a run is: every field can change its result (experiments.run_key hashes them all)."""
    model: str = "bert-base-multilingual-cased"  # Sec 2.4: mBERT
    data: str = ""             # folder with the splits; "" = download (English, GermEval)
    lang: str = "en"           # en | de (CoNLL-2003) | germeval | cleanconll | es | nl (CoNLL-2002)
    level: str = "outer"       # germeval: outer or inner entities (Benikova et al. 2014: cols 3/4)
    scheme: str = "iob1"       # iob1 | bio: the tagging scheme trained (Sec 3.1, Tables 2-3)
    lr: float = 3e-5           # Table 1 grid {2e-5, 3e-5, 5e-5}; 3e-5 chosen (Sec 4.1, fn 11)
    batch_size: int = 16       # Table 1 grid {16, 32}; 16 chosen (fn 11)
    epochs: int = 4            # Table 1 grid {3, 4}; 4 chosen for English (fn 11), German 3
    seed: int = 1              # seeds 1..5 for the paper's 5 runs per setting
    schedule: str = "linear"   # linear (BERT) | stlr (ULMFiT Eq. 3) | constant (Table 4, no warmup)
    warmup: float = 0.1        # BERT: warmup over the first 10% of the updates
    stlr_ratio: float = 32.0   # ULMFiT Sec 3.2: the lowest lr is eta_max / ratio
    bias_correction: bool = False  # False: BertAdam (BERT omits it); True: torch.optim.AdamW
    weight_decay: float = 0.01  # BERT optimization.py
    eps: float = 1e-6          # BERT optimization.py
    clip: float = 1.0          # BERT clips the global gradient norm at 1.0
    clip_each: bool = False    # True: clip each tensor alone (pytorch-pretrained-BERT's BertAdam)
    delta: float = 1.0         # Sec 3.3, Eq. (1): rate / delta per layer down; 1 = off; 2.6, 1.6
    unfreeze: int = 0          # Sec 3.3 gradual unfreezing: layers thawed per epoch (3); 0 = off
    lm_epochs: int = 0         # Sec 4.2, Tables 5-6: masked-LM epochs on the task text first
    max_len: int = 128         # pieces per window; longer sentences become windows (conll.py)
    max_train_sentences: int = 0  # >0: train on the first N sentences only (quick runs)


# ---------------------------------------------------------------------------------------------
# The optimizer: AdamW with decoupled weight decay (Loshchilov & Hutter), as BERT trains.

def adamw_update(p, g, m, v, step, lr, wd, b1=0.9, b2=0.999, eps=1e-6, bias_correction=False):
    """One tensor's update, in place, as google-research/bert optimization.py writes it: the
    reference that AdamW's fused step is tested equal to."""
    # Decoupled weight decay: wd p is not added to the gradient, where Adam's moments would scale
    # it (Loshchilov & Hutter); torch takes it off the weights before the Adam step, as here.
    p.mul_(1 - lr * wd)
    m.mul_(b1).add_(g, alpha=1 - b1)  # Standard Adam update: m <- b1 m + (1 - b1) g
    v.mul_(b2).addcmul_(g, g, value=1 - b2)  # v <- b2 v + (1 - b2) g^2
    if bias_correction:  # torch.optim.AdamW divides by 1 - b^t; BERT leaves this out, unsaid
        m, v = m / (1 - b1 ** step), v / (1 - b2 ** step)
    p.sub_(lr * m / (v.sqrt() + eps))  # p <- p - lr m / (sqrt(v) + eps)


class AdamW(torch.optim.Optimizer):
    """adamw_update over each parameter group: one fused kernel per group (torch's
    `_fused_adamw_`, torch.optim.AdamW(fused=True)'s kernel), or tensor by tensor (fused=False)."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01,
                 bias_correction=False, fused=True):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction, fused=fused))
        self.infinity = {}  # device -> t = inf, made once (not a fill per group per step)

    def state_of(self, p):
        """p's moments and step count (a tensor on p's device, as the fused kernel reads it)."""
        if not self.state[p]:
            self.state[p] = dict(step=torch.zeros((), dtype=torch.float32, device=p.device),
                                 m=torch.zeros_like(p), v=torch.zeros_like(p))
        return self.state[p]

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            # a weight without a grad (frozen by Sec 3.3's unfreezing, or never reached by the
            # loss) is left alone: no update, no decay, no step count of its own yet
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            st = [self.state_of(p) for p in ps]
            (b1, b2), steps = g["betas"], [s["step"] for s in st]
            torch._foreach_add_(steps, 1)
            if not g["fused"]:  # the reference, per tensor; float(t): corrections in float64
                for p, s in zip(ps, st):
                    adamw_update(p, p.grad, s["m"], s["v"], float(s["step"]), g["lr"],
                                 g["weight_decay"], b1, b2, g["eps"], g["bias_correction"])
                continue
            if not g["bias_correction"]:  # the kernel always corrects: at t = inf, 1 - b^t = 1
                d = ps[0].device
                if d not in self.infinity:
                    self.infinity[d] = torch.full((), math.inf, device=d)
                steps = [self.infinity[d]] * len(ps)
            torch._fused_adamw_(ps, [p.grad for p in ps], [s["m"] for s in st],
                                [s["v"] for s in st], [], steps, lr=g["lr"], beta1=b1, beta2=b2,
                                weight_decay=g["weight_decay"], eps=g["eps"], amsgrad=False,
                                maximize=False)


def clip_grads(params, max_norm, each=False):
    """The gradients scaled to norm max_norm at most: as one vector (google-research/bert), or each
    tensor alone (each=True, pytorch-pretrained-BERT's BertAdam); the paper does not say which."""
    if not each:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch._foreach_norm(grads)  # as clip_grad_norm_ per tensor: max_norm / (norm + 1e-6)
    torch._foreach_mul_(grads, [(max_norm / (n + 1e-6)).clamp(max=1.0) for n in norms])


def lr_factor(step, total, warmup, schedule, ratio=32.0):
    """The peak rate's multiplier at update `step` (0-based) of `total`. Total 100, warmup 0.1:
        linear   0, 0.1, ..., 0.9 over steps 0-9, then 1 - t/T: 0.9 at 10, 0.45 at 55
        stlr     1/32 at 0, 1 at 10, back to about 1/32 at 99 (ratio 32)
        constant 1 throughout"""
    if schedule == "constant":  # Table 4 "without BertAdam": the paper does not say what ran
        # instead; Sec 4.2 reads the table as warmup's effect: the same AdamW at a constant rate,
        # which drops the decay too (--warmup 0 keeps the decay; --bias_correction: torch's AdamW)
        return 1.0
    warm = math.floor(total * warmup)
    if schedule == "stlr":  # ULMFiT Eq. (3): up to the cut, then down over the updates left
        # (ULMFiT Eq. 3 divides by the cut: the same when T * cut_frac is whole)
        p = step / warm if step < warm else 1 - (step - warm) / max(1, total - warm)
        return (1 + p * (ratio - 1)) / ratio
    assert schedule == "linear", schedule
    # BERT's warmup_linear (google-research/bert optimization.py, and pytorch-pretrained-BERT's
    # BertAdam before 0.6), read in Sec 3.3 as slanted triangular rates: after warmup the line
    # 1 - t/T that warmup cut into, so it resumes at 0.9. The paper does not say which BertAdam
    # it ran; from 0.6 (and in HF's get_linear_schedule_with_warmup) it restarts from 1 there.
    return step / warm if step < warm else max(0.0, 1 - step / total)


# ---------------------------------------------------------------------------------------------
# Which parameters learn how fast, and when (Sec 3.3, after ULMFiT Sec 3.2 and 3.3).

def depth_units(model):
    """The model cut top-down into units: [classifier (+ MLM head), layer L-1, ..., layer 0,
    embeddings]. A unit shares one rate (Eq. 1) and thaws at once (gradual unfreezing)."""
    task = isinstance(model, bert.TokenClassifier)  # else a bare Bert: the masked-LM stage
    b = model.bert if task else model
    head = ([model.out] if task else []) + ([b.mlm] if b.mlm is not None else [])
    return [head, *[[layer] for layer in reversed(b.layers)], [b.emb]]


def param_groups(model, lr, delta=1.0, weight_decay=0.01):
    """Eq. (1), discriminative fine-tuning: the top layer gets eta0 = lr, each unit below its upper
    neighbour's rate / delta. L=12, delta 2.6: layer 0 gets eta0 / 2.6^11. The classifier's rate
    the paper does not say: eta0, the top layer's (fn 9's notebook gives its head group the peak
    rate too). Matrices (Linear, Embedding) decay; biases and LayerNorm do not (BERT's list)."""
    groups, seen = [], set()
    # bottom-up: the word embeddings, tied to the head unit's MLM decoder, take the embeddings' rate
    for depth, unit in reversed(list(enumerate(depth_units(model)))):
        rate = lr / delta ** max(0, depth - 1)  # Sec 3.3, Eq. (1): eta_l = eta_(l+1) / delta
        decay, plain = [], []
        for p in (p for mod in unit for p in mod.parameters()):
            if id(p) not in seen:  # the tied MLM decoder: one owner
                seen.add(id(p))
                (decay if p.dim() >= 2 else plain).append(p)
        groups += [dict(params=decay, lr=rate, weight_decay=weight_decay, depth=depth),
                   dict(params=plain, lr=rate, weight_decay=0.0, depth=depth)]
    assert len(seen) == len({id(p) for p in model.parameters()}), "each parameter in one group"
    return groups


def unfreeze(model, epoch, per_epoch):
    """Gradual unfreezing (Sec 3.3) as footnote 9's notebook does it: the first epoch trains the
    classifier alone, each later one adds the next per_epoch layers top-down, and the epoch that
    reaches the last layers trains everything, embeddings included. L=12, 3 an epoch:
        epoch 0: classifier; 1: + layers 11-9; 2: + 8-6; 3: + 5-3; 4: + 2-0 and embeddings
    5 epochs, Sec 3.3's count. per_epoch 0: everything trains. -> the number of units training."""
    units = depth_units(model)
    n = len(units) - len(never_trained(len(units) - 2, per_epoch, epoch + 1))
    for i, unit in enumerate(units):  # units are top-down: the first n train
        for mod in unit:
            mod.requires_grad_(i < n)
    return n


def unit_names(L):
    """depth_units' order in words: classifier, layer L-1, ..., layer 0, embeddings."""
    return ["classifier", *[f"layer {i}" for i in reversed(range(L))], "embeddings"]


def never_trained(L, per_epoch, epochs):
    """The unit_names gradual unfreezing never reaches within `epochs` (unfreeze's example)."""
    layers = min(L, (epochs - 1) * per_epoch) if per_epoch else L
    return unit_names(L)[1 + layers + (layers == L):]  # the embeddings join the bottom layers


# ---------------------------------------------------------------------------------------------
# Data: a run's windows of pieces (corpora.read_splits: Sec 3.1, 3.2) -> device tensors -> batches

@dataclass
class Tensors:
    """A split's windows padded into one tensor each, moved to the device once."""
    ids: torch.Tensor      # (N, T) piece ids, [PAD] after each window
    labels: torch.Tensor   # (N, T) label ids, -100 where no word starts
    lengths: torch.Tensor  # (N,) pieces per window
    pad: int               # the [PAD] id


def tensorize(feats, tok, device):
    lengths = torch.tensor([len(f.input_ids) for f in feats])
    n_labels = torch.tensor([len(f.labels) for f in feats])
    T = int(lengths.max())
    ids = torch.full((len(feats), T), tok.pad_id, dtype=torch.long)
    labels = torch.full((len(feats), T), conll.IGNORE, dtype=torch.long)
    # every window's pieces in one flat list, poured row by row into the padded tensor
    ids[torch.arange(T) < lengths[:, None]] = torch.tensor([i for f in feats for i in f.input_ids])
    labels[torch.arange(T) < n_labels[:, None]] = torch.tensor([y for f in feats for y in f.labels])
    return Tensors(ids.to(device), labels.to(device), lengths.to(device), tok.pad_id)


def batch_of(data, rows, T):
    """Rows (a device tensor) cut to T pieces -> (ids, mask, labels), each (B, T)."""
    mask = torch.arange(T, device=rows.device) < data.lengths[rows, None]  # (B, T)
    return data.ids[rows, :T], mask.long(), data.labels[rows, :T]


def batches(feats, size, shuffle, gen=None):
    """Lists of feature indices. Shuffled: random pools of 50 batches, sorted by length inside each
    pool, so a batch holds windows of similar length (little padding) but the order stays random."""
    order = torch.randperm(len(feats), generator=gen).tolist() if shuffle else range(len(feats))
    pool = 50 * size if shuffle else len(feats)
    chunks = [sorted(order[i:i + pool], key=lambda j: len(feats[j].input_ids))
              for i in range(0, len(order), pool)]
    out = [c[j:j + size] for c in chunks for j in range(0, len(c), size)]
    if shuffle:
        out = [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]
    return out


def batch_plan(feats, cfg, epochs):
    """Every epoch's batches, drawn up front from a generator of the run's own seed."""
    gen = torch.Generator().manual_seed(cfg.seed)
    return [batches(feats, cfg.batch_size, shuffle=True, gen=gen) for _ in range(epochs)]


# ---------------------------------------------------------------------------------------------
# The training loop, one for both stages (the task, Sec 3.2; the masked-LM stage, Sec 4.2).

def task_loss(model, ids, mask, y):
    """Cross-entropy over each word's first piece (BERT Sec 5.3); -100 positions are ignored."""
    logits = model(ids, mask)  # (B, T, labels)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=conll.IGNORE)


def fit(model, opt, data, plan, cfg, loss_of, log=print, after_epoch=None):
    """Train on `data` (Tensors) batch by batch as `plan` orders them, each group at its own rate
    (Eq. 1) times the schedule's factor; after_epoch(epoch, mean loss) runs the dev evaluation.
    -> dict(updates, tokens, train_s), the training time without after_epoch's."""
    device, total, lengths = data.ids.device, sum(map(len, plan)), data.lengths.tolist()
    peak = [g["lr"] for g in opt.param_groups]  # Eq. (1): each group's own rate
    meter = Meter(plan, log)
    step, running = 0, torch.zeros((), device=device)  # the loss, summed on the device
    for epoch, epoch_batches in enumerate(plan):
        unfreeze(model, epoch, cfg.unfreeze)  # Sec 3.3: gradual unfreezing
        model.train()
        for idx in epoch_batches:
            # Sec 3.3: one schedule over the whole run (the notebook restarts one per stage).
            # Whether warmup stays on under gradual unfreezing the paper does not say; we keep it
            factor = lr_factor(step, total, cfg.warmup, cfg.schedule, cfg.stlr_ratio)
            for g, lr in zip(opt.param_groups, peak):
                g["lr"] = lr * factor
            T = max(lengths[i] for i in idx)  # padded to this batch's longest window only
            ids, mask, y = batch_of(data, torch.tensor(idx, device=device), T)
            with bert.autocast(device):
                loss = loss_of(model, ids, mask, y)
            loss.backward()
            clip_grads(model.parameters(), cfg.clip, cfg.clip_each)
            opt.step()
            opt.zero_grad(set_to_none=True)  # let the grads go: backward makes fresh ones
            running += loss.detach().float()
            step += 1
            meter.update(epoch, step, sum(lengths[i] for i in idx), running)
        if after_epoch:
            after_epoch(epoch, meter.epoch_loss)
        meter.resume()
    return dict(updates=total, tokens=meter.tokens, train_s=meter.seconds())


class Meter:
    """fit's log, apart from its math: a line every 50 updates and at each epoch's end (mean loss
    since the last line, tokens/s, time left), and the NaN stop: a diverged run is never scored."""

    def __init__(self, plan, log):
        self.plan, self.total, self.log = plan, sum(map(len, plan)), log
        self.t0, self.paused, self.tokens = time.time(), 0.0, 0
        self.last = self.first = (0, 0.0)  # (step, loss sum) at the last line, the epoch's start

    def update(self, epoch, step, tokens, running):
        self.tokens += tokens
        end = step - self.first[0] == len(self.plan[epoch])
        if step % 50 and not end:
            return
        now = (step, running.item())  # note: a CPU-GPU sync point, the loop's only one
        if not math.isfinite(now[1]):
            raise FloatingPointError(f"the loss became NaN/inf by update {step}: the weights "
                                     f"diverged (a lower --lr?); the run is not recorded")
        s, mean = self.seconds(), (now[1] - self.last[1]) / (step - self.last[0])
        left = duration(s / step * (self.total - step))  # at the pace so far
        self.log(f"epoch {epoch + 1}/{len(self.plan)} update {step}/{self.total} loss {mean:.4f} "
                 f"{self.tokens / s:,.0f} tok/s, run ~{left} left")
        self.last = now
        if end:
            self.epoch_loss = (now[1] - self.first[1]) / (step - self.first[0])
            self.first, self.paused_at = now, time.time()

    def seconds(self):
        return max(1e-9, time.time() - self.t0 - self.paused)

    def resume(self):
        self.paused += time.time() - self.paused_at


def duration(s):
    """45 -> "45 s", 200 -> "3.3 min", 7200 -> "2.0 h"."""
    return f"{s:.0f} s" if s < 100 else f"{s / 60:.1f} min" if s < 6000 else f"{s / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------
# Masked-LM fine-tuning on the task text, before the task (Sec 2.2's step 1.5; Sec 4.2).

def mask_pieces(ids, tok, p=0.15):
    """BERT Sec 3.1 Task #1, BERT App. A.1: choose 15% of the pieces ([CLS], [SEP], [PAD] never); of
    those, 80% become [MASK], 10% a random piece, 10% stay. -> (inputs, labels: the original id
    where chosen, else -100)."""
    special = (ids == tok.cls_id) | (ids == tok.sep_id) | (ids == tok.pad_id)
    chosen = (torch.rand(ids.shape, device=ids.device) < p) & ~special
    r = torch.rand(ids.shape, device=ids.device)
    x = torch.where(chosen & (r < 0.8), tok.mask_id, ids)
    x = torch.where(chosen & (r >= 0.8) & (r < 0.9), torch.randint_like(ids, len(tok)), x)
    return x, ids.masked_fill(~chosen, conll.IGNORE)


def lm_loss(tok):
    """The stage's loss: fresh masks every batch, the task labels unused. The mean over the chosen
    pieces, and 0 (no gradient) for a batch with none chosen, where cross_entropy's own mean
    would be 0/0 = NaN and end the run."""
    def loss(model, ids, mask, y):
        x, target = mask_pieces(ids, tok)
        logits = model.mlm(model(x, mask))  # (B, T, V)
        total = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                ignore_index=conll.IGNORE, reduction="sum")
        return total / (target != conll.IGNORE).sum().clamp(min=1)
    return loss


def lm_finetune(cfg, tok, feats, fit=fit, log=print):
    """cfg.lm_epochs epochs of masked-LM training on `feats` -> a bert.Bert with its MLM head, at
    cfg's rate, batch and seed, as plain BertAdam (linear schedule, one rate, nothing frozen)."""
    # Which model, text and rate Table 5's LM rows used the paper does not say: the run's own model
    # on its task's training sentences (English BERT on English for Table 5), at the task's rate.
    lm = replace(cfg, epochs=cfg.lm_epochs, schedule="linear", delta=1.0, unfreeze=0)
    bert.check_mlm_head(lm.model)  # the stage trains the checkpoint's own head
    torch.manual_seed(lm.seed)
    device = bert.pick_device()
    model = bert.from_pretrained(lm.model).to(device)
    opt = AdamW(param_groups(model, lm.lr, 1.0, lm.weight_decay), lr=lm.lr, eps=lm.eps,
                weight_decay=lm.weight_decay)
    fit(model, opt, tensorize(feats, tok, device), batch_plan(feats, lm, lm.epochs), lm,
        lm_loss(tok), log=log, after_epoch=lambda epoch, loss: log(
            f"LM epoch {epoch + 1}/{lm.epochs}: masked-LM loss {loss:.4f} (epoch mean)"))
    return model


# ---------------------------------------------------------------------------------------------
# Evaluation (Sec 3.2: conlleval's F1) and one run.

@torch.no_grad()
def predict_tags(model, split, data, labels, batch_size=0):
    """Tags per word of split.sents in split.scheme (the gold file's, so that conlleval compares
    like with like). Windows in batches of batch_size (0: 256 on CUDA, 64 on the CPU)."""
    model.eval()
    device = data.ids.device
    pred = torch.zeros(data.ids.shape, dtype=torch.long, device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)  # a NaN/inf score, on the device
    for idx in batches(split.feats, batch_size or (256 if device.type == "cuda" else 64), False):
        T = max(len(split.feats[i].input_ids) for i in idx)
        rows = torch.tensor(idx, device=device)
        ids, mask, _ = batch_of(data, rows, T)
        with bert.autocast(device):
            logits = model(ids, mask)  # (B, T, labels)
        bad |= ~torch.isfinite(logits).all()
        pred[rows, :T] = logits.argmax(-1)
    if bad:  # e.g. a last update that diverged: its loss was never computed, so fit saw nothing
        raise FloatingPointError("the scores are NaN/inf: the weights diverged (a lower --lr?)")
    words = conll.gather(split.feats, pred.tolist(), split.sents)  # BERT Sec 5.3: first piece
    return [conll.to_scheme([labels[i] for i in w], split.scheme) for w in words]


def evaluate(model, split, data, labels, batch_size=0):
    """conlleval's scores of one split (the paper's F1, Sec 3.2), and the predicted tags."""
    pred = predict_tags(model, split, data, labels, batch_size)
    return conlleval.evaluate([s.tags for s in split.sents], pred), pred


@dataclass
class Trained:
    model: bert.TokenClassifier
    tok: object      # the wordpiece.WordPiece the windows were made with
    labels: list     # label id -> tag: "O", "B-PER", "I-PER", ...
    dev: dict        # conlleval's scores after the last epoch
    test: dict
    dev_f1: list     # per epoch
    pred: dict       # split -> (sentences with gold tags, predicted tags in the file's scheme)
    stats: dict      # fit's updates, tokens, train_s; time_s, the whole run


def train(cfg, encoder=None, fit=fit, eval_batch_size=0, log=print):
    """One fine-tuning run -> Trained. `encoder`: the weights to start from (a folder, e.g. the
    masked-LM stage's), else cfg.model; `fit`: this loop or fastfit's. Writes nothing."""
    t_start, device = time.time(), bert.pick_device()
    log(f"loading the vocabulary of {cfg.model}")  # each stage over a few seconds says itself
    tok = corpora.vocabulary(cfg.model)
    bert.check_inputs(cfg.model, cfg.max_len, len(tok))  # now, not after an epoch of training
    log(f"reading {cfg.data or 'the downloaded ' + cfg.lang} into windows of {cfg.max_len} pieces")
    data, labels = corpora.read_splits(cfg, tok)
    torch.manual_seed(cfg.seed)  # every draw here is torch's; the batches have their own
    log(f"loading {encoder or cfg.model} onto the {device.type.upper()}")
    model = bert.TokenClassifier(bert.from_pretrained(encoder or cfg.model), len(labels)).to(device)
    if never := never_trained(len(model.bert.layers), cfg.unfreeze, cfg.epochs):
        log(f"warning: --unfreeze {cfg.unfreeze} over {cfg.epochs} epochs never trains "
            f"{', '.join(never)} (Sec 3.3: 12 layers, 3 an epoch, 5 epochs)")
    opt = AdamW(param_groups(model, cfg.lr, cfg.delta, cfg.weight_decay), lr=cfg.lr,
                eps=cfg.eps, weight_decay=cfg.weight_decay, bias_correction=cfg.bias_correction)
    on_device = {k: tensorize(s.feats, tok, device) for k, s in data.items()}
    dev = []

    def after_epoch(epoch, loss):
        log(f"evaluating {len(data['dev'].sents):,} dev sentences")
        dev.append(evaluate(model, data["dev"], on_device["dev"], labels, eval_batch_size))
        log(f"epoch {epoch + 1}: dev F1 {dev[-1][0]['f1']:.2f}")
    stats = fit(model, opt, on_device["train"], batch_plan(data["train"].feats, cfg, cfg.epochs),
                cfg, task_loss, log=log, after_epoch=after_epoch)
    log(f"evaluating {len(data['test'].sents):,} test sentences")
    test = evaluate(model, data["test"], on_device["test"], labels, eval_batch_size)
    log(f"dev F1 {dev[-1][0]['f1']:.2f}  test F1 {test[0]['f1']:.2f}")
    pred = {"dev": (data["dev"].sents, dev[-1][1]), "test": (data["test"].sents, test[1])}
    return Trained(model, tok, labels, dev[-1][0], test[0], [d[0]["f1"] for d in dev], pred,
                   dict(stats, time_s=time.time() - t_start))

