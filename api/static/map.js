// The city map (Leaflet, served from /static/vendor). Without a configured tile URL
// the map has no base layer at all: devices at their coordinates and labelled ward
// centres, so it works offline. Markers are SVG circles coloured by state and alert.
// At city scale (CLUSTER_FROM devices or more) they are grouped with
// Leaflet.markercluster: one SVG path per device would make the map unusable at
// 10 000 devices, and a cluster takes the colour of the worst device inside it.
import { t } from "./i18n.js";

const COLOURS = { critical: "#b3261e", warning: "#e07b00", info: "#285f9e" };
const STATE_COLOURS = { online: "#1b7f3b", sleeping: "#285f9e", offline: "#6b7780", unknown: "#9aa5ad" };
// How bad a device looks, worst highest: any active alert (by severity) above any state.
const ALERT_RANK = { info: 4, warning: 5, critical: 6 };
const STATE_RANK = { online: 0, sleeping: 1, unknown: 2, offline: 3 };
export const CLUSTER_FROM = 200;

export function markerColour(d) {
  if (d.alert) return COLOURS[d.alert.severity] || COLOURS.info;
  return STATE_COLOURS[d.status] || STATE_COLOURS.unknown;
}

export function markerRank(d) {
  if (d.alert) return ALERT_RANK[d.alert.severity] ?? ALERT_RANK.info;
  return STATE_RANK[d.status] ?? STATE_RANK.unknown;
}

function label(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span;
}

function describe(d) {
  return `${d.device} · ${t(d.kind)} · ${t(d.status)}${d.alert ? ` · ${t(d.alert.severity)}` : ""}`;
}

// A cluster's icon: its count, in the colour (a CSS class, no inline style) of its
// worst device; the worst device's words are its accessible name.
function clusterIcon(cluster) {
  let worst = null;
  for (const m of cluster.getAllChildMarkers()) {
    if (!worst || m.ds.rank > worst.ds.rank) worst = m;
  }
  const count = cluster.getChildCount();
  const node = document.createElement("div");
  node.textContent = String(count);
  const size = count < 100 ? 34 : count < 1000 ? 40 : 46;
  return L.divIcon({
    html: node,
    className: `cluster cluster-r${worst.ds.rank}`,
    iconSize: [size, size],
  });
}

function decorateCluster(cluster) {
  const el = cluster.getElement?.();
  if (!el) return;
  let worst = null;
  for (const m of cluster.getAllChildMarkers()) {
    if (!worst || m.ds.rank > worst.ds.rank) worst = m;
  }
  el.setAttribute("data-cluster", String(cluster.getChildCount()));
  el.setAttribute("data-colour", worst.ds.colour);
  el.setAttribute("role", "button");
  el.setAttribute("aria-label", `${cluster.getChildCount()} ${t("cluster_devices")} · ${t("cluster_worst")}: ${worst.ds.text}`);
}

export class CityMap {
  constructor(node, config, onOpen) {
    this.node = node;
    this.onOpen = onOpen;
    const centre = config.wards.length
      ? [config.wards.reduce((s, w) => s + w.lat, 0) / config.wards.length,
         config.wards.reduce((s, w) => s + w.lon, 0) / config.wards.length]
      : [9.285, 105.73];
    // maxZoom: markercluster needs one, and without tiles nothing else sets it.
    this.map = L.map(node, { zoomControl: true, attributionControl: Boolean(config.tile_url), maxZoom: 19 })
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
    this.plain = L.layerGroup().addTo(this.map);
    this.cluster = null;  // made when the city first reaches CLUSTER_FROM devices
    this.clustered = false;
    this.markers = new Map();
    this.drawn = false;
  }

  clusterLayer() {
    if (!this.cluster) {
      this.cluster = L.markerClusterGroup({
        iconCreateFunction: clusterIcon,
        showCoverageOnHover: false,
        maxClusterRadius: 60,
      });
      this.cluster.on("animationend", () => this.decorateClusters());
      this.map.on("zoomend moveend", () => this.decorateClusters());
    }
    return this.cluster;
  }

  // Cluster icons are made and dropped by markercluster as the view changes: their
  // attributes are set on whatever is on screen now.
  decorateClusters() {
    if (!this.clustered) return;
    this.map.eachLayer((layer) => { if (layer.getChildCount) decorateCluster(layer); });
  }

  update(devices) {
    const seen = new Set();
    const added = [];
    const changed = [];
    for (const d of devices) {
      if (d.lat == null || d.lon == null) continue;
      seen.add(d.device);
      const colour = markerColour(d);
      const rank = markerRank(d);
      const text = describe(d);
      let m = this.markers.get(d.device);
      if (!m) {
        m = L.circleMarker([d.lat, d.lon], { radius: 7, weight: 2, color: "#ffffff", fillOpacity: 0.95, fillColor: colour });
        m.ds = { device: d.device, colour, rank, text };
        m.on("click", () => this.onOpen(m.ds.device));
        m.on("add", () => decorate(m));
        m.bindTooltip(() => label(m.ds.text));
        this.markers.set(d.device, m);
        added.push(m);
        continue;
      }
      const moved = !m.getLatLng().equals([d.lat, d.lon]);
      if (moved) m.setLatLng([d.lat, d.lon]);
      if (m.ds.colour !== colour || m.ds.rank !== rank || m.ds.text !== text || moved) {
        m.ds = { ...m.ds, colour, rank, text };
        m.setStyle({ fillColor: colour });
        decorate(m);
        changed.push(m);
      }
    }
    const gone = [];
    for (const [id, m] of this.markers) {
      if (!seen.has(id)) { gone.push(m); this.markers.delete(id); }
    }
    const wantClustered = this.markers.size >= CLUSTER_FROM;
    if (wantClustered !== this.clustered) {
      this.layer().clearLayers();
      if (wantClustered) this.map.removeLayer(this.plain); else if (this.cluster) this.map.removeLayer(this.cluster);
      this.clustered = wantClustered;
      if (wantClustered) this.clusterLayer().addTo(this.map); else this.plain.addTo(this.map);
      this.addAll([...this.markers.values()]);
    } else {
      if (gone.length) this.removeAll(gone);
      if (added.length) this.addAll(added);
      if (changed.length && this.clustered) this.cluster.refreshClusters(changed);
    }
    this.decorateClusters();
    this.node.dataset.markers = String(this.markers.size);
    this.node.dataset.clustered = String(this.clustered);
    if (!this.drawn && this.markers.size) {
      this.drawn = true;
      // What the first-paint benchmark reads: the devices are on the map and painted
      // (a task queued from the frame that drew them runs after that frame's paint).
      requestAnimationFrame(() => setTimeout(() => { performance.mark("ds:map-drawn"); this.node.dataset.drawn = "1"; }, 0));
    }
  }

  layer() { return this.clustered ? this.cluster : this.plain; }

  addAll(markers) {
    if (this.clustered) this.cluster.addLayers(markers);
    else for (const m of markers) m.addTo(this.plain);
  }

  removeAll(markers) {
    if (this.clustered) this.cluster.removeLayers(markers);
    else for (const m of markers) this.plain.removeLayer(m);
  }

  invalidate() { this.map.invalidateSize(); }
}

function decorate(m) {
  const el = m.getElement();
  if (!el) return;
  el.setAttribute("data-device", m.ds.device);
  el.setAttribute("data-colour", m.ds.colour);
  el.setAttribute("role", "button");
  el.setAttribute("aria-label", m.ds.text);
}
