/**
 * Interop with the official A2A SDK over real HTTP on 127.0.0.1: delegations to a strict
 * `@a2a-js/sdk` 1.x server (with and without an agent card), to the same server with its v0.3
 * compatibility layer, and to an `@a2a-js/sdk` 0.3.14 server, through the live transport in `auto`
 * unless a test pins the version.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransport,
  A2ATransportHttp,
  AuditMemory,
  DelegationsLayer,
  DiscoveryTest,
  PeerEndpoint,
  PlatformMirrorTest,
  RbacTest
} from "effect-a2a-delegation"
import type { A2A, Delegation, PeerProtocol } from "effect-a2a-delegation"
import { Context, Duration, Effect, Layer, Schedule, Stream } from "effect"
import { start } from "./fixtures/e2e.js"
import type { SdkPeer } from "./fixtures/sdkPeers.js"
import { v03Peer, v1Peer } from "./fixtures/sdkPeers.js"

const SELF = "ws-self"
const PEER = "ws-peer"

/** The live transport over undici in `protocol`, with in-memory doubles for the platform side. */
const transportLayer = (protocol?: A2A.ProtocolSetting) =>
  A2ATransportHttp.layer({ workspaceId: SELF, timeout: "5 seconds", protocol }).pipe(
    Layer.provide(NodeHttpClient.layerUndici)
  )

/** A host whose only peer is `peer`, reached directly. */
const host = (peer: SdkPeer, protocol?: A2A.ProtocolSetting) =>
  start(
    DelegationsLayer.layerCore({
      workspaceId: SELF,
      history: 100,
      timeout: Duration.seconds(5),
      retrySchedule: DelegationsLayer.linearRetry(3, "50 millis"),
      pollSchedule: Schedule.spaced("50 millis")
    }).pipe(Layer.provide(Layer.mergeAll(
      transportLayer(protocol),
      DiscoveryTest.layer({ [PEER]: peer.url }),
      PlatformMirrorTest.layer(),
      AuditMemory.layer({ workspaceId: SELF }),
      RbacTest.layer({ allow: true })
    )))
  )

const delegateTo = (peer: SdkPeer, task: string, protocol?: A2A.ProtocolSetting) =>
  Effect.flatMap(host(peer, protocol), (delegations) =>
    Effect.flatMap(delegations.delegate({ workspaceId: PEER, task }), (id) => delegations.awaitSettled(id)))

const rpcCalls = (peer: SdkPeer) =>
  Effect.map(peer.received, (all) => all.filter((r) => r.httpMethod === "POST").map((r) => `${r.method} ${r.version ?? "-"}`))

const expectCompleted = (done: Delegation, result: string, version: A2A.ProtocolVersion) => {
  expect(done.status, done.error).toBe("completed")
  expect(done.result).toBe(result)
  expect(done.protocolVersion).toBe(version)
  expect(done.attempts).toBe(1)
}

