#![recursion_limit = "256"]
//! The WASM entry: hydrates the server-rendered page.

/// Called by the hydration script once the WASM module is loaded.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}

/// Called by `worker.js` in each of the upload page's workers once the module is loaded: the
/// worker tells the page it takes jobs.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn worker_start() {
    console_error_panic_hook::set_once();
    app::staging::worker::ready();
}

/// Called by `worker.js` with each message the page sends its worker.
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn worker_message(message: wasm_bindgen::JsValue) {
    app::staging::worker::on_message(message);
}
