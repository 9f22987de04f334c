// The report's charts as inline SVG (no script, no network): line charts over time and horizontal
// bar charts, each with labelled axes in one unit per axis. Every series is one <polyline> or <path>
// marked data-series="KEY", so a reader of the page (or a test) finds each one by name.
import { GiB, KiB, MiB } from '../util/bytes.js';
import { escapeHtml } from './html-escape.js';

/** How an axis writes its numbers: values are divided by `unit` and followed by `name`. */
export interface Unit {
  size: number;
  name: string;
}

export interface Axis {
  label: string;
  unit: Unit;
  /** The largest value to show (the axis ends at a round number at or above it). */
  max: number;
}

export interface LineSeries {
  key: string;
  label: string;
  color: string;
  points: Array<[x: number, y: number]>;
}

export interface LineChartSpec {
  title: string;
  x: Axis;
  y: Axis;
  series: LineSeries[];
}

export interface BarSeries {
  key: string;
  label: string;
  color: string;
  /** One value per row. */
  values: number[];
}

export interface BarChartSpec {
  title: string;
  /** Row labels, top to bottom. */
  rows: string[];
  x: Axis;
  series: BarSeries[];
}

const WIDTH = 960;
const FONT = 12;

export function byteUnit(max: number): Unit {
  if (max >= GiB) return { size: GiB, name: 'GiB' };
  if (max >= MiB) return { size: MiB, name: 'MiB' };
  if (max >= KiB) return { size: KiB, name: 'KiB' };
  return { size: 1, name: 'B' };
}

export function timeUnit(maxMs: number): Unit {
  return maxMs >= 2000 ? { size: 1000, name: 's' } : { size: 1, name: 'ms' };
}

export const COUNT_UNIT: Unit = { size: 1, name: '' };

/** A value in an axis unit, with no more digits than it needs. */
export function formatInUnit(value: number, unit: Unit): string {
  const n = Number((value / unit.size).toPrecision(4));
  return unit.name ? `${n} ${unit.name}` : String(n);
}

/** Round tick values from 0 to at least `max` (about five steps of 1, 2 or 5 × 10^k units). */
export function ticks(max: number, unit: Unit): number[] {
  const top = max / unit.size;
  if (!(top > 0)) return [0, unit.size];
  const rough = top / 5;
  const decade = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((s) => s * decade).find((s) => s >= rough)!;
  const count = Math.ceil(top / step - 1e-9);
  return Array.from({ length: count + 1 }, (_, i) => Number((i * step).toPrecision(12)) * unit.size);
}

const px = (n: number): string => String(Math.round(n * 10) / 10);

function legend(series: ReadonlyArray<{ key: string; label: string; color: string }>): string {
  const items = series.map((s) => `<li data-legend="${escapeHtml(s.key)}"><span class="swatch" style="background:${s.color}"></span>${escapeHtml(s.label)}</li>`);
  return `<ul class="legend">${items.join('')}</ul>`;
}

function figure(title: string, keys: ReadonlyArray<{ key: string; label: string; color: string }>, height: number, body: string): string {
  return `<figure class="chart"><figcaption>${escapeHtml(title)}</figcaption>${legend(keys)}`
    + `<svg viewBox="0 0 ${WIDTH} ${height}" width="100%" role="img" aria-label="${escapeHtml(title)}" font-size="${FONT}">${body}</svg></figure>`;
}

