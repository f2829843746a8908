"""What names a run and what is kept of it: its settings checked, its key, and its line in
OUT/results.jsonl, written once whatever the number of processes.

A run's key hashes every field of its FinetuneConfig, its data as the bytes of the files. A run
being trained holds OUT/claims/KEY.lock, so workers, shards and a resumed grid skip it; the lock
goes with a process that dies, so an interrupted run is trained again. There is no coordinator.
"""
import hashlib
import io
import json
import math
import os
import sys
from dataclasses import asdict, fields

import atomic
import bert
import corpora
from finetune import FinetuneConfig

ZERO_SHOT = "zero_shot.jsonl"  # one record per (run, German data): Wu & Dredze's zero-shot rows


CHOICES = dict(scheme=("iob1", "bio"), schedule=("linear", "stlr", "constant"),
               lang=("en", "de", "germeval", "cleanconll"), level=("outer", "inner"))
# Allowed ranges: (low, high, low included). A value outside is an error naming the flag.
RANGES = dict(lr=(0, None, False), batch_size=(1, None, True), epochs=(1, None, True),
              warmup=(0, 1, True), stlr_ratio=(1, None, True), weight_decay=(0, None, True),
              eps=(0, None, False), clip=(0, None, False), delta=(0, None, False),
              unfreeze=(0, None, True), lm_epochs=(0, None, True), max_len=(3, None, True),
              max_train_sentences=(0, None, True))


def check_config(cfg):
    """Every field typed as the command line types it (warmup=0 becomes 0.0: one key), one of its
    choices and in its range (`--clip=-1: clip must be > 0`), before any work. -> cfg."""
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        ok = isinstance(v, f.type) or f.type is float and isinstance(v, int)
        if not ok or isinstance(v, bool) and f.type is not bool:
            raise ValueError(f"--{f.name}={v!r}: expected {f.type.__name__}")
        setattr(cfg, f.name, f.type(v))
    for k, ok in CHOICES.items():
        if getattr(cfg, k) not in ok:
            raise ValueError(f"--{k}={getattr(cfg, k)}: expected one of {', '.join(ok)}")
    check_ranges(cfg, RANGES)
    if cfg.level != "outer" and cfg.lang != "germeval":
        raise ValueError(f"--level={cfg.level}: only GermEval 2014 has an inner level; "
                         f"add --lang germeval or drop --level")
    if cfg.schedule == "stlr" and cfg.warmup == 0:
        raise ValueError("--schedule=stlr needs --warmup > 0 (ULMFiT's cut_frac, e.g. 0.1)")
    return cfg


def check_ranges(obj, ranges):
    """Numeric fields against their ranges. The high end is exclusive for floats (warmup < 1)."""
    for k, (lo, hi, lo_in) in ranges.items():
        v = getattr(obj, k)
        if not math.isfinite(v):
            raise ValueError(f"--{k}={v}: {k} must be a finite number")
        if lo is not None and (v < lo if lo_in else v <= lo):
            raise ValueError(f"--{k}={v}: {k} must be {'>=' if lo_in else '>'} {lo}")
        if hi is not None and (v > hi if isinstance(v, int) else v >= hi):
            raise ValueError(f"--{k}={v}: {k} must be {'<=' if isinstance(v, int) else '<'} {hi}")


def digest(d):
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


# Fields FinetuneConfig gained after runs were first recorded, with the value every earlier run
# had: a record without one reads as that value, and a run at it keeps the key it had before.
ADDED = dict(clip_each=False)


def run_key(cfg):
    """A run's id: a hash of every field, with `data` as a fingerprint of the files' bytes (an
    edited file is a new run; `dir/` is `dir`, and so is a copy elsewhere) and `model` as
    model_id names it. A field of ADDED at its old value is left out of the hash."""
    d = asdict(check_config(cfg))
    d.update(data=corpora.data_fingerprint(cfg.data, cfg.lang), model=model_id(cfg.model))
    for k, v in ADDED.items():
        if d[k] == v:
            del d[k]
    return digest(d)


def model_id(model):
    """A local folder by where it really is (a symlink to it, `dir/` and `./dir` are one model),
    a Hub id as it is written."""
    return os.path.realpath(model) if os.path.isdir(model) else model.rstrip("/")


