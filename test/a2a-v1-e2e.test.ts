/**
 * A2A 1.0 end to end over loopback HTTP: `LocalPeer` in each of its versions, compared with the
 * official SDK servers for the answers a client sees before anything runs, and delegations to it
 * directly and through `LocalPlatform`'s proxy (which, like the real platform's, forwards the body
 * but not the `A2A-Version` header).
 */
import { NodeHttpClient } from "@effect/platform-node"
import { HttpClient, HttpClientRequest } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { LocalPeer } from "effect-a2a-delegation/testing"
import { Effect } from "effect"
import { eventually, field, makeWorld, SELF, workspace } from "./fixtures/e2e.js"
import { v03Peer, v1Peer } from "./fixtures/sdkPeers.js"

/** The peers, as workspace UUIDs. */
const WS_BARE = workspace("bare")
const WS_BOTH = workspace("both")
const WS_BUSY = workspace("busy")
const WS_NEW = workspace("new")
const WS_OLD = workspace("old")
const WS_STRICT = workspace("strict")
const WS_V1 = workspace("v1")

/** One raw JSON-RPC POST, or a GET of the agent card, and what came back. */
const post = (url: string, body: unknown, headers: Readonly<Record<string, string>>) =>
  Effect.flatMap(HttpClient.HttpClient, (client) =>
    client.execute(HttpClientRequest.bodyUnsafeJson(HttpClientRequest.post(url, { headers }), body))).pipe(
      Effect.flatMap((response) => Effect.map(response.json, (json) => ({ status: response.status, json })))
    )

const getCard = (url: string, headers: Readonly<Record<string, string>>) =>
  Effect.flatMap(HttpClient.HttpClient, (client) =>
    client.execute(HttpClientRequest.get(`${new URL(url).origin}/.well-known/agent-card.json`, { headers }))).pipe(
      Effect.flatMap((response) => response.json)
    )

const V03_SEND = {
  jsonrpc: "2.0",
  id: 1,
  method: "message/send",
  params: { message: { kind: "message", role: "user", messageId: "m1", parts: [{ kind: "text", text: "hi" }] } }
}
const V1_SEND = {
  jsonrpc: "2.0",
  id: 1,
  method: "SendMessage",
  params: { message: { role: "ROLE_USER", messageId: "m1", parts: [{ text: "hi" }] } }
}
const V1_GET = { jsonrpc: "2.0", id: 2, method: "GetTask", params: { id: "no-such-task" } }
const V03_GET = { jsonrpc: "2.0", id: 2, method: "tasks/get", params: { id: "no-such-task" } }

const CASES: ReadonlyArray<readonly [string, unknown, Readonly<Record<string, string>>]> = [
  ["v0.3 body, no header", V03_SEND, {}],
  ["v0.3 body, A2A-Version: 0.3", V03_SEND, { "a2a-version": "0.3" }],
  ["v0.3 body, A2A-Version: 1.0", V03_SEND, { "a2a-version": "1.0" }],
  ["SendMessage, no header", V1_SEND, {}],
  ["SendMessage, A2A-Version: 1.0.0", V1_SEND, { "a2a-version": "1.0.0" }],
  ["SendMessage, A2A-Version: 1.0", V1_SEND, { "a2a-version": "1.0" }],
  ["GetTask of an unknown task, A2A-Version: 1.0", V1_GET, { "a2a-version": "1.0" }],
  ["tasks/get of an unknown task, no header", V03_GET, {}]
]

// The parts of an answer that do not depend on the server's ids: the error as it is, or the result's shape.
const comparable = (json: unknown) => {
  const error = field(json, "error")
  if (error !== undefined) return { error }
  const result = field(json, "result")
  const message = field(result, "message") ?? result
  return { resultKeys: Object.keys(result as object).sort(), role: field(message, "role") }
}

