#!/usr/bin/env bash
# The VS Code extension (editors/vscode): its TextMate grammar tests (vscode-tmgrammar-test) and
# its .vsix build (@vscode/vsce), with the npm packages pinned in package-lock.json.
# Called by scripts/test.sh; .ci/run installs Node.js and npm from Debian's packages when absent.
set -euo pipefail
cd "$(dirname "$0")/../editors/vscode"
if ! command -v npm >/dev/null 2>&1; then
  echo "SKIPPED: VS Code extension checks: npm is not installed (apt-get install nodejs npm)" >&2
  exit 0
fi
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
npm ci --silent --ignore-scripts  # no install scripts: packaging needs none (vsce-sign is for signing)
npm test
rm -f camlang.vsix
npm run --silent package >/dev/null
python3 - <<'PY'
import zipfile
names = set(zipfile.ZipFile("camlang.vsix").namelist())
need = {"extension/extension.js", "extension/syntaxes/cam.tmLanguage.json", "extension/language-configuration.json",
        "extension/node_modules/vscode-languageclient/node.js"}
missing = need - names
assert not missing, f"camlang.vsix lacks {sorted(missing)}"
PY
echo "editors/vscode: grammar tests passed, camlang.vsix built ($(du -k camlang.vsix | cut -f1) KiB)"
