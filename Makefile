# The README's two commands: `make demo` (the main job) and `make test` (the test suite).
PYTHON ?= python3
# Debian packages emoji-XTD is built from (Noto Color Emoji, CLDR annotations; raqm/fribidi for Pillow's layout);
# Noto CJK and Noto core draw the captions of the report's gallery and search's contact sheet: Chinese, Japanese,
# Korean, and the other scripts of emoji-XTD's 109 languages (Malayalam, Bengali, Ethiopic, Cherokee …).
SYSTEM_PACKAGES = fonts-noto-color-emoji fonts-noto-cjk fonts-noto-core unicode-cldr-core libraqm0

.PHONY: install system-deps demo test

system-deps:
	@# Installed, not merely known: `dpkg -s` also succeeds for a removed package whose config files remain.
	@missing=$$(for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	  [ -z "$$missing" ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; }
	@# npm fetches v2's Twemoji (npm pack emoji-datasource-twitter@16.0.0). Any npm will do: a NodeSource nodejs ships its own, and Debian's
	@# npm package conflicts with it, so the command is checked rather than the package.
	@command -v npm >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }

# CLIP_benchmark for tests/test_openclip.py: only its metrics module is used, which needs torch and tqdm;
# --no-deps keeps out what the rest of it pulls in (open_clip, scikit-learn, pycocoevalcap, webdataset pins).
CLIP_BENCHMARK = clip-benchmark==1.6.2

# Last, the check `import mlilt` makes: torch must be the one torchvision was built for (one line with the fix if not).
install:
	$(PYTHON) -m pip install -q -e '.[dev]'
	$(PYTHON) -m pip install -q --no-deps $(CLIP_BENCHMARK)
	@$(PYTHON) -c 'import sys; sys.tracebacklimit = 0; import mlilt'

demo: system-deps install
	$(PYTHON) recipes/emoji_xtd_pipeline.py

test: system-deps install
	$(PYTHON) -m pytest -q
