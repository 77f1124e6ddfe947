/**
 * The admin server's JSON answers: one object, a newline, its length, `application/json`.
 * Errors are `{"error": "..."}` with the status that says whose fault it is.
 */
import type { ServerResponse } from 'node:http';

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
