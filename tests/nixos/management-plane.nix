# checks.<system>.vm-management-plane: boots the management-plane profile in a VM, with agenix
# decrypting secrets made for the test, and drives it the way operators and people do: readiness
# of every hub, two domain hubs registering with the state hub, an OIDC login through Authelia
# with curl (authorize -> Authelia's first-factor API -> callback -> session cookie -> whoami) and
# a capability call from the state hub to a stub HTTPS service with its own CA.
#
#   nix build .#checks.x86_64-linux.vm-management-plane -L
#   nix run .#checks.x86_64-linux.vm-management-plane.driverInteractive   # to poke around
{ self, pkgs }:
let
  domain = "mgmt.test";
  alicePassword = "alice-vm-test-password";
  clusterToken = "cluster-capability-credential-0123456789abcdef";

  # Two CAs: one for the management host's virtual hosts (as a private CA would be in
  # production), one for the stub cluster, which only the capability client trusts.
  pki = pkgs.runCommand "hubplane-vm-test-pki" { nativeBuildInputs = [ pkgs.openssl ]; } ''
    mkdir -p $out
    ca() {
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -sha256 \
        -keyout $out/$1-ca-key.pem -out $out/$1-ca.pem -subj "/CN=$2" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    }
    leaf() {
      openssl req -newkey rsa:2048 -nodes -sha256 -keyout $out/$1-key.pem -out $1.csr -subj "/CN=$2"
      printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
        'extendedKeyUsage=serverAuth' "subjectAltName=$3" > $1.ext
      openssl x509 -req -in $1.csr -CA $out/$4-ca.pem -CAkey $out/$4-ca-key.pem -CAcreateserial \
        -days 3650 -sha256 -extfile $1.ext -out $out/$1.pem
    }
    ca mgmt "Hubplane VM test CA"
    leaf mgmt "*.${domain}" "DNS:*.${domain},DNS:${domain}" mgmt
    ca cluster "Stub cluster CA"
    leaf cluster cluster.test "DNS:cluster.test,IP:127.0.0.1" cluster
  '';

  # The profile's secrets, encrypted with agenix's format to a host identity made here (in the
  # store: test only). The OIDC client digests use Authelia's `$plaintext$` form so the test
  # needs no hashing; a real host stores pbkdf2 digests (secrets/README.md).
  secrets = pkgs.runCommand "hubplane-vm-test-secrets" { nativeBuildInputs = [ pkgs.age pkgs.openssl ]; } ''
    mkdir -p $out
    age-keygen -o $out/host.key
    recipient=$(age-keygen -y $out/host.key)
    seal() { age -r "$recipient" -o "$out/$1.age"; }
    for name in lldap-admin-password lldap-jwt-secret hubs-ldap-bind-password authelia-jwt-secret \
      authelia-storage-key authelia-session-secret authelia-oidc-hmac-secret authelia-ldap-password; do
      openssl rand -hex 32 | seal $name
    done
    printf 'hpt_%s\n' "$(openssl rand -hex 24)" | seal state-hub-bootstrap-admin-token
    age-keygen | seal state-hub-age-identity
    openssl genrsa 2048 | seal authelia-oidc-issuer-key
    for hub in state-hub dev-hub ops-hub; do
      secret=$(openssl rand -hex 32)
      printf '%s\n' "$secret" | seal $hub-oidc-client-secret
      printf '$plaintext$%s\n' "$secret" | seal authelia-oidc-$hub-client-digest
    done
    # The domain hubs' state hub tokens are created by the test script through the state hub's
    # API; these only satisfy the profile's list of secrets.
    for hub in dev-hub ops-hub; do
      printf 'hpt_created-by-the-test-script-0000000000\n' | seal $hub-state-hub-token
    done
  '';

  capabilitySettings = {
    ca_file = "${pki}/cluster-ca.pem";
    # The stub listens on loopback, which the SSRF guard blocks unless named here.
    allow_cidrs = [ "127.0.0.0/8" ];
  };
