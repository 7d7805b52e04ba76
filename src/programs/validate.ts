/**
 * Input rules checked before a delegation is stored.
 *
 * @internal
 */
import { Effect, Either } from "effect"
import { isDotSegment } from "../internal/dotSegment.js"
import type { DelegateRequest } from "../services/Delegations.js"
import { InvalidDelegation } from "../services/Delegations.js"

/** Longest accepted workspace id. @internal */
export const MAX_WORKSPACE_ID_LENGTH = 128
/** Longest accepted idempotency key. @internal */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 256
/** Largest accepted task, in UTF-8 bytes (the platform proxy's body limit). @internal */
export const MAX_TASK_BYTES = 1024 * 1024

const WORKSPACE_ID = /^[A-Za-z0-9._:-]+$/

/**
 * The two fields of a request, each read once; what is checked is this copy, and what runs is the
 * same copy (a caller's getter cannot change a value between its check and its use).
 *
 * @internal
 */
export interface RequestCopy {
  readonly workspaceId: unknown
  readonly task: unknown
  readonly idempotencyKey: unknown
}

/**
 * Copies the fields of whatever `delegate` was given; anything but an object (`null`, a string, an
 * array), or a getter that throws, is an `InvalidDelegation`.
 *
 * @internal
 */
export const copyRequest = (request: unknown): Either.Either<RequestCopy, InvalidDelegation> => {
  if (typeof request !== "object" || request === null || Array.isArray(request)) {
    return Either.left(
      new InvalidDelegation({
        field: "request",
        rule: "required",
        detail: `expected an object { workspaceId, task }, got ${describe(request)}`
      })
    )
  }
  return Either.try({
    try: (): RequestCopy => {
      const { idempotencyKey, task, workspaceId } = request as Partial<Record<keyof DelegateRequest, unknown>>
      return { workspaceId, task, idempotencyKey }
    },
    catch: () =>
      new InvalidDelegation({ field: "request", rule: "required", detail: "reading workspaceId, task or idempotencyKey threw" })
  })
}

/**
 * The target named by a request, for the audit line of a denial (which comes before validation).
 *
 * @internal
 */
export const requestedTarget = (copy: Either.Either<RequestCopy, InvalidDelegation>): string =>
  Either.isRight(copy) && typeof copy.right.workspaceId === "string" ? copy.right.workspaceId : ""

const describe = (value: unknown): string =>
  value === null ? "null" : Array.isArray(value) ? "an array" : typeof value

/**
 * UTF-8 length without allocating; a lone surrogate counts as the 3 bytes of U+FFFD.
 *
 * @internal
 */
export const utf8Length = (text: string): number => {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1)
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4
        i++
      } else bytes += 3
    } else bytes += 3
  }
  return bytes
}

const invalid = (field: InvalidDelegation["field"], rule: InvalidDelegation["rule"], detail: string) =>
  Effect.fail(new InvalidDelegation({ field, rule, detail }))

/**
 * Checks a request against the rules; `selfId` is this workspace's own id.
 *
 * @internal
 */
export const validate = (
  request: RequestCopy,
  selfId: string
): Effect.Effect<DelegateRequest, InvalidDelegation> => {
  const { idempotencyKey, task, workspaceId } = request
  if (typeof workspaceId !== "string" || workspaceId.length === 0) {
    return invalid("workspaceId", "required", "the target workspace id must be a non-empty string")
  }
  if (workspaceId.length > MAX_WORKSPACE_ID_LENGTH) {
    return invalid(
      "workspaceId",
      "max_length",
      `at most ${MAX_WORKSPACE_ID_LENGTH} characters, got ${workspaceId.length}`
    )
  }
  if (!WORKSPACE_ID.test(workspaceId)) {
    return invalid("workspaceId", "pattern", "only letters, digits and . _ : - are allowed")
  }
  if (isDotSegment(workspaceId)) {
    return invalid("workspaceId", "pattern", "`.` and `..` are path dot segments, not workspace ids")
  }
  if (workspaceId === selfId) {
    return invalid("workspaceId", "self_delegation", "a workspace cannot delegate to itself")
  }
  if (typeof task !== "string" || task.trim().length === 0) {
    return invalid("task", "required", "the task must be non-empty text")
  }
  // A string of n UTF-16 units is at most 3n UTF-8 bytes, so most tasks skip the count.
  if (task.length * 3 > MAX_TASK_BYTES) {
    const bytes = utf8Length(task)
    if (bytes > MAX_TASK_BYTES) {
      return invalid("task", "max_bytes", `at most ${MAX_TASK_BYTES} bytes of UTF-8, got ${bytes}`)
    }
  }
  if (idempotencyKey !== undefined) {
    if (typeof idempotencyKey !== "string" || idempotencyKey.length === 0) {
      return invalid("idempotencyKey", "required", "the idempotency key, when given, must be a non-empty string")
    }
    if (idempotencyKey.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
      return invalid(
        "idempotencyKey",
        "max_length",
        `at most ${MAX_IDEMPOTENCY_KEY_LENGTH} characters, got ${idempotencyKey.length}`
      )
    }
  }
  return Effect.succeed(idempotencyKey === undefined ? { workspaceId, task } : { workspaceId, task, idempotencyKey })
}
