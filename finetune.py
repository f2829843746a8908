"""Fine-tuning BERT for NER: the paper's method (Sec 3.2, 3.3, 4.1, 4.2; Tables 1 and 4-6).

- AdamW written by hand (BERT's "BertAdam": google-research/bert optimization.py), with BERT's
  linear warmup + decay (the paper's Sec 3.3 reading of it as slanted triangular rates), ULMFiT's
  exact STLR as an option, and no warmup for the Table 4 ablation.
- Discriminative fine-tuning (Sec 4.1, Eq. 1) and gradual unfreezing (Sec 4.1), after ULMFiT Sec
  3.2/3.3, and masked-LM fine-tuning on the task text before the task (Sec 4.2, Table 6).
- One training loop for both stages (`fit`), and `train`: one run -> its record, its tagger and
  its predictions. Results files, grids, tables and the command line live in experiments.py.

On CUDA the loop can replay each update from a CUDA graph (`graphs=True`): the same update
function, recorded once per length bucket, so that Python and kernel launches stop leaving the GPU
idle. It is tested equal to the eager loop on the CPU (everything but the capture itself).
"""
import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F

import bert
import conll
import conlleval
import corpora
from wordpiece import WordPiece

BUCKET = 16  # graphs: batches are padded to a multiple of 16 pieces, one captured graph per length


@dataclass
class FinetuneConfig:
    """What a run is: every field can change its result, and all of them make up its key."""
    model: str = "bert-base-multilingual-cased"  # paper Sec 2.3: mBERT, cased
    data: str = ""             # folder with the splits; "" = download (English, GermEval)
    lang: str = "en"           # en | de (CoNLL-2003) | germeval (GermEval 2014): corpora.splits
    level: str = "outer"       # germeval: outer or inner entities (Benikova et al. 2014: cols 3/4)
    scheme: str = "iob1"       # iob1 | bio: the tagging scheme trained (Sec 3.1, Tables 2-3)
    lr: float = 3e-5           # Table 1 grid {2e-5, 3e-5, 5e-5}; 3e-5 chosen (Sec 3.3)
    batch_size: int = 16       # Table 1 grid {16, 32}; 16 chosen
    epochs: int = 4            # Table 1 grid {3, 4}; 4 chosen
    seed: int = 1              # seeds 1..5 for the paper's 5 runs per setting
    schedule: str = "linear"   # linear (BERT) | stlr (ULMFiT Eq. 3) | constant (Table 4, no warmup)
    warmup: float = 0.1        # BERT: warmup over the first 10% of the updates
    stlr_ratio: float = 32.0   # ULMFiT Sec 3.2: the lowest lr is eta_max / ratio
    bias_correction: bool = False  # False: BertAdam (BERT omits it); True: torch.optim.AdamW
    weight_decay: float = 0.01  # BERT optimization.py
    eps: float = 1e-6          # BERT optimization.py
    clip: float = 1.0          # BERT clips the global gradient norm at 1.0
    delta: float = 1.0         # Sec 4.1, Eq. (1): rate / delta per layer down; 1 = off; 2.6, 1.6
    unfreeze: int = 0          # Sec 4.1 gradual unfreezing: layers thawed per epoch (3); 0 = off
    lm_epochs: int = 0         # Sec 4.2, Table 6: masked-LM epochs on the task text first (10, 20)
    max_len: int = 128         # pieces per window; longer sentences become windows (conll.py)
    doc_context: bool = False  # Devlin et al.'s document context; not used by the paper
    max_train_sentences: int = 0  # >0: train on the first N sentences only (quick runs)

    def __post_init__(self):
        for f in fields(self):  # typed as the command line types them: warmup=0 is 0.0, one key
            v = getattr(self, f.name)
            ok = isinstance(v, f.type) or f.type is float and isinstance(v, int)
            if not ok or isinstance(v, bool) and f.type is not bool:
                raise ValueError(f"--{f.name}={v!r}: expected {f.type.__name__}")
            setattr(self, f.name, f.type(v))
        choices = dict(scheme=("iob1", "bio"), schedule=("linear", "stlr", "constant"),
                       lang=("en", "de", "germeval"), level=("outer", "inner"))
        for k, ok in choices.items():
            if getattr(self, k) not in ok:
                raise ValueError(f"--{k}={getattr(self, k)}: expected one of {', '.join(ok)}")
        check_ranges(self, RANGES)
        if self.level != "outer" and self.lang != "germeval":
            raise ValueError(f"--level={self.level}: only GermEval 2014 has an inner level; "
                             f"add --lang germeval or drop --level")
        if self.schedule == "stlr" and self.warmup == 0:
            raise ValueError("--schedule=stlr needs --warmup > 0 (ULMFiT's cut_frac, e.g. 0.1)")

    def key(self):
        """Id of a run: a hash of every field, with `data` as a fingerprint of the files' bytes
        (so an edited file is a new run, and `dir/` is `dir`) and `model` without a trailing /.
        `level` came later: at "outer", the only behaviour before it, it is left out, so runs
        recorded before it keep their keys (and resume)."""
        d = asdict(self)
        if d["level"] == "outer":
            del d["level"]
        d["data"] = corpora.data_fingerprint(self.data, self.lang)
        d["model"] = self.model.rstrip("/")
        return digest(d)


