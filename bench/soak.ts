/**
 * `npm run soak`: N delegations (10,000) through the live stack against a platform and a hostile peer
 * in another process (./soak-server.ts), about 30% of them with a fault of every kind issue 15 lists,
 * then a close while the platform hangs. Every delegation's outcome is matched against the fault it
 * was given; the run exits non-zero when one is stuck (never settled) or lost (no longer stored).
 *
 * Flags: `--n <count>`, `--client pooled|undici|both` (both), `--json` (one JSON object on stdout).
 */
import type * as HttpClient from "@effect/platform/HttpClient"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import { Context, Effect, Either, Exit, Layer, Logger, Option, Scope } from "effect"
import type { DelegateRequest, Delegation, DelegationId } from "effect-a2a-delegation"
import { Delegations, DelegationsLayer } from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Readline from "node:readline"
import type { Expected, Fault } from "./soak-shared.js"
import { FAULTS, OK } from "./soak-shared.js"

const argument = (name: string): string | undefined => {
  const at = process.argv.indexOf(name)
  return at === -1 ? undefined : process.argv[at + 1]
}
const N = Number(argument("--n") ?? "10000")
const CLIENTS = (argument("--client") ?? "both") === "both" ? ["pooled", "undici"] : [argument("--client")!]
const JSON_OUTPUT = process.argv.includes("--json")
/** Delegations started against hung peers just before the close. */
const IN_FLIGHT_AT_CLOSE = 500
const SHUTDOWN_TIMEOUT_SECONDS = 2
/** How long after the last `delegate` every delegation must have settled. */
const SETTLE_WITHIN_MS = 120_000
const SECRET = "soak-secret"

const log = (line: string) => {
  if (!JSON_OUTPUT) console.log(line)
}

// --- the server process ---------------------------------------------------------------------------------

