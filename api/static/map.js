// The city map (Leaflet, served from /static/vendor). Without a configured tile URL
// the map has no base layer at all: devices at their coordinates and labelled ward
// centres, so it works offline. Markers are SVG circles coloured by state and alert.
import { t } from "./i18n.js";

const COLOURS = { critical: "#b3261e", warning: "#e07b00", info: "#285f9e" };
const STATE_COLOURS = { online: "#1b7f3b", sleeping: "#285f9e", offline: "#6b7780", unknown: "#9aa5ad" };

export function markerColour(d) {
  if (d.alert) return COLOURS[d.alert.severity] || COLOURS.info;
  return STATE_COLOURS[d.status] || STATE_COLOURS.unknown;
}

function label(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span;
}

export class CityMap {
  constructor(node, config, onOpen) {
    this.onOpen = onOpen;
    const centre = config.wards.length
      ? [config.wards.reduce((s, w) => s + w.lat, 0) / config.wards.length,
         config.wards.reduce((s, w) => s + w.lon, 0) / config.wards.length]
      : [9.285, 105.73];
    this.map = L.map(node, { zoomControl: true, attributionControl: Boolean(config.tile_url) })
      .setView(centre, 13);
    if (config.tile_url) {
      L.tileLayer(config.tile_url, { maxZoom: 19, attribution: config.tile_attribution || "" }).addTo(this.map);
    }
    this.wardLayer = L.layerGroup().addTo(this.map);
    for (const w of config.wards) {
      L.circleMarker([w.lat, w.lon], { radius: 3, color: "#12344d", weight: 1, fillOpacity: 0.4, interactive: false })
        .bindTooltip(label(w.name), { permanent: true, direction: "top", className: "ward-label", offset: [0, -4] })
        .addTo(this.wardLayer);
    }
    this.deviceLayer = L.layerGroup().addTo(this.map);
    this.markers = new Map();
  }

  update(devices) {
    const seen = new Set();
    for (const d of devices) {
      if (d.lat == null || d.lon == null) continue;
      seen.add(d.device);
      const colour = markerColour(d);
      let m = this.markers.get(d.device);
      if (!m) {
        m = L.circleMarker([d.lat, d.lon], { radius: 7, weight: 2, color: "#ffffff", fillOpacity: 0.95 });
        m.on("click", () => this.onOpen(d.device));
        m.addTo(this.deviceLayer);
        this.markers.set(d.device, m);
      }
      m.setLatLng([d.lat, d.lon]);
      m.setStyle({ fillColor: colour });
      const el = m.getElement();
      if (el) {
        el.setAttribute("data-device", d.device);
        el.setAttribute("data-colour", colour);
        el.setAttribute("role", "button");
        el.setAttribute("aria-label", `${d.device} · ${t(d.kind)} · ${t(d.status)}${d.alert ? ` · ${t(d.alert.severity)}` : ""}`);
      }
      m.unbindTooltip();
      m.bindTooltip(label(`${d.device} · ${t(d.kind)} · ${t(d.status)}${d.alert ? ` · ${t(d.alert.severity)}` : ""}`));
    }
    for (const [id, m] of this.markers) {
      if (!seen.has(id)) { m.remove(); this.markers.delete(id); }
    }
  }

  invalidate() { this.map.invalidateSize(); }
}

