/**
 * The `AUDIT_LOG_PATH` sink (`AuditFile`): one JSON object per line, through
 * `@effect/platform`'s `FileSystem`, wired by `DelegationsLive` when the host
 * provides a file system, and never able to fail a delegation.
 */
import { NodeContext, NodeHttpClient } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import {
  A2ATransportTest,
  AccessDenied,
  AuditFile,
  Delegations,
  DelegationsLayer,
  DelegationsLive,
  DiscoveryTest,
  PlatformMirrorTest,
  RbacTest
} from "effect-a2a-delegation"
import type { AuditRecord, DelegationStoreError, SendMessage, SendReply } from "effect-a2a-delegation"
import { NodeDelegationsLive } from "effect-a2a-delegation/node"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import type { ConfigError } from "effect"
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { A2ATransportTest as Transport } from "effect-a2a-delegation"
import { captureLogs, makeWorld, start, workspace } from "./fixtures/e2e.js"
import * as Http from "./fixtures/http.js"
import { PEER, PEER_URL, SELF, settings } from "./fixtures/layers.js"

/** The peers, as workspace UUIDs. */
const WS_PEER = workspace("peer")

// --- helpers -------------------------------------------------------------------------------------

/** A fresh directory under the OS temp dir, removed with the test's scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "audit-file-test-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/** The audit file's lines, parsed; `[]` when the file does not exist. */
const readLines = (path: string): ReadonlyArray<AuditRecord> => {
  if (!existsSync(path)) return []
  const text = readFileSync(path, "utf8")
  expect(text.endsWith("\n")).toBe(true)
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as AuditRecord)
}

const STANDARD_FIELDS = ["timestamp", "event_type", "workspace_id", "actor", "action", "resource", "outcome", "trace_id"]

/** The core service over the in-memory layers, auditing to a file through Node's file system. */
const fileLayer = (options: {
  readonly path: string
  readonly send: Transport.Script<SendMessage, SendReply>
  readonly allow?: boolean
}) =>
  DelegationsLayer.layerCore(settings()).pipe(
    Layer.provideMerge(Layer.mergeAll(
      A2ATransportTest.layer({ send: options.send }),
      DiscoveryTest.layer({ [PEER]: PEER_URL }),
      PlatformMirrorTest.layer(),
      AuditFile.layer({ path: options.path, workspaceId: SELF }).pipe(Layer.provide(NodeContext.layer)),
      RbacTest.layer({ allow: options.allow ?? true })
    ))
  )

/** Builds a layer for the rest of the test's scope and returns its `Delegations`. */
const build = <E>(layer: Layer.Layer<Delegations, E>) => Effect.map(Layer.build(layer), Context.get(Delegations))

const delegateAndAwait = (delegations: Delegations["Type"], task = "do stuff", workspaceId = PEER) =>
  Effect.flatMap(delegations.delegate({ workspaceId, task }), delegations.awaitSettled)

// --- (a) the file sink under the core service ---------------------------------------------------------

