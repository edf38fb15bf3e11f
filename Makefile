# HOP: two commands do everything on a fresh machine.
#   make demo   the main job end to end on the embedded default
#   make test   the test suite
# Both create and use .venv themselves.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU wheel on these machines; on a CUDA machine set TORCH_SPEC=torch.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= data,train,robot,dev
comma  := ,
STAMP  := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))
OUT    ?= out/demo
export MUJOCO_GL ?= osmesa

.PHONY: install sysdeps lift-env demo pretrain test test-signals bench clean experiment experiment-long experiment-smoke

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@

# Offscreen rendering (hop-data render) needs OSMesa; installed when we may.
sysdeps:
	@if ldconfig -p 2>/dev/null | grep -q libOSMesa; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && apt-get install -y -qq libosmesa6 >/dev/null) || echo "warning: could not install libosmesa6; rendering will be skipped"; \
	else echo "note: install libosmesa6 (Debian/Ubuntu) for offscreen rendering"; fi
	@# headless Chromium (Debian's package) opens hop-data report's page in its test
	@if command -v chromium-headless-shell >/dev/null || command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null || \
	   (apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium-headless-shell >/dev/null)) \
	  || echo "warning: could not install chromium-headless-shell; the report's browser test will be skipped"; \
	else echo "note: install chromium-headless-shell (Debian) for the report's browser test"; fi

# Video lifting runs MediaPipe Hands, which needs numpy<2 (the main env needs
# numpy>=2): it gets its own environment, and `hop-data lift` runs its worker
# there, exchanging only .hoi.npz files. The source tree is put on its PYTHONPATH.
LIFT_VENV  ?= .venv-lift
LIFT_STAMP := $(LIFT_VENV)/.installed-mediapipe-0.10.21
lift-env: $(LIFT_STAMP)
$(LIFT_STAMP):
	test -x $(LIFT_VENV)/bin/python || $(PYTHON) -m venv $(LIFT_VENV)
	$(LIFT_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LIFT_VENV)/bin/python -m pip install --quiet "mediapipe==0.10.21" "numpy<2" opencv-python-headless pyyaml tqdm
	touch $@

# synthetic human videos -> retargeted robot trajectories (simulator in the loop,
# on an embedded loopback Ray) -> store -> a rendered episode -> short pretraining
DEMO_VIDEOS   ?= 4
DEMO_ATTEMPTS ?= 64
demo: install
	$(BIN)/hop-data synth --out $(OUT)/hoi --videos $(DEMO_VIDEOS) --seed 0
	$(BIN)/hop-data generate $(OUT)/hoi --store $(OUT)/store.zarr --attempts $(DEMO_ATTEMPTS) --seed 0
	$(BIN)/hop-data info $(OUT)/store.zarr
	$(BIN)/hop-data render $(OUT)/store.zarr --episode 0 --hoi $(OUT)/hoi --out $(OUT)/episode0.mp4
	@$(MAKE) --no-print-directory pretrain

# Short CPU pretraining on the demo store (generated first if missing):
# checkpoints and logs under out/pretrain, the exported policy at out/pretrain/policy.pt.
# The paper's recipe: hop-train fit --config configs/pretrain_full.yaml --data.store DATA
PRETRAIN_CONFIG ?= configs/pretrain.yaml
PRETRAIN_ARGS   ?=
pretrain: install
	@if [ ! -f $(OUT)/store.zarr/zarr.json ]; then \
	  $(BIN)/hop-data synth --out $(OUT)/hoi --videos $(DEMO_VIDEOS) --seed 0 && \
	  $(BIN)/hop-data generate $(OUT)/hoi --store $(OUT)/store.zarr --attempts $(DEMO_ATTEMPTS) --seed 0; \
	fi
	$(BIN)/hop-train fit --config $(PRETRAIN_CONFIG) --data.store $(OUT)/store.zarr $(PRETRAIN_ARGS)

test: install lift-env
	$(BIN)/python -m pytest -q tests
	@$(MAKE) --no-print-directory test-signals
	@$(MAKE) --no-print-directory experiment-smoke

# The robot loop's and the service faults' tests again with SIGINT ignored, as nohup, a
# background job or a CI runner may start them: they must not depend on the inherited
# disposition (the service's supervisor forwards only the signals it was not told to ignore).
test-signals: install
	$(BIN)/python -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])' \
	  $(BIN)/python -m pytest -q tests/test_robot_loop.py tests/test_service_faults.py

# The paper's claims on this stack (docs/experiment.md). Resumable: run it again after a kill.
# CPU scale (<= 2 h here): run files under results/cpu/, report in docs/results.md.
experiment: install
	$(BIN)/python -m hop_train.experiment run --config experiments/cpu.yaml
	$(BIN)/python -m hop_train.experiment report --config experiments/cpu.yaml

# The same protocol with longer BC (~3.5 h here): results/cpu-long/, docs/results-cpu-long.md.
experiment-long: install
	$(BIN)/python -m hop_train.experiment run --config experiments/cpu_long.yaml
	$(BIN)/python -m hop_train.experiment report --config experiments/cpu_long.yaml

# Every stage at toy size (checks the pipeline, not the numbers); part of make test.
experiment-smoke: install
	rm -rf out/experiment/smoke out/experiment/results/smoke
	$(BIN)/python -m hop_train.experiment run --config experiments/smoke.yaml
	$(BIN)/python -m hop_train.experiment report --config experiments/smoke.yaml

bench: install lift-env
	@for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf out .pytest_cache
