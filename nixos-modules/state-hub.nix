# services.state-hub: the Hubplane state hub (decisions, plans, the journal, the hub and
# capability registries) as one hardened systemd unit. See docs/deploy.md.
{ config
, lib
, pkgs
, ...
}:
let
  cfg = config.services.state-hub;
  common = import ./common.nix { inherit lib pkgs; };
  inherit (common) hubLib;
  option = "services.state-hub";

  settings = hubLib.withoutNulls cfg.settings;
  configFile = common.format.generate "state-hub.toml" settings;
  secrets = lib.genAttrs (lib.attrNames hubLib.credentials.state-hub) (name: cfg.${name});
  retiredIdentities = lib.imap1 (n: file: { name = "age-identity-retired-${toString n}"; inherit file; }) cfg.retiredAgeIdentityFiles;
in
{
  options.services.state-hub = {
    enable = lib.mkEnableOption "the Hubplane state hub";

    package = lib.mkOption {
      type = lib.types.package;
      description = "The state hub package (the flake's `packages.<system>.state-hub`).";
    };

    user = lib.mkOption {
      type = lib.types.str;
      default = "state-hub";
      description = ''
        Name of the unit's dynamic user (`DynamicUser=`), which is also its PostgreSQL role under
        peer authentication.
      '';
    };

    settings = common.settingsOption {
      hub = "state-hub";
      optionPrefix = option;
      extraOptions.nats = {
        enabled = lib.mkOption {
          type = lib.types.nullOr lib.types.bool;
          default = null;
          description = ''
            Publish every journal event to NATS JetStream (`<subject_prefix>.<noun>.<verb>`,
            exactly once in the stream; docs/state-hub.md, "Journal fan-out to NATS"). The other
            `[nats]` keys (`stream`, `subject_prefix`, `user`, `require_tls`, …) go beside it.
            Credentials never go here: {option}`${option}.natsCredsFile` (a `.creds` file) or
            `nats.user` with {option}`${option}.natsPasswordFile`, both passed with LoadCredential.
          '';
        };
        url = lib.mkOption {
          type = lib.types.nullOr lib.types.str;
          default = null;
          example = "nats://127.0.0.1:4222";
          description = "The NATS server (`nats://` on loopback, `tls://` elsewhere).";
        };
      };
    };

    database = common.databaseOptions option cfg.user;

    openFirewall = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Open the port of `settings.server.listen` in the firewall. Behind the profile's Caddy the
        hub listens on loopback and this stays off.
      '';
    };

    retiredAgeIdentityFiles = lib.mkOption {
      type = lib.types.listOf lib.types.path;
      default = [ ];
      example = lib.literalExpression "[ config.age.secrets.state-hub-age-identity-2025.path ]";
      description = ''
        Older age identities during a rotation of {option}`services.state-hub.ageIdentityFile`:
        they only open credentials sealed to them until `hubctl secret rotate --hub` has re-sealed
        everything to the current identity; then remove them. Passed with LoadCredential like
        every secret (`age-identity-retired-<n>`).
      '';
    };

    watchdogSec = lib.mkOption {
      type = lib.types.ints.between 5 600;
      default = 30;
      description = "`WatchdogSec=`: the hub pings the watchdog at half this interval; a hung hub is restarted.";
    };
  }
  // common.secretOptions "state-hub" option;

  config = lib.mkIf cfg.enable (
    lib.mkMerge [
      {
        services.state-hub.settings = {
          server.listen = lib.mkDefault "127.0.0.1:8080";
          database.url = lib.mkIf cfg.database.createLocally (
            lib.mkDefault (
              hubLib.localDatabaseUrl {
                database = cfg.database.name;
                inherit (cfg) user;
              }
            )
          );
        };

        inherit
          (common.checks {
            inherit
              option
              settings
              secrets
              ;
            inherit (cfg) openFirewall database user;
          })
          assertions
          warnings
          ;

        systemd.services.state-hub = common.service {
          description = "Hubplane state hub";
          exe = lib.getExe' cfg.package "state-hub";
          inherit
            configFile
            secrets
            settings
            ;
          inherit (cfg) user watchdogSec;
          credentialNames = hubLib.credentials.state-hub;
          localDatabase = cfg.database.createLocally;
        };

        networking.firewall.allowedTCPPorts = common.firewallPorts settings cfg.openFirewall;
      }

      (lib.mkIf (retiredIdentities != [ ]) {
        assertions = [
          {
            assertion = cfg.ageIdentityFile != null;
            message = "services.state-hub.retiredAgeIdentityFiles needs services.state-hub.ageIdentityFile: the current identity new credentials are sealed to.";
          }
        ];
        systemd.services.state-hub.serviceConfig.LoadCredential = map (identity: "${identity.name}:${identity.file}") retiredIdentities;
        services.state-hub.settings = hubLib.ageIdentitySettings {
          credentialsDir = "/run/credentials/state-hub.service";
          retired = map (identity: identity.name) retiredIdentities;
        };
      })

      (lib.mkIf cfg.database.createLocally {
        services.postgresql = {
          enable = true;
          ensureDatabases = [ cfg.database.name ];
          ensureUsers = [
            {
              name = cfg.user;
              ensureDBOwnership = true;
            }
          ];
        };
      })
    ]
  );
}
