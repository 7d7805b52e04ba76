/**
 * One benchmark round in its own process, so that each side's peak RSS is its own
 * and no side inherits the other's heap or JIT state.
 *
 * `node round.js <side> <n> <port> [warm-up]` prints one JSON line (a `RoundResult`).
 * Sides: `floor` (node:http, keep-alive agent), `sdk` (the official `@a2a-js/sdk` 1.x client for the peer
 * and `fetch` for the platform, over one undici agent of the pool's size), `library` (the live stack over the
 * recommended `NodeHttpClientPooled`, with `concurrency` equal to the pool's connections),
 * `library-unbounded` (the same without the concurrency bound), `library-effect-timeout`
 * (the same client behind a transformation, so the live layers bound each request with
 * `Effect.timeoutFail` instead of the client's own deadline), `library-undici` (the live stack with
 * the bound over `@effect/platform-node`'s `NodeHttpClient.layerUndici` with a bounded
 * dispatcher), `library-gc64` (the library side, which bench/main.ts runs with
 * `--max-semi-space-size=64`), and two references that split the library's cost:
 * `effect-http` (the same five requests per delegation through `HttpClient` over the
 * recommended client, with its spans, and no delegation engine) and `engine` (the live core
 * over services that answer at once in-process, with no HTTP). `library-sqlite` and `library-postgres` are
 * the library side with `DELEGATION_STORE` (the `store` option) on a SQLite file of the round's own (a fresh
 * temp file, removed after) or a fresh PostgreSQL database (created on the server at `BENCH_DATABASE_URL`,
 * dropped after). By hand only: `effect-http-untraced`
 * is `effect-http` with the tracer disabled, `library-untraced-platform` the library with the
 * platform's calls left untraced (README, Performance).
 */
import * as HttpBody from "@effect/platform/HttpBody"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Undici from "@effect/platform-node/Undici"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Context, DateTime, Duration, Effect, Layer, Logger, LogLevel, Redacted } from "effect"
import type { DelegationId } from "effect-a2a-delegation"
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
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import type { Client } from "@a2a-js/sdk/client"
import { randomUUID } from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { freshDatabase, givenUrl } from "./pgServer.js"
import type { RequestFigures, RoundResult, RouteCounts } from "./shared.js"
import {
  COUNTS_PATH,
  countsBetween,
  delegationRequests,
  PEER,
  PEER_ROUTES,
  PLATFORM_ROUTES,
  POOL,
  replyText,
  SELF,
  sumOf,
  TOKEN
} from "./shared.js"

/** CPU time of this process (all its threads, GC included) since `since`, in µs. */
const cpuMicros = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since)
  return used.user + used.system
}

