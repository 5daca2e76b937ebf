// DeltaSense operator console: vanilla ES modules, no build step, no inline script or
// style (Content-Security-Policy script-src/style-src 'self'). Text is only ever set
// with textContent, never innerHTML, so nothing from a device or an alert injects markup.
import { t, getLang, setLang, has, fmtTime, fmtField, fmtNumber, fieldLabel, setWindCaps } from "./i18n.js";
import { openAlertStream } from "./stream.js";
import { CityMap } from "./map.js";
import { drawChart } from "./chart.js";
import { CONSOLE_HEADERS, bindLoginForm, endSession, focusLogin, showAccount } from "./login.js";
import { Alarm } from "./alarm.js";

const state = {
  me: null,
  config: null,
  devices: [],
  wards: null,
  services: [],
  recovered: [],  // services up again after a crash in the last minute (the API says)
  alerts: new Map(),
  history: [],
  stream: null,
  map: null,
  timers: [],
  sound: false,
  audio: null,
  alarmed: new Set(),
  device: null,   // the device page's id
  range: "6h",
  plots: [],
  commands: [],
  openDeliveries: new Set(),  // alert ids whose notifications are shown
  ackDrafts: new Map(),  // alert id → the ack note being typed: the feed re-renders under it
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
}

class HttpError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(path, options = {}) {
  const headers = { ...CONSOLE_HEADERS, ...(options.headers || {}) }; // the session cookie authenticates
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail ?? detail; } catch (_) { /* not JSON */ }
    throw new HttpError(response.status, typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return response.json();
}

const isOperator = () => state.me && (state.me.role === "operator" || state.me.role === "admin");
const wardName = (id) => (id ? (state.config?.wards.find((w) => w.id === id)?.name ?? id) : state.config?.city[getLang()] ?? "");
// The alarm workflow (alarm.js): marks, details, silences on tiles and the device page.
const workflow = new Alarm({
  api, el, isOperator, wardName,
  onChange: () => { renderAlerts(); renderHistory(); renderWards(); if (state.device) renderDeviceStatic(); },
  onError: (err) => (err.status === 401 ? handleError(err) : showError(err.status === 403 ? t("forbidden") : `${t("load_error")}: ${err.message}`)),
});

// --- language ------------------------------------------------------------------------
function applyLanguage() {
  document.documentElement.lang = getLang();
  $("lang").textContent = getLang() === "vi" ? "EN" : "VI";
  $("lang").setAttribute("aria-label", t("language"));
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  $("sound").textContent = t(state.sound ? "sound_off" : "sound_on");
  setLive(Boolean(state.stream?.live));
  if (state.config) $("map-note").textContent = state.config.tile_url ? "" : t("map_no_tiles");
  renderAll();
}

function setLive(live) {
  $("conn").textContent = t(live ? "live" : "disconnected");
  $("conn").classList.toggle("live", live);
}

function renderAll() {
  if (!state.me) return;
  renderStorm(); renderAlerts(); renderHistory(); renderWards(); renderServices(); renderDeviceList();
  if (state.map) state.map.update(state.devices);
  $("device-count").textContent = state.devices.length ? `(${state.devices.length})` : "";
  if (state.device) renderDeviceStatic();
}

// --- sound and flash for a new critical alert --------------------------------------------
function beep() {
  if (!state.sound) return false;
  state.audio ??= new AudioContext();
  if (state.audio.state === "suspended") state.audio.resume();
  const osc = state.audio.createOscillator();
  const gain = state.audio.createGain();
  osc.type = "square"; osc.frequency.value = 880;
  gain.gain.value = 0.15;
  osc.connect(gain).connect(state.audio.destination);
  const now = state.audio.currentTime;
  osc.start(now); osc.stop(now + 0.6);
  return true;
}

