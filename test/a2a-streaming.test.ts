/**
 * A2A streaming over real HTTP on 127.0.0.1: the live transport's `sendStream` and `subscribe`
 * (1.0 `SendStreamingMessage` / `SubscribeToTask`, v0.3 `message/stream` / `tasks/resubscribe`)
 * against `LocalPeer` and against the official SDK servers (`@a2a-js/sdk` 1.3 strict and with its
 * v0.3 compatibility layer, `@a2a-js/sdk` 0.3.14), each with an agent that publishes three status
 * updates and two appended artifact chunks before it completes.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { A2ATransport, A2ATransportHttp, PeerEndpoint } from "effect-a2a-delegation"
import type { A2A, A2AError, PeerProtocol } from "effect-a2a-delegation"
import { LocalPeer } from "effect-a2a-delegation/testing"
import { Chunk, Context, Deferred, Duration, Effect, Exit, Fiber, Layer, Stream } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import type { PeerOptions, SdkStreamingPeer } from "./fixtures/sdkStreamingPeers.js"
import { CHUNKS, UPDATES, v03StreamingPeer, v1StreamingPeer } from "./fixtures/sdkStreamingPeers.js"

const SELF = "ws-self"
const PEER = "ws-peer"


const transport = (
  options: { readonly protocol?: A2A.ProtocolSetting | undefined; readonly idle?: Duration.DurationInput | undefined } = {}
) =>
  Effect.map(
    Layer.build(
      A2ATransportHttp.layer({ workspaceId: SELF, timeout: "5 seconds", ...options }).pipe(
        Layer.provide(NodeHttpClient.layerUndici)
      )
    ),
    Context.get(A2ATransport)
  )

type Client = A2ATransport["Type"]
/** The contract's `StreamEvent` (not exported by name from the package index yet). */
type StreamEvent = Stream.Stream.Success<ReturnType<NonNullable<Client["sendStream"]>>>

const endpointOf = (url: string) => new PeerEndpoint({ id: PEER, url })

const streamOf = (client: Client, url: string, protocol: PeerProtocol, text: string, requestId = `r-${text}`) =>
  client.sendStream!({
    endpoint: endpointOf(url),
    protocol,
    messageId: `m-${text}`,
    requestId,
    delegationId: `d-${text}`,
    text,
    metadata: { parent_task_id: `d-${text}`, source_workspace_id: SELF, traceparent: null }
  })

const subscribeTo = (client: Client, url: string, protocol: PeerProtocol, taskId: string, requestId = `s-${taskId}`) =>
  client.subscribe!({ endpoint: endpointOf(url), protocol, requestId, taskId })

const collect = (stream: Stream.Stream<StreamEvent, A2AError>) =>
  Effect.map(Stream.runCollect(stream), Chunk.toReadonlyArray)

/** An event as a short line: its kind, the task state or the chunk, and its text. */
const describeEvent = (event: StreamEvent): string => {

  switch (event._tag) {
    case "MessageReply":
      return `message`
    case "TaskReply":
      return `task ${event.task.status.state}`
    case "TaskStatusUpdate":
      return `status ${event.state}${event.message === undefined ? "" : ` ${event.message}`}${event.final ? " final" : ""}`
    case "TaskArtifactUpdate":
      return `chunk ${event.text}${event.append ? " append" : ""}${event.lastChunk ? " last" : ""}`
  }
}

/** What the scripted agent streams after the task itself. */
const SCRIPTED = [
  ...UPDATES.map((text) => `status working ${text}`),
  `chunk ${CHUNKS[0]}`,
  `chunk ${CHUNKS[1]} append last`,
  "status completed final"
]

