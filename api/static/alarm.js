// The alarm workflow in the console: the feed's marks (assigned, shelved, cleared,
// silenced), an alert's details (assign, comment thread, shelve, clear, silence its
// ward, device or rule, and who did what when), and the silences shown on ward tiles
// and the device page. The API decides (api/routes/alarm_workflow.py, silences.py);
// this module only shows and asks. Text is set with textContent only.
import { t, fmtTime } from "./i18n.js";

const DURATIONS = [["dur_15m", 900], ["dur_1h", 3600], ["dur_4h", 14400], ["dur_8h", 28800], ["dur_24h", 86400]];
const SILENCE_DURATIONS = [...DURATIONS, ["dur_7d", 604800]];
let uid = 0;  // ids for labels: one alert may be drawn in more than one list
const MATCH_KEYS = { kind: "match_kind", rule: "match_rule", district: "match_district", subject: "match_subject", severity: "match_severity" };

export class Alarm {
  // api(path, options) → JSON or throws {status}; el(tag, props, ...children);
  // isOperator() → bool; wardName(id) → text; onChange() re-renders the feed and tiles;
  // onError(err) shows a failure.
  constructor({ api, el, isOperator, wardName, onChange, onError }) {
    Object.assign(this, { api, el, isOperator, wardName, onChange, onError });
    this.marks = {};       // alert id → {assignee, shelved_until, cleared, silenced, comments}
    this.silences = [];    // silences applying now or later
    this.open = new Set(); // alert ids whose details are open (kept across re-renders)
    this.cache = new Map(); // alert id → its last workflow, drawn at once when re-rendered
    this.drafts = new Map(); // alert id → the comment being typed
    // A feed re-render while an action is on its way draws a new details body and
    // loads it; that load may read the workflow before the action is stored. So an
    // action's answer is drawn into every live body of its alert, and a load that
    // started before an action's answer (or during one) is not drawn over it.
    this.acting = new Map();  // alert id → actions on their way
    this.actedAt = new Map(); // alert id → when the last action's answer came
    this.alertOf = new WeakMap(); // details body → the alert it was drawn for
    this.operators = null;
    this.timer = null;
  }

  async loadOverview() {
    try {
      const view = await this.api("/api/v1/alarm/overview");
      this.marks = view.alerts;
      this.silences = view.silences;
      this.onChange();
    } catch (err) { if (err.status === 401) this.onError(err); }
  }

