/**
 * Following a peer's task over its stream (the engine's side; the wire is in a2a-streaming.test.ts):
 * progress and artifact text in the delegation as they come, a dropped stream re-attached without a
 * second send, polling when the peer will not stream or re-attach, and plain sends without streaming.
 */
import { describe, expect, it } from "@effect/vitest"
import { A2ATransportTest, Delegations, DelegationsLayer, DiscoveryTest, PlatformMirrorTest, AuditMemory, RbacTest } from "effect-a2a-delegation"
import type { Delegation, GetTask, SendMessage, SendReply, TaskReply } from "effect-a2a-delegation"
import { DelegationToolkit, DelegationToolkitLive } from "effect-a2a-delegation/ai"
import { Chunk, Effect, Fiber, Layer, Stream, TestClock } from "effect"
import { PEER, PEER_URL, SELF, settings } from "./fixtures/layers.js"

const T = A2ATransportTest

const layerWith = (options: {
  readonly send?: A2ATransportTest.Script<SendMessage, SendReply>
  readonly getTask?: A2ATransportTest.Script<GetTask, TaskReply>
  readonly sendStream?: A2ATransportTest.StreamScript<SendMessage>
  readonly subscribe?: A2ATransportTest.StreamScript<GetTask>
  readonly streaming?: "auto" | "off"
}) =>
  DelegationsLayer.layerCore(settings({ streaming: options.streaming })).pipe(
    Layer.provideMerge(Layer.mergeAll(
      T.layer({
        send: options.send ?? [T.message("plain")],
        getTask: options.getTask,
        sendStream: options.sendStream,
        subscribe: options.subscribe
      }),
      DiscoveryTest.layer({ [PEER]: PEER_URL }),
      PlatformMirrorTest.layer(),
      AuditMemory.layer({ workspaceId: SELF }),
      RbacTest.layer({ allow: true })
    ))
  )

const requests = Effect.flatMap(T.A2ATransportTest, (t) =>
  Effect.all({ sent: t.sent, polled: t.polled, streamed: t.streamed, subscribed: t.subscribed }))

/** Delegates, and runs it to its end while recording every state `watch` shows. */
const delegateWatching = Effect.gen(function*() {
  const d = yield* Delegations
  const id = yield* d.delegate({ workspaceId: PEER, task: "research" })
  const watched = yield* Effect.fork(Stream.runCollect(d.watch(id)))
  yield* TestClock.adjust("1 minute")
  const final = yield* d.await(id)
  const seen = Chunk.toReadonlyArray(yield* Fiber.join(watched))
  return { final, seen }
})

const progressOf = (seen: ReadonlyArray<Delegation>) =>
  seen.flatMap((d) => (d.progress === undefined ? [] : [d.progress])).filter((p, i, all) => all.indexOf(p) === i)

const fullStream = [
  T.task("submitted", { id: "t-1" }),
  T.statusUpdate("working", { taskId: "t-1", message: "step 1 of 3" }),
  T.artifactChunk("part one, ", { taskId: "t-1" }),
  T.statusUpdate("working", { taskId: "t-1", message: "step 2 of 3" }),
  T.artifactChunk("part two", { taskId: "t-1", lastChunk: true }),
  T.statusUpdate("working", { taskId: "t-1", message: "step 3 of 3" }),
  T.statusUpdate("completed", { taskId: "t-1", final: true })
]

