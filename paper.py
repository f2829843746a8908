"""The paper's facts as data: its sections, its one equation, its footnotes and every number of
its Tables 1-6 (Baumann, RANLP 2019 SRW). tables.py prints our runs beside these numbers, and
experiments.py plans the runs from them; tests/test_citations.py holds every "Sec N.N" and
"Eq. N" the project cites as the paper's against SECTIONS and EQUATIONS. Apart at the end:
other papers' numbers, for the zero-shot transfer its Sec 5.1 points to.
"""

# The paper's numbered sections (there are no others) and its one numbered equation.
SECTIONS = {"1": "Introduction", "2": "Related Work", "2.1": "Language Models",
            "2.2": "Universal Language Model Fine-Tuning", "2.3": "BERT",
            "2.4": "Multilingual Language Models", "3": "Multilingual BERT for NER",
            "3.1": "Dataset & Languages", "3.2": "Method/Architecture",
            "3.3": "Adaptation of Fine-Tuning Methods", "4": "Experiments",
            "4.1": "Replication of English Results", "4.1.1": "Multilingual BERT",
            "4.2": "Additional Fine-Tuning", "5": "Conclusion", "5.1": "Future Work"}
EQUATIONS = {1}    # Sec 3.3, Eq. (1): eta_n = eta_0 / delta^n
FOOTNOTES = 14     # footnotes 1-14; fn 11 names the chosen setting
TABLES = 6         # Tables 1-6
FIGURES = 1        # Figure 1, the NER model

MBERT = "bert-base-multilingual-cased"
BERT_BASE = "bert-base-cased"  # "English BERT": Devlin et al.'s BERT-base, cased for NER

# Table 1: the grid searched on dev (Sec 4.1); fn 11: batch 16, lr 3e-5, 4 epochs chosen for
# English. German ran 3 epochs (Sec 4.1.1; Table 3's IOB1 dev F1 is Table 4's German epoch-3
# mean); its batch and rate are not stated: fn 11's, a reading. GermEval stands in for German.
GRID = dict(batch_size=(16, 32), lr=(2e-5, 3e-5, 5e-5), epochs=(3, 4))
CHOSEN = {"en": dict(batch_size=16, lr=3e-5, epochs=4),
          "de": dict(batch_size=16, lr=3e-5, epochs=3)}

# Table 2 (English) and Table 3 (German CoNLL-2003): (dev, test) F1, None where not reported.
# Ours: (lang, model, scheme); others' systems, printed as reference rows: (name, annotation).
SEEDS_TABLE2 = 5  # "averaged out of 5 randomly initialised runs"
TABLE2 = {("en", BERT_BASE, "iob1"): (96.4, 92.6), ("en", BERT_BASE, "bio"): (95.9, 92.2),
          ("en", MBERT, "iob1"): (96.4, 91.9), ("en", MBERT, "bio"): (96.5, 92.1)}
TABLE2_OTHERS = [("BERT-large (Devlin et al.)", "–", (96.6, 92.8)),
                 ("BERT-base (Devlin et al.)", "–", (96.4, 92.4))]
TABLE3 = {("de", MBERT, "iob1"): (88.44, 85.81), ("de", MBERT, "bio"): (87.49, 84.98)}
TABLE3_OTHERS = [("Ahmed & Mehler", "IOB1", (None, 83.64)),
                 ("Riedl & Padó", "–", (None, 84.73)),
                 ("Akbik et al. (2018)", "–", (None, 88.33))]

# Table 4: dev F1 (IOB1) at the chosen setting, with and without BertAdam's warmup, as 3- and
# 4-epoch runs, mean and std over 4 runs. (lang, model) -> {(warmup, epochs): (mean, std)}.
SEEDS_TABLE4 = 4
TABLE4 = {("en", BERT_BASE): {(True, 3): (96.31, 0.13), (True, 4): (96.42, 0.09),
                              (False, 3): (95.76, 0.47), (False, 4): (94.80, 2.39)},
          ("en", MBERT): {(True, 3): (96.51, 0.18), (True, 4): (96.55, 0.21),
                          (False, 3): (95.88, 0.74), (False, 4): (96.25, 0.06)},
          ("de", MBERT): {(True, 3): (88.44, 0.35), (True, 4): (88.23, 0.46),
                          (False, 3): (86.69, 1.12), (False, 4): (85.24, 2.17)}}

# Tables 5 (English BERT on English) and 6 (mBERT on German CoNLL-2003): (dev, test) F1, mean of
# 2 runs, per row: plain fine-tuning; + "task fine-tuning" (Eq. 1's rates, eta_0 and delta chosen
# on dev, with gradual unfreezing, 3 layers an epoch, so 5 epochs); the same after 10 or 20
# masked-LM epochs on the task text.
SEEDS_TABLE56 = 2
ROWS56 = ("Plain", "+ Task fine-tuning", "+ 10e LM & Task fine-tuning",
          "+ 20e LM & Task fine-tuning")
TABLE5 = dict(lang="en", model=BERT_BASE,
              rows=dict(zip(ROWS56, [(96.4, 92.6), (95.60, 92.38), (95.58, 92.42),
                                     (95.91, 92.36)])))
TABLE6 = dict(lang="de", model=MBERT,
              rows=dict(zip(ROWS56, [(88.44, 85.81), (87.50, 85.78), (87.11, 84.98),
                                     (87.93, 85.16)])))
# Sec 3.3: delta in {2.6, 1.6, 1} (fn 10: 1 is one rate for all layers); the eta_0 set is not
# given: Table 1's three rates (experiments.task_runs says how we search them).
DELTAS = (2.6, 1.6, 1.0)
UNFREEZE = 3        # Sec 3.3: layers thawed per epoch
UNFREEZE_EPOCHS = 5  # Sec 3.3: 12 layers in groups of 3, so 5 epochs
LM_EPOCHS = (10, 20)  # Tables 5-6's masked-LM rows

# ---------------------------------------------------------------------------------------------
# Not this paper's numbers: published mBERT zero-shot results (Sec 5.1 points to them), beside our
# cross-lingual table (tables.xling): (trained on, tested on) -> test F1 by W&D = Wu & Dredze 2019,
# Pires = Pires et al. 2019, as Papers with Code records each paper's NER results. Pires et al.'s
# other cells (their DE, NL, ES rows; EN -> NL, ES) wait to be read from their own table.
ZERO_SHOT = {("en", "de"): {"W&D": 69.56, "Pires": 69.74}, ("en", "es"): {"W&D": 74.96},
             ("en", "nl"): {"W&D": 77.57}}
