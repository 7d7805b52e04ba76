/**
 * The demo's streaming scene: writer, an A2A 1.0 peer whose agent card says `capabilities.streaming`,
 * works on its task for about 10 s: a progress note every 1.2 s, then its text in three chunks. It closes the
 * stream once, mid-way. The orchestrator (`A2A_PROTOCOL` auto) reads the card, sends the task as a stream
 * (`SendStreamingMessage`), re-attaches after the drop (`SubscribeToTask`) without sending it again, and
 * never polls. Here: the peer's script, the watcher that collects the progress notes as the host's
 * `watch` emits them, and the row, the summary line and the JSON facts as pure functions.
 */
import type { Delegation, Delegations } from "effect-a2a-delegation"
import type { LocalPeer } from "effect-a2a-delegation/testing"
import { Effect, Fiber, Ref, Stream } from "effect"

/** The peer's workspace id on the platform (the platform takes only UUIDs as targets). */
export const WORKSPACE = "57ea0000-5c4e-4d11-8a2e-0000000057ea"

export const TASK = "write the market brief"

/** What the peer streams: a note every 1.2 s, then the text in chunks; the connection closed once, mid-way. */
export const SCRIPT = {
  updates: ["reading 12 sources", "outlining 3 sections", "drafting section 2 of 3", "proofreading the brief"],
  chunks: ["Demand is up 8% on Q2. ", "Two rivals cut prices. ", "Advice: hold prices."],
  // The host re-attaches 0.5 s after the drop (DELEGATION_RETRY_DELAY), well before the next note.
  interval: "1200 millis",
  // Four events (the task, then the first three notes) and the socket is closed, mid-response.
  dropAfter: 4
} satisfies LocalPeer.StreamScript

/** The answer the streamed chunks make. */
export const RESULT = SCRIPT.chunks.join("")

/** What the host's `watch` showed of the delegation while it ran: each new progress note and partial result. */
export interface Seen {
  readonly progress: ReadonlyArray<string>
  readonly partialResults: ReadonlyArray<string>
}

/**
 * Follows the delegation with `watch(id)` in the background, for the rest of the scope, and returns an
 * effect that waits for the watch's end (after the delegation's final state) and gives what it saw.
 */
export const watchProgress = (delegations: Delegations["Type"], id: string) =>
  Effect.gen(function*() {
    const seen = yield* Ref.make<Seen>({ progress: [], partialResults: [] })
    const append = (list: ReadonlyArray<string>, value: string | undefined) =>
      value === undefined || list.at(-1) === value ? list : [...list, value]
    const fiber = yield* delegations.watch(id).pipe(
      Stream.runForEach((d) =>
        Ref.update(seen, (s) => ({
          progress: append(s.progress, d.progress),
          partialResults: append(s.partialResults, d.partialResult)
        }))
      ),
      Effect.forkScoped
    )
    return Effect.zipRight(Effect.ignore(Fiber.join(fiber)), Ref.get(seen))
  })

/** The peer's JSON-RPC requests for the delegation, counted by what they do (either version's names). */
export interface Requests {
  readonly methods: ReadonlyArray<string>
  readonly streamedSends: number
  readonly plainSends: number
  readonly resubscribes: number
  readonly taskReads: number
}

export const requests = (methods: ReadonlyArray<string>): Requests => {
  const count = (...names: ReadonlyArray<string>) => methods.filter((m) => names.includes(m)).length
  return {
    methods,
    streamedSends: count("SendStreamingMessage", "message/stream"),
    plainSends: count("SendMessage", "message/send"),
    resubscribes: count("SubscribeToTask", "tasks/resubscribe"),
    taskReads: count("GetTask", "tasks/get")
  }
}

/**
 * The row's detail: while it runs, the latest progress note (`▸ drafting section 2 of 3`), whether the
 * stream was re-attached, and the text received so far; once it is over, the result or the error.
 */
export const detail = (d: Delegation, peer: Requests): string | undefined => {
  if (d.status === "completed") return d.result
  if (d.status === "failed" || d.status === "cancelled") return d.error
  if (d.status !== "in_progress") return undefined
  const parts = [
    d.progress === undefined ? (peer.streamedSends > 0 ? "streaming; no progress note yet" : undefined) : `▸ ${d.progress}`,
    peer.resubscribes > 0 ? "stream dropped, re-attached" : undefined,
    d.partialResult === undefined ? undefined : `so far: "${d.partialResult.trim()}"`
  ]
  return parts.filter((part) => part !== undefined).join(" · ") || undefined
}

/** The summary's line: how the task was sent, what the watch saw, whether it was re-attached or polled. */
export const summary = (d: Delegation | undefined, seen: Seen, peer: Requests): string => {
  if (d === undefined) return `  ${TASK}: it was never started`
  const notes = seen.progress.length
  const how = peer.streamedSends === 1 && peer.plainSends === 0
    ? "streamed (one request)"
    : `not streamed as expected: ${peer.streamedSends} streaming and ${peer.plainSends} plain sends`
  const noted = notes === 0
    ? "no progress notes seen"
    : `${notes} progress note${notes === 1 ? "" : "s"} seen (${seen.progress[0]}${notes > 1 ? ` … ${seen.progress.at(-1)}` : ""})`
  const chunks = seen.partialResults.length
  const text = chunks === 0 ? "" : `, the text in ${chunks} chunk${chunks === 1 ? "" : "s"}`
  const reattached = peer.resubscribes === 0
    ? "never re-attached"
    : `re-attached ${peer.resubscribes === 1 ? "once" : `${peer.resubscribes} times`} after the stream dropped`
  const polled = peer.taskReads === 0 ? "no polling" : `${peer.taskReads} task reads (polling)`
  const outcome = d.status === "completed" ? "completed" : `${d.status}${d.error === undefined ? "" : `: ${d.error}`}`
  return `  ${TASK}: ${how}; ${noted}${text}; ${reattached}; ${polled} (the peer received ${
    peer.methods.join(", ") || "nothing"
  }); ${outcome}`
}
