#!/usr/bin/env bash
# Builds the three OCI images with no container daemon, as root on Debian (what `make image` runs):
#
#   mediaingest         API, operator and worker: Debian's Python, our ffmpeg, the `server` extra's wheels
#   mediaingest-stage   what `mediaingest run-stage` needs: the same Python and ffmpeg, the core wheels only
#   mediaingest-speech  the stage image plus one layer, the `transcribe` extra's wheels and model, for the
#                       transcript stage's Jobs only (~300 MB that no other stage pulls)
#
# Inputs are pinned: Debian packages at the versions in worker-image/debian-*.lock, ffmpeg's Debian source
# package at the version in worker-image/ffmpeg-source.lock built with worker-image/ffmpeg-configure.flags,
# and Python wheels at the versions in constraints.txt. Nothing runs in a container: mmdebstrap makes the
# root filesystems, ffmpeg compiles in a chroot of the build one, and umoci writes the OCI layout.
#
#   worker-image/build.sh            build (reuses the ffmpeg build while its inputs are unchanged)
#   worker-image/build.sh --relock   resolve the Debian packages afresh and rewrite the lock files
#
# Output in $IMAGE_DIR (default .cache/image): oci/ (one layout, the images as tags, shared layers
# stored once), <image>.packages.txt (dpkg and pip, with versions) and <image>.digest, beside it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE=$ROOT/worker-image
IMAGE_DIR=${IMAGE_DIR:-$ROOT/.cache/image}
SUITE=${SUITE:-bookworm}
JOBS=${JOBS:-$(nproc)}
PIP=${PIP:-} # default: a pip of its own, in a virtualenv under $IMAGE_DIR (never the system's)
# The machine's own apt sources: the images come from the same archive as the machine's packages.
APT_SOURCES=${APT_SOURCES:-$( [ -f /etc/apt/sources.list.d/debian.sources ] && echo /etc/apt/sources.list.d/debian.sources || echo /etc/apt/sources.list)}
# Fixed timestamps, so the same inputs give the same layer digests: each layer's files are dated by the
# last commit that changed its inputs (a code change leaves the Debian and ffmpeg layers as they were).
epoch_of() { # <path>... relative to the repository
	local when
	when=$(git -C "$ROOT" log -1 --format=%ct -- "$@" 2>/dev/null || true)
	echo "${when:-1700000000}"
}
DEBIAN_EPOCH=$(epoch_of worker-image/debian-runtime.lock worker-image/debian-runtime.packages worker-image/build.sh)
FFMPEG_EPOCH=$(epoch_of worker-image/ffmpeg-configure.flags worker-image/ffmpeg-source.lock worker-image/debian-build.lock worker-image/build-ffmpeg.sh)
PYTHON_EPOCH=$(epoch_of constraints.txt pyproject.toml worker-image/install-python.sh)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(epoch_of .)}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml")
UID_GID=10001
PYVER=3.11
VENV=/opt/venv
SITE=$VENV/lib/python$PYVER/site-packages

RELOCK=0
[ "${1:-}" = "--relock" ] && RELOCK=1

log() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'build.sh: %s\n' "$*" >&2; exit 1; }

for tool in mmdebstrap umoci dpkg-source apt-get tar sha256sum; do
	command -v "$tool" >/dev/null || die "$tool is missing (apt-get install mmdebstrap umoci dpkg-dev)"
done
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, chroot)"
mkdir -p "$IMAGE_DIR"

# Lock files: one `package=version` a line. The names come from the .packages files beside them.
packages_of() { grep -v '^\s*#' "$1" | tr -s ' \n' '\n' | grep -v '^$' | paste -sd, -; }
pins_of() { grep -v '^#' "$1" | paste -sd, -; }

# mmdebstrap of a lock (or, with --relock or no lock yet, of the names), then a check that what it
# installed is exactly the lock: a rebuild gets the same packages or stops.
debian_rootfs() { # <variant> <names file> <lock file> <target dir> [mmdebstrap options...]
	local variant=$1 names=$2 lock=$3 target=$4
	shift 4
	local include
	if [ "$RELOCK" = 1 ] || [ ! -s "$lock" ]; then include=$(packages_of "$names"); else include=$(pins_of "$lock"); fi
	rm -rf "$target"
	mmdebstrap --quiet --variant="$variant" --include="$include" "$@" "$SUITE" "$target" "$APT_SOURCES" >&2
	local installed
	installed=$(chroot "$target" dpkg-query -W -f '${Package}=${Version}\n' | LC_ALL=C sort)
	if [ "$RELOCK" = 1 ] || [ ! -s "$lock" ]; then
		{ echo "# $(basename "$lock"): written by worker-image/build.sh --relock from $(basename "$names"); do not edit."
			echo "$installed"; } >"$lock"
		log "wrote $lock ($(echo "$installed" | wc -l) packages)"
	elif ! diff <(grep -v '^#' "$lock") <(echo "$installed") >&2; then
		die "$target differs from $lock (above); the archive moved on: run make image-relock and review the diff"
	fi
}

