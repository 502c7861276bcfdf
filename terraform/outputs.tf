output "ipv4" {
  description = "Public IPv4 address of the management host: the A records of auth., state. and each hub's name."
  value       = hcloud_server.mgmt.ipv4_address
}

output "ipv6" {
  description = "Public IPv6 address of the management host: the AAAA records."
  value       = hcloud_server.mgmt.ipv6_address
}

output "ssh" {
  description = "SSH command for the management host (root, with an operator key)."
  value       = "ssh root@${hcloud_server.mgmt.ipv4_address}"
}

output "server_id" {
  description = "Hetzner Cloud id of the server; a new id means nixos-anywhere installed it afresh."
  value       = hcloud_server.mgmt.id
}
