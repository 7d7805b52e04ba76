/**
 * The soak's platform and hostile peer, in their own process (two origins, as in production: the
 * platform's sockets are not the peer's). Prints `{"platform": port, "peer": port}` when listening.
 *
 * The fault of a delegation is in its target workspace id (`peer-<fault>`): discovery hands out
 * `/a2a/<fault>` on the peer, which answers that way. Faults that pass on a second attempt remember
 * the delegation by its `messageId`. `POST /control/outage?ms=n` makes the platform's mirror routes
 * answer 503 for n ms; `POST /control/hang` makes them never answer (the shutdown case).
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { HUGE_BYTES } from "./soak-shared.js"

const json = (res: Http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  const text = JSON.stringify(body)
  res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers })
  res.end(text)
}

const read = (req: Http.IncomingMessage, then: (body: string) => void) => {
  const chunks: Array<Buffer> = []
  req.on("data", (chunk: Buffer) => chunks.push(chunk))
  req.on("end", () => then(Buffer.concat(chunks).toString("utf8")))
}

// --- the peer ------------------------------------------------------------------------------------------

const seen = new Set<string>()
const hung = new Set<Http.ServerResponse>()

const rpcAnswer = (id: unknown, text: string) => ({
  jsonrpc: "2.0",
  id,
  result: { kind: "message", role: "agent", messageId: "m", parts: [{ kind: "text", text }] }
})

const chunkOfA = Buffer.alloc(1024 * 1024, "a")

/** Writes `start`, `total` bytes of `a` as fast as the socket takes them, then `end`. */
const stream = (res: Http.ServerResponse, start: string, total: number, end: string) => {
  let sent = 0
  res.write(start)
  const more = () => {
    while (sent < total) {
      sent += chunkOfA.length
      if (!res.write(chunkOfA)) return void res.once("drain", more)
    }
    res.end(end)
  }
  res.on("error", () => {})
  more()
}

const peer = Http.createServer((req, res) => {
  read(req, (body) => {
    const fault = (req.url ?? "").replace(/^\/a2a\//, "")
    let request: { id?: unknown; params?: { message?: { messageId?: string } } } = {}
    try {
      request = JSON.parse(body) as typeof request
    } catch {
      return json(res, 400, { error: "not json" })
    }
    const id = request.id ?? null
    const messageId = request.params?.message?.messageId ?? ""
    const first = !seen.has(messageId)
    seen.add(messageId)
    switch (fault) {
      case "reset":
        return req.socket.destroy()
      case "hang":
        hung.add(res)
        res.on("close", () => hung.delete(res))
        return
      case "status500":
        return json(res, 500, { error: "internal error" })
      case "status503":
        return json(res, 503, { error: "unavailable" })
      case "flaky503":
        return first ? json(res, 503, { error: "busy" }, { "retry-after": "1" }) : json(res, 200, rpcAnswer(id, "ok"))
      case "retryAfterAbuse":
        return first ? json(res, 429, { error: "come back tomorrow" }, { "retry-after": "86400" }) : json(res, 200, rpcAnswer(id, "ok"))
      case "malformed":
        res.writeHead(200, { "content-type": "application/json" })
        return res.end("{\"jsonrpc\": \"2.0\", \"result\": {")
      case "rpcError":
        return json(res, 200, { jsonrpc: "2.0", id, error: { code: -32603, message: "internal agent error" } })
      case "queued":
        return json(res, 202, { queued: true, queue_id: `q-${messageId}`, queue_depth: 1 })
      case "redirect":
        res.writeHead(307, { location: "http://127.0.0.1:9/steal" })
        return res.end()
      case "drip": {
        // One byte every 100 ms: a 2 s timeout restarted by every chunk would never fire.
        const whole = JSON.stringify(rpcAnswer(id, "dripped"))
        res.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(whole)) })
        let i = 0
        const timer = setInterval(() => {
          if (res.destroyed || i >= whole.length) return clearInterval(timer)
          res.write(whole[i++]!)
        }, 100)
        res.on("close", () => clearInterval(timer))
        return
      }
      case "huge": {
        res.writeHead(200, { "content-type": "application/json" })
        const start = JSON.stringify(rpcAnswer(id, "")).replace(/"\}\]\}\}$/, "")
        return stream(res, start, HUGE_BYTES, "\"}]}}")
      }
      case "hugeError":
        res.writeHead(500, { "content-type": "text/html" })
        return stream(res, "<html>", HUGE_BYTES, "</html>")
      default:
        return json(res, 200, rpcAnswer(id, "ok"))
    }
  })
})

// --- the platform ----------------------------------------------------------------------------------------

let outageUntil = 0
let mirrorHangs = false
const counts = { record: 0, update: 0, notify: 0, discover: 0 }

const platform = Http.createServer((req, res) => {
  read(req, () => {
    const url = req.url ?? "/"
    if (url.startsWith("/control/outage")) {
      outageUntil = Date.now() + Number(new URL(url, "http://x").searchParams.get("ms") ?? "3000")
      return json(res, 200, { outageUntil })
    }
    if (url === "/control/hang") {
      mirrorHangs = true
      return json(res, 200, { mirrorHangs })
    }
    if (url === "/control/counts") return json(res, 200, { ...counts, hungPeers: hung.size })
    if (req.method === "GET" && url.startsWith("/registry/discover/")) {
      counts.discover++
      const id = decodeURIComponent(url.slice("/registry/discover/".length))
      const fault = id.replace(/^peer-/, "")
      const base = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`
      if (fault === "outage") return json(res, 503, { error: "registry unavailable" })
      if (fault === "nonhttp") return json(res, 200, { id, url: "ftp://127.0.0.1/a2a" })
      if (fault === "userinfo") {
        return json(res, 200, { id, url: `http://soak-user:soak-secret@127.0.0.1:${(peer.address() as AddressInfo).port}/a2a/ok` })
      }
      return json(res, 200, { id, url: `${base}/a2a/${fault}` })
    }
    const mirror = url.endsWith("/delegations/record") ? "record" : url.endsWith("/update") ? "update" : url.endsWith("/notify") ? "notify" : undefined
    if (mirror !== undefined) {
      counts[mirror]++
      if (mirrorHangs) return
      if (Date.now() < outageUntil) return json(res, 503, { error: "platform outage" })
      return json(res, 200, { status: "ok" })
    }
    if (req.method === "GET" && url.endsWith("/delegations")) return json(res, 200, [])
    return json(res, 404, { error: "not found" })
  })
})

for (const server of [peer, platform]) server.keepAliveTimeout = 30_000
peer.listen(0, "127.0.0.1", () =>
  platform.listen(0, "127.0.0.1", () => {
    const port = (server: Http.Server) => (server.address() as AddressInfo).port
    process.stdout.write(`${JSON.stringify({ platform: port(platform), peer: port(peer) })}\n`)
  }))
process.on("SIGTERM", () => process.exit(0))
process.on("disconnect", () => process.exit(0))
