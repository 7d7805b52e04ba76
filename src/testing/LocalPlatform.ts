/**
 * A local control-plane platform over real HTTP that behaves as the real platform does
 * (sections 1.1-1.10 of its contract), never better: registration with per-workspace bearer
 * tokens, discovery, the delegation record/update/list/notify endpoints, the platform-driven
 * `POST /workspaces/{self}/delegate`, and the A2A proxy with queue-on-busy.
 *
 * What the real platform does, this one does too:
 * - the proxy writes no delegation rows and forwards only the body (no trace headers, no
 *   `X-Workspace-ID`, no `A2A-Version`);
 * - a queued request is drained one item per heartbeat of its target, and the drain's "stitch"
 *   only UPDATEs an existing `delegate_result` row of the caller (only `/delegate` writes one);
 *   so a delegation queued through the proxy by anyone else is never resolved;
 * - the stitch and `/delegate` take an HTTP 200 JSON-RPC error as a completed reply (the raw JSON
 *   is the result), and leave the `delegate` row of a drained delegation `queued`;
 * - the list holds the 50 newest rows, previews cut to 300 bytes plus `...`;
 * - the proxy reads at most 1 MiB of a request (a longer one fails as invalid JSON) and 10 MiB of an answer;
 * - targets are workspace UUIDs: discovery answers 403 for any other id, record and `/delegate` 400;
 * - a busy target that declared `native_session` (`register({ nativeSession: true })`) is not queued
 *   for: the proxy answers 503 `{"busy": true, "native_session": true}` with `Retry-After: 30`;
 * - every route is rate limited, 600 requests a minute by default (`rateLimit`): past it, 429
 *   `{"error": "rate limit exceeded", "retry_after": n}` with `Retry-After`, and `X-RateLimit-*` on
 *   every answer.
 *
 * Simplifications, each explicit: "busy" is the target having `capacity` requests in flight (the
 * real proxy infers it from a timeout, so its 202 comes only after that wait); besides
 * `POST /registry/heartbeat`, heartbeats are sent with `heartbeat(id)` or every `heartbeatEvery`; `drainWhenFree` (off by default, because it
 * hides the heartbeat cadence) drains as soon as the target frees; `delegateRetryDelay` shortens the
 * 8-second wait before `/delegate`'s one retry.
 *
 * @since 0.1.0
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import type * as HttpServer from "@effect/platform/HttpServer"
import type * as HttpServerError from "@effect/platform/HttpServerError"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Clock, DateTime, Duration, Effect, Either, FiberSet, Option, Schedule, Schema } from "effect"
import type { Scope } from "effect"
import * as Http from "node:http"
import { uuidV4 } from "../internal/uuid.js"
import { JsonRpcResponse } from "../services/A2A.js"

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
  /** It runs its own session queue: the proxy answers 503 busy instead of queueing for it. */
  readonly nativeSession: boolean
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
  /** `""` when the row has none (the result row written by `update`). */
  readonly targetId: string
  readonly method: "delegate" | "delegate_result"
  /** Absent on the failed result row of a platform-driven delegation. */
  readonly delegationId: string | undefined
  /** The `idempotency_key` of a `/delegate` row. */
  readonly idempotencyKey: string | undefined
  status: string
  summary: string
  error: string | undefined
  /** `response_body.text`, or the whole body as JSON when it has no text. */
  responseText: string | undefined
  readonly createdAt: string
  readonly seq: number
}

/**
 * An item of the A2A queue (`a2a_queue`).
 *
 * @since 0.3.0
 * @category models
 */
