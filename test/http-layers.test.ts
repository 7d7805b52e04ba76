import { HttpClientError } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransport,
  A2ATransportError,
  AuditMemory,
  DiscoveryTest,
  PlatformMirrorTest,
  RbacTest,
  A2ATransportHttp,
  DelegationsLayer,
  DelegationsLive,
  Delegations,
  Discovery,
  DiscoveryHttp,
  PeerEndpoint,
  PlatformMirror,
  PlatformMirrorHttp,
  PlatformHttpClient
} from "effect-a2a-delegation"
import type { PeerProtocol, SendMessage } from "effect-a2a-delegation"
import { Chunk, ConfigError, ConfigProvider, Effect, Fiber, Layer, Option, Redacted, Schema, TestClock } from "effect"
import * as Http from "./fixtures/http.js"
import { settings } from "./fixtures/layers.js"
import type { Handler, Recorded, Step } from "./fixtures/http.js"

// --- helpers -------------------------------------------------------------------------------------

const PLATFORM = "http://platform:8080"
const PEER_URL = "http://peer:8000/a2a"
const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

/** Reads a nested field of a JSON value. */
const get = (value: unknown, ...path: ReadonlyArray<string | number>): unknown => {
  let current = value
  for (const key of path) {
    if (typeof current !== "object" || current === null) return undefined
    current = (current as Record<string | number, unknown>)[key]
  }
  return current
}

/** Narrows a tagged union, failing the test when the tag differs. */
const narrow = <T extends { readonly _tag: string }, K extends T["_tag"]>(
  value: T,
  tag: K
): Extract<T, { readonly _tag: K }> => {
  if (value._tag !== tag) throw new Error(`expected ${tag}, got ${value._tag}`)
  return value as Extract<T, { readonly _tag: K }>
}

const always = (step: Step): Handler => () => Effect.succeed(step)

/** Yields until the TestClock has a sleep that ends at `millis` (the program is then parked on it). */
const untilSleepAt = (millis: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      const sleeps = yield* TestClock.sleeps()
      if (Chunk.toReadonlyArray(sleeps).includes(millis)) return
      yield* TestClock.adjust(0)
    }
    return yield* Effect.dieMessage(`no sleep ending at ${millis} ms was scheduled`)
  })

const lonelySurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

// --- A2ATransportHttp ----------------------------------------------------------------------------

const transportLayer = (handler: Handler) =>
  A2ATransportHttp.layer({ workspaceId: "ws-self", timeout: "300 seconds" }).pipe(
    Layer.provideMerge(Http.layer(handler))
  )

const endpoint = new PeerEndpoint({ id: "target", url: PEER_URL })
/** These transport tests are about the v0.3 wire (test/a2a-v1-wire.test.ts has the 1.0 ones). */
const v03: PeerProtocol = { version: "0.3", url: PEER_URL, source: "pinned" }

const sendMessage: SendMessage = {
  endpoint,
  protocol: v03,
  messageId: "msg-1",
  requestId: "req-1",
  delegationId: "del-1",
  text: "hello peer",
  metadata: { parent_task_id: "del-1", source_workspace_id: "ws-self", traceparent: TRACEPARENT }
}

const send = Effect.flatMap(A2ATransport, (transport) => transport.send(sendMessage))
const sendWith = (step: Step) => send.pipe(Effect.provide(transportLayer(always(step))))
const sendFails = (step: Step) => Effect.flip(sendWith(step))

/** A transport that reaches peers through the platform's A2A proxy, over a fake network answering `step`. */
const proxyTransport = (step: Step) =>
  A2ATransportHttp.layer({ workspaceId: "ws-self", timeout: "300 seconds" }).pipe(
    Layer.provide(
      PlatformHttpClient.layer({ platformUrl: PLATFORM, workspaceId: "ws-self", platformToken: Option.none(), orgId: Option.none() })
    ),
    Layer.provideMerge(Http.layer(always(step)))
  )

/** The same message through the platform's A2A proxy (a proxy discovery's endpoint). */
const sendViaProxy = (step: Step) => {
  const url = `${PLATFORM}/workspaces/target/a2a`
  return Effect.flatMap(A2ATransport, (transport) =>
    transport.send({
      ...sendMessage,
      endpoint: new PeerEndpoint({ id: "target", url, viaPlatform: true }),
      protocol: { ...v03, url }
    })).pipe(Effect.provide(proxyTransport(step)))
}

/** The platform proxy's answer for a busy target it does not queue for. */
const PROXY_BUSY = Http.reply(
  503,
  { error: "workspace agent busy — retry after a short backoff", busy: true, retry_after: 30 },
  { "Retry-After": "30" }
)

const rpcResult = (result: unknown, id: unknown = "req-1") => ({ jsonrpc: "2.0", id, result })
const agentMessage = (text: string) => ({
  kind: "message",
  role: "agent",
  messageId: "answer-1",
  parts: [{ kind: "text", text }]
})

