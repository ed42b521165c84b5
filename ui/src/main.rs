//! Entry point of the wasm module: everything else lives in the library so that native tests can render it.

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(ui::Shell);
}
