// DeltaSense operator console: vanilla JS, no build step. Text is only ever set with
// textContent, never innerHTML, so nothing from a device or an alert can inject markup.
"use strict";

const I18N = {
  vi: {
    disconnected: "Mất kết nối", live: "Trực tiếp", logout: "Đăng xuất",
    token_label: "Mã truy cập (token)", sign_in: "Đăng nhập",
    bad_token: "Mã truy cập không hợp lệ.", alerts: "Cảnh báo đang hoạt động",
    no_alerts: "Không có cảnh báo.", devices: "Thiết bị", device: "Thiết bị", kind: "Loại",
    district: "Phường/xã", status: "Trạng thái", last_seen: "Lần cuối", latest: "Giá trị mới nhất",
    online: "trực tuyến", offline: "mất kết nối", sleeping: "đang ngủ", unknown: "không rõ",
    weather: "thời tiết", water: "mực nước", lamp: "đèn", meter: "công tơ",
    pending: "chờ xác nhận", firing: "đang cảnh báo", resolved: "đã kết thúc",
    info: "thông tin", warning: "cảnh báo", critical: "nghiêm trọng",
    ack: "Xác nhận", acked_by: "Đã xác nhận bởi", forbidden: "Bạn không có quyền làm việc này.",
    load_error: "Không tải được dữ liệu", never: "chưa có", since: "từ",
    degraded: "Dịch vụ đang gián đoạn", restarting: "đang khởi động lại", starting: "đang khởi động",
    stopped: "đã dừng", restarts: "lần khởi động lại",
  },
  en: {
    disconnected: "Disconnected", live: "Live", logout: "Sign out",
    token_label: "Access token", sign_in: "Sign in",
    bad_token: "Invalid access token.", alerts: "Active alerts",
    no_alerts: "No alerts.", devices: "Devices", device: "Device", kind: "Kind",
    district: "District", status: "Status", last_seen: "Last seen", latest: "Latest values",
    online: "online", offline: "offline", sleeping: "sleeping", unknown: "unknown",
    weather: "weather", water: "water level", lamp: "lamp", meter: "meter",
    pending: "pending", firing: "firing", resolved: "resolved",
    info: "info", warning: "warning", critical: "critical",
    ack: "Acknowledge", acked_by: "Acknowledged by", forbidden: "You are not allowed to do this.",
    load_error: "Could not load data", never: "never", since: "since",
    degraded: "Service degraded", restarting: "restarting", starting: "starting",
    stopped: "stopped", restarts: "restarts",
  },
};

const state = {
  lang: localStorage.getItem("ds.lang") || "vi",
  token: localStorage.getItem("ds.token") || "",
  devices: [],
  services: [],
  latest: new Map(),
  alerts: new Map(),
  source: null,
  streamRetry: null,
  timer: null,
  servicesTimer: null,
};

const STREAM_RETRY_MS = 5000;
const $ = (id) => document.getElementById(id);
const t = (key) => (I18N[state.lang][key] ?? key);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

// The site's offset east of UTC in minutes; the API writes it into the page it serves.
const SITE_UTC_OFFSET_MIN = Number(document.documentElement.dataset.utcOffsetMin) || 0;

function fmtTime(ms) {
  if (ms == null) return t("never");
  const locale = state.lang === "vi" ? "vi-VN" : "en-GB";
  // Shifted by the site's offset and shown as UTC: the site's wall clock, not the viewer's.
  return new Date(ms + SITE_UTC_OFFSET_MIN * 60000).toLocaleString(locale, { timeZone: "UTC" });
}

function fmtValue(v) {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(2);
  return String(v);
}

class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail ?? detail; } catch (_) { /* not JSON */ }
    throw new HttpError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  $("lang").textContent = state.lang === "vi" ? "EN" : "VI";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  setLive(state.source !== null && state.source.readyState === EventSource.OPEN);
  renderDevices();
  renderAlerts();
  renderServices();
}

function setLive(live) {
  const badge = $("conn");
  badge.textContent = t(live ? "live" : "disconnected");
  badge.classList.toggle("live", live);
}

// --- devices ---------------------------------------------------------------------
function renderDevices() {
  const body = $("devices");
  body.replaceChildren();
  $("device-count").textContent = state.devices.length ? `(${state.devices.length})` : "";
  for (const d of state.devices) {
    const latest = state.latest.get(d.device);
    const values = latest
      ? Object.entries(latest.fields).map(([k, v]) => `${k} ${fmtValue(v)}`).join(" · ")
      : "–";
    body.append(el("tr", {},
      el("td", {}, el("code", { text: d.device })),
      el("td", { text: t(d.kind) }),
      el("td", { text: d.district }),
      el("td", { class: `st st-${d.status}`, text: t(d.status) }),
      el("td", { text: fmtTime(d.last_seen) }),
      el("td", { text: values, title: latest ? fmtTime(latest.ts) : "" }),
    ));
  }
}

