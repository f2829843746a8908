"""GPU benchmark of one mBERT fine-tuning epoch, in one run on whatever GPU is here: ours with CUDA
graphs (fastfit.fit), ours eager (finetune.fit), and HF's BertForTokenClassification + torch AdamW
loop (bench/compare_hf_finetune.py) on the same batches; their ratios, tokens/s, an MFU estimate,
peak memory, the measured speed-up of N runs at once (--workers), and the projected wall time of
`make reproduce-en` and of the whole IOB1+BIO grid: from these parts (epochs timed at batch 16 and
at 32, a first and a repeated dev evaluation), and from five whole runs of the grid timed one
after another in a fresh process, as `reproduce` runs them (loading, tokenizing, graphs, training,
evaluations, predictions and the saved tagger: everything a run costs), which also give the grid's
wall time on 2, 4 and 8 GPUs, split by --shard as experiments.py splits it.

The model is a random-init mBERT-shaped BERT (12 x 768, the real 119,547-piece mBERT vocab from
../shared/data/mbert-vocab), so no Hub is needed; --model takes a real one. The data is CoNLL-2003
English (../shared/data/conll2003-en, or --data). The CUDA-graph epoch is timed on a second pass
over the same batches: the first also records the graphs, once per run, a cost printed apart and
added once per run to the projections. Without CUDA it says so and exits 0. A part that
fails (a capture, say) is reported with its traceback, the other parts are still measured, and the
exit status is 1.

    python bench/bench_gpu.py [--model DIR] [--data DIR] [--batches N] [--workers 1,2,4]
                              [--parts graphs,eager,hf,runs,profile] [--profile-steps N]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import replace

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bert  # noqa: E402
import corpora  # noqa: E402
import fastfit  # noqa: E402
import finetune  # noqa: E402
from compare_hf_finetune import HFTagger, hf_fit  # noqa: E402
from wordpiece import WordPiece  # noqa: E402

SHARED = os.path.join(ROOT, "..", "shared", "data")
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s, vendor sheets


def mbert_shaped(folder):
    """A random BERT of mBERT's shape with the real mBERT vocab, in Hub layout."""
    vocab = os.path.join(SHARED, "mbert-vocab", "vocab.txt")
    torch.manual_seed(0)
    bert.save_pretrained(bert.Bert(bert.BertConfig(), mlm=True), folder)
    with open(vocab, encoding="utf-8") as f, open(os.path.join(folder, "vocab.txt"), "w",
                                                   encoding="utf-8") as g:
        g.write(f.read())
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False}, f)
    return folder


def setup(a, device):
    cfg = finetune.FinetuneConfig(model=a.model, data=a.data, epochs=1)
    tok = WordPiece.from_pretrained(cfg.model)
    data, labels = corpora.read_splits(cfg, tok)
    feats = data["train"].feats
    return cfg, tok, data, labels, finetune.tensorize(feats, tok, device), epoch_plan(a, cfg, feats)


def epoch_plan(a, cfg, feats):
    """One epoch's batches at cfg.batch_size, the first --batches of them if given."""
    plan = finetune.batch_plan(feats, cfg, 1)
    return [plan[0][:a.batches]] if a.batches else plan