describe("a strict @a2a-js/sdk 1.x peer", () => {
  it.scopedLive("with an agent card: a Message reply completes the delegation in 1.0", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      expectCompleted(yield* delegateTo(peer, "hello"), "echo: hello", "1.0")
      expect(yield* peer.cardRequests).toBe(1)
      const card = (yield* peer.received)[0]!
      expect(card).toMatchObject({ httpMethod: "GET", path: "/.well-known/agent-card.json", version: "1.0" })
      expect(yield* rpcCalls(peer)).toEqual(["SendMessage 1.0"])
    }))

  it.scopedLive("without an agent card at the well-known path: 1.0 is tried first and completes", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer({ card: false })
      expectCompleted(yield* delegateTo(peer, "hello"), "echo: hello", "1.0")
      expect(yield* rpcCalls(peer)).toEqual(["SendMessage 1.0"])
    }))

  it.scopedLive("a Task completed at once gives its artifact text", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      expectCompleted(yield* delegateTo(peer, "task: the report"), "artifact: the report", "1.0")
    }))

  it.scopedLive("a working Task is followed with GetTask until it completes", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      const done = yield* delegateTo(peer, "slow: the long report")
      expectCompleted(done, "artifact: the long report", "1.0")
      const calls = yield* rpcCalls(peer)
      expect(calls[0]).toBe("SendMessage 1.0")
      expect(calls.length).toBeGreaterThanOrEqual(2)
      expect(new Set(calls.slice(1))).toEqual(new Set(["GetTask 1.0"]))
    }))

  it.scopedLive("input-required fails the delegation as PeerTaskFailed input-required, with the peer's question", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      const done = yield* delegateTo(peer, "input: which quarter?")
      expect(done.status).toBe("failed")
      expect(done.protocolVersion).toBe("1.0")
      expect(done.cause).toMatchObject({ _tag: "PeerTaskFailed", reason: "input-required", detail: "need more input" })
      expect(done.error).toBe("Peer needs input (input-required); delegations cannot answer follow-up questions: need more input")
    }))

  it.scopedLive("pinned to 0.3, the delegation fails with -32009 VERSION_NOT_SUPPORTED kept in the cause", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      const done = yield* delegateTo(peer, "hello", "0.3")
      expect(done.status).toBe("failed")
      expect(done.attempts).toBe(1)
      expect(done.protocolVersion).toBe("0.3")
      expect(done.cause).toMatchObject({
        _tag: "JsonRpcError",
        code: -32009,
        reason: "VERSION_NOT_SUPPORTED",
        protocolVersion: "0.3"
      })
      expect(done.error).toContain("JSON-RPC error -32009 (VERSION_NOT_SUPPORTED)")
      expect(done.error).toContain("speaks only A2A 1.0")
      expect(yield* rpcCalls(peer)).toEqual(["message/send -"])
    }))
})

describe("an @a2a-js/sdk 0.3.14 peer", () => {
  it.scopedLive("with its card (whose url has no port): 0.3 at the discovered URL completes", () =>
    Effect.gen(function*() {
      const peer = yield* v03Peer()
      expectCompleted(yield* delegateTo(peer, "hello"), "echo: hello", "0.3")
      expect(yield* rpcCalls(peer)).toEqual(["message/send -"])
    }))

  it.scopedLive("without a card: 1.0 is answered -32601, the same message is resent once in 0.3 and completes", () =>
    Effect.gen(function*() {
      const peer = yield* v03Peer({ card: false })
      expectCompleted(yield* delegateTo(peer, "hello"), "echo: hello", "0.3")
      expect(yield* rpcCalls(peer)).toEqual(["SendMessage 1.0", "message/send -"])
      const [first, second] = (yield* peer.received).filter((r) => r.httpMethod === "POST")
      expect(first!.method).toBe("SendMessage")
      expect(second!.method).toBe("message/send")
    }))

  it.scopedLive("a working Task is followed with tasks/get until it completes", () =>
    Effect.gen(function*() {
      const peer = yield* v03Peer()
      expectCompleted(yield* delegateTo(peer, "slow: the long report"), "artifact: the long report", "0.3")
      const calls = yield* rpcCalls(peer)
      expect(calls[0]).toBe("message/send -")
      expect(new Set(calls.slice(1))).toEqual(new Set(["tasks/get -"]))
    }))

  it.scopedLive("input-required ends as PeerTaskFailed input-required, as for 1.0", () =>
    Effect.gen(function*() {
      const peer = yield* v03Peer()
      const done = yield* delegateTo(peer, "input: which quarter?")
      expect(done.cause).toMatchObject({ _tag: "PeerTaskFailed", reason: "input-required", detail: "need more input" })
    }))
})

describe("a 1.x peer with the v0.3 compatibility layer", () => {
  it.scopedLive("auto reads its card and speaks 1.0", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer({ compat: true })
      expectCompleted(yield* delegateTo(peer, "hello"), "echo: hello", "1.0")
      expect(yield* rpcCalls(peer)).toEqual(["SendMessage 1.0"])
    }))

  it.scopedLive("pinned to 0.3, it answers message/send in 0.3", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer({ compat: true })
      expectCompleted(yield* delegateTo(peer, "task: the report", "0.3"), "artifact: the report", "0.3")
      expect(yield* rpcCalls(peer)).toEqual(["message/send -"])
    }))
})

