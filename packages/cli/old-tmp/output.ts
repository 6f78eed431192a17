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