# Allowed ranges: (low, high, low included). A value outside is an error naming the flag.
RANGES = dict(lr=(0, None, False), batch_size=(1, None, True), epochs=(1, None, True),
              warmup=(0, 1, True), stlr_ratio=(1, None, True), weight_decay=(0, None, True),
              eps=(0, None, False), clip=(0, None, False), delta=(0, None, False),
              unfreeze=(0, None, True), lm_epochs=(0, None, True), max_len=(3, 512, True),
              max_train_sentences=(0, None, True))


def check_ranges(cfg, ranges):
    """`--clip=-1: clip must be > 0`: every numeric field against its range, before any work.
    The high end is exclusive for floats (warmup < 1) and inclusive for ints (max_len <= 512)."""
    for k, (lo, hi, lo_in) in ranges.items():
        v = getattr(cfg, k)
        if lo is not None and (v < lo if lo_in else v <= lo) or not math.isfinite(v):
            raise ValueError(f"--{k}={v}: {k} must be {'>=' if lo_in else '>'} {lo}")
        if hi is not None and (v > hi if isinstance(v, int) else v >= hi):
            raise ValueError(f"--{k}={v}: {k} must be {'<=' if isinstance(v, int) else '<'} {hi}")


def digest(d):
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# The optimizer: AdamW with decoupled weight decay (Loshchilov & Hutter), as BERT trains.

def adamw_update(p, g, m, v, step, lr, wd, b1=0.9, b2=0.999, eps=1e-6, bias_correction=False):
    """One tensor's update, written as google-research/bert optimization.py writes it (in place):
        m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2;  p <- p - lr (m / (sqrt(v) + eps) + wd p)
    BERT leaves out Adam's bias correction without saying so; with bias_correction=True m and v
    are divided by 1 - b^step first, which is torch.optim.AdamW's update. This is the reference
    that AdamW's fused step is tested against."""
    p.mul_(1 - lr * wd)  # decoupled decay, on the weights before the Adam step (as torch does)
    m.mul_(b1).add_(g, alpha=1 - b1)
    v.mul_(b2).addcmul_(g, g, value=1 - b2)
    if bias_correction:
        m_hat, v_hat = m / (1 - b1 ** step), v / (1 - b2 ** step)
    else:
        m_hat, v_hat = m, v
    p.sub_(lr * m_hat / (v_hat.sqrt() + eps))


