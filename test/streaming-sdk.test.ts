/**
 * Delegations to the official SDK's streaming servers (`@a2a-js/sdk` 1.x, strict 1.0, and 0.3.14), over
 * real HTTP with the live transport in `auto`: the card says the peer streams, so the task is sent as a
 * stream and followed event by event; a dropped stream is re-attached; a peer whose card does not offer
 * streaming gets a send and polling.
 */
import { NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransportHttp,
  AuditMemory,
  Delegations,
  DelegationsLayer,
  DiscoveryTest,
  PlatformMirrorTest,
  RbacTest
} from "effect-a2a-delegation"
import { Chunk, Context, Effect, Fiber, Layer, Schedule, Stream } from "effect"
import { settings } from "./fixtures/layers.js"
import { CHUNKS, UPDATES, v03StreamingPeer, v1StreamingPeer } from "./fixtures/sdkStreamingPeers.js"
import type { SdkStreamingPeer } from "./fixtures/sdkStreamingPeers.js"

const SELF = "ws-self"
const PEER = "ws-sdk-peer"

/** A host over the live transport (`auto`), discovering the peer at `url`. */
const host = (url: string) =>
  Layer.build(
    DelegationsLayer.layerCore(settings({
      workspaceId: SELF,
      retrySchedule: DelegationsLayer.linearRetry(3, "100 millis"),
      pollSchedule: Schedule.spaced("100 millis")
    })).pipe(
      Layer.provide(Layer.mergeAll(
        A2ATransportHttp.layer({ workspaceId: SELF, timeout: "10 seconds", protocol: "auto" }).pipe(
          Layer.provide(NodeHttpClient.layerUndici)
        ),
        DiscoveryTest.layer({ [PEER]: url }),
        PlatformMirrorTest.layer(),
        AuditMemory.layer({ workspaceId: SELF }),
        RbacTest.layer({ allow: true })
      ))
    )
  ).pipe(Effect.map(Context.get(Delegations)))

/** Runs one delegation to its end, with every state `watch` showed. */
const delegateWatching = (peer: SdkStreamingPeer, task: string) =>
  Effect.gen(function*() {
    const delegations = yield* host(peer.url)
    const id = yield* delegations.delegate({ workspaceId: PEER, task })
    const watched = yield* Effect.fork(Stream.runCollect(delegations.watch(id)))
    const final = yield* delegations.await(id, { timeout: "20 seconds" })
    const seen = Chunk.toReadonlyArray(yield* Fiber.join(watched))
    const methods = (yield* peer.received).filter((r) => r.httpMethod === "POST").map((r) => r.method)
    return { final, seen, methods }
  })

const progressOf = (seen: ReadonlyArray<{ readonly progress?: string | undefined }>) =>
  seen.flatMap((d) => (d.progress === undefined ? [] : [d.progress])).filter((p, i, all) => all.indexOf(p) === i)

const servers = [
  { name: "@a2a-js/sdk 1.x (A2A 1.0)", start: v1StreamingPeer, stream: "SendStreamingMessage", subscribe: "SubscribeToTask", send: "SendMessage" },
  { name: "@a2a-js/sdk 0.3.14 (A2A v0.3)", start: v03StreamingPeer, stream: "message/stream", subscribe: "tasks/resubscribe", send: "message/send" }
] as const

describe.each(servers)("a delegation to the $name streaming server", (server) => {
  it.scopedLive("three status updates and two artifact chunks: completed with the joined text, each update seen in order, one streaming request and no GetTask", () =>
    Effect.gen(function*() {
      const peer = yield* server.start()
      const { final, methods, seen } = yield* delegateWatching(peer, "stream: the report")
      expect(final.status).toBe("completed")
      expect(final.result).toBe(CHUNKS.join(""))
      expect(progressOf(seen)).toEqual(UPDATES)
      expect(methods).toEqual([server.stream])
    }), 30_000)

  it.scopedLive("a stream dropped mid-way is re-attached with a subscription and completes, with no second send", () =>
    Effect.gen(function*() {
      const peer = yield* server.start()
      const { final, methods, seen } = yield* delegateWatching(peer, "resume: the report")
      expect(final.status).toBe("completed")
      expect(final.result).toBe(CHUNKS.join(""))
      expect(progressOf(seen)[0]).toBe(UPDATES[0])
      expect(methods).toEqual([server.stream, server.subscribe])
    }), 30_000)

  it.scopedLive("a peer whose card does not offer streaming gets a send and polling", () =>
    Effect.gen(function*() {
      const peer = yield* server.start({ streaming: false })
      const { final, methods } = yield* delegateWatching(peer, "stream: the report")
      expect(final.status).toBe("completed")
      // The polled task keeps the appended chunks as parts of one artifact; parts are read one per line.
      expect(final.result).toBe(CHUNKS.join("\n"))
      expect(methods[0]).toBe(server.send)
      expect(methods).not.toContain(server.stream)
    }), 30_000)
})
