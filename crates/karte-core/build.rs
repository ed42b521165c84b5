//! Embeds every document kind under `assets/documents/`: adding a kind is adding a file.
//!
//! Nothing absolute goes into the output or the rerun paths: CI and the developer checkout share one target
//! directory, and a build script's output made in one checkout is reused by the other, so the generated code names
//! the files relative to `CARGO_MANIFEST_DIR` of whichever checkout compiles it.

use std::path::Path;

const DIR: &str = "../../assets/documents";

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed={DIR}");
    let mut names: Vec<String> = std::fs::read_dir(Path::new(&manifest).join(DIR))
        .expect("assets/documents")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    let mut out = String::from("/// (file name, contents) of every document kind.\nconst DOCUMENT_FILES: &[(&str, &str)] = &[\n");
    for name in &names {
        println!("cargo:rerun-if-changed={DIR}/{name}");
        out.push_str(&format!(
            "    ({name:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), {:?}))),\n",
            format!("/{DIR}/{name}")
        ));
    }
    out.push_str("];\n");
    let target = Path::new(&std::env::var("OUT_DIR").unwrap()).join("documents.rs");
    std::fs::write(target, out).expect("write documents.rs");
}