export function lineChart(spec: LineChartSpec): string {
  const margin = { left: 84, right: 40, top: 12, bottom: 48 };
  const height = 300;
  const plotW = WIDTH - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const xTicks = ticks(spec.x.max, spec.x.unit);
  const yTicks = ticks(spec.y.max, spec.y.unit);
  const xEnd = xTicks[xTicks.length - 1]!;
  const yEnd = yTicks[yTicks.length - 1]!;
  const sx = (x: number): number => margin.left + (x / xEnd) * plotW;
  const sy = (y: number): number => margin.top + plotH - (y / yEnd) * plotH;
  const parts: string[] = [];
  for (const t of yTicks) {
    parts.push(`<line class="grid" x1="${margin.left}" x2="${WIDTH - margin.right}" y1="${px(sy(t))}" y2="${px(sy(t))}"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${px(sy(t) + FONT / 3)}" text-anchor="end">${escapeHtml(formatInUnit(t, spec.y.unit))}</text>`);
  }
  for (const t of xTicks) {
    parts.push(`<line class="tick" x1="${px(sx(t))}" x2="${px(sx(t))}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 5}"/>`);
    parts.push(`<text x="${px(sx(t))}" y="${margin.top + plotH + 18}" text-anchor="middle">${escapeHtml(formatInUnit(t, spec.x.unit))}</text>`);
  }
  parts.push(`<line class="axis" x1="${margin.left}" x2="${WIDTH - margin.right}" y1="${margin.top + plotH}" y2="${margin.top + plotH}"/>`);
  parts.push(`<line class="axis" x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}"/>`);
  parts.push(axisLabels(spec.x, spec.y, margin.left + plotW / 2, height - 6, margin.top + plotH / 2));
  for (const s of spec.series) {
    const points = s.points.map(([x, y]) => `${px(sx(x))},${px(sy(y))}`).join(' ');
    parts.push(`<polyline data-series="${escapeHtml(s.key)}" fill="none" stroke="${s.color}" stroke-width="2" stroke-linejoin="round" points="${points}"><title>${escapeHtml(s.label)}</title></polyline>`);
  }
  return figure(spec.title, spec.series, height, parts.join(''));
}

function axisLabels(x: Axis, y: Axis, xMid: number, xBaseline: number, yMid: number): string {
  const withUnit = (a: Axis): string => (a.unit.name ? `${a.label} (${a.unit.name})` : a.label);
  return `<text class="axis-label" x="${px(xMid)}" y="${px(xBaseline)}" text-anchor="middle">${escapeHtml(withUnit(x))}</text>`
    + `<text class="axis-label" transform="translate(14 ${px(yMid)}) rotate(-90)" text-anchor="middle">${escapeHtml(withUnit(y))}</text>`;
}

/** A path or label too long for the chart's margin keeps its end (where a file's name is). */
function shortLabel(label: string, max: number): string {
  return label.length <= max ? label : `…${label.slice(label.length - max + 1)}`;
}

export function barChart(spec: BarChartSpec): string {
  const margin = { left: 300, right: 40, top: 8, bottom: 44 };
  const bar = 9;
  const rowH = bar * spec.series.length + 10;
  const plotW = WIDTH - margin.left - margin.right;
  const plotH = rowH * spec.rows.length;
  const height = margin.top + plotH + margin.bottom;
  const xTicks = ticks(spec.x.max, spec.x.unit);
  const xEnd = xTicks[xTicks.length - 1]!;
  const width = (v: number): number => (v <= 0 ? 0 : Math.max(1, (v / xEnd) * plotW));
  const parts: string[] = [];
  for (const t of xTicks) {
    const x = px(margin.left + (t / xEnd) * plotW);
    parts.push(`<line class="grid" x1="${x}" x2="${x}" y1="${margin.top}" y2="${margin.top + plotH}"/>`);
    parts.push(`<text x="${x}" y="${margin.top + plotH + 16}" text-anchor="middle">${escapeHtml(formatInUnit(t, spec.x.unit))}</text>`);
  }
  spec.rows.forEach((label, i) => {
    const y = margin.top + i * rowH + rowH / 2 + FONT / 3;
    parts.push(`<text x="${margin.left - 8}" y="${px(y)}" text-anchor="end"><title>${escapeHtml(label)}</title>${escapeHtml(shortLabel(label, 44))}</text>`);
  });
  parts.push(`<line class="axis" x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${margin.top + plotH}"/>`);
  parts.push(`<text class="axis-label" x="${px(margin.left + plotW / 2)}" y="${height - 6}" text-anchor="middle">${escapeHtml(`${spec.x.label} (${spec.x.unit.name})`)}</text>`);
  spec.series.forEach((s, k) => {
    const d = s.values.map((v, i) => `M${margin.left},${px(margin.top + i * rowH + 5 + k * bar)}h${px(width(v))}v${bar - 1}h${px(-width(v))}z`).join('');
    parts.push(`<path data-series="${escapeHtml(s.key)}" fill="${s.color}" d="${d}"><title>${escapeHtml(s.label)}</title></path>`);
  });
  return figure(spec.title, spec.series, height, parts.join(''));
}
