/**
 * The demo's table (demo/table.ts): it fits the terminal, keeps every state, the
 * A2A version spoken to each peer and the informative part of errors, and has no
 * colour when told so.
 */
import { describe, expect, it } from "@effect/vitest"
import { Delegation, DelegationId } from "effect-a2a-delegation"
import { DateTime, Option } from "effect"
import {
  colorEnabled,
  peerCell,
  redraw,
  renderTable,
  screenRows,
  stripAnsi,
  type TableRow,
  visibleWidth,
  wrap,
  wrapIndented
} from "../demo/table.js"
import * as Takeover from "../demo/takeover.js"

const longError =
  "Transport error: HTTP 502 (failed to reach workspace agent: connect ECONNREFUSED 10.20.30.40:8000 after 3 attempts)"

// As the demo has them: a strict 1.0 peer and an old 0.3 one reached directly, a 0.3 peer through the proxy.
const rows: ReadonlyArray<TableRow> = [
  {
    task: "summarise the Q3 report",
    peer: "fast",
    version: "1.0",
    state: "completed",
    tries: 1,
    elapsed: "0.6s",
    detail: "answer to \"summarise the Q3 report\""
  },
  { task: "translate the memo", peer: "fast", version: "1.0", state: "in_progress", tries: 1, elapsed: "0.3s" },
  { task: "list open incidents", peer: "legacy", version: "0.3", state: "completed", tries: 1, elapsed: "0.9s", detail: "notes" },
  { task: "audit the ledger", peer: "busy", state: "pending", tries: 0, elapsed: "0.0s" },
  {
    task: "audit the payroll",
    peer: "busy",
    version: "0.3",
    state: "queued",
    tries: 1,
    elapsed: "2.7s",
    detail: "workspace agent busy — request queued, will dispatch when capacity available",
    queueDepth: 2
  },
  { task: "rebuild the index", peer: "broken", version: "1.0", state: "failed", tries: 3, elapsed: "1.7s", detail: longError },
  { task: "intern delegates", peer: "fast", state: "denied", tries: 0, detail: "RBAC: no 'delegate' permission. Roles: [read-only]" },
  {
    task: "bad peer id",
    peer: "ws busy; rm -rf /",
    state: "invalid",
    tries: 0,
    detail: "Invalid workspaceId (pattern): only letters, digits and . _ : - are allowed"
  }
]

/** The table read back: each row's peer and state cells and its whole detail text (first line plus continuation lines). */
const readBack = (lines: ReadonlyArray<string>) => {
  const plain = lines.map(stripAnsi)
  const header = plain[0]!
  const peerAt = header.indexOf("peer")
  const stateAt = header.indexOf("state")
  const detailAt = header.indexOf("result")
  const parsed: Array<{ peer: string; state: string; detail: string }> = []
  for (const line of plain.slice(2)) {
    const state = line.slice(stateAt, stateAt + 11).trim()
    const detail = line.slice(detailAt).trim()
    if (state !== "") parsed.push({ peer: line.slice(peerAt, stateAt).trim(), state, detail })
    else parsed[parsed.length - 1]!.detail += ` ${detail}`
  }
  return parsed
}

