/**
 * A local control-plane platform over real HTTP, faithful to the real platform's
 * contract: registration with per-workspace bearer tokens, discovery, the
 * delegation record/update/list/notify endpoints, and the A2A proxy with
 * queue-on-busy whose drain stitches the result into the caller's delegation rows.
 *
 * Where the real platform has known defects the local one does the right thing
 * (it cuts previews by character, not byte; a JSON-RPC error drained from the
 * queue marks the delegation failed; the stitch updates every row of the delegation).
 *
 * @since 0.1.0
 */
import { HttpClient, HttpClientRequest, HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import type { HttpServer, HttpServerError } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Clock, DateTime, Effect, Either, FiberSet, Option, Schema } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import { uuidV4 } from "../internal/uuid.js"
import { answerText, JsonRpcResponse, Message, Task } from "../services/A2A.js"
import { truncate } from "../services/PlatformMirror.js"

/**
 * A workspace known to the platform.
 *
 * @since 0.1.0
 * @category models
 */
export interface Workspace {
  readonly id: string
  readonly name: string
  /** Where its A2A server listens; absent for callers that only delegate. */
  readonly url: string | undefined
  readonly parentId: string | undefined
  /** Concurrent A2A requests the proxy forwards before it queues (`max_concurrent_tasks`). */
  readonly capacity: number
  readonly token: string
  status: "online" | "offline"
  active: number
}

/**
 * A delegation activity row (`activity_logs` with `activity_type = 'delegation'`).
 *
 * @since 0.1.0
 * @category models
 */
export interface DelegationRow {
  readonly id: string
  readonly sourceId: string
  readonly targetId: string
  readonly method: "delegate" | "delegate_result"
  readonly delegationId: string
  status: string
  summary: string
  error: string | undefined
  /** `response_body.text`, or the whole body as JSON when it has no text. */
  responseText: string | undefined
  readonly createdAt: string
  readonly seq: number
}

interface QueueItem {
  readonly id: string
  readonly targetId: string
  readonly callerId: string
  readonly body: string
  readonly messageId: string | undefined
  readonly delegationId: string | undefined
  readonly headers: Readonly<Record<string, string>>
}

/**
 * A request the platform received (for assertions).
 *
 * @since 0.1.0
 * @category models
 */
export interface SeenRequest {
  readonly method: string
  readonly path: string
  readonly headers: Readonly<Record<string, string>>
}

/**
 * A running local platform.
 *
 * @since 0.1.0
 * @category models
 */
export interface LocalPlatform {
  /** Base URL, e.g. `http://127.0.0.1:43121`. */
  readonly url: string
  /** Registers (or re-registers) a workspace and returns its bearer token. */
  readonly register: (workspace: {
    readonly id: string
    readonly url?: string | undefined
    readonly name?: string | undefined
    readonly parentId?: string | undefined
    readonly capacity?: number | undefined
  }) => Effect.Effect<string>
  /** Takes a workspace offline (discovery 503, proxy 503) or back online. */
  readonly setStatus: (id: string, status: "online" | "offline") => Effect.Effect<void>
  /** All delegation rows, oldest first. */
  readonly rows: Effect.Effect<ReadonlyArray<DelegationRow>>
  /** Notifications received (`POST /workspaces/{id}/notify`). */
  readonly notifications: Effect.Effect<ReadonlyArray<{ readonly workspaceId: string; readonly body: unknown }>>
  /** Requests queued for a target and not yet dispatched. */
  readonly queueDepth: (targetId: string) => Effect.Effect<number>
  /** Every request received, in order. */
  readonly requests: Effect.Effect<ReadonlyArray<SeenRequest>>
}

const BUSY_MESSAGE = "workspace agent busy — request queued, will dispatch when capacity available"
const LIST_LIMIT = 50
const PREVIEW = 300

const json = (body: unknown, status = 200) => HttpServerResponse.unsafeJson(body, { status })
const error = (status: number, message: string, extra: Record<string, unknown> = {}) =>
  json({ error: message, ...extra }, status)

