//! Peak resident memory of this process (Linux `VmHWM`), reset between candidates (`/proc/self/clear_refs` = 5) so
//! each local candidate's peak is its own: model weights, KV cache and compute buffers.

/// Reset the peak to the current resident size. Returns false where the kernel does not support it.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident bytes since start or the last [`reset_peak`]; `None` where /proc is unavailable.
pub fn peak_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_grows_with_an_allocation_and_resets() {
        super::reset_peak();
        let before = super::peak_bytes().expect("linux /proc");
        let v = vec![1u8; 64 << 20];
        std::hint::black_box(&v);
        let after = super::peak_bytes().unwrap();
        assert!(after >= before + (60 << 20), "{before} -> {after}");
        drop(v);
        assert!(super::reset_peak());
        assert!(super::peak_bytes().unwrap() < after);
    }
}