class AdamW(torch.optim.Optimizer):
    """adamw_update over each parameter group: by default one fused kernel per group (torch's
    `_fused_adamw_`, the kernel of torch.optim.AdamW(fused=True)), or adamw_update tensor by tensor
    (fused=False, the reference it is tested equal to).

    The fused kernel reads each parameter, grad and moment once per step where the same update in
    single ops passes over them eight times: for mBERT's 177M parameters, half of them the word
    embeddings, about 5 GB of memory traffic per update instead of 14 GB (by the sizes; the CPU
    step is 6x faster, `make bench-adamw`). It always divides by the corrections 1 - b^t; for
    BertAdam it is handed t = infinity, where 1 - b^t is exactly 1.

    `step(scale)` multiplies every group's lr by `scale`, a float or a 0-d device tensor: with a
    tensor (and the step counts kept as device tensors) no value comes from the host, so a CUDA
    graph can replay the update. Parameters whose grad is None (frozen by gradual unfreezing, or
    unused by the loss, as the masked-LM head in the task stage) are left alone: no update, no
    decay, no step count; a tensor thawed later starts its own count."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.01,
                 bias_correction=False, fused=True):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction, fused=fused))
        self.infinity = {}  # device -> t = inf, BertAdam's count for the fused kernel

    def state_of(self, p):
        """p's state, made on first use (updater makes it for every training tensor before any
        capture: nothing is made from host values inside a CUDA graph)."""
        if not self.state[p]:  # step: a float32 tensor on p's device, as the fused kernel reads it
            self.state[p] = dict(step=torch.zeros((), dtype=torch.float32, device=p.device),
                                 m=torch.zeros_like(p), v=torch.zeros_like(p))
        if p.device not in self.infinity:  # also for state loaded by load_state_dict
            self.infinity[p.device] = torch.tensor(math.inf, device=p.device)
        return self.state[p]

    @torch.no_grad()
    def step(self, scale=1.0):
        for g in self.param_groups:
            ps = [p for p in g["params"] if p.grad is not None]
            if not ps:
                continue
            st = [self.state_of(p) for p in ps]
            lr, (b1, b2) = g["lr"] * scale, g["betas"]
            steps = [s["step"] for s in st]
            torch._foreach_add_(steps, 1)
            if not g["fused"]:
                for p, s in zip(ps, st):  # float(t): the reference takes its corrections in float64
                    adamw_update(p, p.grad, s["m"], s["v"], float(s["step"]), lr,
                                 g["weight_decay"], b1, b2, g["eps"], g["bias_correction"])
                continue
            if not g["bias_correction"]:  # BertAdam: 1 - b^inf = 1, no correction
                steps = [self.infinity[ps[0].device]] * len(ps)
            torch._fused_adamw_(ps, [p.grad for p in ps], [s["m"] for s in st],
                                [s["v"] for s in st], [], steps, lr=lr, beta1=b1, beta2=b2,
                                weight_decay=g["weight_decay"], eps=g["eps"], amsgrad=False,
                                maximize=False)


def lr_factor(step, total, warmup, schedule, ratio=32.0):
    """Multiplier of the base lr at update `step` (0-based) of `total`.

    linear: BERT's (google-research/bert optimization.py; pytorch-pretrained-bert warmup_linear):
            t / warm over the first warm = floor(warmup * total) updates (the first has lr 0),
            then 1 - t/T, a line from 1 at t = 0 that warmup cuts into: it resumes at 1 - warmup
            (0.9), where HF's get_linear_schedule_with_warmup restarts from 1.
    stlr:   ULMFiT Eq. (3): p rises to 1 at cut = warm then falls, lr = (1 + p (ratio-1)) / ratio.
            After the cut p falls over the T - cut updates left; Eq. (3) divides by cut
            (1/cut_frac - 1), the same when T * cut_frac is whole, else it ends below 0.
    constant: 1 throughout (the Table 4 "without warmup" row).
    """
    if schedule == "constant":
        return 1.0
    warm = math.floor(total * warmup)
    if schedule == "stlr":
        p = step / warm if step < warm else 1 - (step - warm) / max(1, total - warm)
        return (1 + p * (ratio - 1)) / ratio
    assert schedule == "linear", schedule
    return step / warm if step < warm else max(0.0, 1 - step / total)


# ---------------------------------------------------------------------------------------------
# Which parameters learn how fast, and when (paper Sec 4.1).

def depth_units(model):
    """The model cut top-down into units: [classifier (+ MLM head), layer L-1, ..., layer 0,
    embeddings]. Units share a learning rate (Eq. 1) and thaw together (gradual unfreezing)."""
    if isinstance(model, bert.TokenClassifier):
        b, head = model.bert, [model.out]
    else:  # a bare Bert: the masked-LM stage
        b, head = model, []
    head += [b.mlm] if b.mlm is not None else []
    return [head, *[[layer] for layer in reversed(b.layers)], [b.emb]]


def param_groups(model, lr, delta=1.0, weight_decay=0.01):
    """Eq. (1), discriminative fine-tuning: the classifier and the top layer get eta0 = lr; each
    unit below gets its upper neighbour's rate / delta, the embeddings lowest. Decay by structure,
    as nanoGPT does: matrices (Linear, Embedding) decay; biases and LayerNorm do not."""
    groups, seen = [], set()
    # bottom-up, so the word embeddings, tied to the MLM decoder in the head unit, keep the
    # embeddings' rate
    for depth, unit in reversed(list(enumerate(depth_units(model)))):
        rate = lr / delta ** max(0, depth - 1)  # depth 0 (classifier) and 1 (top layer) share eta0
        decay, plain = [], []
        for p in (p for mod in unit for p in mod.parameters()):
            if id(p) not in seen:  # the MLM decoder is tied to the word embeddings: one owner
                seen.add(id(p))
                (decay if p.dim() >= 2 else plain).append(p)
        groups += [dict(params=decay, lr=rate, weight_decay=weight_decay, depth=depth),
                   dict(params=plain, lr=rate, weight_decay=0.0, depth=depth)]
    assert len(seen) == len({id(p) for p in model.parameters()}), "each parameter in one group"
    return groups


def thaw(model, epoch, unfreeze):
    """Gradual unfreezing (Sec 4.1): in epoch e (0-based) the classifier and the top
    (e+1)*unfreeze layers train; once every layer has thawed, the embeddings join. L=12, 3:
        epoch 0: classifier + layers 11-9; 1: + 8-6; 2: + 5-3; 3: + 2-0; 4 onwards: + embeddings
    i.e. 5 epochs until all of BERT trains. Returns the number of units training."""
    units = depth_units(model)
    L = len(units) - 2
    layers = min(L, (epoch + 1) * unfreeze) if unfreeze else L
    emb = epoch * unfreeze >= L if unfreeze else True
    n = 1 + layers + emb  # units are top-down, so the first n train
    for i, unit in enumerate(units):
        for mod in unit:
            mod.requires_grad_(i < n)
    return n


# ---------------------------------------------------------------------------------------------
# Data: CoNLL splits -> features -> tensors on the device -> length-pooled batches.

@dataclass
class Split:
    sents: list    # conll.Sentence, with the file's own (gold) tags
    feats: list    # conll.Feature windows, labelled in the trained scheme
    scheme: str    # the file's scheme: predictions are converted to it before scoring


_LOADED = {}  # load_data's last results in this process, by what they are made from


def load_data(cfg, tok):
    """-> ({"train", "dev", "test"}: Split, labels). Labels come from every split, so a type seen
    only in dev/test still has an id. The runs of a grid in one process share one reading (the
    files' bytes, the vocabulary and the fields used here make its key; callers only read it)."""
    key = (corpora.data_fingerprint(cfg.data, cfg.lang), cfg.lang, cfg.level, cfg.scheme,
           cfg.max_len, cfg.doc_context, cfg.max_train_sentences, tok.lower, tok.strip, tok.cjk,
           hashlib.sha1("\n".join(tok.tokens).encode()).hexdigest())
    if key not in _LOADED:
        if len(_LOADED) >= 2:  # IOB1 and BIO of one grid; older readings are let go
            del _LOADED[next(iter(_LOADED))]
        _LOADED[key] = read_splits(cfg, tok)
    return _LOADED[key]


def read_splits(cfg, tok):
    """load_data's work: the three files read, their tags put in cfg.scheme, cut into windows."""
    paths = corpora.splits(corpora.data_dir(cfg.data, cfg.lang), cfg.lang)
    if cfg.lang == "germeval":  # one of its two levels of nested spans, in BIO as it comes
        files = {k: conll.read_germeval(p, cfg.level) for k, p in paths.items()}
    else:
        files = {k: conll.read_conll(p) for k, p in paths.items()}
    labels = conll.tag_set([s for sents in files.values() for s in sents])
    label2id = {t: i for i, t in enumerate(labels)}
    data = {}
    for split, sents in files.items():
        if split == "train" and cfg.max_train_sentences:
            sents = sents[:cfg.max_train_sentences]
        ours = [replace(s, tags=conll.to_scheme(s.tags, cfg.scheme)) for s in sents]  # Sec 3.1
        try:
            feats = conll.featurize(ours, tok, label2id, cfg.max_len, cfg.doc_context)
        except ValueError as e:  # "line 8: word ... has 130 pieces": say in which file
            raise ValueError(f"{paths[split]}, {e}") from None
        data[split] = Split(sents, feats, conll.detect_scheme(s.tags for s in sents))
    return data, labels


@dataclass
class Tensors:
    """A split's windows padded into one tensor each, moved to the device once. Row N (the last)
    is a dummy, [CLS] alone with no label, that fills a short batch up to a static shape."""
    ids: torch.Tensor      # (N + 1, T) piece ids, [PAD] after each window
    labels: torch.Tensor   # (N + 1, T) label ids, -100 where no word starts
    lengths: torch.Tensor  # (N + 1,) pieces per window


def tensorize(feats, tok, device):
    lengths = torch.tensor([len(f.input_ids) for f in feats] + [1])
    n_labels = torch.tensor([len(f.labels) for f in feats] + [0])
    T = int(lengths.max())
    ids = torch.full((len(feats) + 1, T), tok.pad_id, dtype=torch.long)
    labels = torch.full((len(feats) + 1, T), conll.IGNORE, dtype=torch.long)
    # every window's pieces in one flat list, poured row by row into the padded tensor
    ids[torch.arange(T) < lengths[:, None]] = torch.tensor(
        [i for f in feats for i in f.input_ids] + [tok.cls_id])
    labels[torch.arange(T) < n_labels[:, None]] = torch.tensor(
        [y for f in feats for y in f.labels], dtype=torch.long)
    return Tensors(ids.to(device), labels.to(device), lengths.to(device))


def take(data, idx, T):
    """Rows idx (a device tensor) cut to T pieces -> (ids, mask, labels), each (B, T)."""
    mask = torch.arange(T, device=idx.device) < data.lengths[idx, None]  # (B, T)
    return data.ids[idx, :T], mask.long(), data.labels[idx, :T]


def batches(feats, size, shuffle, gen=None):
    """Lists of feature indices. Shuffled: random pools of 50 batches, sorted by length inside each
    pool, so a batch holds windows of similar length (little padding) but the order stays random."""
    order = list(range(len(feats)))
    if shuffle:
        order = torch.randperm(len(feats), generator=gen).tolist()
    pool = 50 * size if shuffle else len(feats)
    out = []
    for i in range(0, len(order), pool):
        chunk = sorted(order[i:i + pool], key=lambda j: len(feats[j].input_ids))
        out += [chunk[j:j + size] for j in range(0, len(chunk), size)]
    if shuffle:
        out = [out[i] for i in torch.randperm(len(out), generator=gen).tolist()]
    return out


def batch_plan(feats, cfg, epochs):
    """Every epoch's batches, drawn up front from a generator of the run's own seed."""
    gen = torch.Generator().manual_seed(cfg.seed)
    return [batches(feats, cfg.batch_size, shuffle=True, gen=gen) for _ in range(epochs)]


# ---------------------------------------------------------------------------------------------
# The training loop, one for both stages (the task, Sec 3.3; the masked-LM stage, Sec 4.2).

def task_loss(model, ids, mask, y):
    """Cross-entropy over each word's first piece (BERT Sec 5.3); -100 positions are ignored."""
    logits = model(ids, mask)  # (B, T, labels)
    return F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), ignore_index=conll.IGNORE)


