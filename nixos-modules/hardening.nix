# The systemd sandbox every Hubplane unit runs in (state hub, every domain hub instance): one
# attrset, merged into each unit's serviceConfig. Plain data, no function and no nixpkgs, so the
# offline test suite evaluates it with a bare `nix-instantiate --eval --strict --json`, renders
# units from it and requires `systemd-analyze security` exposure <= 1.5 for each.
#
# What the hubs need, and so what stays allowed: TCP (listener, PostgreSQL over loopback or the
# local socket, Authelia, LLDAP, capability interfaces), AF_UNIX (the PostgreSQL socket,
# sd_notify, journald), reading their config from the store and their secrets from
# $CREDENTIALS_DIRECTORY. Nothing is written to disk: all state is in PostgreSQL.
{
  # A fresh, unprivileged user per start; secrets reach it only through LoadCredential=.
  DynamicUser = true;
  PrivateUsers = true;
  NoNewPrivileges = true;
  CapabilityBoundingSet = "";
  AmbientCapabilities = "";
  UMask = "0077";

  # File system: read-only everywhere, no home directories, no devices, private /tmp.
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  PrivateDevices = true;
  DevicePolicy = "closed";
  PrivateIPC = true;
  PrivateMounts = true;
  RemoveIPC = true;
  ProtectProc = "invisible";
  ProcSubset = "pid";

  # Kernel and host state the hubs never touch.
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectClock = true;
  ProtectHostname = true;
  LockPersonality = true;
  RestrictRealtime = true;
  RestrictSUIDSGID = true;
  RestrictNamespaces = true;
  MemoryDenyWriteExecute = true;
  KeyringMode = "private";

  # Sockets: IP and local sockets only (no netlink, packet or bluetooth sockets).
  RestrictAddressFamilies = [
    "AF_UNIX"
    "AF_INET"
    "AF_INET6"
  ];

  # System calls: what an ordinary network service makes, minus privileged and resource calls.
  SystemCallArchitectures = "native";
  SystemCallFilter = [
    "@system-service"
    "~@privileged"
    "~@resources"
  ];
  SystemCallErrorNumber = "EPERM";
}
