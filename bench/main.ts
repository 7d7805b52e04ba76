/**
 * `npm run bench`: the library against the raw HTTP floor, in the same run.
 *
 * A minimal platform + peer runs in a separate process (server.ts). For N = 1,000
 * and N = 10,000 delegations in flight, rounds alternate between the sides, each
 * round in a fresh process (round.ts) so that every side's peak RSS is its own,
 * after a warm-up of 5,000 delegations:
 * - floor: the same five requests per delegation (record, discover, message/send,
 *   update, notify) with Node's `http` module and a keep-alive agent;
 * - library: N delegations through the live stack (`DelegationsLayer.layer`, as
 *   `DelegationsLive` builds it) over the recommended `NodeHttpClientPooled`, with
 *   `concurrency` equal to the pool's connections, all started with `delegate`, then
 *   each `await`ed;
 * - library-unbounded (N = 10,000, two rounds): the same without the concurrency bound;
 * - library-effect-timeout (N = 10,000, two rounds): the same with an `Effect.timeoutFail`
 *   per request instead of the client's own deadline (what the internal native bounds save);
 * - library-undici (N = 1,000, two rounds): the same over `@effect/platform-node`'s
 *   `NodeHttpClient.layerUndici`;
 * - library-gc64 (N = 10,000, two rounds): the library side in a process started with
 *   `--max-semi-space-size=64` (a larger young generation for V8);
 * - effect-http and engine (N = 10,000, two rounds), which split the library's cost: the
 *   floor's five requests through `HttpClient` over the recommended client with its spans
 *   and no engine, and the live core over in-process services that answer at once.
 * Every side but the engine also reports its requests per measured delegation (platform and peer, and
 * by route), which the server counts and each round reads before and after its measured part.
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
  PeerEndpoint,
  PlatformMirror,
  RbacStatic
} from "effect-a2a-delegation"
import { spawn } from "node:child_process"
import * as Os from "node:os"
import * as Readline from "node:readline"
import type { RoundResult } from "./shared.js"
import { PEER, PEER_ROUTES, PLATFORM_ROUTES, POOL, ROUTES, SELF } from "./shared.js"

const jsonOutput = process.argv.includes("--json")
const quick = process.argv.includes("--quick")
const log = (line: string) => {
  if (!jsonOutput) console.log(line)
}

const SIZES = quick ? [1_000] : [1_000, 10_000]
const ROUNDS: Record<number, number> = { 1_000: quick ? 2 : 4, 10_000: 5 }
// Delegations each round runs before it measures: a host runs for hours, so both sides are measured
// with their code optimised by the JIT, not while it is still being compiled.
const WARM_UP = 5_000
// The variants run in two rounds only (the stock undici client at N = 1,000; at N = 10,000 the library
// without its concurrency bound, with Effect timeouts and with a larger young generation, and the two
// references), to keep a full run short.
const sidesFor = (n: number, round: number) =>
  round >= 2
    ? ["floor", "library"] as const
    : n === 1_000
    ? ["floor", "library", "library-undici"] as const
    : ["floor", "library", "library-unbounded", "library-effect-timeout", "library-gc64", "effect-http", "engine"] as const
const STORED = quick ? 20_000 : 100_000

// --- processes ---------------------------------------------------------------------------------------------

const firstLine = (args: ReadonlyArray<string>, keepAlive: boolean) =>
  new Promise<{ readonly line: string; readonly stop: () => void }>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] })
    child.once("error", reject)
    child.once("exit", (code) => {
      if (code !== 0 && !keepAlive) reject(new Error(`${args.join(" ")} exited with ${code}`))
    })
    Readline.createInterface({ input: child.stdout! }).once("line", (line) =>
      resolve({ line, stop: () => child.kill("SIGTERM") })
    )
  })

const here = (file: string) => new URL(file, import.meta.url).pathname

const startServer = async () => {
  const { line, stop } = await firstLine([here("./server.js")], true)
  return { port: (JSON.parse(line) as { port: number }).port, stop }
}

// Node flags of a side's process, besides a heap large enough for every side.
const flagsOf = (side: string) => side === "library-gc64" ? ["--max-semi-space-size=64"] : []

const round = async (side: string, n: number, port: number): Promise<RoundResult> => {
  const { line } = await firstLine(
    ["--max-old-space-size=4096", ...flagsOf(side), here("./round.js"), side, String(n), String(port), String(WARM_UP)],
    false
  )
  return JSON.parse(line) as RoundResult
}

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

// --- requests per delegation ---------------------------------------------------------------------------------

/**
 * The rounds' requests, medians route by route: per measured delegation, and the warm-up's totals (where
 * a request made once per layer, such as the agent-card read, lands). Without a retry the counts are the
 * same in every round; undefined for a side that makes no HTTP request.
 */
