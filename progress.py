"""What a user sees while training runs: fit's log lines, where a grid stands over its runs, and
gradual unfreezing in words (a plan that cannot finish is said before training). Nothing here
changes a number."""
import math
import time

import torch


class Progress:
    """fit's log, kept out of its math: every 50 updates and at each epoch's end, the mean loss
    since the last line and tokens/s. A NaN/inf loss stops the run: a diverged run is never
    recorded as a result."""

    def __init__(self, plan, log, lr, units=0):
        self.plan, self.total, self.log, self.lr = plan, sum(map(len, plan)), log, lr
        self.tokens, self.train_s, self.last, self.loss_sum = 0, 0.0, 0, 0.0
        self.units = units  # the model's units (finetune.depth_units), for unfreezing's count

    def start(self, epoch):
        self.epoch, self.t0, self.n, self.epoch_sum = epoch, time.time(), 0, 0.0

    def update(self, step, tokens, running, units):
        self.tokens, self.n = self.tokens + tokens, self.n + 1
        end = self.n == len(self.plan[self.epoch])
        if step % 50 and not end:
            return
        loss_sum = running.item()  # note: a CPU-GPU sync point, the loop's only one
        if not math.isfinite(loss_sum):
            raise FloatingPointError(f"loss became NaN/inf by update {step} (lr {self.lr}); "
                                     f"the run is not recorded")
        loss = (loss_sum - self.loss_sum) / (step - self.last)
        self.epoch_sum += loss_sum - self.loss_sum
        self.last, self.loss_sum = step, loss_sum
        spent = time.time() - self.t0
        rate = self.tokens / (self.train_s + spent)
        left = spent / self.n * (self.total - step)  # the run's updates left, at this epoch's pace
        thawed = f" ({units} of {self.units} units training)" if units < self.units else ""
        self.log(f"epoch {self.epoch + 1}/{len(self.plan)} update {step}/{self.total} "
                 f"loss {loss:.4f}{thawed} {rate:,.0f} tok/s, run ~{duration(left)} left")
        if end:
            self.train_s += time.time() - self.t0
            self.epoch_loss = self.epoch_sum / self.n

    def done(self, device):
        if device.type == "cuda":
            self.log(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
        return dict(updates=self.total, tokens=self.tokens, train_s=self.train_s)


class Job:
    """Where a grid or a reproduction stands over this shard's runs: each line of run i says
    "[run i/n]", and each run's end how many are done and, from the runs trained so far, about
    how long the rest will take."""

    def __init__(self, n, log):
        self.n, self.out, self.seconds = n, log, 0.0
        self.count = dict(trained=0, recorded=0, busy=0)

    def log(self, i):
        self.t0 = time.time()
        return lambda s: self.out(f"[run {i + 1}/{self.n}] {s}")

    def ran(self, i, how):
        """how: "trained", "recorded" (earlier: skipped) or "busy" (another process has it)."""
        self.count[how] += 1
        self.seconds += (time.time() - self.t0) * (how == "trained")
        c, left = self.count, self.n - (i + 1)
        eta = f", ~{duration(self.seconds / c['trained'] * left)} left" if c["trained"] else ""
        self.out(f"{i + 1}/{self.n} runs done ({c['trained']} trained, {c['recorded']} recorded "
                 f"before, {c['busy']} with another process){eta}")


def duration(s):
    """45 -> "45 s", 200 -> "3.3 min", 7200 -> "2.0 h"."""
    return f"{s:.0f} s" if s < 100 else f"{s / 60:.1f} min" if s < 6000 else f"{s / 3600:.1f} h"


# ---------------------------------------------------------------------------------------------
# Gradual unfreezing in words (Sec 3.3): the units' names, and a plan that cannot finish.

def unit_names(L):
    """Top-down, as finetune.depth_units cuts the model: classifier, layer L-1, ..., layer 0,
    embeddings."""
    return ["classifier", *[f"layer {i}" for i in reversed(range(L))], "embeddings"]


def unfreezing_short(L, per_epoch, epochs, never):
    """"" if gradual unfreezing reaches every unit within `epochs` (`never`: the units it does
    not reach, finetune.never_trained), else the warning: what never trains and the epochs it
    would need. L=12, 3 an epoch, 4 epochs -> "... never trains the embeddings..."."""
    left = [unit_names(L)[i] for i in never]
    if not left:
        return ""
    layers = [n[6:] for n in left if n.startswith("layer ")]
    what = ["the embeddings"] * (left[-1] == "embeddings")
    if layers:
        what.insert(0, f"layers {layers[0]}-{layers[-1]}" if len(layers) > 1 else
                    f"layer {layers[0]}")
    need = -(-L // per_epoch) + 1
    return (f"--unfreeze {per_epoch} over {epochs} epochs never trains {' and '.join(what)}: "
            f"{L} layers at {per_epoch} an epoch need {need} epochs for the embeddings to join "
            f"(Sec 3.3: 12 layers in groups of 3, 5 epochs)")