const percentile = (sorted: Float64Array, p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!

// --- requests per delegation ----------------------------------------------------------------------------------

/** The bench server's request counts, over a connection of its own (no agent), so no side's pool is touched. */
const requestCounts = (port: number) =>
  new Promise<RouteCounts>((resolve, reject) => {
    Http.get({ host: "127.0.0.1", port, path: COUNTS_PATH, agent: false }, (response) => {
      const chunks: Array<Buffer> = []
      response.on("data", (chunk: Buffer) => chunks.push(chunk))
      response.on("end", () => resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")) as RouteCounts))
      response.on("error", reject)
    }).on("error", reject)
  })

/**
 * Reads the server's counts at the start of a round, at the end of its warm-up and at the end of its
 * measured part, outside the measured time, each once the side has no request left in flight: the
 * difference of the last two, over N, is what a measured delegation costs in requests.
 */
const requestCounter = (port: number) => {
  const marks: Array<RouteCounts> = []
  return {
    mark: () => requestCounts(port).then((counts) => void marks.push(counts)),
    figures: (n: number): RequestFigures => {
      const [start, warm, end] = marks
      if (start === undefined || warm === undefined || end === undefined) throw new Error("three marks expected")
      const byRoute = countsBetween(warm, end, n)
      return {
        platform: sumOf(byRoute, PLATFORM_ROUTES),
        peer: sumOf(byRoute, PEER_ROUTES),
        byRoute,
        warmUp: countsBetween(start, warm, 1)
      }
    }
  }
}

type RequestCounter = ReturnType<typeof requestCounter>

/**
 * A side made of Promises (floor, sdk): its warm-up, then its N delegations at once with `Promise.all`,
 * the server's counts read around each. Every request of a part has been answered once its
 * `Promise.all` settles, so the counts can be read at once. The first failure is told on stderr.
 */
const promisedRounds = async (
  one: (i: number) => Promise<void>,
  n: number,
  warmUp: number,
  counter: RequestCounter
) => {
  const run = async (count: number, latencies?: Float64Array) => {
    let failed = 0
    const cpu = process.cpuUsage()
    const start = performance.now()
    await Promise.all(Array.from({ length: count }, async (_, i) => {
      const begin = performance.now()
      try {
        await one(i)
      } catch (error) {
        if (failed++ === 0) process.stderr.write(`${process.argv[2]} side: ${String(error)}\n`)
      }
      if (latencies !== undefined) latencies[i] = performance.now() - begin
    }))
    return { elapsed: performance.now() - start, failed, cpu: cpuMicros(cpu) }
  }
  await counter.mark()
  await run(warmUp)
  await counter.mark()
  const latencies = new Float64Array(n)
  const { cpu, elapsed, failed } = await run(n, latencies)
  await counter.mark()
  return { elapsed, failed, latencies, cpu }
}

// --- floor ------------------------------------------------------------------------------------------------

const floor = async (port: number, n: number, warmUp: number, counter: RequestCounter) => {
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
  const one = async (i: number) => {
    const r = delegationRequests(randomUUID(), `task ${i}`)
    await call("POST", r.record.path, platform, r.record.body)
    const peer = await call("GET", r.discover.path, { ...platform, "x-workspace-id": SELF })
    const url = new URL((peer.body as { url: string }).url)
    const reply = await call("POST", url.pathname, { "x-workspace-id": SELF }, r.send)
    // update, then notify, as the library sends them
    const update = r.update(replyText(reply.body))
    await call("POST", update.path, platform, update.body)
    await call("POST", r.notify.path, platform, r.notify.body)
  }
  const measured = await promisedRounds(one, n, warmUp, counter)
  agent.destroy()
  return measured
}

// --- sdk --------------------------------------------------------------------------------------------------

/**
 * What a host would write without the library: the official `@a2a-js/sdk` 1.x client for the peer (one
 * `Client` per peer, created from its card on the first delegation to it) and `fetch` for the platform,
 * both over one undici agent capped at the pool's connections (with Node's default fetch, N = 10,000 at
 * once runs out of file descriptors). The same five requests per delegation as the floor, plus the card once.
 */
const sdk = async (port: number, n: number, warmUp: number, counter: RequestCounter) => {
  // Loaded by this side only, so that no other side's memory holds the SDK.
  const { ClientFactory, ClientFactoryOptions, DefaultAgentCardResolver, JsonRpcTransportFactory } = await import(
    "@a2a-js/sdk/client"
  )
  const { Role } = await import("@a2a-js/sdk")
  const dispatcher = new Undici.Agent({ connections: POOL })
  // Node's fetch takes an undici dispatcher; the DOM typing of RequestInit does not name it.
  const fetchPooled: typeof fetch = (input, init) => fetch(input, { ...init, dispatcher } as RequestInit)
  const factory = new ClientFactory(ClientFactoryOptions.createFrom(ClientFactoryOptions.default, {
    transports: [new JsonRpcTransportFactory({ fetchImpl: fetchPooled })],
    cardResolver: new DefaultAgentCardResolver({ fetchImpl: fetchPooled })
  }))
  const clients = new Map<string, Promise<Client>>()
  const clientFor = (peerUrl: string) => {
    const origin = new URL(peerUrl).origin
    let client = clients.get(origin)
    if (client === undefined) {
      client = factory.createFromUrl(origin)
      clients.set(origin, client)
    }
    return client
  }
  const base = `http://127.0.0.1:${port}`
  const platform = { authorization: `Bearer ${TOKEN}` }
  const post = async (path: string, body: unknown) => {
    const response = await fetchPooled(`${base}${path}`, {
      method: "POST",
      headers: { ...platform, "content-type": "application/json" },
      body: JSON.stringify(body)
    })
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`)
    return response.json() as Promise<unknown>
  }
  const one = async (i: number) => {
    const r = delegationRequests(randomUUID(), `task ${i}`)
    await post(r.record.path, r.record.body)
    const found = await fetchPooled(`${base}${r.discover.path}`, { headers: { ...platform, "x-workspace-id": SELF } })
    const peer = (await found.json()) as { readonly url: string }
    const client = await clientFor(peer.url)
    const id = r.send.params.message.messageId
    const reply = await client.sendMessage({
      tenant: "",
      message: {
        messageId: id,
        contextId: "",
        taskId: "",
        role: Role.ROLE_USER,
        parts: [{ content: { $case: "text", value: `task ${i}` }, metadata: undefined, filename: "", mediaType: "text/plain" }],
        metadata: undefined,
        extensions: [],
        referenceTaskIds: []
      },
      configuration: undefined,
      metadata: r.send.params.metadata
    })
    const text = "messageId" in reply
      ? reply.parts.map((part) => (part.content?.$case === "text" ? part.content.value : "")).join("")
      : ""
    const update = r.update(text)
    await post(update.path, update.body)
    await post(r.notify.path, r.notify.body)
  }
  const measured = await promisedRounds(one, n, warmUp, counter)
  await dispatcher.close()
  return measured
}

// --- library ----------------------------------------------------------------------------------------------

/** Removes the round's SQLite file when the round stalls (its normal close never runs then). */
let removeOnStall = () => {}

/** Open file descriptors of this process, sampled every second: the most seen. */
const openFds = () => {
  try {
    return Fs.readdirSync("/proc/self/fd").length
  } catch {
    return 0
  }
}
let peakFds = openFds()

/**
 * `@libsql/client` 0.12 leaves the connection of each transaction open until it is garbage-collected (about
 * two descriptors per delegation on the SQLite side): the most seen shows it.
 */
setInterval(() => {
  peakFds = Math.max(peakFds, openFds())
}, 1000).unref()

/** How far the library side got: delegations started and awaited, in the current part (warm-up or measured). */
const progress = { part: "build", started: 0, awaited: 0 }

const activeHandles = () => process.getActiveResourcesInfo().filter((name) => name !== "Timeout").length

const stockUndici: Layer.Layer<HttpClient.HttpClient> = NodeHttpClient.layerUndiciWithoutDispatcher.pipe(
  Layer.provide(Layer.scoped(
    NodeHttpClient.Dispatcher,
    Effect.acquireRelease(
      Effect.sync(() => new Undici.Agent({ connections: POOL })),
      (agent) => Effect.promise(() => agent.destroy())
    )
  ))
)

// The pooled client without the `NativeRequestBounds` beside it (`Layer.provide` keeps it inside), so
// the live layers bound its requests with Effect.timeoutFail; the identity adds no work of its own.
const pooledWithEffectTimeouts: Layer.Layer<HttpClient.HttpClient> = Layer.effect(
  HttpClient.HttpClient,
  Effect.map(HttpClient.HttpClient, HttpClient.transformResponse((response) => response))
).pipe(Layer.provide(NodeHttpClientPooled.layer({ connections: POOL })))

const clientFor = (side: string): Layer.Layer<HttpClient.HttpClient> =>
  side === "library-undici"
    ? stockUndici
    : side === "library-effect-timeout"
    ? pooledWithEffectTimeouts
    : NodeHttpClientPooled.layer({ connections: POOL })

/** The live stack over `client`, as `DelegationsLive` builds it. */
const liveStack = (
  port: number,
  history: number,
  client: Layer.Layer<HttpClient.HttpClient>,
  concurrency: number | undefined,
  store: string | undefined
) =>
  DelegationsLayer.layer({
    workspaceId: SELF,
    platformUrl: `http://127.0.0.1:${port}`,
    platformToken: TOKEN,
    history,
    concurrency,
    store
  }).pipe(Layer.provide(client))

// --- the SQL stores ---------------------------------------------------------------------------------------

/** CPU time (user + system, in µs) of a local PostgreSQL server: the postmaster, its reaped children and its live ones. */
const serverCpuMicros = (postmaster: number) => {
  const ticks = 1_000_000 / 100 // USER_HZ: 100 on Linux
  const stat = (pid: string) => {
    const text = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // The fields after the command's ")" : state is field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
    return text.slice(text.lastIndexOf(")") + 2).split(" ")
  }
  const own = stat(String(postmaster))
  let total = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14])
  for (const pid of Fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(pid) || pid === String(postmaster)) continue
    try {
      const fields = stat(pid)
      if (Number(fields[1]) === postmaster) total += Number(fields[11]) + Number(fields[12])
    } catch {
      // gone meanwhile: its time is in the postmaster's cutime/cstime now
    }
  }
  return total * ticks
}