export interface QueueItem {
  readonly id: string
  readonly targetId: string
  readonly callerId: string
  /** The normalised JSON-RPC body. */
  readonly body: string
  readonly messageId: string | undefined
  readonly delegationId: string | undefined
  status: "queued" | "dispatched" | "completed" | "failed"
  attempts: number
  lastError: string | undefined
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
  /** The status it was answered with; `429` when the rate limit refused it (0 while unanswered). */
  readonly status: number
  /** When it arrived (epoch milliseconds, on the `Clock`). */
  readonly at: number
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
    /**
     * The workspace declared `native_session` (it queues its own sessions): when it is busy the proxy
     * answers 503 busy with `Retry-After: 30` and queues nothing.
     */
    readonly nativeSession?: boolean | undefined
  }) => Effect.Effect<string>
  /** Takes a workspace offline (discovery 503, proxy 503) or back online. */
  readonly setStatus: (id: string, status: "online" | "offline") => Effect.Effect<void>
  /**
   * A heartbeat of the workspace (`POST /registry/heartbeat`): when it has a free place, one
   * queued item for it is dispatched (in the background).
   */
  readonly heartbeat: (id: string) => Effect.Effect<void>
  /** All delegation rows, oldest first. */
  readonly rows: Effect.Effect<ReadonlyArray<DelegationRow>>
  /** Notifications received (`POST /workspaces/{id}/notify`). */
  readonly notifications: Effect.Effect<ReadonlyArray<{ readonly workspaceId: string; readonly body: unknown }>>
  /** Requests queued for a target and not yet dispatched. */
  readonly queueDepth: (targetId: string) => Effect.Effect<number>
  /** Every queue item ever created, oldest first. */
  readonly queue: Effect.Effect<ReadonlyArray<QueueItem>>
  /** Every request received, in order. */
  readonly requests: Effect.Effect<ReadonlyArray<SeenRequest>>
}

/**
 * How to start the platform.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options {
  readonly port?: number | undefined
  /** `ADMIN_TOKEN`: accepted on every workspace route. */
  readonly adminToken?: string | undefined
  /** Sends a heartbeat for every registered workspace at this interval (the real runtimes: 30 s). */
  readonly heartbeatEvery?: Duration.DurationInput | undefined
  /**
   * Simplification, off by default: drain a target's queue as soon as it has a free place,
   * instead of one item per heartbeat.
   */
  readonly drainWhenFree?: boolean | undefined
  /** The wait before `/delegate`'s one retry of a 502 or a 503 `restarting` (8 seconds). */
  readonly delegateRetryDelay?: Duration.DurationInput | undefined
  /**
   * The platform's rate limit (`RATE_LIMIT`): a token bucket of `requests` refilled over `per`, for
   * all callers (they share 127.0.0.1). Default 600 per minute, as the platform's; `false` for none.
   */
  readonly rateLimit?: { readonly requests: number; readonly per: Duration.DurationInput } | false | undefined
}

/** What the rate limit says of one request: go ahead, or wait `retryAfter` seconds. */
interface RateDecision {
  readonly allowed: boolean
  readonly limit: number
  readonly remaining: number
  /** Seconds until the bucket is full again. */
  readonly reset: number
  /** Seconds until one more request is allowed (at least 1), when refused. */
  readonly retryAfter: number
}

/** A token bucket on the `Clock`: `limit` requests at once, refilled at `limit` per `per`. */
const tokenBucket = (requests: number, per: Duration.Duration) => {
  const limit = Math.max(1, Math.floor(requests))
  const perMilli = limit / Math.max(1, Duration.toMillis(per))
  let tokens = limit
  let last: number | undefined
  return (now: number): RateDecision => {
    tokens = Math.min(limit, tokens + (last === undefined ? 0 : Math.max(0, now - last) * perMilli))
    last = now
    const allowed = tokens >= 1
    if (allowed) tokens -= 1
    return {
      allowed,
      limit,
      remaining: Math.floor(tokens),
      reset: Math.ceil((limit - tokens) / perMilli / 1000),
      retryAfter: Math.max(1, Math.ceil((1 - tokens) / perMilli / 1000))
    }
  }
}

