#!/usr/bin/env python3
"""Renders a systemd service unit from the JSON of nixos-modules/hardening.nix.

The rendering follows NixOS's own (systemd-lib's attrsToSection): booleans become
true/false, lists become one Key=value line per element, an empty string stays an
empty assignment (which resets the setting, e.g. CapabilityBoundingSet= means none).
The unit gets the same fixed lines the modules add (Type=notify, WatchdogSec=,
ExecStartPre=configtest, LoadCredential=), so `systemd-analyze security --offline`
judges what a host would run.

usage: render_unit.py HARDENING.json NAME BINARY CREDENTIAL... > NAME.service
"""

import json
import sys


def value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def main(argv):
    if len(argv) < 4:
        sys.stderr.write(__doc__)
        return 2
    path, name, binary, credentials = argv[1], argv[2], argv[3], argv[4:]
    with open(path, encoding="utf-8") as f:
        hardening = json.load(f)
    if not isinstance(hardening, dict) or not hardening:
        sys.stderr.write(f"{path}: expected a non-empty JSON object\n")
        return 1
    config = f"/nix/store/00000000000000000000000000000000-{name}.toml"
    lines = [
        "[Unit]",
        f"Description=Hubplane {name} (rendered for systemd-analyze)",
        "",
        "[Service]",
        "Type=notify",
        "NotifyAccess=main",
        f"User={name}",
        f"Group={name}",
        f"ExecStartPre={binary} --config {config} configtest",
        f"ExecStart={binary} --config {config} serve",
        "WatchdogSec=30",
        "Restart=on-failure",
    ]
    lines += [f"LoadCredential={c}:/run/agenix/{name}-{c}" for c in credentials]
    for key in sorted(hardening):
        v = hardening[key]
        if isinstance(v, list):
            lines += [f"{key}={value(item)}" for item in v]
        elif isinstance(v, dict) or v is None:
            sys.stderr.write(f"{path}: {key} must be a scalar or a list, not {type(v).__name__}\n")
            return 1
        else:
            lines.append(f"{key}={value(v)}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    sys.stdout.write("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