describe("A2ATransportHttp over HttpClient", () => {
  it.effect("posts the exact message/send JSON-RPC body with the workspace header and no bearer", () =>
    Effect.gen(function*() {
      const reply = yield* send
      expect(reply._tag).toBe("MessageReply")
      const all = yield* Http.requests
      expect(all).toHaveLength(1)
      const request = all[0]!
      expect(request.method).toBe("POST")
      expect(request.url).toBe(PEER_URL)
      expect(request.body).toStrictEqual({
        jsonrpc: "2.0",
        method: "message/send",
        id: "req-1",
        params: {
          message: {
            kind: "message",
            role: "user",
            messageId: "msg-1",
            parts: [{ kind: "text", text: "hello peer" }],
            metadata: { delegation_id: "del-1" }
          },
          metadata: { parent_task_id: "del-1", source_workspace_id: "ws-self", traceparent: TRACEPARENT }
        }
      })
      expect(request.headers["content-type"]).toBe("application/json")
      expect(request.headers["x-workspace-id"]).toBe("ws-self")
      expect(request.headers["authorization"]).toBeUndefined()
    }).pipe(Effect.provide(transportLayer(always(Http.reply(200, rpcResult(agentMessage("ok"))))))))

  it.effect("posts the exact tasks/get body and returns the task", () =>
    Effect.gen(function*() {
      const transport = yield* A2ATransport
      const reply = yield* transport.getTask({ endpoint, protocol: v03, requestId: "req-get-1", taskId: "task-9" })
      expect(reply.task.id).toBe("task-9")
      expect(reply.task.status.state).toBe("working")
      const [request] = yield* Http.requests
      expect(request!.method).toBe("POST")
      expect(request!.url).toBe(PEER_URL)
      expect(request!.body).toStrictEqual({
        jsonrpc: "2.0",
        id: "req-get-1",
        method: "tasks/get",
        params: { id: "task-9" }
      })
      expect(request!.headers["x-workspace-id"]).toBe("ws-self")
    }).pipe(Effect.provide(transportLayer(always(Http.reply(200, rpcResult({
      kind: "task",
      id: "task-9",
      status: { state: "working" }
    }, "req-get-1")))))))

  it.effect("200 with a Message result is a MessageReply", () =>
    Effect.gen(function*() {
      const reply = narrow(yield* sendWith(Http.reply(200, rpcResult(agentMessage("the answer")))), "MessageReply")
      expect(reply.message.parts).toStrictEqual([{ kind: "text", text: "the answer" }])
      expect(reply.message.role).toBe("agent")
    }))

  it.effect("200 with a Task result is a TaskReply", () =>
    Effect.gen(function*() {
      const reply = narrow(
        yield* sendWith(Http.reply(200, rpcResult({
          kind: "task",
          id: "task-1",
          contextId: "ctx-1",
          status: { state: "completed" },
          artifacts: [{ parts: [{ kind: "text", text: "done" }] }]
        }))),
        "TaskReply"
      )
      expect(reply.task.id).toBe("task-1")
      expect(reply.task.status.state).toBe("completed")
      expect(reply.task.artifacts[0]!.parts[0]!.text).toBe("done")
    }))

  it.effect("202 {queued: true} is a QueuedReply with the proxy's fields", () =>
    Effect.gen(function*() {
      const reply = narrow(
        yield* sendWith(Http.reply(202, { queued: true, queue_id: "q-7", queue_depth: 3, message: "peer busy" })),
        "QueuedReply"
      )
      expect(reply.queueId).toBe("q-7")
      expect(reply.queueDepth).toBe(3)
      expect(reply.message).toBe("peer busy")
    }))

  it.effect("202 without queued is UnexpectedAccepted", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails(Http.reply(202, { accepted: true })), "A2AResponseError")
      expect(error.reason).toBe("UnexpectedAccepted")
      expect(error.status).toBe(202)
      expect(error.url).toBe(PEER_URL)
    }))

  for (const status of [408, 429, 502, 503, 504]) {
    it.effect(`${status} is a retryable A2ATransportError (Status)`, () =>
      Effect.gen(function*() {
        const error = narrow(yield* sendFails(Http.reply(status, { error: "busy" })), "A2ATransportError")
        expect(error.reason).toBe("Status")
        expect(error.status).toBe(status)
        expect(error.detail).toBe("busy")
        expect(error.retryAfterMillis).toBeUndefined()
        expect(error.message).toBe(`Transport error: HTTP ${status} (busy)`)
      }))
  }

  it.effect("Retry-After in seconds becomes retryAfterMillis", () =>
    Effect.gen(function*() {
      const error = narrow(
        yield* sendFails(Http.reply(503, { error: "overloaded" }, { "Retry-After": "30" })),
        "A2ATransportError"
      )
      expect(error.status).toBe(503)
      expect(error.retryAfterMillis).toBe(30_000)
    }))

  it.effect("Retry-After as an HTTP date is measured from the Clock", () =>
    Effect.gen(function*() {
      yield* TestClock.setTime(1_000_000)
      const at = new Date(1_045_000).toUTCString()
      const error = narrow(yield* sendFails(Http.reply(429, "slow down", { "Retry-After": at })), "A2ATransportError")
      expect(error.status).toBe(429)
      expect(error.retryAfterMillis).toBe(45_000)
      expect(error.detail).toBe("slow down")
    }))

  it.effect("a retry_after body field (seconds) is used when there is no header", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails(Http.reply(429, { retry_after: 7 })), "A2ATransportError")
      expect(error.retryAfterMillis).toBe(7_000)
    }))

  it.effect("502 with delivery_confirmed is a DeliveryConfirmed response error, not retryable", () =>
    Effect.gen(function*() {
      const error = narrow(
        yield* sendFails(Http.reply(502, { delivery_confirmed: true, error: "upstream closed" })),
        "A2AResponseError"
      )
      expect(error.reason).toBe("DeliveryConfirmed")
      expect(error.status).toBe(502)
      expect(error.detail).toBe("upstream closed")
    }))

  it.effect("the platform proxy's 503 busy is a Busy response error, not retryable: the peer may have the request", () =>
    Effect.gen(function*() {
      const error = narrow(yield* Effect.flip(sendViaProxy(PROXY_BUSY)), "A2AResponseError")
      expect(error.reason).toBe("Busy")
      expect(error.status).toBe(503)
      expect(error.detail).toBe("workspace agent busy — retry after a short backoff")
      expect(error.message).toContain("not sent again")
    }))

  it.effect("a task read through the proxy answered 503 busy is asked again (a poll starts nothing)", () =>
    Effect.gen(function*() {
      const url = `${PLATFORM}/workspaces/target/a2a`
      const error = yield* Effect.flatMap(A2ATransport, (transport) =>
        transport.getTask({
          endpoint: new PeerEndpoint({ id: "target", url, viaPlatform: true }),
          protocol: { ...v03, url },
          requestId: "req-get",
          taskId: "task-1"
        })).pipe(Effect.flip, Effect.provide(proxyTransport(PROXY_BUSY)))
      expect(narrow(error, "A2ATransportError").status).toBe(503)
    }))

  it.effect("a peer's own 503 busy turned the request away at the door: retryable, after its Retry-After", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails(PROXY_BUSY), "A2ATransportError")
      expect(error.status).toBe(503)
      expect(error.retryAfterMillis).toBe(30_000)
    }))

  it.effect("the proxy's 503 restarting and 503 waking (not delivered) stay retryable, waking after its Retry-After", () =>
    Effect.gen(function*() {
      const restarting = narrow(
        yield* Effect.flip(sendViaProxy(
          Http.reply(503, { error: "workspace agent unreachable — container restart triggered", restarting: true })
        )),
        "A2ATransportError"
      )
      expect(restarting.status).toBe(503)
      const waking = narrow(
        yield* Effect.flip(sendViaProxy(Http.reply(
          503,
          { error: "workspace is waking from hibernation — retry in ~15 seconds", waking: true, retry_after: 15 },
          { "Retry-After": "15" }
        ))),
        "A2ATransportError"
      )
      expect(waking.retryAfterMillis).toBe(15_000)
    }))

  it.effect("500 {error} is a Status response error carrying the error text", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails(Http.reply(500, { error: "boom" })), "A2AResponseError")
      expect(error.reason).toBe("Status")
      expect(error.status).toBe(500)
      expect(error.detail).toBe("boom")
      expect(error.message).toBe("Peer answered HTTP 500: boom")
    }))

  for (const status of [404, 401]) {
    it.effect(`${status} is a Status response error`, () =>
      Effect.gen(function*() {
        const error = narrow(yield* sendFails(Http.reply(status, "nope")), "A2AResponseError")
        expect(error.reason).toBe("Status")
        expect(error.status).toBe(status)
        expect(error.detail).toBe("nope")
      }))
  }

  it.effect("200 with a non-JSON body is InvalidJson", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails(Http.reply(200, "<html>oops</html>")), "A2AResponseError")
      expect(error.reason).toBe("InvalidJson")
      expect(error.status).toBe(200)
    }))

  it.effect("200 with a JSON array is NotJsonRpc", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails(Http.reply(200, [rpcResult(agentMessage("x"))])), "A2AResponseError")
      expect(error.reason).toBe("NotJsonRpc")
    }))

  it.effect("200 with jsonrpc 1.0 is NotJsonRpc", () =>
    Effect.gen(function*() {
      const error = narrow(
        yield* sendFails(Http.reply(200, { jsonrpc: "1.0", id: "req-1", result: agentMessage("x") })),
        "A2AResponseError"
      )
      expect(error.reason).toBe("NotJsonRpc")
    }))

  it.effect("200 with neither result nor error is EmptyReply", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails(Http.reply(200, { jsonrpc: "2.0", id: "req-1" })), "A2AResponseError")
      expect(error.reason).toBe("EmptyReply")
    }))

  it.effect("a JSON-RPC error keeps its code and message", () =>
    Effect.gen(function*() {
      const error = narrow(
        yield* sendFails(Http.reply(200, {
          jsonrpc: "2.0",
          id: "req-1",
          error: { code: -32602, message: "Invalid params", data: { field: "parts" } }
        })),
        "JsonRpcError"
      )
      expect(error.code).toBe(-32602)
      expect(error.rpcMessage).toBe("Invalid params")
      expect(error.data).toStrictEqual({ field: "parts" })
      expect(error.message).toBe("JSON-RPC error -32602: Invalid params")
    }))

  it.effect("JSON-RPC -32601 hints at A2A v1.0", () =>
    Effect.gen(function*() {
      const error = narrow(
        yield* sendFails(Http.reply(200, {
          jsonrpc: "2.0",
          id: "req-1",
          error: { code: -32601, message: "Method not found" }
        })),
        "JsonRpcError"
      )
      expect(error.code).toBe(-32601)
      expect(error.rpcMessage).toBe("Method not found")
      expect(error.message).toContain("v1.0")
    }))

  it.effect("a reply to another id is IdMismatch", () =>
    Effect.gen(function*() {
      const error = narrow(
        yield* sendFails(Http.reply(200, rpcResult(agentMessage("x"), "someone-else"))),
        "A2AResponseError"
      )
      expect(error.reason).toBe("IdMismatch")
      expect(error.detail).toBe("sent req-1, got someone-else")
    }))

  it.effect("a refused connection is a ConnectionRefused transport error", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails("refused"), "A2ATransportError")
      expect(error.reason).toBe("ConnectionRefused")
      expect(error.url).toBe(PEER_URL)
      expect(error.status).toBeUndefined()
      expect(error.message).toContain("refused")
      expect(error.message).toContain("ECONNREFUSED 10.0.0.1:8000")
    }))

  it.effect("a reset connection is a ConnectionReset transport error", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails("reset"), "A2ATransportError")
      expect(error.reason).toBe("ConnectionReset")
      expect(error.message).toContain("connection reset")
    }))

  it.effect("a transport error keeps its cause: the HttpClientError and the Node error under it", () =>
    Effect.gen(function*() {
      const error = narrow(yield* sendFails("refused"), "A2ATransportError")
      const cause = error.cause
      expect(cause).toBeInstanceOf(HttpClientError.RequestError)
      if (!(cause instanceof HttpClientError.RequestError)) return
      expect(cause.reason).toBe("Transport")
      expect(cause.request.url).toBe(PEER_URL)
      expect(get(cause.cause, "code")).toBe("ECONNREFUSED")
      // serialised (the Delegation's cause, the audit log), the cause is its name and message
      const encoded = Schema.encodeSync(A2ATransportError)(error)
      expect(get(encoded, "cause", "name")).toBe("RequestError")
      expect(get(encoded, "cause", "message")).toContain(PEER_URL)
      expect(error.message).toBe("Transport error: connection refused (connect ECONNREFUSED 10.0.0.1:8000)")
    }))

  it.effect("an invalid peer URL is an A2ARequestError InvalidUrl: nothing is sent", () =>
    Effect.gen(function*() {
      const url = "http://exa mple.com/a2a"
      const error = yield* Effect.flip(
        Effect.flatMap(A2ATransport, (transport) =>
          transport.send({ ...sendMessage, endpoint: new PeerEndpoint({ id: "target", url }), protocol: { ...v03, url } }))
      )
      const invalid = narrow(error, "A2ARequestError")
      expect(invalid.reason).toBe("InvalidUrl")
      expect(invalid.url).toBe(url)
      expect(invalid.message).toBe(`Invalid peer URL "${url}" (Invalid URL)`)
      expect(invalid.cause).toBeInstanceOf(HttpClientError.RequestError)
      expect(yield* Http.requests).toEqual([])
    }).pipe(Effect.provide(transportLayer(always(Http.reply(200, rpcResult(agentMessage("never"))))))))

  it.effect("a peer that never answers is a Timeout transport error after the configured timeout", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip(send))
      yield* untilSleepAt(300_000)
      yield* TestClock.adjust("299999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const error = narrow(yield* Fiber.join(fiber), "A2ATransportError")
      expect(error.reason).toBe("Timeout")
    }).pipe(Effect.provide(transportLayer(() => Effect.never))))
})

