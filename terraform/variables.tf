variable "hcloud_token" {
  type        = string
  sensitive   = true
  description = "Hetzner Cloud API token (read and write) of the project the management host lives in. Pass it as TF_VAR_hcloud_token, never in a file that is committed."

  validation {
    condition     = length(var.hcloud_token) == 64
    error_message = "hcloud_token must be a 64-character Hetzner Cloud API token."
  }
}

variable "ssh_public_keys" {
  type        = map(string)
  description = "Operators' SSH public keys by name (name => \"ssh-ed25519 AAAA… comment\"). Hetzner puts them on the first-boot image so nixos-anywhere can log in as root; after the install root accepts the keys in nixos-modules/hosts/mgmt/default.nix, so keep the two lists the same."

  validation {
    condition     = length(var.ssh_public_keys) > 0
    error_message = "ssh_public_keys needs at least one key: nixos-anywhere logs in with it."
  }

  validation {
    condition     = alltrue([for key in values(var.ssh_public_keys) : can(regex("^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com|ssh-rsa) [A-Za-z0-9+/=]+( .*)?$", key))])
    error_message = "Each entry of ssh_public_keys must be one OpenSSH public key line (ssh-ed25519 AAAA… comment)."
  }
}

variable "server_name" {
  type        = string
  default     = "mgmt"
  description = "Name of the server in Hetzner Cloud (also the prefix of the SSH key and firewall names). An RFC 1123 host name."

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", var.server_name))
    error_message = "server_name must be a lowercase RFC 1123 host name label (a-z, 0-9, '-', at most 63 characters)."
  }
}

variable "server_type" {
  type        = string
  default     = "cx22"
  description = "Hetzner Cloud server type. x86_64 only (nixosConfigurations.mgmt sets nixpkgs.hostPlatform = \"x86_64-linux\"); the CX types exist in the EU locations only. CX22 (2 vCPU, 4 GB) runs the whole management plane."

  validation {
    condition = contains([
      "cx22", "cx32", "cx42", "cx52",
      "cpx11", "cpx21", "cpx31", "cpx41", "cpx51",
      "ccx13", "ccx23", "ccx33", "ccx43", "ccx53", "ccx63",
    ], var.server_type)
    error_message = "server_type must be an x86_64 Hetzner Cloud type: cx22, cx32, cx42, cx52, cpx11 … cpx51 or ccx13 … ccx63."
  }
}

variable "location" {
  type        = string
  default     = "fsn1"
  description = "Hetzner Cloud location: fsn1 (Falkenstein), nbg1 (Nuremberg), hel1 (Helsinki), ash (Ashburn), hil (Hillsboro) or sin (Singapore). Outside fsn1/nbg1/hel1 pick a cpx or ccx server_type."

  validation {
    condition     = contains(["fsn1", "nbg1", "hel1", "ash", "hil", "sin"], var.location)
    error_message = "location must be one of fsn1, nbg1, hel1, ash, hil, sin."
  }
}

variable "bootstrap_image" {
  type        = string
  default     = "debian-12"
  description = "Hetzner image the server boots once, only so nixos-anywhere can log in and kexec into its installer; the disk is then repartitioned (disko) and NixOS installed. Changing it later changes nothing (ignored after creation)."

  validation {
    condition     = can(regex("^(debian|ubuntu|rocky|alma|fedora|centos-stream)-[0-9.]+$", var.bootstrap_image))
    error_message = "bootstrap_image must be a Hetzner Linux image name such as debian-12 or ubuntu-24.04."
  }
}

variable "flake" {
  type        = string
  default     = ".."
  description = "The Hubplane flake holding the host's configuration: a path relative to this directory (default: the checkout, one level up), an absolute path, or a flake reference such as git+ssh://…?ref=main. Nix sees only files git tracks: git add the secrets/*.age files first."

  validation {
    condition     = length(trimspace(var.flake)) > 0 && !strcontains(var.flake, "#")
    error_message = "flake is the flake itself, without #attribute: nixos_configuration names the host."
  }
}

variable "nixos_configuration" {
  type        = string
  default     = "mgmt"
  description = "Name of the host in the flake's nixosConfigurations: `.#mgmt` installs nixosConfigurations.mgmt (nixos-modules/hosts/mgmt) with its disko layout."

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+$", var.nixos_configuration))
    error_message = "nixos_configuration must be a plain attribute name such as mgmt."
  }
}

variable "host_age_identity_file" {
  type        = string
  default     = "../extra/var/lib/agenix/host.key"
  description = "The host's age identity on this workstation (made before the install: secrets/README.md). nixos-anywhere copies it to /var/lib/agenix/host.key (mode 0600), where hubplane.managementPlane.hostAgeIdentity and age.identityPaths expect it. Needed only while nixos-anywhere installs; only its path enters Terraform, never the key, so the state holds no secret of the host."

  # Not checked with fileexists(): after the install the file is deleted from the workstation, and
  # later plans (which only redeploy) must not need it. host-age-identity.sh checks it when
  # nixos-anywhere runs.
  validation {
    condition     = length(trimspace(var.host_age_identity_file)) > 0
    error_message = "host_age_identity_file must name the host's age identity file."
  }
}

variable "ssh_allowed_cidrs" {
  type        = list(string)
  default     = ["0.0.0.0/0", "::/0"]
  description = "Networks allowed to reach SSH (TCP 22); IPv4 and IPv6 CIDRs. Narrow it to the operators' networks where they have fixed addresses. HTTP and HTTPS stay open to everyone (Caddy, ACME)."

  validation {
    condition     = length(var.ssh_allowed_cidrs) > 0 && alltrue([for cidr in var.ssh_allowed_cidrs : can(cidrhost(cidr, 0))])
    error_message = "ssh_allowed_cidrs must be a non-empty list of CIDRs such as 203.0.113.0/24 or 2001:db8::/32."
  }
}

variable "delete_protection" {
  type        = bool
  default     = true
  description = "Hetzner's delete and rebuild protection on the server: `terraform destroy` (or a change that replaces it) fails until this is set to false and applied."
}

variable "hetzner_backups" {
  type        = bool
  default     = true
  description = "Hetzner's daily server backups (whole disk, 7 kept; 20 % of the server price). They complement, not replace, the PostgreSQL dumps copied off the host (docs/operations)."
}
