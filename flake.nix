{
  description = "Hubplane: the management plane of a small platform team (state hub, domain hubs, hubctl) and the NixOS host that runs it";

  # flake.lock is created by the first `nix flake lock` (or any nix command) on a Nix host and
  # then committed; bump it with `nix flake update`.
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";
    agenix = {
      url = "github:ryantm/agenix";
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.darwin.follows = "";
      inputs.home-manager.follows = "";
    };
    disko = {
      url = "github:nix-community/disko";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    { self
    , nixpkgs
    , agenix
    , disko
    }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      cargoToml = builtins.fromTOML (builtins.readFile ./Cargo.toml);

      # Only what the Rust build reads, so editing docs, tests or Nix files rebuilds nothing.
      rustSource = lib.fileset.toSource {
        root = ./.;
        fileset = lib.fileset.unions [
          ./Cargo.toml
          ./Cargo.lock
          ./hub-core
          ./hubs
          ./hubctl
          ./migrations
        ];
      };

      # One binary of the workspace per package: `cargo build -p <crate>`.
      hubPackage =
        pkgs:
        { crate
        , description
        , postInstall ? ""
        }:
        pkgs.rustPlatform.buildRustPackage {
          pname = crate;
          inherit (cargoToml.workspace.package) version;
          src = rustSource;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [
            "-p"
            crate
          ];
          # The tests need a PostgreSQL server, the LDAP/OIDC/cluster stand-ins and loopback
          # networking, none of which the build sandbox has. They run in ./scripts/test.sh, and
          # the built packages run for real in checks.<system>.vm-management-plane.
          doCheck = false;
          inherit postInstall;
          meta = {
            inherit description;
            license = lib.licenses.agpl3Plus;
            mainProgram = crate;
            platforms = lib.platforms.linux;
          };
        };

      packagesFor =
        pkgs:
        let
          build = hubPackage pkgs;
        in
        rec {
          state-hub = build {
            crate = "state-hub";
            description = "Hubplane state hub: decisions, plans, the hash-chained journal, the hub and capability registries";
            postInstall = ''
              install -Dm0644 hubs/state-hub/state-hub.example.toml $out/share/state-hub/state-hub.example.toml
            '';
          };
          domain-hub = build {
            crate = "domain-hub";
            description = "Hubplane domain hub: one binary, run as many instances (dev-hub, ops-hub, fin-hub)";
            postInstall = ''
              install -Dm0644 -t $out/share/domain-hub/manifests hubs/domain-hub/manifests/*.json
            '';
          };
          hubctl = build {
            crate = "hubctl";
            description = "Hubplane operator and automation CLI";
          };
          default = pkgs.symlinkJoin {
            name = "hubplane-${cargoToml.workspace.package.version}";
            paths = [
              state-hub
              domain-hub
              hubctl
            ];
          };
        };

      # Each module sets its package from this flake; `key` lets the profile and `default` import
      # the same module without declaring its options twice.
      hubModule = name: file: {
        key = "hubplane/${name}";
        imports = [
          (
            { lib, pkgs, ... }:
            {
              imports = [ file ];
              services.${name}.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.${name};
            }
          )
        ];
      };
    in
    {
      packages = forAllSystems packagesFor;

      nixosModules = {
        state-hub = hubModule "state-hub" ./nixos-modules/state-hub.nix;
        domain-hub = hubModule "domain-hub" ./nixos-modules/domain-hub.nix;
        management-plane = {
          key = "hubplane/management-plane";
          imports = [
            agenix.nixosModules.default
            self.nixosModules.state-hub
            self.nixosModules.domain-hub
            ./nixos-modules/management-plane.nix
            (
              { lib, pkgs, ... }:
              {
                hubplane.managementPlane.hubctlPackage = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.hubctl;
              }
            )
          ];
        };
        default = {
          key = "hubplane/default";
          imports = [
            self.nixosModules.state-hub
            self.nixosModules.domain-hub
            self.nixosModules.management-plane
          ];
        };
      };

      # The example management host: `nixos-anywhere --flake .#mgmt` installs it (issue 6's
      # Terraform does), `nixos-rebuild switch --flake .#mgmt --target-host root@<host>` changes it.
      nixosConfigurations.mgmt = lib.nixosSystem {
        modules = [
          disko.nixosModules.disko
          self.nixosModules.management-plane
          ./nixos-modules/hosts/mgmt
        ];
      };

      checks = forAllSystems (
        pkgs:
        {
          vm-management-plane = import ./tests/nixos/management-plane.nix { inherit self pkgs; };
        }
        // lib.mapAttrs' (name: lib.nameValuePair "package-${name}") self.packages.${pkgs.stdenv.hostPlatform.system}
      );

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            pkgs.postgresql
            pkgs.openssl
            pkgs.python3
            pkgs.nodejs
            pkgs.curl
            pkgs.jq
            pkgs.shellcheck
            pkgs.nixpkgs-fmt
            pkgs.deadnix
            pkgs.age
            agenix.packages.${pkgs.stdenv.hostPlatform.system}.default
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixpkgs-fmt);
    };
}
