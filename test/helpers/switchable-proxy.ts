import { createServer, connect, type Server, type Socket } from 'node:net';

export interface SwitchableProxy {
  readonly port: number;
  /** Off: every connection, open or new, is dropped (a backend that is down); on: relayed again. */
  on: boolean;
  close(): Promise<void>;
}

/** A TCP proxy to `targetPort` that can be switched off (every connection, open or new, is dropped) and on again. */
export async function switchableProxy(targetPort: number): Promise<SwitchableProxy> {
  const sockets = new Set<Socket>();
  const state = { on: true };
  const server: Server = createServer((client) => {
    if (!state.on) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    get on() {
      return state.on;
    },
    set on(value: boolean) {
      state.on = value;
      if (!value) for (const socket of sockets) socket.destroy();
    },
    close: () => new Promise((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}