const RecordBody = Schema.Struct({
  target_id: Schema.NonEmptyString,
  task: Schema.NonEmptyString,
  delegation_id: Schema.NonEmptyString
})
const UpdateBody = Schema.Struct({
  status: Schema.NonEmptyString,
  error: Schema.optional(Schema.String),
  response_preview: Schema.optional(Schema.String)
})
const NotifyBody = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const RegisterBody = Schema.Struct({
  id: Schema.NonEmptyString,
  url: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  parent_id: Schema.optional(Schema.String),
  max_concurrent_tasks: Schema.optional(Schema.Int)
})
const ProxyEnvelope = Schema.Struct({
  jsonrpc: Schema.optional(Schema.String),
  params: Schema.optional(Schema.Struct({
    message: Schema.optional(Schema.Struct({
      messageId: Schema.optional(Schema.String),
      metadata: Schema.optional(Schema.Struct({ delegation_id: Schema.optional(Schema.String) }))
    }))
  }))
})
const decodeJson = <A, I>(schema: Schema.Schema<A, I>) => Schema.decodeUnknownEither(Schema.parseJson(schema))
const decodeRecord = decodeJson(RecordBody)
const decodeUpdate = decodeJson(UpdateBody)
const decodeNotify = decodeJson(NotifyBody)
const decodeRegister = decodeJson(RegisterBody)
const decodeEnvelope = decodeJson(ProxyEnvelope)
const decodeReply = decodeJson(JsonRpcResponse)
const decodeAgentError = decodeJson(Schema.Struct({ error: Schema.String }))
const decodeTask = Schema.decodeUnknownEither(Task)
const decodeMessage = Schema.decodeUnknownEither(Message)


/** The answer text of a forwarded A2A reply, or the reason it is a failure. */
const replyOutcome = (body: string): Either.Either<string, string> => {
  const reply = decodeReply(body)
  if (Either.isLeft(reply)) return Either.left("peer reply is not JSON-RPC")
  const { error: rpcError, result } = reply.right
  if (rpcError !== undefined) return Either.left(`JSON-RPC error ${rpcError.code}: ${rpcError.message}`)
  const task = decodeTask(result)
  if (Either.isRight(task)) {
    const state = task.right.status.state
    const text = answerText(task.right) ?? JSON.stringify(result)
    return state === "completed" ? Either.right(text) : Either.left(`peer task ${state}: ${text}`)
  }
  const message = decodeMessage(result)
  if (Either.isRight(message)) return Either.right(answerText(message.right) ?? JSON.stringify(result))
  return Either.left("peer reply has no result")
}

