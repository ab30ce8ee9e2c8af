//! Running `ptxas` on generated PTX: assemble for an `sm_XX` and report registers, spills and
//! shared memory (from `ptxas -v`). Tests and the runtime use it to check code before a launch.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// What `ptxas -v` says about one kernel (the first `.entry` in the PTX).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PtxasReport {
    /// Registers per thread.
    pub registers: u32,
    /// Bytes of spill stores.
    pub spill_stores: u32,
    /// Bytes of spill loads.
    pub spill_loads: u32,
    /// Bytes of stack frame per thread.
    pub stack_frame: u32,
    /// Bytes of static shared memory.
    pub shared_bytes: u32,
    /// `ptxas`'s whole `-v` output.
    pub log: String,
}

/// The `ptxas` to run: `$QKC_PTXAS` if set, else `ptxas` on `PATH`; `None` if neither exists.
pub fn ptxas_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QKC_PTXAS") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("ptxas"))
        .find(|p| p.is_file())
}

/// Assemble `ptx` for `sm_<sm>` with `ptxas -v` and parse its report. `Err` carries ptxas's
/// message (an assembly error) or says that no ptxas was found.
pub fn ptxas_check(ptx: &str, sm: u32) -> Result<PtxasReport, String> {
    let exe =
        ptxas_path().ok_or_else(|| "no ptxas (set QKC_PTXAS or put ptxas on PATH)".to_string())?;
    let dir = std::env::temp_dir();
    let unique = format!(
        "qkc-ptxas-{}-{:?}-{}",
        std::process::id(),
        std::thread::current().id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    )
    .replace(['(', ')', ' '], "");
    let input = dir.join(format!("{unique}.ptx"));
    let output = dir.join(format!("{unique}.cubin"));
    std::fs::File::create(&input)
        .and_then(|mut f| f.write_all(ptx.as_bytes()))
        .map_err(|e| format!("writing {}: {e}", input.display()))?;
    let out = Command::new(&exe)
        .arg(format!("-arch=sm_{sm}"))
        .arg("-v")
        .arg("-o")
        .arg(&output)
        .arg(&input)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", exe.display()));
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    let out = out?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!(
            "ptxas -arch=sm_{sm} failed ({}):\n{log}",
            out.status
        ));
    }
    Ok(parse_report(&log))
}

fn number_before(line: &str, unit: &str) -> Option<u32> {
    let at = line.find(unit)?;
    line[..at].split_whitespace().last()?.parse().ok()
}

/// Parse `ptxas -v` output (the first function's figures).
pub fn parse_report(log: &str) -> PtxasReport {
    let mut r = PtxasReport {
        log: log.to_string(),
        ..PtxasReport::default()
    };
    for line in log.lines() {
        if line.contains("bytes stack frame") {
            r.stack_frame = number_before(line, "bytes stack frame").unwrap_or(0);
            r.spill_stores = number_before(line, "bytes spill stores").unwrap_or(0);
            r.spill_loads = number_before(line, "bytes spill loads").unwrap_or(0);
        }
        if line.contains("Used") && line.contains("registers") {
            r.registers = number_before(line, "registers").unwrap_or(0);
            if let Some(s) = line.split(',').find(|p| p.contains("bytes smem")) {
                r.shared_bytes = number_before(s, "bytes smem").unwrap_or(0);
            }
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ptxas_v() {
        let log = "ptxas info    : 0 bytes gmem\n\
ptxas info    : Compiling entry function 'k' for 'sm_90'\n\
ptxas info    : Function properties for k\n\
    8 bytes stack frame, 4 bytes spill stores, 12 bytes spill loads\n\
ptxas info    : Used 40 registers, used 1 barriers, 16 bytes smem, 384 bytes cmem[0]\n";
        let r = parse_report(log);
        assert_eq!(
            (
                r.registers,
                r.spill_stores,
                r.spill_loads,
                r.stack_frame,
                r.shared_bytes
            ),
            (40, 4, 12, 8, 16)
        );
    }
}
