/**
 * A reader of the Prometheus text exposition format, version 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/), strict enough to catch a broken
 * /metrics: every line must parse, a family is typed at most once and before its samples, a series
 * appears once, and a histogram's buckets carry `le`, are cumulative and end in +Inf = _count.
 * For tests and tools that scrape a replica or a worker.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped'

export interface PromSample {
  /** The sample's own name: a histogram's `x_bucket`, `x_sum`, `x_count`. */
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export interface PromFamily {
  readonly name: string
  readonly type: MetricType
  readonly help: string
  readonly samples: PromSample[]
}

export class PromTextError extends Error {
  static override readonly name = 'PromTextError'
  readonly code = 'INVALID_EXPOSITION'
  constructor(line: number, message: string) {
    super(`line ${line}: ${message}`)
    this.name = 'PromTextError'
  }
}

const TYPES: readonly MetricType[] = ['counter', 'gauge', 'histogram', 'summary', 'untyped']
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*/

/** A parsed exposition: its families by name, and lookups by sample name and labels. */
export class PromText {
  readonly families = new Map<string, PromFamily>()

  /** The one sample named `name` whose labels include `labels`; undefined if none, throws if several. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number | undefined {
    const found = this.samples(name, labels)
    if (found.length > 1)
      throw new RangeError(`${name}${JSON.stringify(labels)} matches ${found.length} series; name more labels`)
    return found[0]?.value
  }

  /** The sum over every sample named `name` whose labels include `labels` (0 when none). */
  sum(name: string, labels: Readonly<Record<string, string>> = {}): number {
    return this.samples(name, labels).reduce((total, sample) => total + sample.value, 0)
  }

  samples(name: string, labels: Readonly<Record<string, string>> = {}): PromSample[] {
    const family = this.families.get(familyOf(name, this.families))
    if (family === undefined) return []
    return family.samples.filter(
      (sample) =>
        sample.name === name && Object.entries(labels).every(([label, value]) => sample.labels[label] === value),
    )
  }
}

export function parsePromText(text: string): PromText {
  const parsed = new PromText()
  const seen = new Set<string>()
  const lines = text.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const number = i + 1
    const line = lines[i]!
    if (line.trim() === '') continue
    if (line.startsWith('#')) {
      const match = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line)
      if (match === null) continue // a comment
      const [, keyword, name, rest = ''] = match
      if (!NAME.test(name!) || NAME.exec(name!)![0] !== name) throw new PromTextError(number, `bad metric name ${name}`)
      const family = parsed.families.get(name!) ?? { name: name!, type: 'untyped' as MetricType, help: '', samples: [] }
      if (keyword === 'TYPE') {
        if (!(TYPES as readonly string[]).includes(rest.trim()))
          throw new PromTextError(number, `unknown type "${rest}" for ${name}`)
        if (parsed.families.has(name!) && (family.type !== 'untyped' || family.samples.length > 0))
          throw new PromTextError(number, `TYPE of ${name} given twice or after its samples`)
        parsed.families.set(name!, { ...family, type: rest.trim() as MetricType })
      } else {
        parsed.families.set(name!, { ...family, help: unescapeHelp(rest) })
      }
      continue
    }
    const sample = parseSample(line, number)
    const key = `${sample.name}${JSON.stringify(Object.entries(sample.labels).sort())}`
    if (seen.has(key)) throw new PromTextError(number, `series ${key} appears twice`)
    seen.add(key)
    const familyName = familyOf(sample.name, parsed.families)
    let family = parsed.families.get(familyName)
    if (family === undefined) {
      family = { name: familyName, type: 'untyped', help: '', samples: [] }
      parsed.families.set(familyName, family)
    }
    family.samples.push(sample)
  }
  for (const family of parsed.families.values()) if (family.type === 'histogram') checkHistogram(family)
  return parsed
}

/** `x_bucket`, `x_sum` and `x_count` belong to the histogram (or summary) `x` when one is declared. */
function familyOf(name: string, families: ReadonlyMap<string, PromFamily>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const base = name.slice(0, -suffix.length)
    const type = families.get(base)?.type
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base
  }
  return name
}

