# The domain hubs of the example host, read by its configuration and by secrets/secrets.nix (each
# hub has its own secrets there): add a hub here, then create its secrets (secrets/README.md).
{
  dev-hub = {
    kind = "dev";
    port = 8081;
  };
  ops-hub = {
    kind = "ops";
    port = 8082;
  };
  fin-hub = {
    kind = "fin";
    port = 8083;
  };
}
