/**
 * Role-based access control for delegation actions.
 *
 * @since 0.1.0
 */
import { Context, Schema } from "effect"
import type { Effect } from "effect"

/**
 * The workspace's roles do not grant the action.
 *
 * @since 0.1.0
 * @category errors
 */
export class AccessDenied extends Schema.TaggedError<AccessDenied>("effect-a2a-delegation/AccessDenied")(
  "AccessDenied",
  { action: Schema.String, roles: Schema.Array(Schema.String) }
) {
  override get message(): string {
    return `RBAC: no '${this.action}' permission. Roles: [${this.roles.join(", ")}]`
  }
}

/**
 * Role name -> actions it grants.
 *
 * @since 0.1.0
 * @category models
 */
export type Permissions = Readonly<Record<string, ReadonlyArray<string>>>

/**
 * The built-in roles of the original platform.
 *
 * @since 0.1.0
 * @category constants
 */
export const builtinPermissions: Permissions = {
  admin: ["delegate", "approve", "memory.read", "memory.write"],
  operator: ["delegate", "approve", "memory.read", "memory.write"],
  "read-only": ["memory.read"],
  "no-delegation": ["approve", "memory.read", "memory.write"],
  "no-approval": ["delegate", "memory.read", "memory.write"],
  "memory-readonly": ["memory.read"]
}

/**
 * The decision rule: `admin` allows everything; a role with custom actions is
 * decided only by them; otherwise the built-in table; unknown roles deny.
 *
 * @since 0.1.0
 * @category utils
 */
export const isAllowed = (
  action: string,
  roles: ReadonlyArray<string>,
  custom: Permissions = {}
): boolean =>
  roles.some((role) => {
    if (role === "admin") return true
    if (Object.hasOwn(custom, role)) return custom[role]!.includes(action)
    return Object.hasOwn(builtinPermissions, role) && builtinPermissions[role]!.includes(action)
  })

/**
 * Decides whether this workspace may perform an action.
 *
 * @since 0.1.0
 * @category tags
 */
export class Rbac extends Context.Tag("effect-a2a-delegation/Rbac")<Rbac, {
  /** The workspace's roles (for audit records and error messages). */
  readonly roles: ReadonlyArray<string>
  /** Succeeds when allowed, fails with `AccessDenied` naming the roles otherwise. */
  readonly authorize: (action: string) => Effect.Effect<void, AccessDenied>
}>() {}
