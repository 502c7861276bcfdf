# agenix recipients: who can decrypt each secret. The `agenix` CLI reads this file
# (`agenix -e <name>.age`, `agenix -r`); the host decrypts with its own age identity at activation.
# The secret names come from the management-plane profile itself (nixos-modules/lib.nix), so this
# list and what the host expects cannot drift apart. secrets/README.md says what goes in each.
let
  # REPLACE: the operators' age public keys (`age-keygen -y ~/.config/age/hubplane.key`) or
  # their SSH ed25519 public keys. Every operator can read and re-encrypt every secret.
  operators = [
    "age1replaceoperatorreplaceoperatorreplaceoperatorreplaceoperat"
  ];

  # REPLACE: the management host's age public key (`age-keygen -y host.key`), made before the
  # install and copied to the host as /var/lib/agenix/host.key (see README.md).
  mgmtHost = "age1replacehostreplacehostreplacehostreplacehostreplacehostre";

  hubLib = import ../nixos-modules/lib.nix;
  secrets = hubLib.managementPlaneSecrets {
    domainHubs = builtins.attrNames (import ../nixos-modules/hosts/mgmt/hubs.nix);
  };
in
builtins.listToAttrs (
  map
    (secret: {
      name = "${secret.name}.age";
      value.publicKeys = operators ++ [ mgmtHost ];
    })
    secrets
)
