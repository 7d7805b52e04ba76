/**
 * The demo's streaming scene (demo/streaming.ts): the row shows the latest progress note while the task
 * runs, says when its stream was re-attached, and the result once it completes; the summary line states
 * how it was sent, the notes seen, the re-attach and whether it was polled.
 */
import { describe, expect, it } from "@effect/vitest"
import { Delegation, DelegationId } from "effect-a2a-delegation"
import { DateTime } from "effect"
import * as Streaming from "../demo/streaming.js"
import { renderTable, stripAnsi } from "../demo/table.js"

const T0 = DateTime.unsafeMake("2026-01-01T00:00:00.000Z")
const running = new Delegation({
  id: DelegationId.make("d-1"),
  workspaceId: Streaming.WORKSPACE,
  task: Streaming.TASK,
  status: "in_progress",
  attempts: 1,
  taskId: "task-1",
  createdAt: T0,
  updatedAt: T0
})
const sent = Streaming.requests(["SendStreamingMessage"])
const reattached = Streaming.requests(["SendStreamingMessage", "SubscribeToTask"])

describe("the streaming row", () => {
  it("shows the latest progress note, then the re-attach, then the text so far", () => {
    expect(Streaming.detail(running, Streaming.requests([]))).toBeUndefined()
    expect(Streaming.detail(running, sent)).toBe("streaming; no progress note yet")
    const drafting = new Delegation({ ...running, progress: "drafting section 2 of 3" })
    expect(Streaming.detail(drafting, sent)).toBe("▸ drafting section 2 of 3")
    expect(Streaming.detail(drafting, reattached)).toBe("▸ drafting section 2 of 3 · stream dropped, re-attached")
    const partial = new Delegation({ ...drafting, progress: "proofreading the brief", partialResult: "Demand is up 8% on Q2. " })
    expect(Streaming.detail(partial, reattached))
      .toBe("▸ proofreading the brief · stream dropped, re-attached · so far: \"Demand is up 8% on Q2.\"")
  })

  it("shows the result once completed, the error once failed", () => {
    const completed = new Delegation({ ...running, status: "completed", progress: "proofreading the brief", result: Streaming.RESULT })
    expect(Streaming.detail(completed, reattached)).toBe(Streaming.RESULT)
    const failed = new Delegation({ ...running, status: "failed", error: "Transport error: connection reset" })
    expect(Streaming.detail(failed, reattached)).toBe("Transport error: connection reset")
  })

  it("keeps the progress note visible at 80 columns", () => {
    const drafting = new Delegation({ ...running, progress: "drafting section 2 of 3" })
    const row = {
      task: Streaming.TASK,
      peer: "writer",
      version: "1.0",
      state: "in_progress",
      tries: 1,
      elapsed: "3.6s",
      detail: Streaming.detail(drafting, reattached),
      detailLines: 3
    }
    const text = renderTable([row], { width: 80, color: false }).slice(2).map(stripAnsi).join(" ")
    expect(text).toContain("writer·1.0")
    expect(text).toContain("▸ drafting section 2 of 3")
    expect(text).toContain("re-attached")
  })
})

describe("the streaming summary line", () => {
  const completed = new Delegation({ ...running, status: "completed", result: Streaming.RESULT })
  const seen = { progress: Streaming.SCRIPT.updates, partialResults: ["a", "ab", "abc"] }

  it("counts the peer's requests by what they do, in either version's names", () => {
    expect(Streaming.requests(["message/stream", "tasks/resubscribe", "tasks/get", "message/send"])).toEqual({
      methods: ["message/stream", "tasks/resubscribe", "tasks/get", "message/send"],
      streamedSends: 1,
      plainSends: 1,
      resubscribes: 1,
      taskReads: 1
    })
  })

  it("states the notes seen, one streaming request, one re-attach and no polling", () => {
    expect(Streaming.summary(completed, seen, reattached)).toBe(
      "  write the market brief: streamed (one request); 4 progress notes seen (reading 12 sources … proofreading " +
        "the brief), the text in 3 chunks; re-attached once after the stream dropped; no polling (the peer received " +
        "SendStreamingMessage, SubscribeToTask); completed"
    )
  })

  it("says so when the task was not streamed, or was polled", () => {
    const polled = Streaming.requests(["SendMessage", "GetTask", "GetTask"])
    expect(Streaming.summary(completed, { progress: [], partialResults: [] }, polled)).toBe(
      "  write the market brief: not streamed as expected: 0 streaming and 1 plain sends; no progress notes seen; " +
        "never re-attached; 2 task reads (polling) (the peer received SendMessage, GetTask, GetTask); completed"
    )
    expect(Streaming.summary(undefined, seen, reattached)).toBe("  write the market brief: it was never started")
  })
})
