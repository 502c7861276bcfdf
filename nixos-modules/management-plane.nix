# hubplane.managementPlane: the whole management host in one switch. PostgreSQL (local socket,
# peer authentication, one database per hub) with scheduled dumps, LLDAP as the directory,
# Authelia as the OIDC provider with one client per hub, Caddy as the ops-bridge (TLS, one virtual
# host per hub), the state hub and the domain hubs, every secret an agenix secret, and a firewall
# open on 22, 80 and 443 only. Needs the agenix module and services.state-hub /
# services.domain-hub (the flake's nixosModules.management-plane imports all three).
{ config
, lib
, pkgs
, ...
}:
let
  cfg = config.hubplane.managementPlane;
  hubLib = import ./lib.nix;

  stateHost = "state.${cfg.domain}";
  authHost = "auth.${cfg.domain}";
  baseDn = cfg.ldap.baseDn;
  domainHubNames = lib.attrNames cfg.domainHubs;
  hubNames = [ "state-hub" ] ++ domainHubNames;
  hostOf = hub: if hub == "state-hub" then stateHost else cfg.domainHubs.${hub}.host;

  secretList = hubLib.managementPlaneSecrets { domainHubs = domainHubNames; };
  secretPath = name: config.age.secrets.${name}.path;
  # Checked only for a directory in the flake's source (a path): a store path would be built first.
  missingSecrets = lib.optionals (builtins.isPath cfg.secretsDir) (
    lib.filter (s: !builtins.pathExists (cfg.secretsDir + "/${s.name}.age")) secretList
  );

  # Every value at default priority, so a host overrides any single key in
  # services.<hub>.settings without mkForce. Unset (null) keys are left out.
  defaults = settings: lib.mapAttrsRecursive (_: lib.mkDefault) (hubLib.withoutNulls settings);

  natsUrl = "nats://127.0.0.1:${toString cfg.nats.port}";
  hubSettings = hubLib.managementPlaneSettings {
    inherit (cfg) domain domainHubs breakGlass;
    ldapBaseDn = baseDn;
    stateHubPort = cfg.stateHub.port;
    caFile = cfg.tls.caFile;
    natsUrl = if cfg.nats.enable then natsUrl else null;
  };

  # Authelia's OIDC clients, one per hub, in a config file of their own: the client secret is
  # read from its agenix file by Authelia's template filter when it starts, so neither the
  # secret nor its digest is ever in the Nix store.
  clientLines = hub: [
    "- client_id: ${builtins.toJSON hub}"
    "  client_name: ${builtins.toJSON "Hubplane ${hub}"}"
    "  client_secret: {{ secret ${builtins.toJSON (secretPath "authelia-oidc-${hub}-client-digest")} | msquote }}"
    "  public: false"
    "  authorization_policy: ${builtins.toJSON cfg.authorizationPolicy}"
    "  require_pkce: true"
    "  pkce_challenge_method: S256"
    "  token_endpoint_auth_method: client_secret_basic"
    "  redirect_uris: [ ${builtins.toJSON "https://${hostOf hub}/auth/callback"} ]"
    "  scopes: [ openid, profile, email, groups ]"
    "  grant_types: [ authorization_code ]"
    "  response_types: [ code ]"
    "  consent_mode: implicit"
  ];
  oidcClientsFile = pkgs.writeText "authelia-mgmt-oidc-clients.yml" (
    lib.concatMapStrings (line: line + "\n") (
      [
        "identity_providers:"
        "  oidc:"
        "    clients:"
      ]
      ++ map (line: "      " + line) (lib.concatMap clientLines hubNames)
    )
  );

  tlsLine = lib.optionalString (cfg.tls.certificateFile != null) "tls ${cfg.tls.certificateFile} ${cfg.tls.keyFile}";
  # /metrics stays on the host (scrape 127.0.0.1:<port>/metrics); everything else goes to the hub.
  proxyTo = port: ''
    ${tlsLine}
    @metrics path /metrics /metrics/*
    respond @metrics 404
    reverse_proxy 127.0.0.1:${toString port}
  '';

  lldapCredentials = {
    admin-password = "lldap-admin-password";
    jwt-secret = "lldap-jwt-secret";
    hubplane-password = "hubs-ldap-bind-password";
    authelia-password = "authelia-ldap-password";
  };
  lldapCredential = name: "/run/credentials/lldap.service/${name}";

  # The agenix secrets each unit reads: a re-encrypted secret (`agenix -e`, then a deploy)
  # restarts exactly the units that read it, so a rotated secret takes effect at once.
  unitSecrets = {
    lldap = lib.attrValues lldapCredentials;
    authelia-mgmt = map (s: s.name) (lib.filter (s: s.owner == "authelia-mgmt") secretList);
    state-hub = [
      "state-hub-bootstrap-admin-token"
      "state-hub-oidc-client-secret"
      "hubs-ldap-bind-password"
      "state-hub-age-identity"
    ];
  }
  // lib.listToAttrs (
    map
      (hub: lib.nameValuePair "domain-hub-${hub}" [
        "${hub}-state-hub-token"
        "${hub}-oidc-client-secret"
        "hubs-ldap-bind-password"
      ])
      domainHubNames
  );

  firewallTcp = lib.sort lib.lessThan (lib.unique config.networking.firewall.allowedTCPPorts);
in
{
  options.hubplane.managementPlane = {
    enable = lib.mkEnableOption "the Hubplane management-plane profile";

    domain = lib.mkOption {
      type = lib.types.str;
      example = "mgmt.example.org";
      description = ''
        DNS zone of the management host. Virtual hosts: `auth.<domain>` (Authelia),
        `state.<domain>` (state hub), `<hub>.<domain>` (each domain hub); Authelia's session cookie
        is set for this domain.
      '';
    };

    acmeEmail = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = "Contact address for the ACME account Caddy uses when {option}`hubplane.managementPlane.tls` names no certificate.";
    };

    tls = {
      certificateFile = lib.mkOption {
        type = lib.types.nullOr lib.types.path;
        default = null;
        description = ''
          Certificate (PEM, with chain) Caddy serves for every virtual host, for hosts whose names
          are not publicly resolvable. Null: Caddy obtains certificates with ACME.
        '';
      };
      keyFile = lib.mkOption {
        type = lib.types.nullOr lib.types.path;
        default = null;
        description = "Its private key: an agenix secret readable by the `caddy` user.";
      };
      caFile = lib.mkOption {
        type = lib.types.nullOr lib.types.path;
        default = null;
        description = ''
          The CA of that certificate, if it is private: the hubs trust it for Authelia
          (`identity.oidc.ca_file`). Null with public certificates.
        '';
      };
    };

    secretsDir = lib.mkOption {
      type = lib.types.path;
      example = lib.literalExpression "./secrets";
      description = ''
        Directory of the agenix-encrypted secrets, one `<name>.age` per secret (secrets/README.md
        lists them). They are decrypted at activation with {option}`hubplane.managementPlane.hostAgeIdentity`.
      '';
    };

    hostAgeIdentity = lib.mkOption {
      type = lib.types.str;
      default = "/var/lib/agenix/host.key";
      description = ''
        The host's age identity, which every secret is encrypted to. Created before the install
        and copied by nixos-anywhere (`--extra-files`); see secrets/README.md.
      '';
    };

    ldap.baseDn = lib.mkOption {
      type = lib.types.str;
      default = hubLib.baseDnOf cfg.domain;
      defaultText = lib.literalExpression ''"dc=…" of hubplane.managementPlane.domain'';
      description = "LLDAP's base DN.";
    };

    authorizationPolicy = lib.mkOption {
      type = lib.types.enum [
        "one_factor"
        "two_factor"
      ];
      default = "two_factor";
      description = "Authelia's policy for every hub's OIDC client (and its default access-control policy).";
    };

    breakGlass = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Let members of the LLDAP group `hub_breakglass` log in to the hubs with their directory
        password while Authelia is down (journaled, and reviewed through an escalated decision).
      '';
    };

    nats = {
      enable = lib.mkEnableOption ''
        a local NATS server with JetStream (`services.nats`, loopback only) and the state hub's
        journal fan-out to it: every journal event on `org.statehub.<noun>.<verb>` in the stream
        `STATEHUB`, for consumers on this host (or behind an SSH tunnel)
      '';
      port = lib.mkOption {
        type = lib.types.port;
        default = 4222;
        description = "Loopback port of the NATS server.";
      };
    };

    stateHub.port = lib.mkOption {
      type = lib.types.port;
      default = 8080;
      description = "Loopback port of the state hub, behind `state.<domain>`.";
    };

    domainHubs = lib.mkOption {
      default = { };
      description = "Domain hub instances, each behind `<name>.<domain>` with its own OIDC client.";
      example = lib.literalExpression ''
        {
          ops-hub = { kind = "ops"; port = 8082; };
        }
      '';
      type = lib.types.attrsOf (
        lib.types.submodule (
          { name, ... }:
          {
            options = {
              kind = lib.mkOption {
                type = lib.types.str;
                description = "The hub's kind (`dev`, `ops`, `fin`, …).";
              };
              port = lib.mkOption {
                type = lib.types.port;
                description = "Its loopback port behind Caddy.";
              };
              host = lib.mkOption {
                type = lib.types.str;
                default = "${name}.${cfg.domain}";
                defaultText = lib.literalExpression ''"<name>.''${domain}"'';
                description = "Its virtual host.";
              };
              manifestFile = lib.mkOption {
                type = lib.types.path;
                default = "${config.services.domain-hub.package}/share/domain-hub/manifests/${name}.json";
                defaultText = lib.literalExpression ''"''${config.services.domain-hub.package}/share/domain-hub/manifests/<name>.json"'';
                description = "Its capability manifest.";
              };
            };
          }
        )
      );
    };

    backup = {
      startAt = lib.mkOption {
        type = lib.types.str;
        default = "*-*-* 02:15:00";
        description = "When the hub databases are dumped (`systemd.time`).";
      };
      location = lib.mkOption {
        type = lib.types.str;
        default = "/var/backup/postgresql";
        description = "Where the dumps go (one `<database>.sql.zstd` each, the previous one kept as `.prev`).";
      };
    };

    hubctlPackage = lib.mkOption {
      type = lib.types.nullOr lib.types.package;
      default = null;
      description = "hubctl, installed for operators on the host.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = missingSecrets == [ ];
        message = "hubplane.managementPlane: secrets missing in ${toString cfg.secretsDir}: ${
          lib.concatMapStringsSep ", " (s: "${s.name}.age") missingSecrets
        }. Create each with `agenix -e <name>.age` in secrets/ (secrets/README.md says what goes in each).";
      }
      {
        assertion = (cfg.tls.certificateFile == null) == (cfg.tls.keyFile == null);
        message = "hubplane.managementPlane.tls: set both certificateFile and keyFile, or neither (then Caddy uses ACME).";
      }
      {
        assertion = cfg.tls.certificateFile != null || cfg.acmeEmail != null;
        message = "hubplane.managementPlane: without tls.certificateFile Caddy obtains certificates with ACME; set acmeEmail for the ACME account.";
      }
      {
        assertion = lib.all hubLib.isHubName domainHubNames;
        message = "hubplane.managementPlane.domainHubs: names must be lowercase DNS labels of at most 31 characters, and not `auth`: ${lib.concatStringsSep ", " domainHubNames}.";
      }
      {
        assertion = !(lib.elem "state" (map (hub: lib.head (lib.splitString "." (hostOf hub))) domainHubNames));
        message = "hubplane.managementPlane.domainHubs: a domain hub's host collides with state.${cfg.domain}.";
      }
      {
        assertion =
          firewallTcp == [
            22
            80
            443
          ]
          && config.networking.firewall.allowedUDPPorts == [ ]
          && config.networking.firewall.allowedTCPPortRanges == [ ]
          && config.networking.firewall.allowedUDPPortRanges == [ ];
        message = "hubplane.managementPlane: the firewall must be open on TCP 22, 80 and 443 only, but allows TCP ${lib.concatMapStringsSep " " toString firewallTcp} (and UDP ${lib.concatMapStringsSep " " toString config.networking.firewall.allowedUDPPorts}). Hubs stay on loopback behind Caddy: leave their openFirewall off.";
      }
      {
        assertion = lib.all (port: port != cfg.stateHub.port) (lib.mapAttrsToList (_: hub: hub.port) cfg.domainHubs);
        message = "hubplane.managementPlane.domainHubs: a domain hub uses the state hub's port ${toString cfg.stateHub.port}.";
      }
    ];

    # agenix: every secret, decrypted at activation to /run/agenix/<name>. Secrets the hubs and
    # LLDAP read stay root-only (systemd hands the unit a copy with LoadCredential=); Authelia's
    # are owned by its user, since it reads them itself.
    age.identityPaths = [ cfg.hostAgeIdentity ];
    age.secrets = lib.listToAttrs (
      map
        (s: {
          inherit (s) name;
          value = {
            file = cfg.secretsDir + "/${s.name}.age";
            inherit (s) owner;
            group = if s.owner == "root" then "root" else s.owner;
            mode = "0400";
          };
        })
        secretList
    );

    networking.firewall = {
      enable = true;
      allowedTCPPorts = [
        80
        443
      ];
    };

    services.openssh = {
      enable = true;
      openFirewall = true;
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        PermitRootLogin = "prohibit-password";
      };
    };

    # PostgreSQL: the hub modules create one database and role per hub (peer authentication
    # over the socket, no passwords); nothing listens on the network.
    services.postgresql = {
      enable = true;
      enableTCPIP = false;
    };
    services.postgresqlBackup = {
      enable = true;
      databases = [ config.services.state-hub.database.name ] ++ map (hub: config.services.domain-hub.instances.${hub}.database.name) domainHubNames;
      inherit (cfg.backup) startAt location;
      compression = "zstd";
    };

    # LLDAP: the directory. The hubs' groups and two read-only service users (the hubs' and
    # Authelia's) exist declaratively; passwords come from agenix through LoadCredential, so the
    # dynamic user never reads the agenix files. The web UI stays on loopback (ssh -L 17170:…).
    services.lldap = {
      enable = true;
      settings = {
        ldap_host = "127.0.0.1";
        ldap_port = 3890;
        http_host = "127.0.0.1";
        http_port = 17170;
        http_url = "http://127.0.0.1:17170";
        ldap_base_dn = baseDn;
        ldap_user_email = "admin@${cfg.domain}";
        ldap_user_pass_file = lldapCredential "admin-password";
        force_ldap_user_pass_reset = "always";
      };
      environment.LLDAP_JWT_SECRET_FILE = lldapCredential "jwt-secret";
      ensureGroups = lib.genAttrs
        (
          [
            "hub_admins"
            "hub_members"
            "hub_viewers"
          ]
          ++ lib.optional cfg.breakGlass "hub_breakglass"
        )
        (_: { });
      ensureUsers = {
        hubplane = {
          email = "hubplane@${cfg.domain}";
          displayName = "Hubplane hubs (directory look-ups)";
          password_file = lldapCredential "hubplane-password";
          groups = [ "lldap_strict_readonly" ];
        };
        authelia = {
          email = "authelia@${cfg.domain}";
          displayName = "Authelia (authentication backend)";
          password_file = lldapCredential "authelia-password";
          groups = [ "lldap_strict_readonly" ];
        };
      };
    };

    # Authelia: OIDC provider for every hub, LLDAP as its user backend.
    services.authelia.instances.mgmt = {
      enable = true;
      secrets = {
        jwtSecretFile = secretPath "authelia-jwt-secret";
        storageEncryptionKeyFile = secretPath "authelia-storage-key";
        sessionSecretFile = secretPath "authelia-session-secret";
        oidcHmacSecretFile = secretPath "authelia-oidc-hmac-secret";
        oidcIssuerPrivateKeyFile = secretPath "authelia-oidc-issuer-key";
      };
      environmentVariables.AUTHELIA_AUTHENTICATION_BACKEND_LDAP_PASSWORD_FILE = secretPath "authelia-ldap-password";
      settingsFiles = [ oidcClientsFile ];
      settings = {
        theme = "auto";
        server.address = "tcp://127.0.0.1:9091/";
        log.level = lib.mkDefault "info";
        authentication_backend = {
          password_reset.disable = true;
          ldap = {
            implementation = "lldap";
            address = "ldap://127.0.0.1:3890";
            base_dn = baseDn;
            user = "uid=authelia,ou=people,${baseDn}";
          };
        };
        # Only OIDC clients use Authelia here; with no rules the default policy must be a factor.
        access_control.default_policy = cfg.authorizationPolicy;
        session.cookies = [
          {
            inherit (cfg) domain;
            authelia_url = "https://${authHost}";
          }
        ];
        storage.local.path = "/var/lib/authelia-mgmt/db.sqlite3";
        # Replace with an smtp notifier to send password-reset and 2FA-registration mails.
        notifier.filesystem.filename = lib.mkDefault "/var/lib/authelia-mgmt/notifications.txt";
        totp.issuer = cfg.domain;
      };
    };

    # Caddy: the ops-bridge. TLS for every virtual host; it sets X-Forwarded-For, which the hubs
    # believe from loopback only (server.trusted_proxies).
    services.caddy = {
      enable = true;
      email = cfg.acmeEmail;
      virtualHosts = {
        ${authHost}.extraConfig = proxyTo 9091;
        ${stateHost}.extraConfig = proxyTo cfg.stateHub.port;
      }
      // lib.mapAttrs' (_: hub: lib.nameValuePair hub.host { extraConfig = proxyTo hub.port; }) cfg.domainHubs;
    };

    services.state-hub = {
      enable = true;
      settings = defaults hubSettings.state-hub;
      bootstrapAdminTokenFile = secretPath "state-hub-bootstrap-admin-token";
      oidcClientSecretFile = secretPath "state-hub-oidc-client-secret";
      ldapBindPasswordFile = secretPath "hubs-ldap-bind-password";
      ageIdentityFile = secretPath "state-hub-age-identity";
    };

    services.domain-hub.instances = lib.mapAttrs
      (name: _: {
        enable = true;
        settings = defaults hubSettings.domain-hubs.${name};
        stateHubTokenFile = secretPath "${name}-state-hub-token";
        oidcClientSecretFile = secretPath "${name}-oidc-client-secret";
        ldapBindPasswordFile = secretPath "hubs-ldap-bind-password";
      })
      cfg.domainHubs;

    systemd.services = lib.mkMerge [
      {
        lldap.serviceConfig.LoadCredential = lib.mapAttrsToList (credential: secret: "${credential}:${secretPath secret}") lldapCredentials;
        authelia-mgmt = {
          wants = [ "lldap.service" ];
          after = [ "lldap.service" ];
        };
      }
      # The hubs start after their identity providers, so the first login works at once.
      (lib.genAttrs ([ "state-hub" ] ++ map (hub: "domain-hub-${hub}") domainHubNames) (_: {
        wants = [
          "lldap.service"
          "authelia-mgmt.service"
        ];
        after = [
          "lldap.service"
          "authelia-mgmt.service"
        ];
      }))
      (lib.mapAttrs (_: names: { restartTriggers = map (name: config.age.secrets.${name}.file) names; }) unitSecrets)
      # The fan-out waits for NATS by itself; starting after it only spares a retry.
      (lib.mkIf cfg.nats.enable {
        state-hub = {
          wants = [ "nats.service" ];
          after = [ "nats.service" ];
        };
      })
    ];

    environment.systemPackages = lib.optional (cfg.hubctlPackage != null) cfg.hubctlPackage;

    # NATS with JetStream on loopback, fed by the state hub's journal fan-out. The stream is
    # derived data: the journal in PostgreSQL (backed up above) is the record, and a lost store
    # is refilled from the fan-out cursor (docs/state-hub.md).
    services.nats = lib.mkIf cfg.nats.enable {
      enable = true;
      jetstream = true;
      serverName = "mgmt";
      inherit (cfg.nats) port;
      settings.host = "127.0.0.1";
    };
  };
}