// --- DiscoveryHttp -------------------------------------------------------------------------------

const platformSettings = {
  platformUrl: PLATFORM,
  workspaceId: "ws-self",
  platformToken: Option.some(Redacted.make("tok")),
  orgId: Option.some("org-1")
}

const discoveryLayer = (handler: Handler) =>
  DiscoveryHttp.layer({ timeout: "300 seconds" }).pipe(
    Layer.provide(PlatformHttpClient.layer(platformSettings)),
    Layer.provideMerge(Http.layer(handler))
  )

const resolve = (workspaceId: string) => Effect.flatMap(Discovery, (discovery) => discovery.resolve(workspaceId))
const resolveFails = (workspaceId: string, step: Step) =>
  Effect.flip(resolve(workspaceId)).pipe(Effect.provide(discoveryLayer(always(step))))

describe("DiscoveryHttp over HttpClient", () => {
  it.effect("GETs /registry/discover/{id} percent-encoded, with the platform headers", () =>
    Effect.gen(function*() {
      const peer = yield* resolve("a b/c")
      expect(peer).toBeInstanceOf(PeerEndpoint)
      expect(peer.id).toBe("a b/c")
      expect(peer.url).toBe(PEER_URL)
      expect(peer.name).toBe("Peer C")
      const all = yield* Http.requests
      expect(all).toHaveLength(1)
      const request = all[0]!
      expect(request.method).toBe("GET")
      expect(request.url).toBe(`${PLATFORM}/registry/discover/a%20b%2Fc`)
      expect(request.headers["x-workspace-id"]).toBe("ws-self")
      expect(request.headers["authorization"]).toBe("Bearer tok")
      expect(request.headers["x-molecule-org-id"]).toBe("org-1")
      expect(request.body).toBeUndefined()
    }).pipe(Effect.provide(discoveryLayer(always(Http.reply(200, { id: "a b/c", url: PEER_URL, name: "Peer C" }))))))

  it.effect("a non-200 answer is a Status error with the platform's error text", () =>
    Effect.gen(function*() {
      const error = yield* resolveFails("target", Http.reply(403, { error: "not authorized to discover target" }))
      expect(error.reason).toBe("Status")
      expect(error.status).toBe(403)
      expect(error.workspaceId).toBe("target")
      expect(error.message).toBe("Discovery failed: HTTP 403 (not authorized to discover target)")
    }))

  it.effect("a reply without url is NoUrl", () =>
    Effect.gen(function*() {
      const error = yield* resolveFails("target", Http.reply(200, { id: "target", name: "Target" }))
      expect(error.reason).toBe("NoUrl")
      expect(error.message).toBe("No URL for workspace target")
    }))

  it.effect("an empty or null url is NoUrl", () =>
    Effect.gen(function*() {
      const empty = yield* resolveFails("target", Http.reply(200, { id: "target", url: "" }))
      expect(empty.reason).toBe("NoUrl")
      expect(empty.message).toBe("No URL for workspace target")
      const nulled = yield* resolveFails("target", Http.reply(200, { id: "target", url: null }))
      expect(nulled.reason).toBe("NoUrl")
    }))

  for (const url of ["ftp://x", "not a url"]) {
    it.effect(`url ${JSON.stringify(url)} is InvalidUrl`, () =>
      Effect.gen(function*() {
        const error = yield* resolveFails("target", Http.reply(200, { id: "target", url }))
        expect(error.reason).toBe("InvalidUrl")
        expect(error.detail).toBe(url)
        expect(error.message).toContain(JSON.stringify(url))
      }))
  }

  it.effect("a refused connection is a Transport error", () =>
    Effect.gen(function*() {
      const error = yield* resolveFails("target", "refused")
      expect(error.reason).toBe("Transport")
      expect(error.message).toContain("refused")
      expect(error.cause).toBeInstanceOf(HttpClientError.RequestError)
      expect(get(error.cause, "cause", "code")).toBe("ECONNREFUSED")
    }))

  it.effect("a platform URL that does not parse is InvalidPlatformUrl, naming PLATFORM_URL; nothing is sent", () =>
    Effect.gen(function*() {
      const discovery = yield* DiscoveryHttp.make({ timeout: "300 seconds" }).pipe(
        Effect.provide(PlatformHttpClient.layer({ ...platformSettings, platformUrl: "http://plat form" }))
      )
      const error = yield* Effect.flip(discovery.resolve("target"))
      expect(error.reason).toBe("InvalidPlatformUrl")
      expect(error.detail).toBe("http://plat form/registry/discover/target")
      expect(error.message).toBe(
        `Discovery failed: the registry URL "http://plat form/registry/discover/target" does not parse; check PLATFORM_URL`
      )
      expect(error.cause).toBeInstanceOf(HttpClientError.RequestError)
      expect(yield* Http.requests).toEqual([])
    }).pipe(Effect.provide(Http.layer(always(Http.reply(200, {}))))))
})

