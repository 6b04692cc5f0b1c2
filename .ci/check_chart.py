#!/usr/bin/env python3
"""Offline checks of the Helm chart, run by .ci/chart.

  check_chart.py manifests -k 1.30.0 [-k …] RENDERED.yaml…
      Validates every rendered object against the Kubernetes OpenAPI schemas of each version
      (kubernetes-validate, strict: unknown fields are errors). An object without a schema fails,
      except the CRD kinds listed in CRD_KINDS, which have none offline. Then checks what schemas
      cannot see: selectors that select the pods, port names that exist, the ServiceMonitor's
      Service, Secret keys that are referenced, the termination grace against the drain, the
      security settings.

  check_chart.py docs CHART_DIR
      Every key of values.yaml has a row, with its default, in the chart README's values table
      (the one place the values are described; the repository's docs link to it).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

# Custom resources the chart may render, whose schemas are not part of Kubernetes: skipped by the
# schema validation (and checked below), explicitly and only these.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}

errors: list[str] = []


def error(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


def validate_schemas(objs: list[tuple[str, dict]], versions: list[str]) -> None:
    from kubernetes_validate import utils as kv

    for where, obj in objs:
        if (obj.get("apiVersion"), obj.get("kind")) in CRD_KINDS:
            continue
        for version in versions:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                error(where, f"Kubernetes {e.version}: {path}: {e.message}")
            except kv.SchemaNotFoundError as e:
                error(where, e.message + " (a removed or misspelt apiVersion, or a CRD missing from CRD_KINDS)")


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def check_semantics(where_file: str, objs: list[dict]) -> None:
    by_kind: dict[str, list[dict]] = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], []).append(obj)
    deployments = by_kind.get("Deployment", [])
    if len(deployments) != 1:
        error(where_file, f"expected one Deployment, found {len(deployments)}")
        return
    dep = deployments[0]
    name = dep["metadata"]["name"]
    where = f"{where_file}: Deployment {name}"
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    if not matches(dep["spec"]["selector"]["matchLabels"], pod_labels):
        error(where, "selector does not select its own pod template")
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    env = {}
    for var in container.get("env", []):
        if var["name"] in env:
            error(where, f"env {var['name']} set twice")
        env[var["name"]] = var

    # Probes on named ports that exist; the listeners on the ports the container declares.
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        if get.get("path") != path or get.get("port") not in ports:
            error(where, f"{probe} should GET {path} on a declared port, has {get}")
    for var, port in (("GATEWAY_LISTEN_ADDR", "http"), ("GATEWAY_METRICS_ADDR", "metrics")):
        value = env.get(var, {}).get("value")
        if (value is None) != (port not in ports):
            error(where, f"{var} and the container port {port!r} must come together")
        elif value is not None and int(value.rsplit(":", 1)[1]) != ports[port]:
            error(where, f"{var}={value} but the {port!r} port is {ports[port]}")

    # Draining: the grace counts from the preStop hook and must outlast the gateway's own grace.
    sleep = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace_value = env.get("GATEWAY_SHUTDOWN_GRACE", {}).get("value", "")
    if not re.fullmatch(r"\d+s", grace_value):
        error(where, f"GATEWAY_SHUTDOWN_GRACE should be whole seconds, is {grace_value!r}")
    else:
        needed = sleep + int(grace_value[:-1]) + 1
        if spec.get("terminationGracePeriodSeconds", 30) < needed:
            error(where, f"terminationGracePeriodSeconds {spec.get('terminationGracePeriodSeconds', 'unset (30)')} < preStop {sleep} s + grace {grace_value} + 1 s")

    # Security: non-root, read-only root filesystem, no escalation, no capabilities, seccomp.
    psc, csc = spec.get("securityContext", {}), container.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        error(where, "runAsNonRoot is not set")
    if csc.get("readOnlyRootFilesystem") is not True or csc.get("allowPrivilegeEscalation") is not False:
        error(where, "needs readOnlyRootFilesystem: true and allowPrivilegeEscalation: false")
    if "ALL" not in csc.get("capabilities", {}).get("drop", []):
        error(where, "capabilities should drop ALL")
    seccomp = csc.get("seccompProfile") or psc.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        error(where, "seccompProfile should be RuntimeDefault")

    # Secrets the chart renders: every key the pod reads from them exists.
    secrets = {s["metadata"]["name"]: set(s.get("data", {})) | set(s.get("stringData", {})) for s in by_kind.get("Secret", [])}
    refs = [(v["valueFrom"]["secretKeyRef"]["name"], v["valueFrom"]["secretKeyRef"]["key"]) for v in env.values() if "secretKeyRef" in v.get("valueFrom", {})]
    for vol in spec.get("volumes", []):
        if "secret" in vol:
            refs += [(vol["secret"]["secretName"], item["key"]) for item in vol["secret"].get("items", [])]
    for secret, key in refs:
        if secret in secrets and key not in secrets[secret]:
            error(where, f"reads key {key!r} of Secret {secret}, which does not hold it")
    public_key = env.get("GATEWAY_JWT_PUBLIC_KEY", {}).get("value")
    if public_key:
        mounts = [m["mountPath"] for m in container.get("volumeMounts", [])]
        if not any(public_key.startswith(m.rstrip("/") + "/") for m in mounts):
            error(where, f"GATEWAY_JWT_PUBLIC_KEY={public_key} is not under a mounted volume")

    # Services select the pods and target declared ports.
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    for svc in services.values():
        w = f"{where_file}: Service {svc['metadata']['name']}"
        if not matches(svc["spec"]["selector"], pod_labels):
            error(w, "selector does not select the pods")
        for p in svc["spec"]["ports"]:
            if p["targetPort"] not in ports:
                error(w, f"targetPort {p['targetPort']!r} is not a container port")

    for ing in by_kind.get("Ingress", []):
        w = f"{where_file}: Ingress {ing['metadata']['name']}"
        for rule in ing["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                svc = services.get(backend["name"])
                if svc is None or backend["port"].get("name") not in {p["name"] for p in svc["spec"]["ports"]}:
                    error(w, f"backend {backend} is not a rendered Service port")

    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        if hpa["spec"]["scaleTargetRef"] != {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}:
            error(f"{where_file}: HPA", f"scaleTargetRef {hpa['spec']['scaleTargetRef']} is not the Deployment")
        if "replicas" in dep["spec"]:
            error(where, "sets replicas while an HPA scales it (every upgrade would reset the count)")

    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not matches(pdb["spec"]["selector"]["matchLabels"], pod_labels):
            error(f"{where_file}: PDB", "selector does not select the pods")

    for tsc in spec.get("topologySpreadConstraints", []):
        if not matches(tsc.get("labelSelector", {}).get("matchLabels", {}), pod_labels):
            error(where, f"topology spread on {tsc['topologyKey']} does not count these pods")

    # The ServiceMonitor selects exactly one rendered Service, in the release namespace, by a port
    # name that Service has.
    for sm in by_kind.get("ServiceMonitor", []):
        w = f"{where_file}: ServiceMonitor {sm['metadata']['name']}"
        if set(sm) - {"apiVersion", "kind", "metadata", "spec"} or set(sm["spec"]) - {"selector", "namespaceSelector", "endpoints", "jobLabel"}:
            error(w, "unexpected fields")
        selected = [s for s in services.values() if matches(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
        if len(selected) != 1:
            error(w, f"selects {len(selected)} Services, expected 1")
            continue
        if selected[0]["metadata"]["namespace"] not in sm["spec"].get("namespaceSelector", {}).get("matchNames", []):
            error(w, "namespaceSelector does not name the Service's namespace")
        for ep in sm["spec"]["endpoints"]:
            if ep.get("port") not in {p["name"] for p in selected[0]["spec"]["ports"]} or ep.get("path") != "/metrics":
                error(w, f"endpoint {ep} is not /metrics on a port of {selected[0]['metadata']['name']}")
            if set(ep) - {"port", "path", "interval", "scrapeTimeout", "relabelings", "metricRelabelings"}:
                error(w, f"unexpected endpoint fields {sorted(set(ep))}")


def manifests(args: argparse.Namespace) -> None:
    for file in args.files:
        name = Path(file).name
        objs = [o for o in yaml.safe_load_all(Path(file).read_text()) if o]
        named = [(f"{name}: {o.get('kind')} {o.get('metadata', {}).get('name')}", o) for o in objs]
        validate_schemas(named, args.kube_version)
        check_semantics(name, objs)
        kinds = sorted({o["kind"] for o in objs})
        print(f"  {name}: {len(objs)} objects ({', '.join(kinds)}) against Kubernetes {', '.join(args.kube_version)}")


def table_rows(text: str, where: str) -> tuple[str, dict[str, str]]:
    """The `| key | default | what |` table: its text, and default cells by key."""
    m = re.search(r"^\| key \| default \| what \|\n\|[-| ]+\|\n(?:\|.*\|\n)+", text, re.M)
    if not m:
        error(where, "no values table (| key | default | what |)")
        return "", {}
    rows = {}
    for line in m.group(0).splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells[1].strip("`")
    return m.group(0), rows


def shown(value) -> str:
    """A default as the table shows it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if value == "":
        return '""'
    if value in ([], {}):
        return json.dumps(value)
    return str(value)


