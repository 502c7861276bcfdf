#!/usr/bin/env python3
"""The cluster stand-in: a small k3s application cluster, as Hubplane's hubs see it.

It serves three capability interfaces (deployments, nodes, costs) under their own
path prefixes on one HTTPS listener, a freeze action, and a control API that lets
tests simulate contract drift, slowness, degradation and hostile redirects.
Python 3 standard library only. Start it with start.sh; see README.md.

    server.py --dir DIR --port PORT --cert FILE --key FILE
              [--host ADDR] [--token-file FILE] [--contract [NAME=]FILE]... [--tick SECONDS]
"""

import argparse
import datetime
import hashlib
import hmac
import http.server
import json
import os
import re
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

CAPABILITIES = ("deployments", "nodes", "costs")
MAX_BODY = 64 * 1024
MAX_DELAY_MS = 600_000
NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,255}$")
MAX_REASON = 1000

# --------------------------------------------------------------------------
# The cluster's contents. Everything below depends only on the "tick"
# (floor(unix time / tick seconds)), so two polls within one tick see the
# same bytes and a poll in the next tick may see a new observation.
# --------------------------------------------------------------------------

DEPLOYMENTS = [
    # name, namespace, image, desired replicas
    ("web", "shop", "registry.example.com/shop/web:1.42.0", 3),
    ("api", "shop", "registry.example.com/shop/api:1.42.0", 2),
    ("worker", "payments", "registry.example.com/payments/worker:3.7.1", 2),
    ("ledger", "payments", "registry.example.com/payments/ledger:3.7.1", 1),
    ("prometheus", "monitoring", "registry.example.com/monitoring/prometheus:2.53.0", 1),
    ("coredns", "kube-system", "registry.example.com/kube-system/coredns:1.11.3", 1),
]

NODES = [
    # name, role, cpu millicores, memory bytes, cpu base %, memory base %
    ("k3s-server-1", "control-plane", 4000, 8 * 1024**3, 35, 55),
    ("k3s-agent-1", "worker", 8000, 16 * 1024**3, 50, 60),
    ("k3s-agent-2", "worker", 8000, 16 * 1024**3, 65, 72),
]
KUBELET_VERSION = "v1.30.4+k3s1"

MONTHLY_COSTS = [
    # namespace, EUR per month
    ("shop", 412.50),
    ("payments", 287.00),
    ("monitoring", 96.40),
    ("kube-system", 41.10),
]
PRESSURE_PERCENT = 85


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def deployment_ready(tick, index, desired):
    # One replica short every fourth tick, staggered per deployment.
    return desired - 1 if (tick + index) % 4 == 0 else desired


def deployments_status(tick, tick_seconds, frozen):
    items = []
    for index, (name, namespace, image, desired) in enumerate(DEPLOYMENTS):
        ready = deployment_ready(tick, index, desired)
        changed = tick
        for _ in range(8):
            if deployment_ready(changed - 1, index, desired) != ready:
                break
            changed -= 1
        items.append({
            "name": name,
            "namespace": namespace,
            "image": image,
            "replicas": {"desired": desired, "ready": ready},
            "frozen": namespace in frozen,
            "updated_at": iso(changed * tick_seconds),
        })
    return {"as_of": iso(tick * tick_seconds), "generation": tick, "deployments": items}