function alarm(a) {
  if (a.severity !== "critical" || a.state === "resolved" || state.alarmed.has(a.id) || workflow.hiddenReason(a)) return;
  state.alarmed.add(a.id);
  const sounded = beep();
  // What the browser test measures: when this alert was flashed and sounded.
  document.body.dataset.alarmId = a.id;
  document.body.dataset.alarmAt = String(Date.now());
  document.body.dataset.alarmSound = String(sounded);
  requestAnimationFrame(() => document.querySelector(`[data-alert="${CSS.escape(a.id)}"]`)?.classList.add("flash"));
}

function toggleSound() {
  state.sound = !state.sound;
  $("sound").setAttribute("aria-pressed", String(state.sound));
  if (state.sound) { state.audio ??= new AudioContext(); state.audio.resume(); }
  localStorage.setItem("ds.sound", state.sound ? "1" : "0");
  applyLanguage();
}

// --- storm banner --------------------------------------------------------------------
function renderStorm() {
  const box = $("storm");
  const city = state.wards?.city;
  box.hidden = !city;
  if (!city) return;
  const lv = city.risk_level;
  box.className = `storm lv${lv}`;
  const wind = city.max_wind_ms != null
    ? ` · ${t("wind_now")}: ${fmtField("wind_ms", city.max_wind_ms)}` : "";
  box.textContent = lv === 0
    ? `${t("storm_none")}${wind}`
    : `${t("risk_level")} ${lv}: ${t(`risk_${lv}`)}${wind}${city.message ? ` — ${city.message[getLang()]}` : ""}`;
  box.dataset.level = String(lv);
}

// --- alerts feed ------------------------------------------------------------------------
function alertItem(a, { withAck }) {
  const item = el("li", { class: `alert ${a.severity} ${a.state}`, "data-alert": a.id },
    el("strong", { text: a.message[getLang()] || a.message.en }),
    el("div", { class: "meta",
      text: `${t(a.severity)} · ${t(a.kind)} · ${t(a.state)} · ${wardName(a.district)} · ${a.subject} · ${t("since")} ${fmtTime(a.started)}${a.ended ? ` · ${t("ended")} ${fmtTime(a.ended)}` : ""}` }),
  );
  const link = deviceById(a.subject);
  if (link) item.append(el("a", { href: `#/device/${encodeURIComponent(a.subject)}`, text: a.subject }));
  const marks = workflow.badges(a);
  if (marks) item.append(marks);
  if (workflow.silencing(a).length && a.state !== "resolved") item.classList.add("silenced");
  item.append(workflow.details(a));
  if (isOperator()) item.append(deliveries(a.id));
  if (a.ack) {
    item.append(el("div", { class: "meta ack", text: `${t("acked_by")} ${a.ack.by} (${fmtTime(a.ack.ts)})${a.ack.note ? `: ${a.ack.note}` : ""}` }));
  } else if (withAck && isOperator()) {
    const id = `note-${a.id}`;
    const note = el("input", { id, type: "text", maxlength: "500", "aria-label": t("ack_note"), placeholder: t("ack_note") });
    note.value = state.ackDrafts.get(a.id) ?? "";
    note.addEventListener("input", () => state.ackDrafts.set(a.id, note.value));
    const form = el("form", { class: "ack-form" }, note, el("button", { type: "submit", text: t("ack") }));
    form.addEventListener("submit", (e) => { e.preventDefault(); acknowledge(a.id, form, note.value); });
    item.append(form);
  }
  return item;
}

// What the notifier sent for an alert (operators; GET …/notifications), loaded when
// opened; kept open across re-renders of the feed.
const dlvState = (s) => ({ queued: t("dlv_queued"), sending: t("dlv_sending"), sent: t("dlv_sent"),
  retried: t("dlv_retried"), failed: t("dlv_failed") })[s] ?? s;
const dlvReason = (r) => ({ alerts: t("reason_alerts"), repeat: t("reason_repeat"),
  escalation: t("reason_escalation") })[r] ?? r;
