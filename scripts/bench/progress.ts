import cliProgress from 'cli-progress'

/** Phase names are padded to this width so that the bars line up; longer names push their bar right. */
const PHASE_WIDTH = 40

/**
 * Progress on stderr, so that stdout carries only the table and the JSON lines. On a terminal the
 * bars redraw in place; elsewhere (CI, a pipe) cli-progress prints a line every few seconds.
 */
export class Progress {
  private readonly bars: cliProgress.MultiBar
  private stopped = false

  constructor() {
    this.bars = new cliProgress.MultiBar(
      {
        stream: process.stderr,
        format: '{phase} |{bar}| {percentage}% {value}/{total} {unit} {info}',
        barsize: 24,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: true,
        noTTYOutput: true,
        notTTYSchedule: 5_000,
        etaBuffer: 20,
      },
      cliProgress.Presets.shades_classic,
    )
  }

  /** A bar for one phase; `update(value, info)` as it goes, `done()` at the end. */
  phase(name: string, total: number, unit: string): PhaseBar {
    const bar = this.bars.create(Math.max(1, total), 0, { phase: name.padEnd(PHASE_WIDTH), unit, info: '' })
    return {
      update: (value, info = '') => bar.update(Math.min(value, Math.max(1, total)), { info }),
      done: (info = '') => {
        bar.update(Math.max(1, total), { info })
        bar.stop()
      },
    }
  }

  /** A line above the bars (a note, not a result). */
  log(line: string): void {
    this.bars.log(`${line}\n`)
  }

  stop(): void {
    if (this.stopped) return
    this.stopped = true
    this.bars.stop()
  }
}

export interface PhaseBar {
  update(value: number, info?: string): void
  done(info?: string): void
}