// --- PlatformMirrorHttp --------------------------------------------------------------------------

const mirrorLayer = (handler: Handler) =>
  PlatformMirrorHttp.layer({ timeout: "10 seconds" }).pipe(
    Layer.provide(PlatformHttpClient.layer(platformSettings)),
    Layer.provideMerge(Http.layer(handler))
  )

const onlyRequest = Effect.map(Http.requests, (all) => {
  expect(all).toHaveLength(1)
  const request = all[0]!
  expect(request.headers["authorization"]).toBe("Bearer tok")
  expect(request.headers["x-molecule-org-id"]).toBe("org-1")
  return request
})

describe("PlatformMirrorHttp over HttpClient", () => {
  it.effect("record POSTs target_id, task and delegation_id", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      yield* mirror.record({ delegationId: "del-1", targetId: "target", task: "the full task" })
      const request = yield* onlyRequest
      expect(request.method).toBe("POST")
      expect(request.url).toBe(`${PLATFORM}/workspaces/ws-self/delegations/record`)
      expect(request.body).toStrictEqual({ target_id: "target", task: "the full task", delegation_id: "del-1" })
      expect(request.headers["content-type"]).toBe("application/json")
    }).pipe(Effect.provide(mirrorLayer(always(Http.reply(200, { ok: true }))))))

  it.effect("update POSTs status, error and a response_preview cut to 500 characters", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      yield* mirror.update({ delegationId: "del-1", status: "completed", error: "", responsePreview: "x".repeat(600) })
      const request = yield* onlyRequest
      expect(request.method).toBe("POST")
      expect(request.url).toBe(`${PLATFORM}/workspaces/ws-self/delegations/del-1/update`)
      expect(request.body).toStrictEqual({ status: "completed", error: "", response_preview: "x".repeat(500) })
    }).pipe(Effect.provide(mirrorLayer(always(Http.reply(200, {}))))))

  it.effect("response_preview is cut by code points, never splitting a surrogate pair", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      yield* mirror.update({
        delegationId: "del-1",
        status: "failed",
        error: "peer said no",
        responsePreview: "😀".repeat(600)
      })
      const request = yield* onlyRequest
      const preview = get(request.body, "response_preview")
      expect(typeof preview).toBe("string")
      const text = preview as string
      expect(Array.from(text)).toHaveLength(500)
      expect(text).toBe("😀".repeat(500))
      expect(lonelySurrogate.test(text)).toBe(false)
      expect(get(request.body, "status")).toBe("failed")
      expect(get(request.body, "error")).toBe("peer said no")
    }).pipe(Effect.provide(mirrorLayer(always(Http.reply(200, {}))))))

  it.effect("notify POSTs the chat message", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      yield* mirror.notify({
        delegationId: "del-1",
        targetId: "target",
        status: "completed",
        message: "Delegation del-1 to target completed."
      })
      const request = yield* onlyRequest
      expect(request.method).toBe("POST")
      expect(request.url).toBe(`${PLATFORM}/workspaces/ws-self/notify`)
      expect(request.body).toStrictEqual({
        message: "Delegation del-1 to target completed.",
        type: "delegation_complete",
        task_id: "del-1",
        target_workspace_id: "target",
        status: "completed"
      })
    }).pipe(Effect.provide(mirrorLayer(always(Http.reply(202, ""))))))

  it.effect("list GETs the delegation rows and decodes them", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const rows = yield* mirror.list
      expect(rows).toStrictEqual([
        { delegation_id: "del-2", type: "delegate", status: "completed", response_preview: "ok", target_id: "target" },
        { delegation_id: "del-1", status: "" }
      ])
      const request = yield* onlyRequest
      expect(request.method).toBe("GET")
      expect(request.url).toBe(`${PLATFORM}/workspaces/ws-self/delegations`)
      expect(request.body).toBeUndefined()
    }).pipe(Effect.provide(mirrorLayer(always(Http.reply(200, [
      { delegation_id: "del-2", type: "delegate", status: "completed", response_preview: "ok", target_id: "target" },
      { delegation_id: "del-1" }
    ]))))))

  it.effect("a list body that is not an array is a Decode error", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const error = yield* Effect.flip(mirror.list)
      expect(error.operation).toBe("list")
      expect(error.reason).toBe("Decode")
    }).pipe(Effect.provide(mirrorLayer(always(Http.reply(200, { delegations: [] }))))))

  it.effect("a 500 is a Status error", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const error = yield* Effect.flip(mirror.record({ delegationId: "del-1", targetId: "target", task: "t" }))
      expect(error.operation).toBe("record")
      expect(error.reason).toBe("Status")
      expect(error.status).toBe(500)
      expect(error.detail).toBe("db down")
    }).pipe(Effect.provide(mirrorLayer(always(Http.reply(500, { error: "db down" }))))))

  it.effect("an unreachable platform is a Transport error that keeps its cause", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const error = yield* Effect.flip(mirror.notify({ message: "m", delegationId: "del-1", targetId: "target", status: "completed" }))
      expect(error.operation).toBe("notify")
      expect(error.reason).toBe("Transport")
      expect(error.message).toBe(
        "Platform notify failed (Transport): connection refused (connect ECONNREFUSED 10.0.0.1:8000); check PLATFORM_URL (http://platform:8080)"
      )
      expect(error.cause).toBeInstanceOf(HttpClientError.RequestError)
      expect(get(error.cause, "cause", "code")).toBe("ECONNREFUSED")
    }).pipe(Effect.provide(mirrorLayer(always("refused")))))

  it.effect("a platform URL that does not parse is an InvalidUrl error naming PLATFORM_URL; nothing is sent", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirrorHttp.make().pipe(
        Effect.provide(PlatformHttpClient.layer({ ...platformSettings, platformUrl: "http://plat form" }))
      )
      const error = yield* Effect.flip(mirror.list)
      expect(error.operation).toBe("list")
      expect(error.reason).toBe("InvalidUrl")
      expect(error.message).toBe(
        "Platform list failed (InvalidUrl): http://plat form/workspaces/ws-self/delegations does not parse; check PLATFORM_URL"
      )
      expect(error.cause).toBeInstanceOf(HttpClientError.RequestError)
      expect(yield* Http.requests).toEqual([])
    }).pipe(Effect.provide(Http.layer(always(Http.reply(200, []))))))

  it.effect("a platform that never answers is a Timeout after 10 seconds", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const fiber = yield* Effect.fork(Effect.flip(mirror.list))
      yield* untilSleepAt(10_000)
      yield* TestClock.adjust("9999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      const error = yield* Fiber.join(fiber)
      expect(error.operation).toBe("list")
      expect(error.reason).toBe("Timeout")
      const all = yield* Http.requests
      expect(all).toHaveLength(1)
      expect(all[0]!.headers["authorization"]).toBe("Bearer tok")
    }).pipe(Effect.provide(mirrorLayer(() => Effect.never))))
})

