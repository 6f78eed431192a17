import { describe, expect, it } from 'vitest'
import { Registry } from 'prom-client'
import {
  HistogramCells,
  MetricsError,
  cellsHistogram,
  collectedCounter,
  collectedGauge,
  parseHostPort,
  parsePromText,
  readHostPort,
  startOpsServer,
} from '../src/index.ts'

describe('HistogramCells', () => {
  it('counts each value in the first bucket whose bound it does not exceed, the rest in +Inf', () => {
    const cells = new HistogramCells([0.001, 0.01, 0.1])
    for (const value of [0.0005, 0.001, 0.002, 0.05, 0.1, 3]) cells.observe(value)
    cells.observeMs(20) // 0.02 s
    cells.observe(Number.NaN)
    expect([...cells.counts]).toEqual([2, 1, 3, 1])
    expect(cells.cumulative()).toEqual([2, 3, 6, 7])
    expect(cells.count).toBe(7)
    expect(cells.sum).toBeCloseTo(0.0005 + 0.001 + 0.002 + 0.05 + 0.1 + 3 + 0.02, 9)
  })

  it('refuses bounds that are not finite and increasing, or too many', () => {
    expect(() => new HistogramCells([0.1, 0.1])).toThrow(RangeError)
    expect(() => new HistogramCells([Number.POSITIVE_INFINITY])).toThrow(RangeError)
    expect(() => new HistogramCells([])).toThrow(RangeError)
    expect(() => new HistogramCells(Array.from({ length: 33 }, (_, i) => i + 1))).toThrow(RangeError)
  })
})

describe('metrics rendered by prom-client from plain numbers, read back by the parser', () => {
  it('counters, gauges and histograms show the values at scrape time, labels escaped', async () => {
    const registry = new Registry()
    const counts = { ok: 0, failed: 0 }
    const level = { value: 0 }
    const fast = new HistogramCells([0.01, 0.1])
    const slow = new HistogramCells([0.01, 0.1])
    collectedCounter({
      registry,
      name: 'test_requests_total',
      help: 'requests by result',
      labelNames: ['result'],
      collect: (emit) => {
        emit(counts.ok, { result: 'ok' })
        emit(counts.failed, { result: 'fail "quoted" \\ and\nnewline' })
      },
    })
    collectedGauge({ registry, name: 'test_level_entries', help: 'a level', collect: (emit) => emit(level.value) })
    cellsHistogram({
      registry,
      name: 'test_latency_seconds',
      help: 'latency',
      labelNames: ['op'],
      buckets: fast.bounds,
      series: () => [
        [{ op: 'fast' }, fast],
        [{ op: 'slow' }, slow],
      ],
    })
    let text = parsePromText(await registry.metrics())
    expect(text.value('test_requests_total', { result: 'ok' })).toBe(0)
    expect(text.families.get('test_latency_seconds')?.type).toBe('histogram')
    expect(text.value('test_latency_seconds_count', { op: 'fast' })).toBe(0)

    counts.ok += 3
    counts.failed += 1
    level.value = 42
    fast.observe(0.005)
    fast.observe(0.05)
    slow.observe(2)
    text = parsePromText(await registry.metrics())
    expect(text.families.get('test_requests_total')?.type).toBe('counter')
    expect(text.value('test_requests_total', { result: 'ok' })).toBe(3)
    expect(text.value('test_requests_total', { result: 'fail "quoted" \\ and\nnewline' })).toBe(1)
    expect(text.value('test_level_entries')).toBe(42)
    expect(text.value('test_latency_seconds_bucket', { op: 'fast', le: '0.01' })).toBe(1)
    expect(text.value('test_latency_seconds_bucket', { op: 'fast', le: '0.1' })).toBe(2)
    expect(text.value('test_latency_seconds_bucket', { op: 'fast', le: '+Inf' })).toBe(2)
    expect(text.value('test_latency_seconds_bucket', { op: 'slow', le: '0.1' })).toBe(0)
    expect(text.value('test_latency_seconds_count', { op: 'slow' })).toBe(1)
    expect(text.value('test_latency_seconds_sum', { op: 'slow' })).toBe(2)
    // Scrapes do not accumulate: a counter shows the total, not the sum of totals seen.
    text = parsePromText(await registry.metrics())
    expect(text.value('test_requests_total', { result: 'ok' })).toBe(3)
  })

  it('a counter must be named _total', () => {
    expect(() => collectedCounter({ registry: new Registry(), name: 'x', help: 'x', collect: () => {} })).toThrow(
      /_total/,
    )
  })
})

