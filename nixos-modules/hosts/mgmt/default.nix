# The example management host (nixosConfigurations.mgmt): a Hetzner Cloud VM running the whole
# management-plane profile. Copy it for your host and replace everything marked REPLACE.
{ lib, modulesPath, ... }:
let
  # REPLACE: the operators' SSH public keys (root logs in with these only, never a password).
  operatorSshKeys = [
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIREPLACEREPLACEREPLACEREPLACEREPLACEREPLACE operator@REPLACE"
  ];
in
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    ./disko.nix
  ];

  nixpkgs.hostPlatform = "x86_64-linux";
  networking.hostName = "mgmt";
  time.timeZone = "UTC";
  system.stateVersion = "26.05";

  boot.loader.grub = {
    enable = true;
    efiSupport = true;
    efiInstallAsRemovable = true;
  };

  users.users.root.openssh.authorizedKeys.keys = operatorSshKeys;

  hubplane.managementPlane = {
    enable = true;
    # REPLACE: the DNS zone whose auth., state. and <hub>. names point at this host.
    domain = "mgmt.example.org";
    # REPLACE: the contact address of the ACME account Caddy gets certificates with.
    acmeEmail = "ops@example.org";
    secretsDir = ../../../secrets;
    domainHubs = import ./hubs.nix;
  };

  assertions = [
    {
      assertion = !lib.any (key: lib.hasInfix "REPLACE" key) operatorSshKeys;
      message = "nixos-modules/hosts/mgmt: replace the placeholder operator SSH key (operatorSshKeys) with your operators' public keys.";
    }
  ];
}
