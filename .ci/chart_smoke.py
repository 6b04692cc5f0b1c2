#!/usr/bin/env python3
"""Runs the gateway binary with each rendered Deployment's environment, as the pod would get it;
run by .ci/chart --gateway BIN.

  chart_smoke.py --gateway BIN RENDERED.yaml…

Secret values come from the rendered Secret, or from fixtures for existing Secrets; the Redis URL
is replaced by a local redis-server; ports move to free ones, hosts kept. The gateway must know
every GATEWAY_ variable set, start, answer /healthz and /readyz on the client port and /metrics
where the chart scrapes it, and on SIGTERM end an open stream with a retry: and exit within
GATEWAY_SHUTDOWN_GRACE.
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

errors: list[str] = []


def error(where: str, message: str) -> None:
    errors.append(f"{where}: {message}")


class SmokeError(Exception):
    """The gateway did not do what the rendered Deployment expects of it."""

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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway", required=True)
    parser.add_argument("files", nargs="+")
    smoke(parser.parse_args())
    for e in errors:
        print(f"ERROR {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