def mask_pieces(ids, tok, p=0.15):
    """BERT Sec 3.1 Task #1 / App. A.1: choose 15% of the pieces ([CLS], [SEP], [PAD] never); of
    those, 80% become [MASK], 10% a random piece, 10% stay. -> (inputs, labels: the original id
    where chosen, else -100)."""
    special = (ids == tok.cls_id) | (ids == tok.sep_id) | (ids == tok.pad_id)
    chosen = (torch.rand(ids.shape, device=ids.device) < p) & ~special
    r = torch.rand(ids.shape, device=ids.device)
    x = torch.where(chosen & (r < 0.8), tok.mask_id, ids)
    rand = torch.randint(len(tok), ids.shape, device=ids.device)
    x = torch.where(chosen & (r >= 0.8) & (r < 0.9), rand, x)
    return x, ids.masked_fill(~chosen, conll.IGNORE)


def lm_loss(tok):
    """The masked-LM stage's loss (Sec 4.2): the task labels are unused, fresh masks every batch.
    The mean over the chosen pieces, and 0 (no gradient) where a batch of a few short windows
    has none chosen: cross_entropy's own mean is 0/0 = NaN there, which would end the run."""
    def loss(model, ids, mask, y):
        x, target = mask_pieces(ids, tok)
        logits = model.mlm(model(x, mask))  # (B, T, V)
        total = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(),
                                ignore_index=conll.IGNORE, reduction="sum")
        return total / (target != conll.IGNORE).sum().clamp(min=1)
    return loss


