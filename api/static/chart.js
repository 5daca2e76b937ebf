// One field of one device over a range, drawn with uPlot (from /static/vendor), with
// the site's rule thresholds for that field as horizontal lines.
import { t, unitOf, scaleOf, fmtNumber, fieldLabel, UTC_OFFSET_MIN } from "./i18n.js";

const LINE_COLOURS = { critical: "#b3261e", warning: "#e07b00", info: "#7a5bbf" };

function thresholdPlugin(lines, scale) {
  return {
    hooks: {
      draw: [(u) => {
        const { ctx } = u;
        const { left, width, top, height } = u.bbox;
        ctx.save();
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
        ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
        for (const line of lines) {
          const y = u.valToPos(line.value * scale, "y", true);
          if (y < top || y > top + height) continue;
          ctx.strokeStyle = LINE_COLOURS[line.level] || LINE_COLOURS.info;
          ctx.fillStyle = ctx.strokeStyle;
          ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + width, y); ctx.stroke();
          const text = line.label.startsWith("cap_") ? `${t("wind_cap")} ${line.label.slice(4)}` : t(line.label);
          ctx.textAlign = "right";
          ctx.fillText(text, left + width - 4 * devicePixelRatio, y - 3 * devicePixelRatio);
        }
        ctx.restore();
      }],
    },
  };
}

// What the chart benchmark reads: a performance measure "ds:chart-draw" from here to
// the end of uPlot's first draw (detail: field and points), one per chart.
function firstDrawMeasure(field, points) {
  const start = performance.now();
  let done = false;
  return (u) => {
    if (done) return;
    done = true;
    performance.measure("ds:chart-draw", { start, end: performance.now(), detail: { field, points } });
    u.root.dataset.drawMs = String(Math.round(performance.now() - start));
  };
}

export function drawChart(node, field, series, lines) {
  const measured = firstDrawMeasure(field, series.points.length);
  const scale = scaleOf(field);
  const xs = [];
  const ys = [];
  for (const [ts, v] of series.points) {
    xs.push((ts + UTC_OFFSET_MIN * 60000) / 1000); // uPlot in seconds; axis shows the site's clock
    ys.push(v == null ? null : (typeof v === "boolean" ? Number(v) : v * scale));
  }
  const values = ys.filter((v) => v != null);
  const wanted = values.concat(lines.map((l) => l.value * scale));
  let lo = wanted.length ? Math.min(...wanted) : 0;
  let hi = wanted.length ? Math.max(...wanted) : 1;
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08;
  const unit = unitOf(field);
  const width = Math.max(240, node.clientWidth - 16);
  const days = (xs[xs.length - 1] - xs[0]) > 2 * 86400;
  const two = (n) => String(n).padStart(2, "0");
  // xs are already on the site's clock: read them back as UTC.
  const clock = (sec) => {
    const d = new Date(sec * 1000);
    return days ? `${two(d.getUTCDate())}/${two(d.getUTCMonth() + 1)}` : `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}`;
  };
  const decimals = Math.abs(hi - lo) < 10 ? 1 : 0;
  const opts = {
    width,
    height: 180,
    scales: { x: { time: true }, y: { range: () => [lo - pad, hi + pad] } },
    legend: { show: false },
    cursor: { drag: { x: false, y: false } },
    axes: [
      { stroke: "#56626d", grid: { stroke: "#e4e8eb" }, values: (u, splits) => splits.map(clock) },
      { stroke: "#56626d", grid: { stroke: "#e4e8eb" },
        size: 72,
        values: (u, splits) => splits.map((v) => `${fmtNumber(v, decimals)}${unit ? ` ${unit}` : ""}`) },
    ],
    series: [{}, { label: fieldLabel(field), stroke: "#12344d", width: 2, spanGaps: false, points: { show: values.length < 60, size: 5 } }],
    plugins: [thresholdPlugin(lines, scale), { hooks: { draw: [measured] } }],
  };
  const plot = new uPlot(opts, [xs, ys], node);
  plot.root.setAttribute("role", "img");
  plot.root.setAttribute("aria-label", unit ? `${fieldLabel(field)} (${unit})` : fieldLabel(field));
  plot.root.dataset.points = String(values.length);
  return plot;
}