const BUSY_MESSAGE = "workspace agent busy — request queued, will dispatch when capacity available"
const NATIVE_SESSION_BUSY = {
  error: "workspace agent busy — adapter handles retry (native_session)",
  busy: true,
  retry_after: 30,
  native_session: true
}
const LIST_LIMIT = 50
const PREVIEW_BYTES = 300
const SUMMARY_BYTES = 80
const MAX_DISPATCH_ATTEMPTS = 5
const MAX_REQUEST_BYTES = 1024 * 1024
const MAX_RESPONSE_BYTES = 10 * 1024 * 1024
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

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
const DelegateBody = Schema.Struct({
  target_id: Schema.NonEmptyString,
  task: Schema.NonEmptyString,
  idempotency_key: Schema.optional(Schema.String)
})
const NotifyBody = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const RegisterBody = Schema.Struct({
  id: Schema.NonEmptyString,
  url: Schema.optional(Schema.String),
  name: Schema.optional(Schema.String),
  parent_id: Schema.optional(Schema.String),
  max_concurrent_tasks: Schema.optional(Schema.Int)
})
const decodeJson = <A, I>(schema: Schema.Schema<A, I>) => Schema.decodeUnknownEither(Schema.parseJson(schema))
const decodeRecord = decodeJson(RecordBody)
const decodeUpdate = decodeJson(UpdateBody)
const decodeDelegate = decodeJson(DelegateBody)
const decodeNotify = decodeJson(NotifyBody)
const decodeRegister = decodeJson(RegisterBody)
const decodeHeartbeat = decodeJson(Schema.Struct({
  workspace_id: Schema.NonEmptyString,
  active_tasks: Schema.optional(Schema.Int)
}))
const decodeReply = decodeJson(JsonRpcResponse)
const decodeAgentError = decodeJson(Schema.Struct({ error: Schema.String }))
const parseJson = Schema.decodeUnknownEither(Schema.parseJson())

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The first `max` bytes, as Go slices them (a split character becomes U+FFFD once encoded to JSON). */
const cutBytes = (text: string, max: number): string => {
  const bytes = encoder.encode(text)
  return bytes.length <= max ? text : decoder.decode(bytes.subarray(0, max))
}

type JsonObject = Record<string, unknown>
const isObject = (value: unknown): value is JsonObject =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** The first text part of a list of parts (`kind` or the legacy `type`). */
const firstTextPart = (parts: unknown): string | undefined => {
  if (!Array.isArray(parts)) return undefined
  for (const part of parts) {
    if (isObject(part) && (part["kind"] === "text" || part["type"] === "text") && typeof part["text"] === "string") {
      return part["text"]
    }
  }
  return undefined
}

/**
 * The text the platform keeps of a reply: the first text part of the result (its parts, else its
 * artifacts' parts), else the raw body, which is what a JSON-RPC error becomes.
 */
const extractText = (body: string): string => {
  const reply = decodeReply(body)
  const result = Either.isRight(reply) ? reply.right.result : undefined
  if (!isObject(result)) return body
  const direct = firstTextPart(result["parts"])
  if (direct !== undefined) return direct
  const artifacts = result["artifacts"]
  if (Array.isArray(artifacts)) {
    for (const artifact of artifacts) {
      const text = isObject(artifact) ? firstTextPart(artifact["parts"]) : undefined
      if (text !== undefined) return text
    }
  }
  return body
}

/** The proxy's step 7: a JSON-RPC 2.0 envelope with `params.message.messageId`. */
const normalise = (text: string, requestId: string, messageId: string): Option.Option<JsonObject> => {
  const parsed = parseJson(text)
  if (Either.isLeft(parsed) || !isObject(parsed.right)) return Option.none()
  const payload = parsed.right
  const envelope: JsonObject = payload["jsonrpc"] === undefined
    ? { jsonrpc: "2.0", id: requestId, method: payload["method"], params: payload["params"] }
    : payload
  const params = envelope["params"]
  const message = isObject(params) ? params["message"] : undefined
  if (isObject(message) && message["messageId"] === undefined) message["messageId"] = messageId
  return Option.some(envelope)
}

const messageOf = (envelope: JsonObject): JsonObject | undefined => {
  const params = envelope["params"]
  const message = isObject(params) ? params["message"] : undefined
  return isObject(message) ? message : undefined
}

const stringField = (value: JsonObject | undefined, name: string): string | undefined => {
  const field = value?.[name]
  return typeof field === "string" ? field : undefined
}

/** What the proxy answered: a status and a JSON body. */
interface ProxyAnswer {
  readonly status: number
  readonly body: string
  readonly headers?: Readonly<Record<string, string>>
}

const answerJson = (status: number, body: unknown, headers?: Readonly<Record<string, string>>): ProxyAnswer => ({
  status,
  body: JSON.stringify(body),
  ...(headers === undefined ? {} : { headers })
})
const answerError = (status: number, message: string, extra: Record<string, unknown> = {}) =>
  answerJson(status, { error: message, ...extra })

