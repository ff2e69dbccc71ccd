#!/usr/bin/env bash
# Installs the CUDA tools rlhf-rs needs on a machine with no GPU and no CUDA toolkit: NVRTC (the
# runtime compiler, a shared library), the CUDA runtime headers (cuda_bf16.h and cuda_fp16.h are not
# built into NVRTC) and ptxas (PTX -> cubin, for register and spill reports). All three come from
# NVIDIA's PyPI wheels, which are downloaded (never pip-installed) and unpacked here:
#
#   $RLHF_CUDA_TOOLS, or ${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-rs/cuda-tools when it is unset
#
# Layout of that directory (the runtime's `compile::CudaTools` reads the same paths):
#   nvidia/cuda_nvrtc/lib/libnvrtc.so.12 (+ libnvrtc-builtins.so.12.9, found through its RUNPATH)
#   nvidia/cuda_runtime/include/
#   nvidia/cuda_nvcc/bin/ptxas
#   versions.stamp           the wheel versions installed; when it matches, the script does nothing
#
# The last line printed is the directory. Usage: scripts/setup-cuda-tools.sh
set -euo pipefail

readonly NVRTC_VERSION=12.9.86
readonly RUNTIME_VERSION=12.9.79
readonly NVCC_VERSION=12.9.86

target="${RLHF_CUDA_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/rlhf-rs/cuda-tools}"
stamp_text="nvidia-cuda-nvrtc-cu12==${NVRTC_VERSION}
nvidia-cuda-runtime-cu12==${RUNTIME_VERSION}
nvidia-cuda-nvcc-cu12==${NVCC_VERSION}"

if [[ -f "$target/versions.stamp" ]] && [[ "$(cat "$target/versions.stamp")" == "$stamp_text" ]]; then
    echo "$target"
    exit 0
fi

for tool in python3 unzip; do
    command -v "$tool" >/dev/null || { echo "setup-cuda-tools: '$tool' is required" >&2; exit 1; }
done

mkdir -p "$(dirname "$target")"
# Build beside the target and move it into place at the end, so an interrupted run never leaves a
# half-unpacked directory that looks installed.
staging="$(mktemp -d "${target}.staging.XXXXXX")"
trap 'rm -rf "$staging"' EXIT

echo "setup-cuda-tools: downloading NVIDIA wheels into $staging" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$staging/wheels" \
    "nvidia-cuda-nvrtc-cu12==${NVRTC_VERSION}" \
    "nvidia-cuda-runtime-cu12==${RUNTIME_VERSION}" \
    "nvidia-cuda-nvcc-cu12==${NVCC_VERSION}"

unpack() {
    local package="$1" pattern="$2" wheel
    wheel="$(ls "$staging"/wheels/"${package}"-*.whl)"
    unzip -q -o "$wheel" "$pattern" -d "$staging/root"
}
unpack nvidia_cuda_nvrtc_cu12 'nvidia/cuda_nvrtc/lib/*'
unpack nvidia_cuda_runtime_cu12 'nvidia/cuda_runtime/include/*'
unpack nvidia_cuda_nvcc_cu12 'nvidia/cuda_nvcc/bin/ptxas'
chmod +x "$staging/root/nvidia/cuda_nvcc/bin/ptxas"

for required in nvidia/cuda_nvrtc/lib/libnvrtc.so.12 nvidia/cuda_runtime/include/cuda_bf16.h \
    nvidia/cuda_nvcc/bin/ptxas; do
    [[ -e "$staging/root/$required" ]] || { echo "setup-cuda-tools: $required missing" >&2; exit 1; }
done
"$staging/root/nvidia/cuda_nvcc/bin/ptxas" --version >/dev/null

printf '%s' "$stamp_text" > "$staging/root/versions.stamp"
rm -rf "$target"
mv "$staging/root" "$target"
echo "setup-cuda-tools: installed" >&2
echo "$target"