describe("streaming peers", () => {
  it.effect("a streamed task completes with the joined artifact text; watch saw each progress note in order; one streaming request, no polls", () =>
    Effect.gen(function*() {
      const { final, seen } = yield* delegateWatching
      expect(final.status).toBe("completed")
      expect(final.result).toBe("part one, part two")
      expect(final.taskId).toBe("t-1")
      expect(progressOf(seen)).toEqual(["step 1 of 3", "step 2 of 3", "step 3 of 3"])
      expect(seen.map((d) => d.partialResult).filter((p) => p !== undefined)).toContain("part one, ")
      const { polled, sent, streamed } = yield* requests
      expect([streamed.length, sent.length, polled.length]).toEqual([1, 0, 0])
    }).pipe(Effect.provide(layerWith({ sendStream: [fullStream] }))))

  it.effect("a dropped stream re-attaches with SubscribeToTask and completes, without a second send", () =>
    Effect.gen(function*() {
      const { final } = yield* delegateWatching
      expect(final.status).toBe("completed")
      expect(final.result).toBe("part one, part two")
      const { polled, sent, streamed, subscribed } = yield* requests
      expect([streamed.length, sent.length, polled.length, subscribed.length]).toEqual([1, 0, 0, 1])
      expect(subscribed[0]?.taskId).toBe("t-1")
      expect(streamed[0]?.messageId).toBeDefined()
    }).pipe(Effect.provide(layerWith({
      sendStream: [[...fullStream.slice(0, 3), T.dropped()]],
      subscribe: [[T.task("working", { id: "t-1" }), ...fullStream.slice(3)]]
    }))))

  it.effect("a peer that will not re-attach is polled from where the stream left off", () =>
    Effect.gen(function*() {
      const { final } = yield* delegateWatching
      expect(final.status).toBe("completed")
      expect(final.result).toBe("polled answer")
      const { polled, sent, streamed, subscribed } = yield* requests
      expect([streamed.length, sent.length, subscribed.length]).toEqual([1, 0, 1])
      expect(polled.length).toBeGreaterThan(0)
    }).pipe(Effect.provide(layerWith({
      sendStream: [[...fullStream.slice(0, 2), T.dropped()]],
      subscribe: [[T.rpcError(-32004, "resubscription is not supported")]],
      getTask: [T.task("completed", { id: "t-1", text: "polled answer" })]
    }))))

  it.effect("a stream that drops before its first event is a failed attempt: sent again with the same messageId", () =>
    Effect.gen(function*() {
      const { final } = yield* delegateWatching
      expect(final.status).toBe("completed")
      const { streamed } = yield* requests
      expect(streamed.length).toBe(2)
      expect(streamed[0]?.messageId).toBe(streamed[1]?.messageId)
      expect(final.attempts).toBe(2)
    }).pipe(Effect.provide(layerWith({ sendStream: [[T.dropped()], fullStream] }))))

  it.effect("a peer whose card says it streams but refuses gets a plain send, then polling", () =>
    Effect.gen(function*() {
      const { final } = yield* delegateWatching
      expect(final.result).toBe("after refusal")
      const { sent, streamed } = yield* requests
      expect([streamed.length, sent.length]).toEqual([1, 1])
    }).pipe(Effect.provide(layerWith({
      sendStream: [[T.rpcError(-32601, "Method not found")]],
      send: [T.message("after refusal")]
    }))))

  it.effect("a streamed Message ends the delegation at once", () =>
    Effect.gen(function*() {
      const { final } = yield* delegateWatching
      expect(final.result).toBe("quick answer")
    }).pipe(Effect.provide(layerWith({ sendStream: [[T.message("quick answer")]] }))))

  it.effect("DELEGATION_STREAMING=off sends plainly and polls, whatever the card says", () =>
    Effect.gen(function*() {
      const { final } = yield* delegateWatching
      expect(final.result).toBe("plain")
      const { sent, streamed } = yield* requests
      expect([streamed.length, sent.length]).toEqual([0, 1])
    }).pipe(Effect.provide(layerWith({ sendStream: [fullStream], streaming: "off" }))))

  it.effect("check_delegation_status shows a running delegation's latest progress", () =>
    Effect.gen(function*() {
      const d = yield* Delegations
      const id = yield* d.delegate({ workspaceId: PEER, task: "long research" })
      yield* TestClock.adjust("1 second")
      const toolkit = yield* DelegationToolkit
      const answer = yield* toolkit.handle("check_delegation_status", { task_id: id })
      expect(answer.result).toMatchObject({ status: "in_progress", progress: "step 2 of 3" })
    }).pipe(Effect.provide(DelegationToolkitLive.layer.pipe(Layer.provideMerge(layerWith({
      // The task keeps running after its second progress note.
      sendStream: [Stream.concat(Stream.fromIterable(fullStream.slice(0, 4)), Stream.never)]
    }))))))
})