# ---------------------------------------------------------------------------------------------
# results.jsonl: one record per run key; a run being trained holds OUT/claims/KEY.lock.

def record_problem(r, name):
    """What keeps a line from the tables, or None: it must be an object with a string key, finite
    dev and test F1, and what names its row (a run's config, every field of its type; a zero-shot
    score's run and German data). -> e.g. "config.lr is '1e-4', expected float"."""
    if not isinstance(r, dict) or not isinstance(r.get("key"), str):
        return "not an object with a string key"
    for s in ("dev", "test"):
        f1 = r.get(s).get("f1") if isinstance(r.get(s), dict) else None
        if not _typed(f1, float) or not 0 <= f1 <= 100:
            return f"{s}.f1 is {_short(f1)}, expected a finite number in 0-100"
    if name == ZERO_SHOT:
        names = [(k, r.get(k), t) for k, t in dict(run=str, format=str, data=str,
                                                    keep=bool).items()]
    elif not isinstance(r.get("config"), dict):
        return "no config object"
    else:
        names = [(f"config.{f.name}", r["config"].get(f.name), f.type)
                 for f in fields(FinetuneConfig)]
        names += [(k, r[k], str) for k in ("data_fingerprint", "model_id") if k in r]
    for k, v, t in names:
        if not _typed(v, t):
            return f"{k} is {_short(v)}, expected {t.__name__}"
    if "cleanconll" in r:  # an English run's scores on CleanCoNLL
        clean = r["cleanconll"] if isinstance(r["cleanconll"], dict) else {}
        if not isinstance(clean.get("data"), str):
            return "cleanconll.data is not a string"
        for s in ("dev", "test"):
            f1 = clean[s].get("f1") if isinstance(clean.get(s), dict) else None
            if not _typed(f1, float) or not 0 <= f1 <= 100:
                return f"cleanconll.{s}.f1 is {_short(f1)}, expected a finite number in 0-100"
    if name != ZERO_SHOT:
        try:  # each field one of its choices and in its range, as a run's flags are
            check_config(FinetuneConfig(**{f.name: r["config"][f.name]
                                           for f in fields(FinetuneConfig)}))
        except ValueError as e:
            return f"config: {e}"
    return None


def _short(v):
    """repr(v), cut to 24 characters: a 400-digit number is named, not printed."""
    r = repr(v)
    return r if len(r) <= 24 else r[:20] + "..."


def _typed(v, t):
    """v is a t as the command line types it: an int is a float too, a bool never a number; a
    float is finite."""
    if isinstance(v, bool) != (t is bool) or not isinstance(v, int if t is float else t):
        return isinstance(v, float) and t is float and math.isfinite(v)
    return True


def read_results(out, warn=None, name="results.jsonl", files=True):
    """The records of OUT/results.jsonl (or OUT/name), first one per key, and (files=True) those
    of OUT/records/ (one file a run, see append_result) that the file lacks. A damaged line or file
    is skipped with a warning naming file:line, and stays on disk as it is (lines are split at
    \n only: a stray \r or invalid byte inside a damaged line moves no other line)."""
    path = os.path.join(out, name)
    warn = warn or (lambda s: print(s, file=sys.stderr))
    lines = []
    if os.path.isfile(path):
        with open(path, "rb") as f:
            lines = [(path, n, line) for n, line in enumerate(f.read().split(b"\n"), start=1)]
    folder = record_folder(out, name)
    for entry in sorted(os.listdir(folder)) if files and os.path.isdir(folder) else []:
        if entry.endswith(".json") and not entry.startswith("."):
            with open(os.path.join(folder, entry), "rb") as f:
                lines.append((os.path.join(folder, entry), 1, f.read().rstrip(b"\n")))
    records, keys = [], set()
    for where, n, line in lines:
        if not line.strip():
            continue
        try:  # an editor's byte-order mark before the first record is no part of it
            r = json.loads(line.decode("utf-8-sig" if n == 1 else "utf-8"))
        except ValueError:  # bad JSON, and UnicodeDecodeError too
            r = None
        if isinstance(r, dict) and isinstance(r.get("config"), dict):
            r["config"] = {**ADDED, **r["config"]}  # an earlier run's record, as it ran
        why = "not JSON" if r is None else record_problem(r, name)
        if why:
            warn(f"warning: {where}:{n}: not a result record ({why}); skipped (left in the file)")
            continue
        if r["key"] not in keys:
            keys.add(r["key"])
            records.append(r)
    return records


