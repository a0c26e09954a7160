/**
 * The ceiling for a Node HTTP server: node:http answering each request with
 * exactly the status, headers and body that Talus sent for the same request
 * (captured by the suite just before), and doing no other work: no routing,
 * no auth, no storage. A request body (PUT) is read to its end first, as
 * Talus must. Run by the suite:
 *   node --import tsx bench/servers/bare-http.ts CONFIG.json
 */
import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from 'node:http';
import { readConfig, serve, type BaselineConfig, type CapturedResponse } from './common.ts';

export interface BareHttpConfig extends BaselineConfig {
  /** The answer per request method; a method without one gets 405. */
  responses: Partial<Record<'GET' | 'HEAD' | 'PUT' | 'DELETE', CapturedResponse>>;
}

interface Prepared {
  status: number;
  headers: OutgoingHttpHeaders;
  body: Buffer | undefined;
}

const config = readConfig<BareHttpConfig>();
const prepared = new Map<string, Prepared>();
for (const [method, response] of Object.entries(config.responses)) {
  const body = response.bodyBase64 === undefined ? undefined : Buffer.from(response.bodyBase64, 'base64');
  prepared.set(method, { status: response.status, headers: response.headers, body });
}

function answer(response: ServerResponse, reply: Prepared): void {
  response.writeHead(reply.status, reply.headers);
  response.end(reply.body);
}

function onRequest(request: IncomingMessage, response: ServerResponse): void {
  const reply = prepared.get(request.method ?? '');
  if (reply === undefined) {
    response.writeHead(405, { 'content-length': '0' });
    response.end();
    return;
  }
  if (request.method !== 'PUT') {
    answer(response, reply);
    return;
  }
  request.on('end', () => answer(response, reply));
  request.resume();
}

serve(config, () => createServer({ keepAliveTimeout: 60_000 }, onRequest));