/** The postmaster's pid, when the server runs on this machine and its processes can be read (else undefined). */
const postmasterOf = async (url: string) => {
  try {
    const rows = await Effect.runPromise(
      Effect.flatMap(Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 })), (context) =>
        Context.get(context, PgClient.PgClient)<{ pid: number }>`SELECT pg_backend_pid() AS pid`).pipe(Effect.scoped)
    )
    const backend = Fs.readFileSync(`/proc/${rows[0]!.pid}/stat`, "utf8")
    const postmaster = Number(backend.slice(backend.lastIndexOf(")") + 2).split(" ")[1])
    serverCpuMicros(postmaster)
    return postmaster
  } catch {
    return undefined
  }
}

/**
 * The `store` option of a side, made for this round: a SQLite file in a fresh temp directory, or a fresh
 * PostgreSQL database; `close` removes it. `serverCpu` reads the PostgreSQL server's CPU time, when it is local.
 */
const storeFor = async (side: string): Promise<{
  readonly store: string | undefined
  readonly serverCpu: (() => number) | undefined
  readonly close: () => Promise<void>
}> => {
  if (side === "library-sqlite") {
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "delegation-bench-sqlite-"))
    removeOnStall = () => Fs.rmSync(dir, { recursive: true, force: true })
    return {
      store: `sqlite:${Path.join(dir, "delegations.db")}`,
      serverCpu: undefined,
      close: () => Fs.promises.rm(dir, { recursive: true, force: true })
    }
  }
  if (side === "library-postgres") {
    const server = givenUrl()
    if (server === undefined) throw new Error("library-postgres needs BENCH_DATABASE_URL (a server it may create databases on)")
    const database = await freshDatabase(server.value)
    const postmaster = await postmasterOf(database.url)
    return {
      store: database.url,
      serverCpu: postmaster === undefined ? undefined : () => serverCpuMicros(postmaster),
      close: database.drop
    }
  }
  return { store: undefined, serverCpu: undefined, close: () => Promise.resolve() }
}

