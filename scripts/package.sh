#!/usr/bin/env bash
# Build herald's Debian package (.deb) with CPack.
#   scripts/package.sh                 configure build-pkg/ for /usr, build, package; prints the .deb's path
#   scripts/package.sh --build-dir D   use D instead of build-pkg/
#   scripts/package.sh --out DIR       put the .deb in DIR (default: the build directory)
# The build is configured with CMAKE_INSTALL_PREFIX=/usr (the binary's default
# plugin_dir is fixed then) and HERALD_SYSTEMD=ON (the unit is Type=notify).
# Dependencies come from dpkg-shlibdeps. Install it with
#   apt-get install ./build-pkg/herald_<version>_<arch>.deb
set -euo pipefail
. "$(dirname "$0")/lib.sh"

dir=build-pkg
out=
while [ $# -gt 0 ]; do
    case "$1" in
        --build-dir) dir=${2:?--build-dir needs a directory}; shift 2 ;;
        --out) out=${2:?--out needs a directory}; shift 2 ;;
        -h|--help) sed -n '2,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "package.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

cd "$HERALD_ROOT"
for tool in dpkg-deb dpkg-shlibdeps fakeroot; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh installs dpkg-dev and fakeroot)"
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
# A package has no tests to build, and never a sanitizer.
if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
        -DHERALD_SYSTEMD=ON -DHERALD_SANITIZE= -DBUILD_TESTING=OFF >"$log" 2>&1; then
    cat "$log" >&2
    die "cmake configure failed"
fi
cmake --build "$dir" -j 2 --target herald heraldctl outbox webhook email_sendgrid sms_twilio email_smtp >"$log" 2>&1 ||
    { cat "$log" >&2; die "build failed"; }
# cpack as root would record root-owned files anyway; fakeroot keeps a
# non-root run's package owned by root too.
(cd "$dir" && fakeroot cpack -G DEB >"$log" 2>&1) || { cat "$log" >&2; die "cpack failed"; }
deb=$(ls -t "$dir"/herald_*.deb | head -1)
[ -f "$deb" ] || die "cpack wrote no .deb under $dir"
if [ -n "$out" ]; then
    mkdir -p "$out"
    cp "$deb" "$out/"
    deb="$out/$(basename "$deb")"
fi
echo "$deb"
