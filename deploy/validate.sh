#!/usr/bin/env bash
# Offline checks of the deployment files (no Docker engine needed):
# docker-compose.yml parses as a Compose file, and every PolyScale
# container's environment is a configuration the binary accepts
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
    run = subprocess.run([polyscale, "config"], env={"PATH": os.environ["PATH"], **env},
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"docker-compose.yml: service {name}: polyscale refuses its configuration:\n{run.stderr}")
    checked += 1
if checked == 0:
    sys.exit("docker-compose.yml: no PolyScale server found to check")
print(f"deploy/validate.sh: docker-compose.yml valid; {checked} PolyScale services' configuration accepted")
PY
