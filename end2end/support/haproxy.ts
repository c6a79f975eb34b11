import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './server';

/** Debian's HAProxy, round-robin over `backends` (host:port), health-checked on /readyz. */
export class HaProxy {
  private child?: ChildProcess;
  private dir = mkdtempSync(join(tmpdir(), 'e2e-haproxy-'));

  constructor(
    readonly port: number,
    readonly backends: string[],
  ) {}

  static async start(backends: string[]): Promise<HaProxy> {
    const proxy = new HaProxy(await freePort(), backends);
    await proxy.run();
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private async run(): Promise<void> {
    const servers = this.backends.map((b, i) => `    server s${i + 1} ${b} check inter 200ms fall 1 rise 2`).join('\n');
    const config = [
      'global',
      '    maxconn 2000',
      'defaults',
      '    mode http',
      '    timeout connect 1s',
      '    timeout client 120s',
      '    timeout server 120s',
      '    retries 3',
      '    option redispatch',
      'frontend app',
      `    bind 127.0.0.1:${this.port}`,
      '    default_backend servers',
      'backend servers',
      '    balance roundrobin',
      '    option httpchk GET /readyz',
      '    http-response set-header x-served-by %s',
      servers,
      '',
    ].join('\n');
    const path = join(this.dir, 'haproxy.cfg');
    writeFileSync(path, config);
    this.child = spawn('haproxy', ['-db', '-f', path], { stdio: 'ignore' });
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (await listening(this.port)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('haproxy did not start');
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.end();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