describe("LocalPeer answers as the SDK servers do", () => {
  const pairs = [
    ["strict 1.0", "1.0", v1Peer()],
    ["1.0 with the v0.3 compatibility layer", "both", v1Peer({ compat: true })],
    ["0.3.14", "0.3", v03Peer()]
  ] as const
  for (const [name, protocol, sdkPeer] of pairs) {
    it.scopedLive(`${name}: every version answer is the SDK server's, and so is the card's version`, () =>
      Effect.gen(function*() {
        const sdk = yield* sdkPeer
        const local = yield* LocalPeer.make({ protocol, behaviour: { reply: (task) => `echo: ${task}` } })
        for (const [label, body, headers] of CASES) {
          const expected = yield* post(sdk.url, body, { "content-type": "application/json", ...headers })
          const actual = yield* post(local.url, body, { "content-type": "application/json", ...headers })
          expect(actual.status, label).toBe(expected.status)
          expect(comparable(actual.json), label).toEqual(comparable(expected.json))
        }
        for (const headers of [{}, { "a2a-version": "1.0" }]) {
          const expected = yield* getCard(sdk.url, headers)
          const actual = yield* getCard(local.url, headers)
          for (const key of ["supportedInterfaces", "url", "protocolVersion", "preferredTransport"]) {
            expect(field(actual, key) !== undefined, `${key} with ${JSON.stringify(headers)}`).toBe(field(expected, key) !== undefined)
          }
        }
      }).pipe(Effect.provide(NodeHttpClient.layerUndici)))
  }

  it.scopedLive("a 1.0 LocalPeer keeps its behaviours: task results, scripted errors with a reason, HTTP status, capacity, drop", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const peer = yield* world.peer(WS_V1, {}, 4, "1.0")
      const host = yield* world.host()
      const run = (behaviour: LocalPeer.Behaviour, task: string) =>
        Effect.zipRight(peer.setBehaviour(behaviour), Effect.flatMap(host.delegate({ workspaceId: WS_V1, task }), host.awaitSettled))

      const task = yield* run({ result: "task", latency: "150 millis", reply: (t) => `report: ${t}` }, "q3")
      expect([task.status, task.result, task.protocolVersion, task.taskId]).toEqual(["completed", "report: q3", "1.0", "task-1"])
      const scripted = yield* run({ rpcError: { code: -32001, message: "Task not found: x", reason: "TASK_NOT_FOUND" } }, "x")
      expect(scripted.cause).toMatchObject({ _tag: "JsonRpcError", code: -32001, reason: "TASK_NOT_FOUND", protocolVersion: "1.0" })
      const status = yield* run({ status: 500 }, "boom")
      expect(status.error).toBe("Peer answered HTTP 500: Internal Server Error")
      const full = yield* run({ capacity: 0 }, "busy")
      expect([full.status, full.attempts]).toEqual(["failed", 3])
      expect(full.error).toContain("HTTP 503")
      const dropped = yield* run({ drop: true }, "gone")
      expect([dropped.status, dropped.attempts, dropped.cause?._tag]).toEqual(["failed", 3, "A2ATransportError"])
      const methods = (yield* peer.requests).map((r) => `${r.method} ${r.headers["a2a-version"]}`)
      expect(new Set(methods)).toEqual(new Set(["SendMessage 1.0", "GetTask 1.0"]))
      expect((yield* peer.cardRequests).length).toBe(1)
    }))
})

