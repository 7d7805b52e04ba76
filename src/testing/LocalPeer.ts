/**
 * A local A2A v0.3 peer over real HTTP (`message/send`, `tasks/get`) whose
 * behaviour a test or a demo scripts: latency, capacity, reply text, Task or
 * Message results, JSON-RPC errors, HTTP errors and dropped connections.
 *
 * @since 0.1.0
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpServer, HttpServerError } from "@effect/platform"
import { NodeHttpServer, NodeHttpServerRequest } from "@effect/platform-node"
import { Clock, Duration, Effect, Either, Schema } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import { answerText, Message } from "../services/A2A.js"

/**
 * How the peer answers `message/send`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Behaviour {
  /** Time before the answer (for `result: "task"`: before the task completes). */
  readonly latency?: Duration.DurationInput | undefined
  /** Concurrent requests it serves; beyond that it answers 503 busy with `Retry-After`. */
  readonly capacity?: number | undefined
  /** The answer text for a task text (default `done: <task>`). */
  readonly reply?: ((task: string) => string) | undefined
  /** Answer with a `Message` (default) or a `Task` that is `working` until `latency` has passed. */
  readonly result?: "message" | "task" | undefined
  /** Answer with this JSON-RPC error instead. */
  readonly rpcError?: { readonly code: number; readonly message: string } | undefined
  /** Answer with this HTTP status and `{"error": ...}` instead. */
  readonly status?: number | undefined
  /** Close the connection without answering. */
  readonly drop?: boolean | undefined
}

/**
 * A request the peer received.
 *
 * @since 0.1.0
 * @category models
 */
export interface PeerRequest {
  readonly method: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: unknown
}

/**
 * A running local peer.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalPeer {
  /** Its A2A JSON-RPC endpoint (what discovery hands out). */
  readonly url: string
  /** Replaces the behaviour; a function gets the 0-based index of the `message/send` call. */
  readonly setBehaviour: (behaviour: Behaviour | ((call: number) => Behaviour)) => Effect.Effect<void>
  /** Every JSON-RPC request received, in order. */
  readonly requests: Effect.Effect<ReadonlyArray<PeerRequest>>
  /** Requests being served right now. */
  readonly active: Effect.Effect<number>
}

const RpcRequest = Schema.Struct({
  id: Schema.optional(Schema.Union(Schema.String, Schema.Number, Schema.Null)),
  method: Schema.String,
  params: Schema.optional(Schema.Struct({
    id: Schema.optional(Schema.String),
    message: Schema.optional(Message)
  }))
})
const decodeRequest = Schema.decodeUnknownEither(Schema.parseJson(RpcRequest))
const parseAny = Schema.decodeUnknownEither(Schema.parseJson())

const rpc = (id: unknown, payload: { readonly result: unknown } | { readonly error: unknown }) =>
  HttpServerResponse.unsafeJson({ jsonrpc: "2.0", id: id ?? null, ...payload })

/**
 * Starts a peer on 127.0.0.1 (port 0) for the current scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: { readonly name?: string | undefined; readonly behaviour?: Behaviour | undefined } = {}
): Effect.Effect<LocalPeer, HttpServerError.ServeError, Scope.Scope> =>
  Effect.gen(function*() {
    let behaviourOf: (call: number) => Behaviour = () => options.behaviour ?? {}
    let sends = 0
    let active = 0
    let taskCount = 0
    const tasks = new Map<string, { readonly doneAt: number; readonly text: string }>()
    const requests: Array<PeerRequest> = []
    const name = options.name ?? "local-peer"

    const taskJson = (id: string, state: "working" | "completed", text: string) => ({
      kind: "task",
      id,
      contextId: `ctx-${id}`,
      status: { state },
      artifacts: state === "completed" ? [{ artifactId: `${id}-answer`, parts: [{ kind: "text", text }] }] : []
    })

    const handle = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const raw = yield* Effect.orElseSucceed(request.text, () => "")
      const decoded = decodeRequest(raw)
      if (Either.isLeft(decoded)) {
        return rpc(null, { error: { code: -32700, message: "Parse error" } })
      }
      const call = decoded.right
      requests.push({ method: call.method, headers: request.headers, body: Either.getOrUndefined(parseAny(raw)) })

      if (call.method === "tasks/get") {
        const id = call.params?.id ?? ""
        const task = tasks.get(id)
        if (task === undefined) return rpc(call.id, { error: { code: -32001, message: "Task not found" } })
        const now = yield* Clock.currentTimeMillis
        return rpc(call.id, { result: taskJson(id, now >= task.doneAt ? "completed" : "working", task.text) })
      }
      if (call.method !== "message/send") {
        return rpc(call.id, { error: { code: -32601, message: "Method not found" } })
      }

      const behaviour = behaviourOf(sends++)
      if (behaviour.drop === true) {
        NodeHttpServerRequest.toIncomingMessage(request).socket.destroy()
        return HttpServerResponse.empty()
      }
      if (behaviour.capacity !== undefined && active >= behaviour.capacity) {
        return HttpServerResponse.unsafeJson(
          { error: "workspace agent busy — retry after a short backoff", busy: true, retry_after: 1 },
          { status: 503, headers: { "retry-after": "1" } }
        )
      }
      active++
      return yield* Effect.gen(function*() {
        const text = answerText(call.params?.message ?? { artifacts: [], parts: [] }) ?? ""
        const answer = behaviour.reply?.(text) ?? `done: ${text}`
        if (behaviour.result === "task") {
          const id = `task-${++taskCount}`
          const now = yield* Clock.currentTimeMillis
          tasks.set(id, { doneAt: now + Duration.toMillis(behaviour.latency ?? 0), text: answer })
          return rpc(call.id, { result: taskJson(id, "working", answer) })
        }
        if (behaviour.latency !== undefined) yield* Effect.sleep(behaviour.latency)
        if (behaviour.status !== undefined) {
          return HttpServerResponse.unsafeJson({ error: Http.STATUS_CODES[behaviour.status] ?? "error" }, {
            status: behaviour.status
          })
        }
        if (behaviour.rpcError !== undefined) return rpc(call.id, { error: behaviour.rpcError })
        return rpc(call.id, {
          result: {
            kind: "message",
            role: "agent",
            messageId: `${name}-${sends}`,
            parts: [{ kind: "text", text: answer }]
          }
        })
      }).pipe(Effect.ensuring(Effect.sync(() => active--)))
    })

    const card = Effect.suspend(() =>
      Effect.succeed(HttpServerResponse.unsafeJson({
        name,
        description: "A scripted A2A v0.3 peer",
        url: `${base}/a2a`,
        version: "0.1.0",
        protocolVersion: "0.3.0",
        capabilities: { streaming: false, pushNotifications: false },
        defaultInputModes: ["text/plain"],
        defaultOutputModes: ["text/plain"],
        skills: []
      }))
    )

    const router = HttpRouter.empty.pipe(
      HttpRouter.post("/a2a", handle),
      HttpRouter.get("/.well-known/agent-card.json", card)
    )
    const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: 0, host: "127.0.0.1" })
    yield* server.serve(router)
    const base = `http://127.0.0.1:${(server.address as HttpServer.TcpAddress).port}`

    return {
      url: `${base}/a2a`,
      setBehaviour: (behaviour) =>
        Effect.sync(() => {
          behaviourOf = typeof behaviour === "function" ? behaviour : () => behaviour
        }),
      requests: Effect.sync(() => [...requests]),
      active: Effect.sync(() => active)
    }
  })
