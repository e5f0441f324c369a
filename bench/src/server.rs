//! The `rtcgear serve` child process, and CPU and memory figures from `/proc`.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::pin::CpuList;

/// A running `rtcgear serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, without the trailing slash.
    pub base_url: String,
}

impl Server {
    /// Starts `bin serve` on loopback with the test pattern at `size` and `fps`, always live,
    /// and waits (at most 20 s) for the URL it prints.
    pub fn start(bin: &Path, size: (u32, u32), fps: u32, max_viewers: usize) -> Result<Server> {
        Server::start_with(bin, size, fps, max_viewers, &[])
    }

    /// [`Server::start`] with `extra` flags for `rtcgear serve` (settings under test).
    pub fn start_with(
        bin: &Path,
        size: (u32, u32),
        fps: u32,
        max_viewers: usize,
        extra: &[String],
    ) -> Result<Server> {
        Server::start_pinned(bin, size, fps, max_viewers, extra, None)
    }

    /// [`Server::start_with`], the server pinned to `cpus` when given. A `--max-viewers` among
    /// `extra` replaces `max_viewers` (to see the server refuse offers past it).
    pub fn start_pinned(
        bin: &Path,
        size: (u32, u32),
        fps: u32,
        max_viewers: usize,
        extra: &[String],
        cpus: Option<&CpuList>,
    ) -> Result<Server> {
        let udp_port = free_udp_port()?;
        let own_max = !extra
            .iter()
            .any(|f| f == "--max-viewers" || f.starts_with("--max-viewers="));
        let mut command = Command::new(bin);
        command
            .args(["serve", "--bind", "127.0.0.1", "--port", "0", "--quiet"])
            .args(["--udp-port", &udp_port.to_string()])
            .args(["--size", &format!("{}x{}", size.0, size.1)])
            .args(["--fps", &fps.to_string()]);
        if own_max {
            command.args(["--max-viewers", &max_viewers.to_string()]);
        }
        command
            // Every bench viewer comes from 127.0.0.1: no per-address offer limit, and room
            // for a join storm's connections, all from that one address.
            .args(["--offer-rate", "0"])
            .args([
                "--max-connections",
                "4096",
                "--max-connections-per-ip",
                "4096",
            ])
            .arg("--always-live")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: prctl is async-signal-safe and touches no memory of ours. It makes the server
        // die with the bench, so a killed bench (or smoke test) leaves no server behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        if let Some(cpus) = cpus {
            cpus.pin_command(&mut command);
        }
        let mut child = command.spawn().with_context(|| match cpus {
            Some(cpus) => format!(
                "cannot start {} on CPUs {cpus} (--server-cpus)",
                bin.display()
            ),
            None => format!("cannot start {}", bin.display()),
        })?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Every line goes to the channel; the reader ends with the server.
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            base_url: String::new(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while server.base_url.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(start) = line.find("http://") {
                        let url = line[start..].split_whitespace().next().unwrap_or("");
                        server.base_url = url.trim_end_matches('/').to_string();
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Its output closed: it has ended, or soon will (bounded wait).
                    for _ in 0..40 {
                        if let Some(status) = server.child.try_wait()? {
                            bail!("rtcgear serve ended ({status}) before printing its URL");
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    bail!("rtcgear serve closed its output before printing its URL");
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    bail!("rtcgear serve printed no URL within 20 s")
                }
            }
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> Result<u16> {
    Ok(UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// Seconds of CPU (user + system) that process `pid` (or `self`) has used.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after its closing parenthesis do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5) (utime, stime) are at 11 and 12 once the first two are gone.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks as f64 / per_second.max(1) as f64)
}

/// The resident set of process `pid`, in KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Datagrams the machine's UDP sockets dropped for want of receive buffer (`RcvbufErrors` of
/// `/proc/net/snmp`, this network namespace; the server's socket and the viewers' alike).
pub fn udp_receive_buffer_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp: "));
    let names = udp.next()?.split_whitespace();
    let values = udp.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
}
