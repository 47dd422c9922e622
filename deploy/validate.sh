#!/usr/bin/env bash
# Offline checks of the deployment files (no Docker engine, no cluster):
# docker-compose.yml parses as a Compose file; every Kubernetes manifest
# under deploy/kubernetes passes kubernetes-validate --strict (the API
# schemas, unknown fields refused) and deploy/check_kubernetes.py (the
# references between resources); and every PolyScale container's
# environment, in both, is a configuration the binary accepts for its role
# (`polyscale config` refuses unknown POLYSCALE_* keys and invalid values).
# Usage: deploy/validate.sh [path/to/polyscale]
set -euo pipefail
cd "$(dirname "$0")/.."
polyscale="${1:-${CARGO_TARGET_DIR:-target}/debug/polyscale}"

if ! command -v docker-compose >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
fi
docker-compose -f docker-compose.yml config -q
resolved="$(docker-compose -f docker-compose.yml config)"

/usr/bin/python3 - "$polyscale" "$resolved" <<'PY'
import os, subprocess, sys, yaml
polyscale, resolved = sys.argv[1], yaml.safe_load(sys.argv[2])
checked = 0
for name, service in resolved["services"].items():
    if service.get("image") != "polyscale:local":
        continue
    env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
    args = [a for a in (service.get("command") or [])]
    # `serve --services X` and `gateway` read the same configuration; the
    # keys service runs no server.
    if not args or args[0] not in ("serve", "gateway"):
        continue
    # `serve --services X` runs X: what `--set services.run=X` sets.
    role = [f"--set=services.run={args[args.index('--services') + 1]}"] if "--services" in args else []
    run = subprocess.run([polyscale, "config", *role], env={"PATH": os.environ["PATH"], **env},
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"docker-compose.yml: service {name}: polyscale refuses its configuration:\n{run.stderr}")
    checked += 1
if checked == 0:
    sys.exit("docker-compose.yml: no PolyScale server found to check")
print(f"deploy/validate.sh: docker-compose.yml valid; {checked} PolyScale services' configuration accepted")
PY

# kubernetes-validate (PyPI) in a virtualenv of its own, made once.
tools="${XDG_CACHE_HOME:-$HOME/.cache}/polyscale/deploy-tools"
if [ ! -x "$tools/bin/kubernetes-validate" ]; then
  if ! /usr/bin/python3 -m venv --help >/dev/null 2>&1 || ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
  fi
  rm -rf "$tools"
  /usr/bin/python3 -m venv "$tools"
  "$tools/bin/pip" install -q kubernetes-validate
fi
manifests=()
for f in deploy/kubernetes/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
"$tools/bin/kubernetes-validate" --strict --quiet "${manifests[@]}"
echo "deploy/validate.sh: ${#manifests[@]} Kubernetes manifest files valid (kubernetes-validate --strict)"
/usr/bin/python3 deploy/check_kubernetes.py deploy/kubernetes "$polyscale"