# --- ffmpeg, from Debian's source package ------------------------------------------------------------
FFMPEG_SOURCE=$(grep -v '^#' "$HERE/ffmpeg-source.lock" | head -1) # e.g. ffmpeg=5.1.9-0+deb12u1
FLAGS=$(grep -v '^\s*#' "$HERE/ffmpeg-configure.flags" | grep -v '^\s*$' | tr '\n' ' ')
# The build is kept under a name made of its inputs, and reused while they stay the same.
ffmpeg_out() { echo "$IMAGE_DIR/ffmpeg-$(cat "$HERE/ffmpeg-configure.flags" "$HERE/ffmpeg-source.lock" "$HERE/debian-build.lock" 2>/dev/null | sha256sum | cut -c1-16)"; }

# apt with a private state folder whose only entries are deb-src twins of the machine's sources.
apt_source() { # <dir> <package=version>
	local state=$IMAGE_DIR/apt-src
	mkdir -p "$state/lists/partial"
	case $APT_SOURCES in
	*.sources) sed 's/^Types:.*/Types: deb-src/' "$APT_SOURCES" >"$state/deb-src.sources" ;;
	*) grep '^deb ' "$APT_SOURCES" | sed 's/^deb /deb-src /' >"$state/deb-src.list" ;;
	esac
	local opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$state" -o "Dir::State::Lists=$state/lists"
		-o "APT::Sandbox::User=root")
	apt-get "${opts[@]}" -qq update
	(cd "$1" && apt-get "${opts[@]}" -qq source --download-only "$2")
}

