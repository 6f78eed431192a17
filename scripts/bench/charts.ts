/**
 * Small self-contained SVG charts of a bench run, one per workload, both systems side by side:
 * latency percentiles as bars on a log axis, and a failover's gaps trial by trial (sorted). Plain
 * SVG text, no fonts or scripts to load: any browser shows it.
 */

export interface Series {
  name: string
  color: string
  /** Dashed line (the server-side series of a failover chart). */
  dashed?: boolean
  values: readonly number[]
}

export const COLORS = { nodeledger: '#1f77b4', etcd: '#ff7f0e' } as const
/** A lighter shade of each, for second series (the server-side gaps). */
export const LIGHT_COLORS = { nodeledger: '#6baed6', etcd: '#fdae6b' } as const

const WIDTH = 760
const HEIGHT = 440
const MARGIN = { left: 72, right: 24, top: 88, bottom: 64 }
const PLOT_W = WIDTH - MARGIN.left - MARGIN.right
const PLOT_H = HEIGHT - MARGIN.top - MARGIN.bottom

function xml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

function number(value: number): string {
  if (value >= 100) return String(Math.round(value))
  if (value >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

/** An axis tick: 1, 20, 500, 0.5, 0.02. */
function tick(value: number): string {
  return value >= 1 ? String(Math.round(value)) : String(Number(value.toPrecision(1)))
}

/** A log axis over the positive values: whole decades, ticks at 1, 2 and 5 of each. */
class LogAxis {
  readonly low: number
  readonly high: number

  constructor(values: readonly number[]) {
    const positive = values.filter((value) => Number.isFinite(value) && value > 0)
    const min = positive.length === 0 ? 1 : Math.min(...positive)
    const max = positive.length === 0 ? 10 : Math.max(...positive)
    this.low = 10 ** Math.floor(Math.log10(min))
    this.high = Math.max(10 ** Math.ceil(Math.log10(max)), this.low * 10)
  }

  /** y of `value` in the plot (clamped to its bottom for values at or below the axis). */
  y(value: number): number {
    const clamped = Math.max(value, this.low)
    const fraction = (Math.log10(clamped) - Math.log10(this.low)) / (Math.log10(this.high) - Math.log10(this.low))
    return MARGIN.top + PLOT_H * (1 - fraction)
  }

  ticks(): Array<{ value: number; major: boolean }> {
    const decades = Math.round(Math.log10(this.high / this.low))
    const ticks: Array<{ value: number; major: boolean }> = []
    for (let decade = this.low; decade <= this.high * 1.0001; decade *= 10) {
      for (const step of decades > 4 ? [1] : [1, 2, 5]) {
        const value = decade * step
        if (value <= this.high * 1.0001) ticks.push({ value, major: step === 1 })
      }
    }
    return ticks
  }

  draw(label: string): string[] {
    const parts: string[] = []
    for (const { value, major } of this.ticks()) {
      const y = this.y(value).toFixed(1)
      parts.push(
        `<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${y}" y2="${y}" stroke="${major ? '#bbb' : '#e4e4e4'}" stroke-width="1"/>`,
        `<text x="${MARGIN.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11" fill="#444">${tick(value)}</text>`,
      )
    }
    const middle = MARGIN.top + PLOT_H / 2
    parts.push(
      `<text x="18" y="${middle}" text-anchor="middle" font-size="12" fill="#222" transform="rotate(-90 18 ${middle})">${xml(label)}</text>`,
      `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + PLOT_H}" stroke="#666"/>`,
      `<line x1="${MARGIN.left}" x2="${MARGIN.left + PLOT_W}" y1="${MARGIN.top + PLOT_H}" y2="${MARGIN.top + PLOT_H}" stroke="#666"/>`,
    )
    return parts
  }
}

/** The legend: one row between the subtitle and the plot, centred. */
function legendRow(legend: readonly Series[]): string[] {
  const widths = legend.map((series) => 36 + series.name.length * 7 + 18)
  let x = (WIDTH - widths.reduce((sum, width) => sum + width, 0)) / 2
  const y = MARGIN.top - 22
  return legend.map((series, index) => {
    const part = [
      `<line x1="${x.toFixed(1)}" x2="${(x + 26).toFixed(1)}" y1="${y}" y2="${y}" stroke="${series.color}" stroke-width="6"${series.dashed === true ? ' stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${(x + 32).toFixed(1)}" y="${y}" dominant-baseline="middle" font-size="12" fill="#222">${xml(series.name)}</text>`,
    ].join('')
    x += widths[index]!
    return part
  })
}

function frame(title: string, subtitle: string, body: string[], legend: readonly Series[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif">`,
    `<title>${xml(title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    `<text x="${WIDTH / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold" fill="#111">${xml(title)}</text>`,
    `<text x="${WIDTH / 2}" y="44" text-anchor="middle" font-size="12" fill="#555">${xml(subtitle)}</text>`,
    ...legendRow(legend),
    ...body,
    '</svg>',
    '',
  ].join('\n')
}

/** Bars: one group per percentile label, one bar per series (missing values leave a gap). */
export function percentileChart(options: {
  title: string
  subtitle: string
  labels: readonly string[]
  series: readonly Series[]
  yLabel: string
}): string {
  const axis = new LogAxis(options.series.flatMap((series) => series.values))
  const body = axis.draw(options.yLabel)
  const groupW = PLOT_W / options.labels.length
  const barW = (groupW * 0.7) / Math.max(1, options.series.length)
  const bottom = MARGIN.top + PLOT_H
  options.labels.forEach((label, group) => {
    const groupX = MARGIN.left + group * groupW
    body.push(
      `<text x="${(groupX + groupW / 2).toFixed(1)}" y="${bottom + 20}" text-anchor="middle" font-size="13" fill="#222">${xml(label)}</text>`,
    )
    options.series.forEach((series, index) => {
      const value = series.values[group]
      if (value === undefined || !Number.isFinite(value)) return
      const x = groupX + groupW * 0.15 + index * barW
      const y = axis.y(value)
      body.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${(bottom - y).toFixed(1)}" fill="${series.color}"><title>${xml(`${series.name} ${label}: ${number(value)} ms`)}</title></rect>`,
        `<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" font-size="10" fill="#222">${number(value)}</text>`,
      )
    })
  })
  return frame(options.title, options.subtitle, body, options.series)
}

