#!/usr/bin/env python3
"""Offline checks of the Helm chart, run by .ci/chart.

  check_chart.py manifests -k 1.30.0 [-k …] RENDERED.yaml…
      Validates every rendered object against the Kubernetes OpenAPI schemas of each version
      (kubernetes-validate, strict: unknown fields are errors). An object without a schema fails,
      except the CRD kinds listed in CRD_KINDS, which have none offline. Then checks what schemas
      cannot see: selectors that select the pods, port names that exist, the ServiceMonitor's
      Service, Secret keys that are referenced, the termination grace against the drain, the
      security settings.

  check_chart.py smoke --gateway BIN RENDERED.yaml…
      Runs the gateway binary with each rendered Deployment's environment, as the pod would get it
      (Secret values from the rendered Secret, or fixtures for existing Secrets; the Redis URL
      replaced by a local redis-server; ports moved to free ones, hosts kept). Checks that it
      starts, answers /healthz and /readyz on the client port and /metrics where the chart
      scrapes it, and on SIGTERM ends an open stream with a retry: and exits within
      GATEWAY_SHUTDOWN_GRACE.

  check_chart.py docs CHART_DIR README.md
      Every key of values.yaml has a row, with its default, in the chart README's values table,
      and the repository README carries the same table.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
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
        objs = [o for o in yaml.safe_load_all(Path(file).read_text()) if o]
        named = [(f"{file}: {o.get('kind')} {o.get('metadata', {}).get('name')}", o) for o in objs]
        validate_schemas(named, args.kube_version)
        check_semantics(file, objs)
        kinds = sorted({o["kind"] for o in objs})
        print(f"  {Path(file).name}: {len(objs)} objects ({', '.join(kinds)}) against Kubernetes {', '.join(args.kube_version)}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def mint(env: dict, hs_secret: str | None, rsa_key: Path | None) -> str:
    """A token granting everything, signed the way the pod's key expects."""
    claims = {"sub": "smoke", "exp": int(time.time()) + 600, "subscribe": ["*"], "publish": ["*"]}
    if env.get("GATEWAY_JWT_ISSUER"):
        claims["iss"] = env["GATEWAY_JWT_ISSUER"]
    if env.get("GATEWAY_JWT_AUDIENCE"):
        claims["aud"] = env["GATEWAY_JWT_AUDIENCE"]
    alg = "HS256" if hs_secret else "RS256"
    signing_input = f"{b64url(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{b64url(json.dumps(claims).encode())}".encode()
    if hs_secret:
        signature = hmac.new(hs_secret.encode(), signing_input, hashlib.sha256).digest()
    else:
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(rsa_key)], input=signing_input, capture_output=True, check=True).stdout
    return f"{signing_input.decode()}.{b64url(signature)}"


