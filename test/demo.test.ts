/**
 * `npm run -s demo -- --json` end to end, as a user runs it (from source, through tsx's loader): every row
 * settles as the README says; the crash scene's delegation, started by a host process that is killed
 * with SIGKILL, is completed by the second host on the same SQLite file with one request sent to the peer;
 * the streaming peer's delegation shows its progress notes in order, re-attached once after its stream
 * dropped, with one streaming send and no polling.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import { createRequire } from "node:module"
import * as Path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import * as Streaming from "../demo/streaming.js"

const root = fileURLToPath(new URL("..", import.meta.url))
// tsx's loader, as `npm run demo` has it (vitest's `import.meta` has no `resolve`).
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href

interface Row {
  readonly label: string
  readonly host: string
  readonly status: string
  readonly attempts: number
  readonly protocolVersion: string | null
  readonly result?: string
  readonly streaming?: {
    readonly progressSeen: ReadonlyArray<string>
    readonly partialResultsSeen: ReadonlyArray<string>
    readonly peerMethods: ReadonlyArray<string>
  }
  readonly takeover?: {
    readonly file: string | null
    readonly startedBy: { readonly replica: string; readonly process: string; readonly pid: number | null }
    readonly killed: { readonly signal: string; readonly atSeconds: number } | null
    readonly finishedBy: { readonly replica: string; readonly process: string } | null
    readonly peerSends: number
    readonly peerTaskReads: number
    readonly error?: string
  }
}

const runDemo = () =>
  new Promise<{ readonly auditLog: string; readonly delegations: ReadonlyArray<Row>; readonly refused: ReadonlyArray<Row> }>(
    (resolve, reject) =>
      execFile(
        process.execPath,
        ["--import", tsx, Path.join(root, "demo", "main.ts"), "--json"],
        { cwd: root, env: { ...process.env, NO_COLOR: "1" }, timeout: 90_000, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          if (error !== null) return reject(new Error(`the demo failed: ${error.message}\n${stderr}`))
          try {
            resolve(JSON.parse(stdout))
          } catch (cause) {
            reject(new Error(`the demo printed no JSON: ${String(cause)}\n${stdout}\n${stderr}`))
          }
        }
      )
  )

describe("npm run demo -- --json", () => {
  it("settles every row; a killed host's delegation is finished by the next host on its SQLite file; the streaming one is streamed", async () => {
    const demo = await runDemo()
    try {
      const status = Object.fromEntries([...demo.delegations, ...demo.refused].map((row) => [row.label, row.status]))
      expect(status).toEqual({
        "summarise the Q3 report": "completed",
        "translate the memo": "completed",
        "list open incidents": "completed",
        "write the market brief": "completed",
        "audit the ledger": "completed",
        "audit the payroll": "completed",
        "audit the expenses": "failed",
        "rebuild the index": "failed",
        "reconcile the accounts": "completed",
        "intern delegates": "denied",
        "bad peer id": "invalid"
      })

      const row = demo.delegations.find((d) => d.label === "reconcile the accounts")!
      expect(row.result).toBe("settled \"reconcile the accounts\"")
      expect(row.host).toBe("ws-ops: ops-a (child process, killed) → ops-b (demo process)")
      expect(row.attempts).toBe(1)
      const takeover = row.takeover!
      expect(takeover.error).toBeUndefined()
      expect(takeover.startedBy).toMatchObject({ replica: "ops-a", process: "child" })
      expect(takeover.startedBy.pid).toBeGreaterThan(0)
      expect(takeover.killed?.signal).toBe("SIGKILL")
      expect(takeover.finishedBy).toEqual({ replica: "ops-b", process: "demo" })
      // One send, by host A; host B only read the task.
      expect(takeover.peerSends).toBe(1)
      expect(takeover.peerTaskReads).toBeGreaterThan(0)
      // The SQLite file's temporary directory is gone once the demo has exited.
      expect(takeover.file).not.toBeNull()
      expect(Fs.existsSync(Path.dirname(takeover.file!))).toBe(false)
      // Host A was killed, not left behind.
      expect(() => process.kill(takeover.startedBy.pid!, 0)).toThrow()

      // The streaming peer: its card offers streaming, so auto sends the task as a stream (1.0 here).
      const streamed = demo.delegations.find((d) => d.label === "write the market brief")!
      expect(streamed.host).toBe("ws-orchestrator")
      expect(streamed.protocolVersion).toBe("1.0")
      expect(streamed.attempts).toBe(1)
      expect(streamed.result).toBe(Streaming.SCRIPT.chunks.join(""))
      // Every note the peer sent, in order, as the host's watch emitted them (none was lost to the drop).
      expect(streamed.streaming?.progressSeen).toEqual(Streaming.SCRIPT.updates)
      // The text grew chunk by chunk to the result.
      expect(streamed.streaming?.partialResultsSeen.at(-1)).toBe(streamed.result)
      expect(streamed.streaming?.partialResultsSeen.length).toBeGreaterThan(1)
      // One streaming send, one re-attach after the drop, and no GetTask (no polling).
      expect(streamed.streaming?.peerMethods).toEqual(["SendStreamingMessage", "SubscribeToTask"])
    } finally {
      // The demo keeps its audit log for the reader; the test does not.
      Fs.rmSync(Path.dirname(demo.auditLog), { recursive: true, force: true })
    }
  }, 120_000)
})