async function loadDevices() {
  try {
    state.devices = await api("/api/v1/devices");
    $("error").textContent = "";
    renderDevices();
    // Latest values, a few requests at a time.
    const queue = state.devices.slice(0, 200).map((d) => d.device);
    const worker = async () => {
      for (let id = queue.shift(); id; id = queue.shift()) {
        try { state.latest.set(id, await api(`/api/v1/devices/${encodeURIComponent(id)}/latest`)); }
        catch (err) { if (err.status !== 404) throw err; }
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    renderDevices();
  } catch (err) {
    handleError(err);
  }
}

// --- alerts --------------------------------------------------------------------
function renderAlerts() {
  const list = $("alerts");
  list.replaceChildren();
  const items = [...state.alerts.values()]
    .filter((a) => a.state !== "resolved")
    .sort((a, b) => b.updated - a.updated);
  $("alerts-empty").hidden = items.length > 0;
  for (const a of items) {
    const item = el("li", { class: `alert ${a.severity} ${a.state}` },
      el("strong", { text: a.message[state.lang] || a.message.en }),
      el("div", { class: "meta",
        text: `${t(a.severity)} · ${t(a.state)} · ${a.district} · ${a.subject} · ${t("since")} ${fmtTime(a.started)}` }),
    );
    if (a.ack) {
      item.append(el("div", { class: "meta", text: `${t("acked_by")} ${a.ack.by} (${fmtTime(a.ack.ts)})` }));
    } else {
      const button = el("button", { type: "button", text: t("ack") });
      button.addEventListener("click", () => acknowledge(a.id, button));
      item.append(button);
    }
    list.append(item);
  }
}

async function acknowledge(id, button) {
  button.disabled = true;
  try {
    const updated = await api(`/api/v1/alerts/${encodeURIComponent(id)}/ack`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
    });
    state.alerts.set(updated.id, updated);
    renderAlerts();
  } catch (err) {
    button.disabled = false;
    $("error").textContent = err.status === 403 ? t("forbidden") : `${t("load_error")}: ${err.message}`;
  }
}

async function loadAlerts() {
  try {
    const active = await api("/api/v1/alerts?state=active");
    state.alerts = new Map(active.map((a) => [a.id, a]));
    renderAlerts();
  } catch (err) {
    handleError(err);
  }
}

// EventSource cannot send headers, and a token must never be in a URL: each connection
// uses a fresh single-use ticket from POST /api/v1/stream/ticket. On any error the
// source is closed (a ticket cannot be reused) and a new one is fetched after a pause.
async function openStream() {
  closeStream();
  let ticket;
  try {
    ({ ticket } = await api("/api/v1/stream/ticket", { method: "POST" }));
  } catch (err) {
    setLive(false);
    if (err.status === 401) { handleError(err); return; }
    state.streamRetry = setTimeout(openStream, STREAM_RETRY_MS);
    return;
  }
  if (!state.token) return; // signed out meanwhile
  const source = new EventSource(`/api/v1/alerts/stream?ticket=${encodeURIComponent(ticket)}`);
  state.source = source;
  source.onopen = () => { setLive(true); loadAlerts(); }; // catch up on changes missed while away
  source.onerror = () => {
    setLive(false);
    if (state.source !== source) return;
    closeStream();
    state.streamRetry = setTimeout(openStream, STREAM_RETRY_MS);
  };
  source.addEventListener("alert", (e) => {
    const a = JSON.parse(e.data);
    state.alerts.set(a.id, a);
    renderAlerts();
  });
}

function closeStream() {
  clearTimeout(state.streamRetry);
  if (state.source) { state.source.close(); state.source = null; }
}

// --- session -------------------------------------------------------------------
// --- the platform's own services (the supervisor's report) -------------------------
function renderServices() {
  const banner = $("degraded");
  const down = state.services.filter((s) => s.state !== "up");
  banner.hidden = down.length === 0;
  banner.replaceChildren();
  if (down.length === 0) return;
  const parts = down.map((s) => `${s.name} (${t(s.state)}, ${s.restarts} ${t("restarts")})`);
  banner.textContent = `${t("degraded")}: ${parts.join(" · ")}`;
}

async function loadServices() {
  try {
    const system = await api("/api/v1/system/services");
    state.services = system.state === "up" ? system.services : [];
  } catch (err) {
    if (err.status === 401) { handleError(err); return; }
    state.services = [];  // no report: the banner says nothing it does not know
  }
  renderServices();
}

function handleError(err) {
  if (err.status === 401) { signOut(t("bad_token")); return; }
  $("error").textContent = `${t("load_error")}: ${err.message}`;
}

function showLogin(message = "") {
  $("login").hidden = false;
  $("console").hidden = true;
  $("logout").hidden = true;
  $("login-error").textContent = message;
}

function start() {
  $("login").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  loadDevices();
  loadAlerts();
  loadServices();
  openStream();
  clearInterval(state.timer);
  clearInterval(state.servicesTimer);
  state.timer = setInterval(loadDevices, 30000);
  state.servicesTimer = setInterval(loadServices, 3000);
}

function signOut(message = "") {
  localStorage.removeItem("ds.token");
  state.token = "";
  closeStream();
  clearInterval(state.timer);
  clearInterval(state.servicesTimer);
  setLive(false);
  showLogin(message);
}

document.addEventListener("DOMContentLoaded", () => {
  $("lang").addEventListener("click", () => {
    state.lang = state.lang === "vi" ? "en" : "vi";
    localStorage.setItem("ds.lang", state.lang);
    applyLanguage();
  });
  $("logout").addEventListener("click", () => signOut());
  $("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    localStorage.setItem("ds.token", state.token);
    $("token").value = "";
    start();
  });
  applyLanguage();
  if (state.token) start(); else showLogin();
});