function parseSample(line: string, number: number): PromSample {
  const nameMatch = NAME.exec(line)
  if (nameMatch === null) throw new PromTextError(number, `not a sample: ${line}`)
  const name = nameMatch[0]
  let rest = line.slice(name.length)
  const labels: Record<string, string> = {}
  if (rest.startsWith('{')) {
    rest = rest.slice(1)
    for (;;) {
      rest = rest.trimStart()
      if (rest.startsWith('}')) {
        rest = rest.slice(1)
        break
      }
      const labelMatch = LABEL_NAME.exec(rest)
      if (labelMatch === null) throw new PromTextError(number, `bad label in ${line}`)
      const label = labelMatch[0]
      rest = rest.slice(label.length)
      if (!rest.startsWith('="')) throw new PromTextError(number, `label ${label} without ="value" in ${line}`)
      rest = rest.slice(2)
      let value = ''
      for (;;) {
        const char = rest[0]
        if (char === undefined) throw new PromTextError(number, `unterminated label value in ${line}`)
        rest = rest.slice(1)
        if (char === '"') break
        if (char === '\\') {
          const escaped = rest[0]
          rest = rest.slice(1)
          if (escaped === 'n') value += '\n'
          else if (escaped === '\\' || escaped === '"') value += escaped
          else throw new PromTextError(number, `bad escape \\${escaped ?? ''} in ${line}`)
        } else {
          value += char
        }
      }
      if (label in labels) throw new PromTextError(number, `label ${label} twice in ${line}`)
      labels[label] = value
      rest = rest.trimStart()
      if (rest.startsWith(',')) rest = rest.slice(1)
      else if (!rest.startsWith('}')) throw new PromTextError(number, `expected , or } in ${line}`)
    }
  }
  const fields = rest.trim().split(/\s+/)
  if (!/^[ \t]/.test(rest) || fields.length < 1 || fields.length > 2 || fields[0] === '')
    throw new PromTextError(number, `expected a value (and a timestamp) after the series in ${line}`)
  const value = parseValue(fields[0]!)
  if (value === undefined) throw new PromTextError(number, `bad value "${fields[0]}" in ${line}`)
  if (fields[1] !== undefined && !/^-?[0-9]+$/.test(fields[1]))
    throw new PromTextError(number, `bad timestamp "${fields[1]}" in ${line}`)
  return { name, labels, value }
}

/** As Prometheus reads a value (Go's ParseFloat): NaN and Inf in any case, so prom-client's `Nan` too. */
function parseValue(text: string): number | undefined {
  const lower = text.toLowerCase()
  if (lower === 'nan') return Number.NaN
  if (lower === '+inf' || lower === 'inf' || lower === '+infinity' || lower === 'infinity')
    return Number.POSITIVE_INFINITY
  if (lower === '-inf' || lower === '-infinity') return Number.NEGATIVE_INFINITY
  if (!/^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/.test(text)) return undefined
  return Number(text)
}

function unescapeHelp(text: string): string {
  return text.replace(/\\(n|\\)/g, (_, escaped: string) => (escaped === 'n' ? '\n' : '\\'))
}

/** Per label set (without `le`): buckets with `le`, cumulative, ending in +Inf equal to _count. */
function checkHistogram(family: PromFamily): void {
  const groups = new Map<string, { buckets: Array<[number, number]>; count?: number }>()
  const keyOf = (labels: Readonly<Record<string, string>>): string =>
    JSON.stringify(
      Object.entries(labels)
        .filter(([label]) => label !== 'le')
        .sort(),
    )
  for (const sample of family.samples) {
    const key = keyOf(sample.labels)
    const group = groups.get(key) ?? { buckets: [] }
    groups.set(key, group)
    if (sample.name === `${family.name}_bucket`) {
      const le = sample.labels.le
      const bound = le === undefined ? undefined : parseValue(le)
      if (bound === undefined) throw new PromTextError(0, `${family.name}_bucket ${key} without a numeric le`)
      group.buckets.push([bound, sample.value])
    } else if (sample.name === `${family.name}_count`) {
      group.count = sample.value
    }
  }
  for (const [key, group] of groups) {
    const buckets = group.buckets.sort((a, b) => a[0] - b[0])
    const last = buckets[buckets.length - 1]
    if (last === undefined || last[0] !== Number.POSITIVE_INFINITY)
      throw new PromTextError(0, `histogram ${family.name} ${key} has no +Inf bucket`)
    for (let i = 1; i < buckets.length; i++)
      if (buckets[i]![1] < buckets[i - 1]![1])
        throw new PromTextError(0, `histogram ${family.name} ${key}: buckets are not cumulative`)
    if (group.count !== last[1])
      throw new PromTextError(0, `histogram ${family.name} ${key}: +Inf bucket ${last[1]} is not _count ${group.count}`)
  }
}
