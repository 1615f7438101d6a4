# landmark2020: two commands do all setup on a fresh machine: `make demo` and `make test`.
# Both create .venv from the pinned requirements.txt when it is missing (fast no-op when present).
SHELL := /bin/bash
PY    := .venv/bin/python
STAMP := .venv/.installed
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1
PIPQ := 2>&1 | grep -v 'is neither a file nor a directory' ; test $${PIPESTATUS[0]} -eq 0

.PHONY: venv test demo bench bench-scale export outputs check-sync clean help
help:
	@echo "make demo   - build the toy GLDv2 dataset, fine-tune EfficientNet-Lite0, score both tasks, write a report"
	@echo "make test   - check notebooks/library are in sync, then run every notebook and integration test"
	@echo "make bench  - run every bench/ script and write bench/RESULTS.md"
	@echo "make bench-scale - every stage at 1%, 10%, 100% of GLDv2's cardinalities (long; SCALE_ARGS='--scales 0.01,0.1' for the small sizes)"
	@echo "make export - nbdev_export + nbdev_clean (after editing a notebook)"
	@echo "make outputs - run the notebooks and keep the outputs of their short example cells (then commit)"

$(STAMP): requirements.txt constraints.txt settings.ini setup.py
	@test -x $(PY) || python3 -m venv .venv
	@echo "installing the pinned stack into .venv (first run only; about 3-4 minutes)"
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt -c constraints.txt $(PIPQ)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . $(PIPQ)
	@touch $@

venv: $(STAMP)

export: venv
	env -u IN_TEST .venv/bin/nbdev_export && env -u IN_TEST .venv/bin/nbdev_clean

# Fails when nbdev_export or nbdev_clean would change a file: the notebooks are the source of truth.
check-sync: venv
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  before="$$(git status --porcelain; git diff | sha1sum)"; \
	  env -u IN_TEST .venv/bin/nbdev_export && env -u IN_TEST .venv/bin/nbdev_clean || exit 1; \
	  after="$$(git status --porcelain; git diff | sha1sum)"; \
	  if [ "$$before" != "$$after" ]; then \
	    echo "ERROR: running nbdev_export/nbdev_clean changed files:"; git status --porcelain | head -20; \
	    echo "The notebooks in nbs/ are the source of truth: run 'make export' (nbdev_export + nbdev_clean) and commit the result."; \
	    exit 1; fi; \
	  echo "nbdev: library and notebooks are in sync"; \
	else echo "not a git checkout: skipping the sync check"; fi

test: check-sync
	.venv/bin/python -m pytest tests -q -p no:cacheprovider $(PYTEST_ARGS)

# Run the notebooks as `make test` does and keep the short example outputs, so they read as documentation.
outputs: venv
	.venv/bin/python tools/keep_outputs.py $(NBS) && env -u IN_TEST .venv/bin/nbdev_clean

demo: venv
	.venv/bin/lm_demo $(DEMO_ARGS)

bench: venv
	.venv/bin/python bench/run_all.py

# The full-size rehearsal (issue 16): a synthetic GLDv2 at 1%, 10%, 100%; writes its section of bench/RESULTS.md.
bench-scale: venv
	.venv/bin/python bench/scale.py $(SCALE_ARGS)

clean:
	rm -rf build dist *.egg-info _proc _docs .pytest_cache