const dlvChannel = (c) => (c === "email" ? t("ch_email") : c.charAt(0).toUpperCase() + c.slice(1));

function deliveries(id) {
  const list = el("ul", { class: "deliveries" });
  const box = el("details", { class: "deliveries-box" }, el("summary", { text: t("notifications") }), list);
  const load = async () => {
    try {
      const rows = await api(`/api/v1/alerts/${encodeURIComponent(id)}/notifications`);
      list.replaceChildren(...(rows.length ? rows.map(deliveryItem) : [el("li", { class: "meta", text: t("notif_none") })]));
    } catch (err) {
      if (err.status === 401) { handleError(err); return; }
      const why = err.status === 503 ? t("notif_unavailable") : err.status === 403 ? t("forbidden") : t("load_error");
      list.replaceChildren(el("li", { class: "meta", text: why }));
    }
  };
  box.addEventListener("toggle", () => {
    if (box.open) { state.openDeliveries.add(id); load(); } else state.openDeliveries.delete(id);
  });
  if (state.openDeliveries.has(id)) box.open = true;  // fires toggle, which loads
  return box;
}

function deliveryItem(m) {
  const when = m.sent_at ? fmtTime(m.sent_at) : fmtTime(m.created);
  const parts = [dlvChannel(m.channel), m.receiver, m.address, dlvReason(m.reason), dlvState(m.state),
    `${m.attempts} ${t("notif_attempts")}`, when];
  const item = el("li", { class: `delivery ${m.state}`, text: parts.join(" · ") });
  if (m.last_error) item.append(el("div", { class: "meta", text: `${t("notif_error")}: ${m.last_error}` }));
  return item;
}

function filters() {
  return { state: $("f-state").value, kind: $("f-kind").value, severity: $("f-severity").value, ward: $("f-ward").value, hidden: $("f-hidden").checked };
}

function passes(a, f) {
  return (!f.kind || a.kind === f.kind) && (!f.severity || a.severity === f.severity)
    && (!f.ward || a.district === f.ward);
}

function renderAlerts() {
  const f = filters();
  const pool = f.state === "active" ? [...state.alerts.values()] : state.history;
  const items = pool
    .filter((a) => (f.state === "all" || (f.state === "active" ? a.state !== "resolved" : a.state === "resolved")) && passes(a, f))
    .sort((a, b) => (b.severity === "critical") - (a.severity === "critical") || b.updated - a.updated);
  // Shelved, cleared and silenced alerts leave the active list unless asked for (alarm.js).
  const hidden = f.state === "active" && !f.hidden ? items.filter((a) => workflow.hiddenReason(a)) : [];
  $("alerts-hidden").textContent = hidden.length ? `${hidden.length} ${t("hidden_count")}` : "";
  if (hidden.length) items.splice(0, items.length, ...items.filter((a) => !hidden.includes(a)));
  $("alerts-empty").hidden = items.length > 0;
  const typing = document.activeElement?.closest?.("#alerts .ack-form") ? document.activeElement.id : null;
  $("alerts").replaceChildren(...items.map((a) => alertItem(a, { withAck: true })));
  if (typing) document.getElementById(typing)?.focus();  // the note keeps the keyboard
  for (const id of state.alarmed) document.querySelector(`#alerts [data-alert="${CSS.escape(id)}"]`)?.classList.add("flash");
}

function renderHistory() {
  const f = filters();
  const resolved = f.state === "active" ? state.history.filter((a) => a.state === "resolved" && passes(a, f)).slice(0, 20) : [];
  $("history").replaceChildren(...resolved.map((a) => alertItem(a, { withAck: false })));
}

async function acknowledge(id, form, note) {
  for (const c of form.elements) c.disabled = true;
  try {
    const updated = await api(`/api/v1/alerts/${encodeURIComponent(id)}/ack`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ note }),
    });
    state.alerts.set(updated.id, updated);
    state.ackDrafts.delete(id);
    renderAlerts();
  } catch (err) {
    for (const c of form.elements) c.disabled = false;
    showError(err.status === 403 ? t("forbidden") : `${t("load_error")}: ${err.message}`);
  }
}