build_ffmpeg() {
	FFMPEG_OUT=$(ffmpeg_out)
	if [ -x "$FFMPEG_OUT/usr/local/bin/ffmpeg" ] && [ "$RELOCK" = 0 ]; then
		log "ffmpeg: reusing $FFMPEG_OUT"
		return
	fi
	local buildroot=$IMAGE_DIR/build-root
	log "ffmpeg: build root (mmdebstrap, debian-build.lock)"
	debian_rootfs apt "$HERE/debian-build.packages" "$HERE/debian-build.lock" "$buildroot"
	log "ffmpeg: source $FFMPEG_SOURCE"
	local src=$buildroot/build
	mkdir -p "$src"
	apt_source "$src" "$FFMPEG_SOURCE"
	(cd "$src" && dpkg-source --no-check -x ./*.dsc ffmpeg >&2) # apt checked the .dsc against the signed index
	log "ffmpeg: configure + make -j$JOBS (a few minutes)"
	cp "$HERE/build-ffmpeg.sh" "$HERE/ffmpeg-configure.flags" "$src/"
	chroot "$buildroot" /bin/sh /build/build-ffmpeg.sh /build/ffmpeg /build/ffmpeg-configure.flags /build/dest "$JOBS" \
		|| die "ffmpeg build failed: see $src/ffmpeg/*.log"
	FFMPEG_OUT=$(ffmpeg_out) # the lock may be new
	rm -rf "$FFMPEG_OUT.tmp" && mkdir -p "$FFMPEG_OUT.tmp/usr/local"
	cp -a "$src/dest/usr/local/." "$FFMPEG_OUT.tmp/usr/local/"
	cp "$src/ffmpeg/configure.log" "$FFMPEG_OUT.configure.log"
	rm -rf "$FFMPEG_OUT" && mv "$FFMPEG_OUT.tmp" "$FFMPEG_OUT"
	rm -rf "$buildroot"
	# Builds from other inputs are not used again.
	find "$IMAGE_DIR" -maxdepth 1 -name 'ffmpeg-*' ! -name "$(basename "$FFMPEG_OUT")*" -exec rm -rf {} +
}

# --- Layers ---------------------------------------------------------------------------------------------
# Each layer is a folder packed by one deterministic tar; the images share the first two.
LAYERS=$IMAGE_DIR/layers
pack() { # <folder> <layer tar> <epoch>
	tar --create --file "$2" --directory "$1" --sort=name --format=posix --numeric-owner --owner=0 --group=0 \
		--mtime="@$3" --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime .
}

# 1. Debian: the essential set (no apt: nothing installs packages at run time), Python, the codec libraries.
debian_layer() {
	local rootfs=$LAYERS/debian
	log "debian: mmdebstrap (debian-runtime.lock)"
	# Documentation, manuals and translations are never read in a container; copyright files stay. glibc's
	# iconv modules (8 MB) neither: Python has its own codecs, and UTF-8 and Latin-1 are built into glibc.
	# The merged-usr hook marks /usr merged with usr-is-merged; without it apt picks usrmerge, and perl (45 MB).
	SOURCE_DATE_EPOCH=$DEBIAN_EPOCH debian_rootfs essential "$HERE/debian-runtime.packages" "$HERE/debian-runtime.lock" "$rootfs" \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
		--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
		--dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*' \
		--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
		--customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/* "$1"/var/lib/apt/lists/*'
	# The Jobs' user (the operator's runAsUser), and the mount points the pods use.
	echo "mediaingest:x:$UID_GID:" >>"$rootfs/etc/group"
	echo "mediaingest:x:$UID_GID:$UID_GID:mediaingest:/tmp:/usr/sbin/nologin" >>"$rootfs/etc/passwd"
	echo "mediaingest:!:0::::::" >>"$rootfs/etc/shadow"
	mkdir -p "$rootfs/scratch" "$rootfs/app"
	# Runtimes mount /dev themselves; device nodes have no place in a layer.
	rm -rf "${rootfs:?}"/dev/*
	chroot "$rootfs" dpkg-query -W -f '${Package}=${Version}\n' | LC_ALL=C sort >"$LAYERS/debian.dpkg"
}

# 2. ffmpeg, and the loader cache that lists its libraries.
ffmpeg_layer() {
	local layer=$LAYERS/ffmpeg
	rm -rf "$layer" && mkdir -p "$layer/etc" "$layer/usr"
	cp -a "$FFMPEG_OUT/usr/local" "$layer/usr/"
	cp -a "$layer/usr/local/." "$LAYERS/debian/usr/local/" # a scratch copy, for ldconfig to see both
	ldconfig -r "$LAYERS/debian" -C /ffmpeg-ld.so.cache
	mv "$LAYERS/debian/ffmpeg-ld.so.cache" "$layer/etc/ld.so.cache"
	rm -f "$LAYERS/debian/var/cache/ldconfig/aux-cache" # inode numbers and times: never the same twice
	# ffmpeg runs with the two layers' loader cache (then the Debian layer gets its own back).
	cp -p "$LAYERS/debian/etc/ld.so.cache" "$LAYERS/debian-ld.so.cache"
	cp "$layer/etc/ld.so.cache" "$LAYERS/debian/etc/ld.so.cache"
	chroot "$LAYERS/debian" /usr/local/bin/ffmpeg -hide_banner -version | head -1 >&2
	mv "$LAYERS/debian-ld.so.cache" "$LAYERS/debian/etc/ld.so.cache"
	# Undo the scratch copy: the Debian layer is packed as mmdebstrap made it.
	(cd "$layer/usr/local" && find . -mindepth 1 -depth) | while read -r path; do
		rm -df "$LAYERS/debian/usr/local/$path" 2>/dev/null || true
	done
}

# 3 and 4. Python: the virtualenv's packages, and our own package in a layer of its own (a code change
# rebuilds only that); install-python.sh says how.
python_layers() { # <image> <requirement>
	local image=$1 requirement=$2 deps=$LAYERS/$1-python app=$LAYERS/$1-app
	log "$image: wheels for $requirement"
	rm -rf "$deps" "$app"
	PIP="$PIP" "$HERE/install-python.sh" "$deps" "$app" "$ROOT/constraints.txt" "$requirement"
	(cd "$deps$SITE" && $PIP list --path . --format=freeze 2>/dev/null) >"$LAYERS/$image.pip"
}

# 5. The speech image's one layer of its own: the `transcribe` extra installed over the core wheels, less every
# file the stage image's Python layer already has (the same pinned wheels, so the same bytes: checked).
speech_layer() {
	local layer=$LAYERS/mediaingest-speech-python stage=$LAYERS/mediaingest-stage-python path
	python_layers mediaingest-speech "$1"
	rm -rf "$LAYERS/mediaingest-speech-app" # the stage image's app layer is shared
	while IFS= read -r -d '' path; do
		if [ -L "$stage/$path" ]; then
			[ "$(readlink "$stage/$path")" = "$(readlink "$layer/$path")" ]
		else
			cmp -s "$stage/$path" "$layer/$path"
		fi || die "$path differs between the stage and the speech installs"
		rm -f "$layer/$path"
	done < <(cd "$stage" && find . ! -type d -print0)
	find "$layer" -mindepth 1 -depth -type d -empty -delete
}

main_app_files() {
	local app=$LAYERS/mediaingest-app
	mkdir -p "$app/app"
	cp "$ROOT/alembic.ini" "$app/app/"
	cp -r "$ROOT/migrations" "$app/app/"
	find "$app/app" -name __pycache__ -prune -exec rm -rf {} +
}

# --- OCI ------------------------------------------------------------------------------------------------
OCI=$IMAGE_DIR/oci
CREATED=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
ENV_VARS=(
	"PATH=$VENV/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 HOME=/tmp DATA_DIR=/tmp/mediaingest
	FFMPEG_PATH=/usr/local/bin/ffmpeg FFPROBE_PATH=/usr/local/bin/ffprobe
)

oci_image() { # <image> <workdir> <command, comma-separated> <layer>...
	local image=$1 workdir=$2 cmd=() word
	IFS=, read -r -a cmd <<<"$3"
	shift 3
	umoci new --image "$OCI:$image"
	local layer
	for layer in "$@"; do
		umoci raw add-layer --image "$OCI:$image" --history.created="$CREATED" \
			--history.created_by="worker-image/build.sh: $(basename "$layer" .tar)" "$layer"
	done
	local config_args=()
	for word in "${ENV_VARS[@]}"; do config_args+=(--config.env "$word"); done
	for word in "${cmd[@]}"; do config_args+=(--config.cmd "$word"); done
	umoci config --image "$OCI:$image" --created "$CREATED" --author mediaingest --os linux --architecture amd64 \
		--history.created="$CREATED" --history.created_by="worker-image/build.sh: config" \
		--config.user "$UID_GID:$UID_GID" --config.workingdir "$workdir" "${config_args[@]}" \
		--config.label "org.opencontainers.image.title=$image" --config.label "org.opencontainers.image.version=$VERSION"
}

main() {
	local started=$SECONDS
	build_ffmpeg
	mkdir -p "$LAYERS"
	debian_layer
	ffmpeg_layer
	if [ -z "$PIP" ]; then
		[ -x "$IMAGE_DIR/pip/bin/pip" ] || { python3 -m venv "$IMAGE_DIR/pip" && "$IMAGE_DIR/pip/bin/pip" install -q --upgrade pip; }
		PIP=$IMAGE_DIR/pip/bin/pip
	fi
	log "mediaingest wheel"
	# From a copy of what the package is made of: building in the work tree leaves build/ behind, whose
	# stale files would reach the next wheel.
	rm -rf "$IMAGE_DIR/wheel" "$IMAGE_DIR/package" && mkdir -p "$IMAGE_DIR/package"
	cp -r "$ROOT/pyproject.toml" "$ROOT/README.md" "$ROOT/src" "$IMAGE_DIR/package/"
	find "$IMAGE_DIR/package" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
	$PIP wheel --quiet --no-deps --wheel-dir "$IMAGE_DIR/wheel" "$IMAGE_DIR/package" >&2
	local wheel
	wheel=$(ls "$IMAGE_DIR"/wheel/mediaingest-*.whl)
	python_layers mediaingest "$wheel[server]"
	main_app_files
	python_layers mediaingest-stage "$wheel"
	speech_layer "$wheel[transcribe]"

	log "packing layers"
	pack "$LAYERS/debian" "$LAYERS/debian.tar" "$DEBIAN_EPOCH"
	pack "$LAYERS/ffmpeg" "$LAYERS/ffmpeg.tar" "$FFMPEG_EPOCH"
	local image
	for image in mediaingest mediaingest-stage; do
		pack "$LAYERS/$image-python" "$LAYERS/$image-python.tar" "$PYTHON_EPOCH"
		pack "$LAYERS/$image-app" "$LAYERS/$image-app.tar" "$SOURCE_DATE_EPOCH"
	done
	pack "$LAYERS/mediaingest-speech-python" "$LAYERS/mediaingest-speech-python.tar" "$PYTHON_EPOCH"
	rm -rf "$OCI" && umoci init --layout "$OCI"
	oci_image mediaingest /app mediaingest,serve,--host,0.0.0.0,--port,8000 \
		"$LAYERS"/{debian,ffmpeg,mediaingest-python,mediaingest-app}.tar
	oci_image mediaingest-stage /tmp mediaingest,--help \
		"$LAYERS"/{debian,ffmpeg,mediaingest-stage-python,mediaingest-stage-app}.tar
	oci_image mediaingest-speech /tmp mediaingest,--help \
		"$LAYERS"/{debian,ffmpeg,mediaingest-stage-python,mediaingest-stage-app,mediaingest-speech-python}.tar
	umoci gc --layout "$OCI"
	for image in mediaingest mediaingest-stage mediaingest-speech; do
		{ echo "# $image $VERSION: Debian packages (dpkg)"; cat "$LAYERS/debian.dpkg"
			echo "# Python packages (pip)"; cat "$LAYERS/$image.pip"; } >"$IMAGE_DIR/$image.packages.txt"
	done
	python3 "$HERE/oci_report.py" "$OCI" "$LAYERS" mediaingest mediaingest-stage mediaingest-speech
	log "built in $((SECONDS - started)) s; the OCI layout is $OCI (podman/skopeo: oci:$OCI:mediaingest)"
}

if [ "${BUILD_ONLY:-}" = ffmpeg ]; then build_ffmpeg; exit 0; fi
main