describe("demo table", () => {
  for (const width of [80, 120, 200]) {
    describe(`at ${width} columns`, () => {
      const colored = renderTable(rows, { width, color: true })
      const plain = renderTable(rows, { width, color: false })

      it("prints no line wider than the terminal", () => {
        for (const line of [...colored, ...plain]) expect(visibleWidth(line)).toBeLessThanOrEqual(width)
      })

      it("names the A2A version spoken after each peer, and none where no request was sent", () => {
        expect(readBack(plain).map((row) => row.peer)).toEqual([
          "fast·1.0",
          "fast·1.0",
          "legacy·0.3",
          "busy",
          "busy·0.3",
          "broken·1.0",
          "fast",
          "ws busy; …"
        ])
      })

      it("shows every row's state, in order", () => {
        expect(readBack(plain).map((row) => row.state)).toEqual(rows.map((row) => row.state))
        expect(readBack(colored).map((row) => row.state)).toEqual(rows.map((row) => row.state))
      })

      it("keeps the informative part of an error: the HTTP status and the reason", () => {
        const failed = readBack(plain).find((row) => row.state === "failed")!
        expect(failed.detail).toContain("HTTP 502")
        expect(failed.detail).toContain("failed to reach workspace agent")
        const invalid = readBack(plain).find((row) => row.state === "invalid")!
        expect(invalid.detail).toContain("only letters, digits")
      })

      it("shows the queue depth of a queued row", () => {
        expect(readBack(plain).find((row) => row.state === "queued")!.detail).toContain("queue depth 2")
      })

      it("has no escape codes without colour, and colours the states with it", () => {
        expect(plain.join("\n")).not.toContain("\x1b")
        expect(colored.join("\n")).toContain("\x1b[31mfailed")
      })
    })
  }

  it("a cancelled row is coloured and keeps its reason", () => {
    const cancelled = [{ task: "no longer needed", peer: "fast", state: "cancelled", tries: 1, detail: "cancelled: cancelled by the host" }]
    expect(renderTable(cancelled, { width: 100, color: true }).join("\n")).toContain("\x1b[90mcancelled")
    expect(readBack(renderTable(cancelled, { width: 100, color: false }))[0]!.detail).toContain("cancelled by the host")
  })

  it("the whole long error fits at 120 columns, and at 200 on the row's first line", () => {
    expect(readBack(renderTable(rows, { width: 120, color: false })).find((r) => r.state === "failed")!.detail)
      .toBe(longError)
    const wide = renderTable(rows, { width: 200, color: false })
    expect(wide.some((line) => line.endsWith(longError))).toBe(true)
  })

  it("cuts a peer's name before its version", () => {
    expect(peerCell("legacy", "0.3", 10)).toBe("legacy·0.3")
    expect(peerCell("legacy", "0.3", 7)).toBe("le…·0.3")
    expect(peerCell("legacy", undefined, 7)).toBe("legacy")
    expect(peerCell("a-very-long-peer", "1.0", 5)).toBe("a-ve…")
    // At 60 columns the peer column is 6 wide.
    expect(readBack(renderTable(rows, { width: 60, color: false }))[2]!.peer).toBe("l…·0.3")
  })

  it("stays within the width and the height on a tiny terminal", () => {
    for (const width of [20, 40, 60]) {
      const lines = renderTable(rows, { width, height: 8, color: true })
      expect(lines.length).toBeLessThanOrEqual(8)
      for (const line of lines) expect(visibleWidth(line)).toBeLessThanOrEqual(width)
    }
    expect(renderTable(rows, { width: 80, height: 6, color: false }).at(-1)).toMatch(/more rows/)
  })

  it("drops continuation lines before rows when the screen is short", () => {
    const lines = renderTable(rows, { width: 80, height: 10, color: false })
    expect(lines).toHaveLength(2 + rows.length)
    expect(readBack(lines).map((row) => row.state)).toEqual(rows.map((row) => row.state))
  })

  it("strips control characters a peer's answer may carry", () => {
    const lines = renderTable(
      [{ task: "t", peer: "p", state: "completed", detail: "evil\x1b[2J\nanswer\ttext" }],
      { width: 80, color: false }
    )
    expect(lines.join("\n")).not.toContain("\x1b")
    expect(lines[2]).toContain("evil [2J answer text")
  })

  it("counts wide characters as two columns", () => {
    const lines = renderTable(
      [{ task: "翻訳する", peer: "p", state: "completed", detail: "答え".repeat(60) }],
      { width: 80, color: false }
    )
    for (const line of lines) expect(visibleWidth(line)).toBeLessThanOrEqual(80)
  })

  it("NO_COLOR with any non-empty value turns colour off; so does a pipe", () => {
    expect(colorEnabled(true, undefined)).toBe(true)
    expect(colorEnabled(true, "")).toBe(true)
    expect(colorEnabled(true, "1")).toBe(false)
    expect(colorEnabled(true, "false")).toBe(false)
    expect(colorEnabled(false, undefined)).toBe(false)
  })

  it("wraps words, splits a word longer than the line, and marks what it cut", () => {
    expect(wrap("aaa bbb ccc", 7)).toEqual(["aaa bbb", "ccc"])
    expect(wrap("abcdefghij", 4)).toEqual(["abcd", "efgh", "ij"])
    expect(wrap("one two three four five", 9, 2)).toEqual(["one two", "three…"])
    expect(wrapIndented("  completed 5  failed 1", 80, 4)).toEqual(["  completed 5  failed 1"])
    expect(wrapIndented("  a b c d e f g h", 14, 2)).toEqual(["  a b c d e f", "    g h"])
    expect(wrapIndented("  a b c d e", 8, 2)).toEqual(["  a b c", "d e"])
    // A label and its spaces are kept; the rest wraps under the text after them.
    expect(wrapIndented("  writer    streams a note a second, then its text", 30, 4))
      .toEqual(["  writer    streams a note a", "            second, then its", "            text"])
    // Unless that leaves the text fewer than ten columns.
    expect(wrapIndented("  writer    streams a note", 20, 2)).toEqual(["  writer streams a", "    note"])
  })

  it("counts the screen rows a previous frame takes, also after the terminal narrowed", () => {
    expect(screenRows(["x".repeat(80), "", "y"], 80)).toBe(3)
    expect(screenRows(["x".repeat(120)], 80)).toBe(2)
  })

  it("redraws over the previous frame's rows and clears below, never from the top left corner", () => {
    expect(redraw(0, ["a", "b"])).toBe("\x1b[2Ka\n\x1b[2Kb\n\x1b[J")
    expect(redraw(3, ["a"])).toBe("\r\x1b[3A\x1b[2Ka\n\x1b[J")
  })

  it("a row may take more detail lines than its state gives (the crash scene's completed row)", () => {
    const text = "host A (pid 4242) killed with SIGKILL at 5.5s; host B finished it (demo process, same SQLite file): " +
      "settled \"reconcile the accounts\""
    const row = { task: "reconcile the accounts", peer: "slow", version: "1.0", state: "completed", tries: 1, detail: text }
    expect(readBack(renderTable([row], { width: 120, color: false }))[0]!.detail).not.toBe(text)
    const lines = renderTable([{ ...row, detailLines: 3 }], { width: 120, color: false })
    expect(readBack(lines)[0]!.detail).toBe(text)
    expect(lines.length).toBeGreaterThan(3)
    // A short screen still takes continuation lines away first.
    expect(renderTable([{ ...row, detailLines: 3 }, ...rows], { width: 80, height: 11, color: false })).toHaveLength(11)
  })
})

