/**
 * The bad-input and hostile-peer matrix of issue 15: one test per case, those that held before
 * the issue included, so they keep holding. Inputs and wire shapes run over the scripted fake
 * network with the TestClock; slow bytes, big bodies, resets and memory over real sockets on
 * 127.0.0.1 with both Node clients.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { NodeHttpClient } from "@effect/platform-node"
import type { HttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import {
  Delegations,
  DelegationsLayer,
  Discovery,
  DiscoveryHttp,
  DiscoveryProxy,
  PlatformMirror,
  PlatformMirrorHttp,
  PlatformHttpClient
} from "effect-a2a-delegation"
import type { Delegation, DelegateRequest, InvalidDelegation } from "effect-a2a-delegation"
import { NodeHttpClientPooled } from "effect-a2a-delegation/node"
import { Chunk, Clock, ConfigError, Context, Effect, Exit, Fiber, Layer, Logger, LogLevel, Option, Scope, TestClock } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import * as FakeHttp from "./fixtures/http.js"
import type { Handler, Step } from "./fixtures/http.js"
import { captureLogs, eventually, start } from "./fixtures/e2e.js"

// --- the fake network ------------------------------------------------------------------------------

const PLATFORM = "http://platform:8080"
const PEER_URL = "http://peer:8000/a2a"
const TOKEN = "platform-token-5ecret"

const field = (value: unknown, ...path: ReadonlyArray<string>): unknown =>
  path.reduce<unknown>(
    (current, key) => (typeof current === "object" && current !== null ? (current as Record<string, unknown>)[key] : undefined),
    value
  )

const rpcAnswer = (text: string, id: unknown) => ({
  jsonrpc: "2.0",
  id,
  result: { kind: "message", role: "agent", messageId: "answer-1", parts: [{ kind: "text", text }] }
})

/** Platform routes answer as the platform does; peer POSTs go to `peer` with the earlier peer POSTs. */
const network = (peer: Handler, discovered: string = PEER_URL): Handler => (request, previous) => {
  if (request.url.startsWith("http://peer:8000/")) {
    return peer(request, previous.filter((r) => r.url.startsWith("http://peer:8000/")))
  }
  const path = new URL(request.url).pathname
  if (path.startsWith("/registry/discover/")) return Effect.succeed(FakeHttp.reply(200, { id: "target", url: discovered }))
  return Effect.succeed(FakeHttp.reply(200, { status: "ok" }))
}

const always = (step: Step): Handler => () => Effect.succeed(step)
const answer = (text: string): Handler => (request) => Effect.succeed(FakeHttp.reply(200, rpcAnswer(text, field(request.body, "id"))))

const stack = (peer: Handler, options: Partial<DelegationsLayer.Options> = {}, discovered?: string) =>
  DelegationsLayer.layer({
    workspaceId: "ws-self",
    platformUrl: PLATFORM,
    platformToken: TOKEN,
    retryDelay: "5 seconds",
    protocol: "0.3",
    ...options
  }).pipe(Layer.provideMerge(FakeHttp.layer(network(peer, discovered))))

const peerPosts = Effect.map(FakeHttp.requests, (all) => all.filter((r) => r.url.startsWith("http://peer:8000/")))

/** Yields until the TestClock has a sleep that ends at `millis` (the program is then parked on it). */
const untilSleepAt = (millis: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if (Chunk.toReadonlyArray(yield* TestClock.sleeps()).includes(millis)) return
      yield* TestClock.adjust(0)
    }
    return yield* Effect.dieMessage(`no sleep ending at ${millis} ms was scheduled`)
  })

/** Yields until the peer has received `n` POSTs. */
const untilPeerPosts = (n: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if ((yield* peerPosts).length >= n) return
      yield* TestClock.adjust(0)
    }
    return yield* Effect.dieMessage(`the peer never got ${n} POST(s)`)
  })

const tracing = () => {
  const exporter = new InMemorySpanExporter()
  const layer = NodeSdk.layer(() => ({ resource: { serviceName: "hostile-test" }, spanProcessor: new SimpleSpanProcessor(exporter) }))
  return { exporter, layer }
}

/** `delegate` as an untyped caller (JavaScript, a tool call) reaches it. */
const delegateUnknown = (input: unknown) =>
  Effect.flatMap(Delegations, (d) => d.delegate(input as DelegateRequest))

