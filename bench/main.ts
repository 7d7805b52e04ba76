/**
 * `npm run bench`: the library against the raw HTTP floor, in the same run.
 *
 * A minimal platform + peer runs in a separate process (server.ts). For N = 1,000
 * and N = 10,000 delegations in flight, rounds alternate between the sides, each
 * round in a fresh process (round.ts) so that every side's peak RSS is its own,
 * after a warm-up of 5,000 delegations:
 * - floor: the same five requests per delegation (record, discover, message/send,
 *   update, notify) with Node's `http` module and a keep-alive agent;
 * - sdk: what a host would write without the library: the official `@a2a-js/sdk` 1.x
 *   client for the peer (one `Client` per peer, from its card) and `fetch` for the
 *   platform, over one undici agent of 256 connections (Node's default fetch runs out of
 *   file descriptors at N = 10,000);
 * - library: N delegations through the live stack (`DelegationsLayer.layer`, as
 *   `DelegationsLive` builds it) over the recommended `NodeHttpClientPooled`, with
 *   `concurrency` equal to the pool's connections, all started with `delegate`, then
 *   each `await`ed;
 * - library-unbounded (two rounds at each N): the same without the concurrency bound, which is
 *   the default configuration;
 * - library-effect-timeout (N = 10,000, two rounds): the same with an `Effect.timeoutFail`
 *   per request instead of the client's own deadline (what the internal native bounds save);
 * - library-undici (N = 1,000, two rounds): the same over `@effect/platform-node`'s
 *   `NodeHttpClient.layerUndici`;
 * - library-gc64 (N = 10,000, two rounds): the library side in a process started with
 *   `--max-semi-space-size=64` (a larger young generation for V8);
 * - effect-http and engine (N = 10,000, two rounds), which split the library's cost: the
 *   floor's five requests through `HttpClient` over the recommended client with its spans
 *   and no engine, and the live core over in-process services that answer at once.
 * - library-sqlite and library-postgres (two rounds at each N, after a warm-up of 1,000): the library
 *   side with `DELEGATION_STORE` on a SQLite file of the round's own and on a fresh PostgreSQL database
 *   (the server at `BENCH_DATABASE_URL` or `DELEGATION_TEST_DATABASE_URL`, else a throwaway server this
 *   run starts and stops, see pgServer.ts; without PostgreSQL the side is skipped with a note).
 * Every side but the engine also reports its requests per measured delegation (platform and peer, and
 * by route), which the server counts and each round reads before and after its measured part.
 * Then the store: retained heap per finished delegation at 100,000 stored, and the
 * time of `status(id)` and `list` at that size; and the SQL stores' operations at 1,000,000 rows
 * (storeOps.ts; `BENCH_STORE_ROWS` sets another size); and streaming against polling for a 5 s peer task
 * (streaming.ts): peer requests per delegation, and how soon the outcome is known.
 *
 * `npm run bench -- --json` prints one JSON object instead of the report; `-- --no-sql` leaves out the
 * SQL sides and the SQL store operations.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as LibsqlClient from "@effect/sql-libsql/LibsqlClient"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Context, Duration, Effect, Layer, Logger, LogLevel, Redacted } from "effect"
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
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { pathToFileURL } from "node:url"
import { freshDatabase, pgServer } from "./pgServer.js"
import type { RoundResult } from "./shared.js"
import { PEER, PEER_ROUTES, PLATFORM_ROUTES, POOL, ROUTES, SELF } from "./shared.js"
import type { StoreOpsReport } from "./storeOps.js"
import { storeOps } from "./storeOps.js"
import { streamingReport, streamingVsPolling } from "./streaming.js"

// Delegations at once in the streaming-against-polling comparison.
const STREAMED = 100

const jsonOutput = process.argv.includes("--json")
const quick = process.argv.includes("--quick")
const withSql = !process.argv.includes("--no-sql")
const log = (line: string) => {
  if (!jsonOutput) console.log(line)
}

const SIZES = quick ? [1_000] : [1_000, 10_000]
const ROUNDS: Record<number, number> = { 1_000: quick ? 2 : 4, 10_000: 5 }
// Delegations each round runs before it measures: a host runs for hours, so both sides are measured
// with their code optimised by the JIT, not while it is still being compiled.
const WARM_UP = 5_000
// The SQL sides run some 10 times slower than the memory one: a warm-up of 5,000 would take longer than
// their measured part at N = 1,000, and a round at N = 10,000 over 3 minutes. 1,000 delegations compile
// the same code.
const SQL_WARM_UP = 1_000
const SQL_SIDES = ["library-sqlite", "library-postgres"] as const
const isSql = (side: string) => (SQL_SIDES as ReadonlyArray<string>).includes(side)
const warmUpOf = (side: string) => isSql(side) ? SQL_WARM_UP : WARM_UP
// A round that has not printed its line by then is killed and left out (reported as such).
const ROUND_TIMEOUT_MS = 10 * 60_000
// The variants run in two rounds only (the stock undici client at N = 1,000; at N = 10,000 the library
// without its concurrency bound, with Effect timeouts and with a larger young generation, and the two
// references), to keep a full run short.
// The SQL sides run in two rounds at each N, beside the memory store's library side of the same rounds.
const sidesFor = (n: number, round: number, sql: ReadonlyArray<string>): ReadonlyArray<string> =>
  round >= 2
    ? ["floor", "sdk", "library"]
    : n === 1_000
    ? ["floor", "sdk", "library", "library-unbounded", "library-undici", ...sql]
    : ["floor", "sdk", "library", "library-unbounded", "library-effect-timeout", "library-gc64", "effect-http", "engine", ...sql]
const STORED = quick ? 20_000 : 100_000
// Rows of the SQL stores' tables for their operations' latency (storeOps.ts).
const STORE_ROWS = Number(process.env.BENCH_STORE_ROWS ?? (quick ? 100_000 : 1_000_000))

// --- processes ---------------------------------------------------------------------------------------------

const firstLine = (args: ReadonlyArray<string>, keepAlive: boolean, timeoutMs?: number) =>
  new Promise<{ readonly line: string; readonly stop: () => void }>((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] })
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`${args.join(" ")} did not finish within ${timeoutMs / 1000} s`))
    }, timeoutMs)
    child.once("error", reject)
    // "close", not "exit": by then the child's output has been read, its line (if any) handed on.
    child.once("close", (code) => {
      clearTimeout(timer)
      // Once the line is in, a later rejection is ignored.
      if (!keepAlive) reject(new Error(`${args.join(" ")} exited with ${code} before printing a line`))
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


/** A round and how long its process took (build, warm-up, measured part and close), in seconds. */
const round = async (side: string, n: number, port: number): Promise<RoundResult & { readonly seconds: number }> => {
  const start = performance.now()
  const { line } = await firstLine(
    [
      "--max-old-space-size=4096",
      ...flagsOf(side),
      here("./round.js"),
      side,
      String(n),
      String(port),
      String(warmUpOf(side))
    ],
    false,
    ROUND_TIMEOUT_MS
  )
  return { ...(JSON.parse(line) as RoundResult), seconds: (performance.now() - start) / 1000 }
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
        stored: STORED,
        listed,
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

// --- the SQL stores' operations at size ---------------------------------------------------------------------

/** A SQLite client on a file, in WAL mode as the library's SQLite store opens it. */
const sqliteClient = (filename: string): Layer.Layer<SqlClient.SqlClient, unknown> =>
  Layer.tap(
    LibsqlClient.layer({ url: pathToFileURL(filename).href }),
    (context) => Context.get(context, SqlClient.SqlClient)`PRAGMA journal_mode = WAL`
  )

type StoreOpsResult = StoreOpsReport | { readonly dialect: string; readonly skipped: string }

/** storeOps.ts on a SQLite file in a fresh temp directory (removed after) and on a fresh PostgreSQL database (dropped after). */
const sqlStoreOps = async (rows: number, pgUrl: string | undefined, pgNote: string | undefined) => {
  const results: Array<StoreOpsResult> = []
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "delegation-bench-storeops-"))
  try {
    results.push(await storeOps({ client: sqliteClient(Path.join(dir, "delegations.db")), rows }))
  } catch (error) {
    results.push({ dialect: "sqlite", skipped: String(error) })
  } finally {
    Fs.rmSync(dir, { recursive: true, force: true })
  }
  if (pgUrl === undefined) {
    results.push({ dialect: "postgres", skipped: pgNote ?? "no PostgreSQL" })
  } else {
    try {
      const database = await freshDatabase(pgUrl)
      try {
        results.push(await storeOps({ client: PgClient.layer({ url: Redacted.make(database.url) }), rows }))
      } finally {
        await database.drop()
      }
    } catch (error) {
      results.push({ dialect: "postgres", skipped: String(error) })
    }
  }
  return results
}

