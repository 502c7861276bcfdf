"""Assertions on terraform/, read with python-hcl2: what must hold for the management host.

    check_hcl.py DIR CONCERN [REPO]

DIR is a copy of terraform/ (the suite also runs this on broken copies, to show each concern
can fail). CONCERN is one of the functions in CONCERNS. Exit 0 and one line on success; exit 1
and the reason otherwise. REPO (default: DIR/..) is where nixos-modules/ is read from.
"""

import json
import re
import sys
from pathlib import Path

import hcl2

LOCATIONS = {"fsn1", "nbg1", "hel1", "ash", "hil", "sin"}
MODULE_SOURCE = re.compile(
    r"git::https://github\.com/nix-community/nixos-anywhere\.git//terraform/all-in-one\?ref=(?P<ref>[0-9a-f]{40})"
)
EVERY_IPV4, EVERY_IPV6 = "0.0.0.0/0", "::/0"
META_KEYS = {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}


def unquote(value):
    """python-hcl2 keeps string literals quoted ("\"cx22\""); expressions come as "${…}"."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value[1:-1]
    return value


def normalize(node):
    if isinstance(node, dict):
        return {unquote(k): normalize(v) for k, v in node.items() if k not in META_KEYS}
    if isinstance(node, list):
        return [normalize(item) for item in node]
    return unquote(node)


def load(path):
    with open(path, encoding="utf-8") as handle:
        return normalize(hcl2.load(handle))


class Config:
    """Every .tf file of DIR, merged by block type."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.files = sorted(self.dir.glob("*.tf"))
        assert self.files, f"no .tf files in {self.dir}"
        self.blocks = {}
        for path in self.files:
            for kind, items in load(path).items():
                self.blocks.setdefault(kind, []).extend(items)

    def labelled(self, kind):
        """{label: body} of `kind "label" {…}` blocks (variable, output, module)."""
        found = {}
        for item in self.blocks.get(kind, []):
            for label, body in item.items():
                assert label not in found, f'{kind} "{label}" is declared twice'
                found[label] = body
        return found

    def resources(self, rtype):
        """{name: body} of `resource "rtype" "name" {…}`."""
        found = {}
        for item in self.blocks.get("resource", []):
            for kind, named in item.items():
                if kind == rtype:
                    found.update(named)
        return found

    def locals(self):
        merged = {}
        for item in self.blocks.get("locals", []):
            merged.update(item)
        return merged

    def text(self):
        return "\n".join(p.read_text(encoding="utf-8") for p in self.files)


