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

const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

// lineChart draws series (each {label, points: [{step, value}]}) against
// step, with an EMA smoothing slider. It answers the chart's element.
export function lineChart(title, series) {
  const steps = [...new Set(series.flatMap(s => s.points.map(p => Number(p.step))))].sort((a, b) => a - b);
  const idx = new Map(steps.map((s, i) => [s, i]));
  const raw = series.map(s => {
    const ys = new Array(steps.length).fill(null);
    for (const p of s.points) ys[idx.get(Number(p.step))] = Number(p.value);
    return ys;
  });
  const box = el('div', { class: 'chart' });
  const slider = el('input', { type: 'range', min: '0', max: '0.99', step: '0.01', value: '0', 'aria-label': 'Smoothing' });
  const shown = el('output', {}, '0');
  box.append(el('div', { class: 'toolbar' }, el('strong', {}, title), el('label', {}, ' Smoothing ', slider), shown));
  const plotBox = el('div');
  box.append(plotBox);
  const width = () => Math.max(320, Math.min(1100, (document.getElementById('main') || document.body).clientWidth - 40));
  const css = getComputedStyle(document.documentElement);
  const axis = { stroke: css.getPropertyValue('--muted').trim() || '#666', grid: { stroke: css.getPropertyValue('--line').trim() || '#ddd' } };
  const opts = {
    width: width(), height: 280,
    scales: { x: { time: false } },
    axes: [{ ...axis, label: 'step' }, { ...axis }],
    series: [{ label: 'step' }, ...series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 1.5, spanGaps: true }))],
  };
  const plot = new uPlot(opts, [steps, ...raw], plotBox);
  slider.addEventListener('input', () => {
    const w = Number(slider.value);
    shown.textContent = w.toFixed(2);
    plot.setData([steps, ...raw.map(ys => ema(ys, w))]);
  });
  window.addEventListener('resize', () => plot.setSize({ width: width(), height: 280 }));
  return box;
}