describe('parsePromText refuses what a scraper would', () => {
  it.each([
    ['a sample without a value', 'x_total\n'],
    ['an unterminated label', 'x{a="b} 1\n'],
    ['a bad escape', 'x{a="\\t"} 1\n'],
    ['a value that is not a number', 'x 1.2.3\n'],
    ['a series twice', 'x{a="1"} 1\nx{a="1"} 2\n'],
    ['a TYPE after samples', 'x 1\n# TYPE x gauge\n'],
    ['buckets that are not cumulative', '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_count 1\n'],
    ['+Inf not equal to _count', '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_count 3\n'],
  ])('%s', (_what, text) => {
    expect(() => parsePromText(text)).toThrow()
  })

  it('reads special values, timestamps, comments and trailing commas', () => {
    const text = parsePromText('# a comment\nx{a="1",} +Inf 1700000000000\ny NaN\nz -1.5e3\nw Nan\n')
    expect(text.value('w')).toBeNaN() // prom-client writes NaN so; Prometheus reads it (any case, as Go does)
    expect(text.value('x', { a: '1' })).toBe(Number.POSITIVE_INFINITY)
    expect(text.value('y')).toBeNaN()
    expect(text.value('z')).toBe(-1500)
  })
})

describe('HOST:PORT', () => {
  it('reads IPv4, [IPv6], names and :PORT (127.0.0.1)', () => {
    expect(readHostPort('127.0.0.11:9101')).toEqual({ host: '127.0.0.11', port: 9101 })
    expect(readHostPort('[::1]:9101')).toEqual({ host: '::1', port: 9101 })
    expect(readHostPort('metrics.example:80')).toEqual({ host: 'metrics.example', port: 80 })
    expect(readHostPort(':9101')).toEqual({ host: '127.0.0.1', port: 9101 })
    expect(readHostPort(':0', { allowAnyPort: true })).toEqual({ host: '127.0.0.1', port: 0 })
  })

  it.each([[9101], [''], ['9101'], ['::1:9101'], ['[1.2.3.4]:80'], ['host:'], ['host:65536'], [':0'], ['a b:1']])(
    'refuses %j',
    (text) => {
      expect(typeof readHostPort(text)).toBe('string')
    },
  )

  it('parseHostPort throws MetricsError INVALID_ADDRESS naming the field', () => {
    try {
      parseHostPort('nope', '--http')
      expect.unreachable()
    } catch (error) {
      expect(error).toBeInstanceOf(MetricsError)
      expect((error as MetricsError).code).toBe('INVALID_ADDRESS')
      expect((error as Error).message).toMatch(/^--http /)
    }
  })
})

describe('the ops HTTP listener (Fastify)', () => {
  it('serves /metrics, /health and /ready (200 or 503 with the reason); 404 elsewhere', async () => {
    const registry = new Registry()
    const counts = { n: 0 }
    collectedCounter({ registry, name: 'test_n_total', help: 'n', collect: (emit) => emit(counts.n) })
    let ready: { ready: boolean; reason?: string } = { ready: false, reason: 'no leader known' }
    const server = await startOpsServer({
      address: { host: '127.0.0.1', port: 0 },
      registry,
      health: () => ({ role: 'follower' }),
      ready: () => ready,
    })
    try {
      const base = `http://127.0.0.1:${server.address.port}`
      counts.n = 7
      const metrics = await fetch(`${base}/metrics`)
      expect(metrics.status).toBe(200)
      expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
      expect(parsePromText(await metrics.text()).value('test_n_total')).toBe(7)
      const health = await fetch(`${base}/health`)
      expect(health.status).toBe(200)
      expect(await health.json()).toEqual({ status: 'ok', role: 'follower' })
      let probe = await fetch(`${base}/ready`)
      expect(probe.status).toBe(503)
      expect(await probe.json()).toEqual({ ready: false, reason: 'no leader known' })
      ready = { ready: true }
      probe = await fetch(`${base}/ready`)
      expect(probe.status).toBe(200)
      expect((await fetch(`${base}/nothing`)).status).toBe(404)
    } finally {
      await server.close()
    }
  })

  it('refuses to start on an address in use: HTTP_LISTEN_FAILED', async () => {
    const registry = new Registry()
    const first = await startOpsServer({
      address: { host: '127.0.0.1', port: 0 },
      registry,
      health: () => ({}),
      ready: () => ({ ready: true }),
    })
    try {
      await expect(
        startOpsServer({ address: first.address, registry, health: () => ({}), ready: () => ({ ready: true }) }),
      ).rejects.toMatchObject({ code: 'HTTP_LISTEN_FAILED' })
    } finally {
      await first.close()
    }
  })
})
