# The management host (S1): a Hetzner Cloud server that boots a stock image once, and
# nixos-anywhere turning it into nixosConfigurations.mgmt: it kexecs into an installer,
# partitions the disk with the host's disko layout, installs the system with the host's age
# identity in place (so agenix decrypts every secret at the first boot), and reboots. Later
# applies redeploy the configuration when it changed (the module's nixos-rebuild step);
# day-to-day changes go through `nixos-rebuild switch` (docs/deploy.md).

locals {
  # The flake as nix sees it: a path made absolute (the module's scripts run elsewhere), or a
  # flake reference with a scheme (git+ssh://…, github:…) as given.
  flake = can(regex("^(/|[a-z][a-z0-9+]*:)", var.flake)) ? var.flake : abspath("${path.module}/${var.flake}")
  host  = "${local.flake}#nixosConfigurations.${var.nixos_configuration}.config.system.build"

  # Where the management-plane profile looks for the host's identity
  # (hubplane.managementPlane.hostAgeIdentity, which age.identityPaths is set to).
  host_age_identity_target = "var/lib/agenix/host.key"

  labels = {
    app  = "hubplane"
    role = "management-plane"
  }

  # Every IPv4 and IPv6 address.
  anywhere = ["0.0.0.0/0", "::/0"]
}

resource "hcloud_ssh_key" "operator" {
  for_each = var.ssh_public_keys

  name       = "${var.server_name}-${each.key}"
  public_key = each.value
  labels     = local.labels
}

# Inbound TCP 22, 80 and 443 over IPv4 and IPv6, nothing else (the NixOS firewall on the host
# says the same: the profile asserts it). Outbound is not filtered: the host fetches ACME
# certificates and reaches the cluster's capability interfaces over HTTPS.
resource "hcloud_firewall" "mgmt" {
  name   = "${var.server_name}-inbound"
  labels = local.labels

  rule {
    description = "SSH (keys only): operators, nixos-anywhere, nixos-rebuild"
    direction   = "in"
    protocol    = "tcp"
    port        = "22"
    source_ips  = var.ssh_allowed_cidrs
  }

  rule {
    description = "HTTP: ACME HTTP-01 challenges and the redirect to HTTPS (Caddy)"
    direction   = "in"
    protocol    = "tcp"
    port        = "80"
    source_ips  = local.anywhere
  }

  rule {
    description = "HTTPS: Authelia and every hub behind Caddy"
    direction   = "in"
    protocol    = "tcp"
    port        = "443"
    source_ips  = local.anywhere
  }
}

resource "hcloud_server" "mgmt" {
  name               = var.server_name
  server_type        = var.server_type
  location           = var.location
  image              = var.bootstrap_image
  ssh_keys           = [for key in hcloud_ssh_key.operator : key.id]
  firewall_ids       = [hcloud_firewall.mgmt.id]
  backups            = var.hetzner_backups
  delete_protection  = var.delete_protection
  rebuild_protection = var.delete_protection
  labels             = local.labels

  public_net {
    ipv4_enabled = true
    ipv6_enabled = true
  }

  lifecycle {
    # The image and the keys matter for the first boot only: nixos-anywhere replaces the
    # system, and root's keys then come from the NixOS configuration. Changing either must
    # not destroy the management host.
    ignore_changes = [image, ssh_keys, user_data]

    precondition {
      condition     = !startswith(var.server_type, "cx") || contains(["fsn1", "nbg1", "hel1"], var.location)
      error_message = "CX server types exist in fsn1, nbg1 and hel1 only; in ${var.location} choose a cpx or ccx server_type."
    }
  }
}

# nix-community/nixos-anywhere, release 1.13.0 (tag 1.13.0 = commit bad98b0…).
module "nixos" {
  source = "git::https://github.com/nix-community/nixos-anywhere.git//terraform/all-in-one?ref=bad98b0685cf47eaeadcaf6787da8b51cf025693"

  nixos_system_attr      = "${local.host}.toplevel"
  nixos_partitioner_attr = "${local.host}.diskoScript"

  target_host = hcloud_server.mgmt.ipv4_address
  # A new server (a new id) is installed again; the same server is only redeployed.
  instance_id = hcloud_server.mgmt.id

  # Places the host's age identity at var/lib/agenix/host.key in the new system, 0600 root.
  extra_files_script = "${path.module}/host-age-identity.sh"
  extra_environment = {
    HUBPLANE_HOST_AGE_IDENTITY        = abspath(var.host_age_identity_file)
    HUBPLANE_HOST_AGE_IDENTITY_TARGET = local.host_age_identity_target
  }
}
