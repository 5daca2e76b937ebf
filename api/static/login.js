// Console sign-in: a username and a password traded for an HttpOnly session cookie
// (POST /api/v1/session). The page keeps no credential: the browser holds the cookie and
// no script can read it. The API requires CONSOLE_HEADERS on every change a cookie
// authenticates (its CSRF check, with SameSite=Strict; docs/SECURITY.md), so every
// request of the console carries them.
import { t } from "./i18n.js";

export const CONSOLE_HEADERS = Object.freeze({ "X-DeltaSense-Console": "1" });

// An older console kept a bearer token here; sessions replace it, so it goes.
localStorage.removeItem("ds.token");

const $ = (id) => document.getElementById(id);

// The text for a failed sign-in: the API says the same for a wrong password, an unknown
// name and a disabled account, and so does the page.
function failure(response) {
  if (response.status === 401) return t("login_failed");
  if (response.status === 429) {
    const wait = Number(response.headers.get("Retry-After")) || 60;
    return t("login_throttled").replace("{s}", String(wait));
  }
  return `${t("load_error")}: ${response.status}`;
}

// Wires the login form: on success `onSignedIn` runs (the console starts), on failure the
// reason is shown under the form and the password field is emptied for the next try.
export function bindLoginForm(onSignedIn) {
  const form = $("login-form");
  const button = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = JSON.stringify({ username: $("username").value.trim(), password: $("password").value });
    button.disabled = true;
    $("login-error").textContent = t("signing_in");
    try {
      const response = await fetch("/api/v1/session", {
        method: "POST",
        headers: { ...CONSOLE_HEADERS, "Content-Type": "application/json" },
        body,
      });
      $("password").value = "";
      if (!response.ok) {
        $("login-error").textContent = failure(response);
        $("password").focus();
        return;
      }
      $("login-error").textContent = "";
      onSignedIn();
    } catch (err) {
      $("login-error").textContent = `${t("load_error")}: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

export function focusLogin() {
  ($("username").value ? $("password") : $("username")).focus();
}

// Ends the session on the server (the cookie is cleared by the answer); the console then
// shows the login page whatever the network said.
export async function endSession() {
  try {
    await fetch("/api/v1/session", { method: "DELETE", headers: CONSOLE_HEADERS });
  } catch (_) { /* offline: the session still ends at its idle limit */ }
}

// Who is signed in, in the header (hidden when signed out).
export function showAccount(me) {
  $("who-name").textContent = me ? me.name : "";
  $("who").hidden = !me;
}
