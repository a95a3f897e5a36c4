// A stock OIDC client discovering authd from nothing but its issuer URL (SPEC §9):
// openid-client reads the discovery document, jose verifies an access token with the keys
// at the jwks_uri it names, and openid-client reads the userinfo endpoint with the token.
// Usage: node discover.mjs <issuer URL> <access token>. Prints one JSON line.

// Node 18 has WebCrypto, but not yet as a global.
globalThis.crypto ??= (await import("node:crypto")).webcrypto;
const oidc = await import("openid-client");
const { createRemoteJWKSet, jwtVerify } = await import("jose");

const [issuer, accessToken] = process.argv.slice(2);
const config = await oidc.discovery(new URL(issuer), "authd-test", undefined, oidc.None(), {
  // The test's authd listens on plain http on loopback.
  execute: [oidc.allowInsecureRequests],
});
const metadata = config.serverMetadata();
const keys = createRemoteJWKSet(new URL(metadata.jwks_uri));
const { payload, protectedHeader } = await jwtVerify(accessToken, keys, {
  issuer: metadata.issuer,
  algorithms: metadata.id_token_signing_alg_values_supported,
});
const userinfo = await oidc.fetchUserInfo(config, accessToken, payload.sub);
console.log(
  JSON.stringify({
    issuer: metadata.issuer,
    alg: protectedHeader.alg,
    kid: protectedHeader.kid,
    sub: payload.sub,
    sid: payload.sid,
    userinfo,
  }),
);
