#!/usr/bin/env bash
# A stand-in for python:3.11-slim-bookworm, for building where no image registry is
# reachable: a Debian bookworm root filesystem from Debian's own packages (debootstrap,
# minbase), imported as an image. Bookworm's Python is 3.11, as in the upstream image; the
# upstream image stays the Dockerfile's default and the one to use wherever it can be pulled.
#
#   deploy/containers/base-image.sh [IMAGE]        (default localhost/mnist-base:bookworm)
#
# Needs root, debootstrap and podman (or docker: ENGINE=docker). Reuses the image if it
# exists already; REBUILD=1 makes it again.
set -euo pipefail

IMAGE="${1:-localhost/mnist-base:bookworm}"
ENGINE="${ENGINE:-podman}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

if [ "${REBUILD:-0}" != 1 ] && "$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "base image $IMAGE already there"
  exit 0
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
# python3-venv for `python -m venv` (ensurepip); python-is-python3 for the `python` command
# the official image has; ca-certificates for pip over HTTPS when the build is online.
debootstrap --variant=minbase \
  --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$root" "$MIRROR" >/dev/null
# What an image does not need: the package caches and lists debootstrap leaves behind.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
  "$root"/usr/share/man/* "$root"/usr/share/locale/*
tar -C "$root" -c . | "$ENGINE" import --quiet \
  --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' - "$IMAGE" >/dev/null
echo "base image $IMAGE: $("$ENGINE" run --rm "$IMAGE" python --version 2>&1)"
