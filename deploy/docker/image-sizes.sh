#!/usr/bin/env bash
# Build every image of deploy/docker/ and print its size, for CI (needs a Docker engine; BuildKit
# is the default builder of current Docker).
#
#   deploy/docker/image-sizes.sh [TAG]          # TAG defaults to "sizes"
#   IMAGE_SIZE_LIMIT_MIB=1500 deploy/docker/image-sizes.sh   # also fail when an image is larger
#
# Build logs go to stderr; stdout is one line per image: name, bytes, MiB (the uncompressed size
# that `docker image inspect --format '{{.Size}}'` reports).
set -euo pipefail

here="${BASH_SOURCE[0]%/*}"
cd "$here/../.."

if ! command -v docker >/dev/null 2>&1; then
    echo "image-sizes.sh: docker not found on PATH" >&2
    exit 2
fi
if ! docker info >/dev/null 2>&1; then
    echo "image-sizes.sh: no Docker engine reachable (docker info failed)" >&2
    exit 2
fi

tag="${1:-sizes}"
images=(api worker dashboard mlflow lambda)

for image in "${images[@]}"; do
    echo "building retain-${image}:${tag} from deploy/docker/${image}.Dockerfile" >&2
    docker build --file "deploy/docker/${image}.Dockerfile" --tag "retain-${image}:${tag}" . >&2
done

status=0
printf '%-18s %14s %8s\n' image bytes MiB
for image in "${images[@]}"; do
    bytes="$(docker image inspect --format '{{.Size}}' "retain-${image}:${tag}")"
    mib=$((bytes / 1024 / 1024))
    printf '%-18s %14s %8s\n' "retain-${image}" "$bytes" "$mib"
    if [[ -n "${IMAGE_SIZE_LIMIT_MIB:-}" && "$mib" -gt "$IMAGE_SIZE_LIMIT_MIB" ]]; then
        echo "image-sizes.sh: retain-${image} is ${mib} MiB, over IMAGE_SIZE_LIMIT_MIB=${IMAGE_SIZE_LIMIT_MIB}" >&2
        status=1
    fi
done
exit "$status"
