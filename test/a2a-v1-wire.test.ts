/**
 * A2A 1.0 on the wire and the per-peer version choice, over a scripted network (`it.effect`, the
 * TestClock drives timeouts and the cache's time to live), and the fallback semantics of the
 * delegation program over the scripted transport.
 */
import { NodeSdk } from "@effect/opentelemetry"
import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import {
  A2ATransport,
  A2ATransportHttp,
  A2ATransportTest,
  AuditMemory,
  Delegations,
  DelegationsLayer,
  DelegationsLive,
  DiscoveryTest,
  PeerEndpoint,
  PlatformMirrorTest,
  PlatformHttpClient,
  ProtocolChoice,
  RbacTest
} from "effect-a2a-delegation"
import type { A2A, PeerProtocol, SendMessage, SendReply } from "effect-a2a-delegation"
import { Cause, Chunk, ConfigError, ConfigProvider, Effect, Exit, Fiber, Layer, Option, Redacted, TestClock } from "effect"
import * as Http from "./fixtures/http.js"
import type { Handler, Recorded, Step } from "./fixtures/http.js"
import { PEER, PEER_URL, SELF, settings } from "./fixtures/layers.js"

// --- helpers -------------------------------------------------------------------------------------

const PLATFORM = "http://platform:8080"
const URL_A2A = "http://peer:8000/a2a"
const CARD_URL = "http://peer:8000/.well-known/agent-card.json"

const get = (value: unknown, ...path: ReadonlyArray<string | number>): unknown =>
  path.reduce<unknown>(
    (current, key) =>
      typeof current === "object" && current !== null ? (current as Record<string | number, unknown>)[key] : undefined,
    value
  )

const always = (step: Step): Handler => () => Effect.succeed(step)
const rpc = (request: Recorded, payload: { readonly result: unknown } | { readonly error: unknown }) =>
  Http.reply(200, { jsonrpc: "2.0", id: get(request.body, "id"), ...payload })
const isCard = (request: Recorded) => request.url.endsWith("/.well-known/agent-card.json")
const isPost = (request: Recorded) => request.method === "POST"
const version = (request: Recorded) => request.headers["a2a-version"]

/** Yields until the TestClock has a sleep that ends at `millis`. */
const untilSleepAt = (millis: number) =>
  Effect.gen(function*() {
    for (let i = 0; i < 500; i++) {
      if (Chunk.toReadonlyArray(yield* TestClock.sleeps()).includes(millis)) return
      yield* TestClock.adjust(0)
    }
    return yield* Effect.dieMessage(`no sleep ending at ${millis} ms was scheduled`)
  })

const ERROR_INFO = (reason: string) => [{ "@type": "type.googleapis.com/google.rpc.ErrorInfo", reason, domain: "a2a-protocol.org" }]
const VERSION_ERROR = {
  code: -32009,
  message: "The requested A2A protocol version '0.3' is not supported. Supported versions: 1.0",
  data: ERROR_INFO("VERSION_NOT_SUPPORTED")
}
const v1Card = (url: string, protocolVersion = "1.0") => ({
  name: "peer",
  supportedInterfaces: [{ url, protocolBinding: "JSONRPC", tenant: "", protocolVersion }]
})
const v1Message = (text: string) => ({ messageId: "M", contextId: "C", role: "ROLE_AGENT", parts: [{ text, mediaType: "text/plain" }] })
const v03Message = (text: string) => ({ kind: "message", role: "agent", messageId: "M", parts: [{ kind: "text", text }] })

/**
 * A peer that speaks what `speaks` says: a strict 1.0 peer answers -32009 without the header, a
 * v0.3 one -32601 to SendMessage. `card` is served at the well-known path (404 without).
 */
const peer = (options: { readonly speaks: "1.0" | "0.3"; readonly card?: unknown }): Handler => (request) => {
  if (isCard(request)) {
    return Effect.succeed(options.card === undefined ? Http.reply(404, "Cannot GET") : Http.reply(200, options.card))
  }
  const method = get(request.body, "method")
  if (options.speaks === "1.0") {
    if (version(request) !== "1.0") return Effect.succeed(rpc(request, { error: VERSION_ERROR }))
    return Effect.succeed(rpc(request, { result: { message: v1Message(`1.0: ${String(get(request.body, "params", "message", "parts", 0, "text"))}`) } }))
  }
  if (method !== "message/send") {
    return Effect.succeed(rpc(request, { error: { code: -32601, message: `Method not found: ${String(method)}` } }))
  }
  return Effect.succeed(rpc(request, { result: v03Message(`0.3: ${String(get(request.body, "params", "message", "parts", 0, "text"))}`) }))
}

// --- the transport -------------------------------------------------------------------------------

const transportLayer = (handler: Handler, options: Partial<A2ATransportHttp.Options> = {}) =>
  A2ATransportHttp.layer({ workspaceId: SELF, timeout: "30 seconds", ...options }).pipe(Layer.provideMerge(Http.layer(handler)))