/** Lines with dots: each series' values sorted ascending, against their rank (1 = fastest). */
export function sortedChart(options: {
  title: string
  subtitle: string
  series: readonly Series[]
  xLabel: string
  yLabel: string
}): string {
  const sorted = options.series.map((series) => ({
    ...series,
    values: [...series.values].filter((value) => Number.isFinite(value)).sort((a, b) => a - b),
  }))
  const axis = new LogAxis(sorted.flatMap((series) => series.values))
  const body = axis.draw(options.yLabel)
  const count = Math.max(1, ...sorted.map((series) => series.values.length))
  const x = (rank: number): number => MARGIN.left + ((rank - 0.5) / count) * PLOT_W
  const bottom = MARGIN.top + PLOT_H
  const every = Math.max(1, Math.ceil(count / 20))
  for (let rank = 1; rank <= count; rank += every) {
    body.push(
      `<text x="${x(rank).toFixed(1)}" y="${bottom + 18}" text-anchor="middle" font-size="11" fill="#444">${rank}</text>`,
    )
  }
  body.push(
    `<text x="${MARGIN.left + PLOT_W / 2}" y="${bottom + 42}" text-anchor="middle" font-size="12" fill="#222">${xml(options.xLabel)}</text>`,
  )
  for (const series of sorted) {
    if (series.values.length === 0) continue
    const points = series.values.map((value, index) => `${x(index + 1).toFixed(1)},${axis.y(value).toFixed(1)}`)
    body.push(
      `<polyline points="${points.join(' ')}" fill="none" stroke="${series.color}" stroke-width="2"${series.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`,
    )
    series.values.forEach((value, index) => {
      body.push(
        `<circle cx="${x(index + 1).toFixed(1)}" cy="${axis.y(value).toFixed(1)}" r="3.5" fill="${series.color}"><title>${xml(`${series.name} #${index + 1}: ${number(value)} ms`)}</title></circle>`,
      )
    })
  }
  return frame(options.title, options.subtitle, body, options.series)
}

/**
 * Curves: each series' value against a count (the scale workload's workers), on a log y axis; the
 * x positions are the counts' own, evenly spaced (100, 250, 500, 1000 read as a doubling sequence).
 */
export function curveChart(options: {
  title: string
  subtitle: string
  counts: readonly number[]
  series: readonly Series[]
  xLabel: string
  yLabel: string
  unit: string
}): string {
  const axis = new LogAxis(options.series.flatMap((series) => series.values))
  const body = axis.draw(options.yLabel)
  const count = Math.max(1, options.counts.length)
  const x = (index: number): number => MARGIN.left + ((index + 0.5) / count) * PLOT_W
  const bottom = MARGIN.top + PLOT_H
  options.counts.forEach((value, index) => {
    body.push(
      `<text x="${x(index).toFixed(1)}" y="${bottom + 18}" text-anchor="middle" font-size="11" fill="#444">${value}</text>`,
    )
  })
  body.push(
    `<text x="${MARGIN.left + PLOT_W / 2}" y="${bottom + 42}" text-anchor="middle" font-size="12" fill="#222">${xml(options.xLabel)}</text>`,
  )
  for (const series of options.series) {
    const points = series.values.flatMap((value, index) =>
      Number.isFinite(value) && value > 0 ? [{ index, value }] : [],
    )
    if (points.length === 0) continue
    body.push(
      `<polyline points="${points.map((p) => `${x(p.index).toFixed(1)},${axis.y(p.value).toFixed(1)}`).join(' ')}" fill="none" stroke="${series.color}" stroke-width="2"${series.dashed === true ? ' stroke-dasharray="6 4"' : ''}/>`,
    )
    for (const p of points) {
      body.push(
        `<circle cx="${x(p.index).toFixed(1)}" cy="${axis.y(p.value).toFixed(1)}" r="3.5" fill="${series.color}"><title>${xml(`${series.name} at ${options.counts[p.index]}: ${number(p.value)} ${options.unit}`)}</title></circle>`,
        `<text x="${(x(p.index) + 6).toFixed(1)}" y="${(axis.y(p.value) - 6).toFixed(1)}" font-size="10" fill="#222">${number(p.value)}</text>`,
      )
    }
  }
  return frame(options.title, options.subtitle, body, options.series)
}
