// The console's one text catalogue (i18n.json, vi default and en) and the formatting
// of times and units. Text reaches the page only through textContent.
const catalogue = await (await fetch("/static/i18n.json", { cache: "no-cache" })).json();

export const LANGS = ["vi", "en"];
let lang = LANGS.includes(localStorage.getItem("ds.lang")) ? localStorage.getItem("ds.lang") : "vi";

export const getLang = () => lang;
export function setLang(next) { lang = next; localStorage.setItem("ds.lang", next); }
export function t(key) { return catalogue[lang][key] ?? catalogue.vi[key] ?? key; }
export const has = (key) => key in catalogue.vi;

// The site's offset east of UTC in minutes; the API writes it into the page it serves.
export const UTC_OFFSET_MIN = Number(document.documentElement.dataset.utcOffsetMin) || 0;

function locale() { return lang === "vi" ? "vi-VN" : "en-GB"; }

// Shifted by the site's offset and shown as UTC: the site's wall clock, not the viewer's.
// One formatter per language and form (toLocaleString makes one per call: slow for a
// feed of hundreds of alerts).
const formatters = new Map();
export function fmtTime(ms, withDate = true) {
  if (ms == null) return t("never");
  const key = `${locale()}|${withDate}`;
  if (!formatters.has(key)) {
    const opts = withDate
      ? { timeZone: "UTC", day: "2-digit", month: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }
      : { timeZone: "UTC", hour: "2-digit", minute: "2-digit" };
    formatters.set(key, new Intl.DateTimeFormat(locale(), opts));
  }
  return formatters.get(key).format(new Date(ms + UTC_OFFSET_MIN * 60000));
}

// Field → [unit, decimals, scale]; energy counters are shown in kWh.
const UNITS = {
  t_c: ["°C", 1], rh_pct: ["%", 0], p_hpa: ["hPa", 1], wind_ms: ["m/s", 1], gust_ms: ["m/s", 1],
  wind_dir_deg: ["°", 0], rain_mm_total: ["mm", 1], lux: ["lx", 0], level_cm: ["cm", 1],
  dist_mm: ["mm", 0], dim_pct: ["%", 0], power_w: ["W", 1], energy_wh_total: ["kWh", 3, 0.001],
  v: ["V", 1], a: ["A", 2], pf: ["", 2], hz: ["Hz", 2], rssi_dbm: ["dBm", 0], batt_v: ["V", 2],
  heap_b: ["B", 0], up_s: ["s", 0],
};
export function unitOf(field) { return (UNITS[field] || [""])[0]; }
export function scaleOf(field) { return (UNITS[field] || [])[2] ?? 1; }

export function fmtNumber(value, decimals) {
  return Number(value).toLocaleString(locale(), { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

let windCaps = [];  // [[cấp, lower bound m/s]] ascending, from the site's thresholds
export function setWindCaps(caps) {
  windCaps = Object.entries(caps).map(([c, v]) => [Number(c), v]).sort((a, b) => a[0] - b[0]);
}
export function capOf(ms) {
  let cap = null;
  for (const [c, low] of windCaps) if (ms >= low) cap = c;
  return cap;
}

export function fmtField(field, value) {
  if (value == null) return "–";
  if (typeof value === "boolean") return value ? "✓" : "✗";
  const [unit, decimals] = UNITS[field] || ["", 2];
  const text = `${fmtNumber(value * scaleOf(field), decimals)}${unit ? ` ${unit}` : ""}`;
  if ((field === "wind_ms" || field === "gust_ms") && capOf(value) != null) {
    return `${text} (${t("wind_cap")} ${capOf(value)})`;
  }
  return text;
}

export function fieldLabel(field) { return has(`f_${field}`) ? t(`f_${field}`) : field; }