const instantReply = A2ATransportTest.message("ok")

/** The live core (audit to the log, static RBAC, memory store) over services that answer at once, in-process. */
const engineAlone = (history: number) =>
  DelegationsLayer.layerCore({
    workspaceId: SELF,
    history,
    timeout: Duration.seconds(30),
    retrySchedule: DelegationsLayer.linearRetry(3, "5 seconds"),
    pollSchedule: DelegationsLayer.defaultPollSchedule,
    concurrency: POOL
  }).pipe(Layer.provide(Layer.mergeAll(
    Layer.succeed(
      Discovery,
      Discovery.of({ resolve: (id) => Effect.succeed(new PeerEndpoint({ id, url: "http://peer.invalid/a2a" })) })
    ),
    // Each call gives the other fibers a turn, as an answer from the network would.
    Layer.succeed(A2ATransport, A2ATransport.of({
      protocolFor: (peer) => Effect.succeed({ version: "1.0", url: peer.url, source: "card" }),
      rememberProtocol: () => Effect.void,
      send: () => Effect.as(Effect.yieldNow(), instantReply),
      getTask: () => Effect.die("unused"),
      cancelTask: () => Effect.die("unused")
    })),
    Layer.succeed(PlatformMirror, PlatformMirror.of({
      record: () => Effect.yieldNow(),
      update: () => Effect.yieldNow(),
      notify: () => Effect.yieldNow(),
      list: Effect.succeed([]),
      delegate: () => Effect.die("unused")
    })),
    AuditLog.layer({ workspaceId: SELF }),
    RbacStatic.layer({ roles: ["operator"] })
  )))