def http_get(url: str, timeout: float = 2) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def smoke_one(file: str, gateway: str, known: set[str], redis_url: str, tmp: Path) -> None:
    name = Path(file).name
    objs = [o for o in yaml.safe_load_all(Path(file).read_text()) if o]
    (dep,) = [o for o in objs if o["kind"] == "Deployment"]
    spec = dep["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    rendered = {s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()} for s in objs if s["kind"] == "Secret"}
    rsa_key = None

    def secret_value(ref: dict, var: str) -> str:
        if ref["name"] in rendered:
            return rendered[ref["name"]][ref["key"]]
        # An existing Secret: a fixture of the kind the variable needs.
        if var == "GATEWAY_JWT_SECRET":
            return secrets.token_hex(24)
        if var == "GATEWAY_REDIS_URL":
            return redis_url
        raise SystemExit(f"{name}: no fixture for {var} from Secret {ref['name']}")

    env = {"PATH": os.environ.get("PATH", "")}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            env[var["name"]] = secret_value(var["valueFrom"]["secretKeyRef"], var["name"])
    # The gateway ignores variables it does not know: a misspelt one would pass unnoticed.
    for var in env:
        if var.startswith("GATEWAY_") and var not in known:
            error(name, f"sets {var}, which `gateway --help` does not list")
    if any(p["name"] == "metrics" for p in container.get("ports", [])) and "GATEWAY_METRICS_ADDR" not in env:
        error(name, "declares a metrics port but does not set GATEWAY_METRICS_ADDR")
    # Redis hosts of the values do not exist here: the local server stands in (same variable).
    if "GATEWAY_REDIS_URL" in env:
        env["GATEWAY_REDIS_URL"] = redis_url
    # Mounted Secret files: the rendered Secret's value, or a generated RSA public key.
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        vol = volumes[mount["name"]]["secret"]
        for item in vol.get("items", []):
            target = tmp / mount["mountPath"].lstrip("/") / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            if vol["secretName"] in rendered:
                target.write_text(rendered[vol["secretName"]][item["key"]])
            else:
                rsa_key = tmp / "fixture-rsa.pem"
                subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", str(rsa_key)], check=True, capture_output=True)
                subprocess.run(["openssl", "pkey", "-in", str(rsa_key), "-pubout", "-out", str(target)], check=True, capture_output=True)
        for var, value in env.items():
            if var == "GATEWAY_JWT_PUBLIC_KEY" and value.startswith(mount["mountPath"]):
                env[var] = str(tmp / value.lstrip("/"))
    # The chart's ports may be taken on this machine: free ones, with the rendered host part.
    addrs = {}
    for var in ("GATEWAY_LISTEN_ADDR", "GATEWAY_METRICS_ADDR"):
        if var in env:
            host = env[var].rsplit(":", 1)[0]
            env[var] = f"{host}:{free_port()}"
            addrs[var] = f"http://{'[::1]' if host.startswith('[') else '127.0.0.1'}:{env[var].rsplit(':', 1)[1]}"
    base = addrs["GATEWAY_LISTEN_ADDR"]
    grace = int(env["GATEWAY_SHUTDOWN_GRACE"].rstrip("s"))

    proc = subprocess.Popen([gateway], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True).start()
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                time.sleep(0.2)
                raise SmokeError(f"exited with {proc.returncode} at start")
            try:
                if http_get(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SmokeError("/readyz never answered 200")
            time.sleep(0.1)
        if http_get(f"{base}/healthz")[0] != 200:
            raise SmokeError("/healthz is not 200")
        metrics_base = addrs.get("GATEWAY_METRICS_ADDR", base)
        status, body = http_get(f"{metrics_base}/metrics")
        if status != 200 or "sse_gateway_connections_open" not in body:
            raise SmokeError(f"/metrics at {metrics_base} answered {status}")
        if metrics_base != base and http_get(f"{base}/metrics")[0] != 404:
            raise SmokeError("/metrics is still served on the client port")

        if "GATEWAY_JWT_SECRET" in env:
            token = mint(env, env["GATEWAY_JWT_SECRET"], None)
        elif rsa_key:
            token = mint(env, None, rsa_key)
        elif "GATEWAY_JWT_PUBLIC_KEY" in env:
            token = None  # a public key given as a value: its private half is nobody's here
        else:
            banner = "".join(output)
            match = re.search(r"Subscribe:.*Bearer ([\w.-]+)", banner)
            if not match:
                raise SmokeError("demo mode printed no subscribe token")
            token = match.group(1)
        stream = None
        if token:
            req = urllib.request.Request(f"{base}/events?topic=smoke", headers={"Authorization": f"Bearer {token}"})
            stream = urllib.request.urlopen(req, timeout=grace + 5)
            if not stream.readline().startswith(b"retry:"):
                raise SmokeError("the stream did not start with retry:")
            stream.readline()

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        last_retry = None
        if stream:
            for line in iter(stream.readline, b""):
                if line.startswith(b"retry:"):
                    last_retry = line.decode().strip()
            if last_retry is None:
                raise SmokeError("the stream ended without a last retry:")
        ended = time.monotonic() - started
        try:
            code = proc.wait(timeout=grace + 3)
        except subprocess.TimeoutExpired:
            raise SmokeError(f"still running {grace + 3} s after SIGTERM (GATEWAY_SHUTDOWN_GRACE {grace}s)")
        if code != 0:
            raise SmokeError(f"exited with {code} after SIGTERM")
        took = time.monotonic() - started
        what = f"stream ended with '{last_retry}' {ended:.1f} s after SIGTERM" if stream else "no stream (no signing key here)"
        print(f"  {name}: ready; /metrics on {'its own port' if metrics_base != base else 'the client port'}; {what}; exited 0 in {took:.1f} s (grace {grace} s)")
    except (SmokeError, OSError) as e:
        error(name, f"{e}\n    gateway output:\n" + "".join("      " + line for line in output[-20:]))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class SmokeError(Exception):
    pass


def smoke(args: argparse.Namespace) -> None:
    help_text = subprocess.run([args.gateway, "--help"], capture_output=True, text=True, check=True).stdout
    known = set(re.findall(r"\[env: (GATEWAY_[A-Z_]+)", help_text))
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        try:
            for _ in range(50):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            for i, file in enumerate(args.files):
                work = Path(tmp) / str(i)
                work.mkdir()
                smoke_one(file, args.gateway, known, f"redis://127.0.0.1:{port}/0", work)
        finally:
            redis.terminate()
            redis.wait()


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
    chart_table, rows = table_rows((chart / "README.md").read_text(), where)
    for extra in set(rows) - documented(values, rows, where):
        error(where, f"the values table documents {extra}, which values.yaml does not have")
    readme_table = table_rows(Path(args.readme).read_text(), args.readme)[0]
    if chart_table and readme_table and readme_table != chart_table:
        error(args.readme, f"its values table differs from {where}'s (copy it over)")
    if not errors:
        print(f"  {len(rows)} rows document values.yaml; {args.readme} carries the same table")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("manifests")
    m.add_argument("-k", "--kube-version", action="append", required=True)
    m.add_argument("files", nargs="+")
    r = sub.add_parser("smoke")
    r.add_argument("--gateway", required=True)
    r.add_argument("files", nargs="+")
    d = sub.add_parser("docs")
    d.add_argument("chart")
    d.add_argument("readme")
    args = parser.parse_args()
    {"manifests": manifests, "smoke": smoke, "docs": docs}[args.command](args)
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