/**
 * Starts the platform on 127.0.0.1 (port 0 unless given) for the current scope.
 * Its A2A proxy forwards with the given `HttpClient`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: Options = {}
): Effect.Effect<LocalPlatform, HttpServerError.ServeError, Scope.Scope | HttpClient.HttpClient> =>
  Effect.gen(function*() {
    // Effect's client would add a traceparent of the request being served: the real dispatch sends none.
    const client = HttpClient.withTracerPropagation(yield* HttpClient.HttpClient, false)
    const workspaces = new Map<string, Workspace>()
    const rows: Array<DelegationRow> = []
    const queue: Array<QueueItem> = []
    const notifications: Array<{ workspaceId: string; body: unknown }> = []
    const requests: Array<SeenRequest> = []
    const background = yield* FiberSet.make()
    const retryDelay = Duration.decode(options.delegateRetryDelay ?? "8 seconds")
    let seq = 0

    const now = Effect.map(Clock.currentTimeMillis, (ms) => DateTime.formatIso(DateTime.unsafeMake(ms)))
    const fork = <A>(effect: Effect.Effect<A>) => FiberSet.run(background, effect).pipe(Effect.asVoid)

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
          nativeSession: workspace.nativeSession ?? false,
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

    const addRow = (row: Omit<DelegationRow, "id" | "seq" | "createdAt" | "idempotencyKey"> & {
      readonly idempotencyKey?: string | undefined
    }) =>
      Effect.gen(function*() {
        const created: DelegationRow = {
          ...row,
          idempotencyKey: row.idempotencyKey,
          id: yield* uuidV4,
          seq: ++seq,
          createdAt: yield* now
        }
        rows.push(created)
        return created
      })

    const completedSummary = (text: string) => `Delegation completed (${cutBytes(text, SUMMARY_BYTES)}...)`

    // The stitch: only an existing delegate_result row of the caller, for this target and delegation, is
    // updated; the delegate row stays as it is. Zero rows matched: nothing (the real one logs a line).
    const stitch = (callerId: string, targetId: string, delegationId: string, text: string) =>
      Effect.sync(() => {
        for (const row of rows) {
          if (
            row.method === "delegate_result" && row.sourceId === callerId && row.targetId === targetId &&
            row.delegationId === delegationId
          ) {
            row.status = "completed"
            row.summary = completedSummary(text)
            row.responseText = text
          }
        }
      })

    // The real dispatch sets only Content-Type: no trace headers, no X-Workspace-ID, no A2A-Version.
    const forward = (target: Workspace, body: string) =>
      client.execute(
        HttpClientRequest.post(target.url ?? "").pipe(HttpClientRequest.bodyText(body, "application/json"))
      ).pipe(
        // The proxy reads at most 10 MiB of the agent's answer.
        Effect.flatMap((response) =>
          Effect.map(response.text, (text) => ({ status: response.status, text: cutBytes(text, MAX_RESPONSE_BYTES) }))
        ),
        Effect.either
      )

    const enqueue = (targetId: string, callerId: string, body: string, message: JsonObject | undefined) =>
      Effect.gen(function*() {
        const messageId = stringField(message, "messageId")
        const metadata = message?.["metadata"]
        const delegationId = isObject(metadata) ? stringField(metadata, "delegation_id") : undefined
        // Idempotent on messageId among active items, as the platform's partial unique index is.
        const existing = messageId === undefined ? undefined : queue.find((item) =>
          item.targetId === targetId && item.messageId === messageId &&
          (item.status === "queued" || item.status === "dispatched")
        )
        const item: QueueItem = existing ?? {
          id: yield* uuidV4,
          targetId,
          callerId,
          body,
          messageId,
          delegationId,
          status: "queued",
          attempts: 0,
          lastError: undefined
        }
        if (existing === undefined) queue.push(item)
        const depth = queue.filter((queued) => queued.targetId === targetId && queued.status === "queued").length
        return answerJson(202, { queued: true, queue_id: item.id, queue_depth: depth, message: BUSY_MESSAGE })
      })

    const release = (target: Workspace) =>
      Effect.suspend(() => {
        target.active--
        return options.drainWhenFree === true ? fork(drainOne(target.id)) : Effect.void
      })

    // The proxy from its hierarchy check on (steps 4-8), for a caller already authenticated.
    const proxyAs = (callerId: string, targetId: string, text: string): Effect.Effect<ProxyAnswer> =>
      Effect.gen(function*() {
        if (callerId !== "" && !canCommunicate(callerId, targetId)) {
          return answerError(403, "access denied: workspaces cannot communicate per hierarchy rules")
        }
        const target = workspaces.get(targetId)
        if (target === undefined) return answerError(404, "workspace not found")
        if (target.status !== "online" || target.url === undefined) {
          return answerError(503, "workspace has no URL", { status: target.status })
        }
        const envelope = normalise(text, yield* uuidV4, yield* uuidV4)
        if (Option.isNone(envelope)) return answerError(400, "invalid JSON")
        const body = JSON.stringify(envelope.value)
        if (target.active >= target.capacity) {
          return target.nativeSession
            ? answerJson(503, NATIVE_SESSION_BUSY, { "retry-after": "30" })
            : yield* enqueue(targetId, callerId, body, messageOf(envelope.value))
        }

        target.active++
        const reply = yield* forward(target, body).pipe(Effect.ensuring(release(target)))
        if (Either.isLeft(reply)) return answerError(502, "failed to reach workspace agent")
        const { status, text: replyText } = reply.right
        if (status >= 300) {
          const parsed = decodeAgentError(replyText)
          return answerError(status, Either.isRight(parsed) ? parsed.right.error : (Http.STATUS_CODES[status] ?? "error"))
        }
        return { status, body: replyText }
      })

    // One queued item for the target, oldest first, when it has a free place (a heartbeat's drain). The
    // place is what the heartbeat reports (`active_tasks`), else the requests the proxy has in flight.
    const drainOne = (targetId: string, reportedActive?: number): Effect.Effect<void> =>
      Effect.gen(function*() {
        const target = workspaces.get(targetId)
        if (target === undefined || target.status !== "online") return
        if ((reportedActive ?? target.active) >= target.capacity) return
        const item = queue.find((queued) => queued.targetId === targetId && queued.status === "queued")
        if (item === undefined) return
        item.status = "dispatched"
        item.attempts++
        const answer = yield* proxyAs(item.callerId, targetId, item.body)
        if (answer.status === 202) {
          // Busy again: the real drain marks the item completed, assuming a fresh queue row exists.
          item.status = "completed"
          return
        }
        if (answer.status >= 300) {
          item.lastError = answer.body
          item.status = item.attempts >= MAX_DISPATCH_ATTEMPTS ? "failed" : "queued"
          return
        }
        item.status = "completed"
        if (item.delegationId !== undefined) {
          yield* stitch(item.callerId, targetId, item.delegationId, extractText(answer.body))
        }
      })

    const heartbeat = (id: string) => fork(drainOne(id))

    // --- POST /workspaces/{self}/delegate: the platform-driven delegation ------------------------------

    const delegateRow = (delegationId: string, sourceId: string) =>
      rows.find((row) => row.method === "delegate" && row.sourceId === sourceId && row.delegationId === delegationId)

    // The A2A body the platform sends: v0.3 `message/send` without `jsonrpc`/`id`, legacy `type` on the part.
    const delegateBody = (delegationId: string, task: string) =>
      JSON.stringify({
        method: "message/send",
        params: {
          message: {
            role: "user",
            messageId: delegationId,
            parts: [{ type: "text", text: task }],
            metadata: { delegation_id: delegationId }
          }
        }
      })

    const notDelivered = (answer: ProxyAnswer) => {
      if (answer.status === 502) return true
      if (answer.status !== 503) return false
      const body = parseJson(answer.body)
      return Either.isRight(body) && isObject(body.right) && body.right["restarting"] === true
    }

    const errorOf = (answer: ProxyAnswer): string => {
      const body = parseJson(answer.body)
      const text = Either.isRight(body) && isObject(body.right) ? body.right["error"] : undefined
      return typeof text === "string" ? text : `HTTP ${answer.status}`
    }

    const isQueuedAnswer = (answer: ProxyAnswer) => {
      if (answer.status !== 202) return false
      const body = parseJson(answer.body)
      return Either.isRight(body) && isObject(body.right) && body.right["queued"] === true
    }

    const delegateJob = (sourceId: string, targetId: string, delegationId: string, task: string) =>
      Effect.gen(function*() {
        const row = delegateRow(delegationId, sourceId)
        if (row !== undefined) row.status = "dispatched"
        const body = delegateBody(delegationId, task)
        const first = yield* proxyAs(sourceId, targetId, body)
        const answer = notDelivered(first)
          ? yield* Effect.zipRight(Effect.sleep(retryDelay), proxyAs(sourceId, targetId, body))
          : first
        if (answer.status >= 300 || answer.status < 200) {
          const detail = errorOf(answer)
          if (row !== undefined) {
            row.status = "failed"
            row.error = detail
          }
          yield* addRow({
            sourceId,
            targetId,
            method: "delegate_result",
            delegationId: undefined,
            status: "failed",
            summary: `Delegation failed: ${detail}`,
            error: detail,
            responseText: undefined
          })
          return
        }
        if (isQueuedAnswer(answer)) {
          if (row !== undefined) row.status = "queued"
          yield* addRow({
            sourceId,
            targetId,
            method: "delegate_result",
            delegationId,
            status: "queued",
            summary: "Delegation queued — target at capacity",
            error: undefined,
            responseText: JSON.stringify({ delegation_id: delegationId, queued: true })
          })
          return
        }
        const text = extractText(answer.body)
        yield* addRow({
          sourceId,
          targetId,
          method: "delegate_result",
          delegationId,
          status: "completed",
          summary: completedSummary(text),
          error: undefined,
          responseText: text
        })
        if (row !== undefined) row.status = "completed"
      })

    const delegate = (sourceId: string, body: typeof DelegateBody.Type) =>
      Effect.gen(function*() {
        if (!UUID.test(body.target_id)) return error(400, "target_id must be a valid UUID")
        if (body.target_id === sourceId) return error(400, "self-delegation not permitted")
        const key = body.idempotency_key === undefined || body.idempotency_key === "" ? undefined : body.idempotency_key
        if (key !== undefined) {
          const index = rows.findIndex((row) => row.sourceId === sourceId && row.idempotencyKey === key)
          const existing = rows[index]
          if (existing !== undefined && existing.status !== "failed") {
            return json({
              delegation_id: existing.delegationId,
              status: existing.status,
              target_id: existing.targetId,
              idempotent_hit: true
            })
          }
          // A failed delegation frees its key: the row goes, and a new delegation starts.
          if (existing !== undefined) rows.splice(index, 1)
        }
        const delegationId = yield* uuidV4
        yield* addRow({
          sourceId,
          targetId: body.target_id,
          method: "delegate",
          delegationId,
          idempotencyKey: key,
          status: "pending",
          summary: `Delegating to ${body.target_id}`,
          error: undefined,
          responseText: undefined
        })
        yield* fork(delegateJob(sourceId, body.target_id, delegationId, body.task))
        return json({ delegation_id: delegationId, status: "delegated", target_id: body.target_id }, 202)
      })

    // --- routes ----------------------------------------------------------------------------------------------

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
      // At most 1 MiB of the body is read: a longer one is cut, and then fails to parse.
      const answer = yield* proxyAs(callerId, targetId, cutBytes(body, MAX_REQUEST_BYTES))
      return HttpServerResponse.text(answer.body, {
        status: answer.status,
        contentType: "application/json",
        ...(answer.headers === undefined ? {} : { headers: answer.headers })
      })
    })

    const listRows = (id: string) =>
      rows.filter((row) => row.sourceId === id).sort((a, b) => b.seq - a.seq).slice(0, LIST_LIMIT).map((row) => ({
        id: row.id,
        type: "delegation",
        source_id: row.sourceId,
        target_id: row.targetId,
        summary: row.summary,
        status: row.status,
        created_at: row.createdAt,
        ...(row.delegationId === undefined ? {} : { delegation_id: row.delegationId }),
        ...(row.error === undefined ? {} : { error: row.error }),
        ...(row.responseText === undefined ? {} : {
          response_preview: encoder.encode(row.responseText).length > PREVIEW_BYTES
            ? `${cutBytes(row.responseText, PREVIEW_BYTES)}...`
            : row.responseText
        })
      }))

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
      HttpRouter.post(
        "/registry/heartbeat",
        withBody(decodeHeartbeat, "invalid request body", (body, request) => {
          const workspace = workspaces.get(body.workspace_id)
          if (workspace === undefined) return Effect.succeed(error(404, "workspace not found"))
          if (bearer(request) !== workspace.token) return Effect.succeed(error(401, "invalid workspace auth token"))
          return Effect.as(fork(drainOne(workspace.id, body.active_tasks)), json({ status: "ok" }))
        })
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
          // The hierarchy lookup fails closed for an unknown target, and for a target that is not a UUID.
          if (!UUID.test(targetId) || target === undefined || !canCommunicate(callerId, targetId)) {
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
              if (!UUID.test(body.target_id)) return error(400, "target_id must be a valid UUID")
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
              for (const row of rows) {
                if (row.method !== "delegate" || row.sourceId !== id || row.delegationId !== delegationId) continue
                row.status = body.status
                if (body.error !== undefined && body.error !== "") row.error = body.error
              }
              if (body.status === "completed") {
                // The result row the update writes has no target_id.
                yield* addRow({
                  sourceId: id,
                  targetId: "",
                  method: "delegate_result",
                  delegationId,
                  status: "completed",
                  summary: completedSummary(body.response_preview ?? ""),
                  error: undefined,
                  responseText: body.response_preview ?? ""
                })
              }
              return json({ status: body.status, delegation_id: delegationId })
            }))
        )
      ),
      HttpRouter.post(
        "/workspaces/:id/delegate",
        authorized((id) => withBody(decodeDelegate, "invalid delegation request", (body) => delegate(id, body)))
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
      HttpRouter.get("/workspaces/:id/delegations", authorized((id) => Effect.succeed(json(listRows(id))))),
      HttpRouter.post("/workspaces/:id/a2a", proxy)
    )

    const rateLimit = options.rateLimit ?? { requests: 600, per: "1 minute" }
    const take = rateLimit === false ? undefined : tokenBucket(rateLimit.requests, Duration.decode(rateLimit.per))
    const routed = router.pipe(Effect.catchTag("RouteNotFound", () => Effect.succeed(error(404, "not found"))))
    const decided = Effect.gen(function*() {
      if (take === undefined) return yield* routed
      const decision = take(yield* Clock.currentTimeMillis)
      const response = decision.allowed
        ? yield* routed
        : HttpServerResponse.setHeader(
          error(429, "rate limit exceeded", { retry_after: decision.retryAfter }),
          "retry-after",
          String(decision.retryAfter)
        )
      return HttpServerResponse.setHeaders(response, {
        "x-ratelimit-limit": String(decision.limit),
        "x-ratelimit-remaining": String(decision.remaining),
        "x-ratelimit-reset": String(decision.reset)
      })
    })

    const logged = Effect.gen(function*() {
      const request = yield* HttpServerRequest.HttpServerRequest
      const seen = {
        method: request.method,
        path: request.url,
        headers: request.headers,
        status: 0,
        at: yield* Clock.currentTimeMillis
      }
      requests.push(seen)
      const response = yield* decided
      seen.status = response.status
      return response
    })

    const server = yield* NodeHttpServer.make(() => Http.createServer(), { port: options.port ?? 0, host: "127.0.0.1" })
    yield* server.serve(logged)
    const address = server.address as HttpServer.TcpAddress

    if (options.heartbeatEvery !== undefined) {
      const beatAll = Effect.suspend(() => Effect.forEach(Array.from(workspaces.keys()), heartbeat, { discard: true }))
      yield* fork(Effect.repeat(beatAll, Schedule.spaced(options.heartbeatEvery)))
    }

    return {
      url: `http://127.0.0.1:${address.port}`,
      register,
      setStatus: (id, status) =>
        Effect.sync(() => {
          const workspace = workspaces.get(id)
          if (workspace !== undefined) workspace.status = status
        }),
      heartbeat,
      rows: Effect.sync(() => [...rows]),
      notifications: Effect.sync(() => [...notifications]),
      queueDepth: (targetId) =>
        Effect.sync(() => queue.filter((item) => item.targetId === targetId && item.status === "queued").length),
      queue: Effect.sync(() => queue.map((item) => ({ ...item }))),
      requests: Effect.sync(() => [...requests])
    }
  })
