/**
 * The benchmark's platform + peer, in its own process: plain `node:http`, keep-alive,
 * every answer at once. Prints `{"port": n}` on stdout when listening.
 */
import * as Http from "node:http"

const json = (res: Http.ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) })
  res.end(text)
}

const server = Http.createServer((req, res) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => {
    const url = req.url ?? "/"
    // A peer with the SDK's v0.3 compatibility layer: A2A 1.0 with the header (the library, which reads the
    // card below once), v0.3 without (the floor's message/send).
    if (req.method === "POST" && url === "/a2a") {
      const request = JSON.parse(Buffer.concat(chunks).toString("utf8")) as { id?: unknown }
      return json(res, 200, {
        jsonrpc: "2.0",
        id: request.id ?? null,
        result: req.headers["a2a-version"] === "1.0"
          ? { message: { messageId: "m", role: "ROLE_AGENT", parts: [{ text: "ok", mediaType: "text/plain" }] } }
          : { kind: "message", role: "agent", messageId: "m", parts: [{ kind: "text", text: "ok" }] }
      })
    }
    if (req.method === "GET" && url === "/.well-known/agent-card.json") {
      const jsonRpc = (protocolVersion: string) => ({
        url: `http://127.0.0.1:${port}/a2a`,
        protocolBinding: "JSONRPC",
        tenant: "",
        protocolVersion
      })
      return json(res, 200, { name: "bench-peer", supportedInterfaces: [jsonRpc("1.0"), jsonRpc("0.3")] })
    }
    if (req.method === "GET" && url.startsWith("/registry/discover/")) {
      const id = decodeURIComponent(url.slice("/registry/discover/".length))
      return json(res, 200, { id, url: `http://127.0.0.1:${port}/a2a`, name: id })
    }
    if (req.method === "POST" && url.endsWith("/delegations/record")) return json(res, 202, { status: "recorded" })
    if (req.method === "POST" && url.endsWith("/update")) return json(res, 200, { status: "completed" })
    if (req.method === "POST" && url.endsWith("/notify")) return json(res, 200, { status: "sent" })
    if (req.method === "GET" && url.endsWith("/delegations")) return json(res, 200, [])
    return json(res, 404, { error: "not found" })
  })
})
server.keepAliveTimeout = 30_000
let port = 0
server.listen(0, "127.0.0.1", () => {
  port = (server.address() as { port: number }).port
  process.stdout.write(`${JSON.stringify({ port })}\n`)
})
process.on("SIGTERM", () => server.close(() => process.exit(0)))
process.on("disconnect", () => process.exit(0))
