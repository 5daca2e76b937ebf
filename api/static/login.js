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
  bindPasswordForm();
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

// Who is signed in, in the header (hidden when signed out); a token has no password.
export function showAccount(me) {
  $("who-name").textContent = me ? me.name : "";
  $("who").hidden = !me;
  $("passwd-open").hidden = !me || me.via !== "session";
  if (!me && $("passwd-dialog").open) $("passwd-dialog").close();
}

// The account changes its own password (PUT /api/v1/session/password): the API ends its
// other sessions and gives this browser a new cookie, so the console carries on.
function bindPasswordForm() {
  const dialog = $("passwd-dialog");
  const note = $("passwd-note");
  const fields = ["passwd-current", "passwd-new", "passwd-again"].map($);
  $("passwd-open").addEventListener("click", () => {
    for (const f of fields) f.value = "";
    note.textContent = "";
    dialog.showModal();
    fields[0].focus();
  });
  $("passwd-close").addEventListener("click", () => dialog.close());
  $("passwd-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const [current, fresh, again] = fields.map((f) => f.value);
    if (fresh !== again) { note.textContent = t("passwords_differ"); return; }
    const response = await fetch("/api/v1/session/password", {
      method: "PUT",
      headers: { ...CONSOLE_HEADERS, "Content-Type": "application/json" },
      body: JSON.stringify({ current, new: fresh }),
    });
    for (const f of fields) f.value = "";
    if (response.ok) note.textContent = t("password_changed");
    else if (response.status === 403) note.textContent = t("current_password_wrong");
    else if (response.status === 422) note.textContent = t("password_policy");
    else note.textContent = failure(response);
  });
}
