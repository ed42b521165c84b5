//! Print the no-model draft of stdin as JSON: a quick look at extraction while editing lexicons or rules.
use std::io::Read;

fn main() {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s).expect("stdin");
    match karte_core::draft_floor(&s, karte_core::document::default_kind()) {
        Ok(d) => println!("{}", serde_json::to_string_pretty(&d).unwrap()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1)
        }
    }
}