const endpoint = new PeerEndpoint({ id: PEER, url: URL_A2A })
const v1: PeerProtocol = { version: "1.0", url: URL_A2A, source: "pinned" }
const v03: PeerProtocol = { version: "0.3", url: URL_A2A, source: "pinned" }
const TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
const sendMessage = (protocol: PeerProtocol): SendMessage => ({
  endpoint,
  protocol,
  messageId: "del-1",
  requestId: "req-1",
  delegationId: "del-1",
  text: "hello peer",
  metadata: { parent_task_id: "del-1", source_workspace_id: SELF, traceparent: TRACEPARENT }
})
const send = (protocol: PeerProtocol) => Effect.flatMap(A2ATransport, (t) => t.send(sendMessage(protocol)))
const protocolFor = (target: PeerEndpoint = endpoint) => Effect.flatMap(A2ATransport, (t) => t.protocolFor(target))
const narrow = <T extends { readonly _tag: string }, K extends T["_tag"]>(value: T, tag: K): Extract<T, { readonly _tag: K }> => {
  if (value._tag !== tag) throw new Error(`expected ${tag}, got ${value._tag}`)
  return value as Extract<T, { readonly _tag: K }>
}
const taskReply = (reply: SendReply) => narrow(reply, "TaskReply")

describe("A2ATransportHttp speaking A2A 1.0", () => {
  it.effect("SendMessage: ROLE_USER, parts without kind, the delegation's ids and metadata, and A2A-Version: 1.0", () =>
    Effect.gen(function*() {
      const reply = narrow(yield* send(v1), "MessageReply")
      expect(reply.message).toEqual({ role: "agent", messageId: "M", parts: [{ kind: "text", text: "ok" }], artifacts: [] })
      expect(reply.raw).toEqual(v1Message("ok"))
      const [request] = yield* Http.requests
      expect(request!.url).toBe(URL_A2A)
      expect(request!.body).toStrictEqual({
        jsonrpc: "2.0",
        id: "req-1",
        method: "SendMessage",
        params: {
          message: { messageId: "del-1", role: "ROLE_USER", parts: [{ text: "hello peer" }], metadata: { delegation_id: "del-1" } },
          metadata: { parent_task_id: "del-1", source_workspace_id: SELF, traceparent: TRACEPARENT }
        }
      })
      expect(request!.headers["a2a-version"]).toBe("1.0")
      expect(request!.headers["content-type"]).toBe("application/json")
      expect(request!.headers["x-workspace-id"]).toBe(SELF)
      expect(request!.headers["authorization"]).toBeUndefined()
    }).pipe(Effect.provide(transportLayer((request) => Effect.succeed(rpc(request, { result: { message: v1Message("ok") } })))))
  )

  it.effect("a v0.3 request carries no A2A-Version header", () =>
    Effect.gen(function*() {
      yield* send(v03)
      const [request] = yield* Http.requests
      expect(get(request!.body, "method")).toBe("message/send")
      expect(request!.headers["a2a-version"]).toBeUndefined()
    }).pipe(Effect.provide(transportLayer((request) => Effect.succeed(rpc(request, { result: v03Message("ok") }))))))

  const states: ReadonlyArray<readonly [unknown, A2A.TaskState]> = [
    ["TASK_STATE_SUBMITTED", "submitted"],
    ["TASK_STATE_WORKING", "working"],
    ["TASK_STATE_COMPLETED", "completed"],
    ["TASK_STATE_FAILED", "failed"],
    ["TASK_STATE_CANCELED", "canceled"],
    ["TASK_STATE_INPUT_REQUIRED", "input-required"],
    ["TASK_STATE_REJECTED", "rejected"],
    ["TASK_STATE_AUTH_REQUIRED", "auth-required"],
    ["TASK_STATE_UNSPECIFIED", "unknown"],
    [undefined, "unknown"],
    [3, "completed"]
  ]
  for (const [wire, state] of states) {
    it.effect(`{task} in ${String(wire)} is a TaskReply in ${state}`, () =>
      Effect.gen(function*() {
        const reply = taskReply(yield* send(v1))
        expect(reply.task.status.state).toBe(state)
        expect(reply.task.kind).toBe("task")
        expect(reply.task.id).toBe("T")
      }).pipe(Effect.provide(transportLayer((request) =>
        Effect.succeed(rpc(request, { result: { task: { id: "T", contextId: "C", status: wire === undefined ? {} : { state: wire } } } }))
      ))))
  }

  it.effect("a 1.0 task's text: artifacts ({text, mediaType} parts), then its status message", () =>
    Effect.gen(function*() {
      const done = taskReply(yield* send(v1))
      expect(done.task.artifacts).toEqual([{ parts: [{ kind: "text", text: "artifact: hi" }, { kind: "data" }] }])
      const asking = taskReply(yield* send(v1))
      expect(asking.task.status.message?.parts).toEqual([{ kind: "text", text: "need more input" }])
      expect(asking.task.status.message?.role).toBe("agent")
    }).pipe(Effect.provide(transportLayer((request, previous) =>
      Effect.succeed(rpc(request, {
        result: {
          task: previous.length === 0
            ? {
              id: "T",
              status: { state: "TASK_STATE_COMPLETED" },
              artifacts: [{ artifactId: "a1", parts: [{ text: "artifact: hi", mediaType: "text/plain" }, { data: { n: 1 } }] }]
            }
            : {
              id: "T",
              status: { state: "TASK_STATE_INPUT_REQUIRED", message: { messageId: "M", role: "ROLE_AGENT", parts: [{ text: "need more input" }] } }
            }
        }
      }))
    ))))

  it.effect("a result that is neither {message} nor {task} is InvalidResult", () =>
    Effect.gen(function*() {
      const error = narrow(yield* Effect.flip(send(v1)), "A2AResponseError")
      expect(error.reason).toBe("InvalidResult")
      expect(error.message).toContain(`{"message": ...} or {"task": ...}`)
    }).pipe(Effect.provide(transportLayer((request) => Effect.succeed(rpc(request, { result: v03Message("v0.3 shape") }))))))

  it.effect("GetTask, CancelTask (1.0) and tasks/cancel (0.3): exact bodies, the bare Task back", () =>
    Effect.gen(function*() {
      const transport = yield* A2ATransport
      const got = yield* transport.getTask({ endpoint, protocol: v1, requestId: "g-1", taskId: "T" })
      expect(got.task.status.state).toBe("working")
      const canceled = yield* transport.cancelTask({ endpoint, protocol: v1, requestId: "c-1", taskId: "T" })
      expect(canceled.task.status.state).toBe("canceled")
      const canceled03 = yield* transport.cancelTask({ endpoint, protocol: v03, requestId: "c-2", taskId: "T" })
      expect(canceled03.task.status.state).toBe("canceled")
      const all = yield* Http.requests
      expect(all.map((r) => [r.body, version(r)])).toStrictEqual([
        [{ jsonrpc: "2.0", id: "g-1", method: "GetTask", params: { id: "T", historyLength: 0 } }, "1.0"],
        [{ jsonrpc: "2.0", id: "c-1", method: "CancelTask", params: { id: "T" } }, "1.0"],
        [{ jsonrpc: "2.0", id: "c-2", method: "tasks/cancel", params: { id: "T" } }, undefined]
      ])
    }).pipe(Effect.provide(transportLayer((request) => {
      const method = get(request.body, "method")
      if (method === "tasks/cancel") return Effect.succeed(rpc(request, { result: { kind: "task", id: "T", status: { state: "canceled" } } }))
      const state = method === "GetTask" ? "TASK_STATE_WORKING" : "TASK_STATE_CANCELED"
      return Effect.succeed(rpc(request, { result: { id: "T", status: { state } } }))
    }))))

  it.effect("a 1.0 error keeps its code, its ErrorInfo reason and data, and the version it answered", () =>
    Effect.gen(function*() {
      const transport = yield* A2ATransport
      const error = yield* Effect.flip(transport.getTask({ endpoint, protocol: v1, requestId: "g-1", taskId: "nope" }))
      const rpcError = narrow(error, "JsonRpcError")
      expect(rpcError.code).toBe(-32001)
      expect(rpcError.reason).toBe("TASK_NOT_FOUND")
      expect(rpcError.protocolVersion).toBe("1.0")
      expect(rpcError.data).toEqual(ERROR_INFO("TASK_NOT_FOUND"))
      expect(rpcError.message).toBe("JSON-RPC error -32001 (TASK_NOT_FOUND): Task not found: nope")
    }).pipe(Effect.provide(transportLayer((request) =>
      Effect.succeed(rpc(request, { error: { code: -32001, message: "Task not found: nope", data: ERROR_INFO("TASK_NOT_FOUND") } }))
    ))))

  it.effect("through the platform's proxy auto chooses 0.3 without a card: message/send with the platform bearer and no A2A-Version", () =>
    Effect.gen(function*() {
      const proxy = new PeerEndpoint({ id: PEER, url: `${PLATFORM}/workspaces/${PEER}/a2a`, viaPlatform: true })
      const transport = yield* A2ATransport
      const protocol = yield* transport.protocolFor(proxy)
      expect(protocol).toEqual({ version: "0.3", url: proxy.url, source: "proxy" })
      yield* transport.send({ ...sendMessage(protocol), endpoint: proxy })
      // A 1.0 request (as a core stack pinned to 1.0 would send) still gets the header and the bearer.
      yield* transport.send({ ...sendMessage({ ...protocol, version: "1.0", source: "pinned" }), endpoint: proxy })
      const all = yield* Http.requests
      expect(all).toHaveLength(2) // no card is read through the proxy
      expect(all.map((r) => [get(r.body, "method"), r.headers["a2a-version"], r.headers["authorization"]])).toEqual([
        ["message/send", undefined, "Bearer tok"],
        ["SendMessage", "1.0", "Bearer tok"]
      ])
    }).pipe(Effect.provide(
      A2ATransportHttp.layer({ workspaceId: SELF, timeout: "30 seconds" }).pipe(
        Layer.provide(PlatformHttpClient.layer({
          platformUrl: PLATFORM,
          workspaceId: SELF,
          platformToken: Option.some(Redacted.make("tok")),
          orgId: Option.none()
        })),
        Layer.provideMerge(Http.layer((request) =>
          Effect.succeed(rpc(request, {
            result: get(request.body, "method") === "SendMessage" ? { message: v1Message("ok") } : v03Message("ok")
          }))
        ))
      )
    )))
})

