// Loads the wasm module built by wasm-bindgen (--target web); its start function mounts the Leptos app.
import init from './ui.js';
init();
