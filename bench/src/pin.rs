//! CPU pinning for the thread comparisons: Linux CPU lists (`0`, `0,1`, `0-3,6`, as taskset's
//! `-c` takes them) and `sched_setaffinity(2)`.

use std::fmt;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// CPUs to run on, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList {
    text: String,
    cpus: Vec<usize>,
}

/// Parses a CPU list (for clap), checking that every CPU is online on this machine.
pub fn parse(text: &str) -> Result<CpuList, String> {
    let list = parse_list(text)?;
    if let Some(online) = online() {
        if let Some(cpu) = list.cpus.iter().find(|c| !online.contains(c)) {
            return Err(format!(
                "CPU {cpu} is not online here (the online CPUs: {})",
                show(&online)
            ));
        }
    }
    Ok(list)
}

/// Parses a CPU list without looking at the machine.
fn parse_list(text: &str) -> Result<CpuList, String> {
    let bad = || format!("{text:?} is not a CPU list like 0,1 or 0-3,6");
    let mut cpus = Vec::new();
    for part in text.trim().split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part.trim(), part.trim()),
        };
        let first: usize = first.parse().map_err(|_| bad())?;
        let last: usize = last.parse().map_err(|_| bad())?;
        if first > last {
            return Err(bad());
        }
        if last >= libc::CPU_SETSIZE as usize {
            return Err(format!("CPU {last} is beyond what an affinity mask holds"));
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(CpuList {
        text: text.trim().to_string(),
        cpus,
    })
}

/// The online CPUs, from `/sys/devices/system/cpu/online`.
fn online() -> Option<Vec<usize>> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    parse_list(&text).ok().map(|l| l.cpus)
}

/// `0-1,4`, say.
fn show(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl CpuList {
    fn set(&self) -> libc::cpu_set_t {
        // SAFETY: cpu_set_t is a plain bit mask; all zero bytes is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &cpu in &self.cpus {
            // SAFETY: `cpu` is below CPU_SETSIZE (checked when parsed).
            unsafe { libc::CPU_SET(cpu, &mut set) };
        }
        set
    }

    /// Pins the calling thread (and the threads it starts from now on) to these CPUs.
    pub fn pin_this_thread(&self) -> std::io::Result<()> {
        let set = self.set();
        // SAFETY: `set` is a live cpu_set_t of the size given; 0 is the calling thread.
        let result =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if result == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Makes `command`'s process start pinned to these CPUs.
    pub fn pin_command(&self, command: &mut Command) {
        let set = self.set();
        // SAFETY: sched_setaffinity is a plain system call, async-signal-safe; the mask was
        // made before the fork and is only read.
        unsafe {
            command.pre_exec(move || {
                if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_as_taskset_takes_them() {
        assert_eq!(parse_list("1").map(|l| l.cpus), Ok(vec![1]));
        assert_eq!(parse_list("0,1").map(|l| l.cpus), Ok(vec![0, 1]));
        assert_eq!(parse_list("0-2,6,1").map(|l| l.cpus), Ok(vec![0, 1, 2, 6]));
        assert_eq!(parse_list(" 3 ").map(|l| l.to_string()), Ok("3".into()));
        for bad in ["", "x", "1,", "2-1", "-1", "0-", "99999"] {
            assert!(parse_list(bad).is_err(), "{bad:?}");
        }
        assert_eq!(show(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
    }

    #[test]
    fn cpu_zero_is_online_and_pins() {
        let list = parse("0").expect("CPU 0 is online");
        assert!(parse("1023").is_err() || online().is_none());
        // A thread of its own, so the test's other threads keep their CPUs.
        std::thread::spawn(move || list.pin_this_thread())
            .join()
            .expect("the thread ran")
            .expect("pinned to CPU 0");
    }
}