describe("ProtocolChoice in auto, for a peer behind the platform's proxy", () => {
  it.effect("0.3 with source proxy: no card read, nothing remembered, never switched", () =>
    Effect.gen(function*() {
      const cardReads: Array<string> = []
      const choice = yield* ProtocolChoice.makeProtocolChoice({
        setting: "auto",
        readCard: (url) => Effect.sync(() => cardReads.push(url)).pipe(Effect.as({ version: "1.0" as const })),
        capacity: 10,
        timeToLive: "1 hour"
      })
      const proxy = new PeerEndpoint({ id: PEER, url: `${PLATFORM}/workspaces/${PEER}/a2a`, viaPlatform: true })
      const chosen = yield* choice.protocolFor(proxy)
      expect(chosen).toEqual({ version: "0.3", url: proxy.url, source: "proxy" })
      expect(ProtocolChoice.canFallBack(chosen)).toBe(false)
      yield* choice.rememberProtocol(proxy, { version: "1.0", url: proxy.url, source: "learned" })
      expect(yield* choice.protocolFor(proxy)).toEqual(chosen)
      expect(cardReads).toEqual([])
      // the same URL reached directly is still chosen from its card
      expect((yield* choice.protocolFor(new PeerEndpoint({ id: PEER, url: proxy.url }))).source).toBe("card")
    }))
})

