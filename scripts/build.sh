#!/usr/bin/env bash
# build.sh builds the handler for one platform, reproducibly: the same source, Go version (go.mod)
# and VERSION/COMMIT give the same bytes on any machine and in any directory.
#
#   CGO_ENABLED=0        a static binary that needs nothing from the system's C library
#   -trimpath            no paths of the build machine in the binary
#   -buildvcs=false      no VCS state (dirty flag, commit time) read from the checkout: the
#                        version is stamped explicitly instead (-X main.version, main.commit)
#   -buildid=            no build ID, which would otherwise differ with the toolchain's install path
#   GOAMD64/GOARM64      pinned to the baseline, so a setting in the caller's environment
#                        cannot change the instruction set
#
# usage: scripts/build.sh GOOS GOARCH OUTPUT
# VERSION and COMMIT may be set in the environment; they default to git describe / rev-parse.
set -euo pipefail

(($# == 3)) || { echo "usage: scripts/build.sh GOOS GOARCH OUTPUT" >&2; exit 2; }
goos=$1 goarch=$2 out=$3
case $out in
/*) ;;
*) out=$PWD/$out ;;
esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
version=${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)}

echo "build.sh: handler $version ($commit) for $goos/$goarch" >&2
mkdir -p "$(dirname "$out")"
(cd "$root" && env CGO_ENABLED=0 GOOS="$goos" GOARCH="$goarch" GOAMD64=v1 GOARM64=v8.0 GOFLAGS= \
	go build -trimpath -buildvcs=false \
	-ldflags "-s -w -buildid= -X main.version=$version -X main.commit=$commit" -o "$out" .)
chmod 0755 "$out"