async function loadAlerts() {
  try {
    const [active, all] = await Promise.all([
      api("/api/v1/alerts?state=active"), api("/api/v1/alerts?state=all&limit=500"),
    ]);
    state.alerts = new Map(active.map((a) => [a.id, a]));
    workflow.loadOverview();
    state.history = all;
    renderAlerts(); renderHistory();
  } catch (err) { handleError(err); }
}

function onAlert(a) {
  state.alerts.set(a.id, a);
  state.history = [a, ...state.history.filter((h) => h.id !== a.id)];
  const d = deviceById(a.subject);
  if (d) {
    const active = a.state !== "resolved";
    const rank = { info: 0, warning: 1, critical: 2 };
    if (active && (!d.alert || d.alert.id === a.id || rank[a.severity] >= rank[d.alert.severity])) {
      d.alert = { id: a.id, severity: a.severity, kind: a.kind };
    }
    if (!active && d.alert?.id === a.id) d.alert = null;
    state.map?.update(state.devices);
  }
  workflow.refreshSoon();
  renderAlerts(); renderHistory();
  alarm(a);
  if (state.device === a.subject) loadDeviceAlerts();
}

// --- city: map and ward tiles --------------------------------------------------------------
// One /map read at a time: the first load and the stream's first open ask together,
// and at 10 000 devices each read is a megabyte or two.
let mapLoading = null;
function loadMap() { return (mapLoading ??= readMap().finally(() => { mapLoading = null; })); }

async function readMap() {
  try {
    state.devices = await api("/api/v1/map");
    state.map?.update(state.devices);
    $("device-count").textContent = `(${state.devices.length})`;
    renderDeviceList();
    if (state.device) renderDeviceStatic();
  } catch (err) { handleError(err); }
}

// The map's devices by id, rebuilt when the list is replaced (10 000 devices: no
// linear search per alert).
let indexed = null;
let index = new Map();
function deviceById(id) {
  if (indexed !== state.devices) { index = new Map(state.devices.map((d) => [d.device, d])); indexed = state.devices; }
  return index.get(id);
}

// The map's devices as links too: keyboard and screen-reader users reach every page.
// Built when the list is opened (and kept current while it is): at city scale it is
// tens of thousands of nodes the first paint does not need.
function renderDeviceList() {
  if (!$("device-list-box").open) return;
  $("device-list").replaceChildren(...state.devices.map((d) => el("li", {},
    el("a", { href: `#/device/${encodeURIComponent(d.device)}`, text: d.device }),
    ` · ${t(d.kind)} · ${wardName(d.district)} · `,
    el("span", { class: `st-${d.status}`, text: t(d.status) }),
    d.alert ? ` · ${t(d.alert.severity)}` : "")));
}

function tileRow(label, value) { return [el("dt", { text: label }), el("dd", { text: value })]; }

function renderWards() {
  if (!state.wards) return;
  const tiles = state.wards.wards.map((w) => {
    const alerts = w.alerts.critical + w.alerts.warning + w.alerts.info;
    const kwh = (w.meter_kwh_today ?? 0) + (w.lamp_kwh_today ?? 0);
    const tile = el("article", { class: `tile${w.alerts.critical ? " has-critical" : w.alerts.warning ? " has-warning" : ""}`, "data-ward": w.district },
      el("h3", { text: w.name }),
      workflow.wardNote(w.district),
      el("dl", {},
        ...tileRow(t("tile_online"), `${w.online}/${w.devices}`),
        ...tileRow(t("tile_offline"), String(w.offline)),
        ...tileRow(t("tile_alerts"), alerts ? `${alerts} (${w.alerts.critical} ${t("critical")})` : "0"),
        ...tileRow(t("tile_water"), w.deepest_water_cm == null ? "–" : fmtField("level_cm", w.deepest_water_cm)),
        ...tileRow(t("tile_rain"), w.rain_mm_today == null ? "–" : `${fmtNumber(w.rain_mm_today, 1)} mm`),
        ...tileRow(t("tile_lamps"), `${w.lamps_on}/${w.lamps}`),
        ...tileRow(t("tile_energy"), w.meter_kwh_today == null && w.lamp_kwh_today == null ? "–" : `${fmtNumber(kwh, 2)} kWh`),
      ));
    return tile;
  });
  $("wards").replaceChildren(...tiles);
}