// --- the choice per peer -------------------------------------------------------------------------

const choiceWith = (card: Step, options: Partial<A2ATransportHttp.Options> = {}) =>
  transportLayer((request) => Effect.succeed(isCard(request) ? card : Http.reply(500, "unexpected")), options)

describe("protocolFor: the agent card", () => {
  it.effect("a card with supportedInterfaces: 1.0 at its JSON-RPC 1.0 interface, read with A2A-Version: 1.0", () =>
    Effect.gen(function*() {
      expect(yield* protocolFor()).toEqual({ version: "1.0", url: "http://peer:8000/v1/rpc", source: "card" })
      const [request] = yield* Http.requests
      expect(request!.method).toBe("GET")
      expect(request!.url).toBe(CARD_URL)
      expect(request!.headers["a2a-version"]).toBe("1.0")
    }).pipe(Effect.provide(choiceWith(Http.reply(200, {
      supportedInterfaces: [
        { url: "http://peer:8000/rest", protocolBinding: "HTTP+JSON", protocolVersion: "1.0" },
        { url: "http://peer:8000/legacy", protocolBinding: "JSONRPC", protocolVersion: "0.3" },
        { url: "http://peer:8000/v1/rpc", protocolBinding: "JSONRPC", protocolVersion: "1.0" }
      ]
    })))))

  it.effect("a relative interface URL is resolved against the card", () =>
    Effect.gen(function*() {
      expect((yield* protocolFor()).url).toBe("http://peer:8000/jsonrpc")
    }).pipe(Effect.provide(choiceWith(Http.reply(200, v1Card("/jsonrpc"))))))

  it.effect("a compatible server's hybrid card (v0.3 fields and supportedInterfaces) is 1.0", () =>
    Effect.gen(function*() {
      expect((yield* protocolFor()).version).toBe("1.0")
    }).pipe(Effect.provide(choiceWith(Http.reply(200, {
      url: "http://peer:8000/a2a",
      protocolVersion: "0.3",
      preferredTransport: "JSONRPC",
      supportedInterfaces: [
        { url: "http://peer:8000/a2a", protocolBinding: "JSONRPC", protocolVersion: "1.0" },
        { url: "http://peer:8000/a2a", protocolBinding: "JSONRPC", protocolVersion: "0.3" }
      ]
    })))))

  it.effect("a v0.3 card is 0.3, spoken at the discovered URL (not the card's)", () =>
    Effect.gen(function*() {
      expect(yield* protocolFor()).toEqual({ version: "0.3", url: URL_A2A, source: "card" })
    }).pipe(Effect.provide(choiceWith(Http.reply(200, { name: "old", url: "http://127.0.0.1/", protocolVersion: "0.3.0" })))))

  it.effect("a 1.0 card whose only JSON-RPC interface is 0.3 is 0.3", () =>
    Effect.gen(function*() {
      expect(yield* protocolFor()).toEqual({ version: "0.3", url: URL_A2A, source: "card" })
    }).pipe(Effect.provide(choiceWith(Http.reply(200, v1Card("http://peer:8000/a2a", "0.3"))))))

  const unclear: ReadonlyArray<readonly [string, Step]> = [
    ["a card that does not say", Http.reply(200, { name: "peer", description: "no version here" })],
    ["no card (404)", Http.reply(404, "Cannot GET /.well-known/agent-card.json")],
    ["a card that is not JSON", Http.reply(200, "<html>")],
    ["a refused card request", "refused"]
  ]
  for (const [name, step] of unclear) {
    it.effect(`${name}: 1.0 is guessed (with the fallback), nothing fails`, () =>
      Effect.gen(function*() {
        expect(yield* protocolFor()).toEqual({ version: "1.0", url: URL_A2A, source: "guess" })
      }).pipe(Effect.provide(choiceWith(step))))
  }

  it.effect("a card request that never answers is bounded by the request timeout, then 1.0 is guessed", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(protocolFor())
      yield* untilSleepAt(30_000)
      yield* TestClock.adjust("29999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect((yield* Fiber.join(fiber)).source).toBe("guess")
    }).pipe(Effect.provide(transportLayer(() => Effect.never))))

  it.effect("the card is read once per peer, and again once its time to live has passed", () =>
    Effect.gen(function*() {
      yield* protocolFor()
      yield* protocolFor()
      yield* TestClock.adjust("9 minutes")
      yield* protocolFor()
      expect((yield* Http.requests).length).toBe(1)
      yield* TestClock.adjust("61 seconds")
      expect((yield* protocolFor()).source).toBe("card")
      expect((yield* Http.requests).length).toBe(2)
    }).pipe(Effect.provide(choiceWith(Http.reply(200, v1Card(URL_A2A)), { protocolCache: { timeToLive: "10 minutes" } }))))

  it.effect("the cache is bounded: beyond its capacity, the least recently used peer is read again", () =>
    Effect.gen(function*() {
      const other = new PeerEndpoint({ id: "other", url: "http://other:8000/a2a" })
      yield* protocolFor()
      yield* protocolFor(other)
      yield* protocolFor()
      expect((yield* Http.requests).map((r) => r.url)).toEqual([CARD_URL, "http://other:8000/.well-known/agent-card.json", CARD_URL])
    }).pipe(Effect.provide(choiceWith(Http.reply(200, v1Card(URL_A2A)), { protocolCache: { capacity: 1 } }))))

  for (const pinned of ["1.0", "0.3"] as const) {
    it.effect(`pinned to ${pinned}: that version at the discovered URL, no card read`, () =>
      Effect.gen(function*() {
        expect(yield* protocolFor()).toEqual({ version: pinned, url: URL_A2A, source: "pinned" })
        expect(yield* Http.requests).toEqual([])
      }).pipe(Effect.provide(choiceWith(Http.reply(200, v1Card(URL_A2A)), { protocol: pinned }))))
  }
})