// --- the full live stack -------------------------------------------------------------------------

const isPeer = (request: Recorded) => request.url === PEER_URL
const isPlatform = (request: Recorded) => request.url.startsWith(`${PLATFORM}/`)

/** What a request was, for ordering assertions. */
const kindOf = (request: Recorded): string => {
  if (isPeer(request)) return String(get(request.body, "method"))
  const path = new URL(request.url).pathname
  if (path === "/registry/discover/target") return "discover"
  if (path === "/workspaces/ws-self/delegations/record") return "record"
  if (/^\/workspaces\/ws-self\/delegations\/[^/]+\/update$/.test(path)) return "update"
  if (path === "/workspaces/ws-self/notify") return "notify"
  return `${request.method} ${request.url}`
}

/** The platform routes of the stack tests; peer POSTs go to `peer` with the earlier peer POSTs. */
const network = (peer: Handler): Handler => (request, previous) => {
  if (isPeer(request)) return peer(request, previous.filter(isPeer))
  switch (kindOf(request)) {
    case "discover":
      return Effect.succeed(Http.reply(200, { id: "target", url: PEER_URL, name: "Target" }))
    case "record":
    case "update":
      return Effect.succeed(Http.reply(200, { status: "ok" }))
    case "notify":
      return Effect.succeed(Http.reply(202, { queued: false }))
    default:
      return Effect.succeed(Http.reply(404, { error: "no such route" }))
  }
}

/** Answers each peer POST with the step for its attempt (the last step repeats). */
const script = (...steps: ReadonlyArray<Step | ((request: Recorded) => Step)>): Handler => (request, previous) => {
  const step = steps[Math.min(previous.length, steps.length - 1)]!
  return Effect.succeed(typeof step === "function" ? step(request) : step)
}

/** A 200 Message reply that echoes the request's JSON-RPC id. */
const answer = (text: string) => (request: Recorded): Step =>
  Http.reply(200, rpcResult(agentMessage(text), get(request.body, "id")))

// Pinned to v0.3: these tests read the v0.3 wire and count every request (auto would read the
// peer's agent card first); test/a2a-v1-wire.test.ts runs the stack in auto and 1.0.
const stackLayer = (peer: Handler) =>
  DelegationsLayer.layer({
    workspaceId: "ws-self",
    platformUrl: PLATFORM,
    platformToken: "tok",
    retryDelay: "5 seconds",
    protocol: "0.3"
  }).pipe(Layer.provideMerge(Http.layer(network(peer))))

const peerPosts = Effect.map(Http.requests, (all) => all.filter(isPeer))

