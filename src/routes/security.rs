//! `/account/security`, the authenticator app, recovery codes and passkeys of the signed-in user.
