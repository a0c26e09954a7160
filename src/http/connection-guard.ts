/**
 * Client connections are a bounded resource that costs an attacker nothing:
 * a socket that never sends a byte, or dribbles a header line, holds a slot
 * as long as the server lets it. The guard keeps the slots for clients that
 * use them:
 * - a connection that has sent nothing after FIRST_BYTE_TIMEOUT_MS is closed
 *   (node:http's headersTimeout bounds the headers that follow);
 * - at CONNECTIONS_MAX, a new connection sheds the oldest connection with no
 *   request in flight (idle keep-alive, or headers not complete yet); only
 *   when every connection is serving a request is the new one refused.
 * A request in flight is never shed, however slowly its body arrives or its
 * response is read: the write budget and backpressure bound what it costs.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { assert } from '../util/assert.ts';
import { CONNECTIONS_SWEEP_INTERVAL_MS, FIRST_BYTE_TIMEOUT_MS } from '../util/limits.ts';

interface Tracked {
  acceptedMs: number;
  /** Requests whose response has not closed yet (more than one only with pipelining). */
  inFlight: number;
}

export class ConnectionGuard {
  readonly #max: number;
  /** In acceptance order (a Map iterates in insertion order): the first idle entry is the oldest. */
  readonly #sockets = new Map<Socket, Tracked>();
  #sweeper: NodeJS.Timeout | undefined;

  constructor(max: number) {
    assert(Number.isInteger(max) && max >= 1, 'connection cap');
    this.#max = max;
  }

  attach(server: Server): void {
    server.on('connection', (socket: Socket) => this.#accepted(socket));
    server.on('listening', () => {
      this.#sweeper ??= setInterval(() => this.#sweep(Date.now()), CONNECTIONS_SWEEP_INTERVAL_MS).unref();
    });
    server.on('close', () => {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    });
  }

  /** Call when a request's headers arrived; its connection is not shed until the response closes. */
  requestStarted(request: IncomingMessage, response: ServerResponse): void {
    const tracked = this.#sockets.get(request.socket);
    if (tracked === undefined) return;
    tracked.inFlight++;
    response.once('close', () => {
      tracked.inFlight--;
    });
  }

  get size(): number {
    return this.#sockets.size;
  }

  #accepted(socket: Socket): void {
    if (this.#sockets.size >= this.#max && !this.#shedOne()) {
      // Every connection is serving a request: this one waits for none of them.
      socket.destroy();
      return;
    }
    this.#sockets.set(socket, { acceptedMs: Date.now(), inFlight: 0 });
    socket.once('close', () => this.#sockets.delete(socket));
  }

  /** Closes the oldest connection with no request in flight; false if there is none. */
  #shedOne(): boolean {
    for (const [socket, tracked] of this.#sockets) {
      if (tracked.inFlight > 0) continue;
      this.#sockets.delete(socket);
      socket.destroy();
      return true;
    }
    return false;
  }

  #sweep(nowMs: number): void {
    for (const [socket, tracked] of this.#sockets) {
      // Acceptance order: the rest are younger still.
      if (nowMs - tracked.acceptedMs < FIRST_BYTE_TIMEOUT_MS) break;
      if (socket.bytesRead === 0) socket.destroy();
    }
  }
}
