"""The paper's numbers and ours beside them: one Markdown row per setting in OUT/results.jsonl
(its seeds pooled: mean +- std, Table 1), the paper's Table 2-3 F1 on the plain rows, the setting
Table 1's rule would choose on dev, zero-shot rows under their English setting, and Tables 4-6 as
each change against plain fine-tuning at its setting, beside what the paper found.

    python experiments.py table --out runs/en
"""
import json
import math
import os
import statistics
from dataclasses import fields

import records
from finetune import FinetuneConfig

# Paper Tables 2-3, test (and dev where reported) F1: (lang, model, scheme) -> (dev, test).
MBERT = "bert-base-multilingual-cased"
PAPER = {("en", "bert-base-cased", "iob1"): (None, 92.6),
         ("en", "bert-base-cased", "bio"): (None, 92.2),
         ("en", MBERT, "iob1"): (None, 91.9), ("en", MBERT, "bio"): (None, 92.1),
         ("de", MBERT, "iob1"): (88.44, 85.81), ("de", MBERT, "bio"): (87.49, 84.98)}
# Tables 4-6 as changes to the chosen setting, each with what the paper found against plain
# fine-tuning: warmup helps and steadies the runs (Table 4, BertAdam without it is lower); ULMFiT's
# Eq. (1) rates and gradual unfreezing, 3 layers an epoch so 5 epochs (Table 5), and masked-LM
# epochs on the task text first (Table 6) do not help BERT. (table, change, the paper's finding)
ABLATIONS = [("4", dict(schedule="constant"), "lower, less steady"),
             ("5", dict(delta=2.6), "not higher"), ("5", dict(delta=1.6), "not higher"),
             ("5", dict(unfreeze=3, epochs=5), "not higher"),
             ("5", dict(delta=2.6, unfreeze=3, epochs=5), "not higher"),
             ("6", dict(lm_epochs=10), "not higher"), ("6", dict(lm_epochs=20), "not higher")]
PLAIN = dict(schedule="linear", delta=1.0, unfreeze=0, lm_epochs=0)  # BERT's own fine-tuning
AGREES = {"lower": ("lower",), "not higher": ("lower", "same")}  # finding -> our directions


SHOWN = ("lang", "model", "scheme", "batch_size", "lr", "epochs", "data", "seed")
WU_DREDZE = 69.56  # Wu & Dredze 2019: mBERT trained on English, tested on CoNLL-2003 German
NOTES = {"germeval": "germeval: conlleval F1 of the spans of one level (outer unless the method "
                     "says level=inner), 12 types; the shared task ranked both levels combined",
         "zero-shot": "zero-shot: that setting's English-trained runs scored on German, no "
                      "German training, chosen on English dev (Wu & Dredze 2019: "
                      f"{WU_DREDZE} on CoNLL-2003 German test); GermEval types mapped "
                      "OTH -> MISC, ...deriv/...part -> O unless 'kept'"}


def table(out):
    """Markdown: one row per setting in OUT/results.jsonl (its seeds pooled), the paper's numbers
    beside it. Every setting that differs from plain BERT fine-tuning is named under "method", so
    no row mixes settings; "chosen" marks, per (lang, model, scheme, method, data), the
    batch/lr/epochs with the best mean dev F1 (Table 1's rule). Runs on different data (by the
    files' bytes) are different rows, and a data column appears when there is more than one.
    Zero-shot scores (OUT/zero_shot.jsonl) add a row under their English setting."""
    groups, german = {}, {}
    for r in records.read_results(out):
        groups.setdefault(setting(r), []).append(r)
    if not groups:
        held = records.busy(out)
        if held:  # a resume right after a kill finds its runs still held: by whom, it says
            raise ValueError(f"{out}: no results.jsonl records yet; {len(held)} runs are being "
                             f"trained by other processes now ({', '.join(held)}); run `table` "
                             f"when they finish")
        raise ValueError(f"{out}: no results.jsonl records; train or grid with --out {out} first")
    for z in records.read_results(out, name=records.ZERO_SHOT):
        german.setdefault(z["run"], []).append(z)
    rows = []
    for key, runs in sorted(groups.items()):
        rows.append(row(json.loads(key), runs, runs))
        by_data = {}
        for z in (z for r in runs for z in german.get(r["key"], [])):
            by_data.setdefault((z["format"], z["keep"], z["data"]), []).append(z)
        for which, zs in sorted(by_data.items()):
            rows.append(row(json.loads(key), runs, zs, which))
    found = effects(groups)
    return markdown(rows) + (f"\n\n{found}" if found else "")


def setting(record):
    """A record's row: its FinetuneConfig fields but the seed, data as the files' fingerprint."""
    c = {f.name: record["config"].get(f.name) for f in fields(FinetuneConfig)}
    c.update(data=record.get("data_fingerprint", c["data"]), seed=None)
    c.update(model=records.model_id(c["model"]))  # as the run's key names it
    return json.dumps(c, sort_keys=True)


