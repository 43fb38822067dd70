// Passkeys: the browser half of the WebAuthn ceremonies (the server half is src/routes/passkeys/).
// Loaded with `defer` by the pages that offer passkeys; no inline script anywhere, so the
// Content-Security-Policy keeps scripts to this site. Every page works without it, except passkeys.
//
// Each ceremony: POST …/start (JSON, the page's CSRF token in X-CSRF-Token) answers the options for
// navigator.credentials.create/get and a ceremony id; the authenticator's answer goes to POST …/finish,
// whose answer says where to go ({"redirect": PATH}) or what went wrong ({"error": MESSAGE}).
(function () {
  "use strict";

  var supported = typeof window.PublicKeyCredential === "function" && !!navigator.credentials;

  // base64url (no padding) <-> ArrayBuffer: WebAuthn speaks bytes, JSON speaks text.
  function toBuffer(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var binary = atob(b64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  // The server leaves out what it does not set; a null left anywhere would make the browser refuse.
  function withoutNulls(value) {
    if (Array.isArray(value)) return value.map(withoutNulls);
    if (value && typeof value === "object") {
      var out = {};
      Object.keys(value).forEach(function (k) {
        if (value[k] !== null && value[k] !== undefined) out[k] = withoutNulls(value[k]);
      });
      return out;
    }
    return value;
  }

  function withIds(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: toBuffer(c.id) });
    });
  }

  function creationOptions(options) {
    var pk = withoutNulls(options.publicKey);
    pk.challenge = toBuffer(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: toBuffer(pk.user.id) });
    if (pk.excludeCredentials) pk.excludeCredentials = withIds(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(options) {
    var pk = withoutNulls(options.publicKey);
    pk.challenge = toBuffer(pk.challenge);
    if (pk.allowCredentials) pk.allowCredentials = withIds(pk.allowCredentials);
    return { publicKey: pk };
  }

  function registrationJSON(credential) {
    var results = credential.getClientExtensionResults ? credential.getClientExtensionResults() : {};
    var extensions = results.credProps ? { credProps: { rk: !!results.credProps.rk } } : {};
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        attestationObject: toText(credential.response.attestationObject),
        clientDataJSON: toText(credential.response.clientDataJSON),
      },
      extensions: extensions,
    };
  }

  function assertionJSON(credential) {
    var r = credential.response;
    return {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        authenticatorData: toText(r.authenticatorData),
        clientDataJSON: toText(r.clientDataJSON),
        signature: toText(r.signature),
        userHandle: r.userHandle && r.userHandle.byteLength ? toText(r.userHandle) : null,
      },
      extensions: {},
    };
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // A message under the button (made on first use, so any page's button gets one).
  function say(button, text) {
    var el = button.parentNode.querySelector(".passkey-message");
    if (!el) {
      el = document.createElement("p");
      el.className = "alert passkey-message";
      el.setAttribute("role", "alert");
      button.insertAdjacentElement("afterend", el);
    }
    el.textContent = text || "";
    el.hidden = !text;
  }

  // Thrown to stop a ceremony quietly: the browser is already on its way elsewhere.
  var LEAVING = {};

  function go(path) {
    window.location.assign(path);
    throw LEAVING;
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body || {}),
    }).then(function (res) {
      // A redirect answer (to confirm who you are first, or to sign in again) was followed by fetch:
      // the browser goes there itself.
      if (res.redirected) go(res.url);
      return res.json().then(
        function (data) { return { res: res, data: data }; },
        function () { return { res: res, data: null }; }
      );
    }).then(function (answer) {
      var data = answer.data || {};
      if (!answer.res.ok) {
        var error = new Error(data.error || "The server could not do that (" + answer.res.status + "). Please try again.");
        error.redirect = data.redirect;
        throw error;
      }
      return data;
    });
  }

  function explain(error) {
    switch (error && error.name) {
      case "NotAllowedError":
        return "The passkey request was cancelled or timed out.";
      case "InvalidStateError":
        return "This authenticator already holds a passkey for your account.";
      case "SecurityError":
        return "This browser does not allow passkeys for this address.";
      case "NotSupportedError":
        return "This authenticator cannot make a passkey for this site.";
      default:
        return (error && error.message) || "Something went wrong. Please try again.";
    }
  }

  // Runs one ceremony for `button`: `start` gives the options, `ask` the authenticator's answer,
  // `finish` sends it; then the browser goes where the server says.
  function ceremony(button, run) {
    if (!supported) {
      say(button, "This browser does not support passkeys.");
      return;
    }
    button.disabled = true;
    say(button, "");
    run()
      .then(function (data) {
        if (data && data.redirect) go(data.redirect);
      })
      .catch(function (error) {
        if (error === LEAVING) return;
        say(button, explain(error));
        if (error && error.redirect) window.setTimeout(function () { window.location.assign(error.redirect); }, 1500);
      })
      .then(function () {
        button.disabled = false;
      });
  }

  // The second step's *Trust this browser* box, when the page has one.
  function trusted() {
    var box = document.getElementById("trust-browser");
    return !!(box && box.checked);
  }

  function verifyWith(base, next) {
    return post(base + "/start").then(function (started) {
      return navigator.credentials.get(requestOptions(started.options)).then(function (credential) {
        var answer = { ceremony: started.ceremony, credential: assertionJSON(credential), next: next, trust: trusted() };
        return post(base + "/finish", answer);
      });
    });
  }

  // Passkey autofill: where the browser supports conditional mediation, the username field offers
  // the user's passkeys (autocomplete="username webauthn"); picking one signs in. The request waits
  // quietly in the background; the button stays for browsers without it, and pressing it ends the
  // waiting request first (a page may have one WebAuthn request at a time).
  var waiting = null;
  var autofillTries = 0;

  function autofill(next) {
    if (++autofillTries > 3) return; // a browser that keeps refusing at once gets the button only
    var field = document.getElementById("username");
    var wanted = field && /\bwebauthn\b/.test(field.getAttribute("autocomplete") || "");
    if (!supported || !wanted || typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") return;
    PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
      if (!available) return;
      post("/login/passkey/start").then(function (started) {
        waiting = new AbortController();
        var options = requestOptions(started.options);
        options.mediation = "conditional";
        options.signal = waiting.signal;
        return navigator.credentials.get(options).then(function (credential) {
          waiting = null;
          return post("/login/passkey/finish", { ceremony: started.ceremony, credential: assertionJSON(credential), next: next });
        });
      }).then(function (data) {
        if (data && data.redirect) go(data.redirect);
      }).catch(function (error) {
        if (error === LEAVING || (error && error.name === "AbortError")) return;
        // Not accepted, or expired while waiting: say so where the button is, and offer it again.
        var button = document.getElementById("passkey-sign-in");
        if (button && error && error.name !== "NotAllowedError") say(button, explain(error));
        waiting = null;
        autofill(next);
      });
    });
  }

  var signIn = document.getElementById("passkey-sign-in");
  if (signIn) {
    // Hidden in the page, so that browsers without scripts or passkeys, and servers that cannot offer
    // them (data-unavailable), never show a dead button.
    signIn.hidden = !supported || signIn.hasAttribute("data-unavailable");
    var next = signIn.getAttribute("data-next") || "/";
    signIn.addEventListener("click", function () {
      if (waiting) {
        waiting.abort();
        waiting = null;
      }
      ceremony(signIn, function () {
        return verifyWith("/login/passkey", next);
      });
    });
    if (!signIn.hasAttribute("data-unavailable")) autofill(next);
  }

  var verify = document.getElementById("passkey-verify");
  if (verify) {
    // The same button confirms a sign-in's second step or who you are before a sensitive action.
    var base = window.location.pathname === "/reauth" ? "/reauth/passkey" : "/login/mfa/passkey";
    verify.addEventListener("click", function () {
      ceremony(verify, function () {
        return verifyWith(base, verify.getAttribute("data-next") || "/");
      });
    });
  }

  var add = document.getElementById("add-passkey");
  if (add) {
    add.addEventListener("click", function (event) {
      event.preventDefault();
      var field = document.getElementById("passkey-name");
      var name = field ? field.value.trim() : "";
      if (!name) {
        say(add, "Give the passkey a name, such as the device it is on.");
        if (field) field.focus();
        return;
      }
      ceremony(add, function () {
        return post("/account/passkeys/register/start", { name: name }).then(function (started) {
          return navigator.credentials.create(creationOptions(started.options)).then(function (credential) {
            return post("/account/passkeys/register/finish", {
              ceremony: started.ceremony,
              credential: registrationJSON(credential),
            });
          });
        });
      });
    });
  }
})();
