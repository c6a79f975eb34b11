import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

/** A free loopback port. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A server process of its own on the run's database (or another one, which it creates), that a
 * test may kill and restart; `env` adds to its environment (e.g. another `LEPTOS_SITE_ROOT`). */
export class ServerProcess {
  private child?: ChildProcess;

  constructor(
    readonly port: number,
    readonly database = process.env.E2E_DATABASE_URL!,
    readonly env: Record<string, string> = {},
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.child = spawn(process.env.SERVER_BIN!, [], {
      cwd: '..',
      env: {
        ...process.env,
        DATABASE_URL: this.database,
        APP_ADDR: `127.0.0.1:${this.port}`,
        RUST_LOG: 'warn',
        ...this.env,
      },
      stdio: 'ignore',
    });
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      try {
        if ((await fetch(`${this.url}/healthz`)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the server on port ${this.port} did not start`);
  }

  /** Kills the process outright (SIGKILL), as a crash or an OOM kill would. */
  async kill(): Promise<void> {
    const child = this.child;
    // A process killed by a signal has no exit code, only a signal code.
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
}

/** A server of its own, started, serving the release bundle that scripts/run serves
 * (`RELEASE_SITE_ROOT`, built by scripts/test): what users download, not the debug bundle. */
export async function startReleaseServer(): Promise<ServerProcess> {
  const releaseSite = process.env.RELEASE_SITE_ROOT;
  if (!releaseSite) throw new Error('RELEASE_SITE_ROOT must name the release bundle scripts/run serves (scripts/test builds it)');
  const server = new ServerProcess(await freePort(), undefined, { LEPTOS_SITE_ROOT: releaseSite });
  await server.start();
  return server;
}
