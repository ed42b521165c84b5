//! The benches' options (`--name value`), one reading for all of them. An option a bench does not take is refused,
//! so a mistyped `--rep 5` does not silently measure the default.

use std::process::exit;

pub struct Args(Vec<(String, String)>);

impl Args {
    /// The command line, given the option names this bench takes. `--bench`, which `cargo bench` passes to every
    /// bench, is cargo's, not an option.
    pub fn parse(known: &[&str]) -> Args {
        let mut words = std::env::args().skip(1).filter(|a| a != "--bench");
        let mut out = Vec::new();
        while let Some(name) = words.next() {
            if !known.contains(&name.as_str()) {
                eprintln!(
                    "unknown option {name:?}; this bench takes {}",
                    known.join(", ")
                );
                exit(2);
            }
            let Some(value) = words.next() else {
                eprintln!("{name} needs a value");
                exit(2);
            };
            out.push((name, value));
        }
        Args(out)
    }

    /// The value of `name`, if given (the last one, if given twice).
    pub fn text(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// A count option: `default` when not given; anything but a positive whole number is refused.
    pub fn count(&self, name: &str, default: usize) -> usize {
        match self.text(name) {
            None => default,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("{name} takes a positive whole number, not {v:?}");
                    exit(2);
                }
            },
        }
    }
}
