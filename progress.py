"""What a user sees while training runs: fit's log lines. Nothing here changes a number."""
import math
import time

import torch


class Progress:
    """fit's log, kept out of its math: every 50 updates and at each epoch's end, the mean loss
    since the last line and tokens/s. A NaN/inf loss stops the run: a diverged run is never
    recorded as a result."""

    def __init__(self, plan, log, lr):
        self.plan, self.total, self.log, self.lr = plan, sum(map(len, plan)), log, lr
        self.tokens, self.train_s, self.last, self.loss_sum = 0, 0.0, 0, 0.0

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
        rate = self.tokens / (self.train_s + time.time() - self.t0)
        self.log(f"epoch {self.epoch + 1}/{len(self.plan)} step {step}/{self.total} "
                 f"loss {loss:.4f} units {units} {rate:,.0f} tok/s")
        if end:
            self.train_s += time.time() - self.t0
            self.epoch_loss = self.epoch_sum / self.n

    def done(self, device):
        if device.type == "cuda":
            self.log(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
        return dict(updates=self.total, tokens=self.tokens, train_s=self.train_s)
