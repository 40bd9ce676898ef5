#!/usr/bin/env bash
# The offline wheelhouse: every wheel the image's pip steps install, downloaded on the host
# under constraints.txt into ./wheelhouse, so that the build itself needs no package index:
#
#   deploy/containers/wheelhouse.sh
#   podman build --build-arg PIP_NO_INDEX=1 -t mnist-serving .     (or docker build)
#
# The Dockerfile bind-mounts ./wheelhouse in its install steps (nothing of it reaches an
# image layer). Wheels are chosen for the host's platform, so run this on Linux x86_64 with
# Python 3.11 (the image's), or set PYTHON to such an interpreter. Binary wheels only: a
# package without one would need a compiler in the build stage.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON="${PYTHON:-python3.11}"
# Downloaded once per machine into a cache outside the checkout, then hard-linked into
# ./wheelhouse (the build context), so a fresh clone (CI) does not download 650 MB again.
CACHE="${WHEELHOUSE_CACHE:-$HOME/.cache/mnist-serving/wheelhouse}"
mkdir -p wheelhouse "$CACHE"
requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
# The image's pins: the serving dependencies, the load extra (the Locust image) and the
# build backend that `pip install .` needs (pyproject's build-system).
"$PYTHON" - >"$requirements" <<'PY'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))
print(*project["project"]["dependencies"], sep="\n")
print(*project["project"]["optional-dependencies"]["load"], sep="\n")
print(*project["build-system"]["requires"], sep="\n")
PY
# pip resolves again even when every wheel is there (minutes for this tree): skip when
# the last complete download was for the same requirements and pins.
stamp="$(cat "$requirements" constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$CACHE/.complete" 2>/dev/null)" != "$stamp" ]; then
  "$PYTHON" -m pip download --quiet --only-binary=:all: --dest "$CACHE" \
    -c constraints.txt -r "$requirements"
  echo "$stamp" >"$CACHE/.complete"
fi
# Hard links where the cache is on the same file system, copies otherwise.
cp -lf "$CACHE"/*.whl wheelhouse/ 2>/dev/null || cp -f "$CACHE"/*.whl wheelhouse/
echo "wheelhouse: $(find wheelhouse -name '*.whl' | wc -l) wheels, $(du -sh wheelhouse | cut -f1)"
