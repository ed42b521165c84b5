fn main() {
    let mut s = String::new();
    std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).unwrap();
    for line in s.lines() {
        let f = karte_guard::scan(line);
        println!("{line}");
        for x in f {
            println!("   {:?} [{}]", x.kind, x.text);
        }
    }
}
