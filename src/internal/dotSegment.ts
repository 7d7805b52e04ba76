/**
 * Path segments a URL parser removes, shared by the check of a delegation's target
 * (`../programs/validate.ts`), of `WORKSPACE_ID` (`../layers/DelegationsLayer.ts`) and of an id
 * put into a platform path (`../layers/internal/http.ts`).
 *
 * @internal
 */

/**
 * `.` and `..`: a URL parser removes them from a path (`/registry/discover/..` is `/registry/`),
 * and no percent-encoding prevents it (`%2E` is a dot segment too), so they are never ids.
 *
 * @internal
 */
export const isDotSegment = (value: string): boolean => value === "." || value === ".."
