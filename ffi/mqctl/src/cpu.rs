//! CPU time of a process (user + system, all its threads), read from
//! `/proc/<pid>/stat`, so that `bench` can report what a message costs the
//! client and the server in CPU: the figure that stays meaningful when the
//! machine is shared and throughput is not.
//!
//! `/proc/<pid>/stat` counts in clock ticks (`sysconf(_SC_CLK_TCK)`, 100 a
//! second on Linux): over a run of a few seconds that is well under a percent
//! of the figure. `/proc/<pid>/schedstat` is finer but only covers one thread.

use std::time::Duration;

/// Which process to sample.
#[derive(Debug, Clone, Copy)]
pub enum Process {
    /// This one.
    This,
    /// Another one, by id.
    Pid(u32),
}

impl Process {
    fn stat_path(self) -> String {
        match self {
            Process::This => "/proc/self/stat".to_owned(),
            Process::Pid(pid) => format!("/proc/{pid}/stat"),
        }
    }

    /// The CPU time the process has used so far.
    pub fn cpu_time(self) -> Result<Duration, String> {
        let path = self.stat_path();
        let text = std::fs::read_to_string(&path).map_err(|e| format!("read {path}: {e}"))?;
        let ticks = parse_cpu_ticks(&text).ok_or_else(|| format!("unexpected format of {path}"))?;
        Ok(Duration::from_secs_f64(
            ticks as f64 / clock_ticks_per_second()?,
        ))
    }
}

fn clock_ticks_per_second() -> Result<f64, String> {
    use nix::unistd::{sysconf, SysconfVar};
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(hz)) if hz > 0 => Ok(hz as f64),
        other => Err(format!("sysconf(_SC_CLK_TCK) gave {other:?}")),
    }
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The second
/// field, the command name, is in parentheses and may hold spaces and
/// parentheses itself, so fields are counted from the last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: state is field 3, so utime (14) is the 12th from here.
    let mut fields = after_name.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// CPU time of a process over an interval: [`CpuSpan::start`], then
/// [`CpuSpan::used`].
#[derive(Debug, Clone, Copy)]
pub struct CpuSpan {
    process: Process,
    at_start: Duration,
}

impl CpuSpan {
    /// Starts counting.
    pub fn start(process: Process) -> Result<Self, String> {
        Ok(CpuSpan {
            process,
            at_start: process.cpu_time()?,
        })
    }

    /// CPU time used since the start.
    pub fn used(&self) -> Result<Duration, String> {
        Ok(self.process.cpu_time()?.saturating_sub(self.at_start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_an_odd_command_name() {
        let line = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1540 0 0 0 \
                    250 37 0 0 20 0 9 0 1234 56789 100 18446744073709551615";
        assert_eq!(parse_cpu_ticks(line), Some(287));
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("no name"), None);
    }

    #[test]
    fn this_process_uses_cpu() {
        let span = CpuSpan::start(Process::This).expect("own stat");
        // Spin until a clock tick is counted; on a busy machine that can take
        // more wall time than CPU time.
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        while span.used().expect("own stat") == Duration::ZERO {
            assert!(std::time::Instant::now() < give_up, "no CPU time counted");
        }
        let me = Process::Pid(std::process::id())
            .cpu_time()
            .expect("stat by pid");
        assert!(me >= span.at_start);
    }
}
