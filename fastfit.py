"""finetune.fit's updates replayed from CUDA graphs: the default on a GPU. Skip it on a first read.

What it buys: an mBERT-shaped epoch of CoNLL-2003 English at batch 16 takes 6.1 s here, 38.8 s in
finetune.fit (H100, BENCHMARKS.md). An update is some thousand small kernels: Python launches them
one by one, the GPU idle between, a graph all at once. A graph replays fixed shapes and addresses:
- a batch always has batch_size rows (a dummy row, [CLS] alone and unlabelled, fills a short one)
  and is padded up to a multiple of BUCKET pieces: one graph per length, recorded at first use;
- the schedule's factors sit in a table on the device, read at a step counter on the device, and
  the loss is summed there: an update asks the host for nothing;
- the optimizer's state and each group's rate (a device tensor) exist before any recording;
- gradual unfreezing changes what trains, so each such change records new graphs;
- in the task stage the word-embedding rows no training window uses (all but 15,312 of mBERT's
  119,547 for CoNLL-2003 English) are set aside (UnusedRows): the optimizer, the clip and the
  gradients then pass over 97M of mBERT's 177M weights, 3.5 GB less memory traffic per update.
On the CPU nothing is recorded but the same static-shape updates run: the tests hold them equal
to finetune.fit's there (weights and logged losses, with and without unfreezing, both stages).
"""
from contextlib import contextmanager, nullcontext

import torch

import bert
from finetune import Meter, Tensors, batch_of, clip_grads, lr_factor, unfreeze

BUCKET = 16  # pieces: batches are padded to a multiple of 16, one graph per length


def fit(model, opt, data, plan, cfg, loss_of, log=print, after_epoch=None):
    """finetune.fit, same arguments and result, each update replayed from a CUDA graph."""
    device, total, lengths = data.ids.device, sum(map(len, plan)), data.lengths.tolist()
    data, dummy = with_dummy(data), len(lengths)  # the dummy row: the last
    word = model.bert.emb.word.weight if isinstance(model, bert.TokenClassifier) else None
    # the task stage, unless the optimizer already holds moments for every row (a second fit)
    unused = UnusedRows(model, opt, data) if word is not None and not opt.state.get(word) else None
    data = unused.data if unused else data  # the ids renumbered over the rows in use
    # + 2 spare: the two warm-up updates before a recording may run past the last step
    factors = torch.tensor([lr_factor(t, total, cfg.warmup, cfg.schedule, cfg.stlr_ratio)
                            for t in range(total)] + [0.0, 0.0], device=device)
    counter = torch.zeros((), dtype=torch.long, device=device)  # the step, on the device
    running = torch.zeros((), device=device)  # the loss summed, on the device
    peak = [float(g["lr"]) for g in opt.param_groups]  # Eq. (1); each rate becomes a tensor
    for g, lr in zip(opt.param_groups, peak):
        g["lr"] = torch.tensor(lr, device=device)
    state = (factors, counter, running, peak, unused)
    meter = Meter(plan, log)
    step, units = 0, None
    for epoch, epoch_batches in enumerate(plan):
        if (n := unfreeze(model, epoch, cfg.unfreeze)) != units:  # new tensors train:
            units, replay = n, replayer(model, opt, loss_of, data, cfg, state)  # new graphs
        model.train()
        batch = torch.tensor([i + [dummy] * (cfg.batch_size - len(i)) for i in epoch_batches],
                             device=device)  # (batches, B)
        for b, idx in enumerate(epoch_batches):
            replay(batch[b], max(lengths[i] for i in idx))
            step += 1
            meter.update(epoch, step, sum(lengths[i] for i in idx), running)
        if after_epoch:
            with unused.whole() if unused else nullcontext():
                after_epoch(epoch, meter.epoch_loss)
        meter.resume()
    if unused:
        unused.finish(opt)
    return dict(updates=total, tokens=meter.tokens, train_s=meter.seconds())


