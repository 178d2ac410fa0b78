# Two entry points: `make demo` and `make test`. Both create .venv when missing and install what lfa needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.lfa-installed
PIP    := $(BIN)/python -m pip -q --disable-pip-version-check --no-cache-dir

.PHONY: demo test install models bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# torch is pinned to the CPU build (a looser spec pulls the multi-GB CUDA build).
# mediapipe 1.2.2 pins opencv-contrib and sounddevice that lfa does not use: install it --no-deps;
# the dependencies it really imports are in pyproject.toml.
$(STAMP): pyproject.toml Makefile | $(BIN)/python
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps mediapipe==1.2.2
	$(PIP) install -e '.[test]'
	$(BIN)/python -c "import lfa.cli, mediapipe.tasks.python.vision, dlib, cv2, av, torch, onnxruntime, skimage, faster_whisper, silero_vad, openai"
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/lfa models fetch

demo: models
	$(BIN)/lfa demo --out out/demo

test: models
	$(BIN)/python -m pytest -q --durations=20

bench: models
	$(BIN)/python bench/faces.py

clean:
	rm -rf $(VENV) out .pytest_cache
