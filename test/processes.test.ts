/**
 * Hosts as separate processes over the built package (`dist/`, built once here), each configured from
 * its environment (`NodeDelegationsLive`: `DELEGATION_STORE`, `DELEGATION_LEASE`, ...), against a
 * `LocalPlatform` and `LocalPeer`s over real HTTP in this process: a host killed with SIGKILL while
 * its delegation runs, and another finishing it; two replicas on one PostgreSQL; a database outage.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import { execFile, spawn } from "node:child_process"
import type { ChildProcessWithoutNullStreams } from "node:child_process"
import * as Fs from "node:fs/promises"
import * as Os from "node:os"
import * as Path from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"
import { makeWorld, SELF } from "./fixtures/e2e.js"
import type { World } from "./fixtures/e2e.js"
import * as PgTest from "./fixtures/postgres.js"
import { startServer } from "./fixtures/pgServer.js"

const root = fileURLToPath(new URL("..", import.meta.url))
const hostScript = Path.join(root, "test", "fixtures", "replicaHost.mjs")

beforeAll(() =>
  new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [Path.join(root, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.build.json"], { cwd: root }, (error, stdout) =>
      error === null ? resolve() : reject(new Error(`build failed: ${stdout}`)))
  ), 180_000)

let tmp = ""
beforeAll(async () => {
  tmp = await Fs.mkdtemp(Path.join(Os.tmpdir(), "delegation-processes-"))
})
afterAll(() => Fs.rm(tmp, { recursive: true, force: true }))

interface Host {
  readonly child: ChildProcessWithoutNullStreams
  /** Sends a command and waits for its answer. */
  readonly run: (command: Record<string, unknown>) => Promise<{ readonly ok?: any; readonly error?: string }>
  readonly kill: () => void
}

/** Starts a host process and waits until its layer is built. */
const startHost = (world: World, env: Readonly<Record<string, string>>): Promise<Host> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [hostScript], {
      cwd: root,
      env: {
        ...process.env,
        WORKSPACE_ID: SELF,
        PLATFORM_URL: world.platform.url,
        PLATFORM_TOKEN: world.selfToken,
        DELEGATION_RETRY_DELAY: "0.2",
        DISCOVERY_CACHE_TTL: "0",
        ...env
      }
    })
    const waiting = new Map<number, (answer: any) => void>()
    let next = 0
    let stderr = ""
    child.stderr.on("data", (chunk) => (stderr += String(chunk)))
    child.once("exit", (code) => {
      if (!ready) reject(new Error(`host exited (${code}) before it was ready:\n${stderr}`))
    })
    let ready = false
    createInterface({ input: child.stdout }).on("line", (line) => {
      let answer: any
      try {
        answer = JSON.parse(line)
      } catch {
        return
      }
      if (answer.n === 0) {
        ready = true
        resolve({
          child,
          run: (command) =>
            new Promise((done) => {
              const n = ++next
              waiting.set(n, done)
              child.stdin.write(`${JSON.stringify(command)}\n`)
            }),
          kill: () => child.kill("SIGKILL")
        })
        return
      }
      waiting.get(answer.n)?.(answer)
      waiting.delete(answer.n)
    })
  })

const promise = <A>(f: () => Promise<A>) => Effect.promise(f)

/** Stops a host at the end of the test, whatever happened. */
const hostIn = (world: World, env: Readonly<Record<string, string>>) =>
  Effect.acquireRelease(promise(() => startHost(world, env)), (host) => Effect.sync(() => host.kill()))

/** Polls `status` on `host` until `done` holds (every 100 ms, at most `within`), and returns that state. */
const statusUntil = (host: Host, id: string, done: (d: any) => boolean, within: Duration.DurationInput = "20 seconds") => {
  const poll: Effect.Effect<any> = Effect.flatMap(promise(() => host.run({ op: "status", id })), (answer) =>
    answer.ok !== undefined && done(answer.ok) ? Effect.succeed(answer.ok) : Effect.zipRight(Effect.sleep("100 millis"), poll))
  return poll.pipe(Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`status of ${id} never matched`) }))
}

const sendsAt = (peer: { readonly requests: Effect.Effect<ReadonlyArray<{ readonly body: unknown }>> }) =>
  Effect.map(peer.requests, (all) =>
    all.filter((r) => {
      const method = (r.body as { readonly method?: string } | undefined)?.method
      return method === "SendMessage" || method === "message/send"
    }).length)