describe("the transport against the SDK servers", () => {
  const transport = (protocol?: A2A.ProtocolSetting) =>
    Effect.map(Layer.build(transportLayer(protocol)), Context.get(A2ATransport))
  const endpointOf = (peer: SdkPeer) => new PeerEndpoint({ id: PEER, url: peer.url })
  const sendTask = (client: A2ATransport["Type"], peer: SdkPeer, protocol: PeerProtocol, text: string) =>
    client.send({
      endpoint: endpointOf(peer),
      protocol,
      messageId: `m-${text}`,
      requestId: `r-${text}`,
      delegationId: `d-${text}`,
      text,
      metadata: { parent_task_id: `d-${text}`, source_workspace_id: SELF, traceparent: null }
    })

  it.scopedLive("1.0: GetTask of an unknown task keeps -32001 and its reason TASK_NOT_FOUND", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      const client = yield* transport()
      const protocol = yield* client.protocolFor(endpointOf(peer))
      expect(protocol).toEqual({ version: "1.0", url: peer.url, source: "card" })
      const error = yield* Effect.flip(client.getTask({ endpoint: endpointOf(peer), protocol, requestId: "g-1", taskId: "no-such-task" }))
      expect(error).toMatchObject({
        _tag: "JsonRpcError",
        code: -32001,
        rpcMessage: "Task not found: no-such-task",
        reason: "TASK_NOT_FOUND",
        protocolVersion: "1.0"
      })
    }))

  it.scopedLive("1.0: CancelTask cancels a working task; a completed one is TASK_NOT_CANCELABLE", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      const client = yield* transport()
      const protocol = yield* client.protocolFor(endpointOf(peer))
      const working = yield* sendTask(client, peer, protocol, "hang: forever")
      if (working._tag !== "TaskReply") return yield* Effect.dieMessage(`expected a Task, got ${working._tag}`)
      expect(working.task.status.state).toBe("working")
      const canceled = yield* client.cancelTask({ endpoint: endpointOf(peer), protocol, requestId: "c-1", taskId: working.task.id })
      expect(canceled.task.id).toBe(working.task.id)
      expect(canceled.task.status.state).toBe("canceled")

      const done = yield* sendTask(client, peer, protocol, "task: done")
      if (done._tag !== "TaskReply") return yield* Effect.dieMessage(`expected a Task, got ${done._tag}`)
      const error = yield* Effect.flip(client.cancelTask({ endpoint: endpointOf(peer), protocol, requestId: "c-2", taskId: done.task.id }))
      expect(error).toMatchObject({ _tag: "JsonRpcError", code: -32002, reason: "TASK_NOT_CANCELABLE" })
      const calls = yield* rpcCalls(peer)
      expect(calls.filter((call) => call.startsWith("CancelTask"))).toEqual(["CancelTask 1.0", "CancelTask 1.0"])
    }))

  it.scopedLive("0.3: tasks/cancel cancels a working task of the 0.3.14 server", () =>
    Effect.gen(function*() {
      const peer = yield* v03Peer()
      const client = yield* transport()
      const protocol = yield* client.protocolFor(endpointOf(peer))
      expect(protocol).toEqual({ version: "0.3", url: peer.url, source: "card" })
      const working = yield* sendTask(client, peer, protocol, "hang: forever")
      if (working._tag !== "TaskReply") return yield* Effect.dieMessage(`expected a Task, got ${working._tag}`)
      const canceled = yield* client.cancelTask({ endpoint: endpointOf(peer), protocol, requestId: "c-1", taskId: working.task.id })
      expect(canceled.task.status.state).toBe("canceled")
      expect((yield* rpcCalls(peer)).at(-1)).toBe("tasks/cancel -")
    }))
})