describe("direct dispatch in auto", () => {
  it.scopedLive("a 1.0 peer, a 0.3 peer and a compatible one side by side: each in its version, one card read each", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const peers = {
        [WS_NEW]: yield* world.peer(WS_NEW, {}, 4, "1.0"),
        [WS_OLD]: yield* world.peer(WS_OLD, {}, 4, "0.3"),
        [WS_BOTH]: yield* world.peer(WS_BOTH, {}, 4, "both")
      }
      const host = yield* world.host()
      const targets = [WS_NEW, WS_OLD, WS_BOTH, WS_NEW, WS_OLD, WS_BOTH] as const
      const done = yield* Effect.forEach(targets, (workspaceId) =>
        Effect.flatMap(host.delegate({ workspaceId, task: `hi ${workspaceId}` }), host.awaitSettled))
      expect(done.map((d) => [d.workspaceId, d.status, d.protocolVersion, d.result])).toEqual(
        targets.map((id) => [id, "completed", id === WS_OLD ? "0.3" : "1.0", `done: hi ${id}`])
      )
      for (const peer of Object.values(peers)) expect((yield* peer.cardRequests).length).toBe(1)
      expect((yield* peers[WS_OLD].requests).map((r) => r.method)).toEqual(["message/send", "message/send"])
      expect((yield* peers[WS_BOTH].requests).map((r) => r.method)).toEqual(["SendMessage", "SendMessage"])
    }))

  it.scopedLive("a strict 1.0 peer without a card: 1.0 first, no fallback needed", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const peer = yield* LocalPeer.make({ name: WS_BARE, protocol: "1.0", card: false })
      yield* world.platform.register({ id: WS_BARE, url: peer.url })
      const host = yield* world.host()
      const done = yield* Effect.flatMap(host.delegate({ workspaceId: WS_BARE, task: "hi" }), host.awaitSettled)
      expect([done.status, done.protocolVersion, done.attempts]).toEqual(["completed", "1.0", 1])
      expect((yield* peer.requests).map((r) => `${r.method} ${r.headers["a2a-version"]}`)).toEqual(["SendMessage 1.0"])
      expect((yield* peer.cardRequests).length).toBe(0)
    }))
})

