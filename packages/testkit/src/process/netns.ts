import { spawnSync } from 'node:child_process'

/**
 * A Linux network namespace made for one fault test: its own loopback (so 127.0.0.x addresses are
 * private to it), its own iptables, nothing that leaves the machine. Replicas run inside it through
 * `ip netns exec`, and partitions are iptables DROP rules between their addresses.
 *
 * Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and the `ip` and `iptables` commands; when one is
 * missing `Netns.create` throws a NetnsUnavailableError that says what to install or grant.
 */

/** Thrown when the machine cannot give a test its namespace; the message says what to do about it. */
export class NetnsUnavailableError extends Error {
  static override readonly name = 'NetnsUnavailableError'
  readonly code = 'NETNS_UNAVAILABLE'

  constructor(message: string) {
    super(message)
    this.name = 'NetnsUnavailableError'
  }
}

/** One iptables rule cutting packets from `source` to `target` (both IPv4 addresses). */
export interface DropRule {
  readonly source: string
  readonly target: string
}

const HOW_TO_GET =
  'The fault tests need root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and the iproute2 and iptables commands: ' +
  '`apt-get install -y iproute2 iptables` (Debian/Ubuntu), and run as root or in a container started with --cap-add NET_ADMIN --cap-add SYS_ADMIN.'

/** Namespaces this process made and has not deleted yet: deleted on exit, whatever the test did. */
const live = new Set<string>()
let exitHookInstalled = false
let created = 0

function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const name of live) removeNamespace(name)
  })
}

/**
 * SIGKILL whatever still runs in the namespace (only this process's children can: the name is
 * unique to it), then delete it. A namespace outlives its name while a process holds it.
 */
function removeNamespace(name: string): void {
  spawnSync('sh', ['-c', `ip netns pids ${name} | xargs -r kill -9`], { stdio: 'ignore' })
  spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' })
}

function run(
  command: string,
  args: readonly string[],
): { status: number | null; stderr: string; stdout: string; error?: Error } {
  const result = spawnSync(command, args, { encoding: 'utf8' })
  return {
    status: result.status,
    stderr: result.stderr ?? '',
    stdout: result.stdout ?? '',
    ...(result.error === undefined ? {} : { error: result.error }),
  }
}

function commandExists(command: string): boolean {
  return run('sh', ['-c', `command -v ${command}`]).status === 0
}

export class Netns {
  readonly name: string
  /** The argv prefix that runs a command inside the namespace. */
  readonly execPrefix: readonly string[]
  readonly #rules: DropRule[] = []
  #deleted = false

  private constructor(name: string) {
    this.name = name
    this.execPrefix = ['ip', 'netns', 'exec', name]
  }

  /**
   * Make a fresh namespace `nl-<pid>-<n>` with loopback up and iptables usable in it. Throws a
   * NetnsUnavailableError naming what is missing.
   */
  static create(): Netns {
    if (process.platform !== 'linux')
      throw new NetnsUnavailableError(`network namespaces need Linux (this is ${process.platform}). ${HOW_TO_GET}`)
    if (!commandExists('ip')) throw new NetnsUnavailableError(`the \`ip\` command (iproute2) is missing. ${HOW_TO_GET}`)
    if (!commandExists('iptables'))
      throw new NetnsUnavailableError(
        `the \`iptables\` command is missing: \`apt-get install -y iptables\`. ${HOW_TO_GET}`,
      )
    const name = `nl-${process.pid}-${created++}`
    const add = run('ip', ['netns', 'add', name])
    if (add.status !== 0) {
      throw new NetnsUnavailableError(
        `\`ip netns add ${name}\` failed (exit ${add.status}): ${add.stderr.trim() || add.error?.message || 'no message'}. ${HOW_TO_GET}`,
      )
    }
    live.add(name)
    installExitHook()
    const netns = new Netns(name)
    try {
      netns.execChecked(['ip', 'link', 'set', 'lo', 'up'])
      // Ask iptables once now: a kernel without netfilter, or a missing module, shows here, not mid-test.
      netns.iptables(['-L', 'INPUT', '-n'])
    } catch (error) {
      netns.delete()
      throw new NetnsUnavailableError(
        `namespace ${name} was created but is unusable: ${(error as Error).message}. ${HOW_TO_GET}`,
      )
    }
    return netns
  }

  /** Run a command inside the namespace, synchronously; throws with its stderr when it fails. */
  execChecked(argv: readonly string[]): string {
    const result = run(this.execPrefix[0]!, [...this.execPrefix.slice(1), ...argv])
    if (result.status !== 0)
      throw new Error(
        `\`${argv.join(' ')}\` in ${this.name} failed (exit ${result.status}): ${result.stderr.trim() || result.error?.message || ''}`,
      )
    return result.stdout
  }

  iptables(args: readonly string[]): string {
    // -w: wait for the xtables lock rather than fail when another test's iptables holds it.
    return this.execChecked(['iptables', '-w', '5', ...args])
  }

  /** Drop every packet from `source` to `target` (one way). Idempotent per pair. */
  drop(source: string, target: string): void {
    if (this.#rules.some((rule) => rule.source === source && rule.target === target)) return
    this.iptables(['-A', 'INPUT', '-s', source, '-d', target, '-j', 'DROP'])
    this.#rules.push({ source, target })
  }

  /** Cut both directions between every address of `a` and every address of `b`. */
  partition(a: readonly string[], b: readonly string[]): void {
    for (const x of a) {
      for (const y of b) {
        this.drop(x, y)
        this.drop(y, x)
      }
    }
  }

  /** The drop rules in force. */
  get rules(): readonly DropRule[] {
    return [...this.#rules]
  }

  /** Remove every drop rule: the network is whole again. */
  heal(): void {
    for (const rule of this.#rules.splice(0))
      this.iptables(['-D', 'INPUT', '-s', rule.source, '-d', rule.target, '-j', 'DROP'])
    // Belt and braces: whatever rule a crashed caller left, INPUT ends empty.
    this.iptables(['-F', 'INPUT'])
  }

  /** Delete the namespace (its processes must be gone first, or it lingers until they exit). */
  delete(): void {
    if (this.#deleted) return
    this.#deleted = true
    removeNamespace(this.name)
    live.delete(this.name)
  }
}

/** libfaketime's preload library, if installed (Debian's `faketime` package); the clock-skew nemesis needs it. */
export function libfaketimePath(): string | undefined {
  const found = run('sh', [
    '-c',
    'ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 /usr/local/lib/faketime/libfaketime.so.1 2>/dev/null | head -1',
  ])
  const path = found.stdout.trim()
  return path === '' ? undefined : path
}

/**
 * Environment that runs a process with its wall clock `offsetMs` away from the machine's and its
 * monotonic clock untouched, so timers and elections run at normal speed and only Date.now lies.
 * The library is preloaded directly rather than through the `faketime` wrapper, which forks: a
 * signal sent to the child's pid must reach the replica itself.
 */
export function faketimeEnv(offsetMs: number): Record<string, string> {
  const library = libfaketimePath()
  if (library === undefined)
    throw new NetnsUnavailableError('the clock-skew nemesis needs libfaketime: `apt-get install -y faketime`')
  const seconds = Math.round(offsetMs / 1000)
  return { LD_PRELOAD: library, FAKETIME: `${seconds >= 0 ? '+' : ''}${seconds}s`, FAKETIME_DONT_FAKE_MONOTONIC: '1' }
}