const requestSummary = (all: ReadonlyArray<RoundResult>) => {
  const figures = all.flatMap((x) => x.requests === undefined ? [] : [x.requests])
  if (figures.length === 0) return undefined
  // Four decimals: a request saved in all but one delegation of 1,000 still shows.
  const perDelegation = (pick: (f: (typeof figures)[number]) => number) => +median(figures.map(pick)).toFixed(4)
  return {
    platform_per_delegation: perDelegation((f) => f.platform),
    peer_per_delegation: perDelegation((f) => f.peer),
    by_route: Object.fromEntries(ROUTES.map((route) => [route, perDelegation((f) => f.byRoute[route])])),
    warm_up: Object.fromEntries(ROUTES.map((route) => [route, median(figures.map((f) => f.warmUp[route]))]))
  }
}

/** A request figure for the report: at most three decimals, no trailing zeros, a dash for none. */
const requestsText = (value: number | undefined) => value === undefined ? "–" : String(+value.toFixed(3))

// --- the store at 100,000 finished delegations ---------------------------------------------------------------

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
        retrySchedule: DelegationsLayer.linearRetry(3, "5 seconds"),
        pollSchedule: DelegationsLayer.defaultPollSchedule
      }).pipe(Layer.provide(Layer.mergeAll(
        // Services that keep nothing, so the heap growth is the store's alone.
        Layer.succeed(A2ATransport, A2ATransport.of({
          protocolFor: (peer) => Effect.succeed({ version: "1.0", url: peer.url, source: "pinned" }),
          rememberProtocol: () => Effect.void,
          send: () => Effect.succeed(reply),
          getTask: () => Effect.die("unused"),
          cancelTask: () => Effect.die("unused")
        })),
        Layer.succeed(Discovery, Discovery.of({ resolve: () => Effect.succeed(endpoint) })),
        Layer.succeed(PlatformMirror, PlatformMirror.of({
          record: () => Effect.void,
          update: () => Effect.void,
          notify: () => Effect.void,
          list: Effect.succeed([]),
          delegate: () => Effect.die("unused")
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
      const timeStatus = (sample: ReadonlyArray<string>) =>
        Effect.gen(function*() {
          const start = performance.now()
          for (const id of sample) yield* delegations.status(id)
          return (performance.now() - start) * 1000 / sample.length
        })
      // status(id) at the full size, and over only the first 1% of the ids: equal times mean no scan.
      const statusMicros = yield* timeStatus(Array.from({ length: 20_000 }, (_, i) => ids[(i * 7919) % ids.length]!))
      const statusMicrosFew = yield* timeStatus(
        Array.from({ length: 20_000 }, (_, i) => ids[(i * 7919) % (ids.length / 100)]!)
      )
      const listRuns = 5
      const listStart = performance.now()
      let listed = 0
      for (let i = 0; i < listRuns; i++) listed = (yield* delegations.list).length
      const listMillis = (performance.now() - listStart) / listRuns
      return {
        stored: listed,
        bytesPerDelegation: Math.round((after - before) / STORED),
        statusMicros,
        statusMicrosFew,
        listMillis,
        gcExposed: gc !== undefined
      }
    }).pipe(Effect.scoped, Logger.withMinimumLogLevel(LogLevel.Warning))
  )

/**
 * Requests per measured delegation by route, one row per side that makes requests, and the library's
 * warm-up totals, where the requests it makes once per layer land.
 */
const logRequestsByRoute = (
  rows: ReadonlyArray<readonly [string, { readonly requests: ReturnType<typeof requestSummary> }]>,
  library: { readonly requests: ReturnType<typeof requestSummary> }
) => {
  const cell = (text: string, route: string) => text.padStart(Math.max(route.length, 5))
  const line = (name: string, values: (route: string) => string) =>
    log(
      `  ${name.padEnd(30)}${PLATFORM_ROUTES.map((route) => ` ${cell(values(route), route)}`).join("")}  |` +
        `${PEER_ROUTES.map((route) => ` ${cell(values(route), route)}`).join("")}  | ${values("other")}`
    )
  log(`  requests per measured delegation, by route (counted by the server; the warm-up's are not in them):`)
  line("", (route) => route)
  for (const [name, s] of rows) {
    if (s.requests !== undefined) line(name, (route) => requestsText(s.requests!.by_route[route]))
  }
  if (library.requests !== undefined) {
    line(`library warm-up (${WARM_UP.toLocaleString("en")}), totals`, (route) => String(library.requests!.warm_up[route]))
  }
}

// --- the run -----------------------------------------------------------------------------------------------------

const main = async () => {
  const started = performance.now()
  const server = await startServer()
  const cpus = Os.cpus()
  const machine = { cores: cpus.length, cpu: cpus[0]?.model ?? "unknown", node: process.version }
  log(`effect-a2a-delegation bench: ${machine.cores} cores (${machine.cpu}), Node ${machine.node}`)
  log(
    `server: a separate process on 127.0.0.1:${server.port}, counting the requests it gets by route; ` +
      `the floor makes 5 requests per delegation; pools of ${POOL} connections`
  )
  log(`each round runs in a fresh process after a ${WARM_UP.toLocaleString("en")}-delegation warm-up; sides alternate`)
  log(`latency: floor to its fifth response; library from delegate() to the completed state (its own timestamps)`)
  log(`library: concurrency ${POOL} (delegations running at once; the others wait, pending, in order)`)
  const results: Record<string, unknown> = {}
  const ratios: Record<string, number> = {}
  try {
    for (const n of SIZES) {
      const rounds: Record<string, Array<RoundResult>> = {
        floor: [],
        library: [],
        "library-undici": [],
        "library-unbounded": [],
        "library-effect-timeout": [],
        "library-gc64": [],
        "effect-http": [],
        engine: []
      }
      for (let r = 0; r < ROUNDS[n]!; r++) {
        // Rotate the order so that drift hits every side alike.
        const sides = sidesFor(n, r)
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(r + k) % sides.length]!
          rounds[side]!.push(await round(side, n, server.port))
        }
      }
      const summary = (all: ReadonlyArray<RoundResult>) => ({
        per_second: Math.round(median(all.map((x) => x.perSecond))),
        p50_ms: +median(all.map((x) => x.p50)).toFixed(1),
        p99_ms: +median(all.map((x) => x.p99)).toFixed(1),
        peak_rss_mb: Math.round(Math.max(...all.map((x) => x.peakRss)) / 2 ** 20),
        failed: all.reduce((sum, x) => sum + x.failed, 0),
        cpu_us: Math.round(median(all.map((x) => x.cpuMicros))),
        rounds: all.map((x) => Math.round(x.perSecond)),
        requests: requestSummary(all)
      })
      const floor = summary(rounds["floor"]!)
      const library = summary(rounds["library"]!)
      const undici = rounds["library-undici"]!.length === 0 ? undefined : summary(rounds["library-undici"]!)
      const unbounded = rounds["library-unbounded"]!.length === 0 ? undefined : summary(rounds["library-unbounded"]!)
      const effectTimeout = rounds["library-effect-timeout"]!.length === 0
        ? undefined
        : summary(rounds["library-effect-timeout"]!)
      const optional = (side: string) => rounds[side]!.length === 0 ? undefined : summary(rounds[side]!)
      const gc64 = optional("library-gc64")
      const http = optional("effect-http")
      const engine = optional("engine")
      const ratioOf = (s: { readonly per_second: number } | undefined) =>
        s === undefined ? undefined : +(s.per_second / floor.per_second).toFixed(3)
      const lib = rounds["library"]!
      const ratio = +(library.per_second / floor.per_second).toFixed(3)
      const ratioUndici = undici === undefined ? undefined : +(undici.per_second / floor.per_second).toFixed(3)
      const ratioUnbounded = unbounded === undefined
        ? undefined
        : +(unbounded.per_second / floor.per_second).toFixed(3)
      const ratioEffectTimeout = effectTimeout === undefined
        ? undefined
        : +(effectTimeout.per_second / floor.per_second).toFixed(3)
      ratios[n] = ratio
      results[n] = {
        ratio,
        ratio_layer_undici: ratioUndici,
        ratio_unbounded: ratioUnbounded,
        ratio_effect_timeout: ratioEffectTimeout,
        ratio_gc64: ratioOf(gc64),
        ratio_effect_http: ratioOf(http),
        floor,
        library: {
          ...library,
          fibermap_after: Math.max(...lib.map((x) => x.runningAfter ?? 0)),
          handles_before: lib.map((x) => x.handlesBefore ?? 0),
          handles_after: lib.map((x) => x.handlesAfter ?? 0)
        },
        ...(undici === undefined ? {} : { library_layer_undici: undici }),
        ...(unbounded === undefined ? {} : { library_unbounded: unbounded }),
        ...(effectTimeout === undefined ? {} : { library_effect_timeout: effectTimeout }),
        ...(gc64 === undefined ? {} : { library_gc64: gc64 }),
        ...(http === undefined ? {} : { effect_http: http }),
        ...(engine === undefined ? {} : { engine })
      }
      log("")
      log(
        `N = ${n.toLocaleString("en")} in flight: library/floor = ${ratio}` +
          (ratioUndici === undefined ? "" : ` (over NodeHttpClient.layerUndici: ${ratioUndici})`) +
          (ratioUnbounded === undefined ? "" : ` (without the concurrency bound: ${ratioUnbounded})`) +
          (ratioEffectTimeout === undefined ? "" : ` (with Effect timeouts: ${ratioEffectTimeout})`) +
          (gc64 === undefined ? "" : ` (with --max-semi-space-size=64: ${ratioOf(gc64)})`)
      )
      if (http !== undefined) {
        log(`  Effect's HTTP stack alone (effect-http, no engine)/floor = ${ratioOf(http)}`)
      }
      log(
        `                          deleg/s  CPU µs/deleg   p50 ms   p99 ms   peak RSS   failed  ` +
          ` platform req/deleg  peer req/deleg   rounds (deleg/s)`
      )
      const rows = [
        ["floor", floor],
        ["library", library],
        ...(undici === undefined ? [] : [["library-undici", undici] as const]),
        ...(unbounded === undefined ? [] : [["library-unbounded", unbounded] as const]),
        ...(effectTimeout === undefined ? [] : [["library-effect-timeout", effectTimeout] as const]),
        ...(gc64 === undefined ? [] : [["library-gc64", gc64] as const]),
        ...(http === undefined ? [] : [["effect-http", http] as const]),
        ...(engine === undefined ? [] : [["engine (no HTTP)", engine] as const])
      ] as const
      for (const [name, s] of rows) {
        log(
          `  ${name.padEnd(22)}  ${String(s.per_second).padStart(7)}  ${String(s.cpu_us).padStart(12)}  ${
            String(s.p50_ms).padStart(7)
          }  ${
            String(s.p99_ms).padStart(7)
          }  ${`${s.peak_rss_mb} MB`.padStart(9)}  ${String(s.failed).padStart(6)}   ${
            requestsText(s.requests?.platform_per_delegation).padStart(18)
          }  ${requestsText(s.requests?.peer_per_delegation).padStart(14)}   ${s.rounds.join(" ")}`
        )
      }
      logRequestsByRoute(rows, library)
      log(
        `  library: FiberMap size after every round ${Math.max(...lib.map((x) => x.runningAfter ?? 0))}; ` +
          `active handles before/after ${lib.map((x) => `${x.handlesBefore}/${x.handlesAfter}`).join(" ")}`
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
    }; status(id) ${store.statusMicros.toFixed(2)} µs (${store.statusMicrosFew.toFixed(2)} µs over 1% of the ids); ` +
      `list ${store.listMillis.toFixed(1)} ms`
  )
  log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`)
  if (jsonOutput) {
    console.log(JSON.stringify({
      machine,
      n: results,
      ratio_1k: ratios[1_000],
      ratio_10k: ratios[10_000],
      bytes_per_delegation: store.bytesPerDelegation,
      status_us: +store.statusMicros.toFixed(3),
      list_ms: +store.listMillis.toFixed(2),
      stored: store.stored,
      seconds: Math.round((performance.now() - started) / 1000)
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