describe("the choice is made once per peer and shared by the layer's delegations", () => {
  const twenty = (peer: SdkPeer, first: "alone" | "with the others") =>
    Effect.gen(function*() {
      const delegations = yield* host(peer)
      const run = (n: number) =>
        Effect.flatMap(delegations.delegate({ workspaceId: PEER, task: `hello ${n}` }), (id) => delegations.awaitSettled(id))
      const head = first === "alone" ? [yield* run(0)] : []
      const others = yield* Effect.forEach(
        Array.from({ length: first === "alone" ? 19 : 20 }, (_, i) => i + head.length),
        run,
        { concurrency: "unbounded" }
      )
      return [...head, ...others]
    })

  it.scopedLive("20 delegations at once to a peer with a card: 1 card request, every one in 1.0", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      const done = yield* twenty(peer, "with the others")
      expect(done.map((d) => d.status)).toEqual(Array(20).fill("completed"))
      expect(new Set(done.map((d) => d.protocolVersion))).toEqual(new Set(["1.0"]))
      expect(yield* peer.cardRequests).toBe(1)
      expect((yield* rpcCalls(peer)).filter((call) => call !== "SendMessage 1.0")).toEqual([])
    }))

  it.scopedLive("20 delegations to a 0.3.14 peer without a card: 1 wrong-version answer in total", () =>
    Effect.gen(function*() {
      const peer = yield* v03Peer({ card: false })
      const done = yield* twenty(peer, "alone")
      expect(done.map((d) => d.status)).toEqual(Array(20).fill("completed"))
      expect(done.map((d) => d.attempts)).toEqual(Array(20).fill(1))
      expect(new Set(done.map((d) => d.protocolVersion))).toEqual(new Set(["0.3"]))
      expect(yield* peer.cardRequests).toBe(1)
      const calls = yield* rpcCalls(peer)
      expect(calls.filter((call) => call.startsWith("SendMessage"))).toHaveLength(1)
      expect(calls.filter((call) => call === "message/send -")).toHaveLength(20)
    }))
})

describe("cancelling a delegation to an @a2a-js/sdk 1.x peer", () => {
  it.scopedLive("while it follows a working task: the peer receives CancelTask and its task ends canceled", () =>
    Effect.gen(function*() {
      const peer = yield* v1Peer()
      const delegations = yield* host(peer)
      const id = yield* delegations.delegate({ workspaceId: PEER, task: "hang: until cancelled" })
      // Watch until the peer's task id is known: the delegation is following a working task.
      const following = yield* delegations.watch(id).pipe(
        Stream.takeUntil((d) => d.taskId !== undefined),
        Stream.runLast,
        Effect.flatten
      )
      expect(following.status).toBe("in_progress")
      const taskId = following.taskId!
      const cancelled = yield* delegations.cancel(id)
      expect(cancelled.status).toBe("cancelled")
      expect(cancelled.taskId).toBe(taskId)
      const calls = yield* rpcCalls(peer)
      expect(calls.filter((call) => call.startsWith("CancelTask"))).toEqual(["CancelTask 1.0"])
      // The peer's own record of the task.
      const client = yield* Effect.map(Layer.build(transportLayer()), Context.get(A2ATransport))
      const endpoint = new PeerEndpoint({ id: PEER, url: peer.url })
      const protocol = yield* client.protocolFor(endpoint)
      const task = yield* client.getTask({ endpoint, protocol, requestId: "g-after", taskId })
      expect(task.task.status.state).toBe("canceled")
      expect((yield* delegations.status(id)).status).toBe("cancelled")
    }))

  it.scopedLive("to an @a2a-js/sdk 0.3.14 peer: tasks/cancel, in the version the task was created in", () =>
    Effect.gen(function*() {
      const peer = yield* v03Peer()
      const delegations = yield* host(peer)
      const id = yield* delegations.delegate({ workspaceId: PEER, task: "hang: until cancelled" })
      const following = yield* delegations.watch(id).pipe(
        Stream.takeUntil((d) => d.taskId !== undefined),
        Stream.runLast,
        Effect.flatten
      )
      expect(following.protocolVersion).toBe("0.3")
      const cancelled = yield* delegations.cancel(id)
      expect(cancelled.status).toBe("cancelled")
      const calls = yield* rpcCalls(peer)
      expect(calls.filter((call) => call.startsWith("tasks/cancel"))).toEqual(["tasks/cancel -"])
    }))
})
