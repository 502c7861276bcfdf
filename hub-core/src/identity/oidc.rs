//! The OIDC relying party: discovery, authorization code flow with PKCE, id_token and userinfo.