// --- the live stack ------------------------------------------------------------------------------

/** Discovery and the mirror answer; everything else goes to `peerHandler`. */
const network = (peerHandler: Handler): Handler => (request, previous) => {
  const path = new URL(request.url).pathname
  if (request.url.startsWith(PLATFORM)) {
    if (path.startsWith("/registry/discover/")) return Effect.succeed(Http.reply(200, { id: PEER, url: URL_A2A, name: "Peer" }))
    return Effect.succeed(Http.reply(200, { status: "ok" }))
  }
  return peerHandler(request, previous.filter((r) => !r.url.startsWith(PLATFORM)))
}

const stack = (peerHandler: Handler, protocol?: A2A.ProtocolSetting) =>
  DelegationsLayer.layer({ workspaceId: SELF, platformUrl: PLATFORM, platformToken: "tok", retryDelay: "5 seconds", protocol }).pipe(
    Layer.provideMerge(Http.layer(network(peerHandler)))
  )

const peerRequests = Effect.map(Http.requests, (all) => all.filter((r) => !r.url.startsWith(PLATFORM)))
const delegate = (task: string) =>
  Effect.flatMap(Delegations, (d) => Effect.flatMap(d.delegate({ workspaceId: PEER, task }), (id) => d.awaitSettled(id)))