describe("DelegationsLayer.layer over a fake network", () => {
  it.effect("a peer URL that does not parse fails the delegation at once with A2ARequestError: nothing sent, no retry", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const done = yield* d.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(1)
      expect(done.cause?._tag).toBe("A2ARequestError")
      expect(done.error).toBe(`Invalid peer URL "http://exa mple/a2a" (Invalid URL)`)
      expect(yield* Http.requests).toEqual([])
    }).pipe(Effect.provide(
      DelegationsLayer.layerCore(settings()).pipe(Layer.provideMerge(Layer.mergeAll(
        A2ATransportHttp.layer({ workspaceId: "ws-self", timeout: "300 seconds", protocol: "0.3" }).pipe(
          Layer.provideMerge(Http.layer(always(Http.reply(200, {}))))
        ),
        DiscoveryTest.layer({ target: "http://exa mple/a2a" }),
        PlatformMirrorTest.layer(),
        AuditMemory.layer({ workspaceId: "ws-self" }),
        RbacTest.layer({ allow: true })
      )))
    )))

  it.effect("a completed delegation calls record, discover, message/send, then update and notify", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const done = yield* d.awaitSettled(id)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("the answer")
      expect(done.attempts).toBe(1)

      const all = yield* Http.requests
      expect(all.map(kindOf).slice(0, 3)).toStrictEqual(["record", "discover", "message/send"])
      expect([...all.map(kindOf).slice(3)].sort()).toStrictEqual(["notify", "update"])
      expect(all).toHaveLength(5)

      for (const request of all.filter(isPlatform)) {
        expect(request.headers["authorization"]).toBe("Bearer tok")
      }
      const [record, discover, peer, ...rest] = all
      expect(record!.body).toStrictEqual({ target_id: "target", task: "hi", delegation_id: id })
      expect(discover!.headers["x-workspace-id"]).toBe("ws-self")
      expect(peer!.headers["x-workspace-id"]).toBe("ws-self")
      expect(peer!.headers["authorization"]).toBeUndefined()
      expect(get(peer!.body, "params", "message", "messageId")).toBe(id)
      expect(get(peer!.body, "params", "message", "parts")).toStrictEqual([{ kind: "text", text: "hi" }])
      expect(get(peer!.body, "params", "metadata", "parent_task_id")).toBe(id)
      expect(get(peer!.body, "params", "metadata", "source_workspace_id")).toBe("ws-self")

      const update = rest.find((request) => kindOf(request) === "update")!
      expect(update.url).toBe(`${PLATFORM}/workspaces/ws-self/delegations/${id}/update`)
      expect(update.body).toStrictEqual({ status: "completed", error: "", response_preview: "the answer" })
      const notify = rest.find((request) => kindOf(request) === "notify")!
      expect(get(notify.body, "status")).toBe("completed")
      expect(get(notify.body, "task_id")).toBe(id)
      expect(get(notify.body, "target_workspace_id")).toBe("target")
    }).pipe(Effect.provide(stackLayer(script(answer("the answer"))))))

  it.effect("the peer's traceparent header and params.metadata.traceparent share the trace id", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const done = yield* d.awaitSettled(id)
      expect(done.status).toBe("completed")
      const [peer] = yield* peerPosts
      const header = peer!.headers["traceparent"]
      const inBody = get(peer!.body, "params", "metadata", "traceparent")
      expect(header).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
      expect(inBody).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/)
      const traceId = (value: unknown) => String(value).slice(3, 35)
      expect(traceId(header)).toBe(traceId(inBody))
      expect(done.traceId).toBe(traceId(inBody))
    }).pipe(Effect.provide(stackLayer(script(answer("ok"))))))

  it.effect("a refused connection is retried after 5 s then 10 s with the same messageId and new JSON-RPC ids", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))

      yield* untilSleepAt(5_000)
      expect(yield* peerPosts).toHaveLength(1)
      yield* TestClock.adjust("4999 millis")
      expect(yield* peerPosts).toHaveLength(1)
      yield* TestClock.adjust("1 millis")

      yield* untilSleepAt(15_000)
      expect(yield* peerPosts).toHaveLength(2)
      yield* TestClock.adjust("9999 millis")
      expect(yield* peerPosts).toHaveLength(2)
      yield* TestClock.adjust("1 millis")

      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(3)
      expect(done.error).toContain("refused")
      const posts = yield* peerPosts
      expect(posts).toHaveLength(3)
      expect(posts.map((post) => get(post.body, "params", "message", "messageId"))).toStrictEqual([id, id, id])
      expect(new Set(posts.map((post) => get(post.body, "id"))).size).toBe(3)
      for (const post of posts) expect(post.headers["authorization"]).toBeUndefined()
    }).pipe(Effect.provide(stackLayer(always("refused")))))

  it.effect("a 503 with Retry-After: 30 waits 30 s, not 5 s", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))

      yield* untilSleepAt(30_000)
      expect(Chunk.toReadonlyArray(yield* TestClock.sleeps())).not.toContain(5_000)
      expect(yield* peerPosts).toHaveLength(1)
      yield* TestClock.adjust("5 seconds")
      expect(yield* peerPosts).toHaveLength(1)
      yield* TestClock.adjust("24999 millis")
      expect(yield* peerPosts).toHaveLength(1)
      yield* TestClock.adjust("1 millis")

      const done = yield* Fiber.join(fiber)
      expect(done.status).toBe("completed")
      expect(done.result).toBe("later")
      expect(done.attempts).toBe(2)
      expect(yield* peerPosts).toHaveLength(2)
    }).pipe(Effect.provide(stackLayer(script(
      Http.reply(503, { error: "busy" }, { "Retry-After": "30" }),
      answer("later")
    )))))

  const notRetried: ReadonlyArray<readonly [string, Step, string]> = [
    ["500", Http.reply(500, { error: "boom" }), "boom"],
    ["400", Http.reply(400, { error: "bad request" }), "bad request"],
    ["a JSON-RPC error", Http.reply(200, { jsonrpc: "2.0", id: null, error: { code: -32000, message: "nope" } }), "nope"]
  ]
  for (const [name, step, text] of notRetried) {
    it.effect(`${name} is not retried`, () =>
      Effect.gen(function*() {
        const d = yield* Delegations
        const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
        const done = yield* d.awaitSettled(id)
        expect(done.status).toBe("failed")
        expect(done.attempts).toBe(1)
        expect(done.error).toContain(text)
        expect(yield* peerPosts).toHaveLength(1)
        const update = (yield* Http.requests).find((request) => kindOf(request) === "update")!
        expect(get(update.body, "status")).toBe("failed")
      }).pipe(Effect.provide(stackLayer(always(step)))))
  }

  it.effect("202 queued is sent once and leaves the delegation queued", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const done = yield* d.awaitSettled(id)
      expect(done.status).toBe("queued")
      expect(done.queueId).toBe("q-1")
      expect(done.queueDepth).toBe(2)
      expect(done.queueMessage).toBe("peer busy")
      expect(done.attempts).toBe(1)
      expect(yield* peerPosts).toHaveLength(1)
    }).pipe(Effect.provide(stackLayer(always(
      Http.reply(202, { queued: true, queue_id: "q-1", queue_depth: 2, message: "peer busy" })
    )))))
})