describe("LocalPeer streaming, through the live transport", () => {
  const script = { updates: UPDATES, chunks: CHUNKS, interval: "30 millis" } as const

  for (const version of ["1.0", "0.3"] as const) {
    it.scopedLive(`${version}: sendStream yields the task, the updates, the chunks and the completion, then ends`, () =>
      Effect.gen(function*() {
        const peer = yield* LocalPeer.make({ protocol: version, behaviour: { stream: script } })
        const client = yield* transport()
        const protocol = yield* client.protocolFor(endpointOf(peer.url))
        expect(protocol).toMatchObject({ version, source: "card", streaming: true })
        const events = yield* collect(streamOf(client, peer.url, protocol, "the report"))
        expect(events.map(describeEvent)).toEqual(["task submitted", ...SCRIPTED])
        const taskId = (events[0] as Extract<StreamEvent, { _tag: "TaskReply" }>).task.id
        expect(new Set(events.map((e) => (e._tag === "TaskReply" ? e.task.id : "taskId" in e ? e.taskId : "")))).toEqual(
          new Set([taskId])
        )
        const methods = (yield* peer.requests).map((r) => r.method)
        expect(methods).toEqual([version === "1.0" ? "SendStreamingMessage" : "message/stream"])
        const sent = (yield* peer.requests)[0]!
        expect(sent.headers["accept"]).toBe("text/event-stream")
        expect(sent.headers["a2a-version"]).toBe(version === "1.0" ? "1.0" : undefined)
      }))

    it.scopedLive(`${version}: subscribe re-attaches to a running task: the task as it is, then the rest`, () =>
      Effect.gen(function*() {
        const peer = yield* LocalPeer.make({ protocol: version, behaviour: { stream: script } })
        const client = yield* transport()
        const protocol = yield* client.protocolFor(endpointOf(peer.url))
        // The first two events, then the consumer stops (the connection is closed).
        const head = yield* collect(Stream.take(streamOf(client, peer.url, protocol, "the report"), 2))
        expect(head.map(describeEvent)).toEqual(["task submitted", SCRIPTED[0]])
        const taskId = (head[0] as Extract<StreamEvent, { _tag: "TaskReply" }>).task.id
        const rest = yield* collect(subscribeTo(client, peer.url, protocol, taskId))
        expect(rest[0]!._tag).toBe("TaskReply")
        expect(describeEvent(rest[0]!)).toBe("task working")
        expect(rest.slice(1).map(describeEvent)).toEqual(SCRIPTED.slice(SCRIPTED.length - (rest.length - 1)))
        expect(rest.length - 1).toBeGreaterThanOrEqual(4)
        expect(describeEvent(rest.at(-1)!)).toBe("status completed final")
        expect((yield* peer.requests).map((r) => r.method)).toEqual(
          version === "1.0" ? ["SendStreamingMessage", "SubscribeToTask"] : ["message/stream", "tasks/resubscribe"]
        )
      }))

    it.scopedLive(`${version}: a connection dropped mid-stream fails with A2ATransportError StreamDropped; a resubscribe finishes`, () =>
      Effect.gen(function*() {
        const peer = yield* LocalPeer.make({ protocol: version, behaviour: { stream: { ...script, dropAfter: 3 } } })
        const client = yield* transport()
        const protocol = yield* client.protocolFor(endpointOf(peer.url))
        const seen: Array<StreamEvent> = []
        const error = yield* Effect.flip(
          Stream.runForEach(streamOf(client, peer.url, protocol, "the report"), (event) => Effect.sync(() => seen.push(event)))
        )
        expect(seen.map(describeEvent)).toEqual(["task submitted", SCRIPTED[0], SCRIPTED[1]])
        expect(error).toMatchObject({ _tag: "A2ATransportError", reason: "StreamDropped" })
        expect(error.message).toContain("dropped")
        const taskId = (seen[0] as Extract<StreamEvent, { _tag: "TaskReply" }>).task.id
        const rest = yield* collect(subscribeTo(client, peer.url, protocol, taskId))
        expect(describeEvent(rest.at(-1)!)).toBe("status completed final")
      }))

    it.scopedLive(`${version}: a peer without streaming: no streaming in its card, and sendStream fails with a JsonRpcError`, () =>
      Effect.gen(function*() {
        const peer = yield* LocalPeer.make({ protocol: version, behaviour: {} })
        const client = yield* transport()
        const protocol = yield* client.protocolFor(endpointOf(peer.url))
        expect(protocol.streaming).toBeUndefined()
        const error = yield* Effect.flip(collect(streamOf(client, peer.url, protocol, "the report")))
        expect(error).toMatchObject({ _tag: "JsonRpcError", code: -32004, protocolVersion: version })
        const missing = yield* Effect.flip(collect(subscribeTo(client, peer.url, protocol, "no-such-task")))
        expect(missing).toMatchObject({ _tag: "JsonRpcError", code: -32001 })
      }))
  }

  it.scopedLive("the idle bound: a stream with no event for `idle` fails with A2ATransportError Timeout", () =>
    Effect.gen(function*() {
      const peer = yield* LocalPeer.make({ behaviour: { stream: { ...script, interval: "2 seconds" } } })
      const client = yield* transport({ idle: "300 millis" })
      const protocol = yield* client.protocolFor(endpointOf(peer.url))
      const error = yield* Effect.flip(collect(streamOf(client, peer.url, protocol, "slow")))
      expect(error).toMatchObject({ _tag: "A2ATransportError", reason: "Timeout" })
      expect(error.message).toContain("no stream event for")
    }))

  it.scopedLive("interrupting the consumer closes the connection", () =>
    Effect.gen(function*() {
      // A bare SSE server that sends the task and then nothing, and records when its request's connection closes.
      const closed = yield* Deferred.make<void>()
      const server = yield* Effect.acquireRelease(
        Effect.async<Http.Server>((resume) => {
          const server = Http.createServer((req, res) => {
            req.socket.on("close", () => Effect.runSync(Deferred.succeed(closed, undefined)))
            res.writeHead(200, { "content-type": "text/event-stream" })
            res.write(`data: ${JSON.stringify({ jsonrpc: "2.0", id: "r-slow", result: { task: { id: "t1", status: { state: "TASK_STATE_WORKING" } } } })}\n\n`)
          })
          server.listen(0, "127.0.0.1", () => resume(Effect.succeed(server)))
        }),
        (server) => Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
      )
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
      const client = yield* transport()
      const protocol: PeerProtocol = { version: "1.0", url, source: "pinned" }
      const first = yield* Deferred.make<StreamEvent>()
      const fiber = yield* Effect.fork(
        Stream.runForEach(streamOf(client, url, protocol, "slow"), (event) => Deferred.succeed(first, event))
      )
      expect(describeEvent(yield* Deferred.await(first))).toBe("task working")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      // The server sees its connection closed at once.
      yield* Deferred.await(closed).pipe(Effect.timeoutFail({ duration: "2 seconds", onTimeout: () => new Error("not closed") }))
    }))

  it.scopedLive("maxResponseBytes bounds a stream's events together: past it, A2AResponseError TooLarge", () =>
    Effect.gen(function*() {
      const peer = yield* LocalPeer.make({ behaviour: { stream: { ...script, chunks: ["x".repeat(5000), "y".repeat(5000)] } } })
      const client = yield* Effect.map(
        Layer.build(
          A2ATransportHttp.layer({ workspaceId: SELF, timeout: "5 seconds", maxResponseBytes: 4096 }).pipe(
            Layer.provide(NodeHttpClient.layerUndici)
          )
        ),
        Context.get(A2ATransport)
      )
      const protocol = yield* client.protocolFor(endpointOf(peer.url))
      const error = yield* Effect.flip(collect(streamOf(client, peer.url, protocol, "big")))
      expect(error).toMatchObject({ _tag: "A2AResponseError", reason: "TooLarge" })
    }))
})