def expression(value):
    """The expression inside "${…}", or None for a literal."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1].strip()
    return None


def string_literals(text):
    return re.findall(r'"((?:[^"\\]|\\.)*)"', text)


# --- concerns -------------------------------------------------------------------------------


def parse(cfg):
    kinds = sorted(cfg.blocks)
    for must in ["module", "output", "provider", "resource", "terraform", "variable"]:
        assert must in kinds, f"no {must} block in any .tf file (found: {kinds})"
    return f"{len(cfg.files)} files parse: {', '.join(p.name for p in cfg.files)}"


def versions(cfg):
    terraform = cfg.blocks["terraform"]
    assert len(terraform) == 1, "one terraform block"
    settings = terraform[0]
    required = settings.get("required_version", "")
    assert re.search(r">=\s*1\.\d+", required), f"required_version needs a lower bound: {required!r}"
    assert "<" in required or "~>" in required, f"required_version needs an upper bound: {required!r}"
    providers = {}
    for item in settings.get("required_providers", []):
        providers.update(item)
    hcloud = providers.get("hcloud")
    assert hcloud, f"hcloud is not in required_providers: {sorted(providers)}"
    assert hcloud.get("source") == "hetznercloud/hcloud", f"hcloud source is {hcloud.get('source')!r}"
    for name, spec in providers.items():
        version = spec.get("version", "")
        assert re.fullmatch(r"(~>\s*\d+\.\d+(\.\d+)?|>=\s*\d+\.\d+(\.\d+)?,\s*<\s*\d+(\.\d+)*)", version), (
            f"provider {name} needs a bounded version constraint (~> X.Y or >= A, < B), has {version!r}"
        )
    pins = ", ".join(f"{name} {spec['version']}" for name, spec in sorted(providers.items()))
    return f"required_version {required}; providers {pins}"


def _validation_list(body, name):
    rules = body.get("validation", [])
    assert rules, f'variable "{name}" has no validation block'
    for rule in rules:
        condition = expression(rule.get("condition")) or ""
        match = re.search(r"contains\(\[(?P<items>[^\]]*)\],\s*var\." + re.escape(name) + r"\)", condition)
        if match:
            return [json.loads(s) for s in re.findall(r'"[^"]*"', match.group("items"))]
    raise AssertionError(f'variable "{name}": no validation of the form contains([…], var.{name})')


def variables(cfg):
    declared = cfg.labelled("variable")
    for name, body in declared.items():
        description = body.get("description", "")
        assert isinstance(description, str) and len(description.strip()) >= 20, (
            f'variable "{name}" needs a description'
        )
        assert "type" in body, f'variable "{name}" has no type'
        for rule in body.get("validation", []):
            assert expression(rule.get("condition")), f'variable "{name}": a validation without a condition'
            assert str(rule.get("error_message", "")).strip(), f'variable "{name}": a validation without error_message'

    token = declared.get("hcloud_token")
    assert token, "no variable hcloud_token"
    assert token.get("sensitive") is True, "hcloud_token must be sensitive = true"
    assert "default" not in token, "hcloud_token must not have a default"

    server_types = _validation_list(declared["server_type"], "server_type")
    assert declared["server_type"].get("default") == "cx22", "server_type defaults to cx22"
    assert "cx22" in server_types, f"cx22 is not an allowed server_type: {server_types}"
    assert not [t for t in server_types if t.startswith("cax")], "ARM (cax) types cannot run the x86_64 host"

    locations = _validation_list(declared["location"], "location")
    assert set(locations) == LOCATIONS, f"location must allow exactly {sorted(LOCATIONS)}, allows {locations}"
    assert declared["location"].get("default") in LOCATIONS, "location's default is not an allowed one"

    for must in ["ssh_public_keys", "server_name", "bootstrap_image", "nixos_configuration", "host_age_identity_file"]:
        assert must in declared, f"no variable {must}"
    assert declared["nixos_configuration"].get("default") == "mgmt", "nixos_configuration defaults to mgmt (.#mgmt)"

    text = cfg.text()
    used = set(re.findall(r"\bvar\.([A-Za-z0-9_]+)", text))
    assert not (used - set(declared)), f"used but not declared: {sorted(used - set(declared))}"
    assert not (set(declared) - used), f"declared but never used: {sorted(set(declared) - used)}"
    return f"{len(declared)} variables, each described and typed; hcloud_token sensitive; server_type in {len(server_types)} types; location in {sorted(locations)}"


def module(cfg):
    modules = cfg.labelled("module")
    installers = {n: b for n, b in modules.items() if "nixos-anywhere" in str(b.get("source", ""))}
    assert len(installers) == 1, f"expected one nixos-anywhere module, found {sorted(installers)}"
    name, body = next(iter(installers.items()))
    source = body["source"]
    match = MODULE_SOURCE.fullmatch(source)
    assert match, f"module {name}: source must be the all-in-one module pinned to a 40-hex commit, is {source!r}"
    assert "version" not in body, "a git module takes no version argument"

    system = body.get("nixos_system_attr", "")
    partitioner = body.get("nixos_partitioner_attr", "")
    local_host = cfg.locals().get("host", "")
    for attr, suffix in [(system, ".toplevel"), (partitioner, ".diskoScript")]:
        assert attr.endswith(suffix), f"{attr!r} must end in {suffix}"
        assert "${local.host}" in attr, f"{attr!r} must be built from local.host"
    assert "#nixosConfigurations.${var.nixos_configuration}.config.system.build" in local_host, (
        f"local.host must name nixosConfigurations.<nixos_configuration>: {local_host!r}"
    )
    assert expression(body.get("target_host")) == "hcloud_server.mgmt.ipv4_address", "target_host = the server's IPv4"
    assert expression(body.get("instance_id")) == "hcloud_server.mgmt.id", "instance_id = the server's id"

    script = body.get("extra_files_script", "")
    assert script == "${path.module}/host-age-identity.sh", f"extra_files_script is {script!r}"
    path = cfg.dir / "host-age-identity.sh"
    assert path.is_file(), f"{path} is missing"
    assert path.stat().st_mode & 0o111, f"{path} is not executable (nixos-anywhere refuses it)"
    env = body.get("extra_environment", {})
    assert "HUBPLANE_HOST_AGE_IDENTITY" in env and "HUBPLANE_HOST_AGE_IDENTITY_TARGET" in env, f"extra_environment: {env}"
    assert "abspath(var.host_age_identity_file)" in env["HUBPLANE_HOST_AGE_IDENTITY"], (
        "the identity path must be absolute: the script runs in a scratch directory"
    )
    return (
        f"module {name}: all-in-one at {match.group('ref')}; toplevel and diskoScript of"
        " nixosConfigurations.<nixos_configuration>; target the server's IPv4; reinstalled per server id"
    )


def _resolve_cidrs(value, cfg):
    """source_ips of a rule: a literal list, local.anywhere or var.ssh_allowed_cidrs (its default)."""
    if isinstance(value, list):
        return value
    expr = expression(value)
    if expr and expr.startswith("local."):
        return _resolve_cidrs(cfg.locals()[expr[len("local."):]], cfg)
    if expr and expr.startswith("var."):
        return _resolve_cidrs(cfg.labelled("variable")[expr[len("var."):]].get("default"), cfg)
    raise AssertionError(f"cannot resolve source_ips {value!r}")


def firewall(cfg):
    walls = cfg.resources("hcloud_firewall")
    assert len(walls) == 1, f"expected one hcloud_firewall, found {sorted(walls)}"
    wall_name, wall = next(iter(walls.items()))
    assert "dynamic" not in wall, "write the rules out (no dynamic block): they are the contract"
    rules = wall.get("rule", [])
    ports = []
    for rule in rules:
        assert rule.get("direction") == "in", f"only inbound rules: {rule}"
        assert rule.get("protocol") == "tcp", f"only TCP: {rule}"
        port = str(rule.get("port"))
        assert re.fullmatch(r"\d+", port), f"one port per rule, no ranges or 'any': {port!r}"
        cidrs = _resolve_cidrs(rule.get("source_ips"), cfg)
        assert EVERY_IPV4 in cidrs and EVERY_IPV6 in cidrs, f"port {port}: open over IPv4 and IPv6 by default, is {cidrs}"
        assert str(rule.get("description", "")).strip(), f"port {port}: say why it is open"
        ports.append(int(port))
    assert sorted(ports) == [22, 80, 443], f"inbound must be exactly TCP 22, 80, 443; is {sorted(ports)}"

    servers = cfg.resources("hcloud_server")
    assert len(servers) == 1, f"expected one hcloud_server, found {sorted(servers)}"
    server = servers["mgmt"]
    assert server.get("firewall_ids") == [f"${{hcloud_firewall.{wall_name}.id}}"], (
        f"the server must carry the firewall: firewall_ids = {server.get('firewall_ids')}"
    )
    assert expression(server.get("server_type")) == "var.server_type", "server_type comes from the variable"
    assert expression(server.get("location")) == "var.location", "location comes from the variable"
    assert "hcloud_ssh_key." in str(server.get("ssh_keys")), "the server gets the operators' SSH keys"
    assert cfg.resources("hcloud_ssh_key"), "no hcloud_ssh_key"
    net = server.get("public_net", [{}])[0]
    assert net.get("ipv4_enabled") is True and net.get("ipv6_enabled") is True, f"public_net: {net}"
    ignored = server.get("lifecycle", [{}])[0].get("ignore_changes", [])
    assert "image" in ignored, "a changed bootstrap image must not replace the installed host"
    return f"hcloud_firewall.{wall_name}: inbound TCP {', '.join(map(str, sorted(ports)))} over IPv4 and IPv6 only; attached to hcloud_server.mgmt"


def outputs(cfg):
    declared = cfg.labelled("output")
    for name in ["ipv4", "ipv6", "ssh"]:
        assert name in declared, f"no output {name} (has {sorted(declared)})"
        assert str(declared[name].get("description", "")).strip(), f"output {name} needs a description"
    assert "hcloud_server.mgmt.ipv4_address" in declared["ipv4"]["value"]
    assert "hcloud_server.mgmt.ipv6_address" in declared["ipv6"]["value"]
    assert declared["ssh"]["value"].startswith("ssh root@"), f"ssh output: {declared['ssh']['value']!r}"
    return f"outputs: {', '.join(sorted(declared))}"


def identity(cfg, repo):
    """The identity lands where the management-plane profile (age.identityPaths) looks for it."""
    target = cfg.locals().get("host_age_identity_target")
    assert target, "no local.host_age_identity_target"
    profile = (Path(repo) / "nixos-modules" / "management-plane.nix").read_text(encoding="utf-8")
    match = re.search(r'hostAgeIdentity = lib\.mkOption \{.*?default = "([^"]+)";', profile, re.S)
    assert match, "hubplane.managementPlane.hostAgeIdentity has no default in management-plane.nix"
    assert "age.identityPaths = [ cfg.hostAgeIdentity ];" in profile, "age.identityPaths is not hostAgeIdentity"
    assert "/" + target == match.group(1), f"Terraform copies the identity to /{target}, the profile reads {match.group(1)}"
    default = cfg.labelled("variable")["host_age_identity_file"].get("default", "")
    assert default.endswith(target), f"host_age_identity_file's default {default!r} should mirror {target}"
    return f"host age identity: copied to /{target} = hostAgeIdentity = age.identityPaths"


def example(cfg):
    path = cfg.dir / "terraform.tfvars.example"
    assert path.is_file(), "terraform.tfvars.example is missing"
    values = load(path)
    declared = cfg.labelled("variable")
    unknown = sorted(set(values) - set(declared))
    assert not unknown, f"the example sets variables that do not exist: {unknown}"
    assert "hcloud_token" not in values, "the example must not hold the API token (TF_VAR_hcloud_token)"
    required = sorted(n for n, b in declared.items() if "default" not in b and n != "hcloud_token")
    missing = [n for n in required if n not in values]
    assert not missing, f"the example leaves required variables unset: {missing}"
    commented = set(re.findall(r"^#\s*([a-z_]+)\s*=", path.read_text(encoding="utf-8"), re.M))
    undocumented = sorted(n for n in commented if n not in declared)
    assert not undocumented, f"commented-out settings name unknown variables: {undocumented}"
    return f"example sets {', '.join(sorted(values))}; no token"


CONCERNS = {
    "parse": parse,
    "versions": versions,
    "variables": variables,
    "module": module,
    "firewall": firewall,
    "outputs": outputs,
    "identity": identity,
    "example": example,
}


def main(argv):
    if len(argv) not in (3, 4) or argv[2] not in CONCERNS:
        print(f"usage: {argv[0]} DIR {{{'|'.join(CONCERNS)}}} [REPO]", file=sys.stderr)
        return 2
    directory, concern = argv[1], argv[2]
    repo = argv[3] if len(argv) == 4 else str(Path(directory).resolve().parent)
    try:
        cfg = Config(directory)
        summary = identity(cfg, repo) if concern == "identity" else CONCERNS[concern](cfg)
    except AssertionError as problem:
        print(f"{concern}: {problem}")
        return 1
    except Exception as problem:  # a parse error names the file and position
        print(f"{concern}: {type(problem).__name__}: {problem}")
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
