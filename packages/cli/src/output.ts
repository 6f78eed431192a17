/** A plain fixed-width table for a person at a terminal (console.table prints quotes and an index). */
export function renderTable(
  rows: ReadonlyArray<Record<string, string | number | boolean | undefined>>,
  columns: readonly string[],
): string {
  const cell = (value: string | number | boolean | undefined): string => (value === undefined ? '-' : String(value))
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row[column]).length)))
  const line = (values: readonly string[]): string =>
    values
      .map((value, i) => value.padEnd(widths[i]!))
      .join('  ')
      .trimEnd()
  return [
    line(columns.map((column) => column.toUpperCase())),
    ...rows.map((row) => line(columns.map((column) => cell(row[column])))),
  ].join('\n')
}

/**
 * Where a command's lines go: the process's stdout and stderr, or, when the CLI agent runs the
 * command for another process (agent/agent-server.ts), that process's socket. Commands the agent
 * may run print through `out` and `err` only, and ask `stdoutIsTTY` rather than process.stdout.
 */
export interface OutputSink {
  out(text: string): void
  err(text: string): void
  readonly tty: boolean
}

let sinkOf: (() => OutputSink | undefined) | undefined

/** Installed by the agent: the sink of the command running in the current async context. */
export function setSinkLookup(lookup: () => OutputSink | undefined): void {
  sinkOf = lookup
}

export function out(text = ''): void {
  const sink = sinkOf?.()
  if (sink !== undefined) sink.out(text)
  else console.log(text)
}

export function err(text: string): void {
  const sink = sinkOf?.()
  if (sink !== undefined) sink.err(text)
  else console.error(text)
}

export function stdoutIsTTY(): boolean {
  return sinkOf?.()?.tty ?? process.stdout.isTTY === true
}