describe("AuditFile under the core service", () => {
  it.scoped("a completed delegation writes two JSON lines: dispatched then success", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "audit.jsonl")
      const delegations = yield* build(fileLayer({ path, send: [A2ATransportTest.message("done")] }))
      const task = "t".repeat(250)
      const done = yield* delegateAndAwait(delegations, task)
      expect(done.status).toBe("completed")

      const lines = readLines(path)
      expect(lines.map((line) => line.outcome)).toEqual(["dispatched", "success"])
      for (const line of lines) {
        expect(Object.keys(line)).toEqual(expect.arrayContaining([...STANDARD_FIELDS, "delegation_id"]))
        expect(line).toMatchObject({
          event_type: "delegation",
          workspace_id: SELF,
          actor: SELF,
          action: "delegate",
          resource: PEER,
          trace_id: done.traceId,
          delegation_id: done.id
        })
        expect(line.trace_id).toMatch(/^[0-9a-f]{32}$/)
        // the TestClock's time, as ISO 8601
        expect(line.timestamp).toBe("1970-01-01T00:00:00.000Z")
      }
      expect(lines[0]!["task_preview"]).toBe("t".repeat(200))
      expect(lines[1]!["attempt"]).toBe(1)
    }))

  it.scoped("creates the file's directory when it is missing", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "nested", "deeper", "audit.jsonl")
      expect(existsSync(join(dir, "nested"))).toBe(false)
      const delegations = yield* build(fileLayer({ path, send: [A2ATransportTest.message("done")] }))
      const done = yield* delegateAndAwait(delegations)
      expect(done.status).toBe("completed")
      expect(readLines(path).map((line) => [line.outcome, line.delegation_id])).toEqual([
        ["dispatched", done.id],
        ["success", done.id]
      ])
    }))

  it.scoped("appends to an existing file and keeps what was there", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "audit.jsonl")
      writeFileSync(path, `${JSON.stringify({ earlier: true })}\n`)
      const delegations = yield* build(fileLayer({ path, send: [A2ATransportTest.message("done")] }))
      yield* delegateAndAwait(delegations)
      const lines = readLines(path)
      expect(lines).toHaveLength(3)
      expect(lines[0]).toEqual({ earlier: true })
      expect(lines.slice(1).map((line) => line.outcome)).toEqual(["dispatched", "success"])
    }))

  it.scoped("failed and queued delegations are written with their outcome", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "audit.jsonl")
      const delegations = yield* build(fileLayer({
        path,
        send: (request) =>
          request.text === "queue" ? A2ATransportTest.queued({ queueId: "q-1" }) : A2ATransportTest.rpcError(-32000, "kaput")
      }))
      const failed = yield* delegateAndAwait(delegations, "fail")
      const queued = yield* delegateAndAwait(delegations, "queue")
      expect([failed.status, queued.status]).toEqual(["failed", "queued"])
      const lines = readLines(path)
      expect(lines.filter((l) => l.delegation_id === failed.id).map((l) => l.outcome)).toEqual(["dispatched", "failure"])
      expect(lines.filter((l) => l.delegation_id === queued.id).map((l) => l.outcome)).toEqual(["dispatched", "queued"])
      expect(lines.find((l) => l.outcome === "failure")).toMatchObject({
        last_error: failed.error,
        reason: "JsonRpcError",
        attempt: 1
      })
      expect(lines.find((l) => l.outcome === "queued")).toMatchObject({ queue_id: "q-1", attempt: 1 })
    }))

  it.scoped("an RBAC denial is written as an rbac line", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "audit.jsonl")
      const delegations = yield* build(fileLayer({ path, send: [A2ATransportTest.message("done")], allow: false }))
      const error = yield* Effect.flip(delegations.delegate({ workspaceId: PEER, task: "do stuff" }))
      expect(error).toBeInstanceOf(AccessDenied)
      const lines = readLines(path)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatchObject({
        event_type: "rbac",
        action: "rbac.deny",
        outcome: "denied",
        resource: PEER,
        workspace_id: SELF,
        actor: SELF,
        attempted_action: "delegate",
        roles: ["operator"]
      })
      expect(Object.keys(lines[0]!)).toEqual(expect.arrayContaining(STANDARD_FIELDS))
    }))

  it.scoped("concurrent delegations never interleave inside a line", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "audit.jsonl")
      const delegations = yield* build(fileLayer({ path, send: [A2ATransportTest.message("done")] }))
      const tasks = Array.from({ length: 25 }, (_, i) => `task ${i} ${"x".repeat(300)}`)
      const done = yield* Effect.forEach(tasks, (task) => delegateAndAwait(delegations, task), { concurrency: "unbounded" })
      expect(done.every((d) => d.status === "completed")).toBe(true)
      const lines = readLines(path) // every line parses
      expect(lines).toHaveLength(50)
      for (const d of done) {
        expect(lines.filter((l) => l.delegation_id === d.id).map((l) => l.outcome)).toEqual(["dispatched", "success"])
      }
    }))
})