def nodes_status(tick, tick_seconds):
    items = []
    for index, (name, role, cpu_m, mem_b, cpu_base, mem_base) in enumerate(NODES):
        cpu_pct = min(99, cpu_base + (tick * 7 + index * 13) % 30)
        mem_pct = min(99, mem_base + (tick * 5 + index * 11) % 20)
        # The second agent drops out for one tick in twelve.
        ready = not (role == "worker" and index == 2 and tick % 12 == 11)
        items.append({
            "name": name,
            "role": role,
            "ready": ready,
            "kubelet_version": KUBELET_VERSION,
            "cpu": {
                "capacity_millicores": cpu_m,
                "usage_millicores": cpu_m * cpu_pct // 100,
                "usage_percent": cpu_pct,
                "pressure": cpu_pct >= PRESSURE_PERCENT,
            },
            "memory": {
                "capacity_bytes": mem_b,
                "usage_bytes": mem_b * mem_pct // 100,
                "usage_percent": mem_pct,
                "pressure": mem_pct >= PRESSURE_PERCENT,
            },
            "updated_at": iso(tick * tick_seconds),
        })
    return {"as_of": iso(tick * tick_seconds), "generation": tick, "nodes": items}


def costs_status(tick, tick_seconds):
    now = datetime.datetime.fromtimestamp(tick * tick_seconds, datetime.timezone.utc)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    nxt = (start + datetime.timedelta(days=32)).replace(day=1)
    elapsed = (now - start).total_seconds() / (nxt - start).total_seconds()
    items = [{
        "namespace": namespace,
        "month_to_date": round(rate * elapsed, 2),
        "forecast": rate,
    } for namespace, rate in MONTHLY_COSTS]
    return {
        "as_of": iso(tick * tick_seconds),
        "generation": tick,
        "month": start.strftime("%Y-%m"),
        "currency": "EUR",
        "namespaces": items,
        "total_month_to_date": round(sum(i["month_to_date"] for i in items), 2),
    }


# --------------------------------------------------------------------------
# The built-in contracts (OpenAPI 3.1). Serialised once, with sorted keys, so
# their bytes (and sha256) are the same at every start.
# --------------------------------------------------------------------------

def _error_responses(*codes):
    text = {
        "400": "Bad request: the body is not what the operation takes.",
        "401": "No bearer token.",
        "403": "Wrong bearer token.",
        "409": "Idempotency-Key reused with another body.",
        "413": "Body too large.",
        "503": "The cluster is degraded.",
    }
    return {c: {"description": text[c], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}} for c in codes}


def _ok(description, ref):
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/" + ref}}}}


def _contract(name, title, description, paths, schemas):
    schemas = dict(schemas)
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "status"],
        "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
    }
    schemas["Health"] = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"const": "ok"}},
    }
    all_paths = {
        "/healthz": {"get": {
            "operationId": name + "Health",
            "summary": "Health of the " + name + " interface.",
            "responses": {"200": _ok("Healthy.", "Health"), **_error_responses("401", "403", "503")},
        }},
        "/contract": {"get": {
            "operationId": name + "Contract",
            "summary": "This document.",
            "responses": {"200": {"description": "The OpenAPI document.",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_error_responses("401", "403", "503")},
        }},
    }
    all_paths.update(paths)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0.0", "description": description},
        "servers": [{"url": "/" + name}],
        "security": [{"bearer": []}],
        "paths": all_paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas,
        },
    }


_SNAPSHOT_FIELDS = {
    "as_of": {"type": "string", "format": "date-time",
              "description": "Start of the observation period this snapshot belongs to."},
    "generation": {"type": "integer", "description": "Observation period number; grows over time."},
}