class UnusedRows:
    """The word-embedding rows that `data` never uses, set aside in the task stage: their gradient
    is 0, so their moments stay 0 and AdamW's update of each is its decoupled weight decay alone,
    p (1 - lr wd), at each update where the embeddings train. The weight holds the rows in use only
    (data's ids renumbered); `decay`, the product of those factors, is kept on the device (float64)
    and applied to the rest whenever the whole table is read: at each epoch's end and after."""

    def __init__(self, model, opt, data):
        self.weight = model.bert.emb.word.weight  # tied to an MLM decoder, if any: the same one
        self.table, device = self.weight.data, data.ids.device
        self.used, ids = torch.unique(data.ids, return_inverse=True)  # sorted; [PAD], [CLS] in it
        pad = int(torch.searchsorted(self.used, data.pad))  # ids: each one's index in `used`
        self.data = Tensors(ids, data.labels, data.lengths, pad)
        self.rows = self.table[self.used].clone()
        self.group = next(g for g in opt.param_groups if any(p is self.weight for p in g["params"]))
        self.decay = torch.ones((), dtype=torch.float64, device=device)
        self.weight.data = self.rows

    def step(self):
        """After opt.step, inside the update: the unused rows' factor of this update."""
        if self.weight.requires_grad:  # frozen by Sec 3.3's unfreezing: no update, no decay
            self.decay.mul_(1 - self.group["lr"].double() * self.group["weight_decay"])

    def put_back(self):
        """The whole table into the weight: the unused rows decayed, the used ones as trained."""
        with torch.no_grad():
            self.table.mul_(self.decay.float())  # the used rows are overwritten next
            self.table[self.used] = self.rows
            self.decay.fill_(1.0)
        self.weight.data = self.table

    def finish(self, opt):
        """After training: the whole table, and the weight's moments as AdamW's own would be,
        those of the unused rows 0 (a later fit with this optimizer then trains every row)."""
        self.put_back()
        state = opt.state.get(self.weight)
        for k in ("m", "v") if state else ():
            state[k] = torch.zeros_like(self.table).index_copy_(0, self.used, state[k])

    @contextmanager
    def whole(self):
        """The whole table in the weight for a while (the dev evaluation), then the used rows
        again: the same tensor, at the address the CUDA graphs hold."""
        self.put_back()
        yield
        self.weight.data = self.rows


def with_dummy(data):
    """data with one more row: [CLS] (every window's first piece) alone, no label, length 1."""
    dummy = torch.full_like(data.ids[:1], data.pad)
    dummy[0, 0] = data.ids[0, 0]
    return Tensors(torch.cat([data.ids, dummy]),
                   torch.cat([data.labels, torch.full_like(data.labels[:1], -100)]),
                   torch.cat([data.lengths, data.lengths.new_ones(1)]), data.pad)


def replayer(model, opt, loss_of, data, cfg, state):
    """-> replay(rows, T): one update on `rows` (batch_size row indices on the device) padded to
    T rounded up to BUCKET pieces, from the graph of that length (recorded at its first use).
    A replayer's graphs share a memory pool: they never run at once."""
    factors, counter, running, peak, unused = state
    for p in (p for p in model.parameters() if p.requires_grad):
        opt.state_of(p)  # the optimizer state exists before any recording
    pool = torch.cuda.graph_pool_handle() if data.ids.is_cuda else None
    graphs = {}  # length -> (the rows' buffer, its replay)

    def one(rows, T):
        """finetune.fit's update with every number on the device: the rates set in place from the
        factor at the device counter, loss, backward, clip, step (and the unused rows' decay)."""
        factor = factors.take(counter)  # factors[counter] would ask the host for the index
        for g, lr in zip(opt.param_groups, peak):
            torch.mul(factor, lr, out=g["lr"])
        with bert.autocast(data.ids.device):
            loss = loss_of(model, *batch_of(data, rows, T))
        loss.backward()
        clip_grads(model.parameters(), cfg.clip, cfg.clip_each)
        opt.step()
        if unused:
            unused.step()
        opt.zero_grad(set_to_none=True)  # inside a graph the fresh grads come from its memory pool
        running.add_(loss.detach().float())
        counter.add_(1)

    def replay(rows, T):
        T = min(-(-T // BUCKET) * BUCKET, data.ids.shape[1])
        if T not in graphs:
            buf = rows.clone()
            moments = [t for s in opt.state.values() for t in s.values()]
            keep = [*model.parameters(), *moments, counter, running]
            keep += [unused.decay] if unused else []
            graphs[T] = (buf, graphed(lambda: one(buf, T), keep, pool))
        graphs[T][0].copy_(rows)
        graphs[T][1]()
    return replay


def warm_up(fn, keep):
    """fn() twice, then every tensor of `keep` put back as it was: the warm-up trains (it moves
    weights, moments, step counts, the counter and the loss sum), the run must not."""
    saved = [t.detach().clone() for t in keep]
    for _ in range(2):
        fn()
    with torch.no_grad():
        for t, s in zip(keep, saved):
            t.copy_(s)


def graphed(fn, keep, pool):
    """fn() recorded as a CUDA graph -> its replay (torch.cuda.graph's recipe for a whole network):
    two warm-up calls on a side stream first, so that cuBLAS and autograd set themselves up outside
    the recording. Dropout stays on: torch registers its generator with the graph, and each replay
    draws anew. On the CPU: the same warm-up (its restore is tested there), then fn itself."""
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