// --- DelegationsLive from Config -----------------------------------------------------------------

const configured = (entries: ReadonlyArray<readonly [string, string]>, peer: Handler) =>
  DelegationsLive.pipe(
    Layer.provideMerge(Http.layer(network(peer))),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(entries))))
  )

const baseEnv: ReadonlyArray<readonly [string, string]> = [
  ["WORKSPACE_ID", "ws-self"],
  ["PLATFORM_URL", PLATFORM],
  ["PLATFORM_TOKEN", "tok"],
  ["A2A_PROTOCOL", "0.3"]
]

describe("DelegationsLive configured from Config", () => {
  it.effect("a missing WORKSPACE_ID fails the layer with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.asVoid(Delegations).pipe(
          Effect.provide(configured([["PLATFORM_URL", PLATFORM]], always(Http.reply(200, {}))))
        )
      )
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(error).toMatchObject({ _op: "MissingData", path: ["WORKSPACE_ID"] })
    }))

  it.effect("RBAC_ALLOWED_ACTIONS that is not JSON fails the layer with a ConfigError", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Effect.asVoid(Delegations).pipe(
          Effect.provide(configured([...baseEnv, ["RBAC_ALLOWED_ACTIONS", "{not json"]], always(Http.reply(200, {}))))
        )
      )
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(error).toMatchObject({ _op: "InvalidData", path: ["RBAC_ALLOWED_ACTIONS"] })
    }))

  it.effect("DELEGATION_CONCURRENCY below 1 fails the layer with a ConfigError naming it", () =>
    Effect.gen(function*() {
      for (const value of ["0", "-3", "1.5"]) {
        const error = yield* Effect.flip(
          Effect.asVoid(Delegations).pipe(
            Effect.provide(configured([...baseEnv, ["DELEGATION_CONCURRENCY", value]], always(Http.reply(200, {}))))
          )
        )
        expect(ConfigError.isConfigError(error), value).toBe(true)
        expect(error, value).toMatchObject({ path: ["DELEGATION_CONCURRENCY"] })
      }
    }))

  it.effect("DELEGATION_CONCURRENCY=1 runs delegations one after the other", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* d.delegate({ workspaceId: "target", task: "one" })
      const second = yield* d.delegate({ workspaceId: "target", task: "two" })
      expect((yield* d.status(second)).status).toBe("pending")
      expect((yield* d.awaitSettled(first)).status).toBe("completed")
      expect((yield* d.awaitSettled(second)).status).toBe("completed")
      expect(yield* peerPosts).toHaveLength(2)
    }).pipe(Effect.provide(configured([...baseEnv, ["DELEGATION_CONCURRENCY", "1"]], always(Http.reply(200, rpcResult(agentMessage("done"), null)))))))

  it.effect("the lifecycle variables out of bounds fail the layer with a ConfigError naming each", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["DELEGATION_PER_PEER_CONCURRENCY", "0"],
        ["DELEGATION_PER_PEER_CONCURRENCY", "1.5"],
        ["DELEGATION_MAX_PENDING", "-1"],
        ["DELEGATION_RETENTION", "-5"],
        ["DELEGATION_HISTORY_CAP", "0"]
      ]
      for (const [name, value] of cases) {
        const error = yield* Effect.flip(
          Effect.asVoid(Delegations).pipe(Effect.provide(configured([...baseEnv, [name, value]], always(Http.reply(200, {})))))
        )
        expect(ConfigError.isConfigError(error), `${name}=${value}`).toBe(true)
        expect(error, `${name}=${value}`).toMatchObject({ path: [name] })
      }
    }))

  it.effect("DELEGATION_PER_PEER_CONCURRENCY=1 and DELEGATION_MAX_PENDING=1: one waits, the next is Overloaded", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* d.delegate({ workspaceId: "target", task: "one" })
      const second = yield* d.delegate({ workspaceId: "target", task: "two" })
      const third = yield* Effect.flip(d.delegate({ workspaceId: "target", task: "three" }))
      expect(third._tag).toBe("Overloaded")
      expect((yield* d.status(second)).status).toBe("pending")
      expect((yield* d.await(first)).status).toBe("completed")
      expect((yield* d.await(second)).status).toBe("completed")
      expect(yield* peerPosts).toHaveLength(2)
    }).pipe(Effect.provide(configured(
      [...baseEnv, ["DELEGATION_PER_PEER_CONCURRENCY", "1"], ["DELEGATION_MAX_PENDING", "1"]],
      always(Http.reply(200, rpcResult(agentMessage("done"), null)))
    ))))

  it.effect("RBAC_ROLES=read-only denies delegate, naming the role, without any request", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const error = yield* Effect.flip(d.delegate({ workspaceId: "target", task: "hi" }))
      const denied = narrow(error, "AccessDenied")
      expect(denied.action).toBe("delegate")
      expect(denied.roles).toStrictEqual(["read-only"])
      expect(denied.message).toContain("read-only")
      expect(yield* Http.requests).toHaveLength(0)
    }).pipe(Effect.provide(configured([...baseEnv, ["RBAC_ROLES", "read-only"]], always(Http.reply(200, {}))))))

  it.effect("DELEGATION_RETRY_ATTEMPTS=1 makes exactly one POST on refusal", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: "target", task: "hi" })
      const done = yield* d.awaitSettled(id)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(1)
      expect(done.error).toContain("refused")
      expect(yield* peerPosts).toHaveLength(1)
      for (const request of (yield* Http.requests).filter(isPlatform)) {
        expect(request.headers["authorization"]).toBe("Bearer tok")
      }
    }).pipe(Effect.provide(configured([...baseEnv, ["DELEGATION_RETRY_ATTEMPTS", "1"]], always("refused")))))
})

// --- the platform's rate limit --------------------------------------------------------------------

