//! Prints the no-model draft of every sample dictation (sections, suggestions, draft flags), to compare rule changes.
fn main() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/samples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let out = karte_core::draft_floor(&text, karte_core::document::default_kind()).unwrap();
        println!("=== {}", f.file_name().unwrap().to_string_lossy());
        print!("{}", out.document().render());
        for s in &out.suggestions {
            println!("suggest: {} [{}]", s.test, s.rule);
        }
        for fl in &out.flags {
            println!("flag: {} {}", fl.code, fl.message);
        }
    }
}
