# Pure helpers of the Hubplane NixOS modules: credential names, the settings the modules and the
# management-plane profile put into each hub's TOML, and the checks behind their assertions and
# warnings. Builtins only, no nixpkgs: the offline test suite (tests/suites/nix.sh) evaluates this
# file with a bare `nix-instantiate`, renders the settings to TOML and loads them with the hubs'
# own `configtest`, so a key the hubs do not know fails there, not on a host.
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    elem
    filter
    foldl'
    isAttrs
    isList
    isPath
    isString
    mapAttrs
    match
    removeAttrs
    storeDir
    stringLength
    substring
    ;

  startsWith = prefix: s: substring 0 (stringLength prefix) s == prefix;

  # `set.a.b.c` or `default` when any step is missing.
  attrAt =
    path: default: set:
    foldl' (acc: key: if isAttrs acc && acc ? ${key} then acc.${key} else default) set path;

  # b over a; attrsets merge key by key, anything else is replaced.
  recursiveMerge =
    a: b:
    a
    // mapAttrs
      (
        key: value: if isAttrs value && isAttrs (a.${key} or null) then recursiveMerge a.${key} value else value
      )
      b;

  # TOML has no null: an unset key is a missing key.
  withoutNulls =
    value:
    if isAttrs value then
      mapAttrs (_: withoutNulls) (removeAttrs value (filter (key: value.${key} == null) (attrNames value)))
    else if isList value then
      map withoutNulls (filter (item: item != null) value)
    else
      value;

  # "127.0.0.1:8080" or "[::1]:8080" -> { host; port; }
  parseListen =
    listen:
    let
      bracketed = match "\\[([^]]*)]:([0-9]+)" listen;
      plain = match "([^:]*):([0-9]+)" listen;
      parts = if bracketed != null then bracketed else plain;
    in
    if parts == null then
      null
    else
      {
        host = builtins.elemAt parts 0;
        port = builtins.fromJSON (builtins.elemAt parts 1);
      };

  isLoopbackHost =
    host:
    host == "localhost" || host == "::1" || host == "[::1]" || match "127\\.[0-9]+\\.[0-9]+\\.[0-9]+" host != null;

  # { scheme; host; } of an absolute URL, or null.
  parseUrl =
    url:
    let
      parts = match "([a-z][a-z0-9+.-]*)://(\\[[^]]*]|[^:/?#]*).*" url;
    in
    if isString url && parts != null then
      {
        scheme = builtins.elemAt parts 0;
        host = builtins.elemAt parts 1;
      }
    else
      null;

  isPlainHttp = url: (parseUrl url).scheme or null == "http";
  isLoopbackUrl = url: isLoopbackHost ((parseUrl url).host or "");

  # A password inside a libpq URL (`postgres://user:secret@host/db`) or key/value string.
  hasInlinePassword =
    url: isString url && (match "postgres(ql)?://[^/@]*:[^/@]+@.*" url != null || match ".*password=.*" url != null);

  # A Nix path literal is copied into the store when the unit is built; a store path already is there.
  isStorePath = p: isPath p || (isString p && startsWith "${storeDir}/" p);

  # The secrets a hub reads, as module option -> systemd credential name (what the hub looks up
  # in $CREDENTIALS_DIRECTORY when the matching `*_file` key is unset).
  credentials = {
    state-hub = {
      bootstrapAdminTokenFile = "bootstrap-admin-token";
      databasePasswordFile = "database-password";
      oidcClientSecretFile = "oidc-client-secret";
      ldapBindPasswordFile = "ldap-bind-password";
      ageIdentityFile = "age-identity";
      natsCredsFile = "nats-creds";
      natsPasswordFile = "nats-password";
    };
    domain-hub = {
      stateHubTokenFile = "state-hub-token";
      databasePasswordFile = "database-password";
      oidcClientSecretFile = "oidc-client-secret";
      ldapBindPasswordFile = "ldap-bind-password";
    };
  };

  # Settings keys that name a secret file. Set there, the path bypasses LoadCredential, and the
  # unit's DynamicUser cannot read a root-owned agenix file (paths into the unit's own
  # /run/credentials/<unit>/ are fine: that is where LoadCredential puts them).
  secretFileKeys = [
    [ "auth" "bootstrap_admin_token_file" ]
    [ "database" "password_file" ]
    [ "identity" "oidc" "client_secret_file" ]
    [ "identity" "ldap" "bind_password_file" ]
    [ "state_hub" "token_file" ]
    [ "secrets" "age_identity_files" ]
    [ "nats" "creds_file" ]
    [ "nats" "nkey_seed_file" ]
    [ "nats" "password_file" ]
  ];

  # What the modules require of a hub's settings, as messages (one assertion each).
  # `secrets` maps the module's `*File` options to their values (null when unset).
  settingsProblems =
    { option
    , settings
    , secrets
    , openFirewall ? false
    , hub ? "state-hub"
    }:
    let
      dev = settings.dev_mode or false;
      publicUrl = attrAt [ "server" "public_url" ] null settings;
      listen = parseListen (attrAt [ "server" "listen" ] "" settings);
      oidc = attrAt [ "identity" "oidc" ] null settings;
      ldap = attrAt [ "identity" "ldap" ] null settings;
      breakGlass = attrAt [ "identity" "break_glass" "group" ] null settings;
      # The hubs allow http:// only to a loopback host, and for the issuer and redirect only in dev mode.
      httpOutsideDev =
        key: url:
        if url != null && isPlainHttp url && !(dev && isLoopbackUrl url) then
          "${option}: settings.${key} is plain http (${url}); the hub accepts http:// here only for a loopback host with settings.dev_mode = true. Use https:// (Authelia behind Caddy)."
        else
          null;
      secretGiven = optionName: keyPath: secrets.${optionName} or null != null || attrAt keyPath null settings != null;
      stateHubUrl = attrAt [ "state_hub" "url" ] null settings;
      domainHub = hub == "domain-hub";
      nats = attrAt [ "nats" ] { } settings;
      natsOn = nats.enabled or false;
    in
    filter (message: message != null) [
      (
        if publicUrl == null then
          "${option}: settings.server.public_url is not set; it is the https:// URL people and hubs reach this hub at."
        else if isPlainHttp publicUrl && !isLoopbackUrl publicUrl && !dev then
          "${option}: settings.server.public_url is plain http (${publicUrl}) and not on loopback; use the https:// URL of its Caddy virtual host."
        else
          null
      )
      (
        if listen == null then
          "${option}: settings.server.listen must be HOST:PORT, e.g. 127.0.0.1:8080."
        else if openFirewall && isLoopbackHost listen.host then
          "${option}: openFirewall is set, but settings.server.listen (${listen.host}:${toString listen.port}) is a loopback address nobody outside can reach; listen on 0.0.0.0 or [::], or leave openFirewall off and publish the hub through Caddy."
        else
          null
      )
      (if oidc == null then null else httpOutsideDev "identity.oidc.issuer" (oidc.issuer or null))
      (if oidc == null then null else httpOutsideDev "identity.oidc.redirect_url" (oidc.redirect_url or null))
      (
        if oidc != null && !secretGiven "oidcClientSecretFile" [ "identity" "oidc" "client_secret_file" ] then
          "${option}: settings.identity.oidc is configured but the client secret is missing; set ${option}.oidcClientSecretFile (passed as the credential oidc-client-secret)."
        else
          null
      )
      (
        if ldap != null && !secretGiven "ldapBindPasswordFile" [ "identity" "ldap" "bind_password_file" ] then
          "${option}: settings.identity.ldap is configured but the bind password is missing; set ${option}.ldapBindPasswordFile (passed as the credential ldap-bind-password)."
        else
          null
      )
      (
        if
          ldap != null
          && (parseUrl (ldap.url or "")).scheme or null == "ldap"
          && !(ldap.starttls or false)
          && !isLoopbackUrl ldap.url
        then
          "${option}: settings.identity.ldap.url (${ldap.url}) is plain ldap:// to a remote host and would send passwords in clear text; use ldaps:// or starttls = true."
        else
          null
      )
      (
        if breakGlass != null && ldap == null then
          "${option}: settings.identity.break_glass.group is set, but break-glass logins bind to LDAP and settings.identity.ldap is not configured."
        else
          null
      )
      (
        if breakGlass != null && oidc == null then
          "${option}: settings.identity.break_glass.group is set, but break-glass is the fallback for OIDC and settings.identity.oidc is not configured."
        else
          null
      )
      (
        if natsOn && nats.url or null == null && nats.urls or [ ] == [ ] then
          "${option}: settings.nats.enabled is set but settings.nats.url is not; give the NATS server's URL (nats://127.0.0.1:4222 for the profile's local server)."
        else
          null
      )
      (
        if natsOn && nats ? user && !secretGiven "natsPasswordFile" [ "nats" "password_file" ] then
          "${option}: settings.nats.user is set but its password is missing; set ${option}.natsPasswordFile (passed as the credential nats-password)."
        else
          null
      )
      (
        if domainHub && attrAt [ "hub" "kind" ] null settings == null then
          "${option}: settings.hub.kind is not set; name the hub's kind (e.g. \"ops\"), which an admin adds first with `hubctl hubs kinds add`."
        else
          null
      )
      (
        if domainHub && attrAt [ "hub" "manifest_file" ] null settings == null then
          "${option}: settings.hub.manifest_file is not set; name the capability manifest (JSON) of this hub."
        else
          null
      )
      (
        if domainHub && stateHubUrl == null then
          "${option}: settings.state_hub.url is not set; give the state hub's URL (http://127.0.0.1:<port> on the same host)."
        else if domainHub && isPlainHttp stateHubUrl && !isLoopbackUrl stateHubUrl && !dev then
          "${option}: settings.state_hub.url (${stateHubUrl}) is plain http to a remote host; the hub's token would cross the network in clear text. Use https://."
        else
          null
      )
      (
        if domainHub && !secretGiven "stateHubTokenFile" [ "state_hub" "token_file" ] then
          "${option}: stateHubTokenFile is not set; the hub needs its API token for the state hub (hubctl tokens create --subject hub:<name> --kind service --role member)."
        else
          null
      )
    ];

  # What deserves a warning but may be intended: dev mode, secrets that end up world-readable in
  # the Nix store or that bypass LoadCredential.
  settingsWarnings =
    { option
    , settings
    , secrets
    }:
    concatLists [
      (
        if settings.dev_mode or false then
          [
            "${option}: settings.dev_mode = true relaxes the hub's production checks (plain http, inline passwords); never use it in production."
          ]
        else
          [ ]
      )
      (map (name: "${option}.${name} is (or is copied into) the Nix store, which every local user can read; give the path of an agenix secret as a string (config.age.secrets.<name>.path) instead.") (
        filter (name: isStorePath secrets.${name}) (filter (name: secrets.${name} != null) (attrNames secrets))
      ))
      (
        if hasInlinePassword (attrAt [ "database" "url" ] null settings) then
          [
            "${option}: settings.database.url contains a password, which lands in the world-readable Nix store; use peer authentication or ${option}.databasePasswordFile."
          ]
        else
          [ ]
      )
      (map (path: "${option}: settings.${concatStringsSep "." path} names a secret file directly; that path bypasses LoadCredential and the unit's dynamic user cannot read a root-owned secret. Use the module's *File option instead.") (
        filter
          (path:
          let
            value = attrAt path null settings;
            paths = if isList value then value else [ value ];
          in
          value != null && !builtins.all (startsWith "/run/credentials/") paths)
          secretFileKeys
      ))
    ];

  # The state hub's identities while one is being rotated: the current one first (new seals go
  # to it), then the retired ones, all passed with LoadCredential into `credentialsDir`.
  ageIdentitySettings =
    { credentialsDir, retired }:
    {
      secrets.age_identity_files = map (name: "${credentialsDir}/${name}") ([ credentials.state-hub.ageIdentityFile ] ++ retired);
    };

  # The state hub's journal fan-out to the profile's NATS server (loopback, JetStream, no
  # accounts: only local processes reach it).
  natsSettings = url: {
    enabled = true;
    inherit url;
  };

  # The peer-authenticated local socket URL of a database the module creates.
  localDatabaseUrl = { database, user }: "postgres:///${database}?host=/run/postgresql&user=${user}";

  # The proxies a hub behind the profile's Caddy believes X-Forwarded-For from.
  loopbackProxies = [
    "127.0.0.1/32"
    "::1/128"
  ];

  # What the management-plane profile puts into a hub's settings: its public URL behind Caddy,
  # the OIDC client registered for it in Authelia, the LLDAP directory, break-glass.
  managementPlaneHubSettings =
    { domain
    , host
    , clientId
    , ldapBaseDn
    , ldapBindDn
    , caFile ? null
    , breakGlassGroup ? null
    }:
    {
      server = {
        public_url = "https://${host}";
        trusted_proxies = loopbackProxies;
      };
      identity = {
        oidc = {
          issuer = "https://auth.${domain}";
          client_id = clientId;
          redirect_url = "https://${host}/auth/callback";
          ca_file = caFile;
        };
        ldap = {
          url = "ldap://127.0.0.1:3890";
          base_dn = ldapBaseDn;
          bind_dn = ldapBindDn;
        };
        break_glass.group = breakGlassGroup;
      };
    };

  # The settings the management-plane profile gives every hub (at default priority), from its
  # own options: { state-hub = <settings>; domain-hubs.<name> = <settings>; }. `domainHubs` are the
  # profile's evaluated `domainHubs` (kind, port, host, manifestFile per name).
  managementPlaneSettings =
    { domain
    , ldapBaseDn
    , stateHubPort
    , domainHubs
    , caFile ? null
    , breakGlass ? true
    , natsUrl ? null
    }:
    let
      forHub =
        clientId: host:
        managementPlaneHubSettings {
          inherit
            domain
            host
            clientId
            ldapBaseDn
            caFile
            ;
          ldapBindDn = "uid=hubplane,ou=people,${ldapBaseDn}";
          breakGlassGroup = if breakGlass then "hub_breakglass" else null;
        };
      loopback = port: "127.0.0.1:${toString port}";
    in
    {
      state-hub = recursiveMerge (forHub "state-hub" "state.${domain}") (
        {
          server.listen = loopback stateHubPort;
        }
        // (if natsUrl == null then { } else { nats = natsSettings natsUrl; })
      );
      domain-hubs = mapAttrs
        (
          name: hub:
            recursiveMerge (forHub name hub.host) {
              hub = {
                inherit (hub) kind;
                manifest_file = hub.manifestFile;
              };
              server.listen = loopback hub.port;
              state_hub.url = "http://${loopback stateHubPort}";
            }
        )
        domainHubs;
    };

  # `dc=mgmt,dc=example,dc=org` for `mgmt.example.org`.
  baseDnOf = domain: concatStringsSep "," (map (part: "dc=${part}") (filter isString (builtins.split "\\." domain)));

  # Every agenix secret of the management-plane profile, by name (the file is secrets/<name>.age).
  # `owner` is who reads it: root for secrets passed with LoadCredential, else the service user.
  managementPlaneSecrets =
    { domainHubs }:
    let
      autheliaOwned = name: {
        inherit name;
        owner = "authelia-mgmt";
      };
      rootOwned = name: {
        inherit name;
        owner = "root";
      };
      hubNames = [ "state-hub" ] ++ domainHubs;
    in
    concatLists [
      (map rootOwned [
        "lldap-admin-password"
        "lldap-jwt-secret"
        "hubs-ldap-bind-password"
        "state-hub-bootstrap-admin-token"
        "state-hub-age-identity"
      ])
      (map autheliaOwned [
        "authelia-jwt-secret"
        "authelia-storage-key"
        "authelia-session-secret"
        "authelia-oidc-hmac-secret"
        "authelia-oidc-issuer-key"
        "authelia-ldap-password"
      ])
      (map (hub: rootOwned "${hub}-oidc-client-secret") hubNames)
      (map (hub: autheliaOwned "authelia-oidc-${hub}-client-digest") hubNames)
      (map (hub: rootOwned "${hub}-state-hub-token") domainHubs)
    ];
in
{
  inherit
    ageIdentitySettings
    attrAt
    baseDnOf
    credentials
    isLoopbackHost
    isStorePath
    localDatabaseUrl
    loopbackProxies
    managementPlaneHubSettings
    managementPlaneSecrets
    managementPlaneSettings
    natsSettings
    parseListen
    recursiveMerge
    settingsProblems
    settingsWarnings
    withoutNulls
    ;

  hardening = import ./hardening.nix;

  # The hubs' names for the profile's Caddy virtual hosts and Authelia clients must be DNS labels.
  isHubName = name: match "[a-z][a-z0-9-]{0,30}" name != null && !(elem name [ "auth" ]);
}
