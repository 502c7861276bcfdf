#!/usr/bin/env python3
"""Renders JSON (a hub's settings, from `nix-instantiate --eval --json`) as TOML.

What pkgs.formats.toml does on a Nix host (remarshal's json2toml), for the values the modules
produce: tables, strings, integers, floats, booleans and arrays of them. The output is read
back with tomllib and must equal the input, so a rendering mistake fails here, not in the hub.

usage: json_to_toml.py < settings.json > settings.toml
"""

import json
import re
import sys
import tomllib

BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key(k):
    return k if BARE_KEY.match(k) else json.dumps(k)


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        if any(isinstance(i, dict) for i in v):
            raise ValueError("arrays of tables are not produced by the modules")
        return "[" + ", ".join(scalar(i) for i in v) + "]"
    raise ValueError(f"cannot render {v!r} in TOML (null is never written: the modules drop it)")


def table(path, value, out):
    plain = {k: v for k, v in value.items() if not isinstance(v, dict)}
    nested = {k: v for k, v in value.items() if isinstance(v, dict)}
    if path and (plain or not nested):
        out.append("[" + ".".join(key(p) for p in path) + "]")
    for k in sorted(plain):
        out.append(f"{key(k)} = {scalar(plain[k])}")
    if plain:
        out.append("")
    for k in sorted(nested):
        table(path + [k], nested[k], out)


def main():
    data = json.load(sys.stdin)
    if not isinstance(data, dict):
        sys.stderr.write("expected a JSON object\n")
        return 1
    out = []
    table([], data, out)
    text = "\n".join(out).rstrip("\n") + "\n"
    if tomllib.loads(text) != data:
        sys.stderr.write("the TOML does not read back as the JSON it came from\n")
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
