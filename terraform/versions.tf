terraform {
  # OpenTofu 1.6+ reads this configuration as well.
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    hcloud = {
      source  = "hetznercloud/hcloud"
      version = "~> 1.52"
    }
    # Used inside the nixos-anywhere modules (nix builds through `external`, the install and
    # later deploys through `null_resource`); pinned here because those modules do not.
    external = {
      source  = "hashicorp/external"
      version = "~> 2.3"
    }
    null = {
      source  = "hashicorp/null"
      version = "~> 3.2"
    }
  }
}

provider "hcloud" {
  token = var.hcloud_token
}