describe("DelegationsLayer.layer in auto over a scripted network", () => {
  it.effect("a v0.3 peer without a card: SendMessage is answered -32601, the same message goes once in 0.3, and later delegations go straight to 0.3", () =>
    Effect.gen(function*() {
      const first = yield* delegate("one")
      expect([first.status, first.result, first.attempts, first.protocolVersion]).toEqual(["completed", "0.3: one", 1, "0.3"])
      const second = yield* delegate("two")
      expect([second.status, second.attempts, second.protocolVersion]).toEqual(["completed", 1, "0.3"])

      const all = yield* peerRequests
      expect(all.map((r) => (isPost(r) ? `${get(r.body, "method")} ${version(r) ?? "-"}` : `GET card`))).toEqual([
        "GET card",
        "SendMessage 1.0",
        "message/send -",
        "message/send -"
      ])
      const [, probe, resend] = all
      expect(get(probe!.body, "params", "message", "messageId")).toBe(first.id)
      expect(get(resend!.body, "params", "message", "messageId")).toBe(first.id)
      expect(get(resend!.body, "id")).not.toBe(get(probe!.body, "id"))
    }).pipe(Effect.provide(stack(peer({ speaks: "0.3" })))))

  it.effect("a strict 1.0 peer with a card: SendMessage at the card's URL, nothing else", () =>
    Effect.gen(function*() {
      const done = yield* delegate("hi")
      expect([done.status, done.result, done.protocolVersion]).toEqual(["completed", "1.0: hi", "1.0"])
      expect((yield* peerRequests).map((r) => `${r.method} ${r.url}`)).toEqual([`GET ${CARD_URL}`, `POST ${URL_A2A}`])
    }).pipe(Effect.provide(stack(peer({ speaks: "1.0", card: v1Card(URL_A2A) })))))

  it.effect("when both versions are answered with -32009, the delegation fails after one resend, naming the version problem", () =>
    Effect.gen(function*() {
      const done = yield* delegate("hi")
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(1)
      expect(done.cause).toMatchObject({ _tag: "JsonRpcError", code: -32009, reason: "VERSION_NOT_SUPPORTED", protocolVersion: "0.3" })
      expect(done.error).toContain("speaks only A2A 1.0")
      expect((yield* peerRequests).filter(isPost).map((r) => get(r.body, "method"))).toEqual(["SendMessage", "message/send"])
    }).pipe(Effect.provide(stack((request) =>
      Effect.succeed(isCard(request) ? Http.reply(404, "") : rpc(request, { error: VERSION_ERROR }))
    ))))

  it.effect("after the switch, a transport failure is retried in the new version, without a second switch", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "hi" })
      const fiber = yield* Effect.fork(d.awaitSettled(id))
      yield* untilSleepAt(5_000)
      yield* TestClock.adjust("5 seconds")
      const done = yield* Fiber.join(fiber)
      expect([done.status, done.attempts, done.protocolVersion, done.result]).toEqual(["completed", 2, "0.3", "0.3: hi"])
      expect((yield* peerRequests).filter(isPost).map((r) => get(r.body, "method"))).toEqual([
        "SendMessage",
        "message/send",
        "message/send"
      ])
    }).pipe(Effect.provide(stack((request, previous) =>
      previous.filter(isPost).length === 1 ? Effect.succeed("refused") : peer({ speaks: "0.3" })(request, previous)
    ))))

  it.effect("a version answer to a version the card named is not switched", () =>
    Effect.gen(function*() {
      const done = yield* delegate("hi")
      expect([done.status, done.attempts]).toEqual(["failed", 1])
      expect(done.cause).toMatchObject({ _tag: "JsonRpcError", code: -32601, protocolVersion: "1.0" })
      expect(done.error).toContain("may only speak A2A v0.3")
      expect((yield* peerRequests).filter(isPost)).toHaveLength(1)
    }).pipe(Effect.provide(stack(peer({ speaks: "0.3", card: v1Card(URL_A2A) })))))

  it.effect("pinned to 1.0: no card read, and -32601 is not switched", () =>
    Effect.gen(function*() {
      const done = yield* delegate("hi")
      expect([done.status, done.protocolVersion]).toEqual(["failed", "1.0"])
      expect((yield* peerRequests).map((r) => `${r.method} ${String(get(r.body, "method"))}`)).toEqual(["POST SendMessage"])
    }).pipe(Effect.provide(stack(peer({ speaks: "0.3" }), "1.0"))))
})

