#!/usr/bin/env bash
# Builds the Berth controller image offline (no registry): the Python dependencies are
# installed on the host from PyPI into deploy/.prebuilt, and the image is built FROM the
# local Debian base (berth-test/base:bookworm, see tests/support/images.py).
#   TAG=berth:0.1.0 scripts/build-berth-image.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
TAG="${TAG:-berth:$(.venv/bin/python -c 'import controller; print(controller.__version__)')}"
BASE="${BASE:-berth-test/base:bookworm}"
start=$SECONDS
# The image carries a hash of what it is built from; the same sources are not rebuilt.
SRC_HASH="$(cat pyproject.toml deploy/Dockerfile $(find controller -name '*.py' | sort) | sha256sum | cut -c1-16)"
if [[ -z "${FORCE:-}" ]] && [[ "$(docker image inspect -f '{{index .Config.Labels "berth.source-hash"}}' "$TAG" 2>/dev/null)" == "$SRC_HASH" ]]; then
  echo "$TAG is up to date ($SRC_HASH)"
  exit 0
fi
.venv/bin/python -c 'from tests.support.images import ensure_base_image; ensure_base_image()' >/dev/null
rm -rf deploy/.prebuilt
.venv/bin/pip install -q --no-warn-script-location --ignore-installed --prefix deploy/.prebuilt .
docker build -q -f deploy/Dockerfile --build-arg BASE="$BASE" --build-arg PREBUILT=1 \
  --label "berth.source-hash=$SRC_HASH" -t "$TAG" . >/dev/null
rm -rf deploy/.prebuilt
echo "built $TAG from $BASE in $((SECONDS - start))s"
