// Hand-written SVG line chart of an indicator over periods; masked cells (small counts) are drawn as hollow
// markers on the axis and never as a value.

const SVG = 'http://www.w3.org/2000/svg';
const W = 360;
const H = 170;
const M = { top: 16, right: 26, bottom: 30, left: 46 };
const TICK = new Intl.NumberFormat('fr-FR', { maximumFractionDigits: 1 });

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs))
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat())
    if (c !== null && c !== undefined) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const pointText = (p, format) =>
  p.masked ? 'masqué (moins de 6)' : p.value === null ? 'non calculable' : format(p.value);

/** A "nice" upper bound for the y axis (1, 2, 2.5, 5 × 10^n). */
function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 2.5, 5, 10].map((k) => k * power).find((v) => v >= value);
}

/**
 * lineChart({points: [{label, value, masked}], format: (value) => text, title}) -> <svg>
 * `value` null without `masked` means "not computable" (no point drawn).
 */
export function lineChart({ points, format, title }) {
  const values = points.filter((p) => !p.masked && p.value !== null).map((p) => p.value);
  const top = niceMax(Math.max(0, ...values));
  const innerW = W - M.left - M.right;
  const innerH = H - M.top - M.bottom;
  const x = (i) => M.left + (points.length === 1 ? innerW / 2 : (i * innerW) / (points.length - 1));
  const y = (v) => M.top + innerH - (v / top) * innerH;
  const description = points.map((p) => `${p.label} : ${pointText(p, format)}`).join(' ; ');

  const root = svg(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}. ${description}` },
    svg('title', {}, title),
  );
  const grid = svg('g', { class: 'grid' });
  const axis = svg('g', { class: 'axis' });
  for (let k = 0; k <= 2; k += 1) {
    const v = (top * k) / 2;
    grid.append(svg('line', { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v) }));
    axis.append(svg('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, TICK.format(v)));
  }
  const every = Math.ceil(points.length / 6);
  points.forEach((p, i) => {
    if ((points.length - 1 - i) % every === 0) {
      axis.append(svg('text', { x: x(i), y: H - 10, 'text-anchor': 'middle' }, p.label));
    }
  });
  root.append(grid, axis);

  // Lines join consecutive shown values only: a masked or missing period breaks the line.
  let run = [];
  const flush = () => {
    if (run.length > 1)
      root.append(svg('polyline', { class: 'series', points: run.map(([a, b]) => `${a},${b}`).join(' ') }));
    run = [];
  };
  points.forEach((p, i) => {
    if (p.masked || p.value === null) flush();
    else run.push([x(i).toFixed(1), y(p.value).toFixed(1)]);
  });
  flush();
  points.forEach((p, i) => {
    if (p.masked) {
      root.append(
        svg(
          'circle',
          { class: 'point masked', cx: x(i), cy: y(0), r: 4 },
          svg('title', {}, `${p.label} : masqué (< 6)`),
        ),
      );
    } else if (p.value !== null) {
      root.append(
        svg(
          'circle',
          { class: 'point', cx: x(i), cy: y(p.value), r: 3.5 },
          svg('title', {}, `${p.label} : ${format(p.value)}`),
        ),
      );
    }
  });
  const last = points.length - 1;
  if (last >= 0 && !points[last].masked && points[last].value !== null) {
    root.append(
      svg(
        'text',
        {
          class: 'value',
          x: Math.min(x(last), W - M.right - 2),
          y: y(points[last].value) - 8,
          'text-anchor': 'end',
        },
        format(points[last].value),
      ),
    );
  }
  return root;
}