describe("platform calls while the platform asks to come back later (429, 503 platform_unavailable)", () => {
  const rateLimited = Http.reply(429, { error: "rate limit exceeded", retry_after: 2 }, { "Retry-After": "2" })
  // Answers `first` to the first `times` requests, then `then`.
  const answering = (times: number, first: Step, then: Step): Handler => (_request, previous) =>
    Effect.succeed(previous.length < times ? first : then)

  it.effect("a mirror call refused by the rate limit is sent again after its Retry-After (jittered), and succeeds", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const fiber = yield* Effect.fork(mirror.record({ delegationId: "del-1", targetId: "target", task: "t" }))
      // jitter keeps the wait between 1 and 1.2 times Retry-After: never sooner than the platform said
      yield* TestClock.adjust("1999 millis")
      expect((yield* Http.requests).length).toBe(1)
      yield* TestClock.adjust("401 millis")
      yield* Fiber.join(fiber)
      expect((yield* Http.requests).length).toBe(2)
    }).pipe(Effect.provide(mirrorLayer(answering(1, rateLimited, Http.reply(202, { status: "recorded" }))))))

  it.effect("a mirror write refused by the rate limit waits and is sent again until it lands: no error for a 429", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const fiber = yield* Effect.fork(mirror.notify({
        delegationId: "del-1",
        targetId: "target",
        status: "completed",
        message: "done"
      }))
      yield* TestClock.adjust("9999 millis")
      expect((yield* Http.requests).length).toBe(5)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect((yield* Http.requests).length).toBe(6)
    }).pipe(Effect.provide(mirrorLayer(answering(5, rateLimited, Http.reply(200, { status: "sent" }))))))

  it.effect("a 429 makes every waiting request wait for its Retry-After, not only the one that got it", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const first = yield* Effect.fork(mirror.record({ delegationId: "del-1", targetId: "target", task: "t" }))
      yield* TestClock.adjust("1 millis")
      expect((yield* Http.requests).length).toBe(1)
      const second = yield* Effect.fork(
        mirror.update({ delegationId: "del-2", status: "completed", error: "", responsePreview: "ok" })
      )
      yield* TestClock.adjust("1998 millis")
      expect((yield* Http.requests).length).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      // Once the wait is over, the waiting requests go in order: the refused record first.
      expect((yield* Http.requests).map((r) => new URL(r.url).pathname)).toEqual([
        "/workspaces/ws-self/delegations/record",
        "/workspaces/ws-self/delegations/record",
        "/workspaces/ws-self/delegations/del-2/update"
      ])
    }).pipe(Effect.provide(mirrorLayer(answering(1, rateLimited, Http.reply(200, {}))))))

  it.effect("discovery waits out a 503 platform_unavailable (no Retry-After: 1 s) and resolves", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(resolve("target"))
      yield* TestClock.adjust("999 millis")
      expect((yield* Http.requests).length).toBe(1)
      yield* TestClock.adjust("201 millis")
      const endpoint = yield* Fiber.join(fiber)
      expect(endpoint.url).toBe("http://peer:8000")
      expect((yield* Http.requests).length).toBe(2)
    }).pipe(Effect.provide(discoveryLayer(answering(
      1,
      Http.reply(503, { error: "platform datastore unavailable — retry shortly", code: "platform_unavailable" }),
      Http.reply(200, { id: "target", url: "http://peer:8000", name: "Target" })
    )))))

  it.effect("while requests wait, an update (it finishes an outcome) goes before a notify and a list read", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const first = yield* Effect.fork(mirror.record({ delegationId: "del-1", targetId: "target", task: "t" }))
      yield* TestClock.adjust("1 millis")
      // The record was refused: everything now waits for its Retry-After, the background calls first in line.
      const notify = yield* Effect.fork(mirror.notify({ delegationId: "del-1", targetId: "target", status: "completed", message: "done" }))
      const list = yield* Effect.fork(mirror.list)
      const update = yield* Effect.fork(mirror.update({ delegationId: "del-2", status: "completed", error: "", responsePreview: "ok" }))
      yield* TestClock.adjust("2 seconds")
      yield* Effect.forEach([first, notify, update], Fiber.join, { discard: true })
      yield* Fiber.join(list)
      expect((yield* Http.requests).map((r) => `${r.method} ${new URL(r.url).pathname}`)).toEqual([
        "POST /workspaces/ws-self/delegations/record",
        "POST /workspaces/ws-self/delegations/record",
        "POST /workspaces/ws-self/delegations/del-2/update",
        "POST /workspaces/ws-self/notify",
        "GET /workspaces/ws-self/delegations"
      ])
    }).pipe(Effect.provide(mirrorLayer(answering(1, rateLimited, Http.reply(200, []))))))

  it.effect("requests cut short give their place back: before any answer, a ninth request still goes", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      // Until an answer tells whether there is a limit, eight requests are in flight at most.
      const silent = yield* Effect.forEach(
        Array.from({ length: 8 }, (_, i) => i),
        (i) => Effect.fork(mirror.record({ delegationId: `del-${i}`, targetId: "target", task: "t" }))
      )
      yield* TestClock.adjust("1 millis")
      expect((yield* Http.requests).length).toBe(8)
      yield* Effect.forEach(silent, Fiber.interrupt, { discard: true })
      const ninth = yield* Effect.fork(mirror.record({ delegationId: "del-9", targetId: "target", task: "t" }))
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(ninth)
      expect((yield* Http.requests).length).toBe(9)
    }).pipe(Effect.provide(mirrorLayer((_request, previous) =>
      previous.length < 8 ? Effect.never : Effect.succeed(Http.reply(202, { status: "recorded" }))
    ))))

  it.effect("a long Retry-After is waited out too: sooner would only be refused again", () =>
    Effect.gen(function*() {
      const mirror = yield* PlatformMirror
      const fiber = yield* Effect.fork(mirror.record({ delegationId: "del-1", targetId: "target", task: "t" }))
      yield* TestClock.adjust("44999 millis")
      expect((yield* Http.requests).length).toBe(1)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
      expect((yield* Http.requests).length).toBe(2)
    }).pipe(Effect.provide(mirrorLayer(answering(
      1,
      Http.reply(429, { error: "rate limit exceeded", retry_after: 45 }, { "Retry-After": "45" }),
      Http.reply(202, { status: "recorded" })
    )))))

  it.effect("discovery waits for a place no longer than its timeout: DiscoveryError RateLimited", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip(resolve("target")))
      yield* TestClock.adjust("301 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "DiscoveryError", reason: "RateLimited" })
      expect(error.message).toContain("rate limit")
      // Sent at 0, 2, ..., 300 s: the last place came exactly at the bound.
      expect((yield* Http.requests).length).toBe(151)
    }).pipe(Effect.provide(discoveryLayer(always(rateLimited)))))

  it.effect("another 503 of discovery (workspace not available) is its answer at once", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(resolve("target"))
      expect(error).toMatchObject({ _tag: "DiscoveryError", reason: "Status", status: 503 })
      expect((yield* Http.requests).length).toBe(1)
    }).pipe(Effect.provide(discoveryLayer(always(Http.reply(503, { error: "workspace not available", status: "offline" }))))))
})