async function loadWards() {
  try { state.wards = await api("/api/v1/wards"); renderWards(); renderStorm(); }
  catch (err) { handleError(err); }
}

// --- the platform's own services (the supervisor's report) -------------------------
// A service down now is degraded; one back up after a crash in the last minute is
// said too (the API's `recovered`), so a crash shorter than the 3 s poll is not missed.
function renderServices() {
  const banner = $("degraded");
  const down = state.services.filter((s) => s.state !== "up");
  const back = state.services.filter((s) => state.recovered.includes(s.name));
  const list = (xs, label) => xs.map((s) => `${s.name} (${label(s)}, ${s.restarts} ${t(s.restarts === 1 ? "restart_one" : "restarts")})`).join(" · ");
  banner.hidden = down.length + back.length === 0;
  banner.dataset.state = down.length ? "degraded" : back.length ? "recovered" : "";
  banner.textContent = down.length
    ? `${t("degraded")}: ${list(down, (s) => t(s.state))}`
    : back.length ? `${t("recovered")}: ${list(back, () => t("up_again"))}` : "";
}

async function loadServices() {
  try {
    const system = await api("/api/v1/system/services");
    state.services = system.state === "up" ? system.services : [];
    state.recovered = system.state === "up" ? system.recovered ?? [] : [];
  } catch (err) {
    if (err.status === 401) { handleError(err); return; }
    state.services = [];  // no report: the banner says nothing it does not know
    state.recovered = [];
  }
  renderServices();
}

// --- device page -------------------------------------------------------------------------
const RANGE_MS = { "6h": 6 * 3600e3, "24h": 24 * 3600e3, "7d": 7 * 24 * 3600e3 };
const RANGE_EVERY = { "6h": "1m", "24h": "5m", "7d": "30m" };

function renderDeviceStatic() {
  const d = state.devices.find((x) => x.device === state.device);
  $("device-title").textContent = state.device;
  $("device-sub").textContent = d ? `${t(d.kind)} · ${wardName(d.district)} · ${t(d.status)} · ${t("last_seen")} ${fmtTime(d.last_seen)}` : "";
  const silenced = d ? workflow.deviceNote(d.device, d.district) : null;
  $("device-silence").replaceChildren(...(silenced ? [silenced] : []));
  $("command-panel").hidden = !(isOperator() && d && d.kind === "lamp");
  $("commands").replaceChildren(...state.commands.map((c) => el("li", {
    "data-command": c.id, "data-status": c.status, class: `cmd cmd-${c.status}`,
    text: `${fmtTime(c.sent)} · ${c.name} ${JSON.stringify(c.args)} · ${t(`cmd_${c.status}`)}${c.error ? `: ${c.error}` : ""} · ${t("cmd_expires")} ${fmtTime(c.expires)}`,
  })));
}

// The device's recent commands and their status (sent → acked/failed/expired), polled
// while its page is open and a command is still unanswered.
async function loadCommands() {
  const id = state.device;
  if (!id || !isOperator()) return;
  try {
    const found = await api(`/api/v1/devices/${encodeURIComponent(id)}/commands`);
    if (state.device !== id) return;
    state.commands = found;
    renderDeviceStatic();
  } catch (err) { deviceError(err); }
}