const invalid = (input: unknown) => Effect.flip(delegateUnknown(input)) as Effect.Effect<InvalidDelegation, unknown, Delegations>

// --- real sockets ----------------------------------------------------------------------------------

type RawHandler = (req: Http.IncomingMessage, res: Http.ServerResponse, body: string) => void

/**
 * A raw HTTP server on 127.0.0.1 that is both the platform (discovery, mirror) and the peer
 * (`POST /a2a`, answered by `peer`), for the current scope.
 */
const rawWorld = (
  peer: RawHandler,
  options: {
    readonly discovered?: (base: string) => string
    /** While true, the platform's mirror routes (record, update, notify) never answer. */
    readonly mirrorHangs?: () => boolean
  } = {}
) =>
  Effect.acquireRelease(
    Effect.async<{
      readonly url: string
      readonly server: Http.Server
      readonly peerHits: () => number
      readonly paths: () => ReadonlyArray<string>
    }>((resume) => {
      let peerHits = 0
      const paths: Array<string> = []
      const server = Http.createServer((req, res) => {
        paths.push(req.url ?? "")
        const chunks: Array<Buffer> = []
        req.on("data", (chunk: Buffer) => chunks.push(chunk))
        req.on("end", () => {
          const body = Buffer.concat(chunks).toString("utf8")
          const { port } = server.address() as AddressInfo
          const base = `http://127.0.0.1:${port}`
          if (req.url?.startsWith("/registry/discover/") === true) {
            res.writeHead(200, { "content-type": "application/json" })
            res.end(JSON.stringify({ id: "target", url: options.discovered?.(base) ?? `${base}/a2a` }))
          } else if (req.url === "/a2a") {
            peerHits++
            peer(req, res, body)
          } else if (options.mirrorHangs?.() !== true) {
            res.writeHead(200, { "content-type": "application/json" })
            res.end("{}")
          }
        })
      })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({ url: `http://127.0.0.1:${port}`, server, peerHits: () => peerHits, paths: () => [...paths] }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

const rawHost = (
  platformUrl: string,
  client: Layer.Layer<HttpClient.HttpClient>,
  options: Partial<DelegationsLayer.Options> = {}
) =>
  start(
    DelegationsLayer.layer({
      workspaceId: "ws-self",
      platformUrl,
      platformToken: TOKEN,
      protocol: "0.3",
      retryAttempts: 1,
      timeout: "2 seconds",
      mirrorTimeout: "1 second",
      ...options
    }).pipe(Layer.provide(client))
  )

const rpcId = (body: string): unknown => field(JSON.parse(body), "id")

const CLIENTS: ReadonlyArray<readonly [string, Layer.Layer<HttpClient.HttpClient>]> = [
  ["NodeHttpClientPooled", NodeHttpClientPooled.layer()],
  ["NodeHttpClient.layerUndici", NodeHttpClient.layerUndici]
]

const gc = (): (() => void) => {
  setFlagsFromString("--expose-gc")
  return runInNewContext("gc") as () => void
}

// --- bad input -------------------------------------------------------------------------------------

describe("bad input: a typed InvalidDelegation, nothing stored, nothing sent", () => {
  const inputs: ReadonlyArray<readonly [string, unknown]> = [
    ["null", null],
    ["undefined", undefined],
    ["a string", "ws-peer: do it"],
    ["a number", 42],
    ["an array", [{ workspaceId: "target", task: "t" }]]
  ]
  for (const [name, input] of inputs) {
    it.effect(`delegate(${name}) fails with InvalidDelegation (request)`, () =>
      Effect.gen(function*() {
        const error = yield* invalid(input)
        expect(error._tag).toBe("InvalidDelegation")
        expect(error.field).toBe("request")
        expect(yield* Effect.flatMap(Delegations, (d) => d.list)).toEqual([])
        expect(yield* FakeHttp.requests).toEqual([])
      }).pipe(Effect.provide(stack(answer("ok")))))
  }

  const rules: ReadonlyArray<readonly [string, Partial<Record<"workspaceId" | "task", unknown>>, string, string]> = [
    ["a missing workspace id", { task: "t" }, "workspaceId", "required"],
    ["a workspace id that is not a string", { workspaceId: 7, task: "t" }, "workspaceId", "required"],
    ["a workspace id over 128 characters", { workspaceId: "a".repeat(129), task: "t" }, "workspaceId", "max_length"],
    ["a workspace id with a slash", { workspaceId: "a/b", task: "t" }, "workspaceId", "pattern"],
    ["a workspace id with a percent sign", { workspaceId: "%2e%2e", task: "t" }, "workspaceId", "pattern"],
    ["the workspace id `.`", { workspaceId: ".", task: "t" }, "workspaceId", "pattern"],
    ["the workspace id `..`", { workspaceId: "..", task: "t" }, "workspaceId", "pattern"],
    ["this workspace's own id", { workspaceId: "ws-self", task: "t" }, "workspaceId", "self_delegation"],
    ["a blank task", { workspaceId: "target", task: "  " }, "task", "required"],
    ["a task that is not a string", { workspaceId: "target", task: { text: "t" } }, "task", "required"],
    ["a task over 1 MiB of UTF-8", { workspaceId: "target", task: "é".repeat(600_000) }, "task", "max_bytes"]
  ]
  for (const [name, input, fieldName, rule] of rules) {
    it.effect(`${name} is InvalidDelegation (${fieldName}, ${rule})`, () =>
      Effect.gen(function*() {
        const error = yield* invalid(input)
        expect(error.field).toBe(fieldName)
        expect(error.rule).toBe(rule)
        expect(yield* Effect.flatMap(Delegations, (d) => d.list)).toEqual([])
        expect(yield* FakeHttp.requests).toEqual([])
      }).pipe(Effect.provide(stack(answer("ok")))))
  }

  it.effect("the request is read once: a getter that changes its value after the check cannot redirect the delegation", () =>
    Effect.gen(function*() {
      let reads = 0
      const request = {
        get workspaceId() {
          reads++
          return reads === 1 ? "target" : ".."
        },
        task: "hi"
      }
      const d = yield* Delegations
      const id = yield* delegateUnknown(request)
      const done = yield* d.awaitSettled(id)
      expect(reads).toBe(1)
      expect(done.workspaceId).toBe("target")
      expect(done.status).toBe("completed")
      const paths = (yield* FakeHttp.requests).map((r) => new URL(r.url).pathname)
      expect(paths).toContain("/registry/discover/target")
      expect(paths.some((p) => p.includes(".."))).toBe(false)
    }).pipe(Effect.provide(stack(answer("ok")))))

  it.effect("a getter that throws is InvalidDelegation (request), not a defect", () =>
    Effect.gen(function*() {
      const request = {
        get workspaceId(): string {
          throw new Error("hostile getter")
        },
        task: "hi"
      }
      const error = yield* invalid(request)
      expect(error.field).toBe("request")
      expect(yield* FakeHttp.requests).toEqual([])
    }).pipe(Effect.provide(stack(answer("ok")))))

  it.effect("WORKSPACE_ID `..` fails the layer with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(DelegationsLayer.layer({ workspaceId: "..", platformUrl: PLATFORM })))
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(String(error)).toContain("WORKSPACE_ID")
    }).pipe(Effect.scoped, Effect.provide(FakeHttp.layer(always(FakeHttp.reply(200, {}))))))
})

// --- every path segment is safe by construction --------------------------------------------------------

describe("URLs the library builds: every segment percent-encoded, dot segments refused", () => {
  const platformClient = PlatformHttpClient.layer({
    platformUrl: PLATFORM,
    workspaceId: "ws-self",
    platformToken: Option.none(),
    orgId: Option.none()
  })
  const discoveryLayer = DiscoveryHttp.layer({ timeout: "10 seconds" }).pipe(
    Layer.provide(platformClient),
    Layer.provideMerge(FakeHttp.layer(always(FakeHttp.reply(200, { url: PEER_URL }))))
  )

  for (const id of [".", ".."]) {
    it.effect(`DiscoveryHttp refuses ${JSON.stringify(id)} (InvalidWorkspaceId) and sends nothing`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.flatMap(Discovery, (d) => d.resolve(id)))
        expect(error.reason).toBe("InvalidWorkspaceId")
        expect(yield* FakeHttp.requests).toEqual([])
      }).pipe(Effect.provide(discoveryLayer)))

    it.effect(`DiscoveryProxy refuses ${JSON.stringify(id)} (InvalidWorkspaceId)`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Effect.flatMap(Discovery, (d) => d.resolve(id)))
        expect(error.reason).toBe("InvalidWorkspaceId")
      }).pipe(Effect.provide(DiscoveryProxy.layer({ platformUrl: PLATFORM }))))
  }

  it.effect("a discovery id with / ? # and dots is one encoded segment", () =>
    Effect.gen(function*() {
      yield* Effect.flatMap(Discovery, (d) => d.resolve("../a/b?c#d"))
      const [request] = yield* FakeHttp.requests
      expect(new URL(request!.url).pathname).toBe("/registry/discover/..%2Fa%2Fb%3Fc%23d")
      const proxied = yield* Effect.provide(
        Effect.flatMap(Discovery, (d) => d.resolve("../a")),
        DiscoveryProxy.layer({ platformUrl: PLATFORM })
      )
      expect(new URL(proxied.url).pathname).toBe("/workspaces/..%2Fa/a2a")
    }).pipe(Effect.provide(discoveryLayer)))

  it.effect("the mirror refuses to update a delegation id `..` (InvalidUrl) and sends nothing", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const error = yield* Effect.flip(mirror.update({ delegationId: "..", status: "failed", error: "", responsePreview: "" }))
      expect(error.reason).toBe("InvalidUrl")
      yield* mirror.update({ delegationId: "a/..", status: "failed", error: "", responsePreview: "" })
      const urls = (yield* FakeHttp.requests).map((r) => new URL(r.url).pathname)
      // `a/..` is one segment, `a%2F..`: no parser resolves it away.
      expect(urls).toEqual(["/workspaces/ws-self/delegations/a%2F../update"])
    }).pipe(Effect.provide(
      PlatformMirrorHttp.layer().pipe(
        Layer.provide(platformClient),
        Layer.provideMerge(FakeHttp.layer(always(FakeHttp.reply(200, {}))))
      )
    )))
})

