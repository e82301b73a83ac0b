//! Compressible test data shared by the compression suites.

/// Log lines like a service writes: compressible, but not one repeated byte.
pub fn json_logs(bytes: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes + 256);
    let mut i = seed;
    while out.len() < bytes {
        i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let line = format!(
            "{{\"ts\":\"2026-12-06T03:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",\"service\":\"checkout\",\"request_id\":\"{:016x}\",\"latency_ms\":{},\"path\":\"/api/v1/orders/{}\"}}\n",
            (i >> 8) % 60,
            (i >> 16) % 60,
            (i >> 24) % 1000,
            ["info", "warn", "debug"][(i >> 40) as usize % 3],
            i,
            (i >> 32) % 900,
            (i >> 44) % 100_000
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(bytes);
    out
}
