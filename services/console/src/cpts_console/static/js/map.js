// A hand-drawn SVG map of a territory from its communes' points (no tile server): one circle per commune,
// sized by the number of professionals, with the SAS participants as an inner disc.

import { plural } from './format.js';

const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 640;
const MAX_HEIGHT = 760;
const PAD = 70;

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs))
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  for (const c of children.flat())
    if (c) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Convex hull (monotone chain) of [x, y] points: the territory's outline. */
function hull(points) {
  const p = [...points].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  if (p.length < 3) return p;
  const cross = (o, a, b) => (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0]);
  const half = (list) =>
    list.reduce((acc, pt) => {
      while (acc.length >= 2 && cross(acc[acc.length - 2], acc[acc.length - 1], pt) <= 0) acc.pop();
      acc.push(pt);
      return acc;
    }, []);
  const lower = half(p);
  const upper = half([...p].reverse());
  return [...lower.slice(0, -1), ...upper.slice(0, -1)];
}

/**
 * territoryMap({communes: [{insee, name, lat, lon}], counts: Map(insee -> {total, sas}), selected, onSelect,
 *   title})
 * Each commune is a focusable button (Enter / Space) that filters the list; the selected one is highlighted.
 */
export function territoryMap({
  communes,
  counts,
  selected = null,
  onSelect = () => {},
  title = 'Carte du territoire',
}) {
  const placed = communes.filter((c) => c.lat !== null && c.lon !== null);
  const lat0 = placed.reduce((s, c) => s + c.lat, 0) / (placed.length || 1);
  const kx = Math.cos((lat0 * Math.PI) / 180);
  const xs = placed.map((c) => c.lon * kx);
  const ys = placed.map((c) => -c.lat);
  const [minX, maxX, minY, maxY] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  // The drawing takes the territory's own proportions: full width, as tall as needed (within MAX_HEIGHT).
  const scale = Math.min(
    (WIDTH - 2 * PAD) / (maxX - minX || 0.01),
    (MAX_HEIGHT - 2 * PAD) / (maxY - minY || 0.01),
  );
  const HEIGHT = Math.max(320, (maxY - minY) * scale + 2 * PAD);
  const offX = (WIDTH - (maxX - minX) * scale) / 2;
  const offY = (HEIGHT - (maxY - minY) * scale) / 2;
  const project = (c) => [offX + (c.lon * kx - minX) * scale, offY + (-c.lat - minY) * scale];
  const most = Math.max(1, ...placed.map((c) => counts.get(c.insee)?.total || 0));
  const radius = (n) => 8 + 30 * Math.sqrt(n / most);

  const outline = hull(placed.map(project));
  const kmPx = scale / 111; // one degree of latitude is about 111 km
  const barKm = [1, 2, 5, 10, 20].find((k) => k * kmPx >= 60) || 20;

  const root = svg(
    'svg',
    { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: 'map', role: 'group', 'aria-label': title },
    svg('title', {}, title),
    outline.length >= 3
      ? svg('polygon', {
          points: outline.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(' '),
          class: 'territory',
        })
      : null,
    svg(
      'g',
      { class: 'scale', transform: `translate(16 ${HEIGHT - 18})` },
      svg('line', { x1: 0, y1: 0, x2: barKm * kmPx, y2: 0, stroke: '#161616', 'stroke-width': 2 }),
      svg('text', { x: 0, y: -6 }, `${barKm} km`),
    ),
  );

  for (const c of placed) {
    const [x, y] = project(c);
    const n = counts.get(c.insee) || { total: 0, sas: 0 };
    const r = radius(n.total);
    const label =
      `${c.name} : ${plural(n.total, 'professionnel')}, ` + `dont ${plural(n.sas, 'participant')} au SAS`;
    const group = svg(
      'g',
      {
        class: `commune${selected === c.insee ? ' active' : ''}`,
        tabindex: 0,
        role: 'button',
        'aria-pressed': String(selected === c.insee),
        'aria-label': label,
      },
      svg('title', {}, label),
      svg('circle', { class: 'base', cx: x, cy: y, r }),
      n.sas
        ? svg('circle', {
            class: 'sas',
            cx: x,
            cy: y,
            r: Math.max(3, r * Math.sqrt(n.sas / Math.max(n.total, 1))),
          })
        : null,
      svg('text', { class: 'count', x, y: y + 5, 'text-anchor': 'middle' }, String(n.total)),
      svg('text', { x, y: y + r + 16, 'text-anchor': 'middle' }, c.name),
    );
    group.dataset.insee = c.insee;
    const pick = () => onSelect(selected === c.insee ? null : c.insee);
    group.addEventListener('click', pick);
    group.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        pick();
      }
    });
    root.append(group);
  }
  return root;
}
