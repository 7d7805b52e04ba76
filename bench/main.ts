/**
 * `npm run bench`: the library against the raw HTTP floor, in the same run.
 *
 * A minimal platform + peer runs in a separate process. For N = 1,000 and
 * N = 10,000 delegations in flight, rounds alternate between
 * - floor: the same five requests per delegation (record, discover, message/send,
 *   then update and notify together) with Node's `http` module and a keep-alive agent;
 * - library: N delegations through the live stack (`DelegationsLayer.layer`, as
 *   `DelegationsLive` builds it) over `NodeHttpClientPooled` (undici, 256 connections),
 *   each awaited until its fiber ends.
 * Then the store: retained heap per finished delegation at 100,000 stored, and the
 * time of `status(id)` and `list` at that size.
 *
 * `npm run bench -- --json` prints one JSON object instead of the report.
 */
import { Context, Duration, Effect, Layer, Logger, LogLevel } from "effect"
import {
  A2ATransport,
  A2ATransportTest,
  AuditLog,
  Delegations,
  DelegationsLayer,
  Discovery,
  linearRetry,
  PeerEndpoint,
  PlatformMirror,
  RbacStatic
} from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Readline from "node:readline"

const jsonOutput = process.argv.includes("--json")
const quick = process.argv.includes("--quick")
const log = (line: string) => {
  if (!jsonOutput) console.log(line)
}

const SIZES = quick ? [1_000] : [1_000, 10_000]
const ROUNDS: Record<number, number> = { 1_000: quick ? 2 : 5, 10_000: 3 }
const STORED = quick ? 20_000 : 100_000
const SELF = "ws-bench"
const PEER = "ws-peer"
const TOKEN = "bench-token"
const POOL = 256

// --- the server process --------------------------------------------------------------------------

const startServer = () =>
  new Promise<{ readonly port: number; readonly stop: () => void }>((resolve, reject) => {
    const child = spawn(process.execPath, [new URL("./server.js", import.meta.url).pathname], {
      stdio: ["ignore", "pipe", "inherit"]
    })
    child.once("error", reject)
    Readline.createInterface({ input: child.stdout! }).once("line", (line) => {
      const { port } = JSON.parse(line) as { port: number }
      resolve({ port, stop: () => child.kill("SIGTERM") })
    })
  })

// --- measurement helpers -------------------------------------------------------------------------------

interface Round {
  readonly perSecond: number
  readonly p50: number
  readonly p99: number
  readonly peakRss: number
  readonly failed: number
}

const percentile = (sorted: Float64Array, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

/** Runs `body` while sampling RSS; returns its result and the peak. */
const withRssPeak = async <A>(body: () => Promise<A>): Promise<readonly [A, number]> => {
  let peak = process.memoryUsage.rss()
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss())
  }, 20)
  try {
    const result = await body()
    return [result, Math.max(peak, process.memoryUsage.rss())] as const
  } finally {
    clearInterval(timer)
  }
}

const summarise = (n: number, elapsedMs: number, latencies: Float64Array, peakRss: number, failed: number): Round => {
  const sorted = latencies.slice().sort()
  return { perSecond: n / (elapsedMs / 1000), p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), peakRss, failed }
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

// --- floor: node:http with a keep-alive agent ---------------------------------------------------------------

const floorRound = async (port: number, n: number): Promise<Round> => {
  const agent = new Http.Agent({ keepAlive: true, maxSockets: POOL })
  const call = (method: string, path: string, headers: Record<string, string>, body?: unknown) =>
    new Promise<{ readonly status: number; readonly body: unknown }>((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body)
      const request = Http.request(
        {
          host: "127.0.0.1",
          port,
          method,
          path,
          agent,
          headers: data === undefined ? headers : { ...headers, "content-type": "application/json" }
        },
        (response) => {
          const chunks: Array<Buffer> = []
          response.on("data", (chunk: Buffer) => chunks.push(chunk))
          response.on("end", () =>
            resolve({ status: response.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) })
          )
          response.on("error", reject)
        }
      )
      request.on("error", reject)
      request.end(data)
    })
  const platform = { authorization: `Bearer ${TOKEN}` }
  const latencies = new Float64Array(n)
  let failed = 0
  const one = async (i: number) => {
    const start = performance.now()
    const id = randomUUID()
    const task = `task ${i}`
    try {
      await call("POST", `/workspaces/${SELF}/delegations/record`, platform, { target_id: PEER, task, delegation_id: id })
      const peer = await call("GET", `/registry/discover/${PEER}`, { ...platform, "x-workspace-id": SELF })
      const url = new URL((peer.body as { url: string }).url)
      const reply = await call("POST", url.pathname, { "x-workspace-id": SELF }, {
        jsonrpc: "2.0",
        id: `${id}-1`,
        method: "message/send",
        params: {
          message: { kind: "message", role: "user", messageId: id, parts: [{ kind: "text", text: task }] },
          metadata: { parent_task_id: id, source_workspace_id: SELF, traceparent: null }
        }
      })
      const text = ((reply.body as { result: { parts: Array<{ text: string }> } }).result.parts[0]!).text
      await Promise.all([
        call("POST", `/workspaces/${SELF}/delegations/${id}/update`, platform, {
          status: "completed",
          error: "",
          response_preview: text
        }),
        call("POST", `/workspaces/${SELF}/notify`, platform, {
          message: `Delegation ${id} to ${PEER} completed.`,
          type: "delegation_complete",
          task_id: id,
          target_workspace_id: PEER,
          status: "completed"
        })
      ])
    } catch {
      failed++
    }
    latencies[i] = performance.now() - start
  }
  const [elapsed, peak] = await withRssPeak(async () => {
    const start = performance.now()
    await Promise.all(Array.from({ length: n }, (_, i) => one(i)))
    return performance.now() - start
  })
  agent.destroy()
  return summarise(n, elapsed, latencies, peak, failed)
}

