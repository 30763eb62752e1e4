#!/usr/bin/env bash
# Install Fashion-MNIST from Debian's dataset-fashion-mnist package and check its four IDX files.
# The package puts them under /usr/share/datasets/fashion-mnist/, where model.data looks by
# default (python -m quant.evaluate --dataset fashion-mnist needs no --data-dir then).
# Needs apt-get (Debian/Ubuntu) and root or sudo. Safe to run again: it only installs what is missing.
set -euo pipefail

dir=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

# A file counts if it is there as is or gzip-compressed (model.data reads both).
find_file() {
  local f
  for f in "$dir/$1" "$dir/$1.gz"; do
    if [ -f "$f" ]; then echo "$f"; return 0; fi
  done
  return 1
}

all_present() {
  local f
  for f in "${files[@]}"; do find_file "$f" >/dev/null || return 1; done
}

if ! all_present; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "get-fashion-mnist: apt-get not found; this script needs Debian or Ubuntu." >&2
    echo "  Elsewhere, put the four IDX files ($(IFS=,; echo "${files[*]}")) in a folder and pass --data-dir." >&2
    exit 1
  fi
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "get-fashion-mnist: not root and sudo is not installed; run as root: apt-get install dataset-fashion-mnist" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  # Update the package lists only when apt does not know the package yet (a fresh container).
  if ! apt-cache show dataset-fashion-mnist >/dev/null 2>&1; then
    echo "get-fashion-mnist: apt-get update"
    "${sudo[@]}" apt-get update -q
  fi
  echo "get-fashion-mnist: apt-get install dataset-fashion-mnist"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist
fi

missing=0
for f in "${files[@]}"; do
  if p=$(find_file "$f"); then
    echo "  $p ($(stat -c %s "$p") bytes)"
  else
    echo "get-fashion-mnist: $dir/$f (or .gz) is missing after the install" >&2
    missing=1
  fi
done
if [ "$missing" -ne 0 ]; then
  echo "get-fashion-mnist: the package did not provide every file; list it with: dpkg -L dataset-fashion-mnist" >&2
  exit 1
fi
echo "Fashion-MNIST is in $dir (the default of --dataset fashion-mnist)"
