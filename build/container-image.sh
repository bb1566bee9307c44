#!/usr/bin/env bash
# Builds the vethtrace container image without a registry (issue 18):
#   1. the base image: a minimal Debian 12 root made by `debootstrap --variant=minbase --include=libpcap0.8 bookworm`
#      from a Debian mirror (the Native AOT executable needs glibc, and libpcap when a capture starts), trimmed of
#      documentation and apt's caches, and `docker import`ed as vethtrace/debian-minbase:bookworm. Built once: an
#      existing base image is reused (--rebuild-base makes it again);
#   2. the Native AOT executable: `dotnet publish src/VethTrace.Cli -c Release` for this machine, or --binary FILE;
#   3. build/container/Dockerfile: FROM the base image, the executable as /usr/local/bin/vethtrace, the entry point.
# Needs: root (debootstrap), debootstrap (apt-get install debootstrap), docker, the .NET SDK and clang unless --binary.
# Usage: build/container-image.sh [--tag TAG] [--binary FILE] [--rebuild-base]     (default tag: vethtrace:VERSION)
#   VETHTRACE_DEBIAN_MIRROR overrides the mirror (default: the first deb.debian.org-style URI apt uses, else
#   http://deb.debian.org/debian).
# Prints the image's tag on the last line of stdout.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1

fail() { echo "container-image.sh: $*" >&2; exit 1; }

tag="" binary="" rebuild_base=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --tag) [[ $# -ge 2 ]] || fail "--tag needs a value"; tag=$2; shift 2 ;;
        --binary) [[ $# -ge 2 ]] || fail "--binary needs a value"; binary=$(realpath "$2"); shift 2 ;;
        --rebuild-base) rebuild_base=1; shift ;;
        -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) fail "unknown argument '$1' (see --help)" ;;
    esac
done

base=vethtrace/debian-minbase:bookworm
project=src/VethTrace.Cli
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$project/VethTrace.Cli.csproj" | head -1)
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
[[ -n $tag ]] || tag="vethtrace:$version"
command -v docker >/dev/null || fail "docker is not installed"
docker info >/dev/null 2>&1 || fail "the Docker daemon does not answer"

work=$(mktemp -d /tmp/vethtrace-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

# 1. The base image.
if [[ $rebuild_base == 1 ]] || ! docker image inspect "$base" >/dev/null 2>&1; then
    [[ $(id -u) == 0 ]] || fail "debootstrap needs root"
    command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
    mirror=${VETHTRACE_DEBIAN_MIRROR:-}
    if [[ -z $mirror ]]; then
        # The mirror apt itself uses for the main archive (deb822 sources or a one-line sources.list).
        mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs: *\(http[^ ]*\/debian\)\/\{0,1\}$/\1/p' | head -1)
        [[ -n $mirror ]] || mirror=$(sed -n 's/^deb \(http[^ ]*\/debian\)\/\{0,1\} .*/\1/p' /etc/apt/sources.list 2>/dev/null | head -1)
        [[ -n $mirror ]] || mirror=http://deb.debian.org/debian
    fi
    echo "container-image.sh: debootstrap minbase bookworm from $mirror" >&2
    debootstrap --variant=minbase --include=libpcap0.8 bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
    # What a capture tool never reads: documentation, translations, apt's package lists and downloaded packages.
    rm -rf "$work"/rootfs/usr/share/{doc,man,info,locale}/* "$work"/rootfs/var/lib/apt/lists/* \
        "$work"/rootfs/var/cache/apt/*.bin "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/log/*
    tar --numeric-owner -C "$work/rootfs" -c . \
        | docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --message "debootstrap --variant=minbase --include=libpcap0.8 bookworm $mirror" - "$base" >/dev/null \
        || fail "docker import failed"
    rm -rf "$work/rootfs"
fi

# 2. The Native AOT executable.
if [[ -z $binary ]]; then
    echo "container-image.sh: dotnet publish (Native AOT)" >&2
    dotnet publish "$project" -c Release -o "$work/publish" -nologo -v quiet -clp:ErrorsOnly >&2 || fail "dotnet publish failed"
    binary=$work/publish/vethtrace
fi
[[ -f $binary ]] || fail "no executable at $binary"
# The AOT executable is one ELF file; a JIT build's apphost would need vethtrace.dll and the .NET runtime beside it.
[[ $(head -c 4 "$binary" | od -An -tx1 | tr -d ' ') == 7f454c46 ]] || fail "$binary is not an ELF executable"
[[ ! -e $(dirname "$binary")/vethtrace.dll ]] || fail "$binary is a JIT build (vethtrace.dll beside it); give the Native AOT one"

# 3. The image.
mkdir -p "$work/context"
cp build/container/Dockerfile "$work/context/Dockerfile"
cp "$binary" "$work/context/vethtrace"
chmod 755 "$work/context/vethtrace"
# The legacy builder: Debian's docker.io has no buildx, and a Dockerfile this simple needs nothing BuildKit adds.
DOCKER_BUILDKIT=0 docker build --build-arg "BASE=$base" --build-arg "VERSION=$version" --build-arg "COMMIT=$commit" \
    -t "$tag" "$work/context" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; fail "docker build failed (log above)"; }
echo "$tag"