// --- library: the live stack over the pooled undici client ------------------------------------------------

const liveLayer = (port: number) =>
  DelegationsLayer.layer({
    workspaceId: SELF,
    platformUrl: `http://127.0.0.1:${port}`,
    platformToken: TOKEN
  }).pipe(Layer.provide(NodeHttpClientPooled.layer({ connections: POOL })))

interface LibraryRound extends Round {
  readonly runningAfter: number
  readonly handlesBefore: number
  readonly handlesAfter: number
}

const activeHandles = () => process.getActiveResourcesInfo().filter((name) => name !== "Timeout").length

const libraryRound = async (port: number, n: number): Promise<LibraryRound> => {
  const latencies = new Float64Array(n)
  const handlesBefore = activeHandles()
  const [result, peak] = await withRssPeak(() =>
    Effect.runPromise(
      Effect.gen(function*() {
        const delegations = yield* Effect.map(Layer.build(liveLayer(port)), Context.get(Delegations))
        let failed = 0
        const start = performance.now()
        yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) =>
            Effect.gen(function*() {
              const begin = performance.now()
              const id = yield* delegations.delegate({ workspaceId: PEER, task: `task ${i}` })
              const done = yield* delegations.await(id)
              if (done.status !== "completed") failed++
              latencies[i] = performance.now() - begin
            }),
          { concurrency: "unbounded", discard: true }
        )
        const elapsed = performance.now() - start
        return { elapsed, failed, runningAfter: yield* delegations.running }
      }).pipe(Effect.scoped, Effect.orDie, Logger.withMinimumLogLevel(LogLevel.Warning))
    )
  )
  // Closed sockets and the agent's timers go away on the next turns of the event loop.
  await new Promise((resolve) => setTimeout(resolve, 100))
  return {
    ...summarise(n, result.elapsed, latencies, peak, result.failed),
    runningAfter: result.runningAfter,
    handlesBefore,
    handlesAfter: activeHandles()
  }
}

// --- the store at 100,000 finished delegations ----------------------------------------------------------------

const reply = A2ATransportTest.message("ok: the answer of a peer")
const endpoint = new PeerEndpoint({ id: PEER, url: "http://peer.invalid/a2a" })

const storeFigures = () =>
  Effect.runPromise(
    Effect.gen(function*() {
      const gc = (globalThis as { gc?: () => void }).gc
      const heap = () => {
        gc?.()
        gc?.()
        return process.memoryUsage().heapUsed
      }
      const layer = DelegationsLayer.layerCore({
        workspaceId: SELF,
        history: STORED,
        timeout: Duration.seconds(300),
        retrySchedule: linearRetry(3, "5 seconds"),
        pollSchedule: DelegationsLayer.defaultPollSchedule
      }).pipe(Layer.provide(Layer.mergeAll(
        // Services that keep nothing, so the heap growth is the store's alone.
        Layer.succeed(A2ATransport, A2ATransport.of({ send: () => Effect.succeed(reply), getTask: () => Effect.die("unused") })),
        Layer.succeed(Discovery, Discovery.of({ resolve: () => Effect.succeed(endpoint) })),
        Layer.succeed(PlatformMirror, PlatformMirror.of({
          record: () => Effect.void,
          update: () => Effect.void,
          notify: () => Effect.void,
          list: Effect.succeed([])
        })),
        AuditLog.layer({ workspaceId: SELF }),
        RbacStatic.layer({ roles: ["operator"] })
      )))
      const delegations = yield* Effect.map(Layer.build(layer), Context.get(Delegations))
      const before = heap()
      const ids: Array<string> = []
      for (let batch = 0; batch < STORED / 1000; batch++) {
        const started: Array<string> = []
        for (let i = 0; i < 1000; i++) {
          started.push(yield* delegations.delegate({ workspaceId: PEER, task: `stored task number ${batch * 1000 + i}` }))
        }
        yield* Effect.forEach(started, (id) => delegations.await(id), { discard: true })
        ids.push(...started)
      }
      const after = heap()
      const sample = Array.from({ length: 20_000 }, (_, i) => ids[(i * 7919) % ids.length]!)
      const statusStart = performance.now()
      for (const id of sample) yield* delegations.status(id)
      const statusMicros = (performance.now() - statusStart) * 1000 / sample.length
      const listRuns = 5
      const listStart = performance.now()
      let listed = 0
      for (let i = 0; i < listRuns; i++) listed = (yield* delegations.list).length
      const listMillis = (performance.now() - listStart) / listRuns
      return {
        stored: listed,
        bytesPerDelegation: Math.round((after - before) / STORED),
        statusMicros,
        listMillis,
        gcExposed: gc !== undefined
      }
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))
  )

