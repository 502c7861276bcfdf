# Fixtures of tests/suites/nix.sh, built only from nixos-modules/lib.nix (no nixpkgs): the settings
# the management-plane profile and the hub modules give each hub, for a sample host like the
# VM test's, and the modules' assertion messages for contradictory settings.
{ caFile, clusterCaFile, manifestDir, credentialsDir }:
let
  hubLib = import ../../../nixos-modules/lib.nix;
  domain = "mgmt.example.org";

  profile = hubLib.managementPlaneSettings {
    inherit domain caFile;
    # hubplane.managementPlane.nats.enable: the journal fan-out to the local NATS server.
    natsUrl = "nats://127.0.0.1:4222";
    ldapBaseDn = hubLib.baseDnOf domain;
    stateHubPort = 8080;
    domainHubs = {
      dev-hub = {
        kind = "dev";
        port = 8081;
        host = "dev-hub.${domain}";
        manifestFile = "${manifestDir}/dev-hub.json";
      };
      ops-hub = {
        kind = "ops";
        port = 8082;
        host = "ops-hub.${domain}";
        manifestFile = "${manifestDir}/ops-hub.json";
      };
    };
  };

  # What nixos-modules/state-hub.nix and domain-hub.nix add: the local database, peer auth.
  moduleDefaults = user: {
    database.url = hubLib.localDatabaseUrl {
      database = user;
      inherit user;
    };
  };

  # What a host adds for a cluster with a private CA on a private network (the VM test does).
  clusterAccess = {
    capabilities = {
      ca_file = clusterCaFile;
      allow_cidrs = [ "10.20.0.0/16" ];
    };
  };

  hub = user: settings: hubLib.withoutNulls (hubLib.recursiveMerge (hubLib.recursiveMerge (moduleDefaults user) settings) clusterAccess);
  # services.domain-hub.instances.<name>.settings.hub.name defaults to the instance's name.
  domainHub = name: hub name (hubLib.recursiveMerge { hub.name = name; } profile.domain-hubs.${name});

  problems = settings: secrets: args: hubLib.settingsProblems ({ option = "services.sample"; inherit settings secrets; } // args);
  stateHubSecrets = {
    oidcClientSecretFile = "/run/agenix/state-hub-oidc-client-secret";
    ldapBindPasswordFile = "/run/agenix/hubs-ldap-bind-password";
  };
  stateHub = hub "state-hub" profile.state-hub;
in
{
  settings = {
    state-hub = stateHub;
    dev-hub = domainHub "dev-hub";
    ops-hub = domainHub "ops-hub";
    # services.state-hub.retiredAgeIdentityFiles during a rotation of the hub's age identity.
    state-hub-rotating = hubLib.recursiveMerge stateHub (hubLib.ageIdentitySettings {
      inherit credentialsDir;
      retired = [ "age-identity-retired-1" ];
    });
  };

  # Each must yield exactly the problems the suite expects (none for the profile's own settings).
  problems = {
    profile-state-hub = problems stateHub stateHubSecrets { };
    profile-ops-hub = problems (domainHub "ops-hub") (stateHubSecrets // { stateHubTokenFile = "/run/agenix/ops-hub-state-hub-token"; }) { hub = "domain-hub"; };
    http-issuer-outside-dev-mode = problems (hubLib.recursiveMerge stateHub { identity.oidc.issuer = "http://auth.${domain}"; }) stateHubSecrets { };
    break-glass-without-ldap = problems (stateHub // { identity = removeAttrs stateHub.identity [ "ldap" ]; }) stateHubSecrets { };
    open-firewall-on-loopback = problems stateHub stateHubSecrets { openFirewall = true; };
    oidc-without-client-secret = problems stateHub { ldapBindPasswordFile = "/run/agenix/hubs-ldap-bind-password"; } { };
    domain-hub-without-token = problems (domainHub "ops-hub") stateHubSecrets { hub = "domain-hub"; };
    nats-without-url = problems (stateHub // { nats = removeAttrs stateHub.nats [ "url" ]; }) stateHubSecrets { };
    nats-user-without-password = problems (hubLib.recursiveMerge stateHub { nats.user = "state-hub"; }) stateHubSecrets { };
  };

  warnings = {
    profile-state-hub = hubLib.settingsWarnings {
      option = "services.sample";
      settings = stateHub;
      secrets = stateHubSecrets;
    };
    inline-secrets = hubLib.settingsWarnings {
      option = "services.sample";
      settings = hubLib.recursiveMerge stateHub {
        database.url = "postgres://state-hub:hunter2hunter2@db.internal/state-hub";
        auth.bootstrap_admin_token_file = "/run/agenix/state-hub-bootstrap-admin-token";
      };
      secrets = stateHubSecrets // { bootstrapAdminTokenFile = "/nix/store/00000000000000000000000000000000-admin.token"; };
    };
  };
}
