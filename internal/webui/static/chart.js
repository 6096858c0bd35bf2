import uPlot from './vendor/uPlot.esm.js';
import { el } from './dom.js';

// ema smooths ys as TensorBoard does: an exponential moving average with
// debiasing, so the first points are not pulled to zero.
export function ema(ys, weight) {
  if (!weight) return ys;
  const out = new Array(ys.length);
  let last = 0, n = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y == null || !Number.isFinite(y)) { out[i] = y; continue; }
    last = last * weight + (1 - weight) * y;
    n++;
    out[i] = last / (1 - Math.pow(weight, n));
  }
  return out;
}

// windowMean smooths ys with the mean of the last k values present.
export function windowMean(ys, k) {
  if (k <= 1) return ys;
  const out = new Array(ys.length);
  const win = [];
  let sum = 0;
  for (let i = 0; i < ys.length; i++) {
    const y = ys[i];
    if (y == null || !Number.isFinite(y)) { out[i] = y; continue; }
    win.push(y); sum += y;
    if (win.length > k) sum -= win.shift();
    out[i] = sum / win.length;
  }
  return out;
}

const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
export const color = (i) => palette[i % palette.length];

// SLOTS bounds the x positions of a chart: more than its pixels, so no
// detail is lost, and few enough that 1,000 runs stay light.
const SLOTS = 1500;

const yFmt = new Intl.NumberFormat(undefined, { maximumSignificantDigits: 4 });

// xsOf reads a history's bucket positions on the chosen x axis: the
// step, the wall time (s), or the time since its first point (s).
function xsOf(mode, h) {
  const n = (h.step || []).length;
  if (mode === 'step') return h.step || [];
  const t0 = n ? Math.min(...h.time_min) : 0;
  return h.time_max.map(t => mode === 'time' ? t / 1000 : (t - t0) / 1000);
}

// align puts every history (columns from the buckets API) on one x array
// of at most SLOTS positions: each slot keeps the mean (last bucket wins)
// and the min and max of the buckets falling in it, so a spike survives.
export function align(series, mode) {
  const xss = series.map(h => xsOf(mode, h));
  let lo = Infinity, hi = -Infinity;
  const distinct = new Set();
  for (const xs of xss) for (const x of xs) { if (x < lo) lo = x; if (x > hi) hi = x; if (distinct.size <= SLOTS) distinct.add(x); }
  if (lo === Infinity) return { x: [], mean: series.map(() => []), lo: series.map(() => []), hi: series.map(() => []) };
  let x, slotOf;
  if (distinct.size <= SLOTS) {
    x = [...distinct].sort((a, b) => a - b);
    const idx = new Map(x.map((v, i) => [v, i]));
    slotOf = (v) => idx.get(v);
  } else {
    const w = (hi - lo) / (SLOTS - 1) || 1;
    x = Array.from({ length: SLOTS }, (_, i) => lo + i * w);
    slotOf = (v) => Math.min(SLOTS - 1, Math.round((v - lo) / w));
  }
  const mean = [], mins = [], maxs = [];
  series.forEach((h, i) => {
    const m = new Array(x.length).fill(null), a = new Array(x.length).fill(null), b = new Array(x.length).fill(null);
    xss[i].forEach((v, k) => {
      const j = slotOf(v);
      m[j] = h.mean[k];
      a[j] = a[j] == null ? h.min[k] : Math.min(a[j], h.min[k]);
      b[j] = b[j] == null ? h.max[k] : Math.max(b[j], h.max[k]);
    });
    mean.push(m); mins.push(a); maxs.push(b);
  });
  return { x, mean, lo: mins, hi: maxs };
}