describe("through the platform's proxy, which does not forward A2A-Version", () => {
  it.scopedLive("a strict 1.0 peer: auto sends 0.3 (the proxy cannot carry 1.0), answered -32009 and not switched: failed, naming the version problem", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const peer = yield* world.peer(WS_STRICT, {}, 4, "1.0")
      const host = yield* world.host({ viaPlatformProxy: true })
      const done = yield* Effect.flatMap(host.delegate({ workspaceId: WS_STRICT, task: "hi" }), host.awaitSettled)
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(1)
      expect(done.protocolVersion).toBe("0.3")
      expect(done.cause).toMatchObject({ _tag: "JsonRpcError", code: -32009, reason: "VERSION_NOT_SUPPORTED" })
      expect(done.error).toContain("The requested A2A protocol version '0.3' is not supported")
      expect(done.error).toContain("a proxy that does not forward the header")
      // One request, in 0.3 from the host on: no 1.0 guess, no resend.
      const proxied = (yield* world.platform.requests).filter((r) => r.path === `/workspaces/${WS_STRICT}/a2a`)
      expect(proxied.map((r) => r.headers["a2a-version"])).toEqual([undefined])
      expect((yield* peer.requests).map((r) => `${r.method} ${r.headers["a2a-version"]}`)).toEqual(["message/send undefined"])
    }))

  it.scopedLive("a 0.3 peer: 0.3 from the first delegation on, no fallback", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const peer = yield* world.peer(WS_OLD, {}, 4, "0.3")
      const host = yield* world.host({ viaPlatformProxy: true })
      const first = yield* Effect.flatMap(host.delegate({ workspaceId: WS_OLD, task: "one" }), host.awaitSettled)
      const second = yield* Effect.flatMap(host.delegate({ workspaceId: WS_OLD, task: "two" }), host.awaitSettled)
      expect([first.status, first.protocolVersion, first.attempts, first.result]).toEqual(["completed", "0.3", 1, "done: one"])
      expect([second.status, second.protocolVersion, second.attempts]).toEqual(["completed", "0.3", 1])
      expect((yield* peer.requests).map((r) => r.method)).toEqual(["message/send", "message/send"])
      expect((yield* peer.cardRequests).length).toBe(0)
    }))

  it.scopedLive("a compatible peer answers in 0.3 (no header reaches it), with no fallback", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const peer = yield* world.peer(WS_BOTH, {}, 4, "both")
      const host = yield* world.host({ viaPlatformProxy: true })
      const done = yield* Effect.flatMap(host.delegate({ workspaceId: WS_BOTH, task: "hi" }), host.awaitSettled)
      expect([done.status, done.protocolVersion, done.result]).toEqual(["completed", "0.3", "done: hi"])
      const answers = yield* peer.requests
      expect(answers.map((r) => r.method)).toEqual(["message/send"])
    }))

  it.scopedLive("in auto (A2A_PROTOCOL unset), a busy 0.3 peer's overflow is queued in 0.3 and the peer accepts it when the drain delivers it", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const busy = yield* world.peer(WS_BUSY, { latency: "300 millis" }, 1, "0.3")
      // The default configuration: no A2A_PROTOCOL, proxy dispatch.
      const env = {
        PLATFORM_URL: world.platform.url,
        WORKSPACE_ID: SELF,
        PLATFORM_TOKEN: world.selfToken,
        DELEGATION_DISPATCH: "proxy",
        DELEGATION_RETRY_DELAY: "0.05",
        DELEGATION_TIMEOUT: "5"
      }
      const host = yield* world.hostFromEnv(env)
      // The queued request is the first a host sends the peer, before any answer could teach it the
      // peer's version (here a second host of the workspace, as after a restart).
      const fresh = yield* world.hostFromEnv(env)
      const first = yield* host.delegate({ workspaceId: WS_BUSY, task: "first" })
      yield* eventually(busy.active, (active) => active === 1, "the first request to reach the peer")
      const second = yield* fresh.delegate({ workspaceId: WS_BUSY, task: "second" })
      const queued = yield* fresh.awaitSettled(second)
      expect([queued.status, queued.protocolVersion, queued.attempts]).toEqual(["queued", "0.3", 1])
      const done = yield* host.awaitSettled(first)
      expect([done.status, done.protocolVersion, done.attempts, done.result]).toEqual(["completed", "0.3", 1, "done: first"])

      // once the peer is free, its heartbeat drains the queued body, as it was sent
      yield* world.platform.heartbeat(WS_BUSY)
      const messageIdOf = (body: unknown) => field(body, "params", "message", "messageId")
      const requests = yield* eventually(busy.requests, (all) => all.some((r) => messageIdOf(r.body) === second), "the drain")
      const answers = yield* eventually(busy.answers, (all) => all.length === requests.length, "the peer to answer it")
      expect(requests.map((r) => [r.method, messageIdOf(r.body), r.headers["a2a-version"]])).toEqual([
        ["message/send", first, undefined],
        ["message/send", second, undefined]
      ])
      // the peer accepted it: a result, not a version error such as -32601
      const drained = answers.find((answer) => answer.id === field(requests[1]!.body, "id"))
      expect([drained?.method, drained?.status, field(drained?.body, "error")]).toEqual(["message/send", 200, undefined])
      expect(field(drained?.body, "result", "parts")).toEqual([{ kind: "text", text: "done: second" }])
      yield* eventually(world.platform.queue, (items) => items.every((item) => item.status === "completed"), "the drain")
      // through the proxy nothing brings the reply back (contract 1.9)
      expect((yield* fresh.status(second)).status).toBe("queued")
    }))

  it.scopedLive("pinned to 0.3, a busy 0.3 peer's overflow is queued once and delivered in 0.3 by the drain (its reply stays on the platform)", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const busy = yield* world.peer(WS_BUSY, { latency: "300 millis" }, 1, "0.3")
      const host = yield* world.host({ viaPlatformProxy: true, protocol: "0.3" })
      const first = yield* host.delegate({ workspaceId: WS_BUSY, task: "first" })
      yield* eventually(busy.active, (active) => active === 1, "the first request to reach the peer")
      const second = yield* host.delegate({ workspaceId: WS_BUSY, task: "second" })
      expect((yield* host.awaitSettled(second)).status).toBe("queued")
      expect((yield* host.awaitSettled(first)).protocolVersion).toBe("0.3")
      // the peer's heartbeat drains one item: the queued body, as it was sent, in 0.3
      yield* world.platform.heartbeat(WS_BUSY)
      const sent = yield* eventually(busy.requests, (all) => all.length === 2, "the queue to drain")
      expect(sent.map((r) => r.method)).toEqual(["message/send", "message/send"])
      // through the proxy nothing brings the reply back (contract 1.9): it stays queued until its deadline
      yield* eventually(world.platform.queue, (items) => items.every((item) => item.status === "completed"), "the drain")
      expect((yield* host.status(second)).status).toBe("queued")
    }))
})