def update(model, opt, loss_of, batch, *, scale, clip, sums):
    """One update: loss, backward, BERT's global-norm clip, AdamW at lr * scale, and the grads
    let go (set to None, as torch's zero_grad does): the next backward hands each weight its fresh
    gradient instead of adding it into zeros kept from the last update, which for mBERT's 177M
    parameters saves zeroing, reading twice and writing 0.7 GB of gradients: 2.8 GB of memory
    traffic per update (inside a CUDA graph the fresh ones come from its memory pool, at the same
    addresses each replay). The loss is added to sums = [running loss, non-finite count] on the
    device: no host sync here."""
    with bert.autocast(batch[0].device):
        loss = loss_of(model, *batch)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step(scale)
    model.zero_grad(set_to_none=True)
    sums += torch.stack([loss.detach().float(), (~torch.isfinite(loss.detach())).float()])


def warm_up(fn, keep):
    """fn() twice, then every tensor of `keep` put back as it was: the warm-up trains (it moves
    weights, moments, step counts, the step counter and the loss sums), the run must not."""
    saved = [t.detach().clone() for t in keep]
    for _ in range(2):
        fn()
    with torch.no_grad():
        for t, s in zip(keep, saved):
            t.copy_(s)


def graphed(fn, keep, pool):
    """CUDA only: fn() recorded once as a CUDA graph -> its replay (torch.cuda.graph's recipe for
    a whole network). Two warm-up calls on a side stream let cuBLAS and autograd set themselves up
    outside the capture; `keep` (weights, optimizer state, counters) is put back after them
    (the counter may pass the schedule's end by 2 meanwhile: its table has 2 spare).
    Dropout stays on: torch registers its generator with the graph, and every
    replay draws new numbers. The graphs of one updater share a memory pool, safely in any
    order: they never run at once, and nothing made inside a capture outlives it (the grads are
    let go within the update; the optimizer state and counters it writes exist before it).
    On the CPU there is nothing to capture: after the same warm-up (so that the CPU tests hold its
    restore), fn itself comes back (the static-shape path, tested against the eager one)."""
    if not keep[0].is_cuda:
        warm_up(fn, keep)
        return fn
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        warm_up(fn, keep)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        fn()
    return graph.replay