def ours_epoch(cfg, labels, on_device, plan, graphs, ready=None):
    """fastfit.fit (graphs) or finetune.fit over the epoch -> (seconds, peak GiB, one-time
    seconds). With graphs the epoch runs twice and the second is timed: the first also warms up
    and records one graph per length bucket, which a run does once, not every epoch; one-time =
    first - second. ready(), if
    given, is called once the model and optimizer are built, just before the epoch starts."""
    device = on_device.ids.device
    model, opt = model_and_opt(cfg, labels, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if ready:
        ready()
    ends = [time.time()]  # fit syncs at each epoch's last update, before after_epoch
    fit = fastfit.fit if graphs else finetune.fit
    fit(model, opt, on_device, plan * (1 + graphs), cfg, finetune.task_loss, log=lambda s: None,
        after_epoch=lambda *_: ends.append(time.time()))
    first, last = ends[1] - ends[0], ends[-1] - ends[-2]
    return last, peak_gib(device), first - last


def model_and_opt(cfg, labels, device):
    torch.manual_seed(cfg.seed)
    model = bert.TokenClassifier(bert.from_pretrained(cfg.model), len(labels)).to(device)
    opt = finetune.AdamW(finetune.param_groups(model, cfg.lr, cfg.delta, cfg.weight_decay),
                         lr=cfg.lr, eps=cfg.eps, weight_decay=cfg.weight_decay)
    return model, opt


# Where an update's time goes, kernel by kernel (--parts profile): the lever to take next. Kinds
# by the kernel's (on the CPU: the op's) name, lower-cased, first match.
KINDS = [("optimizer (AdamW)", ("adam",)), ("layer norm", ("layer_norm",)),
         ("clip: the norm", ("lpnorm", "vector_norm", "foreach_norm")),
         ("attention", ("flash", "fmha", "attention", "softmax")),  # flash's name has cutlass
         ("matmuls", ("gemm", "cutlass", "xmma", "nvjet", "aten::mm", "aten::bmm", "addmm")),
         ("dropout", ("dropout", "bernoulli", "philox")), ("embedding", ("embedding", "index")),
         ("zeros and fills", ("fill", "zero")), ("copies and casts", ("copy", "cast", "to_")),
         ("other foreach (clip's scale)", ("foreach", "multi_tensor")),
         ("other elementwise", ("",))]


def kind_of(name):
    name = name.lower()
    return next(k for k, marks in KINDS if any(m in name for m in marks))


def profile_part(cfg, labels, on_device, plan, graphs, steps=20):
    """`steps` updates run twice (with graphs: recorded on the first pass), the second profiled
    (torch.profiler: CUDA kernels, or CPU ops on the CPU) -> (the wall seconds per update, the
    busy seconds per update, {kind: (seconds, calls) per update}, [(seconds, calls, name)] per
    update, the 12 longest)."""
    device = on_device.ids.device
    model, opt = model_and_opt(cfg, labels, device)
    batches = plan[0][:steps]
    acts = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        acts.append(torch.profiler.ProfilerActivity.CUDA)
    prof, start = torch.profiler.profile(activities=acts), []

    def after(epoch, _):
        if epoch == 0:
            sync(device)
            start.append(time.time())
            prof.start()
    fit = fastfit.fit if graphs else finetune.fit
    fit(model, opt, on_device, [batches, batches], cfg, finetune.task_loss, log=lambda s: None,
        after_epoch=after)
    sync(device)
    wall = (time.time() - start[0]) / len(batches)
    prof.stop()
    cuda = device.type == "cuda"
    events = [e for e in prof.key_averages() if cuda == (e.device_type == torch.autograd
                                                          .DeviceType.CUDA)]
    if not cuda:  # CPU ops nest (aten::linear holds aten::addmm): the leaves' own time only
        events = [e for e in events if e.key.startswith("aten::")]
    own = [((e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e6 / len(batches),
            e.count / len(batches), e.key) for e in events]
    kinds = {}
    for t, n, name in own:
        k = kind_of(name)
        kinds[k] = tuple(a + b for a, b in zip(kinds.get(k, (0.0, 0.0)), (t, n)))
    return wall, sum(t for t, _, _ in own), kinds, sorted(own, reverse=True)[:12]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def print_profile(name, wall, busy, kinds, top):
    unit = "ops" if "static" in name else "kernels"
    print(f"profile, {name}: {wall * 1e3:.2f} ms an update, {busy * 1e3:.2f} ms of it in "
          f"{unit} ({busy / wall:.0%}; the rest: gaps between them)")
    for k, (t, n) in sorted(kinds.items(), key=lambda kv: -kv[1][0]):
        print(f"  {k:30s} {t * 1e3:8.3f} ms {t / busy:6.1%}  {n:7.1f} {unit} an update")
    print(f"  the 12 longest {unit}, ms an update:")
    for t, n, name in top:
        print(f"  {t * 1e3:8.3f}  x{n:<6.1f} {name[:110]}")


def hf_epoch(cfg, labels, on_device, plan):
    device = on_device.ids.device
    model = HFTagger(cfg.model, len(labels)).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    return hf_fit(model, cfg, on_device, plan), peak_gib(device), 0.0


def peak_gib(device):
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")


def slowest_of(a, k, graphs):
    """k processes at once, each one epoch of --batches updates (ours_epoch) -> the slowest's
    seconds. The epochs start together: each process says "ready" once its data and model are
    loaded and waits for "go", so start-up times do not spread them apart."""
    cmd = [sys.executable, __file__, "--child", "--model", a.model, "--data", a.data,
           "--device", a.device, "--batches", str(a.batches or 300), "--graphs", str(graphs)]
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for _ in range(k)]
    for p in procs:
        while (line := p.stdout.readline()) and line.strip() != "ready":
            pass
        if not line:
            raise RuntimeError(f"a --workers process exited before its epoch: {cmd}")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a --workers process failed (its error is above): {cmd}")
    return max(float(out.split()[-1]) for out in outs)


def wait_for_go():
    print("ready", flush=True)
    sys.stdin.readline()


def eval_seconds(model, tok, data, labels, device):
    """Two dev evaluations as a run makes them (model on the device, data tensorised) -> (first,
    second) seconds: the first also meets each batch shape for the first time."""
    dev = finetune.tensorize(data["dev"].feats, tok, device)
    times = []
    for _ in range(2):
        t = time.time()
        finetune.evaluate(model, data["dev"], dev, labels)
        times.append(time.time() - t)
    return times


# Whole runs, one after another in one fresh process, as `reproduce` and `grid` run them: (batch,
# epochs) of Table 1's grid; the first run also pays the process's first sights (CUDA, kernels,
# evaluation shapes), so batch 16 x 4 epochs comes again, steady, at the end (seed 2: a new run).
RUNS = [(16, 4, 1), (16, 3, 1), (32, 4, 1), (32, 3, 1), (16, 4, 2)]


def whole_runs(a):
    """A child process: experiments.run_one for each of RUNS into a fresh folder (the default
    command: CUDA graphs, taggers saved) -> one line of JSON: when it started its first run, each
    run's seconds (loading, tokenizing, recording graphs, training, evaluating, writing) with the
    parts its record names (train_time_s: training with the recording; time_s: all of
    finetune.train), and the seconds spent saving taggers."""
    import experiments
    import tagger
    ready, save, saving = time.time(), tagger.save_tagger, []

    def timed_save(tagged, folder):
        t = time.time()
        save(tagged, folder)
        saving.append(time.time() - t)
    tagger.save_tagger = timed_save
    out, secs, parts = tempfile.mkdtemp(), [], []
    try:
        for b, e, seed in RUNS:
            cfg = finetune.FinetuneConfig(model=a.model, data=a.data, batch_size=b, epochs=e,
                                          seed=seed, max_train_sentences=16 * a.batches)
            t = time.time()
            rec = experiments.run_one(cfg, experiments.Experiment(out=out), log=lambda s: None)
            secs.append(time.time() - t)
            parts.append((rec["train_time_s"], rec["time_s"]))
    finally:
        shutil.rmtree(out)
    print(json.dumps(dict(ready=ready, runs=secs, parts=parts, saving=saving)))


def process_seconds(runs, start, first, steady):
    """One process running `runs` one after another, as run_all does: its start, the loading only
    its first run pays (the first 16 x 4 run's seconds over a steady one's), then each run at its
    setting's steady seconds, steady[batch, epochs]."""
    return start + first - steady[16, 4] + sum(steady[c.batch_size, c.epochs] for c in runs)


def projections(a, start, first, steady, save, gpus=(1, 2, 4, 8)):
    """{(command, n): (seconds, seconds with --save false)} for reproduce-en and the IOB1+BIO grid
    on n GPUs, one process each running its --shard i/n: the runs experiments.py would run, split
    as it splits them, the longest shard being the wall time (n = 1: one process, every run)."""
    import experiments
    cfg, out = finetune.FinetuneConfig(model=a.model, data=a.data), {}
    for name, grid in (("reproduce-en", False), ("grid", True)):
        runs = experiments.reproduce_runs(cfg, experiments.Experiment(grid=grid))
        for n in gpus:
            shards = [experiments.shard_of(runs, f"{i}/{n}") for i in range(n)]
            walls = [process_seconds(s, start, first, steady) for s in shards]
            out[name, n] = (max(walls), max(w - save * len(s) for w, s in zip(walls, shards)))
    return out


def runs_part(a):
    """RUNS timed in a child process -> projections() from them: reproduce-en (10 steady 16 x 4
    runs after the first) and the grid, on one GPU and split over several."""
    t0 = time.time()
    cmd = [sys.executable, __file__, "--whole-runs", "--model", a.model, "--data", a.data,
           "--batches", str(a.batches), "--device", a.device]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if out.returncode:
        raise RuntimeError(f"the whole-runs process failed (its error is above): {cmd}")
    got = json.loads(out.stdout.splitlines()[-1])
    start, (first, r16_3, r32_4, r32_3, r16_4) = got["ready"] - t0, got["runs"]
    save = sum(got["saving"]) / len(RUNS)
    for (b, e, seed), s, (fit_s, in_train), save_s in zip(RUNS, got["runs"], got["parts"],
                                                          got["saving"]):
        print(f"whole run, batch {b}, {e} epochs, seed {seed}: {s:.1f} s = training "
              f"{fit_s:.1f} (graphs recorded included) + loading and evaluating "
              f"{in_train - fit_s:.1f} + saving the tagger {save_s:.1f} + the rest "
              f"{s - in_train - save_s:.1f} (writing predictions and the record)")
    print(f"process start {start:.1f} s; saving a tagger {save:.1f} s a run"
          + (f" (training on the first {16 * a.batches} sentences)" if a.batches else ""))
    steady = {(16, 4): r16_4, (16, 3): r16_3, (32, 4): r32_4, (32, 3): r32_3}
    return projections(a, start, first, steady, save)


def measured(name, fn, failed):
    """fn() -> its result; if it raises, None, with the error printed and `name` added to failed:
    a GPU session's minutes are few, so one failing part does not cost the others their figures."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 (reported, then the bench goes on and exits 1)
        traceback.print_exc()
        print(f"{name}: FAILED ({type(e).__name__}: {e})", flush=True)
        failed.append(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="", help="BERT folder or Hub id (default: mBERT-shaped)")
    ap.add_argument("--data", default=os.path.join(SHARED, "conll2003-en"))
    ap.add_argument("--batches", type=int, default=0, help="updates per epoch (0 = all)")
    ap.add_argument("--workers", default="1,2,4", help="process counts to time at once")
    ap.add_argument("--parts", default="graphs,eager,hf,runs", help="what to time (graphs: ours "
                    "with CUDA graphs, eager: ours eager, hf: HF's loop, runs: whole runs of "
                    "the grid in one process; profile: where an update's time goes, kernel by "
                    "kernel, not in the default)")
    ap.add_argument("--profile-steps", type=int, default=20, help="updates profiled")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the code")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--whole-runs", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--graphs", default="True", help=argparse.SUPPRESS)  # a --workers child's path
    a = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each figure out as it comes, should time run out
    if a.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing measured (the benchmark needs one)")
        return 0
    device = torch.device(a.device)
    a.model = a.model or mbert_shaped(tempfile.mkdtemp())
    if a.whole_runs:
        return whole_runs(a)
    cfg, tok, data, labels, on_device, plan = setup(a, device)
    if a.child:
        graphs = a.graphs == "True"
        print(ours_epoch(cfg, labels, on_device, plan, graphs, ready=wait_for_go)[0])
        return 0
    gpu = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    updates = len(plan[0])
    tokens = sum(int(on_device.lengths[i]) for b in plan[0] for i in b)
    print(f"{gpu}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}; "
          f"{updates} updates x batch {cfg.batch_size}, {tokens:,} pieces", flush=True)
    ours_epoch(cfg, labels, on_device, [plan[0][:3]], graphs=False)  # warm-up: kernels, caches
    # graphs=True: replayed from CUDA graphs; on the CPU the same static-shape path, not captured
    fast_name = "ours, CUDA graphs" if device.type == "cuda" else "ours, static shapes"
    failed, parts = [], a.parts.split(",")
    fast = eager = hf = None
    if "graphs" in parts:
        fast = measured(fast_name, lambda: ours_epoch(cfg, labels, on_device, plan, True), failed)
    if "eager" in parts:
        eager = measured("ours, eager", lambda: ours_epoch(cfg, labels, on_device, plan, False),
                         failed)
    if "hf" in parts:
        hf = measured("HF loop", lambda: hf_epoch(cfg, labels, on_device, plan), failed)
    model = bert.TokenClassifier(bert.from_pretrained(cfg.model), len(labels)).to(device)
    n_matmul = sum(p.numel() for n, p in model.named_parameters()
                   if p.dim() == 2 and "emb" not in n)
    flops = 6 * n_matmul * tokens  # forward + backward, matrix work only (no attention scores)
    peak = next((v for k, v in PEAK_BF16.items() if k in gpu), None)
    for name, got in ((fast_name, fast), ("ours, eager", eager), ("HF loop", hf)):
        if got:
            s, mem, _ = got
            mfu = f"{flops / s / peak:.1%}" if peak else "n/a"
            vs_hf = f"  HF/this {hf[0] / s:.2f}" if hf else ""
            print(f"{name:18s} {s:7.1f} s/epoch  {tokens / s:10,.0f} tok/s  MFU {mfu:>6s}  "
                  f"peak {mem:.2f} GiB{vs_hf}")
    if fast:
        print(f"{fast_name}: the first epoch took {fast[2]:.1f} s more (warm-up updates and one "
              f"graph recorded per length bucket: once per run)")
    ours = fast or eager
    source = fast_name if fast else "ours, eager"
    cfg32 = replace(cfg, batch_size=32)  # the other half of Table 1's grid, on the same path
    plan32 = epoch_plan(a, cfg32, data["train"].feats)
    half = ours and measured(f"{source}, batch 32", lambda: ours_epoch(
        cfg32, labels, on_device, plan32, bool(fast)), failed)
    if half:
        print(f"{source + ', batch 32':18s} {half[0]:7.1f} s/epoch ({len(plan32[0])} updates; "
              f"the first {half[2]:.1f} s more)")
    eval_s = measured("dev evaluation", lambda: eval_seconds(model, tok, data, labels, device),
                      failed)
    speed, ns = {}, [int(n) for n in a.workers.split(",") if n != "1"]
    alone = ns and ours and measured("one process alone", lambda: slowest_of(a, 1, bool(fast)),
                                     failed)
    for n in ns if alone else []:  # the throughput of n at once against one alone
        t = measured(f"--workers {n}", lambda: slowest_of(a, n, bool(fast)), failed)
        if t:
            speed[n] = n * alone / t
            print(f"--workers {n}: {speed[n]:.2f}x the throughput of one run")
    if ours and half and eval_s is not None:
        sents = len(data["train"].feats)
        best = max([1.0, *speed.values()])
        first, again = eval_s

        def run(epoch_s, once, epochs):  # recording, E epochs, E dev evaluations and a test
            return once + epochs * epoch_s + 2 * first + (epochs - 1) * again  # (2 first sights)
        b16 = (ours[0] * sents / sum(map(len, plan[0])), ours[2])  # full epochs, from --batches
        b32 = (half[0] * sents / sum(map(len, plan32[0])), half[2])
        repro = 10 * run(*b16, 4) / best  # Sec 4.1, fn 11: batch 16, 4 epochs
        grid = 2 * 5 * 3 * sum(run(*b, e) for b in (b16, b32) for e in (3, 4)) / best
        print(f"dev evaluation {first:.2f} s, again {again:.2f} s; projected from {source}, with "
              f"the best --workers ({best:.2f}x): make reproduce-en {repro / 60:.1f} min, "
              f"IOB1+BIO grid {grid / 3600:.2f} h (2 schemes x 5 seeds x 3 lr x batch 16/32 x "
              f"3/4 epochs)")
    if "profile" in parts:  # the path a run takes: graphs on CUDA (static shapes on the CPU)
        got = measured(f"profile, {fast_name}", lambda: profile_part(
            cfg, labels, on_device, plan, True, a.profile_steps), failed)
        if got and not got[1]:  # no kernel seen inside the graphs: the same updates, eager
            print("profile: the profiler saw no kernels inside CUDA graphs; the same updates "
                  "eagerly instead (the same kernels, launched one by one)")
            fast_name, got = "ours, eager", measured("profile, ours, eager", lambda: profile_part(
                cfg, labels, on_device, plan, False, a.profile_steps), failed)
        if got:
            print_profile(fast_name, *got)
    whole = "runs" in parts and measured("whole runs", lambda: runs_part(a), failed)
    if whole:
        (repro, repro_bare), (grid, grid_bare) = whole["reproduce-en", 1], whole["grid", 1]
        print(f"projected from whole runs in one process: make reproduce-en {repro / 60:.1f} min "
              f"({repro_bare / 60:.1f} with --save false), IOB1+BIO grid {grid / 3600:.2f} h "
              f"({grid_bare / 3600:.2f} with --save false)")
        print("the grid on n GPUs, one --shard i/n each (its longest shard): " + ", ".join(
            f"{n}: {whole['grid', n][0] / 3600:.2f} h ({grid / whole['grid', n][0]:.2f}x)"
            for n in (2, 4, 8)))
    if failed:
        print(f"FAILED: {', '.join(failed)} (tracebacks above); the other figures stand")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
