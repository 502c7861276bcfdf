# What the state hub and domain hub modules share: the secret options, the TOML settings option,
# the hardened systemd unit and the assertions and warnings built from ./lib.nix.
{ lib, pkgs }:
let
  hubLib = import ./lib.nix;
  format = pkgs.formats.toml { };
in
{
  inherit hubLib format;

  # `*File` options, one per credential the hub reads (hubLib.credentials.<hub>).
  secretOptions =
    hub: optionPrefix:
    lib.mapAttrs
      (
        _: credential:
        lib.mkOption {
          type = lib.types.nullOr lib.types.path;
          default = null;
          example = "/run/agenix/${hub}-${credential}";
          description = ''
            File holding the secret the hub reads as the systemd credential `${credential}`
            (`LoadCredential=${credential}:<this file>`): the file may stay readable by root only,
            the hub reads its copy in `$CREDENTIALS_DIRECTORY`. Give the path of an agenix secret,
            never a Nix path literal, which would copy the secret into the world-readable store.
            Sets nothing in {option}`${optionPrefix}.settings`.
          '';
        }
      )
      hubLib.credentials.${hub};

  # The freeform settings, with the few keys the modules compute declared so they are typed and
  # documented. Any other key of the hub's config file can be set; the hub itself refuses
  # unknown keys, and the unit's `configtest` runs before every start.
  settingsOption =
    { hub
    , optionPrefix
    , extraOptions ? { }
    }:
    lib.mkOption {
      default = { };
      description = ''
        The hub's config file as Nix (`${hub} default-config` prints the commented example),
        rendered to TOML. Null values are left out. Secrets never go here: use the `*File` options.
      '';
      type = lib.types.submodule {
        freeformType = format.type;
        options = lib.recursiveUpdate
          {
            server = {
              listen = lib.mkOption {
                type = lib.types.nullOr lib.types.str;
                default = null;
                example = "127.0.0.1:8080";
                description = "Address to bind, `HOST:PORT`. Behind Caddy it stays on loopback.";
              };
              public_url = lib.mkOption {
                type = lib.types.nullOr lib.types.str;
                default = null;
                example = "https://hub.mgmt.example.org";
                description = "The `https://` URL people and hubs reach this hub at (its Caddy virtual host).";
              };
            };
            database.url = lib.mkOption {
              type = lib.types.nullOr lib.types.str;
              default = null;
              example = "postgres:///state-hub?host=/run/postgresql&user=state-hub";
              description = ''
                libpq URL of the hub's database, without a password. Set by the module when
                {option}`${optionPrefix}.database.createLocally` is on (local socket, peer authentication).
              '';
            };
          }
          extraOptions;
      };
    };

  databaseOptions = optionPrefix: defaultName: {
    createLocally = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Create the database and its role in the local PostgreSQL (`services.postgresql`), reached
        over the socket with peer authentication: no password exists.
      '';
    };
    name = lib.mkOption {
      type = lib.types.str;
      default = defaultName;
      defaultText = lib.literalExpression "config.${optionPrefix}.user";
      description = "The database's name; with createLocally it must equal the user (PostgreSQL's ensureDBOwnership).";
    };
  };

  # { assertions; warnings; } of one hub.
  checks =
    { option
    , settings
    , secrets
    , openFirewall
    , database
    , user
    , hub ? "state-hub"
    , extraProblems ? [ ]
    }:
    {
      assertions =
        map
          (message: {
            assertion = false;
            inherit message;
          })
          (
            hubLib.settingsProblems
              {
                inherit
                  option
                  settings
                  secrets
                  openFirewall
                  hub
                  ;
              }
            ++ lib.optional (database.createLocally && database.name != user) "${option}: database.name (${database.name}) must equal user (${user}) when database.createLocally is on: the role owns the database of its own name (peer authentication, ensureDBOwnership)."
            ++ extraProblems
          );
      warnings = hubLib.settingsWarnings { inherit option settings secrets; };
    };

  # The hardened unit of one hub process.
  service =
    { description
    , exe
    , configFile
    , user
    , secrets
    , credentialNames
    , watchdogSec
    , settings
    , localDatabase
    }:
    {
      inherit description;
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ] ++ lib.optional localDatabase "postgresql.target";
      requires = lib.optional localDatabase "postgresql.target";
      serviceConfig = hubLib.hardening // {
        Type = "notify";
        NotifyAccess = "main";
        User = user;
        Group = user;
        # Every problem of the config and of the secrets it names, one line each, before anything
        # connects or listens: a broken config fails the unit at once with its reasons in the
        # journal, and `nixos-rebuild switch` reports the unit as failed.
        ExecStartPre = "${exe} --config ${configFile} configtest";
        ExecStart = "${exe} --config ${configFile} serve";
        WatchdogSec = watchdogSec;
        Restart = "on-failure";
        RestartSec = 5;
        TimeoutStopSec = (settings.server.shutdown_grace_seconds or 20) + 15;
        LoadCredential = lib.mapAttrsToList (optionName: file: "${credentialNames.${optionName}}:${file}") (
          lib.filterAttrs (_: file: file != null) secrets
        );
      };
    };

  firewallPorts =
    settings: openFirewall:
    let
      listen = hubLib.parseListen (settings.server.listen or "");
    in
    lib.optional (openFirewall && listen != null) listen.port;
}