// --- hostile peers over the fake network -----------------------------------------------------------------

describe("hostile peers (fake network)", () => {
  it.effect("Retry-After: 86400 waits the 60 s cap, not a day", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* untilSleepAt(60_000)
      expect(Chunk.toReadonlyArray(yield* TestClock.sleeps())).not.toContain(86_400_000)
      yield* TestClock.adjust("60 seconds")
      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("completed")
      expect(done.attempts).toBe(2)
    }).pipe(Effect.provide(stack((request, previous) =>
      previous.length === 0
        ? Effect.succeed(FakeHttp.reply(503, { error: "busy" }, { "Retry-After": "86400" }))
        : answer("later")(request, previous)
    ))))

  it.effect("a retry_after body field of a day waits the cap too; the cap is DELEGATION_RETRY_AFTER_MAX", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* untilSleepAt(7_000)
      yield* TestClock.adjust("7 seconds")
      expect((yield* Fiber.join(fiber)).status).toBe("completed")
    }).pipe(Effect.provide(stack(
      (request, previous) =>
        previous.length === 0
          ? Effect.succeed(FakeHttp.reply(429, { error: "slow down", retry_after: 86_400 }))
          : answer("later")(request, previous),
      { retryAfterMax: 7 }
    ))))

  it.effect("Retry-After never waits past the delegation's own DELEGATION_TIMEOUT", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* untilSleepAt(20_000)
      yield* TestClock.adjust("20 seconds")
      expect((yield* Fiber.join(fiber)).status).toBe("completed")
    }).pipe(Effect.provide(stack(
      (request, previous) =>
        previous.length === 0
          ? Effect.succeed(FakeHttp.reply(503, { error: "busy" }, { "Retry-After": "86400" }))
          : answer("later")(request, previous),
      { timeout: 20, retryDelay: "1 second" }
    ))))

  it.effect("DELEGATION_RETRY_AFTER_MAX 0 fails the layer with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Layer.build(DelegationsLayer.layer({ workspaceId: "ws-self", retryAfterMax: 0 })))
      expect(String(error)).toContain("DELEGATION_RETRY_AFTER_MAX")
    }).pipe(Effect.scoped, Effect.provide(FakeHttp.layer(always(FakeHttp.reply(200, {}))))))

  it.effect("PLATFORM_RATE_LIMIT 0 (or a fraction) fails the layer with a ConfigError naming it", () =>
    Effect.gen(function*() {
      for (const platformRateLimit of [0, 2.5]) {
        const error = yield* Effect.flip(Layer.build(DelegationsLayer.layer({ workspaceId: "ws-self", platformRateLimit })))
        expect(String(error)).toContain("PLATFORM_RATE_LIMIT")
      }
    }).pipe(Effect.scoped, Effect.provide(FakeHttp.layer(always(FakeHttp.reply(200, {}))))))

  it.effect("a non-http peer URL is a DiscoveryError (InvalidUrl); nothing reaches any peer", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
      expect(done.status).toBe("failed")
      expect(done.cause?._tag).toBe("DiscoveryError")
      expect(yield* peerPosts).toEqual([])
    }).pipe(Effect.provide(stack(answer("ok"), {}, "file:///etc/passwd"))))

  it.effect("a discovered URL with a password: the password is in no stored field, span attribute, log line or peer request", () => {
    const { exporter, layer } = tracing()
    const logs = captureLogs()
    return Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const done = yield* d.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(JSON.stringify(done)).not.toContain("hunter2")
      expect(JSON.stringify(done.cause)).toContain("http://peer:8000/a2a")
      const spans = exporter.getFinishedSpans()
      const delegate = spans.find((s) => s.name === "task_delegate")!
      expect(delegate.attributes["a2a.peer_url"]).toBe("http://peer:8000/a2a")
      expect(JSON.stringify(spans.map((s) => [s.attributes, s.events]))).not.toContain("hunter2")
      expect(JSON.stringify(logs.lines)).not.toContain("hunter2")
      for (const post of yield* peerPosts) {
        expect(post.url).toBe(PEER_URL)
        expect(post.headers["authorization"]).toBeUndefined()
      }
    }).pipe(Effect.provide(Layer.mergeAll(
      stack(always(FakeHttp.reply(500, { error: "no" })), { retryAttempts: 1 }, "http://admin:hunter2@peer:8000/a2a"),
      layer,
      logs.layer,
      Logger.minimumLogLevel(LogLevel.All)
    )))
  })

  const endings: ReadonlyArray<readonly [string, Step, string]> = [
    ["malformed JSON", FakeHttp.reply(200, "{not json"), "A2AResponseError"],
    ["a JSON-RPC error", FakeHttp.reply(200, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "nope" } }), "JsonRpcError"],
    ["a reset connection (every attempt)", "reset", "A2ATransportError"],
    ["a refused connection (every attempt)", "refused", "A2ATransportError"],
    ["a 302 redirect (not followed)", FakeHttp.reply(302, "", { location: "http://elsewhere/steal" }), "A2AResponseError"]
  ]
  for (const [name, step, tag] of endings) {
    it.effect(`${name} ends the delegation failed (${tag})`, () =>
      Effect.gen(function*() {
        const d = yield* Delegations
        const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
        expect(done.status).toBe("failed")
        expect(done.cause?._tag).toBe(tag)
        expect((yield* FakeHttp.requests).some((r) => r.url.startsWith("http://elsewhere"))).toBe(false)
      }).pipe(Effect.provide(stack(always(step), { retryAttempts: 2, retryDelay: 0 }))))
  }

  const big = "x".repeat(1024 * 1024)
  const excerpts: ReadonlyArray<readonly [string, Step, (done: Delegation) => void]> = [
    ["a 1 MB {\"error\"} text on a 500", FakeHttp.reply(500, { error: big }), (done) => {
      expect(done.cause?._tag).toBe("A2AResponseError")
      expect(done.error!.length).toBeLessThan(300)
    }],
    [
      "a JSON-RPC error with a 1 MB message and 1 MB of data",
      FakeHttp.reply(200, { jsonrpc: "2.0", id: null, error: { code: -32000, message: big, data: { blob: big } } }),
      (done) => {
        const cause = done.cause!
        if (cause._tag !== "JsonRpcError") throw new Error(`expected JsonRpcError, got ${cause._tag}`)
        expect(cause.code).toBe(-32000)
        expect(cause.rpcMessage.length).toBeLessThanOrEqual(1003)
        expect(cause.data).toBeUndefined()
      }
    ],
    ["an agent error of 1 MB", FakeHttp.reply(200, rpcAnswer(`Agent error: ${big}`, null)), (done) => {
      expect(done.cause?._tag).toBe("PeerTaskFailed")
      expect(done.error!.length).toBeLessThan(2100)
    }]
  ]
  for (const [name, step, check] of excerpts) {
    it.effect(`${name}: the stored failure keeps an excerpt`, () =>
      Effect.gen(function*() {
        const d = yield* Delegations
        const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
        expect(done.status).toBe("failed")
        check(done)
        expect(JSON.stringify(done).length).toBeLessThan(8 * 1024)
      }).pipe(Effect.provide(stack(always(step), { retryAttempts: 1 }))))
  }

  it.effect("the platform token is in no log line, span, audit line, stored error or peer request", () => {
    const { exporter, layer } = tracing()
    const logs = captureLogs()
    return Effect.gen(function*() {
      const d = yield* Delegations
      const failed = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "fail" }))
      const completed = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "ok" }))
      expect(failed.status).toBe("failed")
      expect(completed.status).toBe("completed")
      expect(JSON.stringify([failed, completed])).not.toContain(TOKEN)
      expect(JSON.stringify(logs.lines)).not.toContain(TOKEN)
      expect(logs.lines.some((l) => l.message.includes("delegat"))).toBe(true)
      const spans = exporter.getFinishedSpans()
      expect(JSON.stringify(spans.map((s) => [s.name, s.attributes, s.events, s.status]))).not.toContain(TOKEN)
      const all = yield* FakeHttp.requests
      for (const post of all.filter((r) => r.url.startsWith("http://peer:8000/"))) {
        expect(JSON.stringify(post)).not.toContain(TOKEN)
      }
      // The platform does get it: the check above is not vacuous.
      expect(all.some((r) => r.headers["authorization"] === `Bearer ${TOKEN}`)).toBe(true)
    }).pipe(Effect.provide(Layer.mergeAll(
      stack(
        (request) =>
          Effect.succeed(
            JSON.stringify(request.body).includes("fail")
              ? FakeHttp.reply(500, { error: `rejected ${TOKEN.length}` })
              : FakeHttp.reply(200, rpcAnswer("ok", field(request.body, "id")))
          ),
        { retryAttempts: 1, auditLogLevel: LogLevel.Info }
      ),
      layer,
      logs.layer,
      Logger.minimumLogLevel(LogLevel.All)
    )))
  })
})