def documented(values: dict, rows: dict[str, str], where: str, prefix: str = "") -> set[str]:
    """Every key of values.yaml has a row, or a parent row documents it as a whole (a non-empty
    map or list, whose default cell may summarise it); scalar and empty defaults must match."""
    seen = set()
    for key, value in values.items():
        path = prefix + key
        if path in rows:
            seen.add(path)
            if not (isinstance(value, (dict, list)) and value) and rows[path] != shown(value):
                error(where, f"{path}: the table says {rows[path]}, values.yaml has {shown(value)}")
        elif isinstance(value, dict) and value:
            seen |= documented(value, rows, where, path + ".")
        else:
            error(where, f"the values table has no row for {path}")
    return seen


def docs(args: argparse.Namespace) -> None:
    chart = Path(args.chart)
    where = f"{chart}/README.md"
    values = yaml.safe_load((chart / "values.yaml").read_text())
    _, rows = table_rows((chart / "README.md").read_text(), where)
    for extra in set(rows) - documented(values, rows, where):
        error(where, f"the values table documents {extra}, which values.yaml does not have")
    if not errors:
        print(f"  {len(rows)} rows of {where} document values.yaml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("manifests")
    m.add_argument("-k", "--kube-version", action="append", required=True)
    m.add_argument("files", nargs="+")
    d = sub.add_parser("docs")
    d.add_argument("chart")
    args = parser.parse_args()
    {"manifests": manifests, "docs": docs}[args.command](args)
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
