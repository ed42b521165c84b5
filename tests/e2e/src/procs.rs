//! Finding the app's child processes through /proc, as an administrator would with `ps`: the tests kill the local
//! worker by its process id without the app exposing anything for tests.

use std::path::Path;

/// One line of the process table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// The kernel's short name (`comm`, at most 15 bytes): the executable's file name.
    pub name: String,
    /// `Z` for a zombie: exited, not yet reaped.
    pub state: char,
}

/// Parses `/proc/PID/stat`. The name is in parentheses and may itself contain spaces or parentheses, so the fields
/// after it are found from the last `)`.
pub fn parse_stat(stat: &str) -> Option<Proc> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let pid = stat[..open].trim().parse().ok()?;
    let name = stat[open + 1..close].to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some(Proc {
        pid,
        ppid,
        name,
        state,
    })
}

/// Every process visible now (processes that vanish while being read are skipped).
pub fn table() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| parse_stat(&s))
        .collect()
}

/// Living (not zombie) descendants of `root` called `name`: only processes this test started, never another
/// test's or another user's process of the same name.
pub fn descendants_named(root: u32, name: &str) -> Vec<Proc> {
    let table = table();
    let mut family = vec![root];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(table.iter().filter(|p| p.ppid == parent).map(|p| p.pid));
        i += 1;
    }
    table
        .into_iter()
        .filter(|p| family.contains(&p.pid) && p.name == name && p.state != 'Z')
        .collect()
}

/// Whether `pid` still runs (a zombie has exited: it only waits to be reaped).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
        .ok()
        .and_then(|s| parse_stat(&s))
        .is_some_and(|p| p.state != 'Z')
}

/// Sends a signal with the `kill` binary (no libc binding needed for one call).
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill {signal} {pid} failed: {status}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_names() {
        let cases = [
            (
                "4242 (karte-server) S 4200 4100 4100 0 -1 4194560",
                Some((4242, 4200, "karte-server", 'S')),
            ),
            ("17 (a) b (c)) Z 1 17 17 0", Some((17, 1, "a) b (c)", 'Z'))),
            ("garbage", None),
        ];
        for (line, want) in cases {
            let got = parse_stat(line).map(|p| (p.pid, p.ppid, p.name, p.state));
            let want = want.map(|(a, b, c, d): (u32, u32, &str, char)| (a, b, c.to_string(), d));
            assert_eq!(got, want, "{line}");
        }
    }

    #[test]
    fn finds_its_own_child_by_name_and_not_after_it_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let found = descendants_named(me, "sleep");
        assert!(found.iter().any(|p| p.pid == child.id()), "{found:?}");
        assert!(alive(child.id()));
        signal(child.id(), "-KILL").unwrap();
        child.wait().unwrap();
        assert!(!alive(child.id()));
        assert!(descendants_named(me, "sleep")
            .iter()
            .all(|p| p.pid != child.id()));
    }
}
