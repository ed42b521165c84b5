//! `cargo run -p karte-core --example explain -- TEXT`: each clause of a dictation with its sentence, role, section,
//! problem and facts: what to read when a fragment lands in the wrong section.

fn main() {
    let text = std::env::args().nth(1).unwrap_or_default();
    let a = karte_core::analyze(&text, karte_core::document::default_kind()).expect("analyze");
    for (i, c) in a.clauses.iter().enumerate() {
        let facts: Vec<String> = a
            .found
            .iter()
            .filter(|f| f.clause == i && f.fact.kind != karte_core::FactKind::Plan)
            .map(|f| format!("{:?}:{}", f.fact.kind, f.fact.name))
            .collect();
        println!(
            "{:>3} s{:<3} {:<9} {:<3} {:<10} 「{}」 {}",
            i,
            c.sentence,
            format!("{:?}", a.places[i].role),
            a.kind.sections[a.places[i].section].label,
            a.problem_of(i).unwrap_or_default(),
            c.text,
            facts.join(" ")
        );
    }
    let out = karte_core::draft_floor(&text, a.kind).expect("draft");
    for s in &out.suggestions {
        println!("suggest {} [{}]", s.test, s.rule);
    }
    for f in &out.flags {
        println!("flag {} {}", f.code, f.detail.clone().unwrap_or_default());
    }
}