/**
 * Starts the platform on 127.0.0.1 (port 0 unless given) for the current scope.
 * Its A2A proxy forwards with the given `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: { readonly port?: number | undefined; readonly adminToken?: string | undefined } = {}
): Effect.Effect<LocalPlatform, HttpServerError.ServeError, Scope.Scope | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    const client = yield* HttpClient.HttpClient
    const workspaces = new Map<string, Workspace>()
    const rows: Array<DelegationRow> = []
    const queue: Array<QueueItem> = []
    const notifications: Array<{ workspaceId: string; body: unknown }> = []
    const requests: Array<SeenRequest> = []
    const drains = yield* FiberSet.make()
    let seq = 0

    const now = Effect.map(Clock.currentTimeMillis, (ms) => DateTime.formatIso(DateTime.unsafeMake(ms)))

    const register: LocalPlatform["register"] = (workspace) =>
      Effect.gen(function*() {
        const token = `tok-${workspace.id}-${yield* uuidV4}`
        const previous = workspaces.get(workspace.id)
        workspaces.set(workspace.id, {
          id: workspace.id,
          name: workspace.name ?? workspace.id,
          url: workspace.url,
          parentId: workspace.parentId,
          capacity: workspace.capacity ?? 1,
          token,
          status: "online",
          active: previous?.active ?? 0
        })
        return token
      })

    // Siblings (same parent, or both roots), ancestors and descendants may talk; so may a workspace to itself.
    const ancestors = (id: string): ReadonlyArray<string> => {
      const out: Array<string> = []
      let current = workspaces.get(id)?.parentId
      while (current !== undefined && out.length < 32) {
        out.push(current)
        current = workspaces.get(current)?.parentId
      }
      return out
    }
    const canCommunicate = (caller: string, target: string): boolean => {
      if (caller === target) return true
      const a = workspaces.get(caller)
      const b = workspaces.get(target)
      if (a === undefined || b === undefined) return false
      if (a.parentId === b.parentId) return true
      return ancestors(caller).includes(target) || ancestors(target).includes(caller)
    }

    const bearer = (request: HttpServerRequest.HttpServerRequest): string | undefined => {
      const header = request.headers["authorization"]
      return header !== undefined && header.startsWith("Bearer ") ? header.slice(7) : undefined
    }

    // WorkspaceAuth: the bearer must be the admin token or the workspace's own token.
    const workspaceAuth = (request: HttpServerRequest.HttpServerRequest, id: string) => {
      const token = bearer(request)
      if (token === undefined) return Option.some(error(401, "missing workspace auth token"))
      if (options.adminToken !== undefined && token === options.adminToken) return Option.none()
      return workspaces.get(id)?.token === token ? Option.none() : Option.some(error(401, "invalid workspace auth token"))
    }

    const pathParam = Effect.map(HttpRouter.params, (params) => (name: string) => params[name] ?? "")

    const withBody = <A>(
      decode: (text: string) => Either.Either<A, unknown>,
      message: string,
      f: (body: A, request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse>
    ) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const text = yield* Effect.orElseSucceed(request.text, () => "")
        const body = decode(text)
        return Either.isLeft(body) ? error(400, message) : yield* f(body.right, request)
      })

    const authorized = (
      handler: (
        id: string,
        request: HttpServerRequest.HttpServerRequest,
        param: (name: string) => string
      ) => Effect.Effect<HttpServerResponse.HttpServerResponse, never, HttpServerRequest.HttpServerRequest>
    ) =>
      Effect.gen(function*() {
        const request = yield* HttpServerRequest.HttpServerRequest
        const param = yield* pathParam
        const id = param("id")
        const denied = workspaceAuth(request, id)
        return Option.isSome(denied) ? denied.value : yield* handler(id, request, param)
      })

    const rowsOf = (delegationId: string, sourceId: string) =>
      rows.filter((row) => row.delegationId === delegationId && row.sourceId === sourceId)

    const addRow = (row: Omit<DelegationRow, "id" | "seq" | "createdAt">) =>
      Effect.gen(function*() {
        const created: DelegationRow = { ...row, id: yield* uuidV4, seq: ++seq, createdAt: yield* now }
        rows.push(created)
        return created
      })

    // Puts the final outcome on every row of the delegation (the real stitch left the delegate row queued).
    const stitch = (callerId: string, targetId: string, delegationId: string, outcome: Either.Either<string, string>) =>
      Effect.gen(function*() {
        const existing = rowsOf(delegationId, callerId)
        if (existing.length === 0) return
        const status = Either.isRight(outcome) ? "completed" : "failed"
        if (!existing.some((row) => row.method === "delegate_result")) {
          yield* addRow({
            sourceId: callerId,
            targetId,
            method: "delegate_result",
            delegationId,
            status,
            summary: "",
            error: undefined,
            responseText: undefined
          })
        }
        for (const row of rowsOf(delegationId, callerId)) {
          row.status = status
          if (Either.isRight(outcome)) {
            row.responseText = outcome.right
            row.summary = `Delegation completed (${truncate(outcome.right, 80)}...)`
          } else {
            row.error = outcome.left
            row.summary = "Delegation failed"
          }
        }
      })

    const forward = (target: Workspace, body: string, headers: Readonly<Record<string, string>>, callerId: string) =>
      client.execute(
        HttpClientRequest.post(target.url ?? "").pipe(
          HttpClientRequest.setHeaders({
            ...(headers["traceparent"] === undefined ? {} : { traceparent: headers["traceparent"] }),
            ...(headers["tracestate"] === undefined ? {} : { tracestate: headers["tracestate"] }),
            "x-workspace-id": callerId
          }),
          HttpClientRequest.bodyText(body, "application/json")
        )
      ).pipe(
        Effect.flatMap((response) => Effect.map(response.text, (text) => ({ status: response.status, text }))),
        Effect.either
      )

    // One queued request at a time while the target has capacity; the result is stitched into the caller's rows.
    const drain = (targetId: string): Effect.Effect<void> =>
      Effect.gen(function*() {
        const target = workspaces.get(targetId)
        if (target === undefined || target.status !== "online" || target.active >= target.capacity) return
        const index = queue.findIndex((item) => item.targetId === targetId)
        if (index === -1) return
        const [item] = queue.splice(index, 1)
        target.active++
        const reply = yield* forward(target, item!.body, item!.headers, item!.callerId).pipe(
          Effect.ensuring(Effect.sync(() => target.active--))
        )
        if (item!.delegationId !== undefined) {
          const outcome = Either.isLeft(reply)
            ? Either.left("failed to reach workspace agent")
            : reply.right.status >= 300
            ? Either.left(`workspace agent answered HTTP ${reply.right.status}`)
            : replyOutcome(reply.right.text)
          yield* stitch(item!.callerId, targetId, item!.delegationId, outcome)
        }
        yield* drain(targetId)
      })

    const startDrain = (targetId: string) => FiberSet.run(drains, drain(targetId)).pipe(Effect.asVoid)

    const proxy = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const targetId = (yield* pathParam)("id")
      const callerId = request.headers["x-workspace-id"] ?? ""
      const body = yield* Effect.orElseSucceed(request.text, () => "")
      if (/^(webhook|system|test|channel):/.test(callerId)) return error(403, "invalid caller ID")
      const caller = workspaces.get(callerId)
      if (callerId !== "" && callerId !== targetId && caller !== undefined) {
        const token = bearer(request)
        if (token === undefined) return error(401, "missing caller auth token")
        if (token !== caller.token) return error(401, "invalid caller auth token")
      }
      if (callerId !== "" && !canCommunicate(callerId, targetId)) {
        return error(403, "access denied: workspaces cannot communicate per hierarchy rules")
      }
      const target = workspaces.get(targetId)
      if (target === undefined) return error(404, "workspace not found")
      if (target.status !== "online" || target.url === undefined) {
        return error(503, "workspace has no URL", { status: target.status })
      }
      const envelope = decodeEnvelope(body)
      if (Either.isLeft(envelope)) return error(400, "invalid JSON")
      const message = envelope.right.params?.message
      const messageId = message?.messageId
      const delegationId = message?.metadata?.delegation_id

      if (target.active >= target.capacity) {
        // Idempotent on messageId among queued items, as the platform's queue is.
        const existing = messageId === undefined
          ? undefined
          : queue.find((item) => item.targetId === targetId && item.messageId === messageId)
        const item: QueueItem = existing ?? {
          id: yield* uuidV4,
          targetId,
          callerId,
          body,
          messageId,
          delegationId,
          headers: request.headers
        }
        if (existing === undefined) queue.push(item)
        if (delegationId !== undefined && caller !== undefined) {
          const own = rowsOf(delegationId, callerId)
          for (const row of own) row.status = "queued"
          if (!own.some((row) => row.method === "delegate_result")) {
            yield* addRow({
              sourceId: callerId,
              targetId,
              method: "delegate_result",
              delegationId,
              status: "queued",
              summary: "Delegation queued — target at capacity",
              error: undefined,
              responseText: JSON.stringify({ queued: true, delegation_id: delegationId })
            })
          }
        }
        const depth = queue.filter((queued) => queued.targetId === targetId).length
        return json({ queued: true, queue_id: item.id, queue_depth: depth, message: BUSY_MESSAGE }, 202)
      }

      target.active++
      const reply = yield* forward(target, body, request.headers, callerId).pipe(
        Effect.ensuring(Effect.sync(() => target.active--).pipe(Effect.zipRight(startDrain(targetId))))
      )
      if (Either.isLeft(reply)) return error(502, "failed to reach workspace agent")
      const { status, text } = reply.right
      if (status >= 300) {
        const parsed = decodeAgentError(text)
        return error(status, Either.isRight(parsed) ? parsed.right.error : (Http.STATUS_CODES[status] ?? "error"))
      }
      return HttpServerResponse.text(text, { status, contentType: "application/json" })
    })

    const router = HttpRouter.empty.pipe(
      HttpRouter.post(
        "/registry/register",
        withBody(decodeRegister, "invalid request body", (body) =>
          Effect.map(
            register({
              id: body.id,
              url: body.url,
              name: body.name,
              parentId: body.parent_id,
              capacity: body.max_concurrent_tasks
            }),
            (token) => json({ status: "registered", auth_token: token })
          ))
      ),
      HttpRouter.get(
        "/registry/discover/:id",
        Effect.gen(function*() {
          const request = yield* HttpServerRequest.HttpServerRequest
          const targetId = (yield* pathParam)("id")
          const callerId = request.headers["x-workspace-id"]
          if (callerId === undefined || callerId === "") return error(400, "X-Workspace-ID header is required")
          const caller = workspaces.get(callerId)
          // Lazy auth: a caller that holds a token must present it.
          if (caller !== undefined) {
            const token = bearer(request)
            if (token === undefined) return error(401, "missing workspace auth token")
            if (token !== caller.token) return error(401, "invalid workspace auth token")
          }
          const target = workspaces.get(targetId)
          if (target === undefined || !canCommunicate(callerId, targetId)) {
            return error(403, "not authorized to discover this workspace")
          }
          if (target.status !== "online" || target.url === undefined) {
            return error(503, "workspace not available", { status: target.status })
          }
          return json({ id: target.id, url: target.url, name: target.name })
        })
      ),
      HttpRouter.post(
        "/workspaces/:id/delegations/record",
        authorized((id) =>
          withBody(decodeRecord, "invalid request body", (body) =>
            Effect.gen(function*() {
              yield* addRow({
                sourceId: id,
                targetId: body.target_id,
                method: "delegate",
                delegationId: body.delegation_id,
                status: "dispatched",
                summary: `Delegating to ${body.target_id}`,
                error: undefined,
                responseText: undefined
              })
              return json({ delegation_id: body.delegation_id, status: "recorded" }, 202)
            }))
        )
      ),
      HttpRouter.post(
        "/workspaces/:id/delegations/:delegationId/update",
        authorized((id, _request, param) =>
          withBody(decodeUpdate, "invalid request body", (body) =>
            Effect.gen(function*() {
              if (body.status !== "completed" && body.status !== "failed") {
                return error(400, "status must be 'completed' or 'failed'")
              }
              const delegationId = param("delegationId")
              const own = rowsOf(delegationId, id).filter((row) => row.method === "delegate")
              for (const row of own) {
                row.status = body.status
                if (body.error !== undefined && body.error !== "") row.error = body.error
              }
              if (body.status === "completed") {
                yield* addRow({
                  sourceId: id,
                  targetId: own[0]?.targetId ?? "",
                  method: "delegate_result",
                  delegationId,
                  status: "completed",
                  summary: `Delegation completed (${truncate(body.response_preview ?? "", 80)}...)`,
                  error: undefined,
                  responseText: body.response_preview ?? ""
                })
              }
              return json({ status: body.status, delegation_id: delegationId })
            }))
        )
      ),
      HttpRouter.post(
        "/workspaces/:id/notify",
        authorized((id) =>
          withBody(decodeNotify, "invalid request body", (body) => {
            if (typeof body["message"] !== "string" || body["message"] === "") {
              return Effect.succeed(error(400, "message is required"))
            }
            notifications.push({ workspaceId: id, body })
            return Effect.succeed(json({ status: "sent" }))
          })
        )
      ),
      HttpRouter.get(
        "/workspaces/:id/delegations",
        authorized((id) =>
          Effect.succeed(json(
            rows.filter((row) => row.sourceId === id).sort((a, b) => b.seq - a.seq).slice(0, LIST_LIMIT).map((row) => ({
              id: row.id,
              type: "delegation",
              source_id: row.sourceId,
              target_id: row.targetId,
              summary: row.summary,
              status: row.status,
              created_at: row.createdAt,
              delegation_id: row.delegationId,
              ...(row.error === undefined ? {} : { error: row.error }),
              ...(row.responseText === undefined ? {} : {
                response_preview: row.responseText.length > PREVIEW
                  ? `${truncate(row.responseText, PREVIEW)}...`
                  : row.responseText
              })
            }))
          ))
        )
      ),
      HttpRouter.post("/workspaces/:id/a2a", proxy)
    )

    const logged = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      requests.push({ method: request.method, path: request.url, headers: request.headers })
      return yield* router
    }).pipe(Effect.catchTag("RouteNotFound", () => Effect.succeed(error(404, "not found"))))

    const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: options.port ?? 0, host: "127.0.0.1" })
    yield* server.serve(logged)
    const address = server.address as HttpServer.TcpAddress

    return {
      url: `http://127.0.0.1:${address.port}`,
      register,
      setStatus: (id, status) =>
        Effect.suspend(() => {
          const workspace = workspaces.get(id)
          if (workspace !== undefined) workspace.status = status
          return status === "online" ? startDrain(id) : Effect.void
        }),
      rows: Effect.sync(() => [...rows]),
      notifications: Effect.sync(() => [...notifications]),
      queueDepth: (targetId) => Effect.sync(() => queue.filter((item) => item.targetId === targetId).length),
      requests: Effect.sync(() => [...requests])
    }
  })