in
pkgs.testers.runNixOSTest {
  name = "hubplane-management-plane";

  nodes.machine =
    { lib, ... }:
    {
      imports = [ self.nixosModules.management-plane ];

      virtualisation = {
        memorySize = 3072;
        cores = 2;
        diskSize = 4096;
      };

      hubplane.managementPlane = {
        enable = true;
        inherit domain;
        secretsDir = "${secrets}";
        hostAgeIdentity = "${secrets}/host.key";
        tls = {
          certificateFile = "${pki}/mgmt.pem";
          keyFile = "${pki}/mgmt-key.pem";
          caFile = "${pki}/mgmt-ca.pem";
        };
        # curl cannot do TOTP; production keeps two_factor.
        authorizationPolicy = "one_factor";
        domainHubs = {
          dev-hub = {
            kind = "dev";
            port = 8081;
          };
          ops-hub = {
            kind = "ops";
            port = 8082;
          };
        };
      };

      services.lldap.ensureUsers.alice = {
        email = "alice@${domain}";
        displayName = "Alice Admin";
        password_file = "${pkgs.writeText "alice-password" alicePassword}";
        groups = [ "hub_admins" ];
      };

      services.state-hub.settings.capabilities = capabilitySettings // {
        probe_interval_seconds = 2;
      };

      # The domain hubs start once the test script has created their tokens.
      services.domain-hub.instances = lib.genAttrs [ "dev-hub" "ops-hub" ] (name: {
        stateHubTokenFile = lib.mkForce "/var/lib/hubplane-test/${name}.token";
        settings.capabilities = capabilitySettings;
      });
      systemd.services.domain-hub-dev-hub.wantedBy = lib.mkForce [ ];
      systemd.services.domain-hub-ops-hub.wantedBy = lib.mkForce [ ];

      # The stub HTTPS service: the repository's cluster stand-in (Python standard library).
      systemd.services.cluster-standin = {
        description = "Stub cluster capability interfaces";
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          DynamicUser = true;
          StateDirectory = "cluster-standin";
          ExecStart = lib.concatStringsSep " " [
            "${pkgs.python3}/bin/python3 ${../standins/cluster/server.py}"
            "--dir /var/lib/cluster-standin --host 127.0.0.1 --port 8443"
            "--cert ${pki}/cluster.pem --key ${pki}/cluster-key.pem"
            "--token-file ${pkgs.writeText "cluster-token" clusterToken}"
          ];
        };
      };

      networking.hosts."127.0.0.1" = [
        "auth.${domain}"
        "state.${domain}"
        "dev-hub.${domain}"
        "ops-hub.${domain}"
        "cluster.test"
      ];
      security.pki.certificateFiles = [ "${pki}/mgmt-ca.pem" ];
      environment.systemPackages = [
        pkgs.curl
        pkgs.jq
      ];
    };

  testScript = ''
    import json
    import shlex
    from urllib.parse import urlparse, parse_qs

    STATE = "http://127.0.0.1:8080"
    ADMIN = "/run/agenix/state-hub-bootstrap-admin-token"
    hubctl = f"hubctl --url {STATE} --token-file {ADMIN} --output json"


    def api(method, path, token_file=ADMIN, body=None):
        """A state hub API call over loopback with a bearer token kept in a file."""
        header = f"/tmp/auth-{abs(hash(token_file))}"
        machine.succeed(f"printf 'Authorization: Bearer %s\\n' \"$(cat {token_file})\" > {header}")
        data = f"-H 'Content-Type: application/json' --data-binary {shlex.quote(json.dumps(body))}" if body is not None else ""
        out = machine.succeed(f"curl -fsS -X {method} -H @{header} {data} {STATE}{path}")
        return json.loads(out) if out.strip() else None


    start_all()
    for unit in ["postgresql.target", "lldap.service", "authelia-mgmt.service", "caddy.service",
                 "state-hub.service", "cluster-standin.service"]:
        machine.wait_for_unit(unit)

    with subtest("the state hub is ready, behind Caddy with TLS"):
        machine.wait_until_succeeds("curl -fsS https://state.${domain}/readyz", timeout=180)
        machine.succeed("curl -fsS https://auth.${domain}/api/health")

    with subtest("the hub units are hardened and read their secrets as credentials"):
        show = machine.succeed("systemctl show state-hub -p DynamicUser -p Type -p WatchdogUSec -p LoadCredential")
        assert "DynamicUser=yes" in show and "Type=notify" in show, show
        machine.succeed("systemd-analyze security --threshold=15 state-hub.service")
        machine.succeed("stat -L -c '%a %U' /run/agenix/state-hub-bootstrap-admin-token | grep -qx '400 root'")
        machine.succeed("stat -L -c '%a %U' /run/agenix/authelia-jwt-secret | grep -qx '400 authelia-mgmt'")

    with subtest("two domain hubs register with the state hub and become ready"):
        for kind in ["dev", "ops"]:
            machine.succeed(f"{hubctl} hubs kinds add {kind}")
        machine.succeed("install -d -m 0700 /var/lib/hubplane-test")
        for hub, port in [("dev-hub", 8081), ("ops-hub", 8082)]:
            created = json.loads(machine.succeed(
                f"{hubctl} tokens create --name {hub} --subject hub:{hub} --kind service --role member"))
            machine.succeed(f"(umask 077; printf '%s\\n' {shlex.quote(created['token'])} > /var/lib/hubplane-test/{hub}.token)")
            machine.succeed(f"systemctl start domain-hub-{hub}.service")
            machine.wait_until_succeeds(f"curl -fsS http://127.0.0.1:{port}/readyz", timeout=120)
            machine.wait_until_succeeds(f"curl -fsS https://{hub}.${domain}/readyz", timeout=30)
            # At start the hub registers itself and submits its manifest as a draft; an admin
            # activates it.
            machine.wait_until_succeeds(f"{hubctl} hubs show {hub}", timeout=60)
            draft = machine.wait_until_succeeds(
                f"{hubctl} manifests list {hub} | jq -er '(if type == \"array\" then . else .items end)"
                " | map(select(.status == \"draft\")) | .[0].id'", timeout=60).strip()
            machine.succeed(f"{hubctl} manifests activate {draft}")
        machine.succeed("systemd-analyze security --threshold=15 domain-hub-ops-hub.service")

    with subtest("alice logs in through Authelia (OIDC code flow with PKCE) and the hub knows her"):
        jar = "-c /tmp/jar -b /tmp/jar"
        authorize = machine.succeed(
            f"curl -sS {jar} -o /dev/null -w '%{{redirect_url}}' https://state.${domain}/auth/oidc/start").strip()
        assert authorize.startswith("https://auth.${domain}/api/oidc/authorization?"), authorize
        portal = machine.succeed(f"curl -sS {jar} -o /dev/null -w '%{{redirect_url}}' {shlex.quote(authorize)}").strip()
        flow_id = parse_qs(urlparse(portal).query)["flow_id"][0]
        login = {"username": "alice", "password": "${alicePassword}", "keepMeLoggedIn": False,
                 "flow": "openid_connect", "flowID": flow_id}
        answer = json.loads(machine.succeed(
            f"curl -fsS {jar} -H 'Content-Type: application/json' "
            f"--data-binary {shlex.quote(json.dumps(login))} https://auth.${domain}/api/firstfactor"))
        assert answer["status"] == "OK", answer
        callback = machine.succeed(
            f"curl -sS {jar} -o /dev/null -w '%{{redirect_url}}' {shlex.quote(answer['data']['redirect'])}").strip()
        assert callback.startswith("https://state.${domain}/auth/callback?"), callback
        machine.succeed(f"curl -fsS {jar} -o /dev/null {shlex.quote(callback)}")
        machine.succeed("grep -q __Host-state-hub-session /tmp/jar")
        whoami = json.loads(machine.succeed(f"curl -fsS {jar} https://state.${domain}/api/v1/whoami"))
        assert whoami["subject"] == "alice" and "admin" in whoami["roles"], whoami

    with subtest("the state hub calls a capability on the stub HTTPS service through its own CA"):
        machine.succeed("printf '%s' '${clusterToken}' > /tmp/cluster.token")
        contract = json.loads(machine.succeed(
            "curl -fsS --cacert ${pki}/cluster-ca.pem -H \"Authorization: Bearer $(cat /tmp/cluster.token)\" "
            "https://cluster.test:8443/deployments/contract"))
        api("POST", "/api/v1/capabilities", body={
            "name": "deployments", "owning_service": "cluster-standin",
            "base_url": "https://cluster.test:8443/deployments", "health_path": "/healthz",
            "contract_path": "/contract", "contract": contract, "version": "1.0.0"})
        for step in ["accepted", "in_progress", "ready_for_review"]:
            api("POST", "/api/v1/capabilities/deployments/transition", body={"to": step})
        api("PUT", "/api/v1/capabilities/deployments/credential", body={"credential": "${clusterToken}"})
        # Completing is a review by a person other than the requester (the bootstrap admin).
        reviewer = json.loads(machine.succeed(
            f"{hubctl} tokens create --name reviewer --subject reviewer --kind human --role admin"))
        machine.succeed(f"(umask 077; printf '%s\\n' {shlex.quote(reviewer['token'])} > /tmp/reviewer.token)")
        api("POST", "/api/v1/capabilities/deployments/transition", token_file="/tmp/reviewer.token",
            body={"to": "completed", "note": "reviewed in the VM test"})
        machine.wait_until_succeeds(
            f"curl -fsS -H @/tmp/auth-{abs(hash(ADMIN))} {STATE}/api/v1/capabilities/deployments"
            " | jq -e '.health == \"healthy\"'", timeout=60)
        probes = api("GET", "/api/v1/capabilities/deployments/probes")
        probes = probes if isinstance(probes, list) else probes["items"]
        assert any(p["status"] == 200 for p in probes), probes
        callable_ = api("GET", "/api/v1/capabilities/callable", token_file="/var/lib/hubplane-test/ops-hub.token")
        assert [c["name"] for c in callable_["items"]] == ["deployments"], callable_

    with subtest("backups are scheduled for every hub database"):
        machine.succeed("systemctl list-timers | grep -q postgresqlBackup-state-hub")
        machine.succeed("systemctl start postgresqlBackup-state-hub.service")
        machine.succeed("test -s /var/backup/postgresql/state-hub.sql.zstd")
  '';
}
