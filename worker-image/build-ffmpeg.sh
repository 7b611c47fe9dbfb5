#!/bin/sh
# Configures, builds and installs ffmpeg from an unpacked Debian source package with the flags in
# ffmpeg-configure.flags; the images' ffmpeg layer is <dest>/usr/local/{bin,lib}. Run by build.sh
# (in a chroot of the build root) and by the Dockerfile, so both build the same ffmpeg.
#   build-ffmpeg.sh <source dir> <flags file> <dest dir> <jobs>
set -eu
src=$1 flags=$2 dest=$3 jobs=$4
cd "$src"
# shellcheck disable=SC2046  # one flag a line, no spaces inside
./configure $(grep -v '^[[:space:]]*#' "$flags" | grep -v '^[[:space:]]*$') >configure.log
make -j"$jobs" >make.log 2>&1 || { tail -40 make.log >&2; exit 1; }
make install DESTDIR="$dest" >install.log
# The images run the programs and load the libraries; headers, pkg-config files, examples are for builds.
rm -rf "$dest/usr/local/include" "$dest/usr/local/lib/pkgconfig" "$dest/usr/local/share"