// --- hostile peers over real sockets ------------------------------------------------------------------

/** Answers a JSON-RPC message with `text`, echoing the request's id. */
const rawAnswer = (text: string): RawHandler => (_req, res, body) => {
  res.writeHead(200, { "content-type": "application/json" })
  res.end(JSON.stringify(rpcAnswer(text, rpcId(body))))
}

describe("hostile peers (real sockets)", () => {
  for (const [name, client] of CLIENTS) {
    it.scopedLive(`${name}: a peer that never answers fails the delegation with a Timeout`, () =>
      Effect.gen(function*() {
        const world = yield* rawWorld(() => {})
        const d = yield* rawHost(world.url, client, { timeout: "300 millis" })
        const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
        expect(done.status).toBe("failed")
        expect(done.cause?._tag).toBe("A2ATransportError")
        expect(done.error).toContain("timed out")
      }))

    it.scopedLive(`${name}: a connection reset mid-answer fails the delegation (ConnectionReset)`, () =>
      Effect.gen(function*() {
        const world = yield* rawWorld((req, res) => {
          res.writeHead(200, { "content-type": "application/json" })
          res.write("{\"jsonrpc\":")
          req.socket.destroy()
        })
        const d = yield* rawHost(world.url, client)
        const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
        expect(done.status).toBe("failed")
        expect(done.cause?._tag).toBe("A2ATransportError")
      }))

    it.scopedLive(`${name}: a redirect is not followed; the delegation fails and the target is never asked`, () =>
      Effect.gen(function*() {
        let stolen = 0
        const thief = yield* rawWorld(() => {
          stolen++
        })
        const world = yield* rawWorld((_req, res) => {
          res.writeHead(307, { location: `${thief.url}/a2a` })
          res.end()
        })
        const d = yield* rawHost(world.url, client)
        const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
        expect(done.status).toBe("failed")
        expect(stolen).toBe(0)
        expect(thief.peerHits()).toBe(0)
      }))

    it.scopedLive(`${name}: failed delegations keep an excerpt of a 20 MB error page, not the page (heap after GC)`, () =>
      Effect.gen(function*() {
        const page = `<html>${"x".repeat(20 * 1024 * 1024)}</html>`
        const world = yield* rawWorld((_req, res) => {
          res.writeHead(500, { "content-type": "text/html" })
          res.end(page)
        })
        const d = yield* rawHost(world.url, client)
        const collect = gc()
        // A first delegation warms the client and the code paths, so the baseline has them.
        yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "warm" }))
        collect()
        const before = process.memoryUsage().heapUsed
        const done: Array<Delegation> = []
        for (let i = 0; i < 3; i++) done.push(yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: `t${i}` })))
        yield* Effect.sleep("50 millis")
        collect()
        const grown = process.memoryUsage().heapUsed - before
        for (const delegation of done) {
          expect(delegation.status).toBe("failed")
          expect(delegation.error!.length).toBeLessThan(400)
        }
        // Three pages held would be +60 MB.
        expect(grown).toBeLessThan(15 * 1024 * 1024)
      }), 60_000)

    it.effect(`${name}: a drip-fed reply (1 byte / 300 ms) fails within DELEGATION_TIMEOUT + slack`, () =>
      Effect.gen(function*() {
        const world = yield* rawWorld((_req, res, body) => {
          const whole = JSON.stringify(rpcAnswer("slow", rpcId(body)))
          res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(whole)) })
          let i = 0
          const timer = setInterval(() => {
            if (res.destroyed || i >= whole.length) return clearInterval(timer)
            res.write(whole[i++])
          }, 300)
        })
        const d = yield* rawHost(world.url, client, { timeout: "2 seconds" })
        const started = Date.now()
        const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
        expect(done.status).toBe("failed")
        expect(done.cause?._tag).toBe("A2ATransportError")
        expect(Date.now() - started).toBeLessThan(3_000)
      }).pipe(Effect.scoped, (effect) => Effect.withClock(effect, Clock.make())))

    it.effect(`${name}: a 100 MB reply fails with the size error; RSS grows by less than 3x the limit`, () =>
      Effect.gen(function*() {
        const chunk = Buffer.alloc(1024 * 1024, "a")
        const world = yield* rawWorld((_req, res, body) => {
          res.writeHead(200, { "content-type": "application/json" })
          res.write(`{"jsonrpc":"2.0","id":${JSON.stringify(rpcId(body))},"result":{"kind":"message","role":"agent","messageId":"m","parts":[{"kind":"text","text":"`)
          let sent = 0
          const more = () => {
            while (sent < 100 && res.write(chunk)) sent++
            if (sent < 100) res.once("drain", () => { sent++; more() })
            else res.end("\"}]}}")
          }
          more()
        })
        const d = yield* rawHost(world.url, client)
        gc()()
        const before = process.memoryUsage().rss
        const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
        expect(done.status).toBe("failed")
        expect(done.result).toBeUndefined()
        expect(done.cause?._tag === "A2AResponseError" && done.cause.reason).toBe("TooLarge")
        expect(process.memoryUsage().rss - before).toBeLessThan(3 * 10 * 1024 * 1024)
      }).pipe(Effect.scoped, (effect) => Effect.withClock(effect, Clock.make())))
  }

  it.scopedLive("a peer that answers: the matrix's real-socket world is sound (control)", () =>
    Effect.gen(function*() {
      const world = yield* rawWorld(rawAnswer("fine"))
      const d = yield* rawHost(world.url, NodeHttpClientPooled.layer())
      const done = yield* d.awaitSettled(yield* d.delegate({ workspaceId: "target", task: "hi" }))
      expect(done.status).toBe("completed")
      expect(done.result).toBe("fine")
    }))
})