// --- (c) a path that cannot be written ------------------------------------------------------------------

describe("an unwritable AUDIT_LOG_PATH", () => {
  it.scoped("the delegation completes as usual and each dropped event is a warning", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      // a regular file where the directory should be: creating the directory fails (ENOTDIR / EEXIST)
      writeFileSync(join(dir, "file.txt"), "not a directory")
      const path = join(dir, "file.txt", "audit.jsonl")
      const logs = captureLogs()
      const delegations = yield* build(fileLayer({ path, send: [A2ATransportTest.message("done anyway")] }))
      const done = yield* delegateAndAwait(delegations).pipe(Effect.provide(logs.layer))

      expect(done.status).toBe("completed")
      expect(done.result).toBe("done anyway")
      expect(done.error).toBeUndefined()
      expect(done.attempts).toBe(1)
      expect(readFileSync(join(dir, "file.txt"), "utf8")).toBe("not a directory")

      const warnings = logs.lines.filter((line) => line.level === "WARN")
      expect(warnings).toHaveLength(2) // dispatched and success, both dropped
      for (const warning of warnings) {
        expect(warning.message).toContain(`audit write to ${path} failed; the event is dropped`)
      }
    }))

  it.scoped("an RBAC denial still fails with AccessDenied only", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      writeFileSync(join(dir, "file.txt"), "not a directory")
      const path = join(dir, "file.txt", "audit.jsonl")
      const logs = captureLogs()
      const delegations = yield* build(fileLayer({ path, send: [A2ATransportTest.message("done")], allow: false }))
      const error = yield* Effect.flip(delegations.delegate({ workspaceId: PEER, task: "x" })).pipe(
        Effect.provide(logs.layer)
      )
      expect(error).toBeInstanceOf(AccessDenied)
      expect(logs.lines.filter((line) => line.level === "WARN").map((line) => line.message)).toEqual([
        expect.stringContaining(`audit write to ${path} failed`)
      ])
    }))
})

// --- (b) through the live configuration -------------------------------------------------------------------