// --- the run -----------------------------------------------------------------------------------------------------

const main = async () => {
  const server = await startServer()
  const cpus = Os.cpus()
  const machine = { cores: cpus.length, cpu: cpus[0]?.model ?? "unknown", node: process.version }
  log(`effect-a2a-delegation bench: ${machine.cores} cores (${machine.cpu}), Node ${machine.node}`)
  log(`server: a separate process on 127.0.0.1:${server.port}; 5 requests per delegation; pool ${POOL} connections`)
  const results: Record<string, unknown> = {}
  const ratios: Record<number, number> = {}
  try {
    // Warm both sides up (JIT, connection pools) before measuring.
    await floorRound(server.port, 500)
    await libraryRound(server.port, 500)
    for (const n of SIZES) {
      const floor: Array<Round> = []
      const library: Array<LibraryRound> = []
      for (let round = 0; round < ROUNDS[n]!; round++) {
        // Alternate which side goes first so that drift hits both alike.
        if (round % 2 === 0) {
          floor.push(await floorRound(server.port, n))
          library.push(await libraryRound(server.port, n))
        } else {
          library.push(await libraryRound(server.port, n))
          floor.push(await floorRound(server.port, n))
        }
      }
      const side = (rounds: ReadonlyArray<Round>) => ({
        per_second: Math.round(median(rounds.map((r) => r.perSecond))),
        p50_ms: +median(rounds.map((r) => r.p50)).toFixed(1),
        p99_ms: +median(rounds.map((r) => r.p99)).toFixed(1),
        peak_rss_mb: Math.round(Math.max(...rounds.map((r) => r.peakRss)) / 2 ** 20),
        failed: rounds.reduce((sum, r) => sum + r.failed, 0),
        rounds: rounds.map((r) => Math.round(r.perSecond))
      })
      const f = side(floor)
      const l = side(library)
      ratios[n] = +(l.per_second / f.per_second).toFixed(3)
      const last = library[library.length - 1]!
      results[n] = {
        floor: f,
        library: {
          ...l,
          fibermap_after: last.runningAfter,
          handles_before: last.handlesBefore,
          handles_after: last.handlesAfter
        },
        ratio: ratios[n]
      }
      log("")
      log(`N = ${n.toLocaleString("en")} in flight: library/floor = ${ratios[n]}`)
      log(`             deleg/s   p50 ms   p99 ms   peak RSS   failed   rounds (deleg/s)`)
      for (const [name, s] of [["floor", f], ["library", l]] as const) {
        log(
          `  ${name.padEnd(9)}  ${String(s.per_second).padStart(7)}  ${String(s.p50_ms).padStart(7)}  ${
            String(s.p99_ms).padStart(7)
          }  ${`${s.peak_rss_mb} MB`.padStart(9)}  ${String(s.failed).padStart(6)}   ${s.rounds.join(" ")}`
        )
      }
      log(
        `  after the library rounds: FiberMap ${last.runningAfter} running; open handles ${last.handlesBefore} before, ${last.handlesAfter} after`
      )
    }
  } finally {
    server.stop()
  }
  const store = await storeFigures()
  log("")
  log(
    `store: ${store.stored.toLocaleString("en")} finished delegations retain ${store.bytesPerDelegation} bytes each${
      store.gcExposed ? "" : " (run with --expose-gc for exact figures)"
    }; status(id) ${store.statusMicros.toFixed(2)} µs; list ${store.listMillis.toFixed(1)} ms`
  )
  if (jsonOutput) {
    console.log(JSON.stringify({
      machine,
      n: results,
      ratio_1k: ratios[1_000],
      ratio_10k: ratios[10_000],
      bytes_per_delegation: store.bytesPerDelegation,
      status_us: +store.statusMicros.toFixed(3),
      list_ms: +store.listMillis.toFixed(2),
      stored: store.stored
    }))
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