BUILTIN_CONTRACTS = {
    "deployments": _contract(
        "deployments", "k3s deployments",
        "Deployments of the application cluster, and the namespace freeze action.",
        {
            "/status": {"get": {
                "operationId": "deploymentsStatus",
                "summary": "Every deployment with its desired and ready replicas.",
                "responses": {"200": _ok("The deployments.", "DeploymentsStatus"),
                              **_error_responses("401", "403", "503")},
            }},
            "/freeze": {"post": {
                "operationId": "freezeNamespace",
                "summary": "Freeze deployments in a namespace (no rollouts until lifted).",
                "parameters": [{"name": "Idempotency-Key", "in": "header", "required": False,
                                "schema": {"type": "string", "minLength": 1, "maxLength": 255}}],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/FreezeRequest"}}}},
                "responses": {"202": _ok("Accepted and recorded.", "FreezeAction"),
                              **_error_responses("400", "401", "403", "409", "413", "503")},
            }},
            "/freezes": {"get": {
                "operationId": "listFreezes",
                "summary": "Every freeze recorded, oldest first.",
                "responses": {"200": _ok("The freezes.", "FreezeList"),
                              **_error_responses("401", "403", "503")},
            }},
            "/freezes/{id}": {"get": {
                "operationId": "getFreeze",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _ok("The freeze.", "FreezeAction"),
                              "404": {"description": "No such freeze."},
                              **_error_responses("401", "403", "503")},
            }},
        },
        {
            "DeploymentsStatus": {
                "type": "object",
                "required": ["as_of", "generation", "deployments"],
                "properties": dict(_SNAPSHOT_FIELDS, deployments={
                    "type": "array", "items": {"$ref": "#/components/schemas/Deployment"}}),
            },
            "Deployment": {
                "type": "object",
                "required": ["name", "namespace", "image", "replicas", "frozen", "updated_at"],
                "properties": {
                    "name": {"type": "string"},
                    "namespace": {"type": "string"},
                    "image": {"type": "string"},
                    "replicas": {
                        "type": "object",
                        "required": ["desired", "ready"],
                        "properties": {"desired": {"type": "integer", "minimum": 0},
                                       "ready": {"type": "integer", "minimum": 0}},
                    },
                    "frozen": {"type": "boolean"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
            "FreezeRequest": {
                "type": "object",
                "required": ["namespace", "reason"],
                "additionalProperties": False,
                "properties": {
                    "namespace": {"type": "string", "pattern": NAMESPACE_RE.pattern},
                    "reason": {"type": "string", "minLength": 1, "maxLength": MAX_REASON},
                },
            },
            "FreezeAction": {
                "type": "object",
                "required": ["id", "status", "namespace", "reason", "requested_at"],
                "properties": {
                    "id": {"type": "string"},
                    "status": {"const": "accepted"},
                    "namespace": {"type": "string"},
                    "reason": {"type": "string"},
                    "requested_at": {"type": "string", "format": "date-time"},
                    "idempotency_key": {"type": ["string", "null"]},
                },
            },
            "FreezeList": {
                "type": "object",
                "required": ["freezes"],
                "properties": {"freezes": {"type": "array",
                                           "items": {"$ref": "#/components/schemas/FreezeAction"}}},
            },
        },
    ),
    "nodes": _contract(
        "nodes", "k3s nodes", "Nodes of the application cluster with readiness and resource pressure.",
        {"/status": {"get": {
            "operationId": "nodesStatus",
            "summary": "Every node with readiness and cpu/memory pressure.",
            "responses": {"200": _ok("The nodes.", "NodesStatus"), **_error_responses("401", "403", "503")},
        }}},
        {
            "NodesStatus": {
                "type": "object",
                "required": ["as_of", "generation", "nodes"],
                "properties": dict(_SNAPSHOT_FIELDS, nodes={
                    "type": "array", "items": {"$ref": "#/components/schemas/Node"}}),
            },
            "Resource": {
                "type": "object",
                "required": ["usage_percent", "pressure"],
                "properties": {
                    "capacity_millicores": {"type": "integer"},
                    "usage_millicores": {"type": "integer"},
                    "capacity_bytes": {"type": "integer"},
                    "usage_bytes": {"type": "integer"},
                    "usage_percent": {"type": "integer", "minimum": 0, "maximum": 100},
                    "pressure": {"type": "boolean"},
                },
            },
            "Node": {
                "type": "object",
                "required": ["name", "role", "ready", "kubelet_version", "cpu", "memory", "updated_at"],
                "properties": {
                    "name": {"type": "string"},
                    "role": {"enum": ["control-plane", "worker"]},
                    "ready": {"type": "boolean"},
                    "kubelet_version": {"type": "string"},
                    "cpu": {"$ref": "#/components/schemas/Resource"},
                    "memory": {"$ref": "#/components/schemas/Resource"},
                    "updated_at": {"type": "string", "format": "date-time"},
                },
            },
        },
    ),
    "costs": _contract(
        "costs", "k3s costs", "Monthly cost of the application cluster per namespace.",
        {"/status": {"get": {
            "operationId": "costsStatus",
            "summary": "Cost per namespace for the current month.",
            "responses": {"200": _ok("The costs.", "CostsStatus"), **_error_responses("401", "403", "503")},
        }}},
        {
            "CostsStatus": {
                "type": "object",
                "required": ["as_of", "generation", "month", "currency", "namespaces", "total_month_to_date"],
                "properties": dict(
                    _SNAPSHOT_FIELDS,
                    month={"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                    currency={"type": "string", "const": "EUR"},
                    namespaces={"type": "array", "items": {"$ref": "#/components/schemas/NamespaceCost"}},
                    total_month_to_date={"type": "number"},
                ),
            },
            "NamespaceCost": {
                "type": "object",
                "required": ["namespace", "month_to_date", "forecast"],
                "properties": {
                    "namespace": {"type": "string"},
                    "month_to_date": {"type": "number", "description": "Spent so far this month."},
                    "forecast": {"type": "number", "description": "Expected for the whole month."},
                },
            },
        },
    ),
}


def canonical(doc):
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


# --------------------------------------------------------------------------
# Mutable state
# --------------------------------------------------------------------------

class State:
    def __init__(self, args):
        self.lock = threading.Lock()
        self.dir = args.dir
        self.tick_seconds = args.tick
        self.token_file = args.token_file
        self.control_token = args.control_token
        self.actions_path = os.path.join(args.dir, "actions.jsonl")
        self.log_path = os.path.join(args.dir, "cluster.log")
        self.log_lock = threading.Lock()
        self.initial_contracts = {name: canonical(doc) for name, doc in BUILTIN_CONTRACTS.items()}
        self.initial_contracts.update(args.contract_bytes)
        self.actions = []
        self.by_key = {}
        self._load_actions()
        self.reset()

    def reset(self, actions=False):
        with self.lock:
            self.contracts = dict(self.initial_contracts)
            self.delay_ms = {}   # None (everything) or a capability -> ms
            self.status = {}     # None (everything) or a capability -> code
            self.redirects = {}  # path -> (code, target)
            if actions:
                self.actions = []
                self.by_key = {}
                with open(self.actions_path, "w", encoding="utf-8"):
                    pass

    def _load_actions(self):
        try:
            with open(self.actions_path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    record = json.loads(line)
                    self.actions.append(record)
                    if record.get("idempotency_key"):
                        self.by_key[record["idempotency_key"]] = record
        except FileNotFoundError:
            pass

    def expected_token(self):
        """The capability token, read at every request (so tests can rotate it)."""
        if self.token_file is None:
            return None
        try:
            with open(self.token_file, encoding="utf-8") as f:
                return f.read().strip()
        except OSError:
            return ""  # unreadable: no bearer matches

    def tick(self):
        return int(time.time() // self.tick_seconds)

    def frozen_namespaces(self):
        with self.lock:
            return {a["namespace"] for a in self.actions}

    def log(self, line):
        with self.log_lock:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")


class BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "k3s-standin/1"

    def version_string(self):
        return self.server_version
    timeout = 120  # idle keep-alive connections are closed after this
    # Headers and body go out in separate writes; without TCP_NODELAY the
    # second waits for the client's delayed ACK (~40 ms a request).
    disable_nagle_algorithm = True

    # Quiet: the request log is DIR/cluster.log, written by _finish.
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_HEAD(self):
        self._dispatch("HEAD")

    # -- plumbing ------------------------------------------------------------

    @property
    def state(self):
        return self.server.state

    def _dispatch(self, method):
        self._t0 = time.monotonic()
        self._bearer = "-"
        self._logged = False
        self._method = method
        self._path = urllib.parse.urlsplit(self.path).path or "/"
        try:
            self._body = self._read_body()
            if self._path == "/_control" or self._path.startswith("/_control/"):
                self._control(method)
            else:
                self._capability(method)
        except BadRequest as e:
            self._json(e.status, {"error": e.message, "status": e.status})
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
            self._finish(499)
        except Exception as e:  # pragma: no cover - a bug; say so instead of hanging up
            self._json(500, {"error": "internal error: %s" % type(e).__name__, "status": 500})

    def _read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True
            raise BadRequest(411, "chunked bodies are not supported; send Content-Length")
        length = self.headers.get("Content-Length")
        if length is None:
            return b""
        try:
            n = int(length)
        except ValueError:
            self.close_connection = True
            raise BadRequest(400, "Content-Length is not a number")
        if n < 0:
            self.close_connection = True
            raise BadRequest(400, "Content-Length is negative")
        if n > MAX_BODY:
            self.close_connection = True
            raise BadRequest(413, "body larger than %d bytes" % MAX_BODY)
        return self.rfile.read(n)

    def _send(self, status, body, content_type="application/json", headers=None):
        if self._logged:
            return
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self._method != "HEAD":
            self.wfile.write(body)
        self._finish(status)

    def _json(self, status, doc, headers=None):
        self._send(status, json.dumps(doc, sort_keys=True).encode("utf-8") + b"\n", headers=headers)

    def _finish(self, status):
        if self._logged:
            return
        self._logged = True
        ms = int((time.monotonic() - self._t0) * 1000)
        self.state.log("%s %s %s %s %d bearer=%s %dms" % (
            iso(time.time()), self.client_address[0], self._method,
            json.dumps(self._path)[1:-1], status, self._bearer, ms))

    def _bearer_of(self):
        value = self.headers.get("Authorization")
        if value is None:
            return None
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def _classify(self, expected, label=""):
        """none, ok or wrong: how the request's bearer compares with EXPECTED (for the log too)."""
        given = self._bearer_of()
        if given is None:
            outcome = "none"
        elif expected and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8")):
            outcome = "ok"
        else:
            outcome = "wrong"
        self._bearer = label + outcome
        return outcome

    def _authorize(self, expected, label):
        """401 without a bearer, 403 with a wrong one."""
        outcome = self._classify(expected, label)
        if outcome == "none":
            raise BadRequest(401, "a bearer token is required (Authorization: Bearer <token>)")
        if outcome == "wrong":
            raise BadRequest(403, "the bearer token is not valid here")

    def send_response(self, code, message=None):
        super().send_response(code, message)
        if code == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="k3s-standin"')

    def _json_body(self):
        if not self._body:
            raise BadRequest(400, "a JSON body is required")
        try:
            doc = json.loads(self._body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise BadRequest(400, "the body is not valid JSON: %s" % e)
        if not isinstance(doc, dict):
            raise BadRequest(400, "the body must be a JSON object")
        return doc

    # -- capability interfaces --------------------------------------------------

    ROUTES = {
        "/healthz": {"GET"},
        "/deployments/healthz": {"GET"},
        "/deployments/status": {"GET"},
        "/deployments/contract": {"GET"},
        "/deployments/freeze": {"POST"},
        "/deployments/freezes": {"GET"},
        "/nodes/healthz": {"GET"},
        "/nodes/status": {"GET"},
        "/nodes/contract": {"GET"},
        "/costs/healthz": {"GET"},
        "/costs/status": {"GET"},
        "/costs/contract": {"GET"},
    }

    def _capability(self, method):
        state = self.state
        path = self._path
        first = path.split("/")[1] if path.count("/") >= 1 else ""
        capability = first if first in CAPABILITIES else None

        expected = state.expected_token()
        if expected is not None:
            self._classify(expected)
        with state.lock:
            delay = state.delay_ms.get(capability, state.delay_ms.get(None, 0))
            redirect = state.redirects.get(path)
            forced = state.status.get(capability, state.status.get(None))
        if delay:
            time.sleep(delay / 1000.0)

        if redirect is not None:
            code, target = redirect
            self._json(code, {"redirect": target}, headers={"Location": target})
            return

        allowed = self.ROUTES.get(path)
        if allowed is None and path.startswith("/deployments/freezes/") and path.count("/") == 3:
            allowed = {"GET"}
        if allowed is None:
            raise BadRequest(404, "no such path: %s" % path)
        if method == "HEAD" and "GET" in allowed:
            pass
        elif method not in allowed:
            self._json(405, {"error": "method %s not allowed on %s" % (method, path), "status": 405},
                       headers={"Allow": ", ".join(sorted(allowed))})
            return

        if forced is not None:
            self._json(forced, {"error": "the cluster is degraded (simulated)", "status": forced},
                       headers={"Retry-After": "1"} if forced == 503 else None)
            return

        if expected is not None:
            self._authorize(expected, "")

        if path == "/healthz" or path.endswith("/healthz"):
            self._json(200, {"status": "ok"})
        elif path.endswith("/contract"):
            with state.lock:
                body = state.contracts[capability]
            digest = hashlib.sha256(body).hexdigest()
            self._send(200, body, headers={"ETag": '"sha256:%s"' % digest})
        elif path == "/deployments/status":
            self._json(200, deployments_status(state.tick(), state.tick_seconds, state.frozen_namespaces()))
        elif path == "/nodes/status":
            self._json(200, nodes_status(state.tick(), state.tick_seconds))
        elif path == "/costs/status":
            self._json(200, costs_status(state.tick(), state.tick_seconds))
        elif path == "/deployments/freezes":
            with state.lock:
                freezes = [public_action(a) for a in state.actions]
            self._json(200, {"freezes": freezes})
        elif path.startswith("/deployments/freezes/"):
            wanted = path.rsplit("/", 1)[1]
            with state.lock:
                found = [public_action(a) for a in state.actions if a["id"] == wanted]
            if not found:
                raise BadRequest(404, "no such freeze: %s" % wanted)
            self._json(200, found[0])
        elif path == "/deployments/freeze":
            self._freeze()
        else:  # pragma: no cover - ROUTES and this chain disagree
            raise BadRequest(404, "no such path: %s" % path)

    def _freeze(self):
        state = self.state
        key = self.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY_RE.match(key):
            raise BadRequest(400, "Idempotency-Key must be 1 to 255 visible ASCII characters")
        doc = self._json_body()
        unknown = sorted(set(doc) - {"namespace", "reason"})
        if unknown:
            raise BadRequest(400, "unknown field(s): %s (allowed: namespace, reason)" % ", ".join(unknown))
        namespace = doc.get("namespace")
        reason = doc.get("reason")
        if not isinstance(namespace, str) or not namespace:
            raise BadRequest(400, "namespace: a non-empty string is required")
        if not NAMESPACE_RE.match(namespace):
            raise BadRequest(400, "namespace: not a valid Kubernetes namespace name (RFC 1123 label): %r" % namespace)
        if not isinstance(reason, str) or not reason.strip():
            raise BadRequest(400, "reason: a non-empty string is required")
        if len(reason) > MAX_REASON:
            raise BadRequest(400, "reason: at most %d characters" % MAX_REASON)
        request_sha = hashlib.sha256(canonical(doc)).hexdigest()

        with state.lock:
            if key is not None and key in state.by_key:
                previous = state.by_key[key]
                if previous["request_sha256"] != request_sha:
                    raise BadRequest(409, "Idempotency-Key %r was used with a different body" % key)
                replayed = True
                record = previous
            else:
                replayed = False
                record = {
                    "id": "frz-" + secrets.token_hex(8),
                    "status": "accepted",
                    "namespace": namespace,
                    "reason": reason,
                    "requested_at": iso(time.time()),
                    "idempotency_key": key,
                    "request_sha256": request_sha,
                }
                with open(state.actions_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record, sort_keys=True) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                state.actions.append(record)
                if key is not None:
                    state.by_key[key] = record
        headers = {"Location": "/deployments/freezes/" + record["id"]}
        if replayed:
            headers["Idempotency-Replayed"] = "true"
        self._json(202, public_action(record), headers=headers)

    # -- control API -------------------------------------------------------------

    def _control(self, method):
        state = self.state
        path = self._path
        self._authorize(state.control_token, "control-")
        if path == "/_control/state" and method in ("GET", "HEAD"):
            with state.lock:
                doc = {
                    "delay_ms": {k or "*": v for k, v in state.delay_ms.items()},
                    "status": {k or "*": v for k, v in state.status.items()},
                    "redirects": {p: {"code": c, "to": t} for p, (c, t) in state.redirects.items()},
                    "contracts": {n: hashlib.sha256(b).hexdigest() for n, b in state.contracts.items()},
                    "actions": len(state.actions),
                    "tick": state.tick(),
                    "tick_seconds": state.tick_seconds,
                }
            self._json(200, doc)
            return
        if method != "POST":
            self._json(405, {"error": "control endpoints take POST (GET /_control/state)", "status": 405},
                       headers={"Allow": "POST"})
            return
        if path.startswith("/_control/contract/"):
            name = path[len("/_control/contract/"):]
            if name not in CAPABILITIES:
                raise BadRequest(404, "no such capability: %s (one of %s)" % (name, ", ".join(CAPABILITIES)))
            self._json_body()  # must be a JSON object; served byte for byte as given
            with state.lock:
                state.contracts[name] = self._body
            self._json(200, {"capability": name, "sha256": hashlib.sha256(self._body).hexdigest()})
        elif path == "/_control/delay":
            doc = self._json_body()
            ms = doc.get("ms")
            if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= MAX_DELAY_MS:
                raise BadRequest(400, "ms: an integer from 0 to %d is required" % MAX_DELAY_MS)
            capability = self._capability_field(doc)
            with state.lock:
                if ms:
                    state.delay_ms[capability] = ms
                else:
                    state.delay_ms.pop(capability, None)
            self._json(200, {"delay_ms": ms, "capability": capability})
        elif path == "/_control/status":
            doc = self._json_body()
            code = doc.get("code")
            if code is not None and (not isinstance(code, int) or isinstance(code, bool) or not 200 <= code <= 599):
                raise BadRequest(400, "code: an HTTP status from 200 to 599 is required (200 or null: normal)")
            capability = self._capability_field(doc)
            with state.lock:
                if code is None or code == 200:
                    state.status.pop(capability, None)
                else:
                    state.status[capability] = code
            self._json(200, {"code": code, "capability": capability})
        elif path == "/_control/redirect":
            doc = self._json_body()
            target_path = doc.get("path")
            to = doc.get("to")
            code = doc.get("code", 302)
            if not isinstance(target_path, str) or not target_path.startswith("/") \
                    or target_path == "/_control" or target_path.startswith("/_control/"):
                raise BadRequest(400, "path: a path starting with / (not under /_control) is required")
            if to is not None and (not isinstance(to, str) or not to or any(c in to for c in "\r\n")):
                raise BadRequest(400, "to: a URL is required (null removes the redirect)")
            if code not in (301, 302, 303, 307, 308):
                raise BadRequest(400, "code: one of 301, 302, 303, 307, 308")
            with state.lock:
                if to is None:
                    state.redirects.pop(target_path, None)
                else:
                    state.redirects[target_path] = (code, to)
            self._json(200, {"path": target_path, "to": to, "code": code})
        elif path == "/_control/reset":
            doc = self._json_body() if self._body.strip() else {}
            clear = doc.get("actions", False)
            if not isinstance(clear, bool):
                raise BadRequest(400, "actions: true or false")
            state.reset(actions=clear)
            self._json(200, {"reset": True, "actions_cleared": clear})
        else:
            raise BadRequest(404, "no such control endpoint: %s" % path)

    @staticmethod
    def _capability_field(doc):
        capability = doc.get("capability")
        if capability is not None and capability not in CAPABILITIES:
            raise BadRequest(400, "capability: one of %s, or absent for all" % ", ".join(CAPABILITIES))
        return capability


def public_action(record):
    return {k: v for k, v in record.items() if k != "request_sha256"}


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, state, ssl_ctx):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self.ssl_ctx = ssl_ctx
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a
        # client that connects and sends nothing (or plain HTTP) never holds up
        # the accept loop.
        request.settimeout(10)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            reason = getattr(e, "reason", None) or type(e).__name__
            self.state.log("%s %s - - tls-handshake-failed %s" % (iso(time.time()), client_address[0], reason))
            return
        try:
            tls.settimeout(Handler.timeout)
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        # Clients that go away mid-request are normal here (delays, restarts).
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, ssl.SSLError, socket.timeout, TimeoutError)):
            return
        super().handle_error(request, client_address)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", required=True)
    p.add_argument("--port", required=True, type=int)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--token-file")
    p.add_argument("--contract", action="append", default=[], metavar="[NAME=]FILE",
                   help="serve this document as NAME's contract (deployments when NAME= is left out)")
    p.add_argument("--tick", type=float, default=10.0, metavar="SECONDS",
                   help="length of one observation period (default 10)")
    args = p.parse_args()

    def die(message):
        print("cluster stand-in: " + message, file=sys.stderr)
        sys.exit(1)

    if not 1 <= args.port <= 65535:
        die("--port must be 1..65535")
    if args.tick <= 0:
        die("--tick must be positive")
    args.dir = os.path.abspath(args.dir)
    os.makedirs(args.dir, exist_ok=True)

    args.contract_bytes = {}
    for spec in args.contract:
        name, sep, path = spec.partition("=")
        if not sep or name not in CAPABILITIES:
            name, path = "deployments", spec
        try:
            with open(path, "rb") as f:
                body = f.read()
            if not isinstance(json.loads(body.decode("utf-8")), dict):
                raise ValueError("not a JSON object")
        except (OSError, UnicodeDecodeError, ValueError) as e:
            die("--contract %s: %s" % (spec, e))
        args.contract_bytes[name] = body

    if args.token_file is not None:
        args.token_file = os.path.abspath(args.token_file)
        try:
            with open(args.token_file, encoding="utf-8") as f:
                if not f.read().strip():
                    die("--token-file %s is empty" % args.token_file)
        except OSError as e:
            die("--token-file: %s" % e)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(args.cert, args.key)
    except (OSError, ssl.SSLError) as e:
        die("cannot load the certificate %s with the key %s: %s" % (args.cert, args.key, e))

    # The control token: new at every start, readable only by its owner.
    control_path = os.path.join(args.dir, "control.token")
    args.control_token = secrets.token_urlsafe(32)
    fd = os.open(control_path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(args.control_token + "\n")
    os.replace(control_path + ".new", control_path)

    state = State(args)
    try:
        server = Server((args.host, args.port), state, ctx)
    except OSError as e:
        die("cannot listen on %s port %d: %s" % (args.host, args.port, e.strerror or e))

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state.log("%s - start listening on https://%s:%d tick=%ss token=%s" % (
        iso(time.time()), args.host, args.port, args.tick, "file" if args.token_file else "none"))
    print("cluster stand-in listening on https://%s:%d" % (args.host, args.port), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        state.log("%s - stop" % iso(time.time()))


if __name__ == "__main__":
    main()