const startServer = () =>
  new Promise<{ readonly platform: number; readonly peer: number; readonly stop: () => void }>((resolve, reject) => {
    const child = spawn(process.execPath, [new URL("./soak-server.js", import.meta.url).pathname], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    child.once("error", reject)
    Readline.createInterface({ input: child.stdout! }).once("line", (line) => {
      const ports = JSON.parse(line) as { platform: number; peer: number }
      resolve({ ...ports, stop: () => child.kill("SIGTERM") })
    })
  })

const control = (port: number, path: string) =>
  fetch(`http://127.0.0.1:${port}${path}`, { method: "POST" }).then((r) => r.json() as Promise<Record<string, number>>)

// --- measures -----------------------------------------------------------------------------------------------

const gc = (globalThis as { gc?: () => void }).gc
const heapAfterGc = () => {
  gc?.()
  gc?.()
  return process.memoryUsage().heapUsed
}
const openFds = () => {
  try {
    return Fs.readdirSync("/proc/self/fd").length
  } catch {
    return process.getActiveResourcesInfo().length
  }
}
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// --- the faults, one per delegation ---------------------------------------------------------------------------

/** A small seeded generator, so that every run injects the same faults in the same order. */
const mulberry32 = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const assignFaults = (n: number): ReadonlyArray<Fault> => {
  const random = mulberry32(15)
  const all = [...FAULTS, OK]
  return Array.from({ length: n }, () => {
    let pick = random() * 10_000
    for (const fault of all) {
      if (pick < fault.per10k) return fault
      pick -= fault.per10k
    }
    return OK
  })
}

const requestFor = (fault: Fault, i: number): unknown =>
  fault.name === "dotId"
    ? { workspaceId: "..", task: `soak ${i}` }
    : fault.name === "notAnObject"
    ? null
    : { workspaceId: `peer-${fault.name}`, task: `soak ${i}` }

const outcomeOf = (delegation: Delegation): string =>
  delegation.status === "failed" ? `failed:${delegation.cause?._tag ?? "?"}` : delegation.status

const matches = (expected: Expected, outcome: string): boolean =>
  expected.status === "failed"
    ? expected.cause === "*" ? outcome.startsWith("failed:") : outcome === `failed:${expected.cause}`
    : outcome === expected.status

// --- one run ------------------------------------------------------------------------------------------------

interface FaultResult {
  readonly fault: string
  readonly injected: number
  readonly expected: string
  readonly outcomes: Record<string, number>
  readonly mismatched: number
  readonly note?: string
}

interface RunResult {
  readonly client: string
  readonly n: number
  readonly seconds: number
  readonly faultShare: number
  readonly faults: ReadonlyArray<FaultResult>
  readonly stuck: number
  readonly lost: number
  readonly mismatched: number
  readonly secretLeaks: number
  readonly shutdown: {
    readonly inFlight: number
    readonly closeMs: number
    readonly boundMs: number
    readonly recordedFailedInterrupted: number
    readonly warned: boolean
  }
  readonly heapAfterGc: { readonly before: number; readonly settled: number; readonly after: number }
  readonly openFds: { readonly before: number; readonly after: number }
  readonly logLines: Record<string, number>
}

const clientLayer = (name: string): Layer.Layer<HttpClient.HttpClient> =>
  name === "undici" ? NodeHttpClient.layerUndici : NodeHttpClientPooled.layer()

const run = async (clientName: string): Promise<RunResult> => {
  const server = await startServer()
  const fdsBefore = openFds()
  const heapBefore = heapAfterGc()
  const logLines: Record<string, number> = {}
  let shutdownWarned = false
  const logger = Logger.make(({ logLevel, message }) => {
    logLines[logLevel.label] = (logLines[logLevel.label] ?? 0) + 1
    if (String(message).includes("DELEGATION_SHUTDOWN_TIMEOUT")) shutdownWarned = true
  })
  const faults = assignFaults(N)
  const started = performance.now()

  const program = Effect.gen(function*() {
    const clientScope = yield* Scope.make()
    const client = yield* Layer.buildWithScope(clientLayer(clientName), clientScope)
    const layerScope = yield* Scope.make()
    const d = yield* Layer.buildWithScope(
      DelegationsLayer.layer({
        workspaceId: "ws-soak",
        platformUrl: `http://127.0.0.1:${server.platform}`,
        platformToken: "soak-token",
        protocol: "0.3",
        retryAttempts: 2,
        retryDelay: 0.2,
        timeout: 2,
        mirrorTimeout: 2,
        retryAfterMax: 1,
        concurrency: 256,
        history: N + IN_FLIGHT_AT_CLOSE,
        shutdownTimeout: SHUTDOWN_TIMEOUT_SECONDS
      }).pipe(Layer.provide(Layer.succeedContext(client))),
      layerScope
    ).pipe(Effect.map(Context.get(Delegations)), Effect.orDie)

    // A 3 s platform outage (mirror routes answer 503) once a fifth of the delegations have started.
    yield* Effect.forkScoped(Effect.gen(function*() {
      while (((yield* Effect.promise(() => control(server.platform, "/control/counts")))["record"] ?? 0) < N / 5) {
        yield* Effect.sleep("50 millis")
      }
      yield* Effect.promise(() => control(server.platform, "/control/outage?ms=3000"))
    }))
    const ids: Array<Either.Either<DelegationId, string>> = []
    for (let i = 0; i < N; i++) {
      const result = yield* Effect.either(d.delegate(requestFor(faults[i]!, i) as DelegateRequest))
      ids.push(Either.mapLeft(result, (error) => error._tag === "InvalidDelegation" ? "rejected" : `refused:${error._tag}`))
    }
    const deadline = Date.now() + SETTLE_WITHIN_MS
    const outcomes = yield* Effect.forEach(ids, (id) =>
      Either.match(id, {
        onLeft: (outcome) => Effect.succeed(outcome),
        onRight: (id) =>
          d.awaitSettled(id).pipe(
            Effect.timeoutOption(Math.max(0, deadline - Date.now())),
            Effect.map(Option.match({ onNone: () => "stuck", onSome: outcomeOf })),
            Effect.catchTag("DelegationNotFound", () => Effect.succeed("lost"))
          )
      }), { concurrency: "unbounded" })
    // Lost: an id `delegate` returned that the store no longer knows.
    const stored = yield* d.list
    const storedIds = new Set(stored.map((x) => x.id))
    const lost = ids.filter((id) => Either.isRight(id) && !storedIds.has(id.right)).length
    const secretLeaks = stored.filter((x) => JSON.stringify(x).includes(SECRET)).length
    const seconds = (performance.now() - started) / 1000
    const heapSettled = heapAfterGc()

    // The close: delegations in flight against hung peers, and the platform hangs too.
    const hung: Array<DelegationId> = []
    for (let i = 0; i < IN_FLIGHT_AT_CLOSE; i++) hung.push(yield* d.delegate({ workspaceId: "peer-hang", task: `close ${i}` }))
    for (let i = 0; i < 200; i++) {
      const counts = yield* Effect.promise(() => control(server.platform, "/control/counts"))
      if ((counts["hungPeers"] ?? 0) >= 200) break
      yield* Effect.sleep("50 millis")
    }
    yield* Effect.promise(() => control(server.platform, "/control/hang"))
    const closing = performance.now()
    yield* Scope.close(layerScope, Exit.void)
    const closeMs = performance.now() - closing
    const afterClose = yield* Effect.forEach(hung, (id) => Effect.option(d.status(id)))
    const recordedFailedInterrupted = afterClose.filter((x) =>
      Option.isSome(x) && x.value.status === "failed" && x.value.cause?._tag === "DelegationAborted"
    ).length
    yield* Scope.close(clientScope, Exit.void)
    return { outcomes, lost, secretLeaks, seconds, heapSettled, closeMs, recordedFailedInterrupted }
  })

  const result = await Effect.runPromise(
    program.pipe(Effect.scoped, Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
  )
  server.stop()
  await pause(300)

  const byFault = new Map<string, FaultResult & { outcomes: Record<string, number>; mismatched: number; injected: number }>()
  for (const fault of [OK, ...FAULTS]) {
    byFault.set(fault.name, {
      fault: fault.name,
      injected: 0,
      expected: fault.expected.status === "failed" ? `failed:${fault.expected.cause}` : fault.expected.status,
      outcomes: {},
      mismatched: 0,
      ...(fault.note === undefined ? {} : { note: fault.note })
    })
  }
  result.outcomes.forEach((outcome, i) => {
    const fault = faults[i]!
    const entry = byFault.get(fault.name)!
    entry.injected++
    entry.outcomes[outcome] = (entry.outcomes[outcome] ?? 0) + 1
    if (!matches(fault.expected, outcome)) entry.mismatched++
  })
  const rows = [...byFault.values()].filter((row) => row.injected > 0)
  const stuck = result.outcomes.filter((o) => o === "stuck").length
  return {
    client: clientName,
    n: N,
    seconds: result.seconds,
    faultShare: 1 - (byFault.get("ok")?.injected ?? 0) / N,
    faults: rows,
    stuck,
    lost: result.lost + result.outcomes.filter((o) => o === "lost").length,
    mismatched: rows.reduce((sum, row) => sum + row.mismatched, 0),
    secretLeaks: result.secretLeaks,
    shutdown: {
      inFlight: IN_FLIGHT_AT_CLOSE,
      closeMs: result.closeMs,
      boundMs: SHUTDOWN_TIMEOUT_SECONDS * 1000,
      recordedFailedInterrupted: result.recordedFailedInterrupted,
      warned: shutdownWarned
    },
    heapAfterGc: { before: heapBefore, settled: result.heapSettled, after: heapAfterGc() },
    openFds: { before: fdsBefore, after: openFds() },
    logLines
  }
}

// --- the report ---------------------------------------------------------------------------------------------

const report = (r: RunResult) => {
  log(`\n== client ${r.client}: ${r.n} delegations, ${(r.faultShare * 100).toFixed(1)}% with a fault, settled in ${r.seconds.toFixed(1)} s`)
  log(`${"fault".padEnd(16)} ${"injected".padStart(8)}  ${"expected".padEnd(26)} outcomes`)
  for (const row of r.faults) {
    const outcomes = Object.entries(row.outcomes).map(([k, v]) => `${k} ${v}`).join(", ")
    const flag = row.mismatched === 0 ? "" : `  <- ${row.mismatched} not as expected${row.note === undefined ? "" : ` (${row.note})`}`
    log(`${row.fault.padEnd(16)} ${String(row.injected).padStart(8)}  ${row.expected.padEnd(26)} ${outcomes}${flag}`)
  }
  log(`stuck ${r.stuck}, lost ${r.lost}, not as expected ${r.mismatched}, stored delegations holding a URL password ${r.secretLeaks}`)
  const s = r.shutdown
  log(
    `close with ${s.inFlight} in flight and a hung platform: ${s.closeMs.toFixed(0)} ms (bound ${s.boundMs} ms), ` +
      `${s.recordedFailedInterrupted}/${s.inFlight} recorded failed (interrupted), warning logged: ${s.warned}`
  )
  log(
    `heap after GC: before ${mb(r.heapAfterGc.before)}, all settled (store full) ${mb(r.heapAfterGc.settled)}, ` +
      `after close ${mb(r.heapAfterGc.after)}; open fds before ${r.openFds.before}, after ${r.openFds.after}`
  )
  log(`log lines by level: ${Object.entries(r.logLines).map(([k, v]) => `${k} ${v}`).join(", ")}`)
}

const main = async () => {
  const results: Array<RunResult> = []
  for (const client of CLIENTS) {
    const result = await run(client)
    report(result)
    results.push(result)
  }
  const failing = results.filter((r) =>
    r.stuck > 0 || r.lost > 0 || r.shutdown.recordedFailedInterrupted !== r.shutdown.inFlight
  )
  if (JSON_OUTPUT) process.stdout.write(`${JSON.stringify({ results, ok: failing.length === 0 })}\n`)
  log(failing.length === 0 ? "\nOK: nothing stuck, nothing lost" : `\nFAILED: ${failing.map((r) => r.client).join(", ")}`)
  return failing.length === 0 ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error)
    process.exit(2)
  }
)
