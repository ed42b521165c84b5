//! Development aid: one JSON line of findings per input line (stdin), for comparing against labelled data.
fn main() {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).unwrap();
    for line in s.lines() {
        println!(
            "{}",
            serde_json::to_string(&karte_guard::scan(line)).unwrap()
        );
    }
}
