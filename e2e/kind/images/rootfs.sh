#!/usr/bin/env bash
# A Debian root filesystem made by debootstrap and imported into Docker as an image (run by e2e/kind/images.py,
# which tags the image with a hash of this file and of its arguments).
#
#   bash rootfs.sh TAG LABEL SUITE MIRROR PACKAGES WORKDIR
#     TAG       image name to import as (a temporary name: images.py renames it once this script succeeded)
#     LABEL     a key=value label for the image (images.py's cache key)
#     SUITE     Debian suite (bookworm)           MIRROR    Debian archive URL
#     PACKAGES  comma-separated, added to debootstrap's minbase variant
#     WORKDIR   an empty directory for the root filesystem (removed by images.py)
set -euo pipefail
[[ $# -eq 6 ]] || { echo "usage: rootfs.sh TAG LABEL SUITE MIRROR PACKAGES WORKDIR" >&2; exit 2; }
tag=$1 label=$2 suite=$3 mirror=$4 packages=$5 root="$6/root"

debootstrap --variant=minbase --include="${packages}" "${suite}" "${root}" "${mirror}"
# The downloaded packages and the index files: apt-get update fetches them again when an image needs them.
find "${root}/var/cache/apt/archives" "${root}/var/lib/apt/lists" -maxdepth 1 -type f -delete
# pipefail: a failed tar fails the script even when docker import took the partial stream.
tar -C "${root}" -c . | docker import --change "LABEL ${label}" - "${tag}"