async function loadCharts() {
  const id = state.device;
  for (const p of state.plots) p.destroy();
  state.plots = [];
  const box = $("charts");
  box.replaceChildren();
  let latest = null;
  try { latest = await api(`/api/v1/devices/${encodeURIComponent(id)}/latest`); }
  catch (err) { if (err.status !== 404) { deviceError(err); return; } }
  const fields = latest ? Object.keys(latest.fields) : [];
  const end = Date.now();
  const start = end - RANGE_MS[state.range];
  for (const field of fields) {
    const card = el("div", { class: "chart", "data-field": field },
      el("h3", { text: fieldLabel(field) }),
      el("div", { class: "latest", text: fmtField(field, latest.fields[field]) }));
    const holder = el("div", { class: "plot" });
    card.append(holder);
    box.append(card);
    try {
      const q = new URLSearchParams({ field, start: String(start), end: String(end), every: RANGE_EVERY[state.range] });
      const series = await api(`/api/v1/devices/${encodeURIComponent(id)}/series?${q}`);
      if (state.device !== id) return;
      if (!series.points.some(([, v]) => v != null)) { holder.append(el("p", { class: "muted", text: t("no_data") })); continue; }
      state.plots.push(drawChart(holder, field, series, state.config.lines[field] || []));
    } catch (err) { if (err.status !== 422) deviceError(err); }
  }
}

async function loadDeviceAlerts() {
  const id = state.device;
  const all = await api("/api/v1/alerts?state=all&limit=1000");
  if (state.device !== id) return;
  $("device-alerts").replaceChildren(...all.filter((a) => a.subject === id).slice(0, 30).map((a) => alertItem(a, { withAck: true })));
}

async function loadDevicePage() {
  const id = state.device;
  renderDeviceStatic();
  $("device-error").textContent = "";
  for (const b of document.querySelectorAll(".range")) b.setAttribute("aria-pressed", String(b.dataset.range === state.range));
  try {
    const [history, meta] = await Promise.all([
      api(`/api/v1/devices/${encodeURIComponent(id)}/status-history`),
      api(`/api/v1/devices/${encodeURIComponent(id)}/meta`).catch((err) => { if (err.status === 404) return null; throw err; }),
    ]);
    if (state.device !== id) return;
    $("device-status").replaceChildren(...history.map((h) => el("li", { class: `st-${h.state}`, text: `${fmtTime(h.ts)} · ${t(h.state)}` })));
    const rows = [];
    if (meta) {
      for (const [k, v] of Object.entries(meta)) {
        if (k === "lat" || k === "lon") continue;
        rows.push(el("dt", { text: has(`m_${k}`) ? t(`m_${k}`) : k }), el("dd", { text: k === "time" ? fmtTime(v) : String(v) }));
      }
      if (meta.lat != null) rows.push(el("dt", { text: t("position") }), el("dd", { text: `${meta.lat.toFixed(5)}, ${meta.lon.toFixed(5)}` }));
    }
    $("device-meta").replaceChildren(...rows);
    await Promise.all([loadCharts(), loadDeviceAlerts(), loadCommands()]);
  } catch (err) { deviceError(err); }
}

async function sendDim(e) {
  e.preventDefault();
  const pct = Number($("dim-pct").value);
  const minutes = Number($("dim-min").value);
  try {
    const cmd = await api(`/api/v1/devices/${encodeURIComponent(state.device)}/commands`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: "set_dim", args: { pct, duration_s: minutes * 60 }, ttl_s: 300 }),
    });
    state.commands.unshift({ ...cmd, status: "sent", sent: Date.now() });
    renderDeviceStatic();
    loadCommands();
  } catch (err) { deviceError(err); }
}

function deviceError(err) {
  if (err.status === 401) { handleError(err); return; }
  $("device-error").textContent = err.status === 403 ? t("forbidden") : `${t("load_error")}: ${err.message}`;
}