const library = async <E>(
  n: number,
  warmUp: number,
  layer: Layer.Layer<Delegations, E>,
  counter: RequestCounter | undefined,
  around: <A, E2>(effect: Effect.Effect<A, E2>) => Effect.Effect<A, E2> = (effect) => effect,
  serverCpu?: () => number
) => {
  const handlesBefore = activeHandles()
  const mark = counter === undefined ? Effect.void : Effect.promise(counter.mark)
  const result = await Effect.runPromise(
    Effect.gen(function*() {
      yield* mark
      const delegations = yield* Effect.map(Layer.build(layer), Context.get(Delegations))
      // delegate() answers at once, so the ids are taken in a plain loop and then awaited in order: no
      // fiber per delegation on the caller's side (the floor's Promise.all has no such cost either).
      const run = (count: number, latencies?: Float64Array) =>
        Effect.gen(function*() {
          let failed = 0
          const cpu = process.cpuUsage()
          const server = serverCpu?.()
          const start = performance.now()
          const ids: Array<DelegationId> = []
          progress.part = latencies === undefined ? "warm-up" : "measured"
          progress.started = 0
          progress.awaited = 0
          for (let i = 0; i < count; i++) {
            ids.push(yield* delegations.delegate({ workspaceId: PEER, task: `task ${i}` }))
            progress.started++
          }
          for (let i = 0; i < count; i++) {
            const done = yield* delegations.await(ids[i]!)
            progress.awaited++
            if (done.status !== "completed") failed++
            // From the delegation's own timestamps: delegate() to the completed state.
            if (latencies !== undefined) latencies[i] = DateTime.distance(done.createdAt, done.updatedAt)
          }
          const elapsed = performance.now() - start
          return {
            elapsed,
            failed,
            cpu: cpuMicros(cpu),
            serverCpu: server === undefined ? undefined : serverCpu!() - server
          }
        })
      // `await` returns once the delegation's fiber is done, its platform update and notify included, so
      // no request of a part is in flight once its last `await` has returned: the counts can be read at once.
      yield* run(warmUp)
      yield* mark
      const latencies = new Float64Array(n)
      const measured = yield* run(n, latencies)
      yield* mark
      return { ...measured, latencies, runningAfter: yield* delegations.running }
    }).pipe(Effect.scoped, Effect.orDie, Logger.withMinimumLogLevel(LogLevel.Warning), around)
  )
  // Closed sockets and the pool's timers go away on the next turns of the event loop.
  await new Promise((resolve) => setTimeout(resolve, 200))
  return { ...result, handlesBefore, handlesAfter: activeHandles() }
}

/** The README's recipe: the platform's calls without a client span (here the peer shares its origin). */
const untracedPlatform = (platformUrl: string) => <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.locally(
    effect,
    HttpClient.currentTracerDisabledWhen,
    (request) => request.url.startsWith(platformUrl) && !request.url.endsWith("/a2a")
  )

// --- Effect's HTTP stack alone -------------------------------------------------------------------------------

/**
 * The floor's five requests per delegation through `HttpClient` over the recommended client, with
 * its spans and propagation, POOL delegations at a time: what any delegation engine on Effect's
 * HTTP client pays before it does anything of its own.
 */
const effectHttp = (port: number, n: number, warmUp: number, traced: boolean, counter: RequestCounter) =>
  Effect.runPromise(
    Effect.gen(function*() {
      const client = yield* HttpClient.HttpClient
      const base = `http://127.0.0.1:${port}`
      const platform = { authorization: `Bearer ${TOKEN}` }
      const json = (request: HttpClientRequest.HttpClientRequest) =>
        Effect.flatMap(client.execute(request), (response) =>
          Effect.map(response.text, (text) => ({ status: response.status, body: JSON.parse(text) as unknown })))
      const post = (path: string, headers: Record<string, string>, body: unknown) =>
        json(HttpClientRequest.post(base + path, { headers, body: HttpBody.unsafeJson(body) }))
      const one = Effect.fnUntraced(function*(i: number) {
        const r = delegationRequests(randomUUID(), `task ${i}`)
        yield* post(r.record.path, platform, r.record.body)
        const peer = yield* json(HttpClientRequest.get(base + r.discover.path, {
          headers: { ...platform, "x-workspace-id": SELF }
        }))
        const url = new URL((peer.body as { url: string }).url)
        const reply = yield* post(url.pathname, { "x-workspace-id": SELF }, r.send)
        const update = r.update(replyText(reply.body))
        yield* post(update.path, platform, update.body)
        yield* post(r.notify.path, platform, r.notify.body)
      })
      const run = (count: number, latencies?: Float64Array) =>
        Effect.gen(function*() {
          let failed = 0
          const cpu = process.cpuUsage()
          const start = performance.now()
          yield* Effect.forEach(Array.from({ length: count }, (_, i) => i), (i) => {
            const begin = performance.now()
            return one(i).pipe(
              Effect.catchAllCause(() => Effect.sync(() => failed++)),
              Effect.ensuring(Effect.sync(() => {
                if (latencies !== undefined) latencies[i] = performance.now() - begin
              }))
            )
          }, { concurrency: POOL, discard: true })
          return { elapsed: performance.now() - start, failed, cpu: cpuMicros(cpu) }
        })
      // Every request of a part has been answered once its forEach returns: the counts can be read at once.
      const mark = Effect.promise(counter.mark)
      yield* mark
      yield* run(warmUp)
      yield* mark
      const latencies = new Float64Array(n)
      const measured = yield* run(n, latencies)
      yield* mark
      return { ...measured, latencies }
    }).pipe(
      Effect.provide(NodeHttpClientPooled.layer({ connections: POOL })),
      Effect.scoped,
      Effect.withTracerEnabled(traced)
    )
  )

