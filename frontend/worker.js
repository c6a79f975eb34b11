// A worker of the upload page: loads the app's WASM bundle and hands it each message from the
// page (it checks files and cuts their chunks off the page's thread: app/src/staging/worker.rs).
// A bundle that fails to load is thrown from a timer, so that the page hears the worker's
// `error` and does the work itself.
import init, { worker_start, worker_message } from './frontend.js';

addEventListener('message', (event) => worker_message(event.data));
init({ module_or_path: new URL('./frontend_bg.wasm', import.meta.url) })
  .then(() => worker_start())
  .catch((error) => setTimeout(() => { throw error; }));