// --- routing ---------------------------------------------------------------------------
function route() {
  const match = location.hash.match(/^#\/device\/([^/]+)$/);
  const id = match ? decodeURIComponent(match[1]) : null;
  $("city").hidden = Boolean(id);
  $("device").hidden = !id;
  if (id) {
    if (state.device !== id) state.commands = [];
    state.device = id;
    loadDevicePage();
  } else {
    state.device = null;
    for (const p of state.plots) p.destroy();
    state.plots = [];
    state.map?.invalidate();
  }
}

// --- session -------------------------------------------------------------------------
function showError(text) { $("error").textContent = text; }

function handleError(err) {
  if (err.status === 401) { signOut(t("session_ended")); return; }
  showError(`${t("load_error")}: ${err.message}`);
}

function showLogin(message = "") {
  $("login").hidden = false;
  $("city").hidden = true;
  $("device").hidden = true;
  $("logout").hidden = true;
  $("sound").hidden = true;
  $("storm").hidden = true;
  $("login-error").textContent = message;
  showAccount(null);
  focusLogin();
}

async function start() {
  $("login").hidden = true;
  try {
    [state.me, state.config] = await Promise.all([api("/api/v1/me"), api("/api/v1/console/config")]);
  } catch (err) {
    if (err.status === 401) signOut(); else showLogin(`${t("load_error")}: ${err.message}`);
    return;
  }
  document.body.dataset.role = state.me.role;
  showAccount(state.me);
  setWindCaps(state.config.wind_caps);
  $("f-ward").replaceChildren(el("option", { value: "", "data-i18n": "all", text: t("all") }),
    ...state.config.wards.map((w) => el("option", { value: w.id, text: w.name })));
  $("logout").hidden = false;
  $("sound").hidden = false;
  if (!state.map) state.map = new CityMap($("map"), state.config, (id) => { location.hash = `#/device/${encodeURIComponent(id)}`; });
  route();
  applyLanguage();
  state.stream?.close();
  state.stream = openAlertStream(api, {
    onAlert,
    onOpen: () => { setLive(true); loadAlerts(); loadMap(); }, // catch up on what was missed
    onError: () => setLive(false),
    onUnauthorized: handleError,
    onReset: () => { loadAlerts(); loadMap(); }, // the API could not replay what was missed
  });
  await Promise.all([loadMap(), loadAlerts(), loadWards(), loadServices()]);
  document.body.dataset.ready = "1";
  for (const id of state.timers) clearInterval(id);
  state.timers = [
    setInterval(loadMap, 15000), setInterval(loadWards, 30000), setInterval(loadServices, 3000),
    setInterval(() => workflow.loadOverview(), 15000),
    setInterval(() => { if (state.commands.some((c) => c.status === "sent")) loadCommands(); }, 1000),
  ];
}

function signOut(message = "") {
  state.me = null;
  state.stream?.close();
  state.stream = null;
  for (const id of state.timers) clearInterval(id);
  state.timers = [];
  setLive(false);
  showLogin(message);
}

$("lang").addEventListener("click", () => { setLang(getLang() === "vi" ? "en" : "vi"); applyLanguage(); });
$("sound").addEventListener("click", toggleSound);
$("logout").addEventListener("click", async () => { await endSession(); signOut(); });
$("dim-form").addEventListener("submit", sendDim);
$("filters").addEventListener("change", () => { renderAlerts(); renderHistory(); });
$("device-list-box").addEventListener("toggle", renderDeviceList);
for (const b of document.querySelectorAll(".range")) {
  b.addEventListener("click", () => { state.range = b.dataset.range; loadDevicePage(); });
}
window.addEventListener("hashchange", () => { if (state.me) route(); });
bindLoginForm(start);
state.sound = localStorage.getItem("ds.sound") === "1";
$("sound").setAttribute("aria-pressed", String(state.sound));
applyLanguage();
start(); // signed in already (the session cookie) or the login page