describe("the official SDK servers, streaming", () => {
  const cases: ReadonlyArray<{
    readonly name: string
    readonly start: (options?: PeerOptions) => Effect.Effect<SdkStreamingPeer, never, Scope.Scope>
    readonly version: A2A.ProtocolVersion
    readonly pinned?: A2A.ProtocolSetting
  }> = [
    { name: "@a2a-js/sdk 1.3 (strict 1.0)", start: (o) => v1StreamingPeer(o), version: "1.0" },
    { name: "@a2a-js/sdk 1.3 compat, pinned to 0.3", start: (o) => v1StreamingPeer({ ...o, compat: true }), version: "0.3", pinned: "0.3" },
    { name: "@a2a-js/sdk 0.3.14", start: (o) => v03StreamingPeer(o), version: "0.3" }
  ]

  for (const { name, pinned, start, version } of cases) {
    describe(name, () => {
      it.scopedLive("sendStream yields the events in order with their texts and ends after the final one", () =>
        Effect.gen(function*() {
          const peer = yield* start()
          const client = yield* transport({ protocol: pinned })
          const protocol = yield* client.protocolFor(endpointOf(peer.url))
          expect(protocol.version).toBe(version)
          if (pinned === undefined) expect(protocol.streaming).toBe(true)
          const events = yield* collect(streamOf(client, peer.url, protocol, "stream: the report"))
          const lines = events.map(describeEvent)
          // The SDK servers start with the task (submitted or working).
          expect(lines[0]).toMatch(/^task (submitted|working)$/)
          expect(lines.slice(1)).toEqual(SCRIPTED)
          expect((yield* peer.received).filter((r) => r.httpMethod === "POST").map((r) => r.method)).toEqual([
            version === "1.0" ? "SendStreamingMessage" : "message/stream"
          ])
        }))

      it.scopedLive("subscribe re-attaches to a running task", () =>
        Effect.gen(function*() {
          const peer = yield* start()
          const client = yield* transport({ protocol: pinned })
          const protocol = yield* client.protocolFor(endpointOf(peer.url))
          const head = yield* collect(Stream.take(streamOf(client, peer.url, protocol, "stream: the report"), 2))
          const first = head[0]!
          if (first._tag !== "TaskReply") return yield* Effect.dieMessage(`expected the task first, got ${first._tag}`)
          const rest = yield* collect(subscribeTo(client, peer.url, protocol, first.task.id))
          expect(rest[0]!._tag).toBe("TaskReply")
          expect(describeEvent(rest.at(-1)!)).toBe("status completed final")
          const tail = rest.slice(1).map(describeEvent)
          expect(tail.length).toBeGreaterThanOrEqual(1)
          expect(SCRIPTED.slice(SCRIPTED.length - tail.length)).toEqual(tail)
          expect((yield* peer.received).filter((r) => r.httpMethod === "POST").map((r) => r.method)).toEqual(
            version === "1.0" ? ["SendStreamingMessage", "SubscribeToTask"] : ["message/stream", "tasks/resubscribe"]
          )
        }))

      it.scopedLive("a dropped connection fails with A2ATransportError StreamDropped", () =>
        Effect.gen(function*() {
          const peer = yield* start()
          const client = yield* transport({ protocol: pinned })
          const protocol = yield* client.protocolFor(endpointOf(peer.url))
          const error = yield* Effect.flip(collect(streamOf(client, peer.url, protocol, "drop: the report")))
          expect(error).toMatchObject({ _tag: "A2ATransportError", reason: "StreamDropped" })
        }))

      it.scopedLive("subscribe to an unknown task fails with its JsonRpcError (-32001)", () =>
        Effect.gen(function*() {
          const peer = yield* start()
          const client = yield* transport({ protocol: pinned })
          const protocol = yield* client.protocolFor(endpointOf(peer.url))
          const error = yield* Effect.flip(collect(subscribeTo(client, peer.url, protocol, "no-such-task")))
          expect(error).toMatchObject({ _tag: "JsonRpcError", code: -32001 })
        }))

      it.scopedLive("a peer without streaming answers a JsonRpcError", () =>
        Effect.gen(function*() {
          const peer = yield* start({ streaming: false })
          const client = yield* transport({ protocol: pinned })
          const protocol = yield* client.protocolFor(endpointOf(peer.url))
          expect(protocol.streaming).toBeUndefined()
          const error = yield* Effect.flip(collect(streamOf(client, peer.url, protocol, "stream: the report")))
          expect(error._tag).toBe("JsonRpcError")
          expect(error).toMatchObject({ code: -32004 })
        }))
    })
  }
})
