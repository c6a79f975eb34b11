// Starts the app in the browser: loads the WASM bundle and hydrates the page the server
// rendered. A file of its own, not an inline script, so that the Content-Security-Policy can
// forbid inline scripts altogether.
import init, { hydrate } from './frontend.js';

init({ module_or_path: new URL('./frontend_bg.wasm', import.meta.url) }).then(() => hydrate());

// A page restored from the back-forward cache after signing out must not show data: reload
// it, and the server sends it to the sign-in page.
addEventListener('pageshow', (event) => {
  if (event.persisted) location.reload();
});
