import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { ChaosReport, StatusSample } from './run.ts'

/**
 * A chaos run's report, written to its run dir: report.json (everything, for machines),
 * report.md (the figures, for people) and timeline.svg (which replica led when, faults shaded,
 * write latency over time), drawn here as plain SVG text.
 */
export function writeReport(report: ChaosReport, runDir: string): { json: string; markdown: string; svg: string } {
  const paths = {
    json: join(runDir, 'report.json'),
    markdown: join(runDir, 'report.md'),
    svg: join(runDir, 'timeline.svg'),
  }
  writeFileSync(paths.json, `${JSON.stringify(report, null, 2)}\n`)
  writeFileSync(paths.svg, timelineSvg(report))
  writeFileSync(paths.markdown, markdown(report))
  return paths
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

export function markdown(report: ChaosReport): string {
  const lines: string[] = []
  const verdictText =
    report.verdict.valid === true
      ? 'linearizable'
      : report.verdict.valid === false
        ? '**NOT linearizable**'
        : 'unknown (search budget exhausted)'
  lines.push(`# Chaos run ${report.startedAt}`, '')
  lines.push(
    `**${report.valid ? 'PASS' : 'FAIL'}**: history ${verdictText}; ${report.lostWrites.length} lost acknowledged writes; ${report.splitBrain.length} split-brain observations; ${report.findings.length} other findings.`,
    '',
  )
  lines.push(
    `${report.replicas} replicas, nemeses ${report.nemeses.join(', ')}, ${seconds(report.durationMs)} of workload, seed ${report.seed}; lease reads ${report.leaseReads ? 'on' : 'off'} (cluster file timing.leaseReads); members at the end ${report.finalMembers.map((id) => `r${id}`).join(' ')}.`,
    '',
  )
  lines.push('![timeline](timeline.svg)', '')
  lines.push('## Figures', '')
  lines.push('| figure | value |', '| --- | --- |')
  lines.push(`| operations | ${report.ops.total} |`)
  lines.push(`| writes ok / info (unknown outcome) | ${report.ops.writeOk} / ${report.ops.writeInfo} |`)
  lines.push(`| reads ok / fail | ${report.ops.readOk} / ${report.ops.readFail} |`)
  lines.push(
    `| faults injected | ${report.faults.length} (${Object.entries(report.faultsByKind)
      .map(([kind, count]) => `${kind} ${count}`)
      .join(', ')}) |`,
  )
  lines.push(`| leader changes | ${report.leaderChanges} |`)
  lines.push(
    `| unavailability windows (no acknowledged write for ≥ ${report.unavailability.thresholdMs} ms) | ${report.unavailability.windows.length}, longest ${seconds(report.unavailability.longestMs)}, total ${seconds(report.unavailability.totalMs)} |`,
  )
  lines.push(
    `| write latency p50 / p99 / max | ${report.writeLatencyMs.p50} / ${report.writeLatencyMs.p99} / ${report.writeLatencyMs.max} ms |`,
  )
  lines.push(`| lost acknowledged writes | ${report.lostWrites.length} |`)
  lines.push(`| split brain (two leaders in one term) | ${report.splitBrain.length} |`, '')
  lines.push('## Clients', '')
  lines.push(
    '| client | role | implementation | sticky | reads at | ok / fail / info |',
    '| --- | --- | --- | --- | --- | --- |',
  )
  for (const client of report.clients)
    lines.push(
      `| ${client.index} | ${client.role} | ${client.implementation} | ${client.sticky ? 'yes: asks the replica it last believed led' : 'no'} | ${client.readConsistency} | ${client.ok} / ${client.fail} / ${client.info} |`,
    )
  lines.push('')
  lines.push('## Verdict per key', '')
  lines.push(
    '| key | verdict | operations | highest acknowledged seq | final read seq |',
    '| --- | --- | --- | --- | --- |',
  )
  for (const key of report.keys)
    lines.push(
      `| ${key.key.slice(0, 16)}… | ${key.verdict} | ${key.operations} | ${key.acknowledgedSeqMax} | ${key.finalSeq ?? 'none'} |`,
    )
  lines.push('')
  lines.push('## Faults', '')
  lines.push('| at | kind | what | healed at | recovered after heal | notes |', '| --- | --- | --- | --- | --- | --- |')
  for (const fault of report.faults) {
    lines.push(
      `| ${seconds(fault.startMs)} | ${fault.kind} | ${fault.label} | ${seconds(fault.healMs)} | ${fault.recoveredMs === null ? '**no**' : seconds(fault.recoveredMs - fault.healMs)} | ${fault.notes.join('; ').replace(/\|/g, '/')} |`,
    )
  }
  lines.push('')
  if (report.unavailability.windows.length > 0) {
    lines.push('## Unavailability windows', '')
    for (const window of report.unavailability.windows)
      lines.push(`- ${seconds(window.startMs)} – ${seconds(window.endMs)} (${seconds(window.endMs - window.startMs)})`)
    lines.push('')
  }
  const problems = [
    ...report.verdict.failures.map((failure) => `not linearizable on ${failure.key}: ${failure.explanation}`),
    ...report.lostWrites.map(
      (lost) => `lost: ${lost.key} acknowledged seq ${lost.acknowledgedSeq}, final read ${lost.finalSeq}`,
    ),
    ...report.splitBrain,
    ...report.findings,
  ]
  if (problems.length > 0) {
    lines.push('## Problems', '')
    for (const problem of problems) lines.push(`- ${problem}`)
    lines.push('')
  }
  lines.push(
    `History: \`${report.files.history}\`${report.valid ? '' : `; replica logs: \`${report.files.logs}\``}.`,
    '',
  )
  return lines.join('\n')
}

const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#9467bd', '#8c564b', '#e377c2', '#17becf']
const FAULT_COLORS: Record<string, string> = {
  'kill-leader': '#d62728',
  'kill-any': '#e6550d',
  'pause-leader': '#9467bd',
  'partition-leader': '#1f77b4',
  'partition-one-way': '#17becf',
  'kill-all': '#7f0000',
  'clock-skew': '#bcbd22',
  'wipe-a-replica': '#393b79',
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')
}

/** Spans of consecutive samples in which a replica did not answer its status. */
function downSpans(samples: readonly StatusSample[], id: number): Array<{ startMs: number; endMs: number }> {
  const spans: Array<{ startMs: number; endMs: number }> = []
  let open: { startMs: number; endMs: number } | undefined
  for (const sample of samples) {
    const replica = sample.replicas.find((entry) => entry.id === id)
    if (replica?.error !== undefined) {
      if (open === undefined) open = { startMs: sample.timeMs, endMs: sample.timeMs }
      open.endMs = sample.timeMs
    } else if (open !== undefined) {
      spans.push(open)
      open = undefined
    }
  }
  if (open !== undefined) spans.push(open)
  return spans
}

export function timelineSvg(report: ChaosReport): string {
  const width = 1200
  const left = 70
  const right = 20
  const plotWidth = width - left - right
  const ids = [...new Set(report.samples.flatMap((sample) => sample.replicas.map((replica) => replica.id)))].sort(
    (a, b) => a - b,
  )
  const labelRows = 3
  const laneTop = 40 + labelRows * 13
  const laneHeight = 22
  const laneGap = 6
  const lanesBottom = laneTop + ids.length * (laneHeight + laneGap)
  const latencyTop = lanesBottom + 30
  const latencyHeight = 240
  const latencyBottom = latencyTop + latencyHeight
  const height = latencyBottom + 60
  const totalMs = Math.max(1, report.durationMs)
  const x = (ms: number): number => left + (Math.min(Math.max(ms, 0), totalMs) / totalMs) * plotWidth
  const latencies = report.latency.map((point) => Math.max(0.1, point.latencyMs))
  const decadeMax = Math.max(2, Math.ceil(Math.log10(Math.max(10, ...latencies))))
  const decadeMin = -1
  const y = (ms: number): number =>
    latencyBottom - ((Math.log10(Math.max(ms, 10 ** decadeMin)) - decadeMin) / (decadeMax - decadeMin)) * latencyHeight
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
  )
  out.push(`<rect width="${width}" height="${height}" fill="white"/>`)
  out.push(
    `<text x="${left}" y="18" font-size="14" font-weight="bold">${escapeXml(`nodeledger chaos ${report.startedAt}: ${report.valid ? 'PASS' : 'FAIL'} — ${report.ops.total} ops, ${report.faults.length} faults, ${report.leaderChanges} leader changes, ${report.lostWrites.length} lost writes, history ${report.verdict.valid === true ? 'linearizable' : report.verdict.valid === false ? 'NOT linearizable' : 'unknown'}`)}</text>`,
  )

  // Faults: a band from injection to heal, a paler one from heal to recovery, labelled on top.
  for (const [i, fault] of report.faults.entries()) {
    const color = FAULT_COLORS[fault.kind] ?? '#888'
    const x0 = x(fault.startMs)
    const x1 = x(fault.healMs)
    const x2 = x(fault.recoveredMs ?? fault.healMs)
    out.push(
      `<rect x="${x0.toFixed(1)}" y="${laneTop - 4}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${latencyBottom - laneTop + 4}" fill="${color}" fill-opacity="0.16"><title>${escapeXml(`${fault.kind}: ${fault.label}`)}</title></rect>`,
    )
    if (x2 > x1)
      out.push(
        `<rect x="${x1.toFixed(1)}" y="${laneTop - 4}" width="${(x2 - x1).toFixed(1)}" height="${latencyBottom - laneTop + 4}" fill="${color}" fill-opacity="0.06"/>`,
      )
    out.push(
      `<text x="${(x0 + 2).toFixed(1)}" y="${36 + (i % labelRows) * 13}" fill="${color}">${escapeXml(fault.kind)}</text>`,
    )
  }

  // Lanes: grey where the replica did not answer, its colour where it reported itself leader.
  for (const [lane, id] of ids.entries()) {
    const top = laneTop + lane * (laneHeight + laneGap)
    out.push(`<text x="${left - 8}" y="${top + 15}" text-anchor="end">r${id}</text>`)
    out.push(`<rect x="${left}" y="${top}" width="${plotWidth}" height="${laneHeight}" fill="none" stroke="#ddd"/>`)
    for (const span of downSpans(report.samples, id)) {
      out.push(
        `<rect x="${x(span.startMs).toFixed(1)}" y="${top + 8}" width="${Math.max(1, x(span.endMs + 250) - x(span.startMs)).toFixed(1)}" height="6" fill="#999"><title>no status answer</title></rect>`,
      )
    }
    for (const span of report.leaderSpans.filter((entry) => entry.id === id)) {
      const x0 = x(span.startMs)
      const w = Math.max(1, x(span.endMs) - x0)
      out.push(
        `<rect x="${x0.toFixed(1)}" y="${top + 2}" width="${w.toFixed(1)}" height="${laneHeight - 4}" fill="${PALETTE[(id - 1) % PALETTE.length]}" rx="2"><title>${escapeXml(`r${id} leader, term ${span.term}`)}</title></rect>`,
      )
      if (w > 30) out.push(`<text x="${(x0 + 3).toFixed(1)}" y="${top + 15}" fill="white">t${span.term}</text>`)
    }
  }
  out.push(
    `<text x="${left}" y="${lanesBottom + 8}" fill="#555">coloured: the replica reports itself leader (term); grey: no status answer (killed, paused or restarting)</text>`,
  )

  // Write latency, log scale: dots for acknowledged writes, red crosses for writes given up (info).
  out.push(
    `<rect x="${left}" y="${latencyTop}" width="${plotWidth}" height="${latencyHeight}" fill="none" stroke="#ccc"/>`,
  )
  for (let decade = decadeMin; decade <= decadeMax; decade++) {
    const yy = y(10 ** decade)
    out.push(`<line x1="${left}" x2="${left + plotWidth}" y1="${yy.toFixed(1)}" y2="${yy.toFixed(1)}" stroke="#eee"/>`)
    out.push(
      `<text x="${left - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${10 ** decade >= 1 ? 10 ** decade : 10 ** decade} ms</text>`,
    )
  }
  out.push(
    `<text x="14" y="${latencyTop + latencyHeight / 2}" transform="rotate(-90 14 ${latencyTop + latencyHeight / 2})" text-anchor="middle">write latency (log)</text>`,
  )
  for (const point of report.latency) {
    const px = x(point.timeMs).toFixed(1)
    const py = y(Math.max(0.1, point.latencyMs)).toFixed(1)
    if (point.outcome === 'ok') out.push(`<circle cx="${px}" cy="${py}" r="1.3" fill="#1f77b4" fill-opacity="0.5"/>`)
    else out.push(`<path d="M${Number(px) - 3},${Number(py) - 3}l6,6m0,-6l-6,6" stroke="#d62728" stroke-width="1.2"/>`)
  }
  for (const window of report.unavailability.windows) {
    out.push(
      `<rect x="${x(window.startMs).toFixed(1)}" y="${latencyBottom + 2}" width="${Math.max(1, x(window.endMs) - x(window.startMs)).toFixed(1)}" height="5" fill="#d62728"><title>no acknowledged write for ${window.endMs - window.startMs} ms</title></rect>`,
    )
  }

  // Time axis.
  const stepMs = niceStep(totalMs / 12)
  for (let ms = 0; ms <= totalMs; ms += stepMs) {
    const xx = x(ms).toFixed(1)
    out.push(`<line x1="${xx}" x2="${xx}" y1="${latencyBottom}" y2="${latencyBottom + 12}" stroke="#555"/>`)
    out.push(
      `<text x="${xx}" y="${latencyBottom + 24}" text-anchor="middle">${(ms / 1000).toFixed(stepMs < 1000 ? 1 : 0)} s</text>`,
    )
  }
  out.push(
    `<text x="${left}" y="${height - 8}" fill="#555">dots: acknowledged writes; red ×: writes with unknown outcome (timed out); red strip: no acknowledged write for ≥ ${report.unavailability.thresholdMs} ms; bands: fault held (dark), healed until recovered (pale)</text>`,
  )
  out.push('</svg>')
  return `${out.join('\n')}\n`
}

function niceStep(rough: number): number {
  const steps = [500, 1000, 2000, 5000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000]
  return steps.find((step) => step >= rough) ?? 600_000
}