const OPERATIONS = ["get", "update", "finish", "list", "claim"] as const

const logStoreOps = (rows: number, results: ReadonlyArray<StoreOpsResult>) => {
  log("")
  log(
    `SQL store operations at ${rows.toLocaleString("en")} rows (storeOps.ts: 10,000 finished, the rest unfinished, ` +
      `1% with an expired lease; 200 calls each, one at a time), ms p50 / p95:`
  )
  log(`  ${"".padEnd(10)} ${"fill".padStart(8)}${OPERATIONS.map((op) => op.padStart(17)).join("")}`)
  for (const result of results) {
    if ("skipped" in result) {
      log(`  ${result.dialect.padEnd(10)} skipped: ${result.skipped}`)
      continue
    }
    log(
      `  ${result.dialect.padEnd(10)} ${`${(result.fillMillis / 1000).toFixed(1)} s`.padStart(8)}${
        OPERATIONS.map((op) => `${result.timings[op].p50.toFixed(2)} / ${result.timings[op].p95.toFixed(2)}`.padStart(17))
          .join("")
      }`
    )
  }
  log(`  get: by id; update: a compare-and-set; finish: an update that finishes one (and its eviction pass);`)
  log(`  list: a page of 50; claim: 10 expired leases`)
}

/** Stops the run's PostgreSQL server, if it started one: at the end, or when the run fails or is interrupted. */
let stopPg: (() => Promise<void>) | undefined

