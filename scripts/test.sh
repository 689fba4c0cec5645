#!/usr/bin/env bash
# The test command: lint, type-check, the VS Code extension, the docs site, then the whole test suite. Exit code 5 (no tests) fails.
set -euo pipefail
cd "$(dirname "$0")/.."
ruff check camlang
ruff format --check camlang tests benchmarks scripts
mypy camlang
bash scripts/test_vscode.sh
site_dir="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 python -m mkdocs build --strict --quiet --site-dir "$site_dir"  # the docs site
rm -rf "$site_dir"
# hypothesis's "ci" profile (tests/conftest.py): derandomized, so a run is reproducible
export CI="${CI:-1}"
set +e
python -m pytest -q -p no:cacheprovider --durations=15 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "no tests were collected" >&2
  exit 5
fi
exit "$status"
