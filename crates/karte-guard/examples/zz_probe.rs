use std::io::BufRead;
fn main() {
    let p = karte_guard::policy::Policy::embedded();
    for l in std::io::stdin().lock().lines() {
        let l = l.unwrap();
        if l.trim().is_empty() { continue; }
        let v = p.check(&l);
        let rules: Vec<String> = v.hits.iter().map(|h| format!("{}/{}", h.category, h.rule)).collect();
        let inj: Vec<&str> = karte_guard::injection::detect(&l).iter().map(|i| i.rule).collect();
        println!("{:?} {:?} inj={:?} | {}", v.verdict, rules, inj, l);
    }
}
