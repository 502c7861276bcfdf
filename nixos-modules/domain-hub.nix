# services.domain-hub.instances.<name>: one Hubplane domain hub per instance (dev-hub, ops-hub,
# fin-hub, …), each its own hardened unit `domain-hub-<name>`, dynamic user and database.
# See docs/deploy.md.
{ config
, lib
, pkgs
, ...
}:
let
  top = config.services.domain-hub;
  common = import ./common.nix { inherit lib pkgs; };
  inherit (common) hubLib;
  enabled = lib.filterAttrs (_: instance: instance.enable) top.instances;

  instanceModule =
    { name, config, ... }:
    let
      option = "services.domain-hub.instances.${name}";
    in
    {
      options = {
        enable = lib.mkEnableOption "the domain hub instance ${name}";

        package = lib.mkOption {
          type = lib.types.package;
          default = top.package;
          defaultText = lib.literalExpression "config.services.domain-hub.package";
          description = "The domain hub package of this instance.";
        };

        user = lib.mkOption {
          type = lib.types.str;
          default = name;
          description = ''
            Name of the unit's dynamic user, which is also its PostgreSQL role under peer
            authentication. Defaults to the instance name.
          '';
        };

        settings = common.settingsOption {
          hub = "domain-hub";
          optionPrefix = option;
          extraOptions = {
            hub = {
              name = lib.mkOption {
                type = lib.types.str;
                default = name;
                description = "The instance's name; its manifest's `hub` must equal it.";
              };
              kind = lib.mkOption {
                type = lib.types.nullOr lib.types.str;
                default = null;
                example = "ops";
                description = "The hub's kind (an admin adds it first: `hubctl hubs kinds add ops`).";
              };
              manifest_file = lib.mkOption {
                type = lib.types.nullOr lib.types.path;
                default = null;
                example = lib.literalExpression ''"''${pkgs.domain-hub}/share/domain-hub/manifests/ops-hub.json"'';
                description = "The capability manifest (JSON) this instance submits to the state hub.";
              };
            };
            state_hub.url = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = null;
              example = "http://127.0.0.1:8080";
              description = "The state hub's base URL (https://, or http:// to a loopback address).";
            };
          };
        };

        database = common.databaseOptions option config.user;

        openFirewall = lib.mkOption {
          type = lib.types.bool;
          default = false;
          description = "Open the port of `settings.server.listen` in the firewall.";
        };

        watchdogSec = lib.mkOption {
          type = lib.types.ints.between 5 600;
          default = 30;
          description = "`WatchdogSec=` of the unit.";
        };
      }
      // common.secretOptions "domain-hub" option;

      config.settings.database.url = lib.mkIf config.database.createLocally (
        lib.mkDefault (
          hubLib.localDatabaseUrl {
            database = config.database.name;
            inherit (config) user;
          }
        )
      );
    };

  perInstance =
    name: instance:
    let
      option = "services.domain-hub.instances.${name}";
      settings = hubLib.withoutNulls instance.settings;
      secrets = lib.genAttrs (lib.attrNames hubLib.credentials.domain-hub) (key: instance.${key});
    in
    {
      inherit settings secrets;
      configFile = common.format.generate "domain-hub-${name}.toml" settings;
      checks = common.checks {
        inherit option settings secrets;
        hub = "domain-hub";
        inherit (instance) openFirewall database user;
        extraProblems =
          lib.optional (!hubLib.isHubName name) "${option}: the instance name must be a lowercase DNS label of at most 31 characters (it names the unit, its user and its virtual host)."
          ++ lib.optional
            (
              (config.services.state-hub.enable or false) && instance.user == config.services.state-hub.user
            ) "${option}: user ${instance.user} is the state hub's user; every hub needs its own user and database.";
      };
    };

  instances = lib.mapAttrs perInstance enabled;

  listenOf = name: (hubLib.parseListen (instances.${name}.settings.server.listen or "")).port or null;
  duplicatePorts = lib.filter (port: port != null && lib.count (other: other == port) (map listenOf (lib.attrNames instances)) > 1) (
    lib.unique (map listenOf (lib.attrNames instances))
  );
in
{
  options.services.domain-hub = {
    package = lib.mkOption {
      type = lib.types.package;
      description = "The domain hub package instances use by default (the flake's `packages.<system>.domain-hub`).";
    };

    instances = lib.mkOption {
      type = lib.types.attrsOf (lib.types.submodule instanceModule);
      default = { };
      description = "Domain hub instances by name: one unit `domain-hub-<name>` each.";
      example = lib.literalExpression ''
        {
          ops-hub = {
            enable = true;
            settings = {
              hub.kind = "ops";
              hub.manifest_file = "''${pkgs.domain-hub}/share/domain-hub/manifests/ops-hub.json";
              server.listen = "127.0.0.1:8082";
              server.public_url = "https://ops-hub.mgmt.example.org";
              state_hub.url = "http://127.0.0.1:8080";
            };
            stateHubTokenFile = config.age.secrets.ops-hub-state-hub-token.path;
          };
        }
      '';
    };
  };

  config = lib.mkIf (enabled != { }) {
    assertions =
      lib.concatMap (instance: instance.checks.assertions) (lib.attrValues instances)
      ++ lib.optional (duplicatePorts != [ ]) {
        assertion = false;
        message = "services.domain-hub.instances: several instances listen on port(s) ${lib.concatMapStringsSep ", " toString duplicatePorts}; give each its own settings.server.listen.";
      };
    warnings = lib.concatMap (instance: instance.checks.warnings) (lib.attrValues instances);

    systemd.services = lib.mapAttrs'
      (
        name: instance:
          lib.nameValuePair "domain-hub-${name}" (
            common.service {
              description = "Hubplane domain hub ${name}";
              exe = lib.getExe' top.instances.${name}.package "domain-hub";
              inherit (instance) configFile secrets settings;
              inherit (top.instances.${name}) user watchdogSec;
              credentialNames = hubLib.credentials.domain-hub;
              localDatabase = top.instances.${name}.database.createLocally;
            }
          )
      )
      instances;

    networking.firewall.allowedTCPPorts = lib.concatLists (
      lib.mapAttrsToList (name: instance: common.firewallPorts instance.settings top.instances.${name}.openFirewall) instances
    );

    services.postgresql = lib.mkIf (lib.any (instance: instance.database.createLocally) (lib.attrValues enabled)) {
      enable = true;
      ensureDatabases = lib.mapAttrsToList (_: instance: instance.database.name) (
        lib.filterAttrs (_: instance: instance.database.createLocally) enabled
      );
      ensureUsers = lib.mapAttrsToList
        (_: instance: {
          name = instance.user;
          ensureDBOwnership = true;
        })
        (lib.filterAttrs (_: instance: instance.database.createLocally) enabled);
    };
  };
}