def updater(model, opt, loss_of, data, cfg, *, state, graphs):
    """-> do(rows, n, T): one update on the first n of rows (a device tensor of batch_size row
    indices), cut to T pieces. Eagerly, on the batch as it is; or with graphs, T is rounded up to
    a multiple of BUCKET and the batch keeps all batch_size rows (the dummy fills the rest), so
    each length has one static shape: recorded once, then replayed. A new updater (new graphs, in
    a memory pool of their own: torch cannot record into a pool whose graphs are all gone) is made
    whenever unfreezing changes what trains."""
    sched, counter, sums = state  # rates per step, the step, [loss sum, non-finite count]
    for p in model.parameters():  # the optimizer state exists before any capture
        if p.requires_grad:
            opt.state_of(p)

    def eager(idx, T):
        # sched.take(counter) reads on the device; sched[counter] would ask the host for the index
        update(model, opt, loss_of, take(data, idx, T), scale=sched.take(counter), clip=cfg.clip,
               sums=sums)
        counter.add_(1)
    if not graphs:
        return lambda rows, n, T: eager(rows[:n], T)
    pool = torch.cuda.graph_pool_handle() if data.ids.is_cuda else None  # CPU: nothing recorded
    replays = {}  # length -> (index buffer, replay)

    def replay(rows, n, T):
        T = min(-(-T // BUCKET) * BUCKET, data.ids.shape[1])
        if T not in replays:
            buf = rows.clone()
            moments = [t for s in opt.state.values() for t in s.values()]
            keep = [*model.parameters(), *moments, counter, sums]
            replays[T] = (buf, graphed(lambda: eager(buf, T), keep, pool))
        replays[T][0].copy_(rows)
        replays[T][1]()
    return replay


def mean_loss(sums, step, mark, cfg):
    """Host sync at a log point -> (mean loss since mark, new mark). A NaN/inf loss stops the run:
    a diverged run is never recorded as a result."""
    loss_sum, bad = sums.tolist()
    if bad:
        raise FloatingPointError(f"loss became NaN/inf by update {step} (lr {cfg.lr}); "
                                 f"the run is not recorded")
    return (loss_sum - mark[1]) / (step - mark[0]), (step, loss_sum)


def fit(model, opt, data, plan, cfg, loss_of, *, graphs=False, log=print, after_epoch=None):
    """The training loop of both stages: per epoch, thaw (Sec 4.1), one update per batch of `plan`
    at the scheduled rate, then after_epoch(epoch, mean loss) (the dev evaluation).

    The rates come from a table of lr_factor on the device indexed by a device step counter, the
    batches from `data` on the device, so an update needs nothing from the host and graphs=True
    (CUDA) can replay it from CUDA graphs (see updater). The loss reaches the host at log points
    only. -> dict(updates, tokens, train_s): training time leaves the after_epoch calls out."""
    device, N = data.ids.device, data.ids.shape[0] - 1
    total = sum(map(len, plan))
    sched = torch.tensor([lr_factor(t, total, cfg.warmup, cfg.schedule, cfg.stlr_ratio)
                          for t in range(total)] + [0.0, 0.0], device=device)  # + 2: see graphed
    counter = torch.zeros((), dtype=torch.long, device=device)  # the step, on the device
    sums = torch.zeros(2, device=device)  # [loss sum, non-finite losses], on the device
    lengths = data.lengths.tolist()
    step, tokens, train_s = 0, 0, 0.0
    mark, units = (0, 0.0), None
    for epoch, epoch_batches in enumerate(plan):
        t0, loss0 = time.time(), sums[0].item()
        if (n := thaw(model, epoch, cfg.unfreeze)) != units:  # new tensors train: new graphs
            state = (sched, counter, sums)
            units, do = n, updater(model, opt, loss_of, data, cfg, state=state, graphs=graphs)
        model.train()
        rows = torch.tensor([i + [N] * (cfg.batch_size - len(i)) for i in epoch_batches],
                            device=device)  # (batches, B), short batches filled with the dummy
        for b, idx in enumerate(epoch_batches):
            do(rows[b], len(idx), max(lengths[i] for i in idx))
            step, tokens = step + 1, tokens + sum(lengths[i] for i in idx)
            if step % 50 == 0 or b == len(epoch_batches) - 1:  # the only host syncs
                loss, mark = mean_loss(sums, step, mark, cfg)
                rate = tokens / (train_s + time.time() - t0)
                log(f"epoch {epoch + 1}/{len(plan)} step {step}/{total} loss {loss:.4f} "
                    f"units {units} {rate:,.0f} tok/s")
        train_s += time.time() - t0
        if after_epoch:
            after_epoch(epoch, (sums[0].item() - loss0) / len(epoch_batches))
    if device.type == "cuda":
        log(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    return dict(updates=total, tokens=tokens, train_s=train_s)


# ---------------------------------------------------------------------------------------------
# Evaluation, and a fine-tuned tagger.

@torch.no_grad()
def predict_tags(model, split, data, labels, batch_size):
    """Tags per word of split.sents, in split.scheme (the gold file's, so that conlleval compares
    like with like). Windows sorted by length in large batches; predictions stay on the device
    until one copy at the end."""
    model.eval()
    device = data.ids.device
    pred = torch.zeros(data.ids.shape, dtype=torch.long, device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)  # a NaN/inf score, on the device
    for idx in batches(split.feats, batch_size, shuffle=False):
        T = max(len(split.feats[i].input_ids) for i in idx)
        rows = torch.tensor(idx, device=device)
        ids, mask, _ = take(data, rows, T)
        with bert.autocast(device):
            logits = model(ids, mask)
        bad |= ~torch.isfinite(logits).all()
        pred[rows, :T] = logits.argmax(-1)
    if bad:  # e.g. a last update that diverged: its loss was never computed, so fit saw nothing
        raise FloatingPointError("the model's scores are NaN/inf: its weights diverged (a lower "
                                 "--lr?); a run is not recorded")
    words = conll.gather(split.feats, pred.tolist()[:-1], split.sents)
    return [conll.to_scheme([labels[i] for i in w], split.scheme) for w in words]


def eval_batch(n, device):
    """Windows per inference batch: n, or by default 256 on CUDA and 64 on the CPU."""
    return n or (256 if device.type == "cuda" else 64)


def evaluate(model, split, data, labels, batch_size):
    """conlleval scores (the paper's F1, Sec 3.2) of one split, and the predicted tags."""
    pred = predict_tags(model, split, data, labels, batch_size)
    return conlleval.evaluate([s.tags for s in split.sents], pred), pred


def seed_torch(seed):
    torch.manual_seed(seed)  # CPU and CUDA: every draw here is torch's; batches have their own


@dataclass
class Tagger:
    """A fine-tuned NER model with what it needs to tag new text."""
    model: bert.TokenClassifier
    tok: WordPiece
    labels: list      # label id -> tag, CoNLL style: "O", "B-PER", "I-PER", ...
    scheme: str       # the scheme it was trained in (iob1 | bio)
    max_len: int      # pieces per window
    doc_context: bool


@dataclass
class Trained:
    record: dict   # what experiments.py appends to results.jsonl
    tagger: Tagger  # save_tagger writes it
    pred: dict     # split -> (sentences with gold tags, predicted tags in the file's scheme)


def lm_config(cfg):
    """The masked-LM stage as a run of its own (Sec 4.2): cfg's model, data, seed and optimizer,
    lm_epochs epochs of plain BERT optimisation (linear schedule, one rate, nothing frozen,
    BertAdam). The fields the stage does not use are reset to their defaults, so its key -- and so
    its folder -- is shared by every task run that would train the same stage."""
    d = FinetuneConfig()
    return replace(cfg, epochs=cfg.lm_epochs, lm_epochs=0, scheme=d.scheme, level=d.level,
                   schedule="linear", stlr_ratio=d.stlr_ratio, delta=1.0, unfreeze=0,
                   bias_correction=False)


def lm_finetune(cfg, root, graphs=False, log=print):
    """cfg.lm_epochs epochs of masked-LM training on the training sentences (Table 6) -> a BERT
    folder ROOT/lm-KEY, written once (atomically) and reused by every run that shares it."""
    lm = lm_config(cfg)
    folder = os.path.join(root, "lm-" + lm.key())
    if os.path.isfile(os.path.join(folder, "model.safetensors")):
        return folder
    seed_torch(lm.seed)
    device, tok = bert.pick_device(), WordPiece.from_pretrained(lm.model)
    model = bert.from_pretrained(lm.model).to(device)
    if model.mlm is None:
        raise ValueError(f"{lm.model}: the checkpoint has no masked-LM head (cls.predictions.*) "
                         f"to fine-tune; --lm_epochs needs one (mBERT has it)")
    feats = load_data(lm, tok)[0]["train"].feats
    opt = AdamW(param_groups(model, lm.lr, 1.0, lm.weight_decay), lr=lm.lr, eps=lm.eps,
                weight_decay=lm.weight_decay)

    def after_epoch(epoch, loss):
        log(f"LM epoch {epoch + 1}/{lm.epochs}: masked-LM loss {loss:.4f} (epoch mean)")
    fit(model, opt, tensorize(feats, tok, device), batch_plan(feats, lm, lm.epochs), lm,
        lm_loss(tok), graphs=graphs and device.type == "cuda", log=log, after_epoch=after_epoch)
    # the folder appears only once complete; if another process wrote it first, theirs is kept
    conll.replace_atomic(folder, lambda tmp: bert.save_pretrained(model, tmp))
    return folder


def train(cfg, lm_root=corpora.CACHE, eval_batch_size=0, graphs=False, log=print):
    """One fine-tuning run -> Trained(record, tagger, predictions). Nothing is written here but
    the masked-LM stage's folder under lm_root; experiments.py records and saves runs."""
    positions = bert.BertConfig.from_json(
        bert.checkpoint_files(cfg.model, ["config.json"])["config.json"]).max_position_embeddings
    if cfg.max_len > positions:  # found now, not at the first dev window longer than the model
        raise ValueError(f"--max_len={cfg.max_len}: {cfg.model} has {positions} positions; pass "
                         f"--max_len {positions} or less")
    seed_torch(cfg.seed)
    device, t_start = bert.pick_device(), time.time()
    graphs = graphs and device.type == "cuda"
    eval_bs = eval_batch(eval_batch_size, device)
    tok = WordPiece.from_pretrained(cfg.model)
    data, labels = load_data(cfg, tok)
    encoder = lm_finetune(cfg, lm_root, graphs, log) if cfg.lm_epochs else cfg.model  # Table 6
    seed_torch(cfg.seed)  # again: the LM stage draws numbers only when it trains
    model = bert.TokenClassifier(bert.from_pretrained(encoder), len(labels)).to(device)
    groups = param_groups(model, cfg.lr, cfg.delta, cfg.weight_decay)
    opt = AdamW(groups, lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay,
                bias_correction=cfg.bias_correction)
    decay = sum(len(g["params"]) for g in groups if g["weight_decay"])
    log(f"{decay} matrices decay, {sum(len(g['params']) for g in groups) - decay} vectors do not")
    on_device = {k: tensorize(s.feats, tok, device) for k, s in data.items()}
    history, dev = [], {}

    def after_epoch(epoch, loss):
        dev["scores"], dev["pred"] = evaluate(model, data["dev"], on_device["dev"], labels, eval_bs)
        history.append(dev["scores"]["f1"])
        log(f"epoch {epoch + 1}: dev F1 {history[-1]:.2f}")
    feats = data["train"].feats
    done = fit(model, opt, on_device["train"], batch_plan(feats, cfg, cfg.epochs), cfg, task_loss,
               graphs=graphs, log=log, after_epoch=after_epoch)
    test, test_pred = evaluate(model, data["test"], on_device["test"], labels, eval_bs)
    record = dict(key=cfg.key(), config=asdict(cfg), dev=dev["scores"], test=test,
                  dev_f1_per_epoch=history, train_time_s=round(done["train_s"], 3),
                  time_s=round(time.time() - t_start, 1), updates=done["updates"],
                  tokens_per_s=round(done["tokens"] / done["train_s"]), device=str(device),
                  graphs=graphs, data_fingerprint=corpora.data_fingerprint(cfg.data, cfg.lang))
    log(f"dev F1 {dev['scores']['f1']:.2f}  test F1 {test['f1']:.2f}")
    tagger = Tagger(model, tok, labels, cfg.scheme, cfg.max_len, cfg.doc_context)
    pred = {k: (data[k].sents, p) for k, p in (("dev", dev["pred"]), ("test", test_pred))}
    return Trained(record, tagger, pred)


# ---------------------------------------------------------------------------------------------
# Saving and loading a tagger: one Hub-layout BertForTokenClassification folder.

def save_tagger(t, folder):
    """config.json (id2label, label2id; our scheme, max_len, doc_context under "mbert_ner"),
    model.safetensors under HF's key names, vocab.txt and tokenizer_config.json: transformers'
    AutoModelForTokenClassification and pipeline("token-classification") load it as it is."""
    ours = dict(scheme=t.scheme, max_len=t.max_len, doc_context=t.doc_context)
    bert.save_pretrained(t.model, folder, config_extra=dict(
        id2label={str(i): tag for i, tag in enumerate(t.labels)},
        label2id={tag: i for i, tag in enumerate(t.labels)}, mbert_ner=ours))
    t.tok.save(folder)


def conll_tag(label):
    """A Hub model's label as a CoNLL tag: "B-PER", "I-PER", "O" stay; IOBES "S-PER" -> "B-PER",
    "E-PER" -> "I-PER"; a bare type ("PER", IO tagging) -> "I-PER"; "B_PER" -> "B-PER"."""
    label = label.replace("_", "-", 1) if label[1:2] == "_" else label
    prefix, sep, kind = label.partition("-")
    if label == "O":
        return "O"
    if sep and prefix in ("B", "I", "S", "E") and kind:
        return {"S": "B", "E": "I"}.get(prefix, prefix) + "-" + kind
    return "I-" + label


def load_tagger(name_or_dir, device):
    """A tagger from a folder written by save_tagger, or any BERT token classifier on the Hub with
    id2label (e.g. dslim/bert-base-NER: BIO labels, no mbert_ner keys -> scheme bio, windows of
    its position count). Folders in the first layout (classifier.safetensors + labels.json) are
    read too."""
    old = os.path.join(name_or_dir, "labels.json")
    if os.path.isfile(old):
        from safetensors.torch import load_file
        with open(old) as f:
            meta = json.load(f)
        model = bert.TokenClassifier(bert.from_pretrained(name_or_dir), len(meta["labels"]))
        model.out.load_state_dict(load_file(os.path.join(name_or_dir, "classifier.safetensors")))
        labels, ours = meta["labels"], meta
    else:
        model, config = bert.token_classifier_from_pretrained(name_or_dir)
        id2label = config.get("id2label") or {}
        if sorted(map(int, id2label)) != list(range(model.out.out_features)):
            raise ValueError(f"{name_or_dir}: config.json needs id2label for all "
                             f"{model.out.out_features} classifier outputs, has {len(id2label)}")
        labels = [conll_tag(id2label[str(i)]) for i in range(len(id2label))]
        ours = config.get("mbert_ner", {})
    cap = min(512, model.bert.cfg.max_position_embeddings)
    tok = WordPiece.from_pretrained(name_or_dir)
    return Tagger(model.to(device).eval(), tok, labels, ours.get("scheme", "bio"),
                  ours.get("max_len", cap), ours.get("doc_context", False))
