#!/usr/bin/env bash
# package.sh builds the deployment package the Azure Functions host expects and zips it:
#
#   handler                    the custom handler for linux/amd64 (scripts/build.sh: static,
#                              reproducible, version stamped)
#   host.json
#   <function>/function.json   one folder per function (every top-level folder with a function.json)
#
# The handler keeps its executable bit in the zip: the host starts it directly, and a handler
# without x permission fails to start on Linux. local.settings.json is never packaged.
#
# The zip is reproducible: entries in a fixed order, without directory entries or extra
# attributes, every file dated SOURCE_DATE_EPOCH (default: the last commit's time) in UTC, with
# fixed modes. Two runs on the same commit give the same bytes (scripts/release-check.sh).
#
# usage: scripts/package.sh [OUTPUT.zip]     (default dist/entra-revoke.zip)
# VERSION and COMMIT may be set in the environment; they default to git describe / rev-parse.
# HANDLER may name an already built linux/amd64 handler to package instead of building one.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root/dist/entra-revoke.zip}
case $out in
/*) ;;
*) out=$PWD/$out ;;
esac
epoch=${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 315532800)}
[[ $epoch =~ ^[0-9]+$ ]] || { echo "package.sh: SOURCE_DATE_EPOCH must be a Unix time" >&2; exit 2; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

[[ -f $root/host.json ]] || { echo "package.sh: $root/host.json is missing" >&2; exit 1; }

if [[ -n ${HANDLER:-} ]]; then
	cp "$HANDLER" "$stage/handler"
else
	"$root/scripts/build.sh" linux amd64 "$stage/handler"
fi
install -m 0644 "$root/host.json" "$stage/host.json"
functions=()
for f in "$root"/*/function.json; do
	[[ -f $f ]] || continue
	name=$(basename "$(dirname "$f")")
	mkdir -p "$stage/$name"
	install -m 0644 "$f" "$stage/$name/function.json"
	functions+=("$name")
done
((${#functions[@]})) || { echo "package.sh: no <function>/function.json under $root" >&2; exit 1; }
chmod 0755 "$stage/handler"

# Fixed order and dates; files only (directories are implied by the paths).
mapfile -t entries < <(cd "$stage" && find . -type f | sed 's|^\./||' | LC_ALL=C sort)
(cd "$stage" && TZ=UTC touch -d "@$epoch" "${entries[@]}")

mkdir -p "$(dirname "$out")"
rm -f "$out"
if command -v zip >/dev/null 2>&1; then
	# -X leaves out uid/gid and extra timestamps, -D directory entries; the Unix mode, which
	# carries the x bit, stays. Zip stores local time: TZ=UTC makes it the same everywhere.
	(cd "$stage" && TZ=UTC zip -q -X -D "$out" "${entries[@]}")
else
	# The same with Python's zipfile: fixed dates and Unix modes, deflate.
	(cd "$stage" && python3 - "$out" "$epoch" "${entries[@]}" <<'EOF'
import os, sys, time, zipfile
out, epoch, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
date = time.gmtime(max(epoch, 315532800))[:6]  # zip dates start in 1980
with zipfile.ZipFile(out, "w") as z:
    for name in names:
        info = zipfile.ZipInfo(name, date_time=date)
        info.create_system = 3  # Unix, so that external_attr carries the mode
        info.external_attr = (os.stat(name).st_mode & 0xFFFF) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(name, "rb") as f:
            z.writestr(info, f.read())
EOF
	)
fi
echo "package.sh: wrote $out (functions: ${functions[*]})" >&2
