import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'
import type { HistogramCells } from './histogram.ts'

/**
 * prom-client renders; the hot path never touches it. Every metric defined here reads its values
 * when the registry is scraped, from plain numbers the process keeps (counters incremented by
 * reference, HistogramCells): a scrape costs a walk over a few hundred numbers, a request costs
 * nothing here.
 */

export type Labels<L extends string> = Readonly<Record<L, string>>

/** Called once per scrape to report each series: `emit(value)` or `emit(value, labels)`. */
export type Collect<L extends string> = (emit: (value: number, labels?: Labels<L>) => void) => void

export interface CollectedMetricOptions<L extends string> {
  readonly registry: Registry
  /** With its unit (`_seconds`, `_bytes`, `_entries`) and, for a counter, `_total`. */
  readonly name: string
  readonly help: string
  readonly labelNames?: readonly L[]
  readonly collect: Collect<L>
}

/** A gauge whose series are whatever `collect` reports at scrape time (nothing reported, no series). */
export function collectedGauge<L extends string>(options: CollectedMetricOptions<L>): Gauge<L> {
  const { collect } = options
  return new Gauge<L>({
    name: options.name,
    help: options.help,
    labelNames: options.labelNames ?? [],
    registers: [options.registry],
    collect() {
      this.reset()
      collect((value, labels) => {
        if (labels === undefined) this.set(value)
        else this.set(labels, value)
      })
    },
  })
}

/**
 * A counter read from a monotonic number the process keeps. prom-client's Counter has no set():
 * each scrape resets it and adds the current totals, which leaves exactly those totals.
 */
export function collectedCounter<L extends string>(options: CollectedMetricOptions<L>): Counter<L> {
  const name = options.name
  if (!name.endsWith('_total')) throw new RangeError(`counter ${name} must end in _total`)
  const { collect } = options
  return new Counter<L>({
    name,
    help: options.help,
    labelNames: options.labelNames ?? [],
    registers: [options.registry],
    collect() {
      this.reset()
      collect((value, labels) => {
        if (labels === undefined) this.inc(value)
        else this.inc(labels, value)
      })
    },
  })
}

export interface CellsHistogramOptions<L extends string> {
  readonly registry: Registry
  readonly name: string
  readonly help: string
  readonly labelNames?: readonly L[]
  /** The bounds every series shares (HistogramCells.bounds). */
  readonly buckets: readonly number[]
  /** Each series, at scrape time: its labels and its cells. */
  readonly series: () => Iterable<readonly [Labels<L>, HistogramCells]>
}

type HistogramData<L extends string> = Awaited<ReturnType<Histogram<L>['get']>>

/**
 * A Prometheus histogram rendered from HistogramCells. It is a prom-client Histogram (so the
 * registry, the text format and JSON export treat it as one) whose values come from the cells
 * instead of its own observe(), which is never called.
 */
class CellsHistogram<L extends string> extends Histogram<L> {
  readonly #series: () => Iterable<readonly [Labels<L>, HistogramCells]>
  readonly #bounds: readonly number[]
  readonly #metricName: string
  readonly #metricHelp: string

  constructor(options: CellsHistogramOptions<L>) {
    super({
      name: options.name,
      help: options.help,
      labelNames: options.labelNames ?? [],
      buckets: [...options.buckets],
      registers: [options.registry],
    })
    this.#series = options.series
    this.#bounds = options.buckets
    this.#metricName = options.name
    this.#metricHelp = options.help
  }

  override async get(): Promise<HistogramData<L>> {
    const name = this.#metricName
    const values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> = []
    for (const [labels, cells] of this.#series()) {
      if (cells.bounds !== this.#bounds && cells.bounds.join() !== this.#bounds.join())
        throw new RangeError(`${name}: a series has other bounds than the histogram`)
      const cumulative = cells.cumulative()
      for (let i = 0; i < cumulative.length; i++) {
        const le = i < this.#bounds.length ? this.#bounds[i]! : '+Inf'
        values.push({ value: cumulative[i]!, labels: { ...labels, le }, metricName: `${name}_bucket` })
      }
      values.push({ value: cells.sum, labels: { ...labels }, metricName: `${name}_sum` })
      values.push({ value: cells.count, labels: { ...labels }, metricName: `${name}_count` })
    }
    return {
      name,
      help: this.#metricHelp,
      type: 'histogram',
      values,
      aggregator: 'sum',
    } as unknown as HistogramData<L>
  }

  /** What the registry's text export calls when it exists; the same values as get(). */
  async getForPromString(): Promise<HistogramData<L>> {
    return this.get()
  }
}

/** A histogram whose series are HistogramCells the process observes into (see CellsHistogram). */
export function cellsHistogram<L extends string>(options: CellsHistogramOptions<L>): Histogram<L> {
  return new CellsHistogram(options)
}