describe("A2A_PROTOCOL from Config", () => {
  const configured = (value: string, handler: Handler) =>
    DelegationsLive.pipe(
      Layer.provideMerge(Http.layer(network(handler))),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
        ["WORKSPACE_ID", SELF],
        ["PLATFORM_URL", PLATFORM],
        ["PLATFORM_TOKEN", "tok"],
        ["A2A_PROTOCOL", value]
      ]))))
    )

  it.effect("A2A_PROTOCOL=1.0 sends SendMessage without reading the card", () =>
    Effect.gen(function*() {
      expect((yield* delegate("hi")).protocolVersion).toBe("1.0")
      expect((yield* peerRequests).map((r) => r.method)).toEqual(["POST"])
    }).pipe(Effect.provide(configured("1.0", peer({ speaks: "1.0", card: v1Card(URL_A2A) })))))

  it.effect("a value other than auto, 1.0 or 0.3 fails the layer with a ConfigError naming A2A_PROTOCOL", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.asVoid(Delegations).pipe(Effect.provide(configured("2.0", always(Http.reply(200, {}))))))
      expect(ConfigError.isConfigError(error)).toBe(true)
      expect(error).toMatchObject({ path: ["A2A_PROTOCOL"] })
    }))

  it.effect("pinned to 1.0 with proxy dispatch: a ConfigError on A2A_PROTOCOL saying why; 0.3 with proxy builds", () =>
    Effect.gen(function*() {
      const build = (env: Record<string, string>) =>
        Effect.exit(Effect.asVoid(Delegations).pipe(Effect.provide(DelegationsLive.pipe(
          Layer.provide(Http.layer(always(Http.reply(200, {})))),
          Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries({
            WORKSPACE_ID: SELF,
            PLATFORM_URL: PLATFORM,
            ...env
          })))))
        ))))
      for (const dispatch of [{ DELEGATION_DISPATCH: "proxy" }, { A2A_VIA_PLATFORM_PROXY: "true" }]) {
        const exit = yield* build({ ...dispatch, A2A_PROTOCOL: "1.0" })
        const error = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        expect(Option.getOrUndefined(error)).toMatchObject({ _op: "InvalidData", path: ["A2A_PROTOCOL"] })
        const message = String(Option.getOrUndefined(error))
        expect(message).toContain("forwards no A2A-Version header")
        expect(message).toContain("a queued one is delivered later as it was sent")
        expect(Exit.isSuccess(yield* build({ ...dispatch, A2A_PROTOCOL: "0.3" }))).toBe(true)
      }
      // direct and platform dispatch keep a pinned 1.0
      expect(Exit.isSuccess(yield* build({ A2A_PROTOCOL: "1.0" }))).toBe(true)
      expect(Exit.isSuccess(yield* build({ A2A_PROTOCOL: "1.0", DELEGATION_DISPATCH: "platform" }))).toBe(true)
    }))

  it.effect("auto with proxy dispatch: no 1.0 on the wire (no A2A-Version, message/send, tasks/get), no card read", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(delegate("hi"))
      yield* TestClock.adjust("1 second") // the first poll
      const done = yield* Fiber.join(fiber)
      expect([done.status, done.protocolVersion, done.attempts, done.dispatch]).toEqual(["completed", "0.3", 1, "proxy"])
      const proxied = (yield* Http.requests).filter((r) => r.url === `${PLATFORM}/workspaces/${PEER}/a2a`)
      expect(proxied.map((r) => [get(r.body, "method"), r.headers["a2a-version"]])).toEqual([
        ["message/send", undefined],
        ["tasks/get", undefined]
      ])
      expect(yield* peerRequests).toEqual([])
    }).pipe(Effect.provide(DelegationsLive.pipe(
      Layer.provideMerge(Http.layer((request) => {
        // The proxy answers as a v0.3 peer would: a working task, then the task completed.
        if (request.url !== `${PLATFORM}/workspaces/${PEER}/a2a`) return Effect.succeed(Http.reply(200, { status: "ok" }))
        const method = get(request.body, "method")
        if (method === "message/send") {
          return Effect.succeed(rpc(request, { result: { kind: "task", id: "T", contextId: "C", status: { state: "working" } } }))
        }
        if (method === "tasks/get") {
          return Effect.succeed(rpc(request, {
            result: {
              kind: "task",
              id: "T",
              contextId: "C",
              status: { state: "completed" },
              artifacts: [{ artifactId: "a", parts: [{ kind: "text", text: "done" }] }]
            }
          }))
        }
        return Effect.succeed(rpc(request, { error: { code: -32601, message: `Method not found: ${String(method)}` } }))
      })),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
        ["WORKSPACE_ID", SELF],
        ["PLATFORM_URL", PLATFORM],
        ["PLATFORM_TOKEN", "tok"],
        ["DELEGATION_DISPATCH", "proxy"]
      ]))))
    ))))

  it.effect("the options object checks the value too", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Effect.asVoid(Delegations).pipe(
        Effect.provide(DelegationsLayer.layer({ workspaceId: SELF, protocol: "2.0" as A2A.ProtocolSetting }).pipe(
          Layer.provide(Http.layer(always(Http.reply(200, {}))))
        ))
      ))
      expect(error).toMatchObject({ _op: "InvalidData", path: ["A2A_PROTOCOL"] })
    }))
})

// --- the delegation program over the scripted transport -------------------------------------------

const coreLayer = (options: A2ATransportTest.Options) =>
  DelegationsLayer.layerCore(settings()).pipe(
    Layer.provideMerge(Layer.mergeAll(
      A2ATransportTest.layer(options),
      DiscoveryTest.layer({ [PEER]: PEER_URL }),
      PlatformMirrorTest.layer(),
      AuditMemory.layer({ workspaceId: SELF }),
      RbacTest.layer({ allow: true })
    ))
  )
