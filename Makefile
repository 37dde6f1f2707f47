# One command per job. A fresh machine needs only Python 3.11 and make.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: install system-deps test lint demo bench clean

# Debian packages some tools run: espeak-ng (text to speech), tesseract (OCR), redis-server (shared memory),
# bubblewrap and libseccomp2 (the agents' code sandbox), FreeDict dictionaries (words for the chat model's
# translations, tools/glossary.py): English to and from French, Spanish, German, Italian, Portuguese, Dutch, Polish.
DICTIONARY_LANGUAGES := fra spa deu ita por nld pol
APT_PACKAGES := espeak-ng tesseract-ocr tesseract-ocr-eng redis-server bubblewrap libseccomp2 \
	$(foreach l,$(DICTIONARY_LANGUAGES),dict-freedict-eng-$(l) dict-freedict-$(l)-eng)

system-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing: $$missing"; apt-get update -q && apt-get install -y -q $$missing; \
	fi

$(PY):
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# torch first: a plain `torch` requirement would pull a multi-GB CUDA build (see README, Install).
install: $(PY)
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q -e ".[dev]"

test: install
	$(VENV)/bin/pytest

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

demo: install
	$(VENV)/bin/smolcrew doctor
	$(VENV)/bin/smolcrew run "What is 17*23+5? Use the language specialist if needed."

bench: install
	$(PY) bench/startup.py
	$(PY) bench/llm.py
	$(PY) bench/routing.py
	$(PY) bench/tools.py
	$(PY) bench/memory.py
	$(PY) bench/graph_server.py
	$(PY) bench/rag.py
	$(PY) bench/tasks.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