describe("the crash scene's row", () => {
  const T0 = DateTime.unsafeMake("2026-01-01T00:00:00.000Z")
  const started = DateTime.toEpochMillis(T0)
  const running = new Delegation({
    id: DelegationId.make("d-1"),
    workspaceId: "slow",
    task: "reconcile the accounts",
    status: "in_progress",
    attempts: 1,
    taskId: "task-1",
    createdAt: T0,
    updatedAt: T0
  })
  const completed = new Delegation({ ...running, status: "completed", result: "settled" })
  // Host B is only looked at for being there; the row never calls it.
  const survivor = {} as NonNullable<Takeover.Takeover["survivor"]>

  it("names the host that runs it, then the one that finished it after the other was killed", () => {
    expect(Takeover.detail({}, Option.none(), 2, started)).toMatch(/^starting host A, a separate process/)
    expect(Takeover.detail({ pid: 42, reported: running }, Option.some(running), 2, started))
      .toMatch(/^on host A \(pid 42\)/)
    const killed = { pid: 42, reported: running, killedAt: started + 5_500 }
    expect(Takeover.detail(killed, Option.some(running), 2, started))
      .toBe("host A (pid 42) killed with SIGKILL at 5.5s; host B (demo process, same SQLite file) takes it over once A's 2 s lease lapses")
    expect(Takeover.detail({ ...killed, survivor }, Option.some(completed), 2, started))
      .toBe("host A (pid 42) killed with SIGKILL at 5.5s; host B finished it (demo process, same SQLite file): settled")
    expect(Takeover.isOver({ ...killed, survivor }, Option.some(running))).toBe(false)
    expect(Takeover.isOver({ ...killed, survivor }, Option.some(completed))).toBe(true)
    // Finished as host A last reported it, with no host B: not the scene's end.
    expect(Takeover.isOver({ ...killed }, Option.some(completed))).toBe(false)
  })

  it("a scene that broke says why, and is over", () => {
    const broken = { pid: 42, error: "host A exited (code 1) before the peer's task was working: boom" }
    expect(Takeover.detail(broken, Option.none(), 2, started)).toBe(`the crash scene broke: ${broken.error}`)
    expect(Takeover.isOver(broken, Option.none())).toBe(true)
  })
})