describe("hosts as processes", () => {
  it.scopedLive("SQLite: a host killed with SIGKILL mid-delegation is finished by the next host on the file, with one request at the peer", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const slow = crypto.randomUUID()
      const peer = yield* world.peer(slow, { result: "task", latency: "5 seconds" })
      const store = `sqlite:${Path.join(tmp, "killed.db")}`
      const first = yield* promise(() => startHost(world, { DELEGATION_STORE: store, DELEGATION_LEASE: "2" }))
      const { ok: id } = yield* promise(() => first.run({ op: "delegate", workspaceId: slow, task: "outlive me" }))
      // The peer created its task, and the host stored its id: then the host dies.
      yield* statusUntil(first, id, (d) => d.taskId !== undefined)
      first.kill()
      const second = yield* hostIn(world, { DELEGATION_STORE: store, DELEGATION_LEASE: "2" })
      const final = (yield* promise(() => second.run({ op: "await", id }))).ok
      expect(final.status).toBe("completed")
      expect(final.result).toBe("done: outlive me")
      expect(yield* sendsAt(peer)).toBe(1)
    }), 60_000)

  it.scopedLive("PostgreSQL: two replica processes share delegations - one idempotency key, await and cancel across them", () =>
    Effect.gen(function*() {
      const world = yield* makeWorld
      const [longId, quickId] = [crypto.randomUUID(), crypto.randomUUID()]
      const peer = yield* world.peer(longId, { result: "task", latency: "30 seconds" })
      const quick = yield* world.peer(quickId, { result: "task", latency: "1 second" })
      const database = Context.get(yield* Layer.build(PgTest.layer), PgTest.PgTestDatabase)
      const env = { DELEGATION_STORE: Redacted.value(database.url), DELEGATION_LEASE: "3" }
      const [a, b] = yield* Effect.all([hostIn(world, { ...env, DELEGATION_REPLICA_ID: "a" }), hostIn(world, { ...env, DELEGATION_REPLICA_ID: "b" })], {
        concurrency: 2
      })
      // One key on both replicas at once: one delegation, one request at the peer.
      const [onA, onB] = yield* promise(() =>
        Promise.all([
          a.run({ op: "delegate", workspaceId: quickId, task: "once", idempotencyKey: "key-1" }),
          b.run({ op: "delegate", workspaceId: quickId, task: "once", idempotencyKey: "key-1" })
        ])
      )
      expect(onB.ok).toBe(onA.ok)
      // B awaits what A (or B) runs.
      const awaited = (yield* promise(() => b.run({ op: "await", id: onA.ok }))).ok
      expect(awaited.status).toBe("completed")
      expect(yield* sendsAt(quick)).toBe(1)
      // A runs a long one; B cancels it; A stops it and cancels the peer's task.
      const { ok: long } = yield* promise(() => a.run({ op: "delegate", workspaceId: longId, task: "long" }))
      yield* statusUntil(b, long, (d) => d.taskId !== undefined)
      const cancelled = yield* promise(() => b.run({ op: "cancel", id: long }))
      expect(cancelled.ok.status).toBe("cancelled")
      expect((yield* promise(() => a.run({ op: "status", id: long }))).ok.status).toBe("cancelled")
      const cancels = (yield* peer.requests).filter((r) => {
        const method = (r.body as { readonly method?: string } | undefined)?.method
        return method === "CancelTask" || method === "tasks/cancel"
      })
      expect(cancels.length).toBe(1)
    }), 60_000)

  it.scopedLive("PostgreSQL: the database goes away for a few seconds mid-delegation, and the delegation still completes", () =>
    Effect.gen(function*() {
      const server = yield* Effect.acquireRelease(promise(() => startServer()), (s) => promise(() => s.stop()))
      const world = yield* makeWorld
      const outage = crypto.randomUUID()
      yield* world.peer(outage, { result: "task", latency: "4 seconds" })
      const host = yield* hostIn(world, { DELEGATION_STORE: server.url, DELEGATION_LEASE: "3" })
      const { ok: id } = yield* promise(() => host.run({ op: "delegate", workspaceId: outage, task: "through an outage" }))
      yield* statusUntil(host, id, (d) => d.taskId !== undefined)
      yield* promise(() => server.pause())
      yield* Effect.sleep("4 seconds")
      yield* promise(() => server.resume())
      const final = yield* statusUntil(host, id, (d) => d.status === "completed" || d.status === "failed", "30 seconds")
      expect(final.status).toBe("completed")
      expect(final.result).toBe("done: through an outage")
    }), 60_000)
})