const scripted = Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => t.sent)
const cardReads = Effect.flatMap(A2ATransportTest.A2ATransportTest, (t) => t.cardReads)

// A strict 1.0 peer in library terms: -32009 to a 0.3 request, an answer to a 1.0 one.
const strictV1 = (request: SendMessage) =>
  request.protocol.version === "1.0" ? A2ATransportTest.message("1.0 answer") : A2ATransportTest.versionNotSupported()
const v03Only = (request: SendMessage) =>
  request.protocol.version === "0.3" ? A2ATransportTest.message("0.3 answer") : A2ATransportTest.rpcError(-32601, "Method not found: SendMessage")

describe("the fallback in the delegation program", () => {
  it.effect("the resend is part of its attempt: same messageId, new JSON-RPC id, attempts 1, the version on the span", () => {
    const exporter = new InMemorySpanExporter()
    const tracing = NodeSdk.layer(() => ({ resource: { serviceName: "t" }, spanProcessor: new SimpleSpanProcessor(exporter) }))
    return Effect.gen(function*() {
      const done = yield* delegate("hi")
      expect([done.status, done.result, done.attempts, done.protocolVersion]).toEqual(["completed", "0.3 answer", 1, "0.3"])
      const sent = yield* scripted
      expect(sent.map((s) => s.protocol.version)).toEqual(["1.0", "0.3"])
      expect(sent.map((s) => s.messageId)).toEqual([done.id, done.id])
      expect(new Set(sent.map((s) => s.requestId)).size).toBe(2)

      const span = exporter.getFinishedSpans().find((s) => s.name === "task_delegate")!
      expect(span.attributes["a2a.protocol_version"]).toBe("0.3")
      expect(span.events.map((e) => e.name)).toEqual(["a2a.attempt", "a2a.protocol_fallback"])
      expect(span.events[1]!.attributes).toMatchObject({
        "a2a.protocol_version.from": "1.0",
        "a2a.protocol_version.to": "0.3",
        "rpc.jsonrpc.error_code": -32601
      })
    }).pipe(Effect.provide(Layer.merge(coreLayer({ send: v03Only, protocol: "auto" }), tracing)))
  })

  it.effect("at most one resend per delegation, even when the other version is refused too", () =>
    Effect.gen(function*() {
      const done = yield* delegate("hi")
      expect([done.status, done.attempts]).toEqual(["failed", 1])
      expect((yield* scripted).map((s) => s.protocol.version)).toEqual(["1.0", "0.3"])
    }).pipe(Effect.provide(coreLayer({ send: [A2ATransportTest.rpcError(-32601, "Method not found")], protocol: "auto" }))))

  it.effect("20 delegations to a peer without a card: 1 card read, 1 wrong-version answer in total", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const first = yield* delegate("first")
      expect(first.protocolVersion).toBe("0.3")
      const ids = yield* Effect.forEach(Array.from({ length: 19 }, (_, i) => `task ${i}`), (task) =>
        d.delegate({ workspaceId: PEER, task }))
      const rest = yield* Effect.forEach(ids, (id) => d.awaitSettled(id))
      expect(rest.map((r) => [r.status, r.protocolVersion, r.attempts])).toEqual(Array(19).fill(["completed", "0.3", 1]))
      const sent = yield* scripted
      expect(sent.filter((s) => s.protocol.version === "1.0")).toHaveLength(1)
      expect(sent).toHaveLength(21)
      expect(yield* cardReads).toEqual([PEER_URL])
    }).pipe(Effect.provide(coreLayer({ send: v03Only, protocol: "auto" }))))

  it.effect("a peer whose card says 1.0: 20 delegations at once, 1 card read, none switched", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const ids = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => `task ${i}`), (task) =>
        d.delegate({ workspaceId: PEER, task }))
      const done = yield* Effect.forEach(ids, (id) => d.awaitSettled(id), { concurrency: "unbounded" })
      expect(new Set(done.map((r) => `${r.status} ${r.protocolVersion}`))).toEqual(new Set(["completed 1.0"]))
      expect(yield* cardReads).toEqual([PEER_URL])
      expect(yield* scripted).toHaveLength(20)
    }).pipe(Effect.provide(coreLayer({ send: strictV1, protocol: "auto", cards: { [PEER_URL]: { version: "1.0" } } }))))

  it.effect("a remembered version expires with the cache's time to live: the next delegation tries 1.0 again", () =>
    Effect.gen(function*() {
      yield* delegate("one")
      yield* TestClock.adjust("61 minutes")
      yield* delegate("two")
      expect((yield* scripted).map((s) => s.protocol.version)).toEqual(["1.0", "0.3", "1.0", "0.3"])
      expect(yield* cardReads).toEqual([PEER_URL, PEER_URL])
    }).pipe(Effect.provide(coreLayer({ send: v03Only, protocol: "auto" }))))
})