// lineChart draws series (each {label, ...history columns} from the buckets API) with
// a choice of x axis (step, wall time, relative time), linear or log y,
// smoothing (EMA or window mean), and the min-max band of each bucket when
// a few series are drawn. box.update(series) redraws with new data.
export function lineChart(title, series, opts = {}) {
  const box = el('div', { class: 'chart' });
  const xSel = el('select', { class: 'x-axis', 'aria-label': 'X axis' },
    el('option', { value: 'step' }, 'step'), el('option', { value: 'time' }, 'wall time'), el('option', { value: 'relative' }, 'relative time'));
  const logBox = el('input', { type: 'checkbox', class: 'log-y', 'aria-label': 'Log scale' });
  const smoothSel = el('select', { class: 'smooth-kind', 'aria-label': 'Smoothing kind' },
    el('option', { value: 'ema' }, 'EMA'), el('option', { value: 'window' }, 'window mean'));
  const slider = el('input', { type: 'range', class: 'smoothing', min: '0', max: '0.99', step: '0.01', value: '0', 'aria-label': 'Smoothing' });
  const shown = el('output', {}, '0');
  const info = el('span', { class: 'muted chart-info' });
  box.append(el('div', { class: 'toolbar' }, el('strong', {}, title),
    el('label', {}, ' x ', xSel), el('label', {}, logBox, ' log'),
    el('label', {}, ' smoothing ', smoothSel, slider), shown, info));
  const plotBox = el('div', { class: 'plot' });
  box.append(plotBox);
  const width = () => Math.max(320, Math.min(1100, (document.getElementById('main') || document.body).clientWidth - 40));
  const css = getComputedStyle(document.documentElement);
  const axis = { stroke: css.getPropertyValue('--muted').trim() || '#666', grid: { stroke: css.getPropertyValue('--line').trim() || '#ddd' } };
  let plot = null, data = null;
  const smooth = (ys) => {
    const w = Number(slider.value);
    return smoothSel.value === 'ema' ? ema(ys, w) : windowMean(ys, Math.round(1 + w * 100));
  };
  const positive = (ys) => logBox.checked ? ys.map(y => (y != null && y > 0 ? y : null)) : ys;
  // With opts.groups (a label per series), each group is drawn as the mean
  // of its runs with their min-max band, as Aim does.
  let grouping = opts.groups || null;
  let labels = [];
  const bands = () => grouping ? true : series.length <= (opts.maxBands || 10) && series.some(s => (s.count || []).some(c => c > 1));
  function view() {
    data = align(series, xSel.value);
    labels = series.map(s => s.label);
    if (!grouping) return;
    const keys = [...new Set(grouping)];
    const mean = [], lo = [], hi = [];
    for (const k of keys) {
      const members = grouping.map((g, i) => (g === k ? i : -1)).filter(i => i >= 0);
      const m = new Array(data.x.length).fill(null), a = new Array(data.x.length).fill(null), b = new Array(data.x.length).fill(null);
      for (let j = 0; j < data.x.length; j++) {
        let sum = 0, n = 0;
        for (const i of members) {
          const v = data.mean[i][j];
          if (v == null) continue;
          sum += v; n++;
          a[j] = a[j] == null ? v : Math.min(a[j], v);
          b[j] = b[j] == null ? v : Math.max(b[j], v);
        }
        if (n) m[j] = sum / n;
      }
      mean.push(m); lo.push(a); hi.push(b);
    }
    data = { x: data.x, mean, lo, hi };
    labels = keys.map(k => `${k} (${grouping.filter(g => g === k).length} runs)`);
  }
  box.regroup = (groups) => { grouping = groups; build(); };
  function columns() {
    const cols = [data.x];
    data.mean.forEach((m, i) => {
      cols.push(positive(smooth(m)));
      if (bands()) cols.push(positive(data.lo[i]), positive(data.hi[i]));
    });
    return cols;
  }
  function build() {
    view();
    const points = series.reduce((n, s) => n + (s.points || 0), 0);
    info.textContent = `${points.toLocaleString()} point${points === 1 ? '' : 's'}, ${data.x.length.toLocaleString()} position${data.x.length === 1 ? '' : 's'} drawn`;
    const withBands = bands();
    const sers = [{ label: xSel.value === 'step' ? 'step' : 'time' }];
    const bandList = [];
    labels.forEach((label, i) => {
      sers.push({ label, stroke: color(i), width: 1.5, spanGaps: true });
      if (withBands) {
        const base = sers.length;
        sers.push({ label: label + ' min', stroke: 'transparent', spanGaps: true, show: true },
          { label: label + ' max', stroke: 'transparent', spanGaps: true, show: true });
        bandList.push({ series: [base + 1, base], fill: color(i) + '33' });
      }
    });
    const o = {
      width: width(), height: 280,
      scales: { x: { time: xSel.value === 'time' }, y: logBox.checked ? { distr: 3 } : {} },
      axes: [{ ...axis, label: xSel.value === 'relative' ? 'seconds' : xSel.value === 'step' ? 'step' : '' },
        { ...axis, values: (u, splits) => splits.map(v => (v == null ? '' : yFmt.format(v))) }],
      series: sers, bands: bandList,
      legend: { show: true },
    };
    if (plot) plot.destroy();
    plot = new uPlot(o, columns(), plotBox);
    // The band's own series are data, not lines: keep them out of the legend.
    plotBox.querySelectorAll('.u-legend .u-series').forEach((row, j) => {
      if (/ (min|max)$/.test(sers[j] && sers[j].label || '')) row.style.display = 'none';
    });
  }
  xSel.addEventListener('change', build);
  logBox.addEventListener('change', build);
  smoothSel.addEventListener('change', () => plot.setData(columns()));
  slider.addEventListener('input', () => {
    shown.textContent = Number(slider.value).toFixed(2);
    plot.setData(columns());
  });
  window.addEventListener('resize', () => plot && plot.setSize({ width: width(), height: 280 }));
  box.update = (next) => { series = next; view(); plot.setData(columns()); };
  build();
  return box;
}