def row(c, runs, scored, zero_shot=None):
    """One table row: setting c, its seeds' records `runs`, the records `scored` (runs, or their
    zero-shot scores). pick: the row's rival group and the dev F1 it is chosen by, the runs' own
    (English) dev F1 for a zero-shot row too."""
    method = ", ".join(f"{f.name}={c[f.name]}" for f in fields(FinetuneConfig)
                       if f.name not in SHOWN and c[f.name] != f.default)
    what = source = (c["lang"], c["model"], c["scheme"], method or "BERT", c["data"])
    dev, test = scores(scored, "dev"), scores(scored, "test")
    name = os.path.basename(c["model"].rstrip("/"))
    paper = None if method else PAPER.get((c["lang"], name, c["scheme"]))  # Tables 2-3: plain
    if zero_shot:  # Wu & Dredze's number belongs to mBERT on CoNLL-2003 German only
        fmt, keep, data = zero_shot  # data: the German files' digest, shown (first 6)
        method = f"{what[3]}, zero-shot on {fmt} {data[:6]}{', kept' * keep}"
        what = ("en→de", *what[1:3], method, what[4])
        paper = (None, WU_DREDZE if (fmt, name) == ("conll2003-de", MBERT) else None)
    return dict(what=what, setting=(c["batch_size"], c["lr"], c["epochs"]), n=len(scored),
                dev=dev, test=test, paper=paper or (None, None),
                pick=(source, scores(runs, "dev")[0]))


def markdown(rows):
    """rows (from row) as a Markdown table, "chosen" per rival group, notes for unusual rows."""
    best = {}
    for r in rows:
        best[r["pick"][0]] = max(best.get(r["pick"][0], -1.0), r["pick"][1])
    several = len({r["what"][4] for r in rows}) > 1
    head = ["lang", "model", "scheme", "batch", "lr", "epochs", "method"] + ["data"] * several
    head += ["seeds", "dev F1", "test F1", "paper dev", "paper test", "chosen"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["pick"][0], r["setting"], r["what"])):  # zero-shot
        # rows come right under their English row
        (lang, model, scheme, method, data), (b, lr, e) = r["what"], r["setting"]
        cells = [lang, model, scheme.upper(), b, f"{lr:g}", e, method] + [data] * several
        cells += [r["n"], *(f"{m:.2f} ± {s:.2f}" for m, s in (r["dev"], r["test"])),
                  *(p or "–" for p in r["paper"]),
                  "✓" if r["pick"][1] == best[r["pick"][0]] else ""]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    shown = {r["what"][0] for r in rows} | {"zero-shot" for r in rows if r["what"][0] == "en→de"}
    notes = [n for k, n in NOTES.items() if k in shown]
    return "\n".join(lines + [""] * bool(notes) + notes)


def effects(groups):
    """Tables 4-6 in Markdown ("" if none): each setting that differs from BERT's own fine-tuning
    only in PLAIN's fields (schedule, delta, unfreeze, lm_epochs), against the plain setting it
    changes: the same in all else and in epochs (where unfreezing added epochs: the plain epochs
    chosen on dev). Its test F1, the difference, and its direction beside the paper's finding:
    "same" while the difference is within the two means' standard errors combined."""
    cs = {k: json.loads(k) for k in groups}
    plain = {k for k, c in cs.items() if all(c[f] == v for f, v in PLAIN.items())}
    lines = []
    for k, c in sorted(cs.items()):
        like = [j for j in plain if {**cs[j], "epochs": 0} == {**c, **PLAIN, "epochs": 0}]
        if k in plain or not like:
            continue
        same = [j for j in like if cs[j]["epochs"] == c["epochs"]]
        base = same[0] if same else max(sorted(like), key=lambda j: scores(groups[j], "dev")[0])
        (dev, _), (test, sd) = scores(groups[k], "dev"), scores(groups[k], "test")
        ptest, psd = scores(groups[base], "test")
        change = ", ".join(f"{f}={c[f]}" for f in PLAIN if c[f] != PLAIN[f])
        table_no, paper = next(((t, p) for t, a, p in ABLATIONS if all(
            c[f] == a.get(f, PLAIN.get(f, c[f])) for f in (*PLAIN, *a))), ("–", "–"))
        ours = direction([r["test"]["f1"] for r in groups[k]],
                         [r["test"]["f1"] for r in groups[base]])
        if "steady" in paper and len(groups[k]) > 1 and len(groups[base]) > 1:
            ours += ", less steady" if sd > psd else ", steadier"  # the seeds' spread
        agrees = ours.split(", ")[0] in AGREES.get(paper.split(", ")[0], ())
        mark = "✓" if agrees else "✗" if paper != "–" else ""
        lines.append([table_no, c["model"], c["scheme"].upper(), c["batch_size"], f"{c['lr']:g}",
                      change, c["epochs"], len(groups[k]), f"{dev:.2f}", f"{test:.2f} ± {sd:.2f}",
                      f"{ptest:.2f} ± {psd:.2f} ({cs[base]['epochs']} ep, {len(groups[base])})",
                      f"{test - ptest:+.2f}", paper, ours, mark])
    if not lines:
        return ""
    lines.sort(key=lambda cells: (cells[0], cells[5], cells[1:5]))
    head = ["table", "model", "scheme", "batch", "lr", "change", "epochs", "seeds", "dev F1",
            "test F1", "plain test F1 (epochs, seeds)", "Δ test", "paper", "ours", "agrees"]
    return "\n".join(["Tables 4-6: each change against plain fine-tuning at its setting",
                      "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                     ["| " + " | ".join(map(str, cells)) + " |" for cells in lines])


def scores(runs, split):
    """(mean, std) of the runs' F1 on split."""
    return mean_std([r[split]["f1"] for r in runs])


def direction(xs, ys):
    """higher | lower | same: mean(xs) against mean(ys), "same" while the difference is within
    the two means' standard errors combined (one run each: any difference counts)."""
    se = math.sqrt(sum(statistics.variance(v) / len(v) for v in (xs, ys) if len(v) > 1))
    d = statistics.mean(xs) - statistics.mean(ys)
    return "higher" if d > se else "lower" if d < -se else "same"


def mean_std(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)