const main = async () => {
  const started = performance.now()
  // PostgreSQL first: its server (when the run starts one) must be up before the rounds that use it.
  const pg = withSql ? await pgServer() : "left out (--no-sql)"
  const pgNote = typeof pg === "string" ? pg : undefined
  if (typeof pg !== "string") {
    process.env.BENCH_DATABASE_URL = pg.url
    stopPg = pg.stop
  }
  const sqlSides = withSql ? SQL_SIDES.filter((side) => side !== "library-postgres" || pgNote === undefined) : []
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
  if (withSql) {
    log(
      `library-sqlite, library-postgres: the library side with DELEGATION_STORE on a fresh SQLite file / PostgreSQL ` +
        `database per round, after a ${SQL_WARM_UP.toLocaleString("en")}-delegation warm-up`
    )
    log(typeof pg === "string" ? `PostgreSQL: skipped: ${pg}` : `PostgreSQL: ${pg.origin}`)
  }
  const sqlNotes: Array<string> = []
  const results: Record<string, unknown> = {}
  const ratios: Record<string, number> = {}
  try {
    for (const n of SIZES) {
      const rounds: Record<string, Array<RoundResult>> = {
        floor: [],
        sdk: [],
        library: [],
        "library-undici": [],
        "library-unbounded": [],
        "library-effect-timeout": [],
        "library-gc64": [],
        "effect-http": [],
        engine: [],
        "library-sqlite": [],
        "library-postgres": []
      }
      const seconds: Record<string, Array<number>> = {}
      for (let r = 0; r < ROUNDS[n]!; r++) {
        // Rotate the order so that drift hits every side alike.
        const sides = sidesFor(n, r, sqlSides)
        for (let k = 0; k < sides.length; k++) {
          const side = sides[(r + k) % sides.length]!
          if (!isSql(side)) {
            rounds[side]!.push(await round(side, n, server.port))
            continue
          }
          // A SQL side that fails or runs out of time is reported and left out; the run goes on.
          try {
            const result = await round(side, n, server.port)
            rounds[side]!.push(result)
            ;(seconds[side] ??= []).push(result.seconds)
          } catch (error) {
            sqlNotes.push(`N = ${n.toLocaleString("en")}, ${side}: round left out: ${String(error).split("\n")[0]}`)
          }
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
      const sdk = summary(rounds["sdk"]!)
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
      const sqlite = optional("library-sqlite")
      const postgres = optional("library-postgres")
      const peakFds = (side: string) => Math.max(0, ...rounds[side]!.map((x) => x.peakFds ?? 0))
      const postgresServerCpu = rounds["library-postgres"]!.flatMap((x) =>
        x.serverCpuMicros === undefined ? [] : [x.serverCpuMicros]
      )
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
      // Against what a host would write instead (the official SDK client and fetch).
      const ofSdk = (s: { readonly per_second: number } | undefined) =>
        s === undefined ? undefined : +(s.per_second / sdk.per_second).toFixed(3)
      results[n] = {
        ratio,
        ratio_sdk: ratioOf(sdk),
        library_of_sdk: ofSdk(library),
        library_unbounded_of_sdk: ofSdk(unbounded),
        library_of_effect_http: http === undefined ? undefined : +(library.per_second / http.per_second).toFixed(3),
        library_unbounded_of_effect_http: http === undefined || unbounded === undefined
          ? undefined
          : +(unbounded.per_second / http.per_second).toFixed(3),
        ratio_layer_undici: ratioUndici,
        ratio_unbounded: ratioUnbounded,
        ratio_effect_timeout: ratioEffectTimeout,
        ratio_gc64: ratioOf(gc64),
        ratio_effect_http: ratioOf(http),
        floor,
        sdk,
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
        ...(engine === undefined ? {} : { engine }),
        ...(sqlite === undefined
          ? {}
          : {
            library_sqlite: {
              ...sqlite,
              of_memory: +(sqlite.per_second / library.per_second).toFixed(3),
              peak_fds: peakFds("library-sqlite"),
              seconds: seconds["library-sqlite"]
            }
          }),
        ...(postgres === undefined ? {} : {
          library_postgres: {
            ...postgres,
            of_memory: +(postgres.per_second / library.per_second).toFixed(3),
            server_cpu_us: postgresServerCpu.length === 0 ? undefined : Math.round(median(postgresServerCpu)),
            peak_fds: peakFds("library-postgres"),
            seconds: seconds["library-postgres"]
          }
        })
      }
      log("")
      log(
        `N = ${n.toLocaleString("en")} in flight: library/floor = ${ratio}` +
          (ratioUndici === undefined ? "" : ` (over NodeHttpClient.layerUndici: ${ratioUndici})`) +
          (ratioUnbounded === undefined ? "" : ` (without the concurrency bound: ${ratioUnbounded})`) +
          (ratioEffectTimeout === undefined ? "" : ` (with Effect timeouts: ${ratioEffectTimeout})`) +
          (gc64 === undefined ? "" : ` (with --max-semi-space-size=64: ${ratioOf(gc64)})`)
      )
      log(
        `  against the official SDK client + fetch (sdk/floor = ${ratioOf(sdk)}): library/sdk = ${ofSdk(library)}` +
          (unbounded === undefined ? "" : `, with the defaults (library-unbounded)/sdk = ${ofSdk(unbounded)}`)
      )
      if (http !== undefined) {
        log(`  Effect's HTTP stack alone (effect-http, no engine)/floor = ${ratioOf(http)}`)
        log(
          `  library/effect-http = ${+(library.per_second / http.per_second).toFixed(3)}` +
            (unbounded === undefined ? "" : `, with the defaults ${+(unbounded.per_second / http.per_second).toFixed(3)}`)
        )
      }
      log(
        `                          deleg/s  CPU µs/deleg   p50 ms   p99 ms   peak RSS   failed  ` +
          ` platform req/deleg  peer req/deleg   rounds (deleg/s)`
      )
      const rows = [
        ["floor", floor],
        ["sdk", sdk],
        ["library", library],
        ...(undici === undefined ? [] : [["library-undici", undici] as const]),
        ...(unbounded === undefined ? [] : [["library-unbounded", unbounded] as const]),
        ...(effectTimeout === undefined ? [] : [["library-effect-timeout", effectTimeout] as const]),
        ...(gc64 === undefined ? [] : [["library-gc64", gc64] as const]),
        ...(http === undefined ? [] : [["effect-http", http] as const]),
        ...(engine === undefined ? [] : [["engine (no HTTP)", engine] as const]),
        ...(sqlite === undefined ? [] : [["library-sqlite", sqlite] as const]),
        ...(postgres === undefined ? [] : [["library-postgres", postgres] as const])
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
      for (const [name, s] of [["library-sqlite", sqlite], ["library-postgres", postgres]] as const) {
        if (s === undefined) continue
        log(
          `  ${name}: ${s.per_second} deleg/s, ${(s.per_second / library.per_second).toFixed(3)} of the memory store's ` +
            `(library); rounds took ${seconds[name]!.map((x) => `${x.toFixed(0)} s`).join(", ")} ` +
            `(warm-up ${SQL_WARM_UP.toLocaleString("en")} included); at most ${peakFds(name).toLocaleString("en")} ` +
            `open descriptors (memory store: ${peakFds("library").toLocaleString("en")})` +
            (name === "library-postgres" && postgresServerCpu.length > 0
              ? `; the PostgreSQL server's own CPU ${Math.round(median(postgresServerCpu))} µs/deleg (not in the CPU column)`
              : "")
        )
      }
      log(
        `  library: FiberMap size after every round ${Math.max(...lib.map((x) => x.runningAfter ?? 0))}; ` +
          `active handles before/after ${lib.map((x) => `${x.handlesBefore}/${x.handlesAfter}`).join(" ")}`
      )
    }
  } finally {
    server.stop()
  }
  for (const note of sqlNotes) log(note)
  if (withSql && pgNote !== undefined) log(`library-postgres: skipped: ${pgNote}`)
  const store = await storeFigures()
  log("")
  log(
    `store: ${store.stored.toLocaleString("en")} finished delegations retain ${store.bytesPerDelegation} bytes each${
      store.gcExposed ? "" : " (run with --expose-gc for exact figures)"
    }; status(id) ${store.statusMicros.toFixed(2)} µs (${store.statusMicrosFew.toFixed(2)} µs over 1% of the ids); ` +
      `list ${store.listMillis.toFixed(1)} ms (its newest ${store.listed.toLocaleString("en")})`
  )
  let opsResults: ReadonlyArray<StoreOpsResult> = []
  try {
    if (withSql) {
      opsResults = await sqlStoreOps(STORE_ROWS, typeof pg === "string" ? undefined : pg.url, pgNote)
      logStoreOps(STORE_ROWS, opsResults)
    }
  } finally {
    stopPg = undefined
    if (typeof pg !== "string") await pg.stop()
  }
  log("")
  log(`streaming against polling, ${STREAMED} delegations at once, a peer task of 5 s (streaming.ts):`)
  const streaming = await streamingVsPolling(STREAMED)
  for (const line of streamingReport(streaming)) log(`  ${line}`)
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
      ...(withSql ? { postgres: typeof pg === "string" ? { skipped: pg } : { server: pg.origin } } : {}),
      ...(withSql ? { store_ops: { rows: STORE_ROWS, results: opsResults } } : {}),
      sql_notes: sqlNotes,
      streaming,
      seconds: Math.round((performance.now() - started) / 1000)
    }))
  }
}

process.once("SIGINT", () => {
  void (stopPg?.() ?? Promise.resolve()).finally(() => process.exit(130))
})

main().then(
  () => process.exit(0),
  async (error: unknown) => {
    console.error(error)
    await stopPg?.().catch(() => undefined)
    process.exit(1)
  }
)