describe("AUDIT_LOG_PATH through the live configuration", () => {
  /** `DelegationsLive` from a config map, over undici, with Node's file system. */
  const liveFromEnv = (env: Readonly<Record<string, string>>) =>
    DelegationsLive.pipe(
      Layer.provide(Layer.merge(NodeHttpClient.layerUndici, NodeContext.layer)),
      Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))
    )

  it.scopedLive("DelegationsLive with NodeContext writes the file; a read-only host writes its denial", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "logs", "audit.jsonl")
      const world = yield* makeWorld
      yield* world.peer(WS_PEER, { reply: (task) => `echo: ${task}` })
      const env = {
        WORKSPACE_ID: SELF,
        PLATFORM_URL: world.platform.url,
        PLATFORM_TOKEN: world.selfToken,
        AUDIT_LOG_PATH: path
      }
      const logs = captureLogs()

      const host = yield* start(liveFromEnv(env)).pipe(Effect.provide(logs.layer))
      const done = yield* delegateAndAwait(host, "ping", WS_PEER).pipe(Effect.provide(logs.layer))
      expect(done.status).toBe("completed")
      expect(done.result).toBe("echo: ping")

      const readOnly = yield* start(liveFromEnv({ ...env, RBAC_ROLES: "read-only" })).pipe(Effect.provide(logs.layer))
      const denied = yield* Effect.flip(readOnly.delegate({ workspaceId: WS_PEER, task: "not allowed" })).pipe(
        Effect.provide(logs.layer)
      )
      expect(denied).toBeInstanceOf(AccessDenied)

      const lines = readLines(path)
      expect(lines.map((line) => [line.event_type, line.action, line.outcome])).toEqual([
        ["delegation", "delegate", "dispatched"],
        ["delegation", "delegate", "success"],
        ["rbac", "rbac.deny", "denied"]
      ])
      for (const line of lines) {
        expect(Object.keys(line)).toEqual(expect.arrayContaining(STANDARD_FIELDS))
        expect(line).toMatchObject({ workspace_id: SELF, actor: SELF, resource: WS_PEER })
        expect(Number.isNaN(Date.parse(line.timestamp))).toBe(false)
      }
      expect(lines[0]).toMatchObject({ delegation_id: done.id, trace_id: done.traceId })
      expect(lines[1]).toMatchObject({ delegation_id: done.id, trace_id: done.traceId, attempt: 1 })
      expect(lines[2]).toMatchObject({ attempted_action: "delegate", roles: ["read-only"] })

      // the file sink replaced the log sink: no audit log lines, no warning
      expect(logs.lines.filter((line) => line.message.startsWith("audit "))).toEqual([])
      expect(logs.lines.filter((line) => line.level === "WARN")).toEqual([])
    }))

  it.scopedLive("NodeDelegationsLive brings its own file system", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "audit.jsonl")
      const world = yield* makeWorld
      yield* world.peer(WS_PEER, { reply: (task) => `echo: ${task}` })
      const layer: Layer.Layer<Delegations, ConfigError.ConfigError | DelegationStoreError> = NodeDelegationsLive.pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
          ["WORKSPACE_ID", SELF],
          ["PLATFORM_URL", world.platform.url],
          ["PLATFORM_TOKEN", world.selfToken],
          ["AUDIT_LOG_PATH", path]
        ]))))
      )
      const host = yield* start(layer)
      const done = yield* delegateAndAwait(host, "ping", WS_PEER)
      expect(done.status).toBe("completed")
      expect(readLines(path).map((line) => [line.outcome, line.delegation_id])).toEqual([
        ["dispatched", done.id],
        ["success", done.id]
      ])
    }))
})

// --- (d) a path but no file system --------------------------------------------------------------------------

describe("AUDIT_LOG_PATH without a FileSystem", () => {
  const PLATFORM = "http://platform:8080"
  const network = Http.layer((request) =>
    Effect.succeed(
      request.url === `${PLATFORM}/registry/discover/${PEER}`
        ? Http.reply(200, { id: PEER, url: "http://peer:8000/a2a", name: "Peer" })
        : request.url === "http://peer:8000/a2a"
        ? Http.reply(200, {
          jsonrpc: "2.0",
          id: (request.body as { readonly id?: unknown } | undefined)?.id ?? null,
          result: { kind: "message", role: "agent", messageId: "m-1", parts: [{ kind: "text", text: "pong" }] }
        })
        : Http.reply(200, { status: "ok" })
    )
  )

  it.scoped("the stack still builds, warns, and audits to the log", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "audit.jsonl")
      const logs = captureLogs()
      const layer = DelegationsLive.pipe(
        Layer.provide(network),
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([
          ["WORKSPACE_ID", SELF],
          ["PLATFORM_URL", PLATFORM],
          ["AUDIT_LOG_PATH", path],
          ["AUDIT_LOG_LEVEL", "Info"],
          // The scripted peer answers every request with a v0.3 Message.
          ["A2A_PROTOCOL", "0.3"]
        ]))))
      )
      const host = yield* start(layer).pipe(Effect.provide(logs.layer))
      expect(logs.lines.filter((line) => line.level === "WARN").map((line) => line.message)).toEqual([
        "AUDIT_LOG_PATH is set but no FileSystem/Path is provided (add NodeContext.layer); audit events go to the log"
      ])

      const done = yield* delegateAndAwait(host, "ping").pipe(Effect.provide(logs.layer))
      expect(done.status).toBe("completed")
      expect(done.result).toBe("pong")
      expect(existsSync(path)).toBe(false)
      expect(logs.lines.filter((line) => line.level === "INFO").map((line) => line.message)).toEqual([
        "audit delegation dispatched",
        "audit delegation success"
      ])
    }))
})
