import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** What the CLI tests share: the installed command's launcher, run as an operator would. */

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const BIN = join(ROOT, 'packages/cli/bin/nodeledger.mjs')

export interface CliRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Run `nodeledger ARGS` to its end (killed after `timeoutMs`, which then fails the test). */
export function nodeledger(
  args: readonly string[],
  options: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.env === undefined ? {} : { env: options.env }),
    })
    let stdout = ''
    let stderr = ''
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`nodeledger ${args.join(' ')} did not finish in ${options.timeoutMs ?? 60_000} ms\n${stderr}`))
    }, options.timeoutMs ?? 60_000)
    child.once('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

/** A long-running `nodeledger ARGS` (watch, status --watch), its output collected as it comes. */
export function spawnNodeledger(args: readonly string[]): {
  child: ChildProcess
  output: () => string
  exit: Promise<number | null>
} {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, output: () => output, exit }
}

/** Replicas that `member replace --start` left running beside a cluster file: kill them. */
export function killStartedBeside(clusterDir: string): void {
  const pids = join(clusterDir, 'pids')
  if (!existsSync(pids)) return
  for (const name of readdirSync(pids).filter((file) => file.endsWith('.pid'))) {
    const pid = Number(readFileSync(join(pids, name), 'utf8').trim())
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}