  // After an alert change: its marks (a new alert may already be silenced) come with
  // the next overview, asked for once per burst.
  refreshSoon() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.loadOverview(), 300);
  }

  activeSilences(now = Date.now()) {
    return this.silences.filter((s) => s.starts <= now && now < (s.ended_at ?? s.ends) && now < s.ends);
  }

  // The silences (not shelves) covering an alert now: every matcher equals its field,
  // the rule deltasense/silences.py applies; so an alert that just arrived is marked
  // before the next overview.
  silencing(a) {
    return this.activeSilences().filter((s) => s.purpose !== "shelve"
      && Object.entries(s.matchers).every(([k, v]) => a[k] === v));
  }

  shelvedUntil(a) {
    const s = this.activeSilences().find((x) => x.purpose === "shelve"
      && Object.entries(x.matchers).every(([k, v]) => a[k] === v));
    return s ? s.ends : null;
  }

  // Why the feed's active list leaves an alert out unless asked: shelved, cleared or
  // silenced (null: shown).
  hiddenReason(a) {
    if (a.state === "resolved") return null;
    if (this.shelvedUntil(a)) return "shelved";
    if (this.marks[a.id]?.cleared) return "cleared";
    if (this.silencing(a).length) return "silenced";
    return null;
  }

  badges(a) {
    const el = this.el;
    const out = el("div", { class: "alarm-marks" });
    const mark = this.marks[a.id] || {};
    if (mark.assignee) out.append(el("span", { class: "mark mark-assigned", text: `${t("assignee")}: ${mark.assignee}` }));
    if (a.state !== "resolved") {
      const until = this.shelvedUntil(a);
      if (until) out.append(el("span", { class: "mark mark-shelved", text: `${t("shelved_until")} ${fmtTime(until)}` }));
      if (mark.cleared) out.append(el("span", { class: "mark mark-cleared", text: t("cleared") }));
      for (const s of this.silencing(a)) {
        out.append(el("span", { class: "mark mark-silenced", "data-silence": s.id,
          text: `${t(s.purpose === "maintenance" ? "maintenance_until" : "silenced_until")} ${fmtTime(s.ends)}` }));
      }
    }
    if (mark.comments) out.append(el("span", { class: "mark mark-comments", text: `${t("comments")}: ${mark.comments}` }));
    return out.childElementCount ? out : null;
  }

  // --- an alert's details -------------------------------------------------------------
  details(a) {
    const el = this.el;
    const body = el("div", { class: "alarm-body" });
    this.alertOf.set(body, a);
    const box = el("details", { class: "alarm-box", "data-alarm": a.id }, el("summary", { text: t("alarm_details") }), body);
    const cached = this.cache.get(a.id);
    if (cached) this.draw(body, a, cached);
    box.addEventListener("toggle", () => {
      if (box.open) { this.open.add(a.id); this.load(body, a); } else this.open.delete(a.id);
    });
    if (this.open.has(a.id)) box.open = true;  // fires toggle, which loads
    return box;
  }

  async load(body, a, { after = false } = {}) {
    const started = performance.now();
    try {
      const [wf] = await Promise.all([
        this.api(`/api/v1/alerts/${encodeURIComponent(a.id)}/workflow`),
        this.isOperator() && !this.operators ? this.loadOperators() : null,
      ]);
      // `after`: the load an action asks for once it is stored; any other may be older
      // than an action's answer that came meanwhile.
      if (!after && (this.acting.get(a.id) || (this.actedAt.get(a.id) ?? -1) >= started)) return;
      this.cache.set(a.id, wf);
      this.drawEverywhere(body, a, wf);
    } catch (err) {
      if (err.status === 401) { this.onError(err); return; }
      body.replaceChildren(this.el("p", { class: "meta", text: t("load_error") }));
    }
  }

  async loadOperators() {
    try { this.operators = (await this.api("/api/v1/alarm/operators")).names; } catch (_) { this.operators = []; }
  }

  // POST/DELETE, then redraw from the workflow the API answers with.
  async act(body, a, path, method, payload) {
    const controls = body.querySelectorAll("button, input, select, textarea");
    for (const c of controls) c.disabled = true;
    this.acting.set(a.id, (this.acting.get(a.id) ?? 0) + 1);
    try {
      const wf = await this.api(path, {
        method, headers: { "Content-Type": "application/json" },
        body: payload === undefined ? undefined : JSON.stringify(payload),
      });
      this.actedAt.set(a.id, performance.now());
      if (wf && Array.isArray(wf.activity)) { this.cache.set(a.id, wf); this.drawEverywhere(body, a, wf); }
      else await this.load(body, a, { after: true });
      this.loadOverview();
      return true;
    } catch (err) {
      for (const c of controls) c.disabled = false;
      this.onError(err);
      return false;
    } finally {
      this.acting.set(a.id, this.acting.get(a.id) - 1);
    }
  }

  // The workflow into ``body`` and every other details body of the alert on the page
  // (the feed may have re-rendered it meanwhile; it may be shown in two lists).
  drawEverywhere(body, a, wf) {
    const live = document.querySelectorAll(`details.alarm-box[data-alarm="${CSS.escape(a.id)}"] > .alarm-body`);
    for (const b of new Set([body, ...live])) {
      if (b === body || b.isConnected) this.draw(b, this.alertOf.get(b) ?? a, wf);
    }
  }

  durationSelect(id, choices, label) {
    const el = this.el;
    const select = el("select", { id, "aria-label": label },
      ...choices.map(([key, s]) => el("option", { value: String(s), text: t(key) })));
    select.value = "3600";
    return select;
  }

  matcherText(m) {
    return Object.entries(m).map(([k, v]) => `${t(MATCH_KEYS[k] ?? k)}: ${k === "district" ? this.wardName(v) : k === "kind" || k === "severity" ? t(v) : v}`).join(", ");
  }

  draw(body, a, wf) {
    const el = this.el;
    const op = this.isOperator();
    const n = ++uid;
    const base = `/api/v1/alerts/${encodeURIComponent(a.id)}`;
    const parts = [];

    // Assignee.
    const who = wf.assignee ? `${wf.assignee.name} (${wf.assignee.by}, ${fmtTime(wf.assignee.ts)})` : t("unassigned");
    parts.push(el("p", { class: "alarm-assignee" }, el("strong", { text: `${t("assignee")}: ` }), who));
    if (op) {
      const select = el("select", { class: "assign-select", "aria-label": t("assign_to") },
        el("option", { value: "", text: t("nobody") }),
        ...(this.operators || []).map((n) => el("option", { value: n, text: n })));
      select.value = wf.assignee?.name ?? "";
      const form = el("form", { class: "row assign-form" }, select, el("button", { type: "submit", text: t("assign") }));
      form.addEventListener("submit", (e) => { e.preventDefault(); this.act(body, a, `${base}/assign`, "POST", { assignee: select.value || null }); });
      parts.push(form);
    }

    // Shelve, clear, silences.
    if (wf.shelved) parts.push(el("p", { class: "meta alarm-shelved", text: `${t("shelved_until")} ${fmtTime(wf.shelved.ends)} (${wf.shelved.by})` }));
    if (wf.cleared) parts.push(el("p", { class: "meta alarm-cleared", text: `${t("cleared_by")} ${wf.cleared.by} (${fmtTime(wf.cleared.ts)})${wf.cleared.note ? `: ${wf.cleared.note}` : ""}` }));
    for (const s of wf.silenced_by) {
      const line = el("p", { class: "meta alarm-silenced", "data-silence": s.id,
        text: `${t(s.purpose === "maintenance" ? "maintenance_until" : "silenced_until")} ${fmtTime(s.ends)} · ${this.matcherText(s.matchers)} · ${s.by}${s.comment ? `: ${s.comment}` : ""} ` });
      if (op) {
        const end = el("button", { type: "button", class: "silence-end", text: t("silence_end") });
        end.addEventListener("click", () => this.act(body, a, `/api/v1/silences/${encodeURIComponent(s.id)}`, "DELETE"));
        line.append(end);
      }
      parts.push(line);
    }
    if (op) {
      const row = el("div", { class: "row alarm-actions" });
      if (wf.state !== "resolved") {
        if (wf.shelved) {
          const un = el("button", { type: "button", class: "unshelve", text: t("unshelve") });
          un.addEventListener("click", () => this.act(body, a, `${base}/shelve`, "DELETE"));
          row.append(un);
        } else {
          const dur = this.durationSelect(`shelve-${n}`, DURATIONS, t("shelve_for"));
          const go = el("button", { type: "button", class: "shelve", text: t("shelve") });
          go.addEventListener("click", () => this.act(body, a, `${base}/shelve`, "POST", { duration_s: Number(dur.value) }));
          row.append(dur, go);
        }
      }
      if (wf.clearable) {
        const clr = el("button", { type: "button", class: "clear", text: t("clear") });
        clr.addEventListener("click", () => this.act(body, a, `${base}/clear`, "POST", {}));
        row.append(clr);
      } else if (wf.state !== "resolved" && !wf.cleared) {
        row.append(el("span", { class: "meta", text: t("not_clearable") }));
      }
      parts.push(row);
      const dur = this.durationSelect(`silence-${n}`, SILENCE_DURATIONS, t("silence_for"));
      const maint = el("input", { type: "checkbox", id: `maint-${n}` });
      const silence = el("div", { class: "row silence-actions" },
        el("label", { for: `silence-${n}`, text: t("silence_for") }), dur,
        maint, el("label", { for: `maint-${n}`, text: t("as_maintenance") }));
      const targets = [["silence_ward", "silence-ward", { district: a.district }], ["silence_device", "silence-device", { subject: a.subject }], ["silence_rule", "silence-rule", { rule: a.rule }]];
      for (const [key, cls, matchers] of targets) {
        if (Object.values(matchers).some((v) => !v)) continue;  // a city-wide alert has no ward
        const b = el("button", { type: "button", class: cls, text: t(key) });
        b.addEventListener("click", () => this.act(body, a, "/api/v1/silences", "POST", {
          matchers, duration_s: Number(dur.value), alert_id: a.id, purpose: maint.checked ? "maintenance" : "silence",
        }));
        silence.append(b);
      }
      parts.push(silence);
    }

    // The comment thread of the alarm point (every episode).
    parts.push(el("h4", { text: t("comments") }));
    const thread = el("ul", { class: "plain comments" },
      ...(wf.comments.length ? wf.comments.map((c) => el("li", { class: "comment" },
        el("span", { class: "meta", text: `${fmtTime(c.ts)} · ${c.actor}${c.alert_id !== a.id ? ` · ${t("on_earlier")}` : ""}: ` }),
        c.detail.text ?? "")) : [el("li", { class: "meta", text: t("no_comments") })]));
    parts.push(thread);
    if (op) {
      const area = el("textarea", { class: "comment-text", maxlength: "2000", rows: "2", "aria-label": t("comment_label"), placeholder: t("comment_label") });
      area.value = this.drafts.get(a.id) ?? "";
      area.addEventListener("input", () => this.drafts.set(a.id, area.value));
      const form = el("form", { class: "comment-form" }, area, el("button", { type: "submit", text: t("comment_add") }));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        if (!area.value.trim()) return;
        const text = area.value;
        this.drafts.delete(a.id);
        if (!(await this.act(body, a, `${base}/comments`, "POST", { text }))) this.drafts.set(a.id, text);
      });
      parts.push(form);
    }

    // Who did what, when.
    parts.push(el("h4", { text: t("activity") }));
    parts.push(el("ol", { class: "plain activity" },
      ...(wf.activity.length ? wf.activity.map((x) => el("li", { "data-action": x.action, text: this.activityText(x) }))
        : [el("li", { class: "meta", text: t("no_activity") })])));
    body.replaceChildren(...parts);
  }

  activityText(x) {
    const d = x.detail || {};
    const extra = {
      ack: d.note ? `: ${d.note}` : "",
      assign: ` ${d.assignee ?? ""}`,
      comment: d.text ? `: ${d.text}` : "",
      shelve: d.ends ? ` ${fmtTime(d.ends)}` : "",
      silence: d.ends ? ` ${fmtTime(d.ends)} (${this.matcherText(d.matchers || {})})` : "",
      clear: d.note ? `: ${d.note}` : "",
    }[x.action] ?? "";
    return `${fmtTime(x.ts)} · ${x.actor} · ${t(`act_${x.action}`)}${extra}`;
  }

  // --- where silences apply: ward tiles and the device page ----------------------------
  wardNote(district) {
    const found = this.activeSilences().filter((s) => s.purpose !== "shelve" && s.matchers.district === district && Object.keys(s.matchers).length === 1);
    return this.note(found, "ward-silence");
  }

  deviceNote(device, district) {
    const found = this.activeSilences().filter((s) => s.purpose !== "shelve"
      && (s.matchers.subject === device || (s.matchers.district === district && !s.matchers.subject))
      && Object.keys(s.matchers).every((k) => k === "subject" || k === "district"));
    return this.note(found, "device-silence");
  }

  note(found, cls) {
    if (!found.length) return null;
    const s = found.reduce((x, y) => (y.ends > x.ends ? y : x));
    return this.el("p", { class: `silence-note ${cls}`, "data-silence": s.id,
      text: `${t(s.purpose === "maintenance" ? "maintenance_until" : "silenced_until")} ${fmtTime(s.ends)}${s.comment ? ` · ${s.comment}` : ""}` });
  }
}