def record_folder(out, name):
    """OUT/records/ for results.jsonl, OUT/records-zero_shot/ for zero_shot.jsonl."""
    return os.path.join(out, "records" if name == "results.jsonl" else
                        "records-" + name.removesuffix(".jsonl"))


def append_result(out, record, name="results.jsonl"):
    """Record a run once -> the record on file. First OUT/records/KEY.json, created whole and only
    if no such file exists (a hard link: atomic even on NFS), so that one record stands per key
    however many processes on however many machines finish the same run, with no lock needed:
    on a shared file system a lock may hold on its own node only (Lustre without -o flock).
    Then the line in OUT/name for reading by eye, under its lock, its old bytes plus the new line
    replacing it atomically; a line lost there by a lock that did not hold between nodes is
    still read from OUT/records/."""
    folder = record_folder(out, name)
    os.makedirs(folder, exist_ok=True)
    atomic.clear_temps(folder)  # what a killed writer on this machine left
    done = {r["key"]: r for r in read_results(out, lambda s: None, name)}
    if record["key"] in done:
        return done[record["key"]]
    try:
        atomic.write_text(os.path.join(folder, f"{record['key']}.json"),
                          json.dumps(record) + "\n", new=True)
    except FileExistsError:  # another process recorded it meanwhile: theirs stands
        return {r["key"]: r for r in read_results(out, lambda s: None, name)}[record["key"]]
    path = os.path.join(out, name)
    try:
        _append_line(path, record, name)
    except OSError as e:  # the record stands in its file; only the line for the eye is missing
        print(f"warning: {path}: the line of run {record['key']} not added ({e}); its record "
              f"is {folder}/{record['key']}.json", file=sys.stderr)
    return record


def _append_line(path, record, name):
    """record as a line of OUT/name, unless a record there has its key already."""
    with atomic.locked(path + ".lock"):
        atomic.clear_temps(os.path.dirname(path), name)  # a dead writer's
        if record["key"] in {r["key"] for r in read_results(os.path.dirname(path),
                                                             lambda s: None, name, files=False)}:
            return
        with open(path, "rb") if os.path.isfile(path) else io.BytesIO() as f:
            old = f.read()  # bytes: kept as they are
        if old and not old.endswith(b"\n"):
            old += b"\n"  # a torn last line stays a line of its own

        def write(tmp):
            with open(tmp, "wb") as f:
                f.write(old + json.dumps(record).encode() + b"\n")
        atomic.replace(path, write)


def busy(out):
    """The keys of the runs that live processes are training now (their claims are held), read
    without claiming any."""
    folder = os.path.join(out, "claims")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return [n[:-len(".lock")] for n in names
            if n.endswith(".lock") and atomic.held(os.path.join(folder, n))]


def claim(out, key):
    """True while this process holds OUT/claims/KEY.lock, False when another does. A killed
    process's lock goes with it, so an interrupted run is trained again; a released claim
    deletes its file (a killed process's empty one stays until its key is claimed again)."""
    return atomic.try_lock(os.path.join(out, "claims", f"{key}.lock"), remove=True)


def record_of(cfg, key, fingerprint, t, graphs):
    """A run's line in results.jsonl: its key and settings, scores, and what it cost."""
    s = t.stats
    return dict(key=key, config=asdict(cfg), dev=t.dev, test=t.test, dev_f1_per_epoch=t.dev_f1,
                train_time_s=round(s["train_s"], 3), time_s=round(s["time_s"], 1),
                updates=s["updates"], tokens_per_s=round(s["tokens"] / s["train_s"]),
                device=str(bert.pick_device()), graphs=graphs,
                data_fingerprint=fingerprint, model_id=model_id(cfg.model))