// --- main -------------------------------------------------------------------------------------------------

const main = async () => {
  const [side = "floor", count = "1000", portText = "0", warmUpText = "5000"] = process.argv.slice(2)
  const n = Number(count)
  const port = Number(portText)
  const warmUp = Number(warmUpText)
  const summary = (
    outcome: { readonly elapsed: number; readonly failed: number; readonly latencies: Float64Array; readonly cpu: number }
  ) => {
    const sorted = outcome.latencies.slice().sort()
    return {
      side,
      n,
      perSecond: n / (outcome.elapsed / 1000),
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      peakRss: process.resourceUsage().maxRSS * 1024,
      failed: outcome.failed,
      cpuMicros: outcome.cpu / n
    }
  }
  // The sides' requests go to the bench server, which counts them.
  const counter = requestCounter(port)
  let result: RoundResult
  if (side === "floor") {
    result = { ...summary(await floor(port, n, warmUp, counter)), requests: counter.figures(n) }
  } else if (side === "sdk") {
    result = { ...summary(await sdk(port, n, warmUp, counter)), requests: counter.figures(n) }
  } else if (side === "effect-http" || side === "effect-http-untraced") {
    result = { ...summary(await effectHttp(port, n, warmUp, side === "effect-http", counter)), requests: counter.figures(n) }
  } else {
    // The history holds a whole round, so a delegation that ended before its turn to be awaited is still there.
    const history = Math.max(n, warmUp)
    // The engine makes no HTTP request: nothing to count.
    const counted = side === "engine" ? undefined : counter
    const store = await storeFor(side)
    const outcome = await library(
      n,
      warmUp,
      side === "engine"
        ? engineAlone(history)
        // As many delegations at once as the pool has connections: the others wait their turn, pending.
        : liveStack(port, history, clientFor(side), side === "library-unbounded" ? undefined : POOL, store.store),
      counted,
      side === "library-untraced-platform" ? untracedPlatform(`http://127.0.0.1:${port}`) : undefined,
      store.serverCpu
    ).finally(store.close)
    result = {
      ...summary(outcome),
      peakFds: Math.max(peakFds, openFds()),
      ...(outcome.serverCpu === undefined ? {} : { serverCpuMicros: outcome.serverCpu / n }),
      runningAfter: outcome.runningAfter,
      handlesBefore: outcome.handlesBefore,
      handlesAfter: outcome.handlesAfter,
      ...(counted === undefined ? {} : { requests: counted.figures(n) })
    }
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
}

// Node exits with code 0 when nothing is left to wait on (no socket, no timer): were the round's program
// stuck on something that nothing will ever complete, it would end with no line and no error.
process.once("beforeExit", () => {
  console.error(
    `round ${process.argv.slice(2).join(" ")}: stalled with nothing left to run in the ${progress.part} part: ` +
      `${progress.started} delegations started, ${progress.awaited} awaited; ${openFds()} open file descriptors`
  )
  removeOnStall()
  process.exit(2)
})

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error)
    process.exit(1)
  }
)
