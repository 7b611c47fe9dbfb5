#!/bin/sh
# Installs a Python requirement into a virtualenv at /opt/venv under <root>, from wheels only, for
# Debian bookworm's CPython 3.11 on x86_64 (glibc 2.36), at the versions in constraints.txt. Our own
# package goes under <app root> instead, so it can be a layer of its own. Run by build.sh and by the
# Dockerfile, so both install the same files.
#   install-python.sh <root> <app root> <constraints> <requirement>
set -eu
root=$1 app=$2 constraints=$3 requirement=$4
venv=/opt/venv
site=$venv/lib/python3.11/site-packages
pip=${PIP:-python3 -m pip}
platforms="--platform manylinux2014_x86_64"
for v in $(seq 17 36); do platforms="$platforms --platform manylinux_2_${v}_x86_64"; done
mkdir -p "$root$venv/bin" "$app$site" "$app$venv/bin"
# shellcheck disable=SC2086  # word lists
$pip install --quiet --no-compile --no-warn-conflicts --no-warn-script-location --disable-pip-version-check \
	--target "$root$site" --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 $platforms \
	-c "$constraints" "$requirement"
mv "$root$site"/mediaingest "$root$site"/mediaingest-*.dist-info "$app$site/"
rm -rf "$root$site/bin" # console scripts for the installing Python; ours is written below
# Debug symbols are most of some wheels' shared objects (uvloop: 14 MB → 2 MB); nothing reads them. Not the
# libraries auditwheel vendored into <package>.libs/: patchelf rewrote their headers, and strip breaks some
# (numpy's OpenBLAS then fails to load: "ELF load command address/offset not page-aligned"); their builders
# stripped them already (strip took 3 MB off the stage image's and 8.5 MB off the speech image's).
find "$root$site" -name '*.so*' -type f ! -path '*.libs/*' -exec strip --strip-unneeded {} +
# What the images never import (tests/image/test_image_prunes.py checks the reasons still hold): botocore's
# models of AWS services other than S3 and the credential services (STS for IRSA, SSO for profiles; 20 MB).
if [ -d "$root$site/botocore/data" ]; then
	find "$root$site/botocore/data" -mindepth 1 -maxdepth 1 -type d \
		! -name s3 ! -name sso ! -name sso-oidc ! -name sts -exec rm -rf {} +
fi
# The `transcribe` extra's (the speech image): sympy and mpmath (85 MB) come with onnxruntime for its model
# tools, and onnxruntime's transformers/quantization/tools packages are those tools; hf_xet is
# huggingface_hub's downloader. The stage loads a model from a folder and runs the Silero VAD in onnxruntime:
# none of them is imported (tests/image/test_image_prunes.py runs the stage and checks; make image-test runs
# it in the speech image, where they are gone). PyAV stays: faster_whisper/__init__ imports its audio
# module, which imports av, though the stage feeds samples decoded by our ffmpeg.
for pruned in sympy mpmath hf_xet isympy.py onnxruntime/transformers onnxruntime/quantization onnxruntime/tools; do
	rm -rf "$root$site/$pruned"
done
rm -rf "$root$site"/sympy-*.dist-info "$root$site"/mpmath-*.dist-info "$root$site"/hf_xet-*.dist-info
# A virtualenv is a pyvenv.cfg and a python beside it (what `python3 -m venv --without-pip` writes).
printf 'home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n' >"$root$venv/pyvenv.cfg"
ln -sf /usr/bin/python3.11 "$root$venv/bin/python"
ln -sf python "$root$venv/bin/python3"
printf '#!%s/bin/python\nimport sys\n\nfrom mediaingest.cli import main\n\nsys.exit(main())\n' "$venv" >"$app$venv/bin/mediaingest"
chmod 755 "$app$venv/bin/mediaingest"
