"""Consistency checks of deploy/kubernetes beyond the API schemas that
kubernetes-validate checks each resource against, and `polyscale config`
on the environment each Deployment's container gets.

Usage: check_kubernetes.py DIR POLYSCALE_BINARY

No cluster and no kustomize binary are needed: the kustomization is read
here as kustomize would read it (resources, secretGenerator), and every
reference between resources is resolved by name.
"""
import os
import re
import subprocess
import sys

import yaml

directory, polyscale = sys.argv[1], sys.argv[2]
errors = []


def fail(message):
    errors.append(message)


def read_env_file(path):
    values = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                values[key] = value
    return values


kustomization = yaml.safe_load(open(os.path.join(directory, "kustomization.yaml")))
listed = kustomization["resources"]
on_disk = sorted(
    f for f in os.listdir(directory) if f.endswith(".yaml") and f != "kustomization.yaml"
)
for name in listed:
    if not os.path.exists(os.path.join(directory, name)):
        fail(f"kustomization.yaml lists {name}, which does not exist")
for name in on_disk:
    if name not in listed:
        fail(f"{name} is not listed in kustomization.yaml: kubectl apply -k would skip it")

# Secrets come from the generator: keys files by base name, and the
# database env file, checked through its committed example.
secrets = {}
for generator in kustomization.get("secretGenerator", []):
    keys = {}
    for f in generator.get("files", []):
        keys[os.path.basename(f)] = "dummy"
    for f in generator.get("envs", []):
        example = os.path.join(directory, f + ".example")
        if not os.path.exists(example):
            fail(f"secretGenerator {generator['name']}: {f}.example is missing")
            continue
        keys.update(read_env_file(example))
    secrets[generator["name"]] = keys
generated_files = [f for g in kustomization.get("secretGenerator", []) for f in g.get("files", [])]
ignored = open(os.path.join(directory, ".gitignore")).read()
for f in generated_files + [e for g in kustomization.get("secretGenerator", []) for e in g.get("envs", [])]:
    top = "/" + f.split("/")[0] + ("/" if "/" in f else "")
    if top not in ignored.split():
        fail(f"{f} holds secrets but deploy/kubernetes/.gitignore does not ignore {top}")

resources = []
for name in listed:
    for doc in yaml.safe_load_all(open(os.path.join(directory, name))):
        if doc:
            resources.append((name, doc))
by_kind = {}
for name, doc in resources:
    by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = (name, doc)
config_maps = {n: d.get("data", {}) for n, (_, d) in by_kind.get("ConfigMap", {}).items()}
services = {n: d for n, (_, d) in by_kind.get("Service", {}).items()}


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


checked = 0
for deployment_name, (file, deployment) in by_kind.get("Deployment", {}).items():
    where = f"{file}: Deployment {deployment_name}"
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    if not selects(deployment["spec"]["selector"]["matchLabels"], labels):
        fail(f"{where}: its selector does not match its pod labels")
    pod = template["spec"]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for container in pod["containers"]:
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            port = container.get(probe, {}).get("httpGet", {}).get("port")
            if port is None:
                fail(f"{where}: no {probe}")
            elif port not in ports:
                fail(f"{where}: {probe} port {port} is not a container port")

        # The files the secret volumes put where.
        mounted = set()
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"])
            if volume is None:
                fail(f"{where}: mounts volume {mount['name']}, which is not declared")
                continue
            if "secret" in volume:
                secret = volume["secret"]["secretName"]
                if secret not in secrets:
                    fail(f"{where}: volume {mount['name']} names secret {secret}, which nothing generates")
                    continue
                for item in volume["secret"].get("items", []):
                    if item["key"] not in secrets[secret]:
                        fail(f"{where}: secret {secret} has no key {item['key']}")
                    mounted.add(os.path.join(mount["mountPath"], item["path"]))

        env = {}
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef", {}).get("name")
            if ref not in config_maps:
                fail(f"{where}: envFrom names ConfigMap {ref}, which does not exist")
                continue
            env.update({k: str(v) for k, v in config_maps[ref].items()})
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = str(var["value"])
                continue
            ref = var["valueFrom"]["secretKeyRef"]
            value = secrets.get(ref["name"], {}).get(ref["key"])
            if value is None:
                fail(f"{where}: {var['name']} names key {ref['key']} of secret {ref['name']}, which does not exist")
                continue
            env[var["name"]] = value
        for key, value in env.items():
            if key.endswith("_FILE") and value.startswith("/keys/") and value not in mounted:
                fail(f"{where}: {key} is {value}, which no secret volume mounts")
        for key, value in env.items():
            if key.startswith("POLYSCALE_SERVICES__") and key != "POLYSCALE_SERVICES__REPLICAS" and value.startswith("dns:///"):
                host, _, port = value[len("dns:///"):].rpartition(":")
                service = services.get(host)
                if service is None:
                    fail(f"{where}: {key} follows {host}, which is no Service")
                elif service["spec"].get("clusterIP") != "None":
                    fail(f"{where}: {key} follows Service {host}, which is not headless: one pod would get every call of a connection")
                elif int(port) not in [p["port"] for p in service["spec"]["ports"]]:
                    fail(f"{where}: {key}: Service {host} has no port {port}")

        # `serve --services X` runs X: what `--set services.run=X` sets.
        args = container.get("args", [])
        role = [f"--set=services.run={args[args.index('--services') + 1]}"] if "--services" in args else []
        run = subprocess.run([polyscale, "config", *role], env={"PATH": os.environ["PATH"], **env},
                             capture_output=True, text=True)
        if run.returncode != 0:
            fail(f"{where}: polyscale refuses its configuration:\n{run.stderr}")
        checked += 1

    # Whatever points at this Deployment.
    for service_name, service in services.items():
        if selects(service["spec"]["selector"], labels):
            for port in service["spec"]["ports"]:
                target = port.get("targetPort")
                names = [p["name"] for c in pod["containers"] for p in c.get("ports", [])]
                if isinstance(target, str) and target not in names:
                    fail(f"Service {service_name}: targetPort {target} is not a port of Deployment {deployment_name}")
    if not any(selects(s["spec"]["selector"], labels) for s in services.values()):
        fail(f"{where}: no Service selects its pods")
    hpas = [d for _, d in by_kind.get("HorizontalPodAutoscaler", {}).values()
            if d["spec"]["scaleTargetRef"]["name"] == deployment_name]
    if not hpas:
        fail(f"{where}: no HorizontalPodAutoscaler")
    for hpa in hpas:
        if hpa["spec"]["minReplicas"] < 2:
            fail(f"{where}: the autoscaler may scale it to one replica")
        for c in pod["containers"]:
            if "cpu" not in c.get("resources", {}).get("requests", {}):
                fail(f"{where}: CPU utilisation needs a CPU request")
    if not any(selects(d["spec"]["selector"]["matchLabels"], labels)
               for _, d in by_kind.get("PodDisruptionBudget", {}).values()):
        fail(f"{where}: no PodDisruptionBudget")

for name, (file, hpa) in by_kind.get("HorizontalPodAutoscaler", {}).items():
    if hpa["spec"]["scaleTargetRef"]["name"] not in by_kind.get("Deployment", {}):
        fail(f"{file}: HorizontalPodAutoscaler {name} scales a Deployment that does not exist")

if checked == 0:
    fail("no Deployment found to check")
if errors:
    sys.exit("deploy/kubernetes:\n  " + "\n  ".join(errors))
print(f"deploy/validate.sh: deploy/kubernetes consistent; {checked} Deployments' configuration accepted")