// --- closing ----------------------------------------------------------------------------------------

describe("closing against a hung platform", () => {
  it.scopedLive("1,000 delegations in flight: closing returns within DELEGATION_SHUTDOWN_TIMEOUT (+ slack), each recorded failed (interrupted)", () =>
    Effect.gen(function*() {
      let hung = false
      const world = yield* rawWorld(() => {}, { mirrorHangs: () => hung })
      const logs = captureLogs()
      // The client outlives the layer, as a host's does: what is measured is the layer's own close.
      const client = yield* Layer.build(NodeHttpClientPooled.layer())
      const scope = yield* Scope.make()
      const d = yield* Layer.buildWithScope(
        DelegationsLayer.layer({
          workspaceId: "ws-self",
          platformUrl: world.url,
          platformToken: TOKEN,
          protocol: "0.3",
          retryAttempts: 1,
          history: 1000,
          timeout: "60 seconds",
          mirrorTimeout: "10 seconds",
          shutdownTimeout: "1 second"
        }).pipe(Layer.provide(Layer.succeedContext(client)), Layer.provide(logs.layer)),
        scope
      ).pipe(Effect.map(Context.get(Delegations)))
      const ids = yield* Effect.forEach(Array.from({ length: 1000 }, (_, i) => i), (i) =>
        d.delegate({ workspaceId: "target", task: `task ${i}` }))
      const recorded = () => world.paths().filter((p) => p.endsWith("/delegations/record")).length
      yield* eventually(Effect.sync(recorded), (n) => n === 1000, "1,000 platform records", "20 seconds")
      yield* eventually(d.list, (all) => all.every((x) => x.status === "in_progress"), "1,000 in progress", "20 seconds")
      expect(yield* d.running).toBe(1000)

      hung = true
      const started = Date.now()
      yield* Scope.close(scope, Exit.void)
      const took = Date.now() - started

      // The bound plus slack for aborting 2,000 requests on a shared machine; without the bound it was
      // the 10 s mirror timeout times the rounds of 1,000 updates through 256 sockets.
      expect(took).toBeLessThan(1000 + 4000)
      const states = yield* Effect.forEach(ids, (id) => d.status(id))
      for (const state of states) {
        expect(state.status).toBe("failed")
        expect(state.cause?._tag).toBe("DelegationAborted")
        expect(state.error).toContain("interrupted")
      }
      expect(logs.lines.some((l) => l.level === "WARN" && l.message.includes("DELEGATION_SHUTDOWN_TIMEOUT"))).toBe(true)
    }), 60_000)

  /** A stack over the fake network in the context, built in `scope`, closing its own way. */
  const closable = (scope: Scope.Scope, logs: ReturnType<typeof captureLogs>) =>
    Layer.buildWithScope(
      DelegationsLayer.layer({
        workspaceId: "ws-self",
        platformUrl: PLATFORM,
        platformToken: TOKEN,
        protocol: "0.3",
        mirrorTimeout: 10,
        shutdownTimeout: 1
      }).pipe(Layer.provide(logs.layer)),
      scope
    ).pipe(Effect.map(Context.get(Delegations)))

  /** Peers never answer; the platform's update and notify answer unless `hangs`. */
  const closingNetwork = (hangs: boolean) =>
    FakeHttp.layer((request, previous) => {
      const path = new URL(request.url).pathname
      if (hangs && (path.endsWith("/update") || path.endsWith("/notify"))) return Effect.never
      return network(() => Effect.never)(request, previous)
    })

  for (const hangs of [false, true]) {
    it.effect(hangs
      ? "a platform that hangs while closing: closing ends at the 1 s bound, not the 10 s mirror timeout; one warning"
      : "a platform that answers while closing: update and notify are sent, nothing abandoned", () =>
      Effect.gen(function*() {
        const logs = captureLogs()
        const scope = yield* Scope.make()
        const d = yield* closable(scope, logs)
        const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
        yield* untilPeerPosts(1)
        const waiting = yield* Effect.fork(d.await(id))
        const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        // A caller of `await` gets the recorded state by the time closing returns.
        expect(Option.map(yield* Fiber.poll(waiting), Exit.isSuccess)).toEqual(Option.some(true))
        expect((yield* Fiber.join(waiting)).status).toBe("failed")
        const state = yield* d.status(id)
        expect(state.status).toBe("failed")
        expect(state.cause?._tag).toBe("DelegationAborted")
        const paths = (yield* FakeHttp.requests).map((r) => new URL(r.url).pathname)
        expect(paths.filter((p) => p.endsWith("/update") || p.endsWith("/notify"))).toHaveLength(hangs ? 1 : 2)
        expect(logs.lines.some((l) => l.message.includes("DELEGATION_SHUTDOWN_TIMEOUT"))).toBe(hangs)
      }).pipe(Effect.provide(closingNetwork(hangs))))
  }
})
