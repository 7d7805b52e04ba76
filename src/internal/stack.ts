/**
 * Errors built while a response body is in scope.
 *
 * @internal
 */

/**
 * Formats the error's stack now and returns the error. Until its stack is first read, V8 keeps
 * the frames it was built in, and with them the closures of those frames: an error built while
 * handling a response would keep the response body alive for as long as the error is stored.
 *
 * @internal
 */
export const formatStack = <E>(error: E): E => {
  if (error instanceof Error) void error.stack
  return error
}
